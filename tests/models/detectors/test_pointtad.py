import math

import numpy as np
import pytest
import torch

from tadkit.core.errors import ConfigError
from tadkit.core.instances import Instances
from tadkit.models import build_detector, detector_defaults
from tadkit.models.detectors.pointtad import (PointDeformation, PointTADDecoder, boundary_contrast,
                                              default_local_points, dense_targets, interpolation_weights,
                                              pseudo_segments, refine_points)
from tests.models.helpers import prefix_mask

TINY = dict(hidden_dim=16, num_queries=6, num_points=7, num_layers=2, num_heads=2, ffn_dim=32, dynamic_dim=4,
            dropout=0.0, dense_dropout=0.0)
C, K, L = 8, 3, 32


def tiny(**kw):
    torch.manual_seed(0)
    return build_detector("pointtad", num_classes=K, input_dim=C, max_seq_len=L, **{**TINY, **kw})


def toy_batch(T=L, lengths=(L, 20), seed=0):
    """Noise features with a class pattern inside each action; padding filled with garbage."""
    g = torch.Generator().manual_seed(seed)
    segments = [torch.tensor([[2.0, 10.0], [14.0, 27.0]]), torch.tensor([[4.0, 15.0]])]
    labels = [torch.tensor([0, 2]), torch.tensor([1])]
    prototypes = torch.randn(K, C, generator=g) * 2
    feats = torch.randn(len(lengths), C, T, generator=g) * 0.3
    for b, (segs, labs) in enumerate(zip(segments, labels)):
        for (s, e), lab in zip(segs.tolist(), labs.tolist()):
            feats[b, :, int(s):int(e) + 1] += prototypes[lab][:, None]
    masks = prefix_mask(list(lengths), T)
    feats[~masks[:, None, :].expand_as(feats)] = 50.0
    return {"feats": feats, "masks": masks, "segments": segments, "labels": labels, "video_ids": ["a", "b"]}


# ---------------------------------------------------------------- numeric pieces, independently
def test_partial_min_max_matches_a_loop_and_the_released_subset_size():
    assert default_local_points(21) == 14 and default_local_points(15) == 10 and default_local_points(20) == 13
    assert default_local_points(1) == 1
    points = torch.rand(3, 4, 21)
    got = pseudo_segments(points, 14)
    full = pseudo_segments(points)
    for b in range(3):
        for q in range(4):
            local = points[b, q, :14].tolist()
            assert got[b, q].tolist() == pytest.approx([min(local), max(local)])
            assert full[b, q].tolist() == pytest.approx([min(points[b, q].tolist()), max(points[b, q].tolist())])


def test_eq1_refinement_by_hand():
    state = torch.tensor([[[0.2, 0.6, 0.4, 0.9]]])          # (1, 1, 4); first 2 points are the "local" ones
    deltas = torch.tensor([[[1.0, -0.5, 0.0, 2.0]]])
    # paper: span over all points = 0.9 - 0.2 = 0.7 -> t + d * 0.35
    assert refine_points(state, deltas, torch.tensor([[0.7]])).flatten().tolist() == pytest.approx(
        [0.55, 0.425, 0.4, 1.6])
    dec = PointTADDecoder(2, 8, 10, num_queries=1, num_points=4, num_layers=1, num_heads=2, ffn_dim=8,
                          num_local_points=2)
    assert dec.refine(state, deltas).flatten().tolist() == pytest.approx([0.55, 0.425, 0.4, 1.6])
    # released code: span of the pseudo segment (points 0-1: 0.6 - 0.2 = 0.4) -> t + d * 0.2
    dec.span = "pseudo"
    assert dec.refine(state, deltas).flatten().tolist() == pytest.approx([0.4, 0.5, 0.4, 1.3])
    # Table 3b "scale to clip duration": s = 1 -> t + d * 0.5
    dec.offset_scale = "window"
    assert dec.refine(state, deltas).flatten().tolist() == pytest.approx([0.7, 0.35, 0.4, 1.9])


def _interp(x, pos):
    """Linear interpolation of rows x (T, D) at pos, clamped to [0, T-1], written out."""
    T = len(x)
    p = min(max(pos, 0.0), T - 1.0)
    i = int(math.floor(p))
    j = min(i + 1, T - 1)
    a = p - i
    return (1 - a) * x[i] + a * x[j]


