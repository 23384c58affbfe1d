"""Pictures: timelines of ground truth against predictions, training curves (matplotlib, no screen)."""
from __future__ import annotations

import csv
import os
from typing import Mapping, Sequence

import numpy as np

from .core.io import atomic_path

__all__ = ["plot_timeline", "plot_training_curve"]


def _pyplot():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def _save(fig, path) -> None:
    with atomic_path(path, suffix=os.path.splitext(os.fspath(path))[1] or ".png") as tmp:
        fig.savefig(tmp, dpi=110, bbox_inches="tight")


def plot_timeline(path, videos: Sequence[str], durations: Mapping[str, float],
                  ground_truth: Mapping[str, list[dict]], predictions: Mapping[str, list[dict]],
                  classes: Sequence[str] | None = None, min_score: float = 0.3, max_per_video: int = 40) -> None:
    """One panel per video: a row per class, ground truth (solid) above predictions (shaded by score).

    ``ground_truth`` and ``predictions`` map a video id to ActivityNet-style entries
    (``{"segment": [s, e], "label": name, "score": p}``). Predictions below ``min_score`` are left
    out, and at most ``max_per_video`` are drawn (the best).
    """
    plt = _pyplot()
    videos = list(videos)
    if classes is None:
        classes = sorted({d["label"] for v in videos for d in list(ground_truth.get(v, []))
                          + list(predictions.get(v, []))})
    row = {c: i for i, c in enumerate(classes)}
    colors = plt.get_cmap("tab10")
    fig, axes = plt.subplots(len(videos), 1, figsize=(11, 0.55 * len(classes) * len(videos) + 1.2), squeeze=False)
    for ax, vid in zip(axes[:, 0], videos):
        for d in ground_truth.get(vid, []):
            r = row.get(d["label"])
            if r is not None:
                s, e = d["segment"]
                ax.broken_barh([(s, e - s)], (r + 0.52, 0.4), color=colors(r % 10))
        preds = sorted(predictions.get(vid, []), key=lambda d: -d["score"])
        preds = [d for d in preds if d["score"] >= min_score][:max_per_video]
        for d in preds:
            r = row.get(d["label"])
            if r is not None:
                s, e = d["segment"]
                ax.broken_barh([(s, e - s)], (r + 0.08, 0.4), color=colors(r % 10),
                               alpha=float(np.clip(d["score"], 0.15, 1.0)), edgecolor="k", linewidth=0.3)
        ax.set_xlim(0, durations.get(vid, max([d["segment"][1] for d in ground_truth.get(vid, [])] + [1.0])))
        ax.set_ylim(0, len(classes))
        ax.set_yticks(np.arange(len(classes)) + 0.5)
        ax.set_yticklabels(classes, fontsize=7)
        ax.set_title(f"{vid}: ground truth (upper bar) vs predictions with score >= {min_score} (lower, "
                     f"opacity = score)", fontsize=8)
        ax.grid(axis="x", alpha=0.3)
    axes[-1, 0].set_xlabel("seconds")
    fig.tight_layout()
    _save(fig, path)
    plt.close(fig)


def plot_training_curve(log_csv, path) -> None:
    """Loss per epoch (and average mAP where evaluated) from an engine ``log.csv``."""
    plt = _pyplot()
    with open(log_csv, newline="") as f:
        rows = list(csv.DictReader(f))
    epochs = [int(r["epoch"]) for r in rows]

    def column(name):
        return [float(r[name]) if r.get(name) not in (None, "") else np.nan for r in rows]

    fig, ax = plt.subplots(figsize=(7, 3.5))
    loss_key = next((k for k in ("loss", "train_loss") if rows and k in rows[0]), None)
    if loss_key:
        ax.plot(epochs, column(loss_key), "o-", label="training loss")
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss")
    map_key = next((k for k in ("average_mAP", "avg_mAP", "mAP") if rows and k in rows[0]), None)
    if map_key:
        ax2 = ax.twinx()
        vals = np.array(column(map_key))
        ok = ~np.isnan(vals)
        ax2.plot(np.array(epochs)[ok], 100 * vals[ok], "s--", color="tab:red", label="average mAP")
        ax2.set_ylabel("average mAP (%)", color="tab:red")
    ax.set_title("training curve")
    fig.tight_layout()
    _save(fig, path)
    plt.close(fig)
