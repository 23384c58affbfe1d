"""Fusion of detections with external video-level class scores (ActivityNet practice).

On ActivityNet nearly every video holds one action class, so detectors (BMN, G-TAD, TAGS,
ActionFormer, ASL...) are commonly paired with a video-level classifier (e.g. the CUHK
untrimmed-video scores): proposals give *where*, the classifier gives *what*.

Formulas (``p`` a proposal's score, ``v`` the video-level class-score vector, ``alpha`` a
power on the proposal score, ``power`` one on the fused score, both 1 by default)::

    score(segment, c) = (p**alpha * v[c]) ** power

* :func:`fuse_proposals_with_video_scores` (class-agnostic proposals): for every proposal and
  every class ``c`` among the ``topk`` best of ``v`` (default 2), one detection
  ``(segment, c, score)`` -- BMN / G-TAD practice with ``power=1``; ActionFormer's
  ``postprocess_results`` takes the geometric mean, ``power=0.5`` (a monotone change: the
  ranking, hence the mAP, is the same).
* :func:`rescore_with_video_scores` (class-aware detections ``(segment, c, p)``): the same
  score; with ``topk`` set, only detections whose class is among the video's ``topk`` best
  are kept.

Bad scores (non-finite, negative detection scores, labels beyond the class-score vector) raise
:class:`DataError`; bad ``topk`` or ``alpha`` raise :class:`ConfigError`.
"""
from __future__ import annotations

import numpy as np

from ..core.errors import DataError
from ..core.instances import Instances
from .nms import check_count, check_instances, check_real

__all__ = ["fuse_proposals_with_video_scores", "rescore_with_video_scores", "top_classes"]


def _check_scores(class_scores, video: str | None) -> np.ndarray:
    v = np.asarray(class_scores, dtype=np.float64).reshape(-1)
    if len(v) == 0 or not np.isfinite(v).all() or v.min() < 0:
        found = "none" if len(v) == 0 else f"{len(v)} with NaN, inf or negative values"
        raise DataError(f"video-level class scores must be a non-empty vector of finite numbers >= 0, got {found}",
                        video=video, fix="check the external classification score file")
    return v


def _check_detections(det: Instances, where: str, video: str | None) -> None:
    check_instances(det, where, video=video)
    if len(det) and det.scores.min() < 0:
        raise DataError(f"{where}: detection scores must be >= 0 to be fused, found {det.scores.min():g}",
                        video=video, fix="fuse probabilities, not logits")


def _fused(p: np.ndarray, v: np.ndarray, alpha, power) -> np.ndarray:
    """``(p**alpha * v)**power``, elementwise (broadcasting)."""
    alpha = check_real("alpha", alpha, 0.0, np.inf, hi_open=True, fix="a power on the proposal score, e.g. 1")
    power = check_real("power", power, 0.0, np.inf, lo_open=True, hi_open=True,
                       fix="1 for the product, 0.5 for ActionFormer's geometric mean")
    out = p ** alpha * v
    return out if power == 1.0 else out ** power


def top_classes(class_scores, topk: int) -> np.ndarray:
    """Indices of the ``topk`` highest class scores, best first (stable: ties by class index)."""
    topk = check_count("topk", topk, allow_none=False, fix="e.g. 2 classes per video")
    v = np.asarray(class_scores, dtype=np.float64).reshape(-1)
    return np.argsort(-v, kind="stable")[:topk]


def fuse_proposals_with_video_scores(proposals: Instances, class_scores, topk: int = 2, *, alpha: float = 1.0,
                                     power: float = 1.0, video: str | None = None) -> Instances:
    """Class-agnostic proposals x top-k video classes -> class-aware detections.

    For proposal ``i`` (score ``p_i``; its label is ignored) and each of the ``topk`` classes
    ``c`` with the highest video-level score ``v[c]``, emits
    ``(segment_i, c, (p_i**alpha * v[c])**power)``. Output: ``len(proposals) * min(topk, C)``
    instances sorted by decreasing score (ties: proposal order, then class rank).
    """
    _check_detections(proposals, "fuse_proposals_with_video_scores", video)
    v = _check_scores(class_scores, video)
    classes = top_classes(v, topk)                                      # (K,)
    scores = _fused(proposals.scores[:, None], v[classes][None, :], alpha, power).reshape(-1)  # (N*K,)
    n, k = len(proposals), len(classes)
    if n == 0 or k == 0:
        return Instances.empty()
    segs = np.repeat(proposals.segments, k, axis=0)                     # (N*K, 2)
    labels = np.tile(classes, n)                                        # (N*K,)
    out = Instances(segs, labels, scores)
    return out[np.argsort(-out.scores, kind="stable")]


def rescore_with_video_scores(detections: Instances, class_scores, *, alpha: float = 1.0, power: float = 1.0,
                              topk: int | None = None, video: str | None = None) -> Instances:
    """Class-aware detections re-weighted by the video's class scores.

    Score ``(p**alpha * v[label])**power``; with ``topk``, detections of classes outside the
    video's ``topk`` best are dropped. Output sorted by decreasing score (ties: input order).
    """
    _check_detections(detections, "rescore_with_video_scores", video)
    v = _check_scores(class_scores, video)
    allowed = np.ones(len(v), dtype=bool)
    if topk is not None:
        allowed[:] = False
        allowed[top_classes(v, topk)] = True
    labels = detections.labels
    if len(labels) and (labels.min() < 0 or labels.max() >= len(v)):
        raise DataError(f"detection labels must lie in [0, {len(v)}) (the classes of the video-level scores), "
                        f"found {int(labels.min())}..{int(labels.max())}", video=video,
                        fix="use class scores over the same class list as the detector")
    det = detections[allowed[labels]]
    out = Instances(det.segments, det.labels, _fused(det.scores, v[det.labels], alpha, power))
    return out[np.argsort(-out.scores, kind="stable")]