def test_deformable_sampling_matches_explicit_linear_interpolation():
    torch.manual_seed(0)
    B, Q, Ns, D, T = 2, 3, 6, 5, 12
    deform = PointDeformation(D, Ns, num_subpoints=4, num_boundary_points=2)
    for p in deform.parameters():                      # leave the initialisation: arbitrary offsets and weights
        torch.nn.init.normal_(p, std=2.0)
    query, feats = torch.randn(B, Q, D), torch.randn(B, T, D)
    positions = torch.rand(B, Q, Ns) * 14 - 1         # some outside the valid range
    valid = torch.tensor([T, 9])
    out = deform(query, feats, positions, valid).detach().numpy()
    q, X, P = query.numpy(), feats.numpy(), positions.numpy()
    for b in range(B):
        x = X[b, :valid[b]]
        for i in range(Q):
            for j in range(Ns):
                g = 0 if j < 2 else 1
                off_w, off_b = deform.offsets[g].weight.detach().numpy(), deform.offsets[g].bias.detach().numpy()
                w_w, w_b = deform.weights[g].weight.detach().numpy(), deform.weights[g].bias.detach().numpy()
                offsets = off_w @ q[b, i] + off_b
                logits = w_w @ q[b, i] + w_b
                weights = np.exp(logits - logits.max()) / np.exp(logits - logits.max()).sum()
                expected = sum(weights[k] * _interp(x, P[b, i, j] + offsets[k]) for k in range(4))
                assert np.allclose(out[b, i, j], expected, atol=1e-5)


def test_deformation_initialisation_reads_the_mean_of_steps_1_to_4_ahead():
    deform = PointDeformation(4, 5)
    assert torch.equal(deform.offsets[0].bias.detach(), torch.tensor([1.0, 2.0, 3.0, 4.0]))
    assert not deform.offsets[0].weight.any() and not deform.weights[1].weight.any()
    feats = torch.randn(1, 20, 4)
    positions = torch.tensor([[[3.0, 5.5, 0.0, 10.0, 18.0]]])
    out = deform(torch.randn(1, 1, 4), feats, positions, torch.tensor([20]))
    for j, p in enumerate(positions.flatten().tolist()):
        expected = np.mean([_interp(feats[0].numpy(), p + k) for k in (1, 2, 3, 4)], axis=0)
        assert np.allclose(out[0, 0, j].detach().numpy(), expected, atol=1e-5)
    direct = PointDeformation(4, 5, deformable=False)(torch.randn(1, 1, 4), feats, positions, torch.tensor([20]))
    assert np.allclose(direct[0, 0, 1].numpy(), _interp(feats[0].numpy(), 5.5), atol=1e-6)


def test_interpolation_weights_pass_gradients_to_positions():
    feats = torch.arange(10, dtype=torch.float32)[None, :, None]           # X(t) = t
    pos = torch.tensor([[[2.3]]], requires_grad=True)
    W = interpolation_weights(pos, torch.ones(1, 1, 1), torch.tensor([10]), 10)
    y = torch.bmm(W, feats)
    assert y.item() == pytest.approx(2.3)
    y.sum().backward()
    assert pos.grad.item() == pytest.approx(1.0)


def test_dense_targets_match_a_loop():
    segs = [torch.tensor([[1.5, 4.0], [3.0, 3.2], [6.0, 9.0]]), torch.zeros(0, 2)]
    labs = [torch.tensor([0, 2, 0]), torch.zeros(0, dtype=torch.long)]
    got = dense_targets(segs, labs, 8, 3, "cpu")
    expected = np.zeros((2, 8, 3))
    for (s, e), c in zip(segs[0].tolist(), labs[0].tolist()):
        for t in range(8):
            if s <= t <= e:
                expected[0, t, c] = 1
    assert np.array_equal(got.numpy(), expected)


