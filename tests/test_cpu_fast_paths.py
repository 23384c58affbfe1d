"""tadkit.cpu_fast_paths: what sits there, and that each fast path gives the plain route's result."""
import ast
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from tadkit import cpu_fast_paths
from tadkit.models.layers import conv_inputs, is_channels_last, to_channels_last


def test_the_module_imports_only_torch_numpy_and_the_standard_library():
    tree = ast.parse(Path(cpu_fast_paths.__file__).read_text())
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, "no relative (tadkit) imports"
            names.add(node.module.split(".")[0])
    allowed = {"torch", "numpy", "__future__"}
    assert names - allowed <= set(sys.stdlib_module_names), names


def test_random_words_follow_the_global_seed_and_use_every_bit():
    from tadkit.cpu_fast_paths import random_words
    torch.manual_seed(11)
    a, b = random_words(50_000), random_words(50_000)
    torch.manual_seed(11)
    assert torch.equal(a, random_words(50_000)) and not torch.equal(a, b)   # seeded; a new key each call
    assert a.dtype == torch.int64 and a.shape == (50_000,)
    bits = ((a[:, None] >> torch.arange(64)) & 1).double()                 # (n, 64) every bit position
    n = a.numel()
    assert (bits.mean(0) - 0.5).abs().max().item() < 5 * (0.25 / n) ** 0.5    # each bit fair (5 sigma)
    assert (a < 0).any() and (a > 0).any()                                  # the sign bit is random too


def _layouts():
    x = torch.randn(2, 5, 7)
    return [x, to_channels_last(x), x[:, :1], x[:, :, :1], to_channels_last(x)[:, :, ::2], x.transpose(1, 2),
            torch.randn(5, 7), torch.randn(1, 5, 7).transpose(1, 2).contiguous().transpose(1, 2)]


def test_private_layout_helpers_agree_with_the_layers_ones():
    for x in _layouts():
        assert cpu_fast_paths._is_time_major(x) == is_channels_last(x)
        if x.ndim == 3:
            a, b = cpu_fast_paths._to_time_major(x), to_channels_last(x)
            assert torch.equal(a, b) and a.stride() == b.stride()
    xs = [torch.randn(3), torch.randn(3).bfloat16(), torch.randn(3, dtype=torch.float64)]
    for enabled in (False, True):
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=enabled):
            for a, b in zip(cpu_fast_paths._as_autocast_would(xs), conv_inputs(xs)):
                assert a.dtype == b.dtype and torch.equal(a, b)


def test_nothing_to_mask_only_for_an_all_valid_boolean_mask():
    full = torch.ones(2, 6, dtype=torch.bool)
    assert cpu_fast_paths.nothing_to_mask(full)
    partial = full.clone()
    partial[1, 4:] = False
    assert not cpu_fast_paths.nothing_to_mask(partial)
    assert not cpu_fast_paths.nothing_to_mask(full.float())                  # a float mask is always applied


@pytest.mark.parametrize("k, stride, groups", [(1, 1, 1), (3, 2, 6), (5, 4, 6)])
def test_time_major_conv1d_special_cases_equal_conv1d(k, stride, groups):
    torch.manual_seed(0)
    x = torch.randn(2, 6, 11, dtype=torch.float64)
    w = torch.randn(6, 6 // groups, k, dtype=torch.float64, requires_grad=True)
    b = torch.randn(6, dtype=torch.float64, requires_grad=True)
    xl = to_channels_last(x).requires_grad_()
    out = cpu_fast_paths.time_major_conv1d(xl, w, b, stride, k // 2, 1, groups)
    assert out is not None and is_channels_last(out)
    g = torch.randn_like(out)
    out.backward(g)
    got = [xl.grad.clone(), w.grad.clone(), b.grad.clone()]
    w.grad = b.grad = None
    xr = x.clone().requires_grad_()
    ref = F.conv1d(xr, w, b, stride, k // 2, 1, groups)                       # the plain formula
    ref.backward(g)
    torch.testing.assert_close(out, ref)
    torch.testing.assert_close(got, [xr.grad, w.grad, b.grad])


def test_time_major_conv1d_leaves_the_other_cases_to_the_caller():
    xl = to_channels_last(torch.randn(2, 6, 11))
    for k, stride, groups in [(3, 1, 1), (3, 1, 6), (3, 2, 2), (1, 2, 1)]:
        w = torch.randn(6, 6 // groups, k)
        assert cpu_fast_paths.time_major_conv1d(xl, w, None, stride, k // 2, 1, groups) is None


def test_overlapping_blocks_equal_unfold_with_its_gradient():
    torch.manual_seed(0)
    for span, step in [(5, 3), (6, 3), (3, 3)]:
        n = 4
        x = torch.randn(2, 3, n * step + span - step, 4, dtype=torch.float64)
        xa, xb = x.clone().requires_grad_(), x.clone().requires_grad_()
        out = cpu_fast_paths.overlapping_blocks(xa, span, step)
        ref = xb.unfold(2, span, step)
        assert torch.equal(out, ref)
        g = torch.randn_like(ref)
        out.backward(g)
        ref.backward(g)
        torch.testing.assert_close(xa.grad, xb.grad)
