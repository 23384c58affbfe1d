"""CPU fast paths: the process settings and hand-written kernels that make CPU training fast.

Each replaces a plain PyTorch route with one that gives the same result faster on the CPU; the
blocks in :mod:`tadkit.models.layers` call them and read as the plain formula. Only torch, NumPy
and the standard library are imported here.

==========================  ==========================================================================
fast path                   replaces, why, gain, switch
==========================  ==========================================================================
:func:`keep_freed_memory`   glibc's malloc defaults, which map every block above 32 MiB afresh and
                            unmap it at ``free``, so each step page-faults and zeroes its largest
                            tensors. Keeping freed blocks: element-wise passes on such tensors 2-6x
                            faster, the THUMOS14 CPU training step ~15-25 % faster. Off:
                            ``TADKIT_KEEP_FREED_MEMORY=0``; glibc on Linux only.
:func:`cache_primitives`    oneDNN's default cache of 1,024 compiled kernels (five sequence lengths'
                            worth), which makes training on videos of varying length recompile at
                            most steps. 4,096 entries: 626 ms -> 539 ms a step (ASL, THUMOS14, eight
                            lengths, 2 cores). Off: set ``ONEDNN_PRIMITIVE_CACHE_CAPACITY`` yourself.
:func:`random_bit_dropout`  ``F.dropout`` on the CPU, which draws one number per element (~3x
                            slower): 16 random bits per element from :func:`random_words` (NumPy's
                            SFC64, ~3x faster than torch's generator: 2.4 M words 15 ms -> 5 ms), the
                            mask converted through its uint8 view (~8x faster than bool -> float).
                            ``p`` rounded to a multiple of 1/65536. CPU only; other devices use
                            ``F.dropout``.
:func:`nothing_to_mask`     the zeroing multiply of ``apply_mask`` when the mask has no invalid step:
                            the full-size multiply and its backward are skipped. CPU only (elsewhere
                            the check would wait for the device).
:func:`time_major_conv1d`   two special cases of a time-major convolution on the CPU: a strided
                            depthwise one as the stride-1 one read every ``stride`` steps (oneDNN's
                            strided depthwise backward is ~6x slower than the whole stride-1
                            computation); a 1×1 one with a backward of two matrix products (7-15 %
                            faster; 512 -> 2048 channels, bfloat16: 15.0 ms -> 12.9 ms).
:func:`channel_layer_norm`  autograd of the LayerNorm formula over dim 1: a hand-written backward
                            keeping one full-size intermediate in place of about twice as many
                            (two reductions: ``torch.var_mean`` over dim 1 is ~10x slower); on a
                            time-major input the fused native kernel (3-4x faster forward and
                            backward), in bfloat16 in and out by its mixed-precision path (a fifth
                            of the memory traffic of casting to float32 and back).
:func:`overlapping_blocks`  autograd's ``unfold_backward`` of local attention's key blocks (~2.5x
                            slower on the CPU) by two strided copies.
==========================  ==========================================================================

Only the two process settings have a switch. The kernels give the plain route's values (to float
rounding in the hand-written backwards); the hand-written LayerNorm backward, the fused time-major
LayerNorm and :func:`overlapping_blocks` run on every device (their gains were measured on the CPU),
the others only on the CPU.

Left in the blocks, being how they compute rather than plumbing: the time-major layout under CPU
bfloat16 autocast (``prefers_channels_last``: oneDNN's bfloat16 convolutions 1.5-4x faster), the
cast once for every convolution reading a tensor (``conv_inputs``), the masked max pool's add of a
low value (a masked_fill with -inf is ~5x slower), the heads' packing to a multiple of 32 steps
(``pack_levels``: 2-4x at some lengths), and the one-pass residual and channel-attention blends.
"""
from __future__ import annotations

import ctypes
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F

__all__ = ["keep_freed_memory", "cache_primitives", "PRIMITIVE_CACHE_CAPACITY", "random_words",
           "random_bit_dropout", "nothing_to_mask", "time_major_conv1d", "channel_layer_norm",
           "overlapping_blocks"]