# ---------------------------------------------------------------- the detector
def test_output_shapes_and_losses():
    model = tiny().train()
    batch = toy_batch()
    out = model.run(batch)
    assert len(out["layers"]) == 2 and out["dense"].shape == (2, L, K)
    for layer in out["layers"]:
        assert layer["logits"].shape == (2, 6, K + 1)
        assert layer["points"].shape == (2, 6, 7) and layer["segments"].shape == (2, 6, 2)
        assert (layer["segments"][..., 1] >= layer["segments"][..., 0]).all()
    losses = model.compute_losses(out, batch)
    expected = {"loss", "loss_dense", *(f"loss_{k}{s}" for k in ("ce", "l1", "iou") for s in ("", "_0"))}
    assert set(losses) == expected and all(torch.isfinite(v) for v in losses.values())
    total = (10 * (losses["loss_ce"] + losses["loss_ce_0"]) + 5 * (losses["loss_l1"] + losses["loss_l1_0"])
             + 5 * (losses["loss_iou"] + losses["loss_iou_0"]) + 10 * losses["loss_dense"])
    assert losses["loss"].item() == pytest.approx(total.item(), rel=1e-5)
    losses["loss"].backward()
    grads = dict(model.named_parameters())
    for name in ("decoder.query_points", "decoder.query_embed.weight", "input_proj.weight",
                 "decoder.layers.0.deformation.offsets.0.weight", "dense_conv2.conv.weight"):
        assert grads[name].grad is not None and grads[name].grad.abs().sum() > 0, name


@pytest.mark.parametrize("encoder_layers", [0, 2])
def test_padding_never_changes_the_outputs_of_valid_steps(encoder_layers):
    model = tiny(encoder_layers=encoder_layers).eval()
    batch = toy_batch()
    clean = dict(batch, feats=batch["feats"].masked_fill(~batch["masks"][:, None, :], 0.0))
    alone_batch = {"feats": batch["feats"][1:, :, :20], "masks": batch["masks"][1:, :20]}
    longer_batch = {"feats": torch.nn.functional.pad(batch["feats"][1:], (0, 11), value=-9.0),
                    "masks": torch.nn.functional.pad(batch["masks"][1:], (0, 11))}
    garbage = model.predict(batch)
    for other in (model.predict(clean)[1], model.predict(alone_batch)[0], model.predict(longer_batch)[0]):
        assert np.allclose(other.segments, garbage[1].segments, atol=1e-4)
        assert np.allclose(other.scores, garbage[1].scores, atol=1e-5)
        assert np.array_equal(other.labels, garbage[1].labels)
    frames = model.frame_scores(batch)
    assert frames[1].shape == (20, K)
    assert np.allclose(model.frame_scores(alone_batch)[0], frames[1], atol=1e-5)
    assert np.allclose(model.frame_scores(longer_batch)[0], frames[1], atol=1e-5)
    # the training losses of a video do not depend on its padding either
    model.train()
    one = {"feats": batch["feats"][1:], "masks": batch["masks"][1:], "segments": batch["segments"][1:],
           "labels": batch["labels"][1:]}
    cut = dict(one, feats=one["feats"][..., :20], masks=one["masks"][:, :20])
    a, b = model(one), model(cut)
    assert all(a[k].item() == pytest.approx(b[k].item(), rel=1e-4, abs=1e-6) for k in a)


def test_predict_returns_one_detection_per_query_in_feature_units_within_the_window():
    model = tiny().eval()
    out = model.predict(toy_batch())
    assert isinstance(out, list) and len(out) == 2 and all(isinstance(x, Instances) for x in out)
    for inst, length in zip(out, (L, 20)):
        assert len(inst) == 6
        assert inst.segments.dtype == np.float64 and inst.labels.dtype == np.int64
        assert (inst.segments >= 0).all() and (inst.segments <= length).all()
        assert (inst.lengths >= 0).all() and set(inst.labels.tolist()) <= set(range(K))
        assert ((inst.scores > 0) & (inst.scores <= 1)).all() and np.all(np.diff(inst.scores) <= 0)
    two = tiny(detections_per_query=2).eval().predict(toy_batch())
    assert len(two[0]) == 12
    assert len({tuple(s) for s in two[0].segments.round(6).tolist()}) <= 6   # a query's classes share its segment


def _contrast_loop(p, length, seg, c, band):
    """Inside / outside means by explicit step lists (the definition in boundary_contrast's docstring)."""
    s, e = seg
    i = min(max(math.floor(s), 0), length - 1)
    j = max(min(max(math.ceil(e), 1), length), i + 1)
    w = max(1, round(band * (e - s)))
    inside = [p[t, c] for t in range(i, j)]
    outside = [p[t, c] for t in list(range(max(0, i - w), i)) + list(range(j, min(length, j + w)))]
    q = sum(inside) / len(inside) - (sum(outside) / len(outside) if outside else 0.0)
    return min(max(q, 1e-3), 1.0)


