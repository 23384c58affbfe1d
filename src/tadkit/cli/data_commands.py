"""``tadkit eval``, ``convert``, ``synth`` and ``demo``: each a ``register(subparsers)`` and a ``run(args)``."""
from __future__ import annotations

import sys

from ..core.errors import TadkitError
from ..core.io import atomic_write_json
from .output import add_evaluation_inputs, print_metrics


# -- eval ------------------------------------------------------------------------------
def _reg_eval(sub):
    p = sub.add_parser("eval", help="evaluate a predictions file (ActivityNet protocol)",
                       description="Detection mAP exactly as the ActivityNet reference evaluation, per tIoU and "
                                   "averaged, per-class AP and recall@k; --segmentation adds frame mAP.")
    add_evaluation_inputs(p, "evaluate")
    p.add_argument("--out", help="write the metrics JSON here")
    p.add_argument("--segmentation", action="store_true", help="add Charades-style frame mAP")
    p.add_argument("--frames-per-video", type=int, default=25, help="frames sampled per video for --segmentation")
    p.add_argument("--recall", default="1,5,10,50,100", help="k values for recall@k (comma list, '' for none)")
    p.add_argument("--exclude-ignored", action="store_true",
                   help="drop predictions lying mostly inside ignore regions (THUMOS14 Ambiguous)")
    p.add_argument("--quiet", action="store_true", help="print only the average mAP")


def _run_eval(args):
    from ..evaluation.api import evaluate_files
    try:
        ks = [int(k) for k in args.recall.split(",") if k.strip()]
    except ValueError:
        raise TadkitError(f"--recall {args.recall!r} is not a list of integers", fix="write e.g. 1,5,10") from None
    if args.frames_per_video <= 0:
        raise TadkitError("--frames-per-video must be positive", fix="pass e.g. 25")
    if args.out:
        from ..core.io import check_output_file
        check_output_file(args.out, "--out")
    m = evaluate_files(args.gt, args.pred, subset=args.subset, tiou=args.tiou, segmentation=args.segmentation,
                       frames_per_video=args.frames_per_video, recall_ks=ks, exclude_ignored=args.exclude_ignored)
    for w in m["warnings"]:
        print(f"tadkit eval: warning: {w}", file=sys.stderr)
    if args.out:
        atomic_write_json(args.out, m)
    if args.quiet:
        print(f"{m['average_mAP']:.6f}")
    else:
        print_metrics(m)
        if args.out:
            print(f"metrics written to {args.out}")
    return 0


CONVERT_FORMATS = ("thumos14", "multithumos", "activitynet-bsn", "charades", "ego4d-mq", "epic100")


# -- convert ---------------------------------------------------------------------------
def _reg_convert(sub):
    p = sub.add_parser("convert", help="convert benchmark annotations to tadkit's ActivityNet-style JSON",
                       description="Convert annotations; prints what was converted and every defect handled.")
    p.add_argument("format", choices=CONVERT_FORMATS)
    p.add_argument("inputs", nargs="+", help="input files or folders")
    p.add_argument("--out", required=True, help="output annotation JSON")
    p.add_argument("--subset", help="subset name for all inputs (default: from the file names)")
    p.add_argument("--task", choices=("verb", "noun"), default="verb", help="EPIC-Kitchens-100 label")
    p.add_argument("--video-info", help="durations/fps file (THUMOS14 video_info.json, EPIC_100_video_info.csv)")
    p.add_argument("--classes", help="class list file (one name per line; Charades: 'c000 name')")
    p.add_argument("--drop-defects", action="store_true",
                   help="drop segments outside the video, zero-length segments and duplicates instead of keeping them")
    p.add_argument("--max-report", type=int, default=50, help="defect lines printed (all go to OUT.report.txt)")


def _run_convert(args):
    from ..core.io import atomic_write_text, check_output_file
    from ..data.converters import convert
    check_output_file(args.out, "--out")
    ann, report = convert(args.format, args.inputs, subset=args.subset, task=args.task,
                          video_info=args.video_info, classes=args.classes, drop_defects=args.drop_defects)
    ann.save(args.out)
    # the report lists the summary, a "defects: ..." line, then one line per defect handled
    cut = next((i + 1 for i, ln in enumerate(report) if ln.startswith("defects:")), len(report))
    summary, defects = report[:cut], report[cut:]
    for ln in summary:
        print(ln)
    for ln in defects[: args.max_report]:
        print(ln)
    if len(defects) > args.max_report:
        print(f"... {len(defects) - args.max_report} more defect lines")
    if report:
        atomic_write_text(str(args.out) + ".report.txt", "\n".join(report) + "\n")
    print(f"wrote {args.out}: {ann!r}" + (f"; full report in {args.out}.report.txt" if report else ""))
    return 0


