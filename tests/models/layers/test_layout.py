"""Time-major (B, C, T) tensors, the layout the one-stage blocks carry under bfloat16 on the CPU:
each block must give what it gives on the usual layout, and keep the layout."""
import torch
import torch.nn.functional as F

from tadkit.models.layers import (Conv1d, LayerNorm, MaskedMaxPool1D, TransformerBlock, dropout, is_channels_last,
                                  prefers_channels_last, to_channels_last)


def test_to_channels_last_keeps_values_and_changes_strides():
    x = torch.randn(2, 5, 7)
    y = to_channels_last(x)
    assert torch.equal(x, y) and not is_channels_last(x) and is_channels_last(y)
    assert y.stride() == (35, 1, 5)


def test_prefers_channels_last_only_under_cpu_bfloat16_autocast():
    x = torch.zeros(1, 2, 3)
    assert not prefers_channels_last(x)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert prefers_channels_last(x)
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=False):
        assert not prefers_channels_last(x)


def test_conv1d_time_major_equals_conv1d():
    torch.manual_seed(0)
    for k, stride, groups in [(1, 1, 1), (3, 1, 1), (3, 2, 6), (5, 4, 6), (3, 2, 2), (5, 1, 2)]:
        conv = Conv1d(6, 6, k, stride=stride, padding=k // 2, groups=groups)
        x = torch.randn(2, 6, 11, dtype=torch.float64)
        conv = conv.double()
        xl = to_channels_last(x).requires_grad_()
        out = conv(xl)
        ref = F.conv1d(x, conv.weight, conv.bias, stride, k // 2, 1, groups)   # the plain formula
        assert is_channels_last(out)
        torch.testing.assert_close(out, ref)
        out.square().sum().backward()
        grads = [conv.weight.grad.clone(), conv.bias.grad.clone()]
        conv.zero_grad()
        xr = x.clone().requires_grad_()
        F.conv1d(xr, conv.weight, conv.bias, stride, k // 2, 1, groups).square().sum().backward()
        torch.testing.assert_close(xl.grad, xr.grad)
        torch.testing.assert_close(grads, [conv.weight.grad, conv.bias.grad])


def test_max_pool_time_major_equals_usual_layout():
    torch.manual_seed(0)
    x = torch.randn(3, 4, 13)
    mask = torch.arange(13)[None] < torch.tensor([13, 9, 1])[:, None]
    pool = MaskedMaxPool1D(2)
    ref, ref_mask = pool(x, mask)
    out, out_mask = pool(to_channels_last(x), mask)
    assert is_channels_last(out) and torch.equal(out_mask, ref_mask)
    torch.testing.assert_close(out, ref)
    assert torch.isfinite(out).all()


def test_layer_norm_time_major_equals_the_formula_in_float64():
    torch.manual_seed(0)
    x = torch.randn(2, 48, 37, dtype=torch.float64) * 3 + 1
    g = torch.randn(2, 48, 37, dtype=torch.float64)
    w, b = torch.rand(48, dtype=torch.float64) + 0.5, torch.randn(48, dtype=torch.float64)
    xr = x.clone().requires_grad_()
    wr, br = w.clone().requires_grad_(), b.clone().requires_grad_()
    centred = xr - xr.mean(1, keepdim=True)                                      # the plain formula
    ref = centred / (centred.square().mean(1, keepdim=True) + 1e-5).sqrt() * wr[:, None] + br[:, None]
    ref.backward(g)
    for dtype, half_output, tol in [(torch.float32, False, 1e-5), (torch.bfloat16, True, 2e-2),
                                    (torch.bfloat16, False, 2e-2)]:
        ln = LayerNorm(48, half_output=half_output)
        with torch.no_grad():
            ln.weight.copy_(w), ln.bias.copy_(b)
        xl = to_channels_last(x.to(dtype)).requires_grad_()
        out = ln(xl)
        assert is_channels_last(out)
        assert out.dtype == (dtype if half_output else torch.float32)
        out.backward(g.to(out.dtype))
        scale = ref.abs().max().item()
        assert (out.double() - ref).abs().max().item() < tol * scale
        assert (xl.grad.double() - xr.grad).abs().max().item() < tol * xr.grad.abs().max().item()
        # the parameter gradients are sums over every step: accumulated in float32 whatever the input
        for got, want in ((ln.weight.grad, wr.grad), (ln.bias.grad, br.grad)):
            assert (got.double() - want).abs().max().item() < 2e-3 * want.abs().max().item()


def test_dropout_mask_follows_the_layout():
    torch.manual_seed(0)
    x = to_channels_last(torch.ones(2, 64, 300))
    y = dropout(x, 0.25)
    assert is_channels_last(y)
    dropped = (y == 0).float().mean().item()
    assert abs(dropped - 0.25) < 0.01
    kept = y[y != 0]
    torch.testing.assert_close(kept, torch.full_like(kept, 65536 / (65536 - round(0.25 * 65536))))


def test_transformer_block_time_major_equals_usual_layout():
    torch.manual_seed(0)
    for stride, theta in [(1, 0.0), (2, 0.5)]:
        blk = TransformerBlock(16, 4, 5, stride, theta=theta).double()
        x = torch.randn(2, 16, 23, dtype=torch.float64)
        mask = torch.arange(23)[None] < torch.tensor([23, 15])[:, None]
        x = x * mask[:, None]
        xr, xl = x.clone().requires_grad_(), to_channels_last(x).requires_grad_()
        ref, ref_mask = blk(xr, mask)
        out, out_mask = blk(xl, mask)
        assert is_channels_last(out) and torch.equal(out_mask, ref_mask)
        torch.testing.assert_close(out, ref)
        w = torch.randn_like(ref)
        (ref * w).sum().backward()
        (out * w).sum().backward()
        torch.testing.assert_close(xl.grad, xr.grad)


def test_layer_norm_without_affine_time_major_bfloat16_is_the_plain_normalisation():
    torch.manual_seed(1)
    x = torch.randn(2, 32, 19, dtype=torch.float64) * 2 - 1
    centred = x - x.mean(1, keepdim=True)
    ref = centred / (centred.square().mean(1, keepdim=True) + 1e-5).sqrt()
    ln = LayerNorm(32, affine=False, half_output=True)
    xl = to_channels_last(x.to(torch.bfloat16)).requires_grad_()
    out = ln(xl)
    assert out.dtype == torch.bfloat16 and is_channels_last(out)
    assert (out.double() - ref).abs().max().item() < 2e-2 * ref.abs().max().item()
    out.float().sum().backward()          # d/dx of the sum of a normalisation is ~0 (the mean is removed)
    assert xl.grad.abs().max().item() < 5e-2
