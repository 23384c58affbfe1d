"""Optimiser groups, learning-rate schedule and EMA against hand computations."""
from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from tadkit.config import TrainConfig
from tadkit.core.errors import ConfigError
from tadkit.engine.ema import ModelEMA
from tadkit.engine.optim import WarmupSchedule, build_optimizer, lr_factor, no_decay_names

from ._toy import ToyDetector


class Scale(nn.Module):
    def __init__(self):
        super().__init__()
        self.scale = nn.Parameter(torch.tensor([1.0]))


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.backbone = nn.Sequential(nn.Conv1d(4, 6, 3), nn.BatchNorm1d(6), nn.GroupNorm(2, 6))
        self.head = nn.Linear(6, 3)
        self.ln = nn.LayerNorm(3)
        self.scales = nn.ModuleList([Scale(), Scale()])
        self.query = nn.Parameter(torch.zeros(5, 3))        # a 2-d embedding: decayed
        self.frozen = nn.Linear(2, 2)
        self.frozen.requires_grad_(False)


def _groups_by_param(opt):
    return {name: g for g in opt.param_groups for name in g["param_names"]}


def test_adamw_groups_no_decay_on_biases_norms_scales():
    net = Net()
    opt = build_optimizer(net, TrainConfig(lr=1e-3, weight_decay=0.05))
    assert isinstance(opt, torch.optim.AdamW)
    groups = _groups_by_param(opt)
    decayed = {n for n, g in groups.items() if g["weight_decay"] == 0.05}
    assert decayed == {"backbone.0.weight", "head.weight", "query"}
    free = {n for n, g in groups.items() if g["weight_decay"] == 0.0}
    assert free == {"backbone.0.bias", "backbone.1.weight", "backbone.1.bias", "backbone.2.weight",
                    "backbone.2.bias", "head.bias", "ln.weight", "ln.bias", "scales.0.scale", "scales.1.scale"}
    assert "frozen.weight" not in groups                       # frozen parameters are not optimised
    # AdamW really applies the difference: with zero gradients only decayed weights shrink
    before = {n: p.detach().clone() for n, p in net.named_parameters()}
    for p in net.parameters():
        p.grad = torch.zeros_like(p)
    opt.step()
    after = dict(net.named_parameters())
    assert not torch.equal(after["head.weight"], before["head.weight"])
    assert torch.equal(after["head.bias"], before["head.bias"]) and torch.equal(after["ln.weight"], before["ln.weight"])


def _hand_adamw(params, grads, steps, lr, wd, betas=(0.9, 0.999), eps=1e-8):
    """AdamW written out: decoupled decay, bias-corrected moments."""
    p = [x.detach().clone().double() for x in params]
    m = [torch.zeros_like(x) for x in p]
    v = [torch.zeros_like(x) for x in p]
    for t in range(1, steps + 1):
        for i, x in enumerate(p):
            g = grads[t - 1][i].double()
            x.mul_(1 - lr * wd[i])
            m[i] = betas[0] * m[i] + (1 - betas[0]) * g
            v[i] = betas[1] * v[i] + (1 - betas[1]) * g * g
            mhat, vhat = m[i] / (1 - betas[0] ** t), v[i] / (1 - betas[1] ** t)
            x.sub_(lr * mhat / (vhat.sqrt() + eps))
    return p


@pytest.mark.parametrize("fused", [True, False])
def test_adamw_update_matches_hand_formula_fused_or_not(fused):
    torch.manual_seed(0)
    net = Net()
    opt = build_optimizer(net, TrainConfig(lr=1e-2, weight_decay=0.05, fused_optimizer=fused))
    assert bool(opt.defaults.get("fused")) is fused
    names = [n for g in opt.param_groups for n in g["param_names"]]
    params = [p for g in opt.param_groups for p in g["params"]]
    wd = [g["weight_decay"] for g in opt.param_groups for _ in g["params"]]
    grads = [[torch.randn_like(p) for p in params] for _ in range(4)]
    expected = _hand_adamw(params, grads, 4, 1e-2, wd)
    for step in grads:
        for p, g in zip(params, step):
            p.grad = g.clone()
        opt.step()
    for n, p, e in zip(names, params, expected):
        torch.testing.assert_close(p.detach().double(), e, rtol=1e-5, atol=1e-6, msg=n)


