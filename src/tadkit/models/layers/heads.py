"""Classification and regression heads shared across pyramid levels.

Each head is a tower of masked conv + LayerNorm + ReLU layers, then a masked conv predictor.
The classifier's bias starts at ``-log((1 − π) / π)`` (prior π = 0.01) so early training is
not swamped by background; the regressor outputs ``ReLU(scale_l · x)`` with one learnable
scale per level, i.e. non-negative distances to the start and end in units of the level stride.

The levels go through the towers in one pass: concatenated along time with ``kernel_size // 2``
zero steps between them (:func:`pack_levels`), so a kernel never reaches from one level into the
next and every level's output equals its own pass; one convolution per layer in place of one per
level (fewer, larger calls, each weight cast once under autocast).
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .conv import ConvStack, MaskedConv1D, Scale, is_channels_last


def pack_levels(feats: list[torch.Tensor], masks: list[torch.Tensor], gap: int,
                multiple: int = 32) -> tuple[torch.Tensor, torch.Tensor]:
    """Levels [(B, C, T_l)] concatenated along time with ``gap`` zero, invalid steps between them and
    as many after the last as make the length a multiple of ``multiple``: (B, C, sum T_l + gaps) and its
    mask. Time-major inputs give a time-major result.

    Masked layers of kernel size up to ``2·gap + 1`` then treat each level as its own sequence. The
    padding to a multiple is for speed: oneDNN's bfloat16 convolutions run 2-4x slower at some lengths
    than at the next multiple of 32 (a 512-channel kernel-3 convolution of two sequences on 2 CPU cores:
    10.9 ms forward at 1,139 steps, 3.0 ms at 1,152; 9.9 ms at 2,021, 4.5 ms at 2,048).
    """
    time_major = is_channels_last(feats[0])
    b, c = feats[0].shape[:2]
    parts, mask_parts = [], []
    total = sum(x.shape[-1] for x in feats) + gap * (len(feats) - 1)

    def zeros(x, m, n):
        parts.append(x.new_zeros((b, n, c) if time_major else (b, c, n)))
        mask_parts.append(m.new_zeros(b, n))

    for i, (x, m) in enumerate(zip(feats, masks)):
        if i and gap:
            zeros(x, m, gap)
        parts.append(x.transpose(1, 2) if time_major else x)
        mask_parts.append(m)
    if total % multiple:
        zeros(feats[0], masks[0], -total % multiple)
    packed = torch.cat(parts, 1).transpose(1, 2) if time_major else torch.cat(parts, 2)
    return packed, torch.cat(mask_parts, 1)


def unpack_levels(packed: torch.Tensor, sizes: list[int], gap: int) -> list[torch.Tensor]:
    """Views of each level's steps of a :func:`pack_levels` result (B, C', sum T_l + gaps)."""
    out, start = [], 0
    for size in sizes:
        out.append(packed[:, :, start:start + size])
        start += size + gap
    return out


class _Head(nn.Module):
    """Conv tower and predictor applied to every level; outputs (B, T_l, out_channels) per level."""

    def __init__(self, in_channels: int, channels: int, out_channels: int, num_convs: int = 2,
                 kernel_size: int = 3, with_ln: bool = True):
        super().__init__()
        # the tower's output goes only into the predictor conv: half precision kept under autocast
        self.tower = ConvStack(in_channels, channels, num_convs, kernel_size, with_ln, half_output=True)
        self.predictor = MaskedConv1D(channels if num_convs else in_channels, out_channels, kernel_size)

        self.gap = kernel_size // 2

    def per_level(self, feats: list[torch.Tensor], masks: list[torch.Tensor]) -> list[torch.Tensor]:
        """(B, out_channels, T_l) per level, every level in one pass (see :func:`pack_levels`)."""
        x, mask = pack_levels(feats, masks, self.gap)
        x, mask = self.tower(x, mask)
        # a tower's output is zero at invalid steps (an empty tower passes x, which is not checked)
        out = self.predictor(x, mask, input_masked=len(self.tower.layers) > 0)[0]   # (B, out_channels, P + gaps)
        return unpack_levels(out, [f.shape[-1] for f in feats], self.gap)


class ClassificationHead(_Head):
    """Per-point class logits (B, T_l, num_classes) for each level."""

    def __init__(self, in_channels: int, channels: int, num_classes: int, num_convs: int = 2,
                 kernel_size: int = 3, with_ln: bool = True, prior_prob: float = 0.01):
        super().__init__(in_channels, channels, num_classes, num_convs, kernel_size, with_ln)
        nn.init.constant_(self.predictor.conv.bias, -math.log((1 - prior_prob) / prior_prob))

    def forward(self, feats: list[torch.Tensor], masks: list[torch.Tensor]) -> list[torch.Tensor]:
        return [x.transpose(1, 2) for x in self.per_level(feats, masks)]


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
        return [F.relu(scale(x)).transpose(1, 2) for scale, x in zip(self.scales, self.per_level(feats, masks))]
