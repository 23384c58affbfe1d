"""AMNet: each module against a hand or brute-force computation, the switches, the two-phase update,
the baseline equivalence, learning and prediction."""
import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

import tadkit
from tadkit.core.errors import ConfigError
from tadkit.core.instances import Instances
from tadkit.models import build_detector
from tadkit.models.detectors.amnet import (ActionMaskingEncoder, GroupAttentionModule, MatchingScoreHead,
                                           pack_snippets, positive_snippets, triplet_loss)
from tadkit.models.losses import Targets
from tests.models.helpers import fill_padding, prefix_mask

ROOT = Path(__file__).resolve().parents[3]
TINY = dict(embed_dim=16, fpn_dim=16, head_dim=16, num_heads=2, embed_layers=1, stem_layers=1, branch_layers=3,
            window_size=5, regression_ranges=[[0, 4], [4, 8], [8, 16], [16, 10_000]], path_dropout=0.0)
OFF = dict(ame=False, gam=False, matching_head=False)
C, K = 8, 3


def make(name="amnet", seed=0, **kw):
    torch.manual_seed(seed)
    extra = dict(ame_dim=8) if name == "amnet" else {}
    return build_detector(name, num_classes=K, input_dim=C, max_seq_len=64, **{**TINY, **extra, **kw})


def toy_batch(seed=0, T=64, lengths=(64, 50)):
    g = torch.Generator().manual_seed(seed)
    segments = [torch.tensor([[5.0, 20.0], [30.0, 33.0], [40.0, 60.0]]), torch.tensor([[10.0, 30.0], [35.0, 45.0]])]
    labels = [torch.tensor([0, 1, 0]), torch.tensor([2, 0])]
    feats = torch.randn(len(lengths), C, T, generator=g)
    for b, (segs, labs) in enumerate(zip(segments, labels)):     # make the actions visible in the features
        for (s, e), k in zip(segs.long().tolist(), labs.tolist()):
            feats[b, k, s:e] += 3.0
    masks = prefix_mask(list(lengths), T)
    return {"feats": fill_padding(feats, masks), "masks": masks, "segments": segments, "labels": labels}


def grads(model):
    return {n: (p.grad.clone() if p.grad is not None else torch.zeros_like(p)) for n, p in model.named_parameters()}


# ---------------------------------------------------------------------------- baseline equivalence
@pytest.mark.parametrize("reg_loss", ["iou", "diou"])
def test_all_switches_off_is_the_baseline(reg_loss):
    """Same parameters (names and values), same losses, same predictions as ActionFormer."""
    amnet, base = make(**OFF, reg_loss=reg_loss), make("actionformer", reg_loss=reg_loss)
    assert amnet.state_dict().keys() == base.state_dict().keys()
    for k, v in base.state_dict().items():
        assert torch.equal(amnet.state_dict()[k], v), k
    batch = toy_batch()
    la, lb = amnet(batch), base(batch)
    assert set(la) == set(lb) == {"loss", "cls_loss", "reg_loss"}
    for k in lb:
        assert torch.equal(la[k], lb[k]), k
    amnet.eval(), base.eval()
    for pa, pb in zip(amnet.predict(batch), base.predict(batch)):
        assert (pa.segments == pb.segments).all() and (pa.labels == pb.labels).all() and (pa.scores == pb.scores).all()


def test_only_reg_loss_default_differs_from_the_baseline():
    from tadkit.models import detector_defaults
    amnet, base = detector_defaults("amnet"), detector_defaults("actionformer")
    assert {k for k in base if amnet[k] != base[k]} == {"reg_loss"} and amnet["reg_loss"] == "iou"


# ---------------------------------------------------------------------------- 3.2 AME, Eq. 1
def _conv_by_hand(x, weight, bias):
    """'same' 1-D convolution as an explicit sum: out[o, t] = sum_{i, j} w[o, i, j] x[i, t + j - r] + b[o]."""
    c_out, _, k = weight.shape
    r = k // 2
    T = x.shape[1]
    out = torch.zeros(c_out, T, dtype=torch.float64)
    for t in range(T):
        for j in range(k):
            s = t + j - r
            if 0 <= s < T:
                out[:, t] += weight[:, :, j].double() @ x[:, s].double()
    return out + (0 if bias is None else bias.double()[:, None])


