"""Seconds <-> feature indices, in one place.

Feature ``i`` covers frames ``[i*stride, i*stride + window)`` of a video at ``fps``
frames per second, so its centre lies at ``(i*stride + window/2) / fps`` seconds.
Features resampled to a fixed number ``N`` per video (ActivityNet practice) are the
special case ``fps = N / duration, stride = 1, window = 1``: feature ``i`` is centred
at ``(i + 0.5) * duration / N``.

A segment in feature units ``[s, e]`` (fractional indices of feature centres) maps to
seconds by mapping each end; models predict in feature units and everything at the
boundary of the toolkit speaks seconds.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .errors import DataError


@dataclass(frozen=True)
class FeatureTiming:
    fps: float
    stride: float = 1.0
    window: float = 1.0

    def __post_init__(self):
        for name in ("fps", "stride"):
            v = getattr(self, name)
            if not (np.isfinite(v) and v > 0):
                raise DataError(f"feature timing needs a positive {name}, got {v!r}",
                                fix=f"set data.{'fps' if name == 'fps' else 'feature_stride'} to a positive number")
        if not (np.isfinite(self.window) and self.window >= 0):
            raise DataError(f"feature window must be >= 0, got {self.window!r}", fix="set data.feature_window")

    @classmethod
    def fixed_length(cls, num_features: int, duration: float) -> "FeatureTiming":
        """Timing of ``num_features`` features spread evenly over ``duration`` seconds."""
        if num_features <= 0 or not duration > 0:
            raise DataError(f"cannot spread {num_features} features over {duration} s",
                            fix="check the video duration in the annotations")
        return cls(fps=num_features / duration, stride=1.0, window=1.0)

    @property
    def seconds_per_feature(self) -> float:
        return self.stride / self.fps

    def to_seconds(self, index):
        """Feature index (may be fractional, any shape) -> seconds."""
        return (np.asarray(index, dtype=np.float64) * self.stride + self.window / 2.0) / self.fps

    def to_index(self, seconds):
        """Seconds (any shape) -> fractional feature index; inverse of :meth:`to_seconds`."""
        return (np.asarray(seconds, dtype=np.float64) * self.fps - self.window / 2.0) / self.stride

    def segments_to_seconds(self, segments: np.ndarray, duration: float | None = None) -> np.ndarray:
        out = self.to_seconds(segments)
        if duration is not None:
            out = np.clip(out, 0.0, duration)
        return out

    def segments_to_index(self, segments: np.ndarray) -> np.ndarray:
        return self.to_index(segments)

    def num_features(self, duration: float) -> int:
        """How many whole windows fit in a video of ``duration`` seconds (at least 1)."""
        frames = duration * self.fps
        return max(1, int(np.floor((frames - self.window) / self.stride)) + 1)
