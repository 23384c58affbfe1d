"""Backbone, necks, point generator and heads."""
import math

import pytest
import torch
import torch.nn.functional as F

from tadkit.core.errors import ConfigError
from tadkit.models.layers import (ClassificationHead, ConvTransformerBackbone, FPNNeck, PointGenerator,
                                  RegressionHead, build_neck, is_channels_last, pack_levels, to_channels_last,
                                  unpack_levels)
from tests.models.helpers import fill_padding, prefix_mask


def tiny_backbone(**kw):
    args = dict(input_dim=6, embed_dim=8, num_heads=2, embed_layers=2, stem_layers=1, branch_layers=3,
                window_size=[5, 5, 3, 3])
    args.update(kw)
    return ConvTransformerBackbone(**args).eval()


def test_backbone_pyramid_lengths_and_padding_invariance():
    torch.manual_seed(0)
    backbone = tiny_backbone()
    T, n = 32, 19
    mask = prefix_mask([T, n], T)
    x = fill_padding(torch.randn(2, 6, T), mask)
    feats, masks = backbone(x, mask)
    alone, alone_masks = backbone(x[1:, :, :n], mask[1:, :n])
    assert [f.shape[-1] for f in feats] == [32, 16, 8, 4]
    assert [int(m[1].sum()) for m in masks] == [math.ceil(n / 2 ** level) for level in range(4)]
    for f, m, a in zip(feats, masks, alone):
        steps = a.shape[-1]
        assert torch.allclose(f[1, :, :steps], a[0], atol=1e-5)
        assert (f[~m[:, None, :].expand_as(f)] == 0).all()


def test_backbone_checks_per_level_windows():
    with pytest.raises(ConfigError, match="window_size has 2 entries"):
        tiny_backbone(window_size=[5, 5])


