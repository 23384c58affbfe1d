"""ASL: each module against a hand or brute-force computation, and the switches."""
import math

import pytest
import torch

from tadkit.models import build_detector
from tadkit.models.detectors.asl import (ASL, ClassLevelSensitivity, InstanceLevelEvaluator,
                                         action_sensitive_contrastive_loss, evaluate_at)
from tadkit.models.layers import to_channels_last

TINY = dict(embed_dim=16, fpn_dim=16, head_dim=16, num_heads=2, branch_layers=2, window_size=5,
            regression_ranges=[[0, 4], [4, 8], [8, 10_000]], path_dropout=0.0)


def toy_batch(seed=0, b=2, c=8, t=64):
    g = torch.Generator().manual_seed(seed)
    feats = torch.randn(b, c, t, generator=g)
    masks = torch.ones(b, t, dtype=torch.bool)
    masks[1, 50:] = False
    segments = [torch.tensor([[5.0, 20.0], [30.0, 33.0], [40.0, 60.0]]), torch.tensor([[10.0, 30.0], [35.0, 45.0]])]
    labels = [torch.tensor([0, 1, 0]), torch.tensor([2, 0])]
    for s, lab, bb in zip(segments, labels, range(b)):       # make the actions visible in the features
        for (a, e), k in zip(s.long().tolist(), lab.tolist()):
            feats[bb, k, a:e] += 3.0
    return {"feats": feats, "masks": masks, "segments": segments, "labels": labels}


def make(name="asl", seed=0, **kw):
    torch.manual_seed(seed)
    return build_detector(name, num_classes=3, input_dim=8, max_seq_len=64, **{**TINY, **kw})


def test_all_switches_off_is_the_baseline():
    off = dict(ase_class=False, ase_instance=False, ascl=False, channel_attention_theta=0.0)
    asl, base = make("asl", **off), make("actionformer")
    assert asl.state_dict().keys() == base.state_dict().keys()
    for k, v in base.state_dict().items():
        assert torch.equal(asl.state_dict()[k], v), k
    batch = toy_batch()
    la, lb = asl(batch), base(batch)
    assert set(la) == {"loss", "cls_loss", "reg_loss"}
    for k in lb:
        assert torch.allclose(la[k], lb[k]), k


def test_class_level_gaussians_hand_values():
    cs = ClassLevelSensitivity(num_classes=2, num_cls=1, num_loc=2)
    d = torch.tensor([-0.5, 0.0, 0.25, 0.5])
    lab = torch.tensor([0, 1, 0, 1])
    # initial mu_cls 0, sigma 1: exp(-d^2 / 2); loc: start at -0.5 and end at +0.5
    assert torch.allclose(cs.p_cls(d, lab), torch.exp(-d ** 2 / 2))
    expect_loc = torch.exp(-(d + 0.5) ** 2 / 2) + torch.exp(-(d - 0.5) ** 2 / 2)
    assert torch.allclose(cs.p_loc(d, lab), expect_loc)
    with torch.no_grad():
        cs.cls_sigma.fill_(100.0)     # clamped at sigma_max = 5
        cs.cls_mu[1] = 0.3
    assert torch.allclose(cs.p_cls(d, lab), torch.exp(-(d - torch.tensor([0, .3, 0, .3])) ** 2 / (2 * 25)))


def test_fixed_gaussians_are_buffers_and_counts_follow_table_7():
    cs = ClassLevelSensitivity(3, num_cls=1, num_loc=2, learnable_cls=False, learnable_loc=True)
    names = {n for n, _ in cs.named_parameters()}
    assert names == {"loc_mu", "loc_sigma"}
    assert ClassLevelSensitivity(3, num_cls=0, num_loc=0).p_cls(torch.zeros(2), torch.zeros(2, dtype=torch.long)) is None
    shared = ClassLevelSensitivity(3, num_cls=1, num_loc=2, shared=True)
    d, lab = torch.linspace(-0.5, 0.5, 5), torch.zeros(5, dtype=torch.long)
    assert torch.equal(shared.p_loc(d, lab), shared.p_cls(d, lab))


