"""``tadkit train`` and ``tadkit predict``: thin wrappers around :mod:`tadkit.engine`."""
from __future__ import annotations

from .output import print_metrics, setup_logging


# -- train -----------------------------------------------------------------------------
def _reg_train(sub):
    p = sub.add_parser("train", help="train a detector, then predict and evaluate data.test_subset",
                       description="Train CONFIG; writes OUTPUT_DIR/config.yaml, checkpoints/{epoch_XXX,last,best}.pt, "
                                   "log.csv, predictions.json and metrics.json. Multi-GPU/CPU: "
                                   "torchrun --nproc_per_node N -m tadkit train CONFIG.")
    p.add_argument("config", help="YAML config file")
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE",
                   help="config overrides, e.g. train.epochs=10 data.features=[rgb,flow] output_dir=runs/x")
    p.add_argument("--resume", action="store_true", help="continue the run in output_dir from checkpoints/last.pt")


def _run_train(args):
    from ..config import load_config
    from ..engine.trainer import train
    setup_logging()
    cfg = load_config(args.config, args.overrides)
    result = train(cfg, resume=args.resume)
    if result.predictions is None:  # not the main process
        return 0
    n = sum(len(v) for v in result.predictions["results"].values())
    print(f"predictions: {result.output_dir / 'predictions.json'} ({len(result.predictions['results'])} videos, "
          f"{n} detections)")
    if result.metrics is not None:
        print_metrics(result.metrics)
        print(f"metrics: {result.output_dir / 'metrics.json'}")
    else:
        print(f"no ground truth in subset {cfg.data.test_subset!r}: metrics skipped")
    if result.best is not None:
        print(f"best: epoch {result.best['epoch']}, average mAP {100 * result.best['average_mAP']:.2f} "
              f"({result.output_dir / 'checkpoints' / 'best.pt'})")
    return 0


# -- predict ---------------------------------------------------------------------------
def _reg_predict(sub):
    p = sub.add_parser("predict", help="predict with a trained checkpoint",
                       description="Run a checkpoint on a subset (or chosen videos); long videos go through "
                                   "sliding windows that are merged. Writes ActivityNet results JSON (seconds).")
    p.add_argument("--config", required=True, help="the run's config (OUTPUT_DIR/config.yaml)")
    p.add_argument("--checkpoint", required=True, help="checkpoint file (OUTPUT_DIR/checkpoints/best.pt)")
    p.add_argument("--features", nargs="+", help="feature directory (several: concatenated on channels)")
    which = p.add_mutually_exclusive_group()
    which.add_argument("--subset", help="subset to predict (default data.test_subset)")
    which.add_argument("--videos", nargs="+", metavar="ID", help="predict these videos")
    p.add_argument("--out", required=True, help="predictions JSON to write")
    p.add_argument("--weights", choices=("auto", "ema", "model"), default="auto",
                   help="EMA weights when present (auto, as training evaluates) or the raw ones")
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="config overrides, e.g. test.nms=hard")


def _run_predict(args):
    from ..config import load_config
    from ..engine.predictor import predict
    setup_logging()
    # KEY=VALUE written after --videos / --features lands in those lists: move it back
    overrides = list(args.overrides)
    for name in ("videos", "features"):
        values = getattr(args, name)
        if values:
            overrides += [v for v in values if "=" in v]
            setattr(args, name, [v for v in values if "=" not in v] or None)
    cfg = load_config(args.config, overrides)
    features = None
    if args.features:
        features = args.features[0] if len(args.features) == 1 else list(args.features)
    results = predict(cfg, args.checkpoint, features=features, subset=args.subset, videos=args.videos,
                      out=args.out, weights=args.weights)
    if results is not None:
        n = sum(len(v) for v in results["results"].values())
        print(f"wrote {args.out}: {len(results['results'])} videos, {n} detections")
    return 0


ENGINE_COMMANDS: dict = {
    "train": (_reg_train, _run_train),
    "predict": (_reg_predict, _run_predict),
}
