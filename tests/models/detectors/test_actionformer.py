import math

import numpy as np
import pytest
import torch

from tadkit.core.errors import ConfigError
from tadkit.core.instances import Instances
from tadkit.models import build_detector, detector_defaults
from tadkit.models.detectors.actionformer import ActionFormer
from tadkit.models.layers import model_inputs
from tests.models.helpers import prefix_mask

TINY = dict(embed_dim=16, num_heads=2, embed_layers=1, stem_layers=1, branch_layers=2, window_size=5,
            fpn_dim=16, head_dim=16, regression_ranges=[(0, 4), (4, 8), (8, math.inf)], path_dropout=0.0)
C, K = 8, 2


def tiny(**kw):
    torch.manual_seed(0)
    return build_detector("actionformer", num_classes=K, input_dim=C, max_seq_len=64, **{**TINY, **kw})


def toy_batch(T=64, lengths=(64, 40), seed=0):
    """Noise features with a class pattern inside each action; padding filled with garbage."""
    g = torch.Generator().manual_seed(seed)
    segments = [torch.tensor([[5.0, 17.0], [30.0, 36.0]]), torch.tensor([[10.0, 30.0]])]
    labels = [torch.tensor([0, 1]), torch.tensor([1])]
    prototypes = torch.randn(K, C, generator=g) * 2
    feats = torch.randn(len(lengths), C, T, generator=g) * 0.3
    for b, (segs, labs) in enumerate(zip(segments, labels)):
        for (s, e), lab in zip(segs.tolist(), labs.tolist()):
            feats[b, :, int(s):int(e)] += prototypes[lab][:, None]
    masks = prefix_mask(list(lengths), T)
    feats[~masks[:, None, :].expand_as(feats)] = 50.0
    return {"feats": feats, "masks": masks, "segments": segments[:len(lengths)], "labels": labels[:len(lengths)],
            "video_ids": ["a", "b"][:len(lengths)]}


def test_forward_gives_finite_losses_with_gradients():
    model = tiny().train()
    losses = model(toy_batch())
    assert {"loss", "cls_loss", "reg_loss"} <= set(losses)
    assert all(torch.isfinite(v) and v.ndim == 0 for v in losses.values())
    assert losses["reg_loss"] > 0 and losses["cls_loss"] > 0
    losses["loss"].backward()
    grads = {n: p.grad for n, p in model.named_parameters()}
    assert grads["cls_head.predictor.conv.weight"].abs().sum() > 0
    assert grads["reg_head.scales.0.scale"] is not None
    assert grads["backbone.embed.layers.0.conv.conv.weight"].abs().sum() > 0
    assert all(torch.isfinite(g).all() for g in grads.values() if g is not None)


def test_optimisation_on_a_fixed_batch_reduces_the_loss_and_finds_the_actions():
    model = tiny(loss_norm_momentum=0.0).train()  # normaliser = #positives: losses comparable across steps
    batch = toy_batch()
    opt = torch.optim.Adam(model.parameters(), lr=5e-3)
    history = []
    for _ in range(40):
        loss = model(batch)["loss"]
        opt.zero_grad()
        loss.backward()
        opt.step()
        history.append(loss.item())
    assert history[-1] < 0.3 * history[0]
    for found, segments, labels in zip(model.eval().predict(batch), batch["segments"], batch["labels"]):
        top = found.topk(5)
        for (s, e), label in zip(segments.tolist(), labels.tolist()):
            same = top[top.labels == label]
            iou = (np.minimum(same.ends, e) - np.maximum(same.starts, s)) / (np.maximum(same.ends, e)
                                                                               - np.minimum(same.starts, s))
            assert iou.max(initial=0.0) > 0.7, (s, e, label, top)