# -- synth -----------------------------------------------------------------------------
def _reg_synth(sub):
    p = sub.add_parser("synth", help="write a synthetic dataset (annotations, features, meta)",
                       description="Write OUT/annotations.json, OUT/features/<video>.npy and OUT/meta.json (the "
                                   "data.* settings that match), a template of the layout tadkit reads. With "
                                   "--video: small synthetic videos instead, OUT/videos/<video>.mp4 (64 frames "
                                   "of 64x64 at 10 fps; a coloured square moves during each action), "
                                   "OUT/annotations.json and OUT/labels.csv (a label sheet of the training "
                                   "videos), to try tadkit fit, extract, train and detect.")
    p.add_argument("out", help="output directory")
    p.add_argument("--video", action="store_true", help="write .mp4 videos instead of features (up to 6 classes)")
    p.add_argument("--multilabel", action="store_true", help="dense, overlapping multi-label instances")
    p.add_argument("--videos", type=int, default=40)
    p.add_argument("--classes", type=int, default=5)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--feature-dim", type=int, default=64)
    p.add_argument("--noise-scale", type=float, default=1.0,
                   help="background noise relative to the default: < 1 easier, > 1 harder (default 1)")


def _run_synth(args):
    from ..core.io import check_output_dir
    from ..data.synthetic import synth_main
    check_output_dir(args.out, "OUT")
    if args.video:
        return _synth_videos(args)
    if args.videos < 2 or args.classes < 1 or args.feature_dim < 4 or not args.noise_scale >= 0:
        raise TadkitError("need --videos >= 2, --classes >= 1, --feature-dim >= 4 and --noise-scale >= 0",
                          fix="raise the numbers")
    print(synth_main(args.out, videos=args.videos, classes=args.classes, seed=args.seed,
                     multilabel=args.multilabel, feature_dim=args.feature_dim, noise_scale=args.noise_scale))
    return 0


def _synth_videos(args):
    from ..data.synthetic_video import make_synthetic_videos
    if args.videos < 3 or not 1 <= args.classes <= 6 or args.multilabel:
        raise TadkitError("--video needs --videos >= 3, --classes from 1 to 6 and no --multilabel",
                          fix="e.g. tadkit synth OUT --video --videos 12 --classes 2")
    ann = make_synthetic_videos(args.out, videos=args.videos, classes=args.classes, seed=args.seed)
    subsets = {}
    for v in ann["database"].values():
        subsets[v["subset"]] = subsets.get(v["subset"], 0) + 1
    n = sum(len(v["annotations"]) for v in ann["database"].values())
    print(f"wrote {len(ann['database'])} synthetic videos ({', '.join(f'{k} {s}' for s, k in subsets.items())}), "
          f"{n} instances of {args.classes} classes, to {args.out}/videos, {args.out}/annotations.json and "
          f"{args.out}/labels.csv (the training videos' labels)")
    return 0


# -- demo ------------------------------------------------------------------------------
def _reg_demo(sub):
    p = sub.add_parser("demo", help="synthesise data, train ASL, predict and evaluate (CPU, a few minutes)")
    p.add_argument("--out", default="demo_output")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--epochs", type=int, help="training epochs (default: configs/asl/demo.yaml)")
    p.add_argument("--videos", type=int, default=0, help="synthetic videos (default 80; a quick look: 12)")


def _run_demo(args):
    from .demo import run_demo
    if (args.videos and args.videos < 4) or (args.epochs is not None and args.epochs < 1):
        raise TadkitError("need --videos >= 4 and --epochs >= 1", fix="raise the numbers")
    return run_demo(args.out, seed=args.seed, epochs=args.epochs, videos=args.videos)


DATA_COMMANDS: dict = {
    "demo": (_reg_demo, _run_demo),
    "synth": (_reg_synth, _run_synth),
    "convert": (_reg_convert, _run_convert),
    "eval": (_reg_eval, _run_eval),
}
