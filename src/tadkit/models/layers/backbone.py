"""The conv + transformer pyramid backbone of ActionFormer ("convtransformer").

A conv embedding stem projects the input features, ``stem_layers`` transformer blocks work at
full resolution, then ``branch_layers`` blocks each downsample by ``scale_factor``; the stem
output and every branch output form the pyramid (``branch_layers + 1`` levels).
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from ...core.errors import ConfigError
from .attention import TransformerBlock
from .conv import ConvStack, conv_inputs, prefers_channels_last, to_channels_last


def per_level(value, num_levels: int, name: str) -> list:
    """Broadcast a scalar setting to every level, or check a per-level list has ``num_levels`` entries."""
    if isinstance(value, Sequence) and not isinstance(value, str):
        if len(value) != num_levels:
            raise ConfigError(f"{name} has {len(value)} entries but the pyramid has {num_levels} levels",
                              fix=f"give one value or {num_levels} values")
        return list(value)
    return [value] * num_levels


class ConvTransformerBackbone(nn.Module):
    """Conv embedding → stem transformer blocks → downsampling transformer blocks.

    ``window_size`` is one odd size (or None for global attention) or one per level; level 0
    (the stem) uses entry 0, branch block i uses entry i + 1. ``forward`` returns the per-level
    features (B, C, T_l) and masks (B, T_l), with ``T_l = ceil(T / scale_factor**l)``.
    """

    def __init__(self, input_dim: int, embed_dim: int = 512, num_heads: int = 4, embed_kernel_size: int = 3,
                 embed_layers: int = 2, embed_with_ln: bool = True, stem_layers: int = 2, branch_layers: int = 5,
                 scale_factor: int = 2, window_size: int | None | Sequence[int | None] = 19, mlp_ratio: float = 4.0,
                 attn_dropout: float = 0.0, proj_dropout: float = 0.0, path_dropout: float = 0.0,
                 theta: float = 0.0):
        super().__init__()
        if embed_layers < 1:
            raise ConfigError(f"embed_layers must be >= 1, got {embed_layers}")
        if scale_factor < 2 or scale_factor % 2:
            raise ConfigError(f"scale_factor must be an even number >= 2, got {scale_factor}")
        windows = per_level(window_size, branch_layers + 1, "window_size")
        self.embed = ConvStack(input_dim, embed_dim, embed_layers, embed_kernel_size, embed_with_ln)

        def block(window, stride):
            return TransformerBlock(embed_dim, num_heads, window, stride, mlp_ratio, attn_dropout, proj_dropout,
                                    path_dropout, theta)

        self.stem = nn.ModuleList(block(windows[0], 1) for _ in range(stem_layers))
        self.branch = nn.ModuleList(block(windows[i + 1], scale_factor) for i in range(branch_layers))
        for module in self.modules():
            if isinstance(module, nn.Conv1d) and module.bias is not None:
                nn.init.zeros_(module.bias)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        if prefers_channels_last(x):  # bfloat16 on the CPU: every block carries the features time-major
            x = to_channels_last(conv_inputs([x])[0])  # cast as the first convolution would, then reordered
        x, mask = self.embed(x, mask)  # (B, C, T)
        for blk in self.stem:
            x, mask = blk(x, mask)
        feats, masks = [x], [mask]
        for blk in self.branch:
            x, mask = blk(x, mask)  # (B, C, T_l)
            feats.append(x)
            masks.append(mask)
        return feats, masks
