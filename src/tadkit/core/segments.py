"""Temporal segments: IoU and friends.

Segments are ``(N, 2)`` arrays of ``[start, end]``. The IoU follows the ActivityNet
reference exactly (no epsilon; a zero union gives NaN), because the detection mAP
must match that protocol to the last digit.
"""
from __future__ import annotations

import numpy as np


def segment_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pairwise temporal IoU, shape ``(len(a), len(b))``.

    Computed as the ActivityNet reference does, term by term::

        inter = clip(min(a_end, b_end) - max(a_start, b_start), 0)
        union = (b_end - b_start) + (a_end - a_start) - inter
    """
    a = np.asarray(a, dtype=np.float64).reshape(-1, 2)
    b = np.asarray(b, dtype=np.float64).reshape(-1, 2)
    inter = (np.minimum(a[:, None, 1], b[None, :, 1]) - np.maximum(a[:, None, 0], b[None, :, 0])).clip(0)
    union = (b[None, :, 1] - b[None, :, 0]) + (a[:, None, 1] - a[:, None, 0]) - inter
    with np.errstate(divide="ignore", invalid="ignore"):
        return inter / union


def segment_iou_matched(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Element-wise IoU of two ``(N, 2)`` arrays of paired segments."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    inter = (np.minimum(a[..., 1], b[..., 1]) - np.maximum(a[..., 0], b[..., 0])).clip(0)
    union = (b[..., 1] - b[..., 0]) + (a[..., 1] - a[..., 0]) - inter
    with np.errstate(divide="ignore", invalid="ignore"):
        return inter / union
