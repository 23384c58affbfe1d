"""Exponential moving average of a model's weights (used for evaluation)."""
from __future__ import annotations

import copy

import torch
from torch import nn

__all__ = ["ModelEMA"]


class ModelEMA:
    """A frozen copy of ``model`` whose floating-point state follows ``ema = d * ema + (1 - d) * w``.

    Every floating entry of the state dict (parameters and float buffers) is averaged after
    each optimiser step; integer buffers (counters) are copied. The copy stays in eval mode.
    With ``warmup`` the decay of update ``t`` (0-based) is ``min(decay, (1 + t) / (10 + t))``
    (TensorFlow's ``num_updates`` rule), so short runs are not dominated by the initial weights;
    without it (ActionFormer's choice) ``d = decay`` throughout.
    """

    def __init__(self, model: nn.Module, decay: float, warmup: bool = False):
        self.decay = float(decay)
        self.warmup = bool(warmup)
        self.module = copy.deepcopy(model).eval()
        for p in self.module.parameters():
            p.requires_grad_(False)

    def decay_at(self, step: int) -> float:
        """The decay used by update number ``step`` (0-based)."""
        return min(self.decay, (1.0 + step) / (10.0 + step)) if self.warmup else self.decay

    @torch.no_grad()
    def update(self, model: nn.Module, step: int = 0) -> None:
        """Blend ``model``'s current state in; ``step`` counts the updates before this one."""
        src = model.state_dict()
        d = self.decay_at(step)
        for key, ema_v in self.module.state_dict().items():
            v = src[key].detach()
            if ema_v.dtype.is_floating_point:
                ema_v.lerp_(v.to(ema_v.dtype), 1.0 - d)   # d * ema + (1 - d) * v in one pass
            else:
                ema_v.copy_(v)

    def state_dict(self) -> dict:
        return self.module.state_dict()

    def load_state_dict(self, state: dict) -> None:
        self.module.load_state_dict(state)
