"""SP-TAD: RoI align, Eq. 1, the sparse interaction and the pyramid against explicit computations;
masks, losses, decoding, the ablation switches and optimisation on a toy problem."""
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from tadkit.core.errors import ConfigError
from tadkit.models import build_detector
from tadkit.models.detectors.sptad import (SPTAD, SparseInteraction, TemporalFeaturePyramid, apply_deltas,
                                           pyramid_level, roi_align_1d)
from tadkit.models.set_prediction import cw_to_se
from tests.models.helpers import fill_padding, pattern_batch, prefix_mask

K, C, T = 3, 6, 64
TINY = dict(hidden_dim=16, stage_dim=8, ffn_dim=32, dynamic_dim=4, attn_heads=2, num_proposals=8, roi_size=4,
            num_stages=2)


def tiny(**kw) -> SPTAD:
    torch.manual_seed(0)
    return build_detector("sptad", num_classes=K, input_dim=C, max_seq_len=T, **{**TINY, **kw})


def toy_batch(lengths=(64, 40), seed=0):
    """Noise with a class pattern inside each action; padding filled with garbage."""
    segments = [torch.tensor([[4.0, 14.0], [30.0, 50.0]]), torch.tensor([[6.0, 20.0]])]
    labels = [torch.tensor([0, 2]), torch.tensor([1])]
    return pattern_batch(segments, labels, lengths, K, C, T, seed)


# ---------------------------------------------------------------------------- 1-D RoI align
def _interp_loop(f, n, u):
    """torchvision RoIAlign's bilinear_interpolate in 1-D, for one channel vector f (C, T) with n valid steps."""
    if u < -1.0 or u > n:
        return torch.zeros(f.shape[0], dtype=f.dtype)
    u = max(u, 0.0)
    lo = int(math.floor(u))
    if lo >= n - 1:
        lo = hi = n - 1
        u = float(lo)
    else:
        hi = lo + 1
    w = u - lo
    return f[:, lo] * (1 - w) + f[:, hi] * w


def test_roi_align_matches_an_explicit_loop():
    g = torch.Generator().manual_seed(1)
    feats = [torch.randn(2, 5, 12, generator=g, dtype=torch.float64),
             torch.randn(2, 5, 6, generator=g, dtype=torch.float64)]
    valid = torch.tensor([[12, 6], [9, 5]])
    rois = torch.tensor([[[1.2, 7.9], [-3.0, 2.5], [4.0, 4.0], [10.5, 14.0]],
                         [[0.0, 5.0], [-0.7, 3.3], [7.5, 11.0], [-6.0, -2.0]]], dtype=torch.float64)
    levels = torch.tensor([[0, 1, 0, 0], [1, 0, 0, 1]])
    P, S = 5, 3
    got = roi_align_1d(feats, valid, rois, levels, P, S)
    assert got.shape == (2, 4, P, 5)
    for b in range(2):
        for n in range(4):
            lvl = int(levels[b, n])
            f, nv = feats[lvl][b], int(valid[b, lvl])
            s, e = rois[b, n].tolist()
            for k in range(P):
                pts = [s + (k + (i + 0.5) / S) * (e - s) / P for i in range(S)]
                expect = sum(_interp_loop(f, nv, u) for u in pts) / S
                torch.testing.assert_close(got[b, n, k], expect)
    # the padding steps (beyond `valid`) never contribute
    garbage = [f.clone() for f in feats]
    garbage[0][1, :, 9:] = 1e6
    garbage[1][1, :, 5:] = 1e6
    torch.testing.assert_close(roi_align_1d(garbage, valid, rois, levels, P, S), got)


# ---------------------------------------------------------------------------- Eq. 1
def test_eq1_level_choice_by_hand():
    # four levels, l0 = 3: l = floor(3 + log2(t / T)), clamped to [0, 3]
    widths = torch.tensor([1.0, 0.75, 0.5, 0.49, 0.25, 0.2, 0.125, 0.1, 0.01, 2.0])
    assert pyramid_level(widths, 4).tolist() == [3, 2, 2, 1, 1, 0, 0, 0, 0, 3]
    assert pyramid_level(widths, 1).tolist() == [0] * 10