def test_boundary_contrast_matches_a_loop_and_ranks_a_well_placed_segment_first():
    rng = np.random.default_rng(0)
    B, T, Cc, N = 2, 40, 3, 25
    probs = torch.tensor(rng.uniform(size=(B, T, Cc)), dtype=torch.float32)
    masks = prefix_mask([40, 23], T)
    segs = torch.tensor(np.sort(rng.uniform(-3, 45, size=(B, N, 2)), -1), dtype=torch.float32)
    segs = torch.minimum(segs.clamp(min=0), masks.sum(1)[:, None, None].float())   # as predict clips them
    labels = torch.tensor(rng.integers(0, Cc, size=(B, N)))
    for band in (0.25, 1.0):
        got = boundary_contrast(probs, masks, segs, labels, band)
        for b in range(B):
            n = int(masks[b].sum())
            for k in range(N):
                want = _contrast_loop(probs[b].numpy().astype(np.float64), n, segs[b, k].tolist(), int(labels[b, k]), band)
                assert got[b, k].item() == pytest.approx(want, abs=1e-5)
    # a step profile: the segment on the plateau beats ones that are too long or too short
    p = torch.zeros(1, 30, 1)
    p[0, 10:20] = 1.0
    q = boundary_contrast(p, torch.ones(1, 30, dtype=torch.bool), torch.tensor([[[10.0, 20.0], [6.0, 24.0], [12.0, 18.0]]]),
                          torch.zeros(1, 3, dtype=torch.long))
    assert q[0, 0] == pytest.approx(1.0) and q[0, 0] > q[0, 1] and q[0, 0] > q[0, 2]


def test_dense_rescore_multiplies_scores_by_the_contrast_power():
    batch = toy_batch()
    plain = tiny(dense_rescore=0.0).eval()
    rescored = tiny(dense_rescore=0.5).eval()
    rescored.load_state_dict(plain.state_dict())
    a, b = plain.predict(batch), rescored.predict(batch)
    with torch.no_grad():
        out = plain.run(batch)
    probs = out["dense"].float().sigmoid()
    for w in range(2):
        key = lambda inst: sorted(zip(inst.segments.round(5)[:, 0], inst.segments.round(5)[:, 1], inst.labels))  # noqa
        assert key(a[w]) == key(b[w])   # the same detections, scored anew
        q = boundary_contrast(probs[w:w + 1], out["masks"][w:w + 1], torch.tensor(a[w].segments[None]).float(),
                              torch.tensor(a[w].labels[None]), 0.25)[0].double().numpy()
        want = np.sort(np.sqrt(a[w].scores * q))[::-1]
        np.testing.assert_allclose(b[w].scores, want, rtol=1e-5)
    with pytest.raises(ConfigError):
        tiny(dense_rescore=0.5, dense_head="none")
    with pytest.raises(ConfigError):
        tiny(dense_rescore=1.5)


@pytest.mark.parametrize("T", [1, 7, 80])
def test_any_window_length_works(T):
    model = tiny().train()
    batch = {"feats": torch.randn(1, C, T), "masks": torch.ones(1, T, dtype=torch.bool),
             "segments": [torch.tensor([[0.0, T / 2]])], "labels": [torch.tensor([1])]}
    assert torch.isfinite(model(batch)["loss"])
    (inst,) = model.eval().predict(batch)
    assert len(inst) == 6 and (inst.segments <= T).all()


def test_training_reduces_the_losses_and_finds_the_actions():
    model = tiny(ce_weight=0.5).train()
    batch = toy_batch()
    opt = torch.optim.AdamW(model.parameters(), lr=4e-3, weight_decay=0.0)
    first = {k: v.item() for k, v in model(batch).items()}
    for _ in range(60):
        losses = model(batch)
        opt.zero_grad()
        losses["loss"].backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
    last = {k: v.item() for k, v in model(batch).items()}
    assert last["loss"] < 0.4 * first["loss"]
    for k in ("loss_ce", "loss_iou", "loss_l1", "loss_dense"):
        assert last[k] < first[k], k
    model.eval()
    for found, segments, labels in zip(model.predict(batch), batch["segments"], batch["labels"]):
        for (s, e), label in zip(segments.tolist(), labels.tolist()):
            same = found[found.labels == label]
            iou = (np.minimum(same.ends, e) - np.maximum(same.starts, s)).clip(0) / (
                np.maximum(same.ends, e) - np.minimum(same.starts, s))
            assert iou.max(initial=0.0) > 0.5, (s, e, label, found)


