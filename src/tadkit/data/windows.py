"""Windows over a feature sequence: sliding windows for inference, random crops for training.

All positions here are feature indices (``[start, end)`` half-open windows, segments as
fractional feature indices); the one mapping between seconds and feature indices is
:class:`tadkit.core.timing.FeatureTiming`, used by :mod:`tadkit.data.dataset`.

Truncation rule (ActionFormer's, used by ASL and AMNet): when a training crop cuts a ground
truth segment, the segment is kept (clipped to the crop) if at least ``trunc_thresh`` of its
length lies inside, otherwise dropped; crops are redrawn (up to ``max_trials`` times) until at
least one segment survives.
"""
from __future__ import annotations

import numpy as np

from ..core.errors import ConfigError

__all__ = ["sliding_windows", "random_crop", "crop_segments", "inside_fraction"]


def sliding_windows(length: int, window: int, overlap: float = 0.0) -> list[tuple[int, int]]:
    """``[start, end)`` windows of at most ``window`` steps covering ``[0, length)``.

    Consecutive windows overlap by ``overlap`` of a window (``0 <= overlap < 1``); the last
    window is aligned with the end of the sequence, so every window but a short sequence's
    only one is exactly ``window`` long.
    """
    if window < 1:
        raise ConfigError(f"window length must be >= 1, got {window}", fix="set model.max_seq_len")
    if not 0.0 <= overlap < 1.0:
        raise ConfigError(f"window overlap must be in [0, 1), got {overlap}", fix="set data.window_overlap")
    if length <= window:
        return [(0, int(length))]
    step = max(1, int(round(window * (1.0 - overlap))))
    starts = list(range(0, length - window, step))
    starts.append(length - window)
    starts = sorted(set(starts))
    return [(s, s + window) for s in starts]


def inside_fraction(segments: np.ndarray, start: float, end: float) -> np.ndarray:
    """Fraction of each segment's length inside ``[start, end]`` (1 for a zero-length segment inside)."""
    segments = np.asarray(segments, dtype=np.float64).reshape(-1, 2)
    inter = np.clip(np.minimum(segments[:, 1], end) - np.maximum(segments[:, 0], start), 0.0, None)
    length = segments[:, 1] - segments[:, 0]
    point_inside = (segments[:, 0] >= start) & (segments[:, 0] <= end)
    with np.errstate(divide="ignore", invalid="ignore"):
        frac = np.where(length > 0, inter / np.where(length > 0, length, 1.0), point_inside.astype(np.float64))
    return frac


def crop_segments(segments: np.ndarray, start: float, end: float, trunc_thresh: float) -> tuple[np.ndarray, np.ndarray]:
    """Segments that survive a cut at ``[start, end]``: ``(clipped (K, 2), kept_index (K,))``.

    A segment is kept when at least ``trunc_thresh`` of it lies inside ``[start, end]``
    (``trunc_thresh = 0`` keeps every segment that overlaps the window, and zero-length ones
    inside it); kept segments are clipped to the window but stay in the coordinates of the
    input (the caller shifts them). Pass ``-inf`` / ``inf`` for a side that is not cut.
    """
    segments = np.asarray(segments, dtype=np.float64).reshape(-1, 2)
    frac = inside_fraction(segments, start, end)
    if trunc_thresh > 0:
        keep = frac >= trunc_thresh - 1e-9
    else:
        touches = (segments[:, 1] >= start) & (segments[:, 0] <= end)
        keep = touches & ((frac > 0) | (segments[:, 1] == segments[:, 0]))
    idx = np.flatnonzero(keep)
    return np.clip(segments[idx], start, end), idx       # (K, 2), (K,)


def random_crop(length: int, max_len: int, segments: np.ndarray, rng: np.random.Generator, *,
                crop_ratio: tuple[float, float] | None = None, trunc_thresh: float = 0.5,
                max_trials: int = 200) -> tuple[int, int]:
    """A training crop ``[start, end)`` of a sequence of ``length`` steps.

    Longer than ``max_len``: a crop of ``max_len`` steps. Not longer: the whole sequence, or,
    with ``crop_ratio = (lo, hi)``, a crop of a random ``lo..hi`` fraction of it (ActionFormer's
    THUMOS14 augmentation). The position is redrawn until a segment survives the truncation
    rule (see module docstring), at most ``max_trials`` times; the last draw is used otherwise.
    """
    if length <= max_len:
        if crop_ratio is None:
            return 0, int(length)
        lo, hi = crop_ratio
        if not 0.0 < lo <= hi <= 1.0:
            raise ConfigError(f"crop_ratio must satisfy 0 < lo <= hi <= 1, got {crop_ratio}",
                              fix="set data.crop_ratio to e.g. [0.9, 1.0] or null")
        n_lo = max(1, int(round(lo * length)))
        n_hi = max(n_lo, min(length, int(round(hi * length))))
        crop = int(rng.integers(n_lo, n_hi + 1))
        if crop == length:
            return 0, int(length)
    else:
        crop = int(max_len)
    segments = np.asarray(segments, dtype=np.float64).reshape(-1, 2)
    start = 0
    for _ in range(max(1, max_trials)):
        start = int(rng.integers(0, length - crop + 1))
        if len(segments) == 0:
            break
        _, idx = crop_segments(segments, start, start + crop, trunc_thresh)
        if len(idx):
            break
    return start, start + crop
