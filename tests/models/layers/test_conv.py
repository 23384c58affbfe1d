import pytest
import torch
import torch.nn.functional as F

from tadkit.core.errors import ConfigError
from tadkit.models.layers import ConvStack, LayerNorm, conv_inputs, MaskedConv1D, MaskedMaxPool1D, model_inputs
from tests.models.helpers import fill_padding, prefix_mask


@pytest.mark.parametrize("kernel,stride,groups", [(3, 1, 1), (3, 2, 1), (5, 2, 2), (1, 1, 2), (5, 4, 1)])
def test_masked_conv_equals_unpadded_conv_per_sample(kernel, stride, groups):
    torch.manual_seed(0)
    conv = MaskedConv1D(6, 4, kernel, stride=stride, groups=groups)
    torch.nn.init.normal_(conv.conv.bias)
    lengths, T = [13, 7, 1], 16
    mask = prefix_mask(lengths, T)
    x = fill_padding(torch.randn(3, 6, T), mask)
    out, out_mask = conv(x, mask)
    assert out.shape[-1] == len(range(0, T, stride)) and torch.equal(out_mask, mask[:, ::stride])
    for b, n in enumerate(lengths):
        ref = conv.conv(x[b:b + 1, :, :n])  # the unpadded sample, the conv's own zero padding
        assert torch.allclose(out[b, :, : ref.shape[-1]], ref[0], atol=1e-5)
        assert out_mask[b].sum() == ref.shape[-1]
        assert (out[b, :, ref.shape[-1]:] == 0).all()


def test_masked_conv_rejects_even_kernel():
    with pytest.raises(ConfigError, match="odd"):
        MaskedConv1D(2, 2, 4)


