"""Fusion of detections with external video-level class scores (ActivityNet practice).

On ActivityNet nearly every video holds one action class, so detectors (BMN, G-TAD, TAGS,
ActionFormer, ASL...) are commonly paired with a video-level classifier (e.g. the CUHK
untrimmed-video scores): proposals give *where*, the classifier gives *what*.

Formulas (``p`` a proposal's score, ``v`` the video-level class-score vector, ``alpha`` a
power on the proposal score, default 1):

* :func:`fuse_proposals_with_video_scores` (class-agnostic proposals): for every proposal and
  every class ``c`` among the ``topk`` best of ``v`` (default 2), one detection
  ``(segment, c, p**alpha * v[c])``.
* :func:`rescore_with_video_scores` (class-aware detections ``(segment, c, p)``):
  ``p**alpha * v[c]``; with ``topk`` set, only detections whose class is among the
  video's ``topk`` best are kept.
"""
from __future__ import annotations

import numpy as np

from ..core.errors import DataError
from ..core.instances import Instances

__all__ = ["fuse_proposals_with_video_scores", "rescore_with_video_scores", "top_classes"]


def _check_scores(class_scores, video: str | None) -> np.ndarray:
    v = np.asarray(class_scores, dtype=np.float64).reshape(-1)
    if len(v) == 0 or not np.isfinite(v).all():
        raise DataError("video-level class scores must be a non-empty vector of finite numbers",
                        video=video, fix="check the external classification score file")
    return v


def top_classes(class_scores, topk: int) -> np.ndarray:
    """Indices of the ``topk`` highest class scores, best first (stable: ties by class index)."""
    v = np.asarray(class_scores, dtype=np.float64).reshape(-1)
    return np.argsort(-v, kind="stable")[: max(0, int(topk))]


def fuse_proposals_with_video_scores(proposals: Instances, class_scores, topk: int = 2, *, alpha: float = 1.0,
                                     video: str | None = None) -> Instances:
    """Class-agnostic proposals x top-k video classes -> class-aware detections.

    For proposal ``i`` (score ``p_i``; its label is ignored) and each of the ``topk`` classes
    ``c`` with the highest video-level score ``v[c]``, emits ``(segment_i, c, p_i**alpha * v[c])``.
    Output: ``len(proposals) * min(topk, C)`` instances sorted by decreasing score (ties: proposal
    order, then class rank).
    """
    v = _check_scores(class_scores, video)
    classes = top_classes(v, topk)                                      # (K,)
    n, k = len(proposals), len(classes)
    if n == 0 or k == 0:
        return Instances.empty()
    p = proposals.scores ** alpha                                       # (N,)
    scores = (p[:, None] * v[classes][None, :]).reshape(-1)             # (N*K,) proposal-major
    segs = np.repeat(proposals.segments, k, axis=0)                     # (N*K, 2)
    labels = np.tile(classes, n)                                        # (N*K,)
    out = Instances(segs, labels, scores)
    return out[np.argsort(-out.scores, kind="stable")]


def rescore_with_video_scores(detections: Instances, class_scores, *, alpha: float = 1.0,
                              topk: int | None = None, video: str | None = None) -> Instances:
    """Class-aware detections re-weighted by the video's class scores.

    Score ``p**alpha * v[label]``; with ``topk``, detections of classes outside the video's
    ``topk`` best are dropped. Output sorted by decreasing score (ties: input order).
    """
    v = _check_scores(class_scores, video)
    if len(detections) == 0:
        return Instances.empty()
    labels = detections.labels
    if labels.min() < 0 or labels.max() >= len(v):
        raise DataError(f"detection labels reach {int(labels.max())} but the video-level scores cover "
                        f"{len(v)} classes", video=video,
                        fix="use class scores over the same class list as the detector")
    keep = np.ones(len(detections), dtype=bool)
    if topk is not None:
        allowed = np.zeros(len(v), dtype=bool)
        allowed[top_classes(v, topk)] = True
        keep = allowed[labels]
    det = detections[keep]
    out = Instances(det.segments, det.labels, det.scores ** alpha * v[det.labels])
    return out[np.argsort(-out.scores, kind="stable")]