def test_fpn_neck_matches_explicit_top_down_sum():
    torch.manual_seed(1)
    neck = FPNNeck([4, 4, 4], 3, with_ln=False, scale_factor=2)
    lengths = [8, 4, 2]
    masks = [prefix_mask([8, 5], 8), prefix_mask([4, 3], 4), prefix_mask([2, 2], 2)]
    feats = [fill_padding(torch.randn(2, 4, t), m) for t, m in zip(lengths, masks)]
    out, out_masks = neck(feats, masks)
    # reference: lateral 1x1 convs, then P'_l[t] = lateral_l[t] + P'_{l+1}[t // 2] on valid steps
    lat = [torch.einsum("oc,bct->bot", conv.conv.weight[..., 0], f * m[:, None]) for conv, f, m in
           zip(neck.laterals, feats, masks)]
    merged = [None] * 3
    merged[2] = lat[2]
    for level in (1, 0):
        up = torch.stack([merged[level + 1][..., t // 2] for t in range(lengths[level])], dim=-1)
        merged[level] = lat[level] + up * masks[level][:, None]
    for level in range(3):
        conv = neck.outputs[level].conv
        ref = F.conv1d(merged[level] * masks[level][:, None], conv.weight, padding=1, groups=3)
        assert torch.allclose(out[level], ref * masks[level][:, None], atol=1e-5)
        assert out_masks[level] is masks[level]


def test_identity_neck_needs_matching_width():
    with pytest.raises(ConfigError, match="fpn_dim"):
        build_neck("identity", [8, 8], 16)
    with pytest.raises(ConfigError, match="unknown neck"):
        build_neck("bifpn", [8, 8], 8)


def test_point_generator_hand_worked():
    gen = PointGenerator([1, 2, 4], [(0, 2), (2, 4), (4, math.inf)])
    points = gen([4, 2, 1])
    expected = torch.tensor([[0, 0, 2, 1], [1, 0, 2, 1], [2, 0, 2, 1], [3, 0, 2, 1],
                             [0, 2, 4, 2], [2, 2, 4, 2],
                             [0, 4, math.inf, 4]], dtype=torch.float32)
    assert torch.equal(points, expected)
    assert PointGenerator.level_strides(2, 4) == [1, 2, 4, 8]


def test_point_generator_checks_ranges():
    with pytest.raises(ConfigError, match="2 regression ranges for 3"):
        PointGenerator([1, 2, 4], [(0, 4), (4, 8)])
    with pytest.raises(ConfigError, match="low < high"):
        PointGenerator([1], [(4, 2)])
    with pytest.raises(ConfigError, match="pairs"):
        PointGenerator([1], [4])


def test_classification_head_starts_at_prior_and_masks():
    head = ClassificationHead(6, 8, num_classes=3, prior_prob=0.01)
    masks = [prefix_mask([5], 6), prefix_mask([3], 3)]
    logits = head([torch.zeros(1, 6, 6), torch.zeros(1, 6, 3)], masks)
    assert [tuple(x.shape) for x in logits] == [(1, 6, 3), (1, 3, 3)]
    assert torch.allclose(logits[0][0, :5].sigmoid(), torch.full((5, 3), 0.01), atol=1e-6)
    assert (logits[0][0, 5:] == 0).all()  # the invalid step is masked


def test_regression_head_is_non_negative_with_per_level_scale():
    torch.manual_seed(2)
    head = RegressionHead(6, 8, num_levels=2)
    masks = [torch.ones(2, 8, dtype=torch.bool), torch.ones(2, 4, dtype=torch.bool)]
    feats = [torch.randn(2, 6, 8), torch.randn(2, 6, 4)]
    before = head(feats, masks)
    assert all((x >= 0).all() for x in before) and before[1].max() > 0
    with torch.no_grad():
        head.scales[1].scale.fill_(0.0)
        head.scales[0].scale.fill_(2.0)
    after = head(feats, masks)
    assert (after[1] == 0).all()
    assert torch.allclose(after[0], 2 * before[0])


def test_pack_levels_puts_zero_gaps_between_levels_and_unpacks_views():
    feats = [torch.randn(2, 3, 5), torch.randn(2, 3, 2), torch.randn(2, 3, 1)]
    masks = [prefix_mask([5, 4], 5), prefix_mask([2, 1], 2), prefix_mask([1, 1], 1)]
    for time_major in (False, True):
        levels = [to_channels_last(f) for f in feats] if time_major else feats
        assert pack_levels(levels, masks, gap=2)[0].shape == (2, 3, 32)          # padded to a multiple of 32
        padded, padded_mask = pack_levels(levels, masks, gap=2, multiple=8)
        assert padded.shape == (2, 3, 16) and (padded[:, :, 12:] == 0).all() and not padded_mask[:, 12:].any()
        packed, mask = pack_levels(levels, masks, gap=2, multiple=1)
        assert packed.shape == (2, 3, 5 + 2 + 2 + 2 + 1) and mask.shape == (2, 12)
        assert torch.equal(padded[:, :, :12], packed) and is_channels_last(packed) == time_major
        assert (packed[:, :, 5:7] == 0).all() and (packed[:, :, 9:11] == 0).all() and not mask[:, [5, 6, 9, 10]].any()
        for got, want in zip(unpack_levels(packed, [5, 2, 1], gap=2), feats):
            assert torch.equal(got, want)
        for got, want in zip(unpack_levels(mask[:, None], [5, 2, 1], gap=2), masks):
            assert torch.equal(got[:, 0], want)


@pytest.mark.parametrize("kernel", [3, 5])
def test_heads_on_all_levels_equal_each_level_on_its_own(kernel):
    torch.manual_seed(3)
    cls_head = ClassificationHead(6, 8, num_classes=3, num_convs=2, kernel_size=kernel)
    reg_head = RegressionHead(6, 8, num_levels=3, num_convs=2, kernel_size=kernel)
    for p in list(cls_head.parameters()) + list(reg_head.parameters()):
        torch.nn.init.normal_(p, std=0.5)
    masks = [prefix_mask([8, 6], 8), prefix_mask([4, 3], 4), prefix_mask([2, 2], 2)]
    feats = [fill_padding(torch.randn(2, 6, m.shape[1]), m, 0.0) for m in masks]
    logits, offsets = cls_head(feats, masks), reg_head(feats, masks)
    for level, (x, m) in enumerate(zip(feats, masks)):
        alone = cls_head([x], [m])[0]                          # one level: nothing packed beside it
        torch.testing.assert_close(logits[level], alone)
        scale = reg_head.scales[level].scale
        reg_alone = torch.relu(scale * reg_head.per_level([x], [m])[0]).transpose(1, 2)
        torch.testing.assert_close(offsets[level], reg_alone)
        assert (offsets[level][~m] == 0).all()
