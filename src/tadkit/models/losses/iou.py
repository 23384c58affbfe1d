"""1-D IoU, GIoU and DIoU losses.

All three take **segments** ``(N, 2)`` = ``[start, end]`` with ``start <= end``, in any unit.
For a one-stage detector that regresses (left, right) distances from a point ``t``, pass
``offsets_to_segments(d)`` = ``[−left, right]``: the point cancels out of every term, so the
losses on distance pairs are the losses on the segments they describe.

- IoU:  ``1 − |A∩B| / |A∪B|``
- GIoU: ``1 − IoU + (|C| − |A∪B|) / |C|`` with C the smallest segment enclosing A and B
- DIoU: ``1 − IoU + (c_A − c_B)² / |C|²`` with c the centres (Zheng et al., AAAI 2020)
"""
from __future__ import annotations

import torch

from .reduction import reduce_loss


def offsets_to_segments(offsets: torch.Tensor) -> torch.Tensor:
    """(…, 2) non-negative (left, right) distances from a common point → segments relative to it."""
    return torch.stack((-offsets[..., 0], offsets[..., 1]), dim=-1)


def _terms(pred: torch.Tensor, target: torch.Tensor, eps: float):
    """IoU, union and enclosing length of matched segment pairs (N, 2) × (N, 2)."""
    pred, target = pred.float(), target.float()
    inter = (torch.minimum(pred[..., 1], target[..., 1]) - torch.maximum(pred[..., 0], target[..., 0])).clamp(min=0)
    union = (pred[..., 1] - pred[..., 0]) + (target[..., 1] - target[..., 0]) - inter
    enclosing = torch.maximum(pred[..., 1], target[..., 1]) - torch.minimum(pred[..., 0], target[..., 0])
    return inter / union.clamp(min=eps), union, enclosing


def iou_loss_1d(pred: torch.Tensor, target: torch.Tensor, reduction: str = "none", eps: float = 1e-8):
    """``1 − IoU`` of matched segments (N, 2)."""
    iou, _, _ = _terms(pred, target, eps)
    return reduce_loss(1 - iou, reduction)


def giou_loss_1d(pred: torch.Tensor, target: torch.Tensor, reduction: str = "none", eps: float = 1e-8):
    """``1 − GIoU`` of matched segments (N, 2); in [0, 2]."""
    iou, union, enclosing = _terms(pred, target, eps)
    return reduce_loss(1 - iou + (enclosing - union) / enclosing.clamp(min=eps), reduction)


def diou_loss_1d(pred: torch.Tensor, target: torch.Tensor, reduction: str = "none", eps: float = 1e-8):
    """``1 − DIoU`` of matched segments (N, 2); in [0, 2)."""
    iou, _, enclosing = _terms(pred, target, eps)
    centre_gap = 0.5 * ((pred[..., 0] + pred[..., 1]) - (target[..., 0] + target[..., 1])).float()
    return reduce_loss(1 - iou + centre_gap ** 2 / enclosing.clamp(min=eps) ** 2, reduction)


IOU_LOSSES = {"iou": iou_loss_1d, "giou": giou_loss_1d, "diou": diou_loss_1d}
