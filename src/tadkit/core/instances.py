"""A set of temporal instances: segments, integer labels, scores."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class Instances:
    """Detections or ground truth of one video (or window).

    ``segments`` is ``(N, 2)`` float64 ``[start, end]``, in feature units inside models
    and in seconds outside; ``labels`` ``(N,)`` int64 class indices; ``scores`` ``(N,)``
    float64 (ones for ground truth).
    """

    segments: np.ndarray
    labels: np.ndarray
    scores: np.ndarray = field(default=None)

    def __post_init__(self):
        self.segments = np.asarray(self.segments, dtype=np.float64).reshape(-1, 2)
        self.labels = np.asarray(self.labels, dtype=np.int64).reshape(-1)
        if self.scores is None:
            self.scores = np.ones(len(self.labels), dtype=np.float64)
        self.scores = np.asarray(self.scores, dtype=np.float64).reshape(-1)
        if not (len(self.segments) == len(self.labels) == len(self.scores)):
            raise ValueError(f"Instances: {len(self.segments)} segments, {len(self.labels)} labels, "
                             f"{len(self.scores)} scores; they must agree")

    @classmethod
    def empty(cls) -> "Instances":
        return cls(np.zeros((0, 2)), np.zeros(0, dtype=np.int64), np.zeros(0))

    @classmethod
    def cat(cls, parts: list["Instances"]) -> "Instances":
        parts = [p for p in parts if len(p)]
        if not parts:
            return cls.empty()
        return cls(np.concatenate([p.segments for p in parts]),
                   np.concatenate([p.labels for p in parts]),
                   np.concatenate([p.scores for p in parts]))

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, idx) -> "Instances":
        return Instances(self.segments[idx], self.labels[idx], self.scores[idx])

    @property
    def starts(self) -> np.ndarray:
        return self.segments[:, 0]

    @property
    def ends(self) -> np.ndarray:
        return self.segments[:, 1]

    @property
    def lengths(self) -> np.ndarray:
        return self.segments[:, 1] - self.segments[:, 0]

    def sorted_by_score(self) -> "Instances":
        return self[np.argsort(-self.scores, kind="stable")]

    def topk(self, k: int) -> "Instances":
        return self.sorted_by_score()[: max(0, int(k))]
