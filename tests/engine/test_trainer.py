"""The training loop on the toy detector: exact resume, best checkpoint by mAP, files written."""
from __future__ import annotations

import csv
import json

import pytest
import torch

import tadkit

from tadkit.core.errors import ConfigError
from tadkit.engine import trainer as trainer_module
from tadkit.engine.checkpoint import load_checkpoint
from tadkit.engine.trainer import train

from ._toy import build_toy, predictions_close, state_close, toy_config


def _ckpt(run, name="last.pt"):
    return torch.load(run / "checkpoints" / name, weights_only=True)


def test_resume_continues_exactly(toy_data, tmp_path):
    """4 epochs in one go == 2 epochs, an interruption, and --resume for 2 more (dropout on, so
    the RNG states must be restored too)."""
    opts = {"model": {"dropout": 0.3}, "train": {"epochs": 4, "eval_every": 2}}
    full = train(toy_config(toy_data, tmp_path / "full", **opts), build_model=build_toy)

    def interrupt(trainer, epoch):
        if epoch == 2:
            raise KeyboardInterrupt

    split_cfg = toy_config(toy_data, tmp_path / "split", **opts)
    with pytest.raises(KeyboardInterrupt):
        train(split_cfg, build_model=build_toy, callbacks=[interrupt])
    assert _ckpt(tmp_path / "split")["epoch"] == 2 and not (tmp_path / "split" / "predictions.json").exists()
    with pytest.raises(ConfigError, match="pass --resume"):
        train(split_cfg, build_model=build_toy)
    resumed = train(split_cfg, resume=True, build_model=build_toy)

    a, b = _ckpt(tmp_path / "full"), _ckpt(tmp_path / "split")
    assert a["epoch"] == b["epoch"] == 4 and a["global_step"] == b["global_step"]
    assert state_close(a["model"], b["model"], atol=1e-6)
    assert state_close(a["ema"], b["ema"], atol=1e-6)
    for sa, sb in zip(a["optimizer"]["state"].values(), b["optimizer"]["state"].values()):
        assert torch.allclose(sa["exp_avg_sq"], sb["exp_avg_sq"], atol=1e-9)
    assert a["scheduler"] == b["scheduler"]
    assert [r["loss"] for r in full.history] == pytest.approx([r["loss"] for r in resumed.history], abs=1e-6)
    assert predictions_close(full.predictions, resumed.predictions)
    rows = list(csv.DictReader(open(tmp_path / "split" / "log.csv")))
    assert [int(r["epoch"]) for r in rows] == [1, 2, 3, 4]

    # the check has teeth: another seed gives other weights
    other = train(toy_config(toy_data, tmp_path / "other", model={"dropout": 0.3}, train={"epochs": 4, "seed": 1}),
                  build_model=build_toy)
    assert other.history[-1]["loss"] != full.history[-1]["loss"]
    assert not state_close(_ckpt(tmp_path / "other")["model"], a["model"], atol=1e-6)


def test_best_checkpoint_is_chosen_by_average_map(toy_data, tmp_path, monkeypatch):
    scripted = iter([0.2, 0.5, 0.3, 0.1])
    real = trainer_module.evaluate_predictions

    def fake(ann, results, cfg):
        m = real(ann, results, cfg)
        m["average_mAP"] = next(scripted)
        return m

    monkeypatch.setattr(trainer_module, "evaluate_predictions", fake)
    run = tmp_path / "run"
    result = train(toy_config(toy_data, run, train={"epochs": 4, "eval_every": 1, "keep_checkpoints": 2}),
                   build_model=build_toy)
    assert result.best == {"epoch": 2, "average_mAP": 0.5}
    assert load_checkpoint(run / "checkpoints" / "best.pt")["epoch"] == 2
    assert load_checkpoint(run / "checkpoints" / "last.pt")["epoch"] == 4
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == \
        ["best.pt", "epoch_003.pt", "epoch_004.pt", "last.pt"]
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["average_mAP"] == 0.1                          # the final weights' metrics
    rows = list(csv.DictReader(open(run / "log.csv")))
    assert [float(r["average_mAP"]) for r in rows] == [0.2, 0.5, 0.3, 0.1]
    assert [float(r["best_mAP"]) for r in rows] == [0.2, 0.5, 0.5, 0.5]


