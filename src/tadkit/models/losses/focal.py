"""Sigmoid focal loss (Lin et al., RetinaNet) for dense multi-label classification."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from .reduction import reduce_loss


def sigmoid_focal_loss(logits: torch.Tensor, targets: torch.Tensor, alpha: float = 0.25, gamma: float = 2.0,
                       weight: torch.Tensor | None = None, reduction: str = "none") -> torch.Tensor:
    """``−α_t (1 − p_t)^γ log p_t`` per element, with ``p = sigmoid(logits)``.

    ``targets`` are in [0, 1] (soft targets allowed), the shape of ``logits``;
    ``p_t = p·y + (1 − p)(1 − y)`` and ``α_t = α·y + (1 − α)(1 − y)`` (``alpha < 0`` disables α).
    ``weight`` (broadcastable to ``logits``) multiplies each element before the reduction.
    """
    logits = logits.float()
    targets = targets.to(logits.dtype)
    p = torch.sigmoid(logits)
    ce = F.binary_cross_entropy_with_logits(logits, targets, reduction="none")
    p_t = p * targets + (1 - p) * (1 - targets)
    loss = ce * (1 - p_t) ** gamma
    if alpha >= 0:
        loss = loss * (alpha * targets + (1 - alpha) * (1 - targets))
    if weight is not None:
        loss = loss * weight
    return reduce_loss(loss, reduction)
