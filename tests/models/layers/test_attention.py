import math

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from tadkit.core.errors import ConfigError
from tadkit.models.layers import AffineDropPath, ChannelAttention, TransformerBlock, local_attention
from tests.models.helpers import fill_padding, prefix_mask


def brute_force_attention(q, k, v, mask, window):
    """Full T×T attention with an explicit band |i − j| <= window // 2 and key mask."""
    T = q.shape[2]
    i = torch.arange(T)
    allowed = torch.ones(T, T, dtype=torch.bool) if window is None else (i[:, None] - i[None, :]).abs() <= window // 2
    allowed = allowed[None, None] & mask[:, None, None, :]  # (B, 1, T, T)
    allowed = allowed | ~mask[:, None, :, None]  # rows of invalid queries (ignored) stay finite
    scores = (q @ k.transpose(-1, -2)) / math.sqrt(q.shape[-1])
    scores = scores.masked_fill(~allowed, float("-inf"))
    return torch.softmax(scores, dim=-1) @ v


@pytest.mark.parametrize("T,window", [(1, 3), (7, 3), (20, 5), (23, 19), (40, 9), (12, None)])
def test_local_attention_equals_banded_full_attention(T, window):
    torch.manual_seed(T)
    lengths = [T, max(1, T // 2), max(1, T - 3)]
    mask = prefix_mask(lengths, T)
    q, k, v = (torch.randn(3, 2, T, 4, dtype=torch.float64) for _ in range(3))
    out = local_attention(q, k, v, mask, window)
    ref = brute_force_attention(q, k, v, mask, window)
    assert out.shape == (3, 2, T, 4)
    valid = mask[:, None, :, None].expand_as(out)
    assert torch.allclose(out[valid], ref[valid], atol=1e-10)
    assert torch.isfinite(out).all()


def test_local_attention_gradients_match_brute_force():
    torch.manual_seed(0)
    T, window = 17, 5
    mask = prefix_mask([17, 11], T)
    leaves = [torch.randn(2, 1, T, 3, dtype=torch.float64, requires_grad=True) for _ in range(3)]
    valid = mask[:, None, :, None].to(torch.float64)
    (local_attention(*leaves, mask, window) * valid).square().sum().backward()
    grads = [t.grad.clone() for t in leaves]
    for t in leaves:
        t.grad = None
    (brute_force_attention(*leaves, mask, window) * valid).square().sum().backward()
    for g, t in zip(grads, leaves):
        assert torch.allclose(g, t.grad, atol=1e-10)


class _LargestTensor(TorchDispatchMode):
    """Records the largest number of elements of any tensor an op produces."""

    def __init__(self):
        super().__init__()
        self.largest = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in out if isinstance(out, (tuple, list)) else (out,):
            if isinstance(t, torch.Tensor):
                self.largest = max(self.largest, t.numel())
        return out


def test_local_attention_memory_is_linear_in_length():
    T, window, D = 4000, 9, 2
    q, k, v = (torch.randn(1, 1, T, D) for _ in range(3))
    mask = torch.ones(1, T, dtype=torch.bool)
    with _LargestTensor() as probe:
        local_attention(q, k, v, mask, window)
    assert probe.largest <= 3 * window * T * D  # a T×T score matrix would hold 16e6 elements
    with _LargestTensor() as probe:
        local_attention(q, k, v, mask, None)
    assert probe.largest >= T * T  # the global variant really is quadratic: the probe sees it


@pytest.mark.parametrize("time_major", [False, True])
def test_channel_attention_equals_per_sample_formula(time_major):
    from tadkit.models.layers.conv import is_channels_last, to_channels_last
    torch.manual_seed(1)
    lengths, T, C = [9, 4], 12, 5
    mask = prefix_mask(lengths, T)
    q, k, v = (fill_padding(torch.randn(2, C, T, dtype=torch.float64), mask) for _ in range(3))
    if time_major:
        q, k, v = (to_channels_last(t) for t in (q, k, v))
    out = ChannelAttention()(q, k, v, mask)
    assert is_channels_last(out) == time_major
    for b, n in enumerate(lengths):
        qb, kb, vb = q[b, :, :n], k[b, :, :n], v[b, :, :n]
        ref = torch.softmax(qb @ kb.T / math.sqrt(n), dim=-1) @ vb  # (C, C) attention over channels
        assert torch.allclose(out[b, :, :n], ref, atol=1e-12)
        assert (out[b, :, n:] == 0).all()


@pytest.mark.parametrize("stride,theta", [(1, 0.0), (2, 0.0), (2, 0.2), (1, 0.5)])
def test_transformer_block_ignores_padding(stride, theta):
    """A sample alone gives the same output as inside a longer, garbage-padded batch."""
    torch.manual_seed(2)
    block = TransformerBlock(8, 2, window_size=5, stride=stride, path_dropout=0.1, theta=theta).eval()
    T, n = 24, 13
    mask = prefix_mask([T, n], T)
    x = fill_padding(torch.randn(2, 8, T), mask)
    out, out_mask = block(x, mask)
    alone, alone_mask = block(x[1:, :, :n], mask[1:, :n])
    steps = alone.shape[-1]
    assert out.shape[-1] == len(range(0, T, stride)) and out_mask[1].sum() == steps
    assert torch.allclose(out[1, :, :steps], alone[0], atol=1e-5)
    assert (out[1, :, steps:] == 0).all()


def test_theta_mixes_in_channel_attention():
    torch.manual_seed(3)
    x = torch.randn(1, 8, 10)
    mask = torch.ones(1, 10, dtype=torch.bool)
    plain = TransformerBlock(8, 2, window_size=3, theta=0.0)
    mixed = TransformerBlock(8, 2, window_size=3, theta=0.3)
    mixed.load_state_dict(plain.state_dict())  # the channel branch has no parameters of its own
    assert plain.attn.channel_attention is None
    assert not torch.allclose(plain(x, mask)[0], mixed(x, mask)[0])


@pytest.mark.parametrize("time_major", [False, True])
def test_mixed_attention_is_the_theta_blend_of_temporal_and_channel_attention(time_major):
    """What reaches the output projection at valid steps is (1 − θ)·temporal + θ·ChannelAttention(Q, K, V),
    each computed by the θ = 0 block and ChannelAttention on their own (Eq. 2)."""
    from tadkit.models.layers.conv import to_channels_last
    torch.manual_seed(4)
    theta, T = 0.3, 11
    mask = prefix_mask([T, 7], T)
    x = fill_padding(torch.randn(2, 8, T, dtype=torch.float64), mask)
    if time_major:
        x = to_channels_last(x)
    plain = TransformerBlock(8, 2, window_size=3, theta=0.0).double().eval()
    mixed = TransformerBlock(8, 2, window_size=3, theta=theta).double().eval()
    mixed.load_state_dict(plain.state_dict())
    seen = {}

    def keep(name, output=True):
        return lambda mod, inp, out: seen.__setitem__(name, out if output else inp[0])
    for name, mod in (("q", plain.attn.q_proj), ("k", plain.attn.k_proj), ("v", plain.attn.v_proj)):
        mod.register_forward_hook(keep(name))
    plain.attn.out_proj.register_forward_hook(keep("temporal", output=False))
    mixed.attn.out_proj.register_forward_hook(keep("mixed", output=False))
    plain(x, mask)
    mixed(x, mask)
    channel = ChannelAttention()(seen["q"], seen["k"], seen["v"], mask)
    want = (1 - theta) * seen["temporal"] + theta * channel
    valid = mask[:, None, :].expand_as(want)
    assert torch.allclose(seen["mixed"][valid], want[valid], atol=1e-12)
    assert not torch.allclose(seen["temporal"][valid], want[valid])


def test_attention_arguments_are_checked():
    with pytest.raises(ConfigError, match="num_heads"):
        TransformerBlock(10, 3)
    with pytest.raises(ConfigError, match="window_size"):
        TransformerBlock(8, 2, window_size=4)
    with pytest.raises(ConfigError, match="theta"):
        TransformerBlock(8, 2, theta=1.5)


def test_dropout_zeroes_with_probability_p_and_keeps_the_expectation():
    from tadkit.models.layers import Dropout, dropout
    torch.manual_seed(6)
    x = torch.rand(1_000_003) + 0.5                         # not a multiple of 4 elements
    p = 0.1
    out = dropout(x, p, True)
    zero = out == 0
    k = round(p * 65536)
    q = k / 65536                                           # the drop probability actually used
    assert abs(zero.double().mean().item() - q) < 5 * (q * (1 - q) / x.numel()) ** 0.5   # 5 sigma
    assert torch.allclose(out[~zero], x[~zero] * 65536 / (65536 - k))                     # survivors rescaled
    # the decisions of neighbouring elements are not correlated (16-bit pieces of one 64-bit draw)
    pair = zero[:-1:2] & zero[1::2]
    assert abs(pair.double().mean().item() - q * q) < 5 * (q * q / pair.numel()) ** 0.5
    # the gradient is the same mask and scale
    xg = x[:1000].clone().requires_grad_()
    y = dropout(xg, 0.3, True)
    y.sum().backward()
    assert torch.allclose(xg.grad, y.detach() / xg.detach())
    # one seed, one mask; eval mode and p = 0 are the identity, p = 1 drops everything
    torch.manual_seed(7)
    a = dropout(x, 0.5, True)
    torch.manual_seed(7)
    assert torch.equal(a, dropout(x, 0.5, True))
    module = Dropout(0.5).eval()
    assert module(x) is x and dropout(x, 0.0, True) is x and (dropout(x, 1.0, True) == 0).all()
    with pytest.raises(ConfigError):
        Dropout(1.5)


def test_affine_drop_path_residual_is_the_sum_with_the_same_draws():
    path = AffineDropPath(4, drop_prob=0.5, init_scale=0.3).train()
    base, x = torch.randn(8, 4, 5), torch.randn(8, 4, 5)
    torch.manual_seed(3)
    fused = path.residual(base, x)
    torch.manual_seed(3)
    keep = torch.rand(8, 1, 1) < 0.5                        # the per-sample draws, by hand
    torch.testing.assert_close(fused, base + x * 0.3 * keep / 0.5)
    assert 0 < int(keep.sum()) < 8                            # both outcomes occur at this seed
    torch.manual_seed(3)
    torch.testing.assert_close(path(x), x * 0.3 * keep / 0.5)
    path.eval()
    torch.testing.assert_close(path.residual(base, x), base + 0.3 * x)
