"""Necks that turn the backbone pyramid into the features the heads read.

``IdentityNeck`` (ActionFormer's default) only applies a channel LayerNorm per level;
``FPNNeck`` is a top-down feature pyramid: 1×1 lateral convs, nearest upsampling added from the
coarser level, then a depthwise 3-tap conv and LayerNorm per level. Masks pass through unchanged.
"""
from __future__ import annotations

import torch
from torch import nn

from ...core.errors import ConfigError
from .conv import LayerNorm, MaskedConv1D, apply_mask

NECKS = ("identity", "fpn")


def _norm(dim: int, with_ln: bool) -> nn.Module:
    return LayerNorm(dim) if with_ln else nn.Identity()


class IdentityNeck(nn.Module):
    """Per-level LayerNorm (or nothing); input and output widths must agree."""

    def __init__(self, in_channels: list[int], out_channels: int, with_ln: bool = True):
        super().__init__()
        if any(c != out_channels for c in in_channels):
            raise ConfigError(f"the identity neck keeps the width, but the backbone gives {in_channels} channels "
                              f"and fpn_dim is {out_channels}", fix="set fpn_dim to the backbone width or use neck=fpn")
        self.norms = nn.ModuleList(_norm(out_channels, with_ln) for _ in in_channels)

    def forward(self, feats: list[torch.Tensor], masks: list[torch.Tensor]):
        return [apply_mask(norm(x), m) for norm, x, m in zip(self.norms, feats, masks)], masks


class FPNNeck(nn.Module):
    """Top-down FPN: ``P_l = LN(dwconv(lateral_l + upsample(P'_{l+1})))`` with masks kept."""

    def __init__(self, in_channels: list[int], out_channels: int, with_ln: bool = True, scale_factor: int = 2):
        super().__init__()
        self.scale_factor = scale_factor
        self.laterals = nn.ModuleList(MaskedConv1D(c, out_channels, 1, bias=False) for c in in_channels)
        self.outputs = nn.ModuleList(MaskedConv1D(out_channels, out_channels, 3, groups=out_channels, bias=False)
                                     for _ in in_channels)
        self.norms = nn.ModuleList(_norm(out_channels, with_ln) for _ in in_channels)

    def forward(self, feats: list[torch.Tensor], masks: list[torch.Tensor]):
        laterals = [conv(x, m)[0] for conv, x, m in zip(self.laterals, feats, masks)]  # (B, C, T_l) each
        for level in range(len(laterals) - 1, 0, -1):
            finer = laterals[level - 1]
            up = laterals[level].repeat_interleave(self.scale_factor, dim=-1)[..., : finer.shape[-1]]  # nearest
            laterals[level - 1] = finer + apply_mask(up, masks[level - 1])
        out = [apply_mask(norm(conv(x, m)[0]), m)
               for conv, norm, x, m in zip(self.outputs, self.norms, laterals, masks)]
        return out, masks


def build_neck(name: str, in_channels: list[int], out_channels: int, with_ln: bool = True,
               scale_factor: int = 2) -> nn.Module:
    """The neck called ``name`` (one of :data:`NECKS`)."""
    if name == "identity":
        return IdentityNeck(in_channels, out_channels, with_ln)
    if name == "fpn":
        return FPNNeck(in_channels, out_channels, with_ln, scale_factor)
    raise ConfigError(f"unknown neck {name!r}", fix=f"use one of {', '.join(NECKS)}")
