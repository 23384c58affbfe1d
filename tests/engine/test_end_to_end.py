"""End to end through the command line: tadkit synth -> train (tiny ActionFormer) -> predict -> errors."""
from __future__ import annotations

import json

import pytest
import torch
import yaml

from tadkit.cli.main import main
from tadkit.data.annotations import Annotations
from tadkit.engine.checkpoint import save_checkpoint
from tadkit.evaluation.api import Predictions, evaluate_files

TINY = {"name": "actionformer", "max_seq_len": 128, "embed_dim": 16, "fpn_dim": 16, "head_dim": 16,
        "num_heads": 2, "window_size": 9, "branch_layers": 3, "stem_layers": 1,
        "regression_ranges": [[0, 4], [4, 8], [8, 16], [16, 1.0e4]]}


@pytest.fixture(scope="module")
def af_run(tmp_path_factory):
    """``tadkit synth`` then ``tadkit train`` for 2 epochs; the config uses the meta's data block."""
    root = tmp_path_factory.mktemp("e2e")
    assert main(["synth", str(root / "synth"), "--videos", "6", "--classes", "3", "--feature-dim", "16"]) == 0
    meta = json.loads((root / "synth" / "meta.json").read_text())
    data = {k.split(".", 1)[1]: v for k, v in meta["config"].items()}
    cfg = {"data": data, "model": TINY,
           "train": {"epochs": 2, "batch_size": 2, "lr": 1e-3, "warmup_epochs": 1, "eval_every": 1,
                     "ema_warmup": True, "progress": False},
           "test": {"tiou": "thumos14"}, "output_dir": "run"}
    (root / "synth" / "tiny.yaml").write_text(yaml.safe_dump(cfg))
    run = root / "synth" / "run"
    assert main(["train", str(root / "synth" / "tiny.yaml"), "train.seed=1", f"output_dir={run}"]) == 0
    return root / "synth"


def test_train_writes_the_contract_files(af_run):
    run = af_run / "run"
    for name in ("predictions.json", "metrics.json", "config.yaml", "log.csv", "checkpoints/epoch_001.pt",
                 "checkpoints/epoch_002.pt", "checkpoints/last.pt", "checkpoints/best.pt"):
        assert (run / name).is_file(), name
    ann = Annotations.load(af_run / "annotations.json")
    preds = json.loads((run / "predictions.json").read_text())
    Predictions.from_dict(preds)                                          # readable by tadkit eval
    val = {v.video_id: v for v in ann.select("validation")}
    assert set(preds["results"]) == set(val)
    for vid, dets in preds["results"].items():
        assert 0 < len(dets) <= 200
        scores = [d["score"] for d in dets]
        assert scores == sorted(scores, reverse=True)
        for d in dets:
            s, e = d["segment"]
            assert 0 <= s <= e <= val[vid].duration and d["label"] in ann.classes
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics == json.loads(json.dumps(evaluate_files(af_run / "annotations.json", run / "predictions.json",
                                                           subset="validation", tiou="thumos14")))
    ckpt = torch.load(run / "checkpoints" / "best.pt", weights_only=True)
    assert ckpt["model_info"]["name"] == "actionformer" and ckpt["config"]["train"]["seed"] == 1
    assert ckpt["ema"] is not None and ckpt["epoch"] in (1, 2)


def test_predict_reproduces_training_predictions(af_run, tmp_path, capsys):
    run = af_run / "run"
    out = tmp_path / "p.json"
    assert main(["predict", "--config", str(run / "config.yaml"), "--checkpoint", str(run / "checkpoints/last.pt"),
                 "--out", str(out)]) == 0
    assert json.loads(out.read_text()) == json.loads((run / "predictions.json").read_text())
    # one video: the long video goes through several windows, merged
    vid = sorted(json.loads(out.read_text())["results"])[0]
    assert main(["predict", "--config", str(run / "config.yaml"), "--checkpoint", str(run / "checkpoints/last.pt"),
                 "--videos", vid, "--features", str(af_run / "features"), "--out", str(tmp_path / "one.json")]) == 0
    one = json.loads((tmp_path / "one.json").read_text())["results"]
    assert one == {vid: json.loads(out.read_text())["results"][vid]}


def test_sliding_windows_cover_long_videos(af_run):
    from tadkit.config import load_config
    from tadkit.engine.builders import build_dataset
    ds = build_dataset(load_config(af_run / "run" / "config.yaml"), "validation", training=False)
    assert len(ds) > len(ds.video_ids)                                  # some videos need several windows


def _predict_error(af_run, tmp_path, capsys, checkpoint, *overrides) -> str:
    code = main(["predict", "--config", str(af_run / "run" / "config.yaml"), "--checkpoint", str(checkpoint),
                 "--out", str(tmp_path / "x.json"), *overrides])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1, err
    assert not (tmp_path / "x.json").exists()
    return err


def test_bad_checkpoints_exit_2_with_one_line(af_run, tmp_path, capsys):
    last = af_run / "run" / "checkpoints" / "last.pt"
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(last.read_bytes()[:4096])
    err = _predict_error(af_run, tmp_path, capsys, truncated)
    assert "truncated.pt" in err and "truncated or damaged" in err
    err = _predict_error(af_run, tmp_path, capsys, af_run / "run" / "log.csv")
    assert "log.csv" in err and "not a tadkit checkpoint" in err
    err = _predict_error(af_run, tmp_path, capsys, tmp_path / "missing.pt")
    assert "missing.pt: checkpoint not found" in err

    ckpt = torch.load(last, weights_only=True)
    ckpt["model_info"]["name"] = "asl"
    save_checkpoint(tmp_path / "asl.pt", {k: v for k, v in ckpt.items() if k not in ("format", "version")})
    err = _predict_error(af_run, tmp_path, capsys, tmp_path / "asl.pt")
    assert "holds model 'asl' but the config asks for 'actionformer'" in err
    err = _predict_error(af_run, tmp_path, capsys, last, "data.classes=[action_00,action_01]")
    assert "trained for 3 classes" in err and "last.pt" in err
    err = _predict_error(af_run, tmp_path, capsys, last, "model.head_dim=32")
    assert "do not fit the configured model" in err and "last.pt" in err


def test_python_api_mirrors_the_cli(af_run, tmp_path):
    from tadkit import api
    run = af_run / "run"
    cfg = api.load_config(run / "config.yaml")
    model = api.build_detector(cfg)
    assert (model.num_classes, model.input_dim, model.max_seq_len) == (3, 16, 128)
    by_name = api.build_detector("actionformer", num_classes=2, input_dim=8, max_seq_len=64, embed_dim=16,
                                 fpn_dim=16, head_dim=16)
    assert by_name.num_classes == 2
    expected = json.loads((run / "predictions.json").read_text())
    preds = api.predict(cfg, run / "checkpoints" / "last.pt", out=tmp_path / "p.json")
    assert preds == expected == json.loads((tmp_path / "p.json").read_text())
    metrics = api.evaluate(af_run / "annotations.json", preds, subset="validation", tiou="thumos14")
    assert metrics["average_mAP"] == json.loads((run / "metrics.json").read_text())["average_mAP"]
    # --resume of a finished run trains nothing and predicts the same
    again = api.train(cfg, ["train.progress=false"], resume=True)
    assert again.predictions == expected and again.history[-1]["epoch"] == 2
