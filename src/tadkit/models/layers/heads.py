"""Classification and regression heads shared across pyramid levels.

Each head is a tower of masked conv + LayerNorm + ReLU layers, then a masked conv predictor.
The classifier's bias starts at ``-log((1 − π) / π)`` (prior π = 0.01) so early training is
not swamped by background; the regressor outputs ``ReLU(scale_l · x)`` with one learnable
scale per level, i.e. non-negative distances to the start and end in units of the level stride.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .conv import ConvStack, MaskedConv1D, Scale


class _Head(nn.Module):
    """Conv tower and predictor applied to every level; outputs (B, T_l, out_channels) per level."""

    def __init__(self, in_channels: int, channels: int, out_channels: int, num_convs: int = 2,
                 kernel_size: int = 3, with_ln: bool = True):
        super().__init__()
        # the tower's output goes only into the predictor conv: half precision kept under autocast
        self.tower = ConvStack(in_channels, channels, num_convs, kernel_size, with_ln, half_output=True)
        self.predictor = MaskedConv1D(channels if num_convs else in_channels, out_channels, kernel_size)

    def per_level(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        feats, mask = self.tower(x, mask)
        # a tower's output is zero at invalid steps (an empty tower passes x, which is not checked)
        return self.predictor(feats, mask, input_masked=len(self.tower.layers) > 0)[0]  # (B, out_channels, T_l)


class ClassificationHead(_Head):
    """Per-point class logits (B, T_l, num_classes) for each level."""

    def __init__(self, in_channels: int, channels: int, num_classes: int, num_convs: int = 2,
                 kernel_size: int = 3, with_ln: bool = True, prior_prob: float = 0.01):
        super().__init__(in_channels, channels, num_classes, num_convs, kernel_size, with_ln)
        nn.init.constant_(self.predictor.conv.bias, -math.log((1 - prior_prob) / prior_prob))

    def forward(self, feats: list[torch.Tensor], masks: list[torch.Tensor]) -> list[torch.Tensor]:
        return [self.per_level(x, m).transpose(1, 2) for x, m in zip(feats, masks)]


class RegressionHead(_Head):
    """Per-point (left, right) distances in level-stride units, (B, T_l, 2) for each level.

    ``bias_init`` starts the predictor at a distance of that many strides. The tower ends in a
    ReLU, so its features are non-negative and strongly correlated across points: with a zero
    bias (ActionFormer's released code) the sign of each output channel is nearly the same at
    every point, and on some seeds a boundary channel starts (and, with no gradient through the
    ReLU, stays) at zero for every point. A positive bias keeps every unit alive at the start.
    """

    def __init__(self, in_channels: int, channels: int, num_levels: int, num_convs: int = 2,
                 kernel_size: int = 3, with_ln: bool = True, bias_init: float = 1.0):
        super().__init__(in_channels, channels, 2, num_convs, kernel_size, with_ln)
        nn.init.constant_(self.predictor.conv.bias, float(bias_init))
        self.scales = nn.ModuleList(Scale() for _ in range(num_levels))

    def forward(self, feats: list[torch.Tensor], masks: list[torch.Tensor]) -> list[torch.Tensor]:
        return [F.relu(scale(self.per_level(x, m))).transpose(1, 2)
                for scale, x, m in zip(self.scales, feats, masks)]