@pytest.mark.parametrize("stride", [1, 2, 4])
def test_masked_max_pool_ignores_invalid_steps(stride):
    torch.manual_seed(1)
    lengths, T = [10, 5, 3], 12
    mask = prefix_mask(lengths, T)
    x = fill_padding(torch.randn(3, 4, T), mask, value=1e6).requires_grad_()  # padding would win every max if seen
    out, out_mask = MaskedMaxPool1D(stride)(x, mask)
    g = torch.randn_like(out)
    (out * g).sum().backward()
    for b, n in enumerate(lengths):
        sample = x.detach()[b:b + 1, :, :n].clone().requires_grad_()
        ref = sample if stride == 1 else F.max_pool1d(sample, stride + 1, stride, padding=(stride + 1) // 2)
        assert torch.equal(out[b, :, : ref.shape[-1]], ref[0])
        assert (out[b, :, ref.shape[-1]:] == 0).all() and out_mask[b].sum() == ref.shape[-1]
        (ref * g[b:b + 1, :, : ref.shape[-1]]).sum().backward()
        assert torch.equal(x.grad[b, :, :n], sample.grad[0])   # the gradient reaches the valid argmax only
        assert (x.grad[b, :, n:] == 0).all()


def test_layer_norm_normalises_channels_per_step():
    torch.manual_seed(2)
    ln = LayerNorm(5)
    torch.nn.init.normal_(ln.weight)
    torch.nn.init.normal_(ln.bias)
    x = torch.randn(2, 5, 7) * 3 + 1
    ref = torch.nn.functional.layer_norm(x.permute(0, 2, 1), (5,), ln.weight, ln.bias).permute(0, 2, 1)
    assert torch.allclose(ln(x), ref, atol=1e-5)
    assert LayerNorm(5).double()(x.double()).dtype == torch.float64            # double stays double
    assert LayerNorm(5)(x.bfloat16()).dtype == torch.float32                   # half types are normalised in float32
    plain = LayerNorm(5, affine=False)(x)
    assert torch.allclose(plain.mean(1), torch.zeros(2, 7), atol=1e-5)
    assert torch.allclose(plain.var(1, unbiased=False), torch.ones(2, 7), atol=1e-3)


def test_layer_norm_backward_equals_autograd_of_the_formula():
    torch.manual_seed(4)
    x = (torch.randn(3, 6, 5, dtype=torch.float64) * 2 + 0.5).requires_grad_()
    w = torch.randn(6, dtype=torch.float64, requires_grad=True)
    b = torch.randn(6, dtype=torch.float64, requires_grad=True)
    ln = LayerNorm(6).double()
    ln.weight, ln.bias = torch.nn.Parameter(w.detach().clone()), torch.nn.Parameter(b.detach().clone())
    g = torch.randn(3, 6, 5, dtype=torch.float64)
    ln(x).backward(g)
    ours = (x.grad.clone(), ln.weight.grad.clone(), ln.bias.grad.clone())
    x.grad = None
    centred = x - x.mean(1, keepdim=True)                                      # the plain formula, by autograd
    ref = centred / (centred.square().mean(1, keepdim=True) + 1e-5).sqrt() * w[:, None] + b[:, None]
    ref.backward(g)
    for a, r in zip(ours, (x.grad, w.grad, b.grad)):
        assert torch.allclose(a, r, atol=1e-10)
    assert torch.autograd.gradcheck(lambda t: LayerNorm(6, affine=False).double()(t), (x.detach().requires_grad_(),))


def test_layer_norm_half_output_keeps_the_input_dtype_with_the_same_rounding():
    torch.manual_seed(5)
    x = torch.randn(2, 8, 9).bfloat16()
    wide, half = LayerNorm(8), LayerNorm(8, half_output=True)
    assert wide(x).dtype == torch.float32 and half(x).dtype == torch.bfloat16
    assert torch.equal(half(x), wide(x).bfloat16())          # what a conv under autocast would see either way
    assert half(x.float()).dtype == torch.float32            # float32 in, float32 out
    with torch.autocast("cpu", dtype=torch.bfloat16):        # ... unless a conv would cast it: then its dtype
        assert half(x.float()).dtype == torch.bfloat16 and wide(x.float()).dtype == torch.float32
        assert torch.equal(half(x.float()), wide(x.float()).bfloat16())
    stack = ConvStack(8, 8, num_layers=3)                     # all but the last layer feed a conv
    assert [layer.norm.half_output for layer in stack.layers] == [True, True, False]
    assert all(layer.norm.half_output for layer in ConvStack(8, 8, num_layers=2, half_output=True).layers)


def test_conv_stack_keeps_invalid_steps_zero():
    torch.manual_seed(3)
    mask = prefix_mask([6, 2], 8)
    x = fill_padding(torch.randn(2, 3, 8), mask)
    out, out_mask = ConvStack(3, 5, num_layers=2)(x, mask)
    assert out.shape == (2, 5, 8) and torch.equal(out_mask, mask)
    assert (out.masked_select(~mask[:, None, :].expand_as(out)) == 0).all()
    assert (out >= 0).all() and out[mask[:, None, :].expand_as(out)].abs().sum() > 0


def test_model_inputs_pads_zeroes_and_checks():
    feats = torch.arange(2 * 3 * 4, dtype=torch.float64).reshape(2, 3, 4) + 1   # (B, C, T), no zeros
    masks = torch.tensor([[1, 1, 1, 1], [1, 1, 0, 0]], dtype=torch.bool)
    x, m = model_inputs({"feats": feats, "masks": masks}, 3, torch.device("cpu"), length=6)
    assert x.dtype == torch.float32 and x.shape == (2, 3, 6) and m.shape == (2, 6)
    assert m.tolist() == [[True] * 4 + [False] * 2, [True] * 2 + [False] * 4]
    assert torch.equal(x[0, :, :4], feats[0].float()) and torch.equal(x[1, :, :2], feats[1, :, :2].float())
    assert (x[0, :, 4:] == 0).all() and (x[1, :, 2:] == 0).all()        # invalid steps and padding zeroed
    x, m = model_inputs({"feats": feats, "masks": masks}, 3, torch.device("cpu"))
    assert x.shape == (2, 3, 4)
    with pytest.raises(ConfigError, match="input_dim=5"):
        model_inputs({"feats": feats, "masks": masks}, 5, torch.device("cpu"))
    with pytest.raises(ConfigError, match="list"):
        model_inputs({"feats": [feats], "masks": masks}, 3, torch.device("cpu"))
    with pytest.raises(ValueError, match="masks of shape"):
        model_inputs({"feats": feats, "masks": masks[:, :3]}, 3, torch.device("cpu"))


def test_masked_conv_skips_the_zeroing_passes_only_when_told():
    """``input_masked`` trusts the caller's zeros (padding is then read); ``mask_output=False`` leaves the
    invalid output steps unzeroed; the valid steps are the same whenever the input's padding is zero."""
    torch.manual_seed(4)
    conv = MaskedConv1D(3, 2, 3)
    torch.nn.init.normal_(conv.conv.bias)
    mask = prefix_mask([5, 8], 8)
    clean = fill_padding(torch.randn(2, 3, 8), mask, value=0.0)
    dirty = fill_padding(clean.clone(), mask, value=7.0)
    ref, _ = conv(dirty, mask)
    assert torch.equal(conv(clean, mask, input_masked=True)[0], ref)
    assert not torch.allclose(conv(dirty, mask, input_masked=True)[0], ref)   # padding read when trusted
    raw, _ = conv(clean, mask, mask_output=False)
    assert torch.equal(raw * mask[:, None], ref) and (raw[0, :, 5:] != 0).any()


def test_conv_inputs_cast_once_as_autocast_would():
    torch.manual_seed(8)
    x, conv = torch.randn(2, 4, 6), torch.nn.Conv1d(4, 3, 1)
    assert conv_inputs([x])[0] is x                                   # no autocast: unchanged
    with torch.autocast("cpu", dtype=torch.bfloat16):
        (cast,) = conv_inputs([x])
        assert cast.dtype == torch.bfloat16 and torch.equal(cast, x.bfloat16())
        assert torch.equal(conv(cast), conv(x))                       # the conv sees the same input either way


def test_apply_mask_zeroes_invalid_steps_and_passes_an_all_valid_mask_through():
    from tadkit.models.layers.conv import apply_mask
    x = torch.randn(2, 3, 6, requires_grad=True)
    mask = torch.arange(6)[None] < torch.tensor([6, 4])[:, None]
    out = apply_mask(x, mask)
    want = torch.where(mask[:, None, :], x, torch.zeros(()))                 # by hand
    assert torch.equal(out, want)
    out.sum().backward()
    assert torch.equal(x.grad, mask[:, None, :].expand_as(x).float())       # no gradient to an invalid step
    full = torch.ones(2, 6, dtype=torch.bool)
    assert apply_mask(x, full) is x                                          # nothing to zero: no copy
