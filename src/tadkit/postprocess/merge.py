"""From per-window detections to one set per video, in seconds.

A long video is run through the detector in (possibly overlapping) windows; each window's
detections are relative to the window start. :func:`merge_windows` shifts them into video
coordinates, clips them to the video and concatenates them (NMS comes afterwards and removes
the duplicates that overlapping windows produce). :func:`to_seconds` maps feature units to
seconds with the toolkit's one timing rule, :meth:`tadkit.core.FeatureTiming.segments_to_seconds`.
"""
from __future__ import annotations

from typing import Iterable

import numpy as np

from ..core.errors import DataError
from ..core.instances import Instances
from ..core.timing import FeatureTiming
from .nms import check_instances, check_real

__all__ = ["merge_windows", "to_seconds"]


def merge_windows(window_results: Iterable[tuple[float, Instances]], duration: float | None = None, *,
                  drop_empty: bool = True) -> Instances:
    """Shift each window's detections by its offset, clip to the video, concatenate.

    Parameters
    ----------
    window_results : ``[(offset, Instances), ...]``; ``offset`` is where the window starts, in
        the unit of the segments (feature index for feature-unit segments, seconds for seconds).
        A window's segment ``[s, e]`` becomes ``[s + offset, e + offset]``.
    duration : video length in the same unit; segments are clipped to ``[0, duration]``
        (``None``: clipped below at 0 only).
    drop_empty : drop segments left with zero length by clipping (those lying entirely outside
        the video); a segment that had zero length before clipping is kept.

    Returns the concatenation in window order (within a window, input order); labels and scores
    unchanged. A non-finite offset or duration, or bad instances, raise :class:`DataError`.
    """
    parts = list(window_results)
    for k, part in enumerate(parts):
        if not (isinstance(part, (tuple, list)) and len(part) == 2):
            raise DataError(f"merge_windows: window {k} is {type(part).__name__}, expected (offset, Instances)",
                            fix="pass a list of (window start, Instances) pairs")
        check_real(f"merge_windows: window {k} offset", part[0], error=DataError,
                   fix="give each window's start as a finite number")
        check_instances(part[1], f"merge_windows: window {k}")
    hi = np.inf if duration is None else _check_duration(duration, "merge_windows")
    if not parts:
        return Instances.empty()
    offsets = np.concatenate([np.full(len(inst), float(off)) for off, inst in parts])        # (N,)
    merged = Instances.cat([inst for _, inst in parts])
    if len(merged) == 0:
        return merged
    raw = merged.segments + offsets[:, None]                                                # (N, 2)
    segs = np.clip(raw, 0.0, hi)
    keep = np.ones(len(segs), dtype=bool)
    if drop_empty:
        keep = ~((segs[:, 1] <= segs[:, 0]) & (raw[:, 1] > raw[:, 0]))
    return Instances(segs[keep], merged.labels[keep], merged.scores[keep])


def to_seconds(instances: Instances, timing: FeatureTiming, duration: float | None = None) -> Instances:
    """Feature-unit segments -> seconds, clipped to ``[0, duration]`` when ``duration`` is given.

    Feature index ``i`` maps to ``(i * stride + window / 2) / fps`` seconds
    (:meth:`FeatureTiming.segments_to_seconds`). Labels and scores are unchanged.
    """
    check_instances(instances, "to_seconds")
    if not isinstance(timing, FeatureTiming):
        raise DataError(f"to_seconds: expected a FeatureTiming, got {type(timing).__name__}",
                        fix="build it with tadkit.core.FeatureTiming(fps, stride, window)")
    if duration is not None:
        duration = _check_duration(duration, "to_seconds")
    segs = timing.segments_to_seconds(instances.segments, duration)
    return Instances(np.asarray(segs, dtype=np.float64).reshape(-1, 2), instances.labels.copy(),
                     instances.scores.copy())


def _check_duration(duration, where: str) -> float:
    return check_real(f"{where}: video duration", duration, 0.0, np.inf, hi_open=True, error=DataError,
                      fix="check the video's duration in the annotations")