@pytest.mark.parametrize("class_negatives", [True, False])
def test_contrastive_loss_matches_brute_force(class_negatives):
    g = torch.Generator().manual_seed(1)
    anchors, bg = torch.randn(6, 5, generator=g), torch.randn(3, 5, generator=g)
    labels = torch.tensor([0, 1, 0, 1, 2, 0])
    tau = 0.07
    got = action_sensitive_contrastive_loss(anchors, labels, bg, tau, class_negatives=class_negatives)
    a = torch.nn.functional.normalize(anchors, dim=1)
    z = torch.nn.functional.normalize(bg, dim=1)
    terms = []
    for i in range(6):
        pos = sum(math.exp(float(a[i] @ a[j]) / tau) for j in range(6) if j != i and labels[j] == labels[i])
        neg = sum(math.exp(float(a[i] @ a[j]) / tau) for j in range(6) if labels[j] != labels[i] and class_negatives)
        neg += sum(math.exp(float(a[i] @ z[j]) / tau) for j in range(3))
        if pos > 0:
            terms.append(-math.log(pos / (pos + neg)))
    assert got.item() == pytest.approx(sum(terms) / len(terms), rel=1e-5)


def test_sensitive_range_weights_hand_case():
    # one gt [10, 30] (N_f = 20), delta 0.2: range +-4 around the most sensitive step
    t = torch.arange(40, dtype=torch.float32)
    seg = torch.tensor([[10.0, 30.0]])
    inside = (t[None] >= 10) & (t[None] <= 30)
    d = ((t - 20) / 20).clamp(-0.5, 0.5)[None]
    parts = torch.exp(-d ** 2 / 2)[..., None]                        # peak at the centre, step 20
    w = ASL._sensitive_weights(parts, inside, t, 0.2 * 20 * torch.ones(1, 1), weighted=True)
    assert torch.nonzero(w[0]).flatten().tolist() == list(range(16, 25))
    assert torch.allclose(w[0, 16:25], parts[0, 16:25, 0])
    loc = torch.stack([torch.exp(-(d + 0.5) ** 2 / 2), torch.exp(-(d - 0.5) ** 2 / 2)], -1)   # start and end
    w = ASL._sensitive_weights(loc, inside, t, 4 * torch.ones(1, 1), weighted=False)
    assert torch.nonzero(w[0]).flatten().tolist() == list(range(10, 15)) + list(range(26, 31))
    del seg


def test_normalized_sensitivity_has_unit_mean_per_instance():
    model = make()
    h = torch.tensor([0.2, 0.4, 1.0, 3.0, 0.5])
    inst = torch.tensor([0, 0, 1, 1, 1])
    out = model._normalize(h, inst)
    assert torch.allclose(out[:2].mean(), torch.tensor(1.0)) and torch.allclose(out[2:].mean(), torch.tensor(1.0))
    assert torch.allclose(out[:2] / out[:2].sum(), h[:2] / h[:2].sum())


def test_full_asl_losses_and_gradients():
    model = make()
    out = model(toy_batch())
    assert {"loss", "cls_loss", "reg_loss", "sensitivity_loss", "ascl_loss"} <= set(out)
    assert all(torch.isfinite(v) for v in out.values())
    expected = out["cls_loss"] + out["reg_loss"] + out["sensitivity_loss"] + 0.3 * out["ascl_loss"]   # Eq. 15
    assert torch.allclose(out["loss"], expected)
    out["loss"].backward()
    assert model.class_sensitivity.cls_mu.grad is not None and model.class_sensitivity.cls_mu.grad.abs().sum() > 0
    assert model.cls_evaluator.fc.weight.grad.abs().sum() > 0


