"""``tadkit demo``: synthesise a dataset, train ASL on it, predict, evaluate, draw pictures.

Everything runs on the CPU in a few minutes (configs/asl/demo.yaml: ASL at 64 channels). The
output folder holds the synthetic dataset (``data/``), the training run (``config.yaml``,
``checkpoints/``, ``log.csv``), ``predictions.json``, ``metrics.json``, ``timeline.png`` (ground
truth against predictions for a few test videos), ``training_curve.png`` and ``report.html`` (all of
it on one page to open in a browser).
"""
from __future__ import annotations

import shutil
import time
from pathlib import Path

from ..config import configs_dir
from ..core.errors import ConfigError

# 80 videos at half the default noise: ASL reaches about 0.9 average mAP in a few CPU minutes
# (40 videos: 0.36; 80 at the default noise: 0.21, in 24 epochs).
DEMO_VIDEOS, DEMO_NOISE = 80, 0.5
DEMO_CONFIG = configs_dir() / "asl" / "demo.yaml"


def run_demo(out: str = "demo_output", seed: int = 0, epochs: int | None = None, videos: int = 0) -> int:
    from .. import api
    from ..data.annotations import Annotations
    from ..data.synthetic import make_synthetic
    from ..viz import plot_timeline, plot_training_curve

    t0 = time.time()
    out = Path(out)
    if (out / "checkpoints").exists():
        # a finished or broken earlier demo: start afresh (the demo folder is the demo's own)
        for name in ("checkpoints", "log.csv", "config.yaml", "predictions.json", "metrics.json", "report.html"):
            p = out / name
            shutil.rmtree(p) if p.is_dir() else p.unlink(missing_ok=True)
    print("tadkit demo: synthetic dataset -> train ASL -> predict -> evaluate (CPU, a few minutes)\n")
    meta = make_synthetic(out / "data", videos=videos or DEMO_VIDEOS, classes=5, seed=seed, noise_scale=DEMO_NOISE)
    c = meta["counts"]
    print(f"data: {c['videos']} synthetic videos ({', '.join(f'{n} {s}' for s, n in c['subsets'].items())}), "
          f"{c['instances']} instances of {meta['num_classes']} classes, {meta['feature_dim']}-d features "
          f"every {meta['feature_stride'] / meta['fps']:.3f} s -> {out / 'data'}\n")
    overrides = [f"data.annotations={out / 'data' / 'annotations.json'}", f"data.features={out / 'data' / 'features'}",
                 f"output_dir={out}", f"train.seed={seed}"]
    if epochs is not None:
        overrides.append(f"train.epochs={epochs}")
    cfg = api.load_config(DEMO_CONFIG, overrides)
    print(f"training {cfg.model.name} ({cfg.train.epochs} epochs, batch {cfg.train.batch_size}) ...")
    result = api.train(cfg)
    if result.metrics is None:
        raise ConfigError("the demo's test subset has no ground truth", fix="report this as a bug")

    ann = Annotations.load(out / "data" / "annotations.json")
    test_videos = [v.video_id for v in ann.select(cfg.data.test_subset)][:3]
    gt = {v: ann.videos[v].to_dict()["annotations"] for v in test_videos}
    plot_timeline(out / "timeline.png", test_videos, {v: ann.videos[v].duration for v in test_videos}, gt,
                  result.predictions["results"] if "results" in result.predictions else result.predictions,
                  classes=ann.classes)
    plot_training_curve(out / "log.csv", out / "training_curve.png")
    from .output import print_metrics
    print()
    print_metrics(result.metrics)
    print(f"\nwrote {out}/predictions.json, metrics.json, timeline.png, training_curve.png "
          f"({time.time() - t0:.0f} s in all)")
    report = out / "report.html"             # written by the training at its end
    if report.exists():
        print(f"the run on one page, to open in a browser:\n{report}")
    return 0
