"""Masked 1-D building blocks for (B, C, T) sequences carried with a (B, T) bool mask.

Every block here takes ``(x, mask)`` and keeps the invariant the whole one-stage family
relies on: positions where the mask is False hold zeros, and the output at a valid
position never depends on what the input held at an invalid one.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ... import cpu_fast_paths
from ...core.errors import ConfigError


def downsample_mask(mask: torch.Tensor, stride: int) -> torch.Tensor:
    """Mask of a sequence downsampled by ``stride``: output step i looks at input step i·stride."""
    return mask[:, ::stride] if stride > 1 else mask  # (B, ceil(T / stride))


def apply_mask(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Zero the invalid steps of ``x`` (B, C, T) where ``mask`` (B, T) is False.

    On the CPU a mask with no invalid step returns ``x`` itself (:func:`tadkit.cpu_fast_paths.nothing_to_mask`),
    so callers must not modify the result in place.
    """
    if cpu_fast_paths.nothing_to_mask(mask):
        return x
    return x * mask[:, None, :].to(x.dtype)


def is_channels_last(x: torch.Tensor) -> bool:
    """Whether a (B, C, T) tensor is stored time-major: the transposed view of a contiguous (B, T, C) one."""
    return x.ndim == 3 and x.shape[1] > 1 and x.shape[2] > 1 and x.stride(1) == 1


def prefers_channels_last(x: torch.Tensor) -> bool:
    """Whether the one-stage blocks should carry ``x`` time-major: on the CPU under bfloat16 autocast.

    oneDNN's bfloat16 convolutions work in that layout; fed the usual (B, C, T) layout, each one
    reorders its input and output gradient (two full-size copies) and runs 1.5-4x slower. In float32
    a dense kernel-3 convolution is faster in the usual layout, so nothing changes there.
    """
    return (x.device.type == "cpu" and torch.is_autocast_enabled("cpu")
            and torch.get_autocast_dtype("cpu") == torch.bfloat16)


def to_channels_last(x: torch.Tensor) -> torch.Tensor:
    """``x`` (B, C, T) with the same values stored time-major (see :func:`is_channels_last`)."""
    return x if is_channels_last(x) else x.transpose(1, 2).contiguous().transpose(1, 2)


def conv1d(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None, stride: int = 1,
           padding: int = 0, dilation: int = 1, groups: int = 1) -> torch.Tensor:
    """``F.conv1d`` that keeps a time-major input time-major.

    A time-major (B, C, T) input is convolved as a channels-last (B, C, 1, T) image, so the output is
    time-major too, with no reordering copies (on the CPU, 1×1 and strided depthwise kernels by
    :func:`tadkit.cpu_fast_paths.time_major_conv1d`); any other input goes through ``F.conv1d``.
    """
    if not is_channels_last(x):
        return F.conv1d(x, weight, bias, stride, padding, dilation, groups)
    out = cpu_fast_paths.time_major_conv1d(x, weight, bias, stride, padding, dilation, groups)
    if out is not None:
        return out
    out = F.conv2d(x.unsqueeze(2), weight.unsqueeze(2), bias, (1, stride), (0, padding), (1, dilation),
                   groups)  # (B, C_out, 1, T')
    return out.squeeze(2)


