"""Centre-sampling label assignment of ActionFormer (points × ground truths, vectorised).

A point at position t on a level with stride s and range [lo, hi] is positive for a ground
truth [a, b] when

1. t lies strictly inside the centre region ``[max(c − r·s, a), min(c + r·s, b)]`` with c the
   segment centre and r = ``center_sample_radius`` (``None``: strictly inside [a, b]), and
2. its largest regression distance ``max(t − a, b − t)`` is within [lo, hi].

Among several qualifying ground truths the shortest wins (the first on ties). The targets are
one-hot classes and the distances ``((t − a) / s, (b − t) / s)`` to the winner.
"""
from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F


class Targets(NamedTuple):
    """Per-point training targets; batched versions gain a leading B axis."""

    cls: torch.Tensor  # (P, K) float one-hot, all zero for negatives
    reg: torch.Tensor  # (P, 2) float (left, right) / stride, zero for negatives
    matched: torch.Tensor  # (P,) long index of the assigned ground truth, -1 for negatives


def assign_targets(points: torch.Tensor, gt_segments: torch.Tensor, gt_labels: torch.Tensor, num_classes: int,
                   center_sample_radius: float | None = 1.5) -> Targets:
    """Targets of one video. points: (P, 4) ``(t, lo, hi, stride)``; gt_segments (N, 2); gt_labels (N,)."""
    num_points = points.shape[0]
    dtype = points.dtype
    gt_segments = gt_segments.to(device=points.device, dtype=dtype).reshape(-1, 2)
    gt_labels = gt_labels.to(device=points.device, dtype=torch.long).reshape(-1)
    if gt_segments.shape[0] == 0:
        return Targets(points.new_zeros(num_points, num_classes), points.new_zeros(num_points, 2),
                       torch.full((num_points,), -1, dtype=torch.long, device=points.device))
    t, lo, hi, stride = (points[:, i, None] for i in range(4))  # (P, 1) each
    start, end = gt_segments[None, :, 0], gt_segments[None, :, 1]  # (1, N) each
    left, right = t - start, end - t  # (P, N) each
    if center_sample_radius is not None:
        centre = 0.5 * (start + end)
        inside = ((t - torch.maximum(centre - center_sample_radius * stride, start) > 0)
                  & (torch.minimum(centre + center_sample_radius * stride, end) - t > 0))  # (P, N)
    else:
        inside = (left > 0) & (right > 0)  # (P, N)
    farthest = torch.maximum(left, right)
    qualifies = inside & (farthest >= lo) & (farthest <= hi)  # (P, N)
    lengths = (end - start).expand(num_points, -1).masked_fill(~qualifies, float("inf"))  # (P, N)
    shortest, matched = lengths.min(dim=1)  # (P,)
    positive = torch.isfinite(shortest)  # (P,)
    matched = matched.masked_fill(~positive, -1)
    winner = matched.clamp(min=0)
    cls = F.one_hot(gt_labels[winner], num_classes).to(dtype) * positive[:, None]  # (P, K)
    rows = torch.arange(num_points, device=points.device)
    reg = torch.stack((left[rows, winner], right[rows, winner]), dim=1) / stride * positive[:, None]  # (P, 2)
    return Targets(cls, reg, matched)


def assign_batch(points: torch.Tensor, gt_segments: list[torch.Tensor], gt_labels: list[torch.Tensor],
                 num_classes: int, center_sample_radius: float | None = 1.5) -> Targets:
    """:func:`assign_targets` for each video, stacked: cls (B, P, K), reg (B, P, 2), matched (B, P)."""
    per_video = [assign_targets(points, s, l, num_classes, center_sample_radius)
                 for s, l in zip(gt_segments, gt_labels)]
    return Targets(*(torch.stack(parts) for parts in zip(*per_video)))
