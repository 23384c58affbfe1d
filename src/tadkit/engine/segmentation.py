"""Segmentation (frame) mAP of a run's predictions, for multi-label data (``test.segmentation: true``).

Per video of the test subset, frame scores live on the grid of its feature steps (one row per step):

1. the dense scores ``S`` (T, C): each window's ``model.frame_scores`` placed at its offset, averaged
   where windows overlap (zeros for a model without a dense head, or steps no window covers);
2. the final detections (seconds, after the configured post-processing) mapped to feature units, shifted
   by +0.5 so that frame t's cell ``[t, t + 1)`` is feature t's span ``[t − 0.5, t + 0.5)``, and spread by
   :func:`tadkit.postprocess.sparse_to_dense` (score > ``segmentation_gamma``, Gaussian of
   ``segmentation_sigma`` steps);
3. PointTAD's Eq. (14): ``S_final = β · sparse + (1 − β) · S`` with β = ``segmentation_beta``.

Ground truth: class c is present at a time when an annotated action of class c covers it (inclusive ends).
The frames are every feature step (centre times; MultiTHUMOS practice) or, with
``segmentation_frames = n``, n equally spaced times per video (Charades protocol, ``t_j = j/n · duration``),
each read from its nearest feature step. AP per class over all frames of the subset (precision averaged at
the positives), mAP over classes with positives (:mod:`tadkit.evaluation.segmentation`).
"""
from __future__ import annotations

import numpy as np

from ..core.instances import Instances
from ..evaluation.segmentation import frame_average_precision, frame_labels, frame_times
from ..postprocess import fuse_sparse_dense

__all__ = ["stitch_frame_scores", "fused_frame_scores", "segmentation_metrics"]


def stitch_frame_scores(parts, num_features: int, num_classes: int) -> np.ndarray:
    """``[(offset, scores (T_w, C)), ...]`` → (num_features, C), the mean over the windows covering each step."""
    total = np.zeros((num_features, num_classes))
    count = np.zeros((num_features, 1))
    for offset, scores in parts:
        if scores is None:
            continue
        start = int(round(offset))
        end = min(num_features, start + len(scores))
        total[start:end] += scores[: end - start]
        count[start:end] += 1
    return total / np.maximum(count, 1)


def fused_frame_scores(detections: Instances, dense: np.ndarray, timing, *, beta: float, gamma: float,
                       sigma: float) -> np.ndarray:
    """Eq. (14) on a video's feature-step grid: detections (seconds) and dense scores (T, C) → (T, C)."""
    segs = timing.segments_to_index(detections.segments).reshape(-1, 2) + 0.5  # feature units, cell-aligned
    on_grid = Instances(segs, detections.labels, detections.scores)
    return fuse_sparse_dense(on_grid, dense, beta, rate=1.0, gamma=gamma, sigma=sigma)


def segmentation_metrics(annotations, detections: dict, windows, classes: list[str], subset: str, test_cfg) -> dict:
    """``segmentation_mAP`` (and per-class AP) of the final detections fused with the windows' frame scores."""
    index = {c: i for i, c in enumerate(classes)}
    C = len(classes)
    per_video: dict[str, list] = {}
    for w in windows:
        per_video.setdefault(w.video_id, []).append(w)
    all_scores, all_labels = [], []
    for v in annotations.select(subset):
        parts = per_video.get(v.video_id)
        if not parts:
            continue
        first = parts[0]
        T = int(first.num_features)
        dense = stitch_frame_scores([(p.offset, p.frame_scores) for p in parts], T, C)  # (T, C)
        fused = fused_frame_scores(detections.get(v.video_id, Instances.empty()), dense, first.timing,
                                   beta=test_cfg.segmentation_beta, gamma=test_cfg.segmentation_gamma,
                                   sigma=test_cfg.segmentation_sigma)  # (T, C)
        if test_cfg.segmentation_frames is None:
            times = first.timing.to_seconds(np.arange(T))
            scores = fused
        else:
            times = frame_times(v.duration, test_cfg.segmentation_frames)
            nearest = np.clip(np.rint(first.timing.to_index(times)), 0, T - 1).astype(np.int64)
            scores = fused[nearest]
        known = np.array([lab in index for lab in v.labels], dtype=bool)
        labels = np.array([index[lab] for lab in np.asarray(v.labels)[known]], dtype=np.int64)
        all_labels.append(frame_labels(np.asarray(v.segments).reshape(-1, 2)[known], labels, times, C))
        all_scores.append(scores)
    if not all_scores:
        return {"segmentation_mAP": float("nan"), "segmentation_per_class_AP": {}, "frames_per_video": "all"}
    ap = frame_average_precision(np.concatenate(all_scores), np.concatenate(all_labels))
    valid = ~np.isnan(ap)
    return {"segmentation_mAP": float(ap[valid].mean()) if valid.any() else float("nan"),
            "segmentation_per_class_AP": {c: (None if np.isnan(a) else float(a)) for c, a in zip(classes, ap)},
            "frames_per_video": "all" if test_cfg.segmentation_frames is None else int(test_cfg.segmentation_frames),
            "segmentation_beta": float(test_cfg.segmentation_beta)}
