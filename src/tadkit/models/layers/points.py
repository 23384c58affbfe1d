"""Anchor points of a temporal feature pyramid.

Level l has stride ``scale_factor**l`` (in input feature steps); its point i sits at feature
index ``i · stride`` (ActionFormer's convention: no half-stride offset) and may regress
distances within the level's range ``[lo, hi]`` (in feature steps).
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from ...core.errors import ConfigError


def parse_regression_ranges(ranges) -> tuple[tuple[float, float], ...]:
    """Validate ``[[lo, hi], ...]`` (lists from YAML allowed; ``hi`` may be ``inf``)."""
    try:
        parsed = tuple((float(lo), float(hi)) for lo, hi in ranges)
    except (TypeError, ValueError):
        raise ConfigError(f"regression_ranges must be a list of [low, high] pairs, got {ranges!r}") from None
    for lo, hi in parsed:
        if not (0 <= lo < hi):
            raise ConfigError(f"regression range [{lo}, {hi}] needs 0 <= low < high")
    return parsed


class PointGenerator(nn.Module):
    """Points of all levels as one (P, 4) tensor: ``(position, range_lo, range_hi, stride)``.

    ``forward(lengths)`` takes the number of steps of each level and concatenates the levels
    in order (level 0 first), the layout of the heads' concatenated outputs.
    """

    def __init__(self, strides: Sequence[int], regression_ranges):
        super().__init__()
        self.strides = [int(s) for s in strides]
        self.regression_ranges = parse_regression_ranges(regression_ranges)
        if len(self.strides) != len(self.regression_ranges):
            raise ConfigError(f"{len(self.regression_ranges)} regression ranges for {len(self.strides)} "
                              f"pyramid levels", fix="give one [low, high] pair per level")

    def forward(self, lengths: Sequence[int], device: torch.device | str | None = None,
                dtype: torch.dtype = torch.float32) -> torch.Tensor:
        if len(lengths) != len(self.strides):
            raise ValueError(f"PointGenerator: {len(lengths)} levels given, {len(self.strides)} expected")
        levels = []
        for n, stride, (lo, hi) in zip(lengths, self.strides, self.regression_ranges):
            pos = torch.arange(n, device=device, dtype=dtype) * stride  # (T_l,)
            info = torch.tensor([lo, hi, stride], device=device, dtype=dtype).expand(n, 3)  # (T_l, 3)
            levels.append(torch.cat([pos[:, None], info], dim=1))  # (T_l, 4)
        return torch.cat(levels, dim=0)  # (P, 4)

    @staticmethod
    def level_strides(scale_factor: int, num_levels: int) -> list[int]:
        return [scale_factor ** level for level in range(num_levels)]