def test_fused_optimizer_state_resumes_in_the_loop_and_back():
    torch.manual_seed(0)
    nets = [Net(), Net()]
    nets[1].load_state_dict(nets[0].state_dict())
    fused = build_optimizer(nets[0], TrainConfig(lr=1e-2, fused_optimizer=True))
    loop = build_optimizer(nets[1], TrainConfig(lr=1e-2, fused_optimizer=False))
    grads = [[torch.randn_like(p) for p in nets[0].parameters() if p.requires_grad] for _ in range(4)]
    for i, step in enumerate(grads):
        if i == 2:   # swap the optimisers' states half-way: each continues the other's run
            state_f, state_l = fused.state_dict(), loop.state_dict()
            fused.load_state_dict(state_l)
            loop.load_state_dict(state_f)
        for net, opt in zip(nets, (fused, loop)):
            for p, g in zip([p for p in net.parameters() if p.requires_grad], step):
                p.grad = g.clone()
            opt.step()
    for (n, a), b in zip(nets[0].named_parameters(), nets[1].parameters()):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6, msg=n)


def test_no_decay_patterns_and_lr_groups():
    net = Net()
    assert "query" in no_decay_names(net, ["query"])
    opt = build_optimizer(net, TrainConfig(lr=1e-3, lr_groups={"backbone": 1e-5}, no_decay=["query"]))
    groups = _groups_by_param(opt)
    assert groups["backbone.0.weight"]["base_lr"] == 1e-5 and groups["head.weight"]["base_lr"] == 1e-3
    assert groups["query"]["weight_decay"] == 0.0
    with pytest.raises(ConfigError, match="matches no trainable parameter"):
        build_optimizer(net, TrainConfig(lr_groups={"neck": 1e-5}))


def _hand_cosine(step, spe, epochs, warm_epochs, base, min_lr=0.0):
    W, N = warm_epochs * spe, epochs * spe
    if step < W:
        return base * (step + 1) / W
    return min_lr + (base - min_lr) * 0.5 * (1 + math.cos(math.pi * (step - W) / (N - W)))


def test_warmup_cosine_matches_hand_formula():
    cfg = TrainConfig(lr=2e-3, epochs=7, warmup_epochs=2, schedule="cosine", min_lr=1e-5)
    net = Net()
    opt = build_optimizer(net, cfg)
    sched = WarmupSchedule(opt, cfg, steps_per_epoch=3)
    seen = []
    for step in range(21):
        seen.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    expected = [_hand_cosine(s, 3, 7, 2, 2e-3, 1e-5) for s in range(21)]
    assert seen == pytest.approx(expected, rel=1e-12)
    assert seen[5] == pytest.approx(2e-3) and seen[0] == pytest.approx(2e-3 / 6)
    assert seen[-1] > 1e-5 and seen[-1] < 1e-4
    # the state is the step count: a new schedule restored from it continues identically
    sched2 = WarmupSchedule(build_optimizer(Net(), cfg), cfg, steps_per_epoch=3)
    sched2.load_state_dict({"last_step": 10, "steps_per_epoch": 3})
    assert sched2.get_last_lr()[0] == pytest.approx(expected[10])


def test_multistep_and_constant():
    f = [lr_factor(s, steps_per_epoch=2, epochs=10, warmup_epochs=1, schedule="multistep", milestones=[3, 6],
                   gamma=0.5) for s in range(20)]
    assert f[:2] == [0.5, 1.0]                                   # warm-up: (s + 1) / 2
    assert f[2:6] == [1.0] * 4 and f[6:12] == [0.5] * 6 and f[12:] == [0.25] * 8
    assert lr_factor(7, steps_per_epoch=2, epochs=10, warmup_epochs=0, schedule="constant") == 1.0


def test_ema_matches_hand_computation():
    torch.manual_seed(0)
    model = ToyDetector(num_classes=2, input_dim=3)
    model.register_buffer("count", torch.tensor(0))
    ema = ModelEMA(model, decay=0.9)
    hand = {k: v.clone().double() for k, v in model.state_dict().items()}
    for step in range(3):
        with torch.no_grad():
            for p in model.parameters():
                p.add_(torch.randn_like(p))
            model.count += 1
        ema.update(model, step)
        for k, v in model.state_dict().items():
            hand[k] = v.clone().double() if not v.dtype.is_floating_point else 0.9 * hand[k] + 0.1 * v.double()
    for k, v in ema.state_dict().items():
        assert torch.allclose(v.double(), hand[k], atol=1e-6), k
    assert int(ema.module.count) == 3                            # integer buffers are copied
    assert not any(p.requires_grad for p in ema.module.parameters())


def test_ema_warmup_decay():
    ema = ModelEMA(nn.Linear(2, 2), decay=0.999, warmup=True)
    assert ema.decay_at(0) == pytest.approx(0.1) and ema.decay_at(90) == pytest.approx(91 / 100)
    assert ema.decay_at(10 ** 6) == 0.999
    assert ModelEMA(nn.Linear(2, 2), decay=0.999).decay_at(0) == 0.999