def test_soi_features_come_from_the_eq1_level_of_the_expanded_segment():
    """A pyramid whose level l holds the feature position of each step (+ 1000·l): pooled values tell the
    level (thousands) and the sampled positions (linear interpolation is exact on a linear function)."""
    model = tiny(num_stages=1)
    head = model.heads[0]
    strides = model.strides
    assert strides == (2, 4, 8, 16)
    length = 64
    pyramid = [(torch.arange(length // s, dtype=torch.float32) * s + 1000 * l).expand(1, 2, -1)
               for l, s in enumerate(strides)]
    valid = torch.tensor([[length // s for s in strides]])
    segments = torch.tensor([[[0.5, 0.6], [0.4, 0.3], [0.3, 0.15], [0.6, 0.05]]])  # (centre, width), normalised
    roi = head.soi_features(pyramid, valid, strides, segments, torch.tensor([float(length)]))  # (1, N, P, d)
    P = head.roi_size
    for n, (c, w) in enumerate(segments[0].tolist()):
        level = min(3, max(0, math.floor(3 + math.log2(w))))
        start = (c - w / 2 - w / 5) * length - 0.5          # expanded by t_l / eta, eta = 5
        end = (c + w / 2 + w / 5) * length - 0.5
        bins = torch.tensor([start + (k + 0.5) * (end - start) / P for k in range(P)])  # mean of the 2 samples
        torch.testing.assert_close(roi[0, n, :, 0], bins + 1000 * level, rtol=0, atol=1e-3)


# ---------------------------------------------------------------------------- sparse interaction
def test_sparse_interaction_matches_a_per_proposal_matmul():
    torch.manual_seed(0)
    d, dh, P = 8, 3, 5
    sim = SparseInteraction(d, dh, P).double()
    pro = torch.randn(2, 4, d, dtype=torch.float64)
    roi = torch.randn(2, 4, P, d, dtype=torch.float64)
    got = sim(pro, roi)
    assert got.shape == (2, 4, d)
    for b in range(2):
        for n in range(4):
            params = pro[b, n] @ sim.dynamic_layer.weight.T + sim.dynamic_layer.bias  # (2·d·dh,)
            w1, w2 = params[: d * dh].reshape(d, dh), params[d * dh:].reshape(dh, d)
            x = F.relu(F.layer_norm(roi[b, n] @ w1, (dh,), sim.norm1.weight, sim.norm1.bias))  # (P, dh)
            x = F.relu(F.layer_norm(x @ w2, (d,), sim.norm2.weight, sim.norm2.bias))  # (P, d)
            y = x.reshape(-1) @ sim.out_layer.weight.T + sim.out_layer.bias
            expect = F.relu(F.layer_norm(y, (d,), sim.norm3.weight, sim.norm3.bias))
            torch.testing.assert_close(got[b, n], expect)


def test_segment_update_by_hand():
    seg = torch.tensor([[0.5, 0.2], [0.1, 0.4]])
    deltas = torch.tensor([[0.4, math.log(2.0)], [-1.0, 0.0]])
    # c' = c + (dc / 2) w, w' = w exp(dw)
    torch.testing.assert_close(apply_deltas(seg, deltas), torch.tensor([[0.54, 0.4], [-0.1, 0.4]]))
    torch.testing.assert_close(cw_to_se(seg), torch.tensor([[0.4, 0.6], [-0.1, 0.3]]))


# ---------------------------------------------------------------------------- Sec. 3.1.2 pyramid
def test_pyramid_top_down_fusion_matches_explicit_convolutions():
    torch.manual_seed(0)
    tfp = TemporalFeaturePyramid([3, 4, 5], dim=6, extra_levels=1).double()
    x = [torch.randn(1, c, t, dtype=torch.float64) for c, t in ((3, 16), (4, 8), (5, 4))]
    masks = [torch.ones(1, t, dtype=torch.bool) for t in (16, 8, 4)]
    out, out_masks = tfp(x, masks)
    assert [o.shape[-1] for o in out] == [16, 8, 4, 2] and [m.shape[-1] for m in out_masks] == [16, 8, 4, 2]
    lat = [F.conv1d(xi, conv.conv.weight, conv.conv.bias) for xi, conv in zip(x, tfp.laterals)]
    p3 = lat[2]
    p2 = lat[1] + torch.repeat_interleave(p3, 2, dim=-1)
    p1 = lat[0] + torch.repeat_interleave(p2, 2, dim=-1)
    expect = [F.conv1d(p, conv.conv.weight, conv.conv.bias, padding=1) for p, conv in zip((p1, p2, p3), tfp.outputs)]
    for o, e in zip(out, expect):
        torch.testing.assert_close(o, e)
    pooled = torch.stack([expect[2][..., max(0, 2 * i - 1): 2 * i + 2].amax(-1) for i in range(2)], dim=-1)
    torch.testing.assert_close(out[3], pooled)


# ---------------------------------------------------------------------------- masks
@pytest.mark.parametrize("pyramid", ["inter", "high"])
def test_padding_does_not_change_the_outputs(pyramid):
    model = tiny(pyramid=pyramid).eval()
    batch = toy_batch(lengths=(64, 37))
    alone = {"feats": batch["feats"][1:, :, :37], "masks": batch["masks"][1:, :37]}
    with torch.no_grad():
        both, one = model.run(batch), model.run(alone)
    for key in ("logits", "segments"):
        for a, b in zip(both[key], one[key]):
            torch.testing.assert_close(a[1], b[0], rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(both["action_logits"][1], one["action_logits"][0], rtol=1e-4, atol=1e-5)
    pa, pb = model.predict(batch)[1], model.predict(alone)[0]
    np.testing.assert_allclose(pa.segments, pb.segments, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(pa.scores, pb.scores, rtol=1e-4, atol=1e-6)


def test_backbone_mode_takes_three_maps_and_respects_masks():
    dims = (5, 7, 9)
    model = tiny(pyramid_input="backbone", backbone_dims=list(dims)).eval()
    g = torch.Generator().manual_seed(0)
    masks = prefix_mask([64, 40], T)
    maps = [fill_padding(torch.randn(2, c, T // s, generator=g), masks[:, ::s]) for c, s in zip(dims, (2, 4, 8))]
    batch = {"feats": maps, "masks": masks}
    alone = {"feats": [m[1:, :, : -(-40 // s)] for m, s in zip(maps, (2, 4, 8))], "masks": masks[1:, :40]}
    with torch.no_grad():
        both, one = model.run(batch), model.run(alone)
    torch.testing.assert_close(both["logits"][-1][1], one["logits"][-1][0], rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(both["segments"][-1][1], one["segments"][-1][0], rtol=1e-4, atol=1e-5)
    with pytest.raises(ConfigError, match="backbone_dims"):
        model.run({"feats": [m[:, :3] for m in maps], "masks": masks})
    with pytest.raises(ConfigError, match="list of three"):
        model.run({"feats": maps[0], "masks": masks})


# ---------------------------------------------------------------------------- Eq. 2-3 losses
def test_targets_are_normalised_to_the_window_and_the_total_is_eq2():
    model = tiny()
    batch = toy_batch(lengths=(64, 40))
    batch["segments"][1] = torch.tensor([[9.5, 29.5], [-3.0, 2.5]])
    batch["labels"][1] = torch.tensor([1, 0])
    out = model.run(batch)
    targets = model.targets(out, batch)
    # feature index x -> (x + 0.5) / T_b, clipped to [0, 1]
    torch.testing.assert_close(targets[1]["segments"], torch.tensor([[0.25, 0.75], [0.0, 3.0 / 40]]))
    torch.testing.assert_close(targets[0]["segments"], (batch["segments"][0] + 0.5) / 64)
    losses = model.compute_losses(out, batch)
    # action loss: BCE against the classes present in each clip
    expect_act = F.binary_cross_entropy_with_logits(out["action_logits"], torch.tensor([[1.0, 0, 1], [1, 1, 0]]))
    torch.testing.assert_close(losses["loss_act"], expect_act)
    total = sum(2.0 * losses[f"loss_ce{s}"] + 5.0 * losses[f"loss_l1{s}"] + 2.0 * losses[f"loss_iou{s}"]
                for s in ("_0", "")) + 1.0 * losses["loss_act"]
    torch.testing.assert_close(losses["loss"], total)


def test_a_clip_without_actions_trains_towards_no_action():
    model = tiny()
    batch = toy_batch()
    batch["segments"] = [torch.zeros(0, 2), torch.zeros(0, 2)]
    batch["labels"] = [torch.zeros(0, dtype=torch.long)] * 2
    losses = model(batch)
    assert torch.isfinite(losses["loss"]) and losses["loss_l1"] == 0 and losses["loss_ce"] > 0
    losses["loss"].backward()


def test_toy_losses_decrease():
    model = tiny()
    batch = toy_batch()
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    first = None
    for _ in range(40):
        losses = model(batch)
        opt.zero_grad()
        losses["loss"].backward()
        opt.step()
        first = first if first is not None else {k: float(v.detach()) for k, v in losses.items()}
    last = {k: float(v.detach()) for k, v in model(batch).items()}
    assert last["loss"] < 0.5 * first["loss"]
    assert last["loss_iou"] < first["loss_iou"] and last["loss_ce"] < first["loss_ce"]
    assert last["loss_act"] < 0.5 * first["loss_act"]
    assert model.proposal_segments.grad is not None          # the proposals themselves are learned


# ---------------------------------------------------------------------------- Sec. 3.2.2 inference
def test_decode_by_hand_with_action_rescoring():
    model = tiny(inference_topk=2)
    logits = torch.full((1, 8, K), -20.0)
    logits[0, 3, 1], logits[0, 5, 2] = 2.0, 0.5
    segments = torch.tensor([[0.5, 0.5], [0.9, 0.6]]).repeat(4, 1)[None]  # proposals 3 and 5: (0.9, 0.6)
    segments[0, 5] = torch.tensor([0.5, 0.5])
    act = torch.tensor([[0.0, 1.0, -1.0]])
    out = {"logits": [logits], "segments": [segments], "action_logits": act, "lengths": torch.tensor([40.0])}
    (inst,) = model.decode(out)
    sig = torch.sigmoid
    np.testing.assert_allclose(inst.scores, [float(sig(torch.tensor(2.0)) * sig(torch.tensor(1.0))),
                                             float(sig(torch.tensor(0.5)) * sig(torch.tensor(-1.0)))], rtol=1e-6)
    assert inst.labels.tolist() == [1, 2]
    # (0.9, 0.6) -> [0.6, 1.2] · 40 − 0.5, clipped to the window [−0.5, 39.5]; (0.5, 0.5) -> [9.5, 29.5]
    np.testing.assert_allclose(inst.segments, [[23.5, 39.5], [9.5, 29.5]], rtol=1e-6)
    model.action_rescore = False
    np.testing.assert_allclose(model.decode(out)[0].scores[0], float(sig(torch.tensor(2.0))), rtol=1e-6)


@pytest.mark.parametrize("length", [64, 37, 100, 300])
def test_predict_gives_instances_in_feature_units_within_any_window(length):
    model = tiny().eval()
    g = torch.Generator().manual_seed(0)
    batch = {"feats": torch.randn(1, C, length, generator=g), "masks": torch.ones(1, length, dtype=torch.bool)}
    (inst,) = model.predict(batch)
    assert 0 < len(inst) <= model.inference_topk
    assert (inst.segments[:, 0] >= -0.5).all() and (inst.segments[:, 1] <= length - 0.5).all()
    assert (inst.segments[:, 1] > inst.segments[:, 0]).all()
    assert set(inst.labels.tolist()) <= set(range(K)) and (np.diff(inst.scores) <= 0).all()
    assert ((inst.scores > 0) & (inst.scores <= 1)).all()


# ---------------------------------------------------------------------------- switches (Tables 5-7)
@pytest.mark.parametrize("switches, levels, names", [
    (dict(pyramid="inter"), [32, 16, 8, 4], {"loss_act", "loss_ce_0"}),
    (dict(pyramid="single"), [8], {"loss_act", "loss_ce_0"}),
    (dict(pyramid="high"), [8, 4, 2, 1], {"loss_act", "loss_ce_0"}),
    (dict(num_stages=1), [32, 16, 8, 4], {"loss_act"}),
    (dict(num_stages=3, aux_loss=False), [32, 16, 8, 4], {"loss_act"}),
    (dict(action_head=False, action_rescore=False), [32, 16, 8, 4], {"loss_ce_0"}),
    (dict(proposal_init="whole"), [32, 16, 8, 4], {"loss_act", "loss_ce_0"}),
])
def test_every_switch_builds_trains_and_predicts(switches, levels, names):
    model = tiny(**switches)
    batch = toy_batch()
    out = model.run(batch)
    assert [p.shape[-1] for p in out["pyramid"]] == levels
    assert len(out["logits"]) == switches.get("num_stages", TINY["num_stages"])
    losses = model.compute_losses(out, batch)
    optional = {k for k in losses if k == "loss_act" or k.startswith("loss_ce_")}
    assert optional == names
    assert torch.isfinite(losses["loss"])
    losses["loss"].backward()
    assert all(len(i) > 0 for i in model.eval().predict(batch))
    if switches.get("proposal_init") == "whole":
        torch.testing.assert_close(model.proposal_segments.detach(), torch.tensor([[0.5, 1.0]]).repeat(8, 1))


@pytest.mark.parametrize("bad, key", [
    (dict(pyramid="fpn"), "model.pyramid"),
    (dict(pyramid_input="video"), "model.pyramid_input"),
    (dict(proposal_init="grid"), "model.proposal_init"),
    (dict(num_proposals=0), "model.num_proposals"),
    (dict(hidden_dim=10, attn_heads=4), "model.hidden_dim"),
    (dict(eta=0.0), "model.eta"),
    (dict(backbone_dims=[1, 2]), "model.backbone_dims"),
    (dict(action_head=False), "model.action_rescore"),
    (dict(delta_weights=[1.0]), "model.delta_weights"),
])
def test_bad_hyperparameters_raise_config_errors_naming_the_key(bad, key):
    with pytest.raises(ConfigError) as err:
        tiny(**bad)
    assert key in str(err.value) and "\n" not in str(err.value)


def test_features_of_the_wrong_width_are_a_config_error():
    model = tiny()
    with pytest.raises(ConfigError, match="input_dim"):
        model.run({"feats": torch.zeros(1, C + 1, 16), "masks": torch.ones(1, 16, dtype=torch.bool)})


# ---------------------------------------------------------------------------- shipped configs
@pytest.mark.parametrize("name, rescore", [("thumos14", True), ("activitynet", True), ("custom", False)])
def test_dataset_configs_keep_the_papers_rescoring_and_custom_trains_the_head_without_it(name, rescore):
    from pathlib import Path

    from tadkit.config import load_config
    root = Path(__file__).resolve().parents[3]
    params = load_config(root / "configs" / "sptad" / f"{name}.yaml").model.params
    assert params["action_head"] is True and params["action_rescore"] is rescore
    model = build_detector("sptad", num_classes=K, input_dim=C, max_seq_len=T, **{**TINY, "action_rescore": rescore})
    assert model.action_head is not None          # the head (and its loss) exists either way
    batch = toy_batch()
    assert "loss_act" in model(batch)
    with torch.no_grad():
        out = model.eval().run(batch)
    (inst, _) = model.decode(out)
    probs = out["logits"][-1].sigmoid()[0]
    if rescore:
        probs = probs * out["action_logits"].sigmoid()[0]
    np.testing.assert_allclose(inst.scores[0], float(probs.max()), rtol=1e-6)
