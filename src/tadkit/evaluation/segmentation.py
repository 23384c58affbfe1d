"""Segmentation (frame) mAP for multi-label data.

Charades localisation protocol: each video is sampled at ``frames_per_video`` times
``t_j = j / frames_per_video * duration`` (``j = 0 .. n-1``); a class is present at
``t_j`` when some ground truth of that class has ``start <= t_j <= end``. Per class, the
scores of all (video, time) pairs of the subset are ranked (``np.argsort(-score)``) and
AP is the precision averaged over the positives (no interpolation); mAP averages the
classes that have at least one positive. MultiTHUMOS practice is the same AP over every
feature step (pass the times of the feature centres instead).
"""
from __future__ import annotations

import numpy as np


def frame_times(duration: float, frames_per_video: int = 25) -> np.ndarray:
    return np.arange(frames_per_video, dtype=np.float64) / frames_per_video * duration


def frame_labels(segments: np.ndarray, labels: np.ndarray, times: np.ndarray, num_classes: int) -> np.ndarray:
    """``(len(times), num_classes)`` 0/1 matrix: class present at each time (inclusive ends)."""
    out = np.zeros((len(times), num_classes), dtype=np.float64)
    if len(segments):
        inside = (segments[None, :, 0] <= times[:, None]) & (times[:, None] <= segments[None, :, 1])  # (F, N)
        t_idx, n_idx = np.nonzero(inside)
        out[t_idx, labels[n_idx]] = 1.0
    return out


def frame_average_precision(scores: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Per-class AP over frames: precision averaged at each positive. NaN for classes without positives.

    ``scores`` and ``labels`` are ``(F, C)``; vectorised over classes.
    """
    scores = np.asarray(scores, dtype=np.float64)
    labels = np.asarray(labels) == 1
    F, C = scores.shape
    ap = np.full(C, np.nan)
    if F == 0:
        return ap
    order = np.argsort(-scores, axis=0)                      # (F, C), per column as the reference sorts it
    tp = np.take_along_axis(labels, order, axis=0)
    npos = tp.sum(axis=0)
    tp_cum = np.cumsum(tp, axis=0)
    prec = tp_cum / np.arange(1, F + 1)[:, None]
    has = npos > 0
    ap[has] = (prec * tp).sum(axis=0)[has] / npos[has]
    return ap