SWITCHES = [dict(representation="segment"), dict(point_init="uniform"), dict(point_init="normal"),
            dict(pseudo_segment="minmax"), dict(num_points=9, num_local_points=3), dict(deformable=False),
            dict(mixing="frame"), dict(mixing="channel"), dict(mixing="frame_channel"),
            dict(mixing="channel_frame"), dict(offset_scale="window"), dict(span="pseudo"),
            dict(deform_zero_init=False), dict(delta_zero_init=True, point_init="uniform"), dict(iou_loss="giou"), dict(iou_loss="none", l1_loss=False),
            dict(aux_loss=False), dict(dense_head="linear"), dict(dense_head="none"), dict(num_boundary_points=0),
            dict(class_target="iou"), dict(dense_rescore=0.25),
            dict(num_subpoints=2), dict(ce_weight=0.1, lambda_seg=0.5), dict(class_loss="focal"),
            dict(detach_points=True)]


@pytest.mark.parametrize("switch", SWITCHES, ids=lambda s: ",".join(f"{k}={v}" for k, v in s.items()))
def test_every_switch_builds_trains_and_predicts(switch):
    model = tiny(**switch).train()
    losses = model(toy_batch())
    assert torch.isfinite(losses["loss"])
    losses["loss"].backward()
    assert ("loss_dense" in losses) == (switch.get("dense_head", "conv") != "none")
    assert ("loss_ce_0" in losses) == switch.get("aux_loss", True)
    out = model.eval().predict(toy_batch())
    assert len(out[0]) == 6 and (out[1].segments <= 20).all()
    assert (model.frame_scores(toy_batch()) is None) == (switch.get("dense_head") == "none")


def test_switches_change_the_modules():
    assert not hasattr(tiny(mixing="frame").decoder.layers[0].mixing, "channel_params")
    assert not hasattr(tiny(mixing="channel").decoder.layers[0].mixing, "frame_params")
    assert not hasattr(tiny(deformable=False).decoder.layers[0].deformation, "offsets")
    seg = tiny(representation="segment").decoder
    assert seg.query_points.shape == (6, 2) and seg.layers[0].delta_pred.out_features == 2
    assert torch.equal(seg.query_points.detach()[0], torch.tensor([0.0, 1.0]))
    assert (tiny().decoder.query_points == 0.5).all()
    assert not tiny(delta_zero_init=True).decoder.layers[1].delta_pred.weight.any()
    assert tiny().decoder.layers[1].delta_pred.weight.any()
    assert tiny().decoder.num_local == 4 and tiny(pseudo_segment="minmax").decoder.num_local is None


def test_focal_class_loss_has_one_sigmoid_per_class_and_scores_by_it():
    """``class_loss: focal``: C logits (no no-action class) starting at the prior 0.01, the matcher's focal cost,
    the set criterion's focal loss, and detection scores = sigmoid of the detection's class logit."""
    model = tiny(class_loss="focal")
    layer = model.decoder.layers[0]
    assert layer.cls_pred.out_features == K and tiny().decoder.layers[0].cls_pred.out_features == K + 1
    assert torch.sigmoid(layer.cls_pred.bias).detach().numpy() == pytest.approx(np.full(K, 0.01))
    assert model.criterion.class_loss == "focal" and model.criterion.matcher.class_cost == "focal"
    model.eval()
    batch = toy_batch()
    logits = model.run(batch)["layers"][-1]["logits"]  # (B, Q, K)
    (inst, _) = model.predict(batch)
    best = logits[0].sigmoid().max(dim=-1)  # the arg-max class of each query and its probability
    assert sorted(inst.scores.tolist()) == pytest.approx(sorted(best.values.tolist()), rel=1e-6)
    assert set(inst.labels.tolist()) <= set(best.indices.tolist())


@pytest.mark.parametrize("detach", [False, True])
def test_detach_points_stops_later_layers_moving_earlier_points(detach):
    """``detach_points``: the last layer's segments carry no gradient to the learnable initial points
    (each layer's refinement is trained by its own loss only); by default they do (the paper, released code)."""
    model = tiny(detach_points=detach).train()
    layers = model.run(toy_batch())["layers"]
    grad, = torch.autograd.grad(layers[-1]["segments"].sum(), model.decoder.query_points, allow_unused=True,
                                retain_graph=True)
    assert (grad is None or not grad.any()) == detach
    first, = torch.autograd.grad(layers[0]["segments"].sum(), model.decoder.query_points)
    assert first.any()