def _layer_norm_by_hand(x, weight, bias, eps=1e-5):
    mu = x.mean(0, keepdim=True)
    var = ((x - mu) ** 2).mean(0, keepdim=True)
    return (x - mu) / torch.sqrt(var + eps) * weight.double()[:, None] + bias.double()[:, None]


def _ame_by_hand(ame, x):
    """Eq. 1 on one unpadded (C, T) sequence."""
    h = x.double()
    for layer in ame.layers.layers:
        h = _conv_by_hand(h, layer.conv.conv.weight, layer.conv.conv.bias)
        h = torch.relu(_layer_norm_by_hand(h, layer.norm.weight, layer.norm.bias))
    return _conv_by_hand(h, ame.out.conv.weight, ame.out.conv.bias)


def test_action_masking_encoder_is_eq1_and_ignores_padding():
    torch.manual_seed(0)
    ame = ActionMaskingEncoder(dim=4, hidden_dim=6, num_layers=2, kernel_size=3)
    for p in ame.parameters():                                    # non-trivial LN affine and biases
        torch.nn.init.normal_(p, std=0.5)
    x = torch.randn(2, 4, 9)
    mask = prefix_mask([9, 6], 9)
    out = ame(fill_padding(x, mask), mask)
    assert out.shape == x.shape
    for b, n in enumerate([9, 6]):
        assert torch.allclose(out[b, :, :n].double(), _ame_by_hand(ame, x[b, :, :n]), atol=1e-5)
        assert (out[b, :, n:] == 0).all()


def test_positive_snippets_and_packing_by_hand():
    T = 8
    valid = prefix_mask([8, 7], T)
    pos = positive_snippets([torch.tensor([[2.0, 4.5]]), torch.tensor([[0.0, 1.0], [6.0, 7.5]])], valid)
    assert pos[0].nonzero().flatten().tolist() == [2, 3, 4]
    assert pos[1].nonzero().flatten().tolist() == [0, 1, 6]     # step 7 is padding
    x = torch.randn(2, 3, T)
    neg = valid & ~pos
    packed, mask = pack_snippets(torch.cat([x, x]), torch.cat([pos, neg]))
    expect = [x[0][:, [2, 3, 4]], x[1][:, [0, 1, 6]], x[0][:, [0, 1, 5, 6, 7]], x[1][:, [2, 3, 4, 5]]]
    assert packed.shape[-1] == 5
    for row, e in enumerate(expect):
        n = e.shape[1]
        assert mask[row].tolist() == [True] * n + [False] * (5 - n)
        assert torch.equal(packed[row, :, :n], e) and (packed[row, :, n:] == 0).all()


# ---------------------------------------------------------------------------- 3.2 triplet loss, Eq. 2-3
def test_triplet_loss_hand_values():
    e0, e1 = torch.tensor([1.0, 0.0]), torch.tensor([0.0, 1.0])
    a = torch.stack([e0, e0])
    p = torch.stack([e0, e1])
    n = torch.stack([e1, e0])
    # row 0: d_pos 0, d_neg 2 -> [0 - 2 + 0.2]_+ = 0; row 1: d_pos 2, d_neg 0 -> 2.2
    assert triplet_loss(a, p, n, margin=0.2).item() == pytest.approx(1.1)
    # without normalisation the scale counts: a = (3, 0), p = (0, 0), n = (1, 0): [9 - 4 + 1]_+ = 6
    assert triplet_loss(3 * e0[None], 0 * e0[None], e0[None], margin=1.0, normalize=False).item() == pytest.approx(6)
    assert triplet_loss(3 * e0[None], 0.1 * e1[None], e0[None], margin=1.0).item() == pytest.approx(3.0)