class Conv1d(nn.Conv1d):
    """``nn.Conv1d`` (same parameters and state) that keeps a time-major input time-major (:func:`conv1d`)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not is_channels_last(x) or self.padding_mode != "zeros" or isinstance(self.padding, str):
            return super().forward(x)
        return conv1d(x, self.weight, self.bias, self.stride[0], self.padding[0], self.dilation[0], self.groups)


def conv_inputs(xs: list[torch.Tensor]) -> list[torch.Tensor]:
    """``xs`` in the dtype a convolution under the current autocast would cast them to (unchanged without
    autocast): casting once for all the convolutions that read the same tensor gives them the same input."""
    out = []
    for x in xs:
        kind = x.device.type
        if x.dtype == torch.float32 and torch.is_autocast_enabled(kind):
            x = x.to(torch.get_autocast_dtype(kind))
        out.append(x)
    return out


def model_inputs(batch: dict, input_dim: int, device: torch.device, length: int | None = None,
                 fix: str = "set the model's input_dim to the feature width") -> tuple[torch.Tensor, torch.Tensor]:
    """A batch's features (B, input_dim, T) and masks (B, T), checked, on ``device`` (float32 / bool),
    padded with invalid steps to ``length`` (default: T), invalid steps zeroed.

    What every detector does first; a feature width that does not fit the model is a
    :class:`ConfigError` whose fix is ``fix``.
    """
    feats, masks = batch["feats"], batch["masks"]
    if not isinstance(feats, torch.Tensor) or feats.ndim != 3 or feats.shape[1] != input_dim:
        shape = tuple(feats.shape) if isinstance(feats, torch.Tensor) else type(feats).__name__
        raise ConfigError(f"features of shape {shape} do not fit a model with input_dim={input_dim} "
                          f"(expected (B, {input_dim}, T))", fix=fix)
    if masks.shape != (feats.shape[0], feats.shape[2]):
        raise ValueError(f"masks of shape {tuple(masks.shape)} for features {tuple(feats.shape)}")
    pad = 0 if length is None else length - feats.shape[2]
    feats = F.pad(feats.to(device=device, dtype=torch.float32), (0, pad))           # (B, C, T')
    masks = F.pad(masks.to(device=device, dtype=torch.bool), (0, pad), value=False)  # (B, T')
    return apply_mask(feats, masks), masks


class MaskedConv1D(nn.Module):
    """Conv1d ('same' padding, odd kernel) that ignores and zeroes invalid steps.

    The input is zeroed at invalid steps first, so the result on valid steps equals the
    convolution of the unpadded sequence; the output is zeroed where the (strided) mask is
    False. Output length is ``ceil(T / stride)``, the length of ``mask[:, ::stride]``.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1,
                 groups: int = 1, bias: bool = True):
        super().__init__()
        if kernel_size % 2 != 1:
            raise ConfigError(f"MaskedConv1D: kernel_size must be odd, got {kernel_size}")
        if stride < 1:
            raise ConfigError(f"MaskedConv1D: stride must be >= 1, got {stride}")
        self.stride = stride
        self.conv = Conv1d(in_channels, out_channels, kernel_size, stride=stride,
                           padding=kernel_size // 2, groups=groups, bias=bias)
        if bias:
            nn.init.zeros_(self.conv.bias)

    def forward(self, x: torch.Tensor, mask: torch.Tensor, *, input_masked: bool = False,
                mask_output: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
        """``input_masked``: the caller guarantees zeros at invalid input steps (the zeroing pass is
        skipped); ``mask_output=False`` leaves the invalid output steps for the caller to zero
        (each skipped pass is a full read and write of the tensor, forward and backward)."""
        out_mask = downsample_mask(mask, self.stride)  # (B, T')
        out = self.conv(x if input_masked else apply_mask(x, mask))  # (B, C_out, T')
        return (apply_mask(out, out_mask) if mask_output else out), out_mask


class MaskedMaxPool1D(nn.Module):
    """Max pooling with kernel ``stride + 1`` that only looks at valid steps (the block's skip path)."""

    def __init__(self, stride: int):
        super().__init__()
        self.stride = stride

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        out_mask = downsample_mask(mask, self.stride)  # (B, T')
        if self.stride == 1:
            return apply_mask(x, mask), out_mask
        k, s, p = self.stride + 1, self.stride, (self.stride + 1) // 2
        # invalid steps pushed below every valid value by adding half the dtype's lowest value (an add,
        # where a masked_fill with -inf is ~5x slower forward and backward on the CPU); a window of invalid
        # steps only gives such a value, finite, which the output mask zeroes
        low = x.new_zeros(mask.shape).masked_fill_(~mask, torch.finfo(x.dtype).min / 2)[:, None, :]   # (B, 1, T)
        x = x + low
        if is_channels_last(x):  # pooled as a channels-last image, so the output stays time-major
            out = F.max_pool2d(x.unsqueeze(2), (1, k), (1, s), (0, p)).squeeze(2)  # (B, C, T')
        else:
            out = F.max_pool1d(x, k, s, padding=p)  # (B, C, T')
        return apply_mask(out, out_mask), out_mask


class LayerNorm(nn.Module):
    """LayerNorm over the channels of a (B, C, T) tensor, one normalisation per time step.

    Computed in float32; a float16 / bfloat16 input gives a float32 output (as autocast computes layer
    norms) unless ``half_output``, which returns the input's dtype, or under autocast the autocast dtype:
    for a norm whose consumers are convolutions under autocast (they round their input to that dtype
    anyway, so the result is the same, cast once for all of them, one full-size float32 tensor fewer).
    Not for a norm feeding a residual sum.
    """

    def __init__(self, num_channels: int, eps: float = 1e-5, affine: bool = True, half_output: bool = False):
        super().__init__()
        self.num_channels = num_channels
        self.eps = eps
        self.half_output = half_output
        self.weight = nn.Parameter(torch.ones(num_channels)) if affine else None
        self.bias = nn.Parameter(torch.zeros(num_channels)) if affine else None

    def _out_dtype(self, x: torch.Tensor) -> torch.dtype | None:
        if not self.half_output:
            return None
        if x.dtype in (torch.float16, torch.bfloat16):
            return x.dtype
        if x.dtype == torch.float32 and torch.is_autocast_enabled(x.device.type):
            return torch.get_autocast_dtype(x.device.type)   # what a convolution would cast it to
        return None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return cpu_fast_paths.channel_layer_norm(x, self.weight, self.bias, self.eps, self._out_dtype(x))


class Scale(nn.Module):
    """A learnable scalar multiplier (one per pyramid level in the regression head)."""

    def __init__(self, init_value: float = 1.0):
        super().__init__()
        self.scale = nn.Parameter(torch.tensor(float(init_value)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.scale


class ConvNormAct(nn.Module):
    """Masked conv, optional channel LayerNorm, ReLU; invalid steps stay zero.

    ``half_output``: the norm keeps a half-precision input's dtype (:class:`LayerNorm`), for a layer
    whose output goes only into another convolution.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3, with_ln: bool = True,
                 half_output: bool = False):
        super().__init__()
        self.conv = MaskedConv1D(in_channels, out_channels, kernel_size, bias=not with_ln)
        self.norm = LayerNorm(out_channels, half_output=half_output) if with_ln else nn.Identity()

    def forward(self, x: torch.Tensor, mask: torch.Tensor, *,
                input_masked: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        # the conv's own output zeroing is left out: the norm is per step, the mask after the ReLU zeroes
        x, mask = self.conv(x, mask, input_masked=input_masked, mask_output=False)
        return apply_mask(F.relu(self.norm(x)), mask), mask


class ConvStack(nn.Module):
    """``num_layers`` ConvNormAct layers, the first from ``in_channels``: the embedding stem and head towers.

    Every layer but the last feeds a convolution, so keeps half precision under autocast; the last
    does when ``half_output`` (a head tower, whose output goes into the prediction conv).
    """

    def __init__(self, in_channels: int, channels: int, num_layers: int, kernel_size: int = 3,
                 with_ln: bool = True, half_output: bool = False):
        super().__init__()
        self.layers = nn.ModuleList(
            ConvNormAct(in_channels if i == 0 else channels, channels, kernel_size, with_ln,
                        half_output=half_output or i < num_layers - 1)
            for i in range(num_layers))

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        for i, layer in enumerate(self.layers):
            x, mask = layer(x, mask, input_masked=i > 0)   # every layer's output is zero at invalid steps
        return x, mask