# ---------------------------------------------------------------------------------------------------
# process settings
# ---------------------------------------------------------------------------------------------------
#
# glibc serves every block above its mmap threshold (at most 32 MiB) by ``mmap`` and unmaps it at
# ``free``; a THUMOS14-sized activation (2 × 2048 × 2304 float32 = 38 MiB) is such a block, so every
# training step maps, page-faults and zeroes its largest tensors afresh, and the kernel's page-fault
# path, not the arithmetic, sets the speed of element-wise operations on them. Turning mmap off
# (``M_MMAP_MAX = 0``) and trimming the heap only when 2 GiB are free at its top
# (``M_TRIM_THRESHOLD``) keeps freed blocks for reuse: element-wise passes on such tensors run 2-6x
# faster and the CPU training step at the THUMOS14 configuration ~15-25 % faster
# (``benchmarks/train_speed.py``). The cost: the process keeps its peak resident set until it exits.
# ``TADKIT_KEEP_FREED_MEMORY=0`` leaves malloc alone; other C libraries (musl, macOS, Windows) are
# left alone too.
#
# The same goes for oneDNN's cache of compiled convolution kernels (:func:`cache_primitives`): every
# sequence length needs its own, ~200 for a THUMOS14-sized one-stage model, and the default cache of
# 1,024 holds five lengths' worth; training on videos of varying length then recompiles them at most
# steps. Eight lengths in turn, ASL at the THUMOS14 configuration on 2 CPU cores: 626 ms a step with the
# default cache, 539 ms with 4,096 entries (about 60 MiB more resident memory per length kept).

PRIMITIVE_CACHE_CAPACITY = 4096

_M_TRIM_THRESHOLD, _M_MMAP_MAX = -1, -4   # glibc's mallopt parameter numbers (malloc.h)
_applied: bool | None = None


def keep_freed_memory() -> bool:
    """Set glibc's malloc to keep freed blocks (once per process); True when it is set."""
    global _applied
    if _applied is not None:
        return _applied
    _applied = False
    if os.environ.get("TADKIT_KEEP_FREED_MEMORY", "1") == "0" or not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.gnu_get_libc_version  # glibc only  # noqa: B018
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    # mallopt returns 1 on success; its value is an int, so 2**31 - 1 bytes is the largest trim threshold
    _applied = bool(mallopt(_M_MMAP_MAX, 0)) and bool(mallopt(_M_TRIM_THRESHOLD, 2 ** 31 - 1))
    return _applied


def cache_primitives(capacity: int = PRIMITIVE_CACHE_CAPACITY) -> bool:
    """Let oneDNN keep ``capacity`` compiled kernels (``ONEDNN_PRIMITIVE_CACHE_CAPACITY``) unless the user
    set it; True when set here. Read by oneDNN at its first kernel, so call it before any computation."""
    if "ONEDNN_PRIMITIVE_CACHE_CAPACITY" in os.environ:
        return False
    os.environ["ONEDNN_PRIMITIVE_CACHE_CAPACITY"] = str(int(capacity))
    return True


# ---------------------------------------------------------------------------------------------------
# layout helpers the kernels below need (the same tests as tadkit.models.layers.is_channels_last,
# to_channels_last and conv_inputs, which sit above this module)
# ---------------------------------------------------------------------------------------------------

def _is_time_major(x: torch.Tensor) -> bool:
    """Whether a (B, C, T) tensor is the transposed view of a contiguous (B, T, C) one."""
    return x.ndim == 3 and x.shape[1] > 1 and x.shape[2] > 1 and x.stride(1) == 1


def _to_time_major(x: torch.Tensor) -> torch.Tensor:
    return x if _is_time_major(x) else x.transpose(1, 2).contiguous().transpose(1, 2)


def _as_autocast_would(xs: list[torch.Tensor]) -> list[torch.Tensor]:
    """``xs`` in the dtype a convolution under the current autocast would cast them to."""
    out = []
    for x in xs:
        kind = x.device.type
        if x.dtype == torch.float32 and torch.is_autocast_enabled(kind):
            x = x.to(torch.get_autocast_dtype(kind))
        out.append(x)
    return out


# ---------------------------------------------------------------------------------------------------
# random-bit dropout
# ---------------------------------------------------------------------------------------------------