@pytest.mark.parametrize("distance", ["snippet", "pooled"])
@torch.no_grad()
def test_model_triplet_loss_matches_brute_force(distance):
    model = make(triplet_distance=distance, triplet_margin=0.5)
    batch = toy_batch()
    outputs = model.run(batch)
    got = model.mask_triplet_loss(outputs, batch)
    x, f_mask, ame = outputs["input_feats"], outputs["action_mask"], model.action_masking_encoder
    terms = []
    for b, n in enumerate([64, 50]):
        steps = [t for t in range(n) if any(s <= t <= e for s, e in batch["segments"][b].tolist())]
        rest = [t for t in range(n) if t not in steps]
        p = ame(x[b:b + 1, :, steps], torch.ones(1, len(steps), dtype=torch.bool))[0].mean(1)   # F̂_pos, pooled
        q = ame(x[b:b + 1, :, rest], torch.ones(1, len(rest), dtype=torch.bool))[0].mean(1)     # F̂_neg, pooled
        anchors = [f_mask[b, :, t] for t in steps] if distance == "snippet" else [f_mask[b, :, :n].mean(1)]
        for a in anchors:
            a, pp, qq = (v / v.norm() for v in (a, p, q))
            terms.append(max(float(((a - pp) ** 2).sum() - ((a - qq) ** 2).sum()) + 0.5, 0.0))
    assert got.item() == pytest.approx(sum(terms) / len(terms), rel=1e-4, abs=1e-6)


def test_triplet_loss_skips_videos_without_background():
    model = make()
    batch = toy_batch()
    batch["segments"] = [torch.tensor([[0.0, 63.0]]), torch.zeros(0, 2)]     # all action; no action
    batch["labels"] = [torch.tensor([0]), torch.zeros(0, dtype=torch.long)]
    out = model(batch)
    assert out["trip_loss"].item() == 0.0 and out["trip_loss"].requires_grad