def test_checkpoint_round_trip(tmp_path):
    model = tiny().train()
    batch = toy_batch()
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(3):
        loss = model(batch)["loss"]
        opt.zero_grad()
        loss.backward()
        opt.step()
    torch.save(model.state_dict(), tmp_path / "w.pt")
    torch.manual_seed(123)
    fresh = build_detector("pointtad", num_classes=K, input_dim=C, max_seq_len=L, **TINY)
    fresh.load_state_dict(torch.load(tmp_path / "w.pt", weights_only=True))
    a, b = model.eval().predict(batch), fresh.eval().predict(batch)
    for x, y in zip(a, b):
        assert np.array_equal(x.segments, y.segments) and np.array_equal(x.scores, y.scores)
    assert "decoder.query_points" in model.state_dict()


def test_bad_inputs_and_hyperparameters_raise_config_errors():
    with pytest.raises(ConfigError, match="input_dim=8"):
        tiny().predict({"feats": torch.randn(1, 5, 10), "masks": torch.ones(1, 10, dtype=torch.bool)})
    with pytest.raises(ConfigError, match="encoder_layers"):
        tiny(encoder_layers=-1)
    with pytest.raises(ConfigError, match="mixing"):
        tiny(mixing="serial")
    with pytest.raises(ConfigError, match="num_local_points"):
        tiny(num_local_points=8)
    with pytest.raises(ConfigError, match="divisible"):
        tiny(num_heads=3)
    with pytest.raises(ConfigError, match="representation"):
        tiny(representation="boxes")
    with pytest.raises(ConfigError, match="hyperparameter"):
        tiny(num_query=4)
    with pytest.raises(ConfigError, match="class_target 'iou' needs the softmax"):
        tiny(class_loss="focal", class_target="iou")
    with pytest.raises(ConfigError, match="class_target"):
        tiny(class_target="soft")


def test_defaults_are_the_paper_settings():
    d = detector_defaults("pointtad")
    assert (d["num_queries"], d["num_points"], d["num_layers"], d["num_heads"]) == (48, 21, 4, 8)
    assert (d["hidden_dim"], d["ffn_dim"], d["dropout"], d["dynamic_dim"], d["num_subpoints"]) == (512, 2048, 0.1, 64, 4)
    assert (d["cost_class"], d["cost_l1"], d["cost_iou"], d["eos_coef"]) == (10.0, 5.0, 5.0, 0.1)
    assert (d["lambda_cls"], d["lambda_loc"], d["lambda_seg"]) == (10.0, 5.0, 1.0)
    assert (d["point_init"], d["pseudo_segment"], d["mixing"], d["representation"]) == (
        "constant", "partial", "parallel", "points")
    assert d["deformable"] and d["aux_loss"] and d["offset_scale"] == "action"


def test_points_are_normalised_by_the_training_window_or_a_longer_valid_length():
    model = tiny().eval()
    for T, lengths, expected in ((20, (20, 9), (L, L)), (50, (50, 40), (50, 40))):
        batch = {"feats": torch.randn(2, C, T), "masks": prefix_mask(list(lengths), T)}
        layers = model.run(batch)["layers"]
        assert layers[-1]["scale"].tolist() == list(map(float, expected))
        for layer in layers:
            local = layer["points"][..., :4]                     # 7 points: the first 7 - ceil(7/3) = 4
            by_hand = torch.stack((local.min(-1).values, local.max(-1).values), -1) * layer["scale"][:, None, None]
            assert torch.allclose(layer["segments"], by_hand)


def test_segment_baseline_samples_bin_centres():
    dec = PointTADDecoder(2, 8, 10, num_queries=1, num_points=4, num_layers=1, num_heads=2, ffn_dim=8,
                          representation="segment")
    state = torch.tensor([[[0.6, 0.2]]])                          # a reversed segment [0.2, 0.6]
    assert dec.sampling_positions(state).flatten().tolist() == pytest.approx([0.25, 0.35, 0.45, 0.55])
    assert dec.pseudo_segments(state).flatten().tolist() == pytest.approx([0.2, 0.6])


@pytest.mark.parametrize("name,window,tiou,frames", [("multithumos", 64, "multithumos", None),
                                                    ("charades", 100, "charades", 25), ("custom", 256, "multithumos", None)])
