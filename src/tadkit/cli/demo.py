"""``tadkit demo``: synthesise a dataset and run it through the data and evaluation path.

This demo shows the parts that exist without a trained detector: synthetic data, the
feature store and windows, the shared post-processing, the exact evaluation and the
timeline picture. Its detections come from a transparent *non-learned* reference (class
centroids of the training features, scored per step, thresholded into segments): a
sanity floor, not a method of the toolkit.
"""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from ..core.instances import Instances
from ..core.io import atomic_write_json


def _centroid_detector(train_ds, test_ds, smooth: int = 5):
    """Per-class centroids of training steps inside ground truth (plus background); returns a predictor."""
    k = train_ds.num_classes
    sums = np.zeros((k + 1, train_ds.input_dim))
    counts = np.zeros(k + 1)
    for e in train_ds.entries:
        x = train_ds.load_features(e)                                       # (T, C)
        owner = np.full(len(x), k)
        for (s, t), lab in zip(e.segments, e.labels):
            owner[max(0, int(np.ceil(s))): max(0, int(np.floor(t)) + 1)] = lab
        np.add.at(sums, owner, x)
        counts += np.bincount(owner, minlength=k + 1)
    centroids = sums / np.maximum(counts, 1)[:, None]                       # (K+1, C)
    centroids /= np.linalg.norm(centroids, axis=1, keepdims=True) + 1e-8
    box = np.ones(smooth) / smooth

    def predict(entry) -> Instances:
        x = test_ds.load_features(entry)
        x = x / (np.linalg.norm(x, axis=1, keepdims=True) + 1e-8)
        logits = 20.0 * x @ centroids.T                                     # (T, K+1)
        p = np.exp(logits - logits.max(1, keepdims=True))
        p /= p.sum(1, keepdims=True)
        p = np.stack([np.convolve(p[:, c], box, mode="same") for c in range(k)], axis=1)   # (T, K)
        segs, labels, scores = [], [], []
        for c in range(k):
            for thr in (0.3, 0.5, 0.7):
                on = np.concatenate([[False], p[:, c] > thr, [False]])
                edges = np.flatnonzero(np.diff(on.astype(np.int8)))
                for s, t in zip(edges[::2], edges[1::2]):                   # runs [s, t)
                    if t - s >= 2:
                        segs.append([s - 0.5, t - 0.5])
                        labels.append(c)
                        scores.append(float(p[s:t, c].mean()))
        return Instances(np.array(segs).reshape(-1, 2), np.array(labels), np.array(scores))

    return predict


def run_demo(out: str = "demo_output", seed: int = 0) -> int:
    from ..data.annotations import Annotations
    from ..data.dataset import VideoDataset
    from ..data.features import open_features
    from ..data.synthetic import make_synthetic
    from ..evaluation.api import Predictions, evaluate_detection
    from ..postprocess import postprocess_detections, to_seconds
    from ..viz import plot_timeline
    from .commands import _print_metrics

    t0 = time.time()
    out = Path(out)
    print("tadkit demo: synthetic data -> feature store and windows -> detections -> post-processing -> "
          "exact evaluation.")
    print("Detections come from a non-learned class-centroid reference (a sanity floor); the trained "
          "detectors run through `tadkit train`.\n")
    meta = make_synthetic(out / "data", videos=40, classes=5, seed=seed)
    cfg = meta["config"]
    ann = Annotations.load(out / "data" / "annotations.json")
    store = open_features(out / "data" / "features")
    timing = dict(fps=cfg["data.fps"], feature_stride=cfg["data.feature_stride"],
                  feature_window=cfg["data.feature_window"])
    train = VideoDataset(ann, store, cfg["data.train_subset"], training=True, max_seq_len=2304, **timing)
    test = VideoDataset(ann, store, cfg["data.test_subset"], training=False, max_seq_len=256, **timing)
    c = meta["counts"]
    print(f"data: {c['videos']} videos ({', '.join(f'{n} {s}' for s, n in c['subsets'].items())}), "
          f"{c['instances']} instances of {meta['num_classes']} classes, {store.dim}-d features every "
          f"{meta['feature_stride'] / meta['fps']:.3f} s")
    print(f"      training items: {len(train)} (one random crop per video); test windows of 256 steps: {len(test)}")

    predict = _centroid_detector(train, test)
    results = {}
    for e in test.entries:
        inst = to_seconds(predict(e), e.timing, e.duration)
        inst = postprocess_detections(inst, method="soft", max_detections=200)
        results[e.video_id] = [{"segment": [round(float(s), 3), round(float(t), 3)], "label": ann.classes[lab],
                                "score": round(float(p), 5)}
                               for (s, t), lab, p in zip(inst.segments, inst.labels, inst.scores)]
    pred_doc = {"version": "tadkit", "results": results}
    atomic_write_json(out / "predictions.json", pred_doc)
    metrics = evaluate_detection(ann, Predictions.from_dict(pred_doc), cfg["data.test_subset"], tiou="thumos14")
    atomic_write_json(out / "metrics.json", metrics)
    print()
    _print_metrics(metrics)
    shown = test.video_ids[:3]
    gt = {v: ann.videos[v].to_dict()["annotations"] for v in shown}
    plot_timeline(out / "timeline.png", shown, {v: ann.videos[v].duration for v in shown}, gt, results,
                  classes=ann.classes)
    print(f"\nwrote {out}/predictions.json, metrics.json, timeline.png and the dataset in {out}/data "
          f"({time.time() - t0:.1f} s)")
    return 0