def test_predict_structure():
    model = tiny().eval()
    batch = toy_batch()
    out = model.predict(batch)
    assert isinstance(out, list) and len(out) == 2 and all(isinstance(x, Instances) for x in out)
    for inst, length in zip(out, (64, 40)):
        assert inst.segments.dtype == np.float64 and inst.labels.dtype == np.int64 and inst.scores.dtype == np.float64
        assert len(inst) > 0 and (inst.scores > 1e-3).all() and (inst.scores <= 1).all()
        assert np.all(np.diff(inst.scores) <= 0)  # sorted by score
        assert set(inst.labels.tolist()) <= set(range(K))
        assert (inst.lengths > 0.05).all()
    # per level at most pre_nms_topk candidates
    capped = tiny(pre_nms_topk=3).eval().predict(batch)
    assert all(len(x) <= 3 * 3 for x in capped)
    # without thresholds: one candidate per valid point (levels of 40, 20, 10 steps) and class, none from padding
    everything = tiny(pre_nms_thresh=0.0, duration_thresh=-1.0).eval().predict(batch)[1]
    assert len(everything) == (40 + 20 + 10) * K


def test_padding_does_not_change_outputs():
    model = tiny().eval()
    batch = toy_batch()
    clean = dict(batch, feats=batch["feats"].masked_fill(~batch["masks"][:, None, :], 0.0))
    garbage, zeros = model.predict(batch), model.predict(clean)
    alone = model.predict({"feats": batch["feats"][1:, :, :40], "masks": batch["masks"][1:, :40]})[0]
    longer = model.predict({"feats": torch.nn.functional.pad(batch["feats"][1:], (0, 37), value=-9.0),
                            "masks": torch.nn.functional.pad(batch["masks"][1:], (0, 37))})[0]
    for other in (zeros[1], alone, longer):
        assert len(other) == len(garbage[1])
        assert np.allclose(other.segments, garbage[1].segments, atol=1e-4)
        assert np.allclose(other.scores, garbage[1].scores, atol=1e-5)
    assert np.array_equal(garbage[0].labels, zeros[0].labels)


def test_steps_after_every_video_are_cut_with_no_change_to_the_losses():
    model = tiny().eval()
    batch = toy_batch(lengths=(40, 21))                  # valid up to step 40 of 64
    padded = dict(batch, feats=torch.nn.functional.pad(batch["feats"], (0, 100), value=-9.0),
                  masks=torch.nn.functional.pad(batch["masks"], (0, 100)))
    cut = model.run(padded)
    # 40 steps (a multiple of the pyramid's 4) kept: levels of 40 / 20 / 10 points, not 164 / 82 / 41
    assert [m.shape[1] for m in cut["fpn_masks"]] == [40, 20, 10]
    model.preprocess = lambda b: model_inputs(b, C, torch.device("cpu"))   # every step, nothing cut
    whole = model.run(padded)
    assert [m.shape[1] for m in whole["fpn_masks"]] == [164, 82, 41]
    starts = [0, 164, 246]
    for key in ("cls_logits", "offsets"):                # the kept points' outputs are the uncut ones
        ref = torch.cat([whole[key][:, s:s + n] for s, n in zip(starts, [40, 20, 10])], 1)
        torch.testing.assert_close(cut[key], ref, atol=1e-5, rtol=1e-5)
    uncut_losses = model(padded)
    del model.preprocess
    for name, value in model(padded).items():
        torch.testing.assert_close(value, uncut_losses[name], atol=1e-5, rtol=1e-5)
    nothing = {"feats": torch.randn(1, C, 12), "masks": torch.zeros(1, 12, dtype=torch.bool),
               "segments": [torch.zeros(0, 2)], "labels": [torch.zeros(0, dtype=torch.long)]}
    assert model.run(nothing)["cls_logits"].shape[1] == 4 + 2 + 1   # one multiple of 4 kept, no valid point


@pytest.mark.parametrize("T", [1, 7, 33])
def test_any_length_works(T):
    model = tiny().train()
    batch = {"feats": torch.randn(1, C, T), "masks": torch.ones(1, T, dtype=torch.bool),
             "segments": [torch.tensor([[0.0, T / 2 + 0.5]])], "labels": [torch.tensor([1])]}
    assert torch.isfinite(model(batch)["loss"])
    assert len(model.eval().predict(batch)) == 1


def test_empty_ground_truth_still_trains_the_classifier():
    model = tiny().train()
    batch = toy_batch()
    batch["segments"] = [torch.zeros(0, 2), torch.zeros(0, 2)]
    batch["labels"] = [torch.zeros(0, dtype=torch.long)] * 2
    losses = model(batch)
    assert losses["reg_loss"] == 0 and losses["cls_loss"] > 0
    losses["loss"].backward()