def test_outputs_and_subset_without_ground_truth(toy_data, tmp_path):
    ann = json.loads((toy_data / "annotations.json").read_text())
    for v in ann["database"].values():
        if v["subset"] == "validation":
            v["annotations"] = []
    (tmp_path / "ann.json").write_text(json.dumps(ann))
    run = tmp_path / "run"
    cfg = toy_config(toy_data, run, data={"annotations": str(tmp_path / "ann.json")},
                     train={"epochs": 2, "ema_decay": None})
    result = train(cfg, build_model=build_toy)
    assert result.metrics is None and not (run / "metrics.json").exists()
    assert not (run / "checkpoints" / "best.pt").exists()
    preds = json.loads((run / "predictions.json").read_text())["results"]
    assert sorted(preds) == ["synth_0001", "synth_0005"]
    for dets in preds.values():
        scores = [d["score"] for d in dets]
        assert scores == sorted(scores, reverse=True) and len(dets) <= 200
    ckpt = _ckpt(run)
    assert ckpt["ema"] is None and ckpt["config"]["train"]["ema_decay"] is None
    assert (run / "config.yaml").exists()


def test_resume_without_a_run_is_an_error(toy_data, tmp_path):
    with pytest.raises(ConfigError, match="nothing to resume"):
        train(toy_config(toy_data, tmp_path / "none"), resume=True, build_model=build_toy)


@pytest.mark.parametrize("cpu_amp", [False, True, "auto"])
def test_cpu_amp_runs_the_convolutions_in_bfloat16(toy_data, tmp_path, cpu_amp, monkeypatch):
    """``train.cpu_amp`` autocasts the training forward to bfloat16 on the CPU (weights stay float32);
    off, everything stays float32; ``auto`` is on where the CPU has bfloat16 units (here: faked to have)."""
    if cpu_amp == "auto":
        monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: True)
    seen = []

    def build(cfg, info):
        model = build_toy(cfg, info)
        model.proj.register_forward_hook(lambda m, i, out: seen.append(out.dtype) if m.training else None)
        return model

    result = train(toy_config(toy_data, tmp_path / "run", train={"epochs": 1, "cpu_amp": cpu_amp, "device": "cpu"}),
                   build_model=build)
    assert seen and set(seen) == {torch.bfloat16 if cpu_amp else torch.float32}
    assert all(v.dtype == torch.float32 for v in _ckpt(tmp_path / "run")["model"].values() if v.is_floating_point())
    assert all(torch.isfinite(torch.tensor(r["loss"])) for r in result.history)


def test_cpu_amp_auto_follows_the_cpu_and_other_strings_are_refused(monkeypatch, tmp_path):
    from tadkit.engine.trainer import cpu_amp_enabled
    for amx, bf16 in [(False, False), (True, False), (False, True)]:
        monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda v=amx: v)
        monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda v=bf16: v)
        assert cpu_amp_enabled("auto") == (amx or bf16)
        assert cpu_amp_enabled(True) and not cpu_amp_enabled(False)
    cfg = tmp_path / "c.yaml"
    cfg.write_text("model: {name: asl}\ntrain: {cpu_amp: sometimes}\n")
    with pytest.raises(ConfigError, match="train.cpu_amp must be true, false or auto"):
        tadkit.load_config(str(cfg))


def test_run_eta_is_the_mean_epoch_time_times_the_epochs_left():
    from types import SimpleNamespace

    from tadkit.engine.trainer import Trainer, format_seconds
    assert [format_seconds(s) for s in (0, 59.6, 61, 3599, 3600, 3723, -5)] == \
        ["0:00", "1:00", "1:01", "59:59", "1:00:00", "1:02:03", "0:00"]
    me = SimpleNamespace(cfg=SimpleNamespace(train=SimpleNamespace(epochs=5)), epoch=2, _epoch_times=[])
    assert Trainer._run_eta(me) == ""                      # nothing timed yet
    me._epoch_times = [10.0, 20.0]
    assert Trainer._run_eta(me) == ", run ETA 0:45"         # 15 s x 3 epochs left
