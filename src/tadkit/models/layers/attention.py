"""Transformer blocks with local-window temporal attention and an optional channel-attention branch.

``local_attention`` computes exact windowed attention without a T×T matrix: the sequence
is cut into blocks of ``w`` queries; each block sees the ``w + 2·(w // 2)`` keys that its
windows can reach (a strided view, ``unfold``), and a fixed band mask keeps for query i
only the keys within ``w // 2`` steps. Memory is O(T·w) per head.

``TransformerBlock`` is ActionFormer's pre-LN block: depthwise (optionally strided) masked
convolutions make Q, K, V, then local attention, a 2-layer MLP, and a masked max-pooled skip
path when the block downsamples. ASL's variant mixes a channel attention into the temporal
one, ``(1 − θ)·temporal + θ·channel``; ``theta=0`` turns it off.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ... import cpu_fast_paths
from ...core.errors import ConfigError
from .conv import Conv1d, LayerNorm, MaskedConv1D, MaskedMaxPool1D, apply_mask, is_channels_last


def _masked_softmax(scores: torch.Tensor, allowed: torch.Tensor) -> torch.Tensor:
    """Softmax over the last axis among ``allowed`` entries; rows with none allowed stay finite."""
    return scores.masked_fill(~allowed, torch.finfo(scores.dtype).min).softmax(dim=-1)


def local_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor,
                    window_size: int | None, dropout: nn.Module | None = None) -> torch.Tensor:
    """Scaled dot-product attention of each query with the keys at most ``window_size // 2`` steps away.

    q, k, v: (B, H, T, D); mask: (B, T) bool, True = valid key. Invalid keys get no weight; the
    output at invalid query steps is left for the caller to mask. ``window_size=None`` attends to
    the whole sequence (this builds the T×T matrix). Returns (B, H, T, D).
    """
    B, H, T, D = q.shape
    q = q * D ** -0.5
    if window_size is None:
        scores = q @ k.transpose(-1, -2)  # (B, H, T, T)
        att = _masked_softmax(scores, mask[:, None, None, :])
        return (dropout(att) if dropout is not None else att) @ v
    r = window_size // 2
    n_blocks = math.ceil(T / window_size)
    t_pad = n_blocks * window_size
    span = window_size + 2 * r  # keys a block of queries can reach
    q = F.pad(q, (0, 0, 0, t_pad - T)).view(B, H, n_blocks, window_size, D)  # (B, H, N, w, D)
    k = cpu_fast_paths.overlapping_blocks(F.pad(k, (0, 0, r, t_pad - T + r)), span, window_size)  # (B, H, N, D, span)
    v = cpu_fast_paths.overlapping_blocks(F.pad(v, (0, 0, r, t_pad - T + r)), span, window_size)  # (B, H, N, D, span)
    key_valid = F.pad(mask, (r, t_pad - T + r), value=False).unfold(1, span, window_size)  # (B, N, span)
    # query i of a block sits at key position i + r of the block's span
    offset = torch.arange(span, device=q.device)[None, :] - torch.arange(window_size, device=q.device)[:, None]
    band = (offset >= 0) & (offset <= 2 * r)  # (w, span)
    allowed = band[None, None] & key_valid[:, :, None, :]  # (B, N, w, span)
    scores = q @ k  # (B, H, N, w, span)
    att = _masked_softmax(scores, allowed[:, None])
    if dropout is not None:
        att = dropout(att)
    out = att @ v.transpose(-1, -2)  # (B, H, N, w, D)
    return out.reshape(B, H, t_pad, D)[:, :, :T]


class ChannelAttention(nn.Module):
    """Attention among channels: ``softmax(Q Kᵀ / sqrt(T_valid)) V`` with a C×C matrix per sample.

    q, k, v: (B, C, T) (ASL computes them with the temporal branch's projections); the invalid steps
    of k are zeroed, so they add nothing to the channel similarities (q's then need no zeroing, and an
    output step reads only its own step of v), and the scale uses the number of valid steps, so
    padding does not change the result. Returns (B, C, T), zero at invalid steps.
    """

    def weights(self, q: torch.Tensor, k: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """The (B, C, C) attention ``softmax(Q Kᵀ / sqrt(T_valid))``."""
        k = apply_mask(k, mask)
        n_valid = mask.sum(dim=1).clamp(min=1).to(q.dtype)  # (B,)
        scores = (q @ k.transpose(1, 2)) / n_valid.sqrt()[:, None, None]  # (B, C, C)
        return scores.softmax(dim=-1)

    def forward(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        # the channel branch alone is the blend at θ = 1 (baddbmm ignores its first input at beta 0)
        return apply_mask(self.mix(v, self.weights(q, k, mask), v, 1.0), mask)  # (B, C, T)

    @staticmethod
    def mix(temporal: torch.Tensor, att: torch.Tensor, v: torch.Tensor, theta: float) -> torch.Tensor:
        """``(1 − θ)·temporal + θ·(A V)`` (ASL's Eq. 2) as one batched product accumulated into the temporal
        branch (``baddbmm``: no separate channel-branch tensor, no blend pass); (B, C, T), time-major when
        both inputs are. Not zeroed at invalid steps: for a consumer that masks after a per-step map."""
        if is_channels_last(temporal) and is_channels_last(v):   # (Vᵀ Aᵀ)ᵀ = A V, kept time-major
            return torch.baddbmm(temporal.transpose(1, 2), v.transpose(1, 2), att.transpose(1, 2),
                                 beta=1 - theta, alpha=theta).transpose(1, 2)
        return torch.baddbmm(temporal, att, v, beta=1 - theta, alpha=theta)


class LocalMaskedMHCA(nn.Module):
    """Multi-head local attention whose Q, K, V come from masked depthwise convs (+LN) then 1×1 projections.

    The depthwise convs encode relative position and, with ``stride > 1`` (kernel stride+1),
    downsample queries and keys/values alike, so the output has ``ceil(T / stride)`` steps.
    ``window_size=None`` gives global attention. ``theta > 0`` blends in :class:`ChannelAttention`.
    """

    def __init__(self, dim: int, num_heads: int, window_size: int | None = 19, stride: int = 1,
                 attn_dropout: float = 0.0, proj_dropout: float = 0.0, theta: float = 0.0):
        super().__init__()
        if dim % num_heads != 0:
            raise ConfigError(f"attention: width {dim} is not divisible by num_heads={num_heads}")
        if window_size is not None and (window_size < 1 or window_size % 2 != 1):
            raise ConfigError(f"attention: window_size must be a positive odd number or None, got {window_size}")
        if not 0.0 <= theta <= 1.0:
            raise ConfigError(f"attention: theta must be in [0, 1], got {theta}")
        self.num_heads = num_heads
        self.window_size = window_size
        self.theta = theta
        kernel = stride + 1 if stride > 1 else 3
        self.q_conv, self.k_conv, self.v_conv = (
            MaskedConv1D(dim, dim, kernel, stride=stride, groups=dim, bias=False) for _ in range(3))
        # each norm feeds only a 1×1 projection conv: half precision kept under autocast
        self.q_norm, self.k_norm, self.v_norm = (LayerNorm(dim, half_output=True) for _ in range(3))
        self.q_proj, self.k_proj, self.v_proj = (Conv1d(dim, dim, 1) for _ in range(3))
        self.out_proj = Conv1d(dim, dim, 1)
        self.attn_drop = Dropout(attn_dropout)
        self.proj_drop = Dropout(proj_dropout)
        self.channel_attention = ChannelAttention() if theta > 0 else None

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        B, C, _ = x.shape
        # the input is zeroed once for the three convs; their invalid output steps need no zeroing
        # (invalid keys get no weight, ChannelAttention zeroes its inputs, the output is masked)
        x = apply_mask(x, mask)
        q, out_mask = self.q_conv(x, mask, input_masked=True, mask_output=False)
        k, _ = self.k_conv(x, mask, input_masked=True, mask_output=False)
        v, _ = self.v_conv(x, mask, input_masked=True, mask_output=False)
        q = self.q_proj(self.q_norm(q))  # (B, C, T')
        k = self.k_proj(self.k_norm(k))  # (B, C, T')
        v = self.v_proj(self.v_norm(v))  # (B, C, T')

        def heads(t):  # (B, C, T') -> (B, H, T', C / H)
            return t.view(B, self.num_heads, C // self.num_heads, -1).transpose(2, 3)

        out = local_attention(heads(q), heads(k), heads(v), out_mask, self.window_size, self.attn_drop)
        if is_channels_last(x):  # (B, T', H, C / H) -> a time-major (B, C, T')
            out = out.transpose(1, 2).reshape(B, -1, C).transpose(1, 2)
        else:
            out = out.transpose(2, 3).reshape(B, C, -1)  # (B, C, T')
        if self.channel_attention is not None:   # (1 − θ) f_ta + θ f_ca; out_proj is per step, then masked
            out = ChannelAttention.mix(out, self.channel_attention.weights(q, k, out_mask), v, self.theta)
        return apply_mask(self.proj_drop(self.out_proj(out)), out_mask), out_mask


def dropout(x: torch.Tensor, p: float, training: bool = True) -> torch.Tensor:
    """Element-wise dropout with ``F.dropout``'s contract: zero each element with probability ``p``,
    scale the rest so that the expectation is ``x``.

    On the CPU by :func:`tadkit.cpu_fast_paths.random_bit_dropout` (16 random bits per element; ``p``
    rounded to a multiple of 1/65536, 0.1 becomes 0.100006, the survivors scaled by the inverse of the
    keep probability actually used, so the expectation stays exact). Other devices use ``F.dropout``.
    """
    if not training or p == 0.0:
        return x
    if x.device.type != "cpu" or p >= 1.0:
        return F.dropout(x, p, True)
    return cpu_fast_paths.random_bit_dropout(x, p)


class Dropout(nn.Module):
    """:func:`dropout` as a module (in place of ``nn.Dropout``)."""

    def __init__(self, p: float = 0.5):
        super().__init__()
        if not 0.0 <= p <= 1.0:
            raise ConfigError(f"dropout probability must be in [0, 1], got {p}")
        self.p = float(p)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return dropout(x, self.p, self.training)

    def extra_repr(self) -> str:
        return f"p={self.p}"


def sine_position_encoding(positions: torch.Tensor, dim: int) -> torch.Tensor:
    """Transformer sine/cosine encoding of (T,) positions: (dim, T)."""
    half = dim // 2
    freq = torch.exp(-math.log(10000.0) * torch.arange(half, device=positions.device) / max(half, 1))
    angle = positions.float()[None, :] * freq[:, None]                             # (dim/2, T)
    pe = torch.cat([angle.sin(), angle.cos()], dim=0)
    return F.pad(pe, (0, 0, 0, dim - 2 * half))                                     # (dim, T)


class AffineDropPath(nn.Module):
    """Per-channel learnable scale (initialised small, as in CaiT's LayerScale) followed by drop path.

    The scale, the per-sample drop and the ``1 / keep`` rescaling are one (B, C, 1) factor;
    :meth:`residual` adds the scaled branch to the residual stream in one pass (``torch.addcmul``),
    where ``base + self(x)`` takes four (scale, drop, rescale, sum).
    """

    def __init__(self, dim: int, drop_prob: float = 0.0, init_scale: float = 1e-4):
        super().__init__()
        self.scale = nn.Parameter(torch.full((1, dim, 1), float(init_scale)))
        self.drop_prob = drop_prob

    def factor(self, x: torch.Tensor) -> torch.Tensor:
        """What multiplies the branch ``x`` (B, C, T): (1, C, 1), or (B, C, 1) with the drop drawn."""
        if self.drop_prob == 0.0 or not self.training:
            return self.scale
        keep = 1.0 - self.drop_prob
        sample_mask = torch.rand((x.shape[0],) + (1,) * (x.ndim - 1), dtype=self.scale.dtype, device=x.device) < keep
        return self.scale * (sample_mask.to(self.scale.dtype) / keep)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.factor(x)

    def residual(self, base: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """``base + self(x)``, one pass."""
        return torch.addcmul(base, x, self.factor(x))


def add_branch(path: nn.Module, base: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """``base + path(x)`` for a residual branch's ``path`` (an :class:`AffineDropPath` or an identity)."""
    return path.residual(base, x) if isinstance(path, AffineDropPath) else base + path(x)


class TransformerBlock(nn.Module):
    """Pre-LN transformer block on (B, C, T) with mask; ``stride > 1`` halves (÷stride) the length.

    ``out = skip(x) + attn(LN(x))``, then ``out + MLP(LN(out))``, both masked. ``path_dropout > 0``
    wraps both residual branches in :class:`AffineDropPath` (ActionFormer's choice).
    """

    def __init__(self, dim: int, num_heads: int, window_size: int | None = 19, stride: int = 1,
                 mlp_ratio: float = 4.0, attn_dropout: float = 0.0, proj_dropout: float = 0.0,
                 path_dropout: float = 0.0, theta: float = 0.0):
        super().__init__()
        # each norm feeds only convolutions (the attention's depthwise convs, the MLP's first layer):
        # half precision kept under autocast
        self.ln1 = LayerNorm(dim, half_output=True)
        self.ln2 = LayerNorm(dim, half_output=True)
        self.attn = LocalMaskedMHCA(dim, num_heads, window_size, stride, attn_dropout, proj_dropout, theta)
        self.skip = MaskedMaxPool1D(stride)
        hidden = int(round(mlp_ratio * dim))
        self.mlp = nn.Sequential(Conv1d(dim, hidden, 1), nn.GELU(), Dropout(proj_dropout),
                                 Conv1d(hidden, dim, 1), Dropout(proj_dropout))
        if path_dropout > 0:
            self.drop_path_attn = AffineDropPath(dim, path_dropout)
            self.drop_path_mlp = AffineDropPath(dim, path_dropout)
        else:
            self.drop_path_attn = self.drop_path_mlp = nn.Identity()

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        attn, out_mask = self.attn(self.ln1(x), mask)
        skip, _ = self.skip(x, mask)
        out = add_branch(self.drop_path_attn, skip, attn)  # (B, C, T')
        out = add_branch(self.drop_path_mlp, out, apply_mask(self.mlp(self.ln2(out)), out_mask))
        return out, out_mask