def test_shipped_configs_load_with_the_paper_protocol(name, window, tiou, frames):
    from pathlib import Path

    from tadkit.config import load_config
    root = Path(__file__).resolve().parents[3]
    cfg = load_config(root / "configs" / "pointtad" / f"{name}.yaml")
    assert cfg.model.name == "pointtad" and cfg.model.params["max_seq_len"] == window
    assert cfg.data.train_windows and cfg.data.trunc_thresh == 1.0
    assert cfg.test.tiou == tiou and cfg.test.segmentation and cfg.test.segmentation_frames == frames
    params = cfg.model.params
    if name == "custom":   # departures documented in the module docstring
        assert cfg.test.nms == "soft" and cfg.test.max_detections == 200 and cfg.train.schedule == "cosine"
        assert (params["cost_class"], params["cost_l1"], params["cost_iou"]) == (2, 5, 5)
        assert (cfg.data.window_overlap, cfg.test.sigma, params["encoder_layers"], params["detections_per_query"]) \
            == (0.5, 0.2, 2, 2)
        assert (params["dense_rescore"], params["dense_rescore_band"]) == (0.25, 0.25)
        assert (cfg.train.lr, cfg.train.warmup_epochs, cfg.train.batch_size, cfg.train.epochs) == (5e-4, 2, 4, 24)
    else:
        assert cfg.test.nms == "none" and cfg.test.max_detections is None and cfg.train.schedule == "multistep"
        assert cfg.data.window_overlap == 0.0 and params.get("encoder_layers", 0) == 0
        assert params.get("detections_per_query", 1) == 1 and params.get("dense_rescore", 0) == 0
        assert (cfg.model.params["cost_class"], cfg.model.params["cost_l1"], cfg.model.params["cost_iou"]) == (10, 5, 5)
    assert cfg.train.ema_warmup == (name == "custom")


@pytest.mark.parametrize("cost_class, winner", [(10.0, 0), (2.0, 1)])
def test_matching_cost_balance_by_hand(cost_class, winner):
    """Eq. (10) on two queries and one ground truth [40, 60] in a window of 100 steps. Query 0 is sure of the class
    (p = 0.95) but sits on [0, 20] (L1 of (centre, width) / window 0.4, tIoU 0); query 1 covers the ground truth
    exactly with p = 0.2. Costs (tIoU term as 5 (1 - tIoU), the same assignment): 7 - 0.95 a vs -0.2 a, so the far
    query wins for a > 7 / 0.75 = 9.33 (the paper's a = 10) and the overlapping one for the custom config's a = 2."""
    model = tiny(cost_class=cost_class)
    p = torch.tensor([[0.95, 0.0, 0.0, 0.05], [0.2, 0.0, 0.0, 0.8]])       # K = 3 classes + no action
    logits = p.clamp(min=1e-12).log()[None]                               # softmax(log p) = p
    segments = torch.tensor([[[0.0, 20.0], [40.0, 60.0]]])
    costs = model.criterion.matcher.cost_matrices(logits, segments, [torch.tensor([[40.0, 60.0]])],
                                                  [torch.tensor([0])], torch.tensor([100.0]))[0]
    np.testing.assert_allclose(costs[:, 0].numpy(), [7.0 - 0.95 * cost_class, -0.2 * cost_class], atol=1e-5)
    ((q, g),) = model.criterion.matcher(logits, segments, [torch.tensor([[40.0, 60.0]])], [torch.tensor([0])],
                                        torch.tensor([100.0]))
    assert (q.tolist(), g.tolist()) == ([winner], [0])


def test_temporal_encoder_is_off_by_default_and_gives_each_step_its_neighbours():
    assert tiny().encoder is None and not any(n.startswith("encoder.") for n, _ in tiny().named_parameters())
    batch = toy_batch()
    for layers, reach in ((0, 0), (1, 1), (2, 2)):
        model = tiny(encoder_layers=layers).eval()
        if layers:   # the residual convs start small; make them count
            for p in model.encoder.parameters():
                torch.nn.init.normal_(p, std=0.5)
        x0, _ = model.encode(batch)
        poked = batch["feats"].clone()
        poked[0, :, 20] += 5.0
        x1, _ = model.encode(dict(batch, feats=poked))
        changed = (x1[0] - x0[0]).abs().amax(-1) > 1e-6                      # (T,)
        assert changed.nonzero().flatten().tolist() == list(range(20 - reach, 21 + reach)), layers
