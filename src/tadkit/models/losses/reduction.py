"""Reduction of element-wise losses, shared by every loss in this package."""
from __future__ import annotations

import torch

from ...core.errors import ConfigError

REDUCTIONS = ("none", "sum", "mean")


def reduce_loss(loss: torch.Tensor, reduction: str) -> torch.Tensor:
    """``none`` keeps the elements; ``sum``; ``mean`` (0, still attached to the graph, when empty)."""
    if reduction == "none":
        return loss
    if reduction == "sum":
        return loss.sum()
    if reduction == "mean":
        return loss.mean() if loss.numel() else loss.sum() * 0.0
    raise ConfigError(f"unknown reduction {reduction!r}", fix=f"use one of {', '.join(REDUCTIONS)}")