def test_evaluators_at_points_equal_each_full_convolution_read_there():
    torch.manual_seed(7)
    phis = [InstanceLevelEvaluator(6, 4), InstanceLevelEvaluator(6, 4)]
    for p in (p for phi in phis for p in phi.parameters()):
        torch.nn.init.normal_(p)
    phis = [phi.double() for phi in phis]
    lengths = [[12, 9], [6, 5], [3, 3]]
    masks = [torch.arange(n)[None] < torch.tensor(lens)[:, None] for lens, n in zip(lengths, [12, 6, 3])]
    feats = [torch.randn(2, 6, m.shape[1], dtype=torch.float64) * m[:, None] for m in masks]   # zero at invalid steps
    valid = torch.cat(masks, 1)
    b_idx, p_idx = valid.nonzero(as_tuple=True)        # every valid point, level ends included
    perm = torch.randperm(len(b_idx))                  # in no particular order
    b_idx, p_idx = b_idx[perm], p_idx[perm]
    for layout in (lambda x: x, to_channels_last):
        for phi in phis:
            phi.zero_grad()
        leaves = [layout(f.clone()).requires_grad_() for f in feats]
        at = evaluate_at(phis, leaves, b_idx, p_idx)
        for phi, q in zip(phis, at):
            full = phi(feats, masks)[b_idx, p_idx]
            torch.testing.assert_close(q, full)
            # Eq. 5 by hand on each level alone: conv (k 3, zero padded), ReLU, FC
            ref = torch.cat([torch.sigmoid(torch.einsum(
                "bht,h->bt", torch.relu(torch.nn.functional.conv1d(x, phi.conv.conv.weight, phi.conv.conv.bias,
                                                                   padding=1)),
                phi.fc.weight[0, :, 0]) + phi.fc.bias[0]) for x in feats], 1)[b_idx, p_idx]
            torch.testing.assert_close(q, ref)
        # the same gradients as the full convolutions read at the points
        w = torch.randn(2, len(b_idx), dtype=torch.float64)
        (w[0] * at[0] + w[1] * at[1]).sum().backward()
        grads = [x.grad.clone() for x in leaves] + [p.grad.clone() for phi in phis for p in phi.parameters()]
        for phi in phis:
            phi.zero_grad()
        full_leaves = [f.clone().requires_grad_() for f in feats]
        (w[0] * phis[0](full_leaves, masks)[b_idx, p_idx] + w[1] * phis[1](full_leaves, masks)[b_idx, p_idx]).sum().backward()
        full_grads = [x.grad for x in full_leaves] + [p.grad for phi in phis for p in phi.parameters()]
        assert len(full_grads) == len(grads) == 3 + 8
        for g, ref in zip(grads, full_grads):
            torch.testing.assert_close(g, ref)


def test_instance_evaluators_learn_only_from_the_sensitivity_loss():
    model = make(ascl=False)
    out = model(toy_batch())
    (out["cls_loss"] + out["reg_loss"]).backward()
    assert model.cls_evaluator.fc.weight.grad is None or model.cls_evaluator.fc.weight.grad.abs().sum() == 0


def test_sensitivity_changes_the_weighting():
    batch = toy_batch()
    a = make(ase_instance=False, ascl=False)(batch)
    b = make(ase_class=False, ase_instance=False, ascl=False)(batch)
    assert not torch.allclose(a["cls_loss"], b["cls_loss"])


def test_training_reduces_the_loss():
    model = make()
    batch = toy_batch()
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    first = None
    for _ in range(40):
        loss = model(batch)["loss"]
        first = first if first is not None else loss.item()
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 0.6 * first
    model.eval()
    preds = model.predict(batch)
    assert len(preds) == 2 and len(preds[0]) > 0
    assert (preds[0].scores[:-1] >= preds[0].scores[1:]).all()


def test_ascl_center_sampling_pools_around_the_centre_like_ascl_alone():
    batch = toy_batch()
    centre = make(ascl_sampling="center")
    alone = make(ase_class=False)                    # Table 5, row 4: ASCL pools around the centre
    alone.load_state_dict({k: v for k, v in centre.state_dict().items() if not k.startswith("class_sensitivity")})
    sensitive = make()
    sensitive.load_state_dict(centre.state_dict())
    for m in (centre, alone, sensitive):
        m.eval()
    a, b, c = (m(batch)["ascl_loss"].item() for m in (centre, alone, sensitive))
    assert a == pytest.approx(b, rel=1e-6)
    assert c != pytest.approx(a, rel=1e-3)           # the paper's: ranges around the Gaussians' peaks
    with pytest.raises(Exception, match="ascl_sampling"):
        make(ascl_sampling="edges")