# ---------------------------------------------------------------------------- 3.3 GAM, Eq. 7-8
@pytest.mark.parametrize("position", [False, True])
def test_group_attention_matches_brute_force(position):
    torch.manual_seed(0)
    dim, heads = 8, 2
    gam = GroupAttentionModule(dim, heads, split=2, mlp_ratio=2.0, position=position)
    for p in gam.parameters():
        torch.nn.init.normal_(p, std=0.4)
    lengths, valid = [8, 4, 2, 1], [[8, 4, 2, 1], [5, 3, 2, 1]]
    feats = [torch.randn(2, dim, n) for n in lengths]
    masks = [torch.stack([torch.arange(n) < v[i] for v in valid]) for i, n in enumerate(lengths)]
    feats = [fill_padding(x, m) for x, m in zip(feats, masks)]
    out, out_masks = gam(feats, masks)
    assert [x.shape[-1] for x in out] == lengths and out_masks is masks

    def ln(x, norm):            # (T, C)
        return F.layer_norm(x, (dim,), norm.weight, norm.bias)

    def lin(x, conv):           # (T, C) @ W^T + b
        return x @ conv.weight[:, :, 0].T + conv.bias

    def sine(level, n):         # (n, C): sin / cos of time (input steps, stride 2^level) at 10000^(-j / (C/2))
        t = torch.arange(n, dtype=torch.float64)[:, None] * 2 ** level
        freq = 10000.0 ** (-torch.arange(dim // 2, dtype=torch.float64) / (dim // 2))
        return torch.cat([torch.sin(t * freq), torch.cos(t * freq)], 1).float() * position

    def block(g, other, pe_g, pe_other):   # Y = G + MCA(K, V, Q); out = Y + MLP(LN(Y)), one sample, (T, C)
        q, k, v = lin(ln(g, gam.norm_in) + pe_g, gam.q_proj), lin(ln(other, gam.norm_in) + pe_other, gam.k_proj), \
            lin(ln(other, gam.norm_in), gam.v_proj)
        d = dim // heads
        att = torch.cat([torch.softmax(q[:, h * d:(h + 1) * d] @ k[:, h * d:(h + 1) * d].T / math.sqrt(d), -1)
                         @ v[:, h * d:(h + 1) * d] for h in range(heads)], 1)
        y = g + lin(att, gam.out_proj)
        mlp0, mlp1 = gam.mlp[0], gam.mlp[3]
        return y + lin(F.gelu(lin(ln(y, gam.norm), mlp0)), mlp1)

    for b in range(2):
        levels = [feats[i][b, :, :valid[b][i]].T for i in range(4)]
        short, long_ = torch.cat(levels[:2]), torch.cat(levels[2:])
        pe = [sine(i, valid[b][i]) for i in range(4)]
        pe_short, pe_long = torch.cat(pe[:2]), torch.cat(pe[2:])
        expect = (list(block(short, long_, pe_short, pe_long).split(valid[b][:2]))
                  + list(block(long_, short, pe_long, pe_short).split(valid[b][2:])))
        for i in range(4):
            n = valid[b][i]
            assert torch.allclose(out[i][b, :, :n].T, expect[i], atol=1e-5), (b, i)
            assert (out[i][b, :, n:] == 0).all()


# ---------------------------------------------------------------------------- 3.3-3.4 matching score
def test_matching_head_scales_per_level():
    torch.manual_seed(0)
    head = MatchingScoreHead(4, 6, num_levels=2)
    feats, masks = [torch.randn(1, 4, 6), torch.randn(1, 4, 3)], [torch.ones(1, 6, dtype=torch.bool)] * 2
    masks[1] = torch.ones(1, 3, dtype=torch.bool)
    before = head(feats, masks)
    with torch.no_grad():
        head.scales[1].scale.fill_(2.0)                              # ω_M of level 2
    after = head(feats, masks)
    assert before.shape == (1, 9)
    assert torch.equal(after[:, :6], before[:, :6]) and torch.allclose(after[:, 6:], 2 * before[:, 6:])


@pytest.mark.parametrize("kind", ["l2", "l1", "bce"])
def test_matching_loss_hand_values(kind):
    model = make(matching_loss=kind, confidence="sigmoid_sigmoid" if kind == "bce" else "sigmoid_tanh")
    m = torch.tensor([[0.3, -1.0, 2.0]], requires_grad=True)
    offsets = torch.tensor([[[1.0, 1.0], [2.0, 2.0], [0.5, 0.5]]], requires_grad=True)
    # point 0: pred [-1, 1] vs gt [-1, 3] -> tIoU 0.5; point 1 is negative; point 2: [-0.5, 0.5] vs [-1, 1] -> 0.5
    targets = Targets(torch.zeros(1, 3, K), torch.tensor([[[1.0, 3.0], [0.0, 0.0], [1.0, 1.0]]]),
                      torch.tensor([[0, -1, 0]]))
    outputs = {"valid": torch.ones(1, 3, dtype=torch.bool), "matching": m, "offsets": offsets}
    got = model.matching_score_loss(outputs, targets)
    terms = []
    for mk in (0.3, 2.0):
        if kind == "bce":
            s = 1 / (1 + math.exp(-mk))
            terms.append(-(0.5 * math.log(s) + 0.5 * math.log(1 - s)))
        else:
            diff = math.tanh(mk) - 0.5
            terms.append(diff ** 2 if kind == "l2" else abs(diff))
    assert got.item() == pytest.approx(sum(terms), rel=1e-5)
    got.backward()
    assert offsets.grad is None                                      # the tIoU target is detached


@pytest.mark.parametrize("confidence", ["sigmoid", "sigmoid_sigmoid", "sigmoid_tanh"])
def test_decode_ranks_by_eq14_confidence(confidence):
    model = make(confidence=confidence, pre_nms_thresh=0.05, pre_nms_topk=10_000).eval()
    batch = toy_batch()
    with torch.no_grad():
        outputs = model.run(batch)
        outputs["cls_logits"] = torch.randn_like(outputs["cls_logits"]) * 2
        outputs["matching"] = torch.randn_like(outputs["matching"]) * 2      # negative tanh included
    preds = model.decode(outputs)
    act = {"sigmoid": lambda m: torch.ones_like(m), "sigmoid_sigmoid": torch.sigmoid,
           "sigmoid_tanh": torch.tanh}[confidence]
    points = outputs["points"]
    for b, pred in enumerate(preds):
        expect = []
        for p in range(points.shape[0]):
            if not outputs["valid"][b, p]:
                continue
            t, s = float(points[p, 0]), float(points[p, 3])
            seg = (t - float(outputs["offsets"][b, p, 0]) * s, t + float(outputs["offsets"][b, p, 1]) * s)
            for k in range(K):
                score = float(torch.sigmoid(outputs["cls_logits"][b, p, k].double())
                              * act(outputs["matching"][b, p].double()))
                if score > 0.05 and seg[1] - seg[0] > model.duration_thresh:
                    expect.append((score, k, *seg))
        expect.sort(reverse=True)
        assert len(pred) == len(expect) > 0
        assert torch.allclose(torch.as_tensor(pred.scores), torch.tensor([e[0] for e in expect], dtype=torch.float64))
        assert pred.labels.tolist() == [e[1] for e in expect]


# ---------------------------------------------------------------------------- switches and Eq. 12
def test_switches_remove_their_modules_and_losses():
    batch = toy_batch()
    full = make()
    out = full(batch)
    assert set(out) == {"loss", "cls_loss", "reg_loss", "mat_loss", "trip_loss"}
    assert torch.allclose(out["loss"], out["cls_loss"] + out["reg_loss"] + out["mat_loss"] + out["trip_loss"])
    for switch, prefix, loss in (("ame", "action_masking_encoder.", "trip_loss"), ("gam", "group_attention.", None),
                                 ("matching_head", "matching_score_head.", "mat_loss")):
        model = make(**{switch: False})
        assert not any(n.startswith(prefix) for n in model.state_dict())
        assert any(n.startswith(prefix) for n in full.state_dict())
        keys = set(model(batch))
        assert loss is None or loss not in keys


def test_loss_weights_are_eq12():
    out = make(reg_loss_weight=0.5, triplet_loss_weight=2.0)(toy_batch())
    expect = out["cls_loss"] + 0.5 * (out["reg_loss"] + out["mat_loss"]) + 2.0 * out["trip_loss"]
    assert torch.allclose(out["loss"], expect)


def test_padding_never_reaches_the_losses():
    batch = toy_batch()
    a = make(gam_split=1)(batch)
    batch["feats"] = fill_padding(batch["feats"], batch["masks"], value=-7e2)
    b = make(gam_split=1)(batch)
    for k in a:
        assert torch.allclose(a[k], b[k], atol=1e-6), k


def test_invalid_settings_are_config_errors():
    for kw in (dict(matching_loss="bce"), dict(confidence="tanh"), dict(matching_loss="mse"),
               dict(triplet_distance="hard"), dict(gam_split=4), dict(gam_split=0), dict(ame_layers=0)):
        with pytest.raises(ConfigError):
            make(**kw)


# ---------------------------------------------------------------------------- 3.4 two-phase update
def _split_grads(model, batch):
    """Gradients of the total, of λ2·L_trip alone and of the detector losses alone."""
    out = model(batch)
    detector = out["cls_loss"] + model.reg_loss_weight * (out["reg_loss"] + out["mat_loss"])
    model.zero_grad()
    (model.triplet_loss_weight * out["trip_loss"]).backward(retain_graph=True)
    trip = grads(model)
    model.zero_grad()
    detector.backward(retain_graph=True)
    det = grads(model)
    model.zero_grad()
    out["loss"].backward()
    return grads(model), trip, det


def test_two_phase_routes_each_loss_to_its_own_parameters():
    model = make(two_phase=True, triplet_loss_weight=1.5)
    total, trip, det = _split_grads(model, toy_batch())
    for name in total:
        in_ame = name.startswith("action_masking_encoder.")
        assert torch.allclose(total[name], trip[name] if in_ame else det[name], atol=1e-7), name
        assert (det[name] if in_ame else trip[name]).abs().sum() == 0, name
    assert all(trip[n].abs().sum() > 0 for n in trip if n.startswith("action_masking_encoder."))
    # the joint update (Eq. 12 as written) lets the detector losses train the AME too
    total, trip, det = _split_grads(make(two_phase=False), toy_batch())
    assert det["action_masking_encoder.out.conv.weight"].abs().sum() > 0
    assert torch.allclose(total["action_masking_encoder.out.conv.weight"],
                          trip["action_masking_encoder.out.conv.weight"] + det["action_masking_encoder.out.conv.weight"],
                          atol=1e-6)


def test_one_engine_step_is_phase_one_then_phase_two():
    """``loss.backward(); optimizer.step()`` once == an AdamW step of the AME on L_trip, then of the rest on
    the detector losses (computed on the same forward, i.e. with the mask before phase 1)."""
    batch = toy_batch()
    engine = make()
    opt = torch.optim.AdamW(engine.parameters(), lr=1e-2, weight_decay=0.05)
    engine(batch)["loss"].backward()
    opt.step()

    phased = make()
    ame = [p for n, p in phased.named_parameters() if n.startswith("action_masking_encoder.")]
    rest = [p for n, p in phased.named_parameters() if not n.startswith("action_masking_encoder.")]
    out = phased(batch)
    (phased.triplet_loss_weight * out["trip_loss"]).backward(retain_graph=True)     # phase 1
    torch.optim.AdamW(ame, lr=1e-2, weight_decay=0.05).step()
    phased.zero_grad()
    (out["cls_loss"] + out["reg_loss"] + out["mat_loss"]).backward()                 # phase 2
    torch.optim.AdamW(rest, lr=1e-2, weight_decay=0.05).step()
    for (name, a), b in zip(engine.named_parameters(), phased.parameters()):
        assert torch.allclose(a, b, atol=1e-6), name


# ---------------------------------------------------------------------------- learning and prediction
def test_training_reduces_the_loss_and_predict_returns_instances():
    model = make()
    batch = toy_batch()
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    history = []
    for _ in range(25):
        loss = model(batch)["loss"]
        opt.zero_grad(), loss.backward(), opt.step()
        history.append(loss.item())
    assert history[-1] < 0.6 * history[0]
    model.eval()
    preds = model.predict(batch)
    assert len(preds) == 2 and all(isinstance(p, Instances) and len(p) > 0 for p in preds)
    assert (preds[0].scores[:-1] >= preds[0].scores[1:]).all() and (preds[0].scores > 0).all()


@pytest.mark.parametrize("name", ["thumos14", "activitynet", "custom"])
def test_configs_hold_the_paper_settings(name):
    cfg = tadkit.load_config(ROOT / "configs" / "amnet" / f"{name}.yaml")
    m, t = cfg.model.params, cfg.train
    assert cfg.model.name == "amnet" and m["ame"] and m["gam"] and m["matching_head"]
    assert (m["reg_loss"], m["reg_loss_weight"], m["triplet_loss_weight"]) == ("iou", 1.0, 1.0)
    assert (m["confidence"], m["matching_loss"], cfg.test.nms) == ("sigmoid_tanh", "l2", "soft")
    assert (t.optimizer, t.weight_decay, t.schedule) == ("adamw", 0.05, "cosine")
    expect = (1e-3, 10, 16) if name == "activitynet" else (1e-4, 45, 4)
    assert (t.lr, t.epochs, t.batch_size) == expect
    # custom.yaml's two departures (amnet.py docstring): the joint update and GAM's position encoding
    assert (m.get("two_phase", True), m.get("gam_position", False)) == ((False, True) if name == "custom" else (True, False))