def test_loss_normaliser_is_an_ema_buffer_updated_in_training_only():
    model = tiny()
    assert "loss_normalizer" in model.state_dict() and model.loss_normalizer.item() == 100.0
    batch = toy_batch()
    model.eval()(batch)
    assert model.loss_normalizer.item() == 100.0
    model.train()
    outputs = model.run(batch)
    positives = (outputs["valid"] & (model.assign(outputs, batch).matched >= 0)).sum().item()
    losses = model.compute_losses(outputs, batch)
    assert positives > 0
    assert model.loss_normalizer.item() == pytest.approx(0.9 * 100 + 0.1 * positives)
    unnormalised = model.classification_loss(outputs, model.assign(outputs, batch))
    assert losses["cls_loss"].item() == pytest.approx(unnormalised.item() / model.loss_normalizer.item(), rel=1e-5)


def test_fpn_neck_giou_and_channel_attention_variants_train():
    model = tiny(neck="fpn", fpn_dim=12, reg_loss="giou", channel_attention_theta=0.2, window_size=[5, 3, None],
                 center_sample_radius=None, label_smoothing=0.1).train()
    losses = model(toy_batch())
    assert torch.isfinite(losses["loss"])
    losses["loss"].backward()


def test_bad_inputs_and_hyperparameters_raise_config_errors():
    with pytest.raises(ConfigError, match="input_dim=8"):
        tiny().predict({"feats": torch.randn(1, 5, 10), "masks": torch.ones(1, 10, dtype=torch.bool)})
    with pytest.raises(ConfigError, match="2 regression ranges for 3"):
        tiny(regression_ranges=[(0, 4), (4, math.inf)])
    with pytest.raises(ConfigError, match="reg_loss"):
        tiny(reg_loss="l1")
    with pytest.raises(ConfigError, match="neck"):
        tiny(neck="bifpn")


def test_defaults_are_the_published_thumos14_settings():
    d = detector_defaults("actionformer")
    assert (d["embed_dim"], d["fpn_dim"], d["head_dim"], d["num_heads"], d["window_size"]) == (512, 512, 512, 4, 19)
    assert (d["stem_layers"], d["branch_layers"], d["scale_factor"]) == (2, 5, 2)
    assert [tuple(r) for r in d["regression_ranges"]] == [(0, 4), (4, 8), (8, 16), (16, 32), (32, 64), (64, math.inf)]
    assert (d["center_sample_radius"], d["init_loss_norm"], d["loss_norm_momentum"]) == (1.5, 100.0, 0.9)
    assert (d["pre_nms_thresh"], d["pre_nms_topk"], d["cls_prior_prob"], d["reg_loss"]) == (1e-3, 2000, 0.01, "diou")


class _Weighted(ActionFormer):
    """A subclass in the way ASL extends the base: new hyperparameter, its own loss composition."""

    def __init__(self, num_classes, input_dim, max_seq_len=64, *, pos_weight: float = 3.0, **kwargs):
        super().__init__(num_classes, input_dim, max_seq_len, **kwargs)
        self.pos_weight = pos_weight

    def compute_losses(self, outputs, batch):
        targets = self.assign(outputs, batch)
        weight = 1 + (self.pos_weight - 1) * (targets.matched >= 0).float()  # (B, P)
        norm = self.normalizer((outputs["valid"] & (targets.matched >= 0)).sum())
        cls_loss = self.classification_loss(outputs, targets, weight) / norm
        reg_loss = self.regression_loss(outputs, targets, weight) / norm
        return {"loss": cls_loss + reg_loss, "cls_loss": cls_loss, "reg_loss": reg_loss}


def test_subclass_can_reweight_the_losses():
    torch.manual_seed(0)
    base = ActionFormer(K, C, **TINY)
    torch.manual_seed(0)
    sub = _Weighted(K, C, pos_weight=3.0, **TINY)
    batch = toy_batch()
    a, b = base.eval()(batch), sub.eval()(batch)
    assert b["reg_loss"].item() == pytest.approx(3 * a["reg_loss"].item(), rel=1e-5)
    assert b["cls_loss"] > a["cls_loss"]
