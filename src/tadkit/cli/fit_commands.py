"""``tadkit fit``: videos and a label sheet to a trained detector; a ``register(subparsers)`` and a ``run(args)``."""
from __future__ import annotations

from ..core.errors import TadkitError
from .output import overrides_anywhere


def register(sub):
    p = sub.add_parser(
        "fit", help="videos + a label sheet -> features, config and a trained detector, in one command",
        description="Check the label sheet against the videos (all problems on one line), split by video, write "
                    "RUN_DIR/annotations.json, extract I3D features into RUN_DIR/features (resumable), choose a "
                    "config from the data (RUN_DIR/config.yaml, commented), train, and print per-class AP and the "
                    "tadkit detect command for new videos. key=value overrides apply last.")
    p.add_argument("video_dir", help="folder of the videos the sheet names")
    p.add_argument("labels", help="label sheet: CSV/TSV (video, start, end, label columns) or ActivityNet-style JSON")
    p.add_argument("--out", required=True, help="run folder to write")
    p.add_argument("--method", default="asl",
                   help="detector, whose configs/<method>/custom.yaml is the starting point: asl (default), "
                        "actionformer, amnet, tags, sptad, pointtad")
    p.add_argument("--val-fraction", type=float, default=0.2,
                   help="share of videos held out for validation, when the sheet has no subset column (0.2)")
    p.add_argument("--seed", type=int, default=0, help="seed of the split (0)")
    p.add_argument("--drop-defects", action="store_true", help="drop defective rows instead of stopping")
    p.add_argument("--weights", help="I3D checkpoint (default: the one `tadkit weights i3d` cached)")
    p.add_argument("--short-side", type=int, default=256, help="frames resized to this short side (256)")
    p.add_argument("--crop", type=int, default=224, help="centre crop size (224)")
    p.add_argument("--no-feature-cache", action="store_true",
                   help="neither take features from nor add them to $TADKIT_HOME/features (where a later fit "
                        "on the same videos and settings finds them)")
    p.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides, e.g. train.epochs=20")
    p.parse_known_args = overrides_anywhere(p)


def run(args):
    from ..engine.fit import fit
    bad = [o for o in args.overrides if "=" not in o]
    if bad:
        raise TadkitError(f"{bad[0]!r} is not a key=value override", fix="write e.g. train.epochs=20")
    fit(args.video_dir, args.labels, args.out, method=args.method, val_fraction=args.val_fraction, seed=args.seed,
        drop_defects=args.drop_defects, overrides=args.overrides, weights=args.weights, short_side=args.short_side,
        crop=args.crop, feature_cache=False if args.no_feature_cache else None)
    return 0


FIT_COMMANDS: dict = {"fit": (register, run)}