def random_words(n: int) -> torch.Tensor:
    """``n`` uniformly random 64-bit words (int64, on the CPU), driven by torch's global generator.

    One 63-bit key is drawn from the global generator (so ``torch.manual_seed`` and a checkpoint's
    saved RNG state fix the result, and every call gets a new key) and seeds NumPy's SFC64, whose
    words come ~3x faster than the generator's own (``random_`` of 2.4 M int64: 15 ms against 5 ms).
    """
    key = int(torch.randint(0, 2 ** 63 - 1, (1,)))
    return torch.from_numpy(np.random.SFC64(key).random_raw(n).view(np.int64))


def random_bit_dropout(x: torch.Tensor, p: float) -> torch.Tensor:
    """Training-mode dropout of a CPU tensor ``x`` with ``0 < p < 1``, from 16 random bits per element.

    Four elements per 64-bit word of :func:`random_words` (``F.dropout`` draws one number per element
    and is about 3x slower on the CPU); ``p`` is rounded to a multiple of 1/65536 (0.1 becomes 0.100006)
    and the survivors are scaled by the inverse of the keep probability actually used, so the
    expectation stays exact. The mask has ``x``'s layout.
    """
    n, k = x.numel(), round(p * 65536)
    bits = random_words((n + 3) // 4)
    # drawn in the order x is stored, so the mask has x's layout (a time-major x stays time-major)
    order = sorted(range(x.ndim), key=lambda d: -x.stride(d))
    keep = bits.view(torch.int16)[:n].view([x.shape[d] for d in order]) >= k - 32768  # P(keep) = 1 - k / 65536
    keep = keep.permute([order.index(d) for d in range(x.ndim)])
    # converted through its uint8 view: the same 0 / 1 values, ~8x faster than a bool -> float conversion
    return x * keep.view(torch.uint8).to(x.dtype).mul_(65536 / (65536 - k))


# ---------------------------------------------------------------------------------------------------
# masking
# ---------------------------------------------------------------------------------------------------

def nothing_to_mask(mask: torch.Tensor) -> bool:
    """Whether zeroing by ``mask`` (B, T) can be skipped: a CPU boolean mask with no invalid step.

    Skipping saves the full-size multiply and its backward pass (a batch of videos as long as the
    batch, every level of a fixed-length input). Always False off the CPU, where the check would wait
    for the device.
    """
    return mask.device.type == "cpu" and mask.dtype == torch.bool and bool(mask.all())


# ---------------------------------------------------------------------------------------------------
# convolutions
# ---------------------------------------------------------------------------------------------------

def time_major_conv1d(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, stride: int,
                      padding: int, dilation: int, groups: int) -> torch.Tensor | None:
    """``F.conv1d`` of a time-major (B, C, T) ``x`` by a CPU special case, time-major out; None when none
    fits (then the caller convolves it as a channels-last image).

    A strided depthwise convolution is the stride-1 one read every ``stride`` steps: the same values;
    oneDNN's strided depthwise backward is ~6x slower on the CPU than the whole stride-1 computation.
    A 1×1 stride-1 convolution goes through :class:`_PointwiseConv`, its inputs cast as autocast would.
    """
    if x.device.type != "cpu":
        return None
    if stride > 1 and groups > 1 and groups == x.shape[1]:
        out = F.conv2d(x.unsqueeze(2), weight.unsqueeze(2), bias, (1, 1), (0, padding), (1, dilation),
                       groups).squeeze(2)                                       # stride 1, (B, C, T) time-major
        return _to_time_major(out[:, :, ::stride])
    if weight.shape[-1] == 1 and stride == 1 and groups == 1:
        x, weight, *rest = _as_autocast_would([x, weight] + ([] if bias is None else [bias]))
        return _PointwiseConv.apply(x, weight, rest[0] if rest else None)
    return None


class _PointwiseConv(torch.autograd.Function):
    """1×1 convolution of a time-major (B, C, T) input: forward by oneDNN's convolution, backward by two
    matrix products on the (B·T, C) storage, 7-15 % faster on the CPU than the convolution's backward
    (2 × 1,152 steps, bfloat16: 512 -> 2048 channels, 15.0 ms -> 12.9 ms)."""

    @staticmethod
    def forward(ctx, x, weight, bias):
        ctx.save_for_backward(x, weight)
        ctx.has_bias = bias is not None
        return F.conv2d(x.unsqueeze(2), weight.unsqueeze(2), bias).squeeze(2)   # (B, C_out, T), time-major

    @staticmethod
    def backward(ctx, grad):
        x, weight = ctx.saved_tensors
        b, c_in, t = x.shape
        g = _to_time_major(grad).transpose(1, 2).reshape(b * t, -1)          # (B·T, C_out), a view
        grad_x = grad_w = grad_b = None
        if ctx.needs_input_grad[0]:
            grad_x = (g @ weight[:, :, 0]).view(b, t, c_in).transpose(1, 2)    # (B, C_in, T), time-major
        if ctx.needs_input_grad[1]:
            grad_w = (g.t() @ x.transpose(1, 2).reshape(b * t, c_in))[:, :, None]   # (C_out, C_in, 1)
        if ctx.has_bias and ctx.needs_input_grad[2]:
            grad_b = g.sum(0)
        return grad_x, grad_w, grad_b


# ---------------------------------------------------------------------------------------------------
# layer norm over the channels of (B, C, T)
# ---------------------------------------------------------------------------------------------------

def channel_layer_norm(x: torch.Tensor, weight: torch.Tensor | None, bias: torch.Tensor | None, eps: float,
                       out_dtype: torch.dtype | None) -> torch.Tensor:
    """LayerNorm over dim 1 of (B, C, T), computed in float32 (float64 stays float64), output in
    ``out_dtype`` (None: the computation's); the output keeps ``x``'s layout."""
    if _is_time_major(x) and x.dtype != torch.float64:
        # time-major: the channels are the last dim of the (B, T, C) storage, so the fused native
        # kernel normalises it in place of the reductions below (3-4x faster forward and backward).
        if (x.dtype == torch.bfloat16 and out_dtype == torch.bfloat16 and x.device.type == "cpu"
                and (weight is None or weight.dtype == torch.float32)):
            y = _MixedLayerNorm.apply(x.transpose(1, 2), weight, bias, eps)
            return y.transpose(1, 2)                                                      # (B, C, T) time-major
        # otherwise fed float32: its bfloat16-input backward rounds the weight gradient (~5 % error)
        with torch.autocast(x.device.type, enabled=False):
            y = F.layer_norm(x.float().transpose(1, 2), (x.shape[1],), weight, bias,
                             eps).transpose(1, 2)                                         # (B, C, T) time-major
        return y if out_dtype is None else y.to(out_dtype)
    # reduced over dim 1 in place of F.layer_norm on a transposed view: the result stays a contiguous
    # (B, C, T) tensor, so the convolution after it needs no transposing copy; a hand-written
    # backward (see _ChannelLayerNorm)
    return _ChannelLayerNorm.apply(x, weight, bias, eps, out_dtype)


class _ChannelLayerNorm(torch.autograd.Function):
    """LayerNorm over dim 1 of (B, C, T) with a hand-written backward.

    Autograd of the plain formula keeps and walks about twice as many full-size intermediates;
    this keeps one (x̂, in float32) and the (B, 1, T) inverse deviations. Computed in float32 (float64
    stays float64); the output has ``out_dtype`` (None: the computation's).
    """

    @staticmethod
    def forward(ctx, x, weight, bias, eps: float, out_dtype: torch.dtype | None):
        with torch.autocast(x.device.type, enabled=False):
            xf = x if x.dtype == torch.float64 else x.float()
            # two passes (centre, then the mean square), stable for a large mean; torch.var_mean over
            # dim 1 is ~10x slower on the CPU than these reductions
            xhat = xf - xf.mean(dim=1, keepdim=True)                              # (B, C, T)
            rstd = ((xhat * xhat).mean(dim=1, keepdim=True) + eps).rsqrt_()     # (B, 1, T); pow is slower
            xhat.mul_(rstd)                                                       # (x - mean) / std
            y = xhat if weight is None else torch.addcmul(bias.to(xf.dtype)[:, None], xhat,
                                                          weight.to(xf.dtype)[:, None])
        ctx.save_for_backward(xhat, rstd, weight)
        ctx.in_dtype = x.dtype
        return y if out_dtype is None else y.to(out_dtype)

    @staticmethod
    def backward(ctx, dy):
        xhat, rstd, weight = ctx.saved_tensors
        with torch.autocast(dy.device.type, enabled=False):
            dy = dy.to(xhat.dtype)
            dweight = dbias = None
            if weight is not None:
                if ctx.needs_input_grad[1]:
                    dweight = (dy * xhat).sum((0, 2)).to(weight.dtype)
                if ctx.needs_input_grad[2]:
                    dbias = dy.sum((0, 2)).to(weight.dtype)
                dy = dy * weight.to(dy.dtype)[:, None]
            dx = None
            if ctx.needs_input_grad[0]:
                # dx = rstd · (g − mean_C(g) − x̂ · mean_C(g · x̂)), g = dy · weight
                dx = torch.addcmul(dy - dy.mean(1, keepdim=True), xhat,
                                   (dy * xhat).mean(1, keepdim=True), value=-1).mul_(rstd).to(ctx.in_dtype)
        return dx, dweight, dbias, None, None


class _MixedLayerNorm(torch.autograd.Function):
    """LayerNorm over the last dim of a bfloat16 (..., C) tensor, bfloat16 out, float32 weight and bias.

    Forward and the input gradient by the native kernel's mixed-precision path (bfloat16 read and
    written, statistics and arithmetic in float32, rounded once): a fifth of the memory traffic of
    casting to float32, normalising and casting back. The weight and bias gradients, sums over every
    row, by the float32 kernel: the mixed path's are ~5 % off (measured at 4,608 x 512).
    """

    @staticmethod
    def forward(ctx, x, weight, bias, eps: float):
        shape = (x.shape[-1],)
        with torch.autocast(x.device.type, enabled=False):
            y, mean, rstd = torch.native_layer_norm(x, shape, weight, bias, eps)
        ctx.save_for_backward(x, mean, rstd, weight, bias)
        return y

    @staticmethod
    def backward(ctx, dy):
        x, mean, rstd, weight, bias = ctx.saved_tensors
        backward, shape = torch.ops.aten.native_layer_norm_backward, (x.shape[-1],)
        need_w = weight is not None and ctx.needs_input_grad[1]
        need_b = bias is not None and ctx.needs_input_grad[2]
        dx = dweight = dbias = None
        with torch.autocast(dy.device.type, enabled=False):
            if ctx.needs_input_grad[0]:
                dx = backward(dy.to(x.dtype), x, shape, mean, rstd, weight, bias, [True, False, False])[0]
            if need_w or need_b:
                _, dweight, dbias = backward(dy.float(), x.float(), shape, mean, rstd, weight, bias,
                                             [False, need_w, need_b])
        return dx, dweight, dbias, None


# ---------------------------------------------------------------------------------------------------
# local attention
# ---------------------------------------------------------------------------------------------------

def overlapping_blocks(x: torch.Tensor, span: int, step: int) -> torch.Tensor:
    """``x.unfold(2, span, step)`` of a (B, H, L, D) ``x`` for ``step <= span <= 2 · step``, with the
    backward of :class:`_OverlappingBlocks`: (B, H, N, D, span), a view."""
    return _OverlappingBlocks.apply(x, span, step)


class _OverlappingBlocks(torch.autograd.Function):
    """``x.unfold(2, span, step)`` for ``step <= span <= 2 · step``, with a backward of two strided copies.

    x: (B, H, L, D) with L = N · step + (span − step); the output (B, H, N, D, span) is a view. Each
    block overlaps only its next neighbour, so the gradient is block i's first ``step`` rows in place
    plus its last ``span − step`` rows added to block i + 1's start; autograd's generic
    ``unfold_backward`` takes ~2.5x longer on the CPU.
    """

    @staticmethod
    def forward(ctx, x, span: int, step: int):
        ctx.shape, ctx.span, ctx.step = x.shape, span, step
        return x.unfold(2, span, step)

    @staticmethod
    def backward(ctx, grad):                                    # (B, H, N, D, span)
        B, H, L, D = ctx.shape
        step, n, tail = ctx.step, grad.shape[2], ctx.span - ctx.step
        gx = grad.new_empty(B, H, n + 1, step, D)
        gx[:, :, :n].copy_(grad[..., :step].transpose(-1, -2))
        gx[:, :, n:].zero_()
        gx[:, :, 1:, :tail].add_(grad[..., step:].transpose(-1, -2))
        return gx.view(B, H, (n + 1) * step, D)[:, :, :L], None, None
