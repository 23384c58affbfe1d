"""Config: typed sections, overrides, unknown keys, paths, round trip, CLI errors."""
from __future__ import annotations

import os

import pytest
import yaml

from tadkit.cli.main import main
from tadkit.config import Config, load_config, parse_overrides
from tadkit.core.errors import ConfigError


def _write(path, tree) -> str:
    path.write_text(yaml.safe_dump(tree))
    return str(path)


def test_defaults_are_the_shared_one_stage_base():
    cfg = load_config(None)
    t = cfg.train
    assert (t.lr, t.weight_decay, t.batch_size, t.warmup_epochs, t.epochs) == (1e-4, 0.05, 2, 5.0, 35)
    assert (t.clip_grad, t.ema_decay, t.schedule, t.optimizer) == (1.0, 0.999, "cosine", "adamw")
    assert (cfg.test.nms, cfg.test.sigma, cfg.test.pre_topk, cfg.test.min_score, cfg.test.max_detections) == \
        ("soft", 0.5, 2000, 1e-3, 200)
    assert cfg.model.name == "actionformer" and cfg.model.params["max_seq_len"] == 2304
    assert cfg.data.crop_ratio == [0.9, 1.0] and cfg.data.trunc_thresh == 0.5


def test_overrides_parse_yaml_values():
    assert parse_overrides(["train.lr=2e-4", "train.milestones=[10, 20]", "train.ema_decay=null",
                            "data.classes=[a,b]", "test.tiou=thumos14", "train.amp=false"]) == [
        ("train.lr", "2e-4"), ("train.milestones", [10, 20]), ("train.ema_decay", None),
        ("data.classes", ["a", "b"]), ("test.tiou", "thumos14"), ("train.amp", False)]
    cfg = load_config(None, ["train.lr=2e-4", "train.epochs=3", "model.embed_dim=64", "model.window_size=null",
                             "train.lr_groups.backbone=1e-5", "test.tiou=[0.3,0.5]"])
    assert cfg.train.lr == 2e-4 and isinstance(cfg.train.lr, float) and cfg.train.epochs == 3
    assert cfg.model.params["embed_dim"] == 64 and cfg.model.params["window_size"] is None
    assert cfg.train.lr_groups == {"backbone": 1e-5} and cfg.test.tiou == [0.3, 0.5]
    with pytest.raises(ConfigError, match="has no '='"):
        load_config(None, ["train.lr"])
    with pytest.raises(ConfigError, match="names a whole section"):
        load_config(None, ["train=3"])


def test_unknown_keys_list_the_valid_ones(tmp_path):
    path = _write(tmp_path / "c.yaml", {"train": {"lrr": 1e-3}})
    with pytest.raises(ConfigError) as e:
        load_config(path)
    msg = str(e.value)
    assert "\n" not in msg and "c.yaml" in msg and "'train.lrr'" in msg and "did you mean train.lr?" in msg
    for key in ("epochs", "batch_size", "lr", "weight_decay", "warmup_epochs", "schedule", "clip_grad",
                "ema_decay", "eval_every", "seed", "num_workers", "amp"):
        assert key in msg
    with pytest.raises(ConfigError, match="unknown key 'model.embed_dimm'.*embed_dim.*max_seq_len"):
        load_config(None, ["model.embed_dimm=3"])
    with pytest.raises(ConfigError, match="unknown key 'outputdir'.*output_dir"):
        load_config({"outputdir": "x"})
    with pytest.raises(ConfigError, match="unknown key 'data.fetaures'.*features"):
        load_config(None, ["data.fetaures=x"])


@pytest.mark.parametrize("override, message", [
    ("train.epochs=ten", "train.epochs must be an integer, got 'ten'"),
    ("train.epochs=2.5", "train.epochs must be an integer, got 2.5"),
    ("test.nms=fast", "test.nms must be one of soft, hard, none"),
    ("data.crop_ratio=[1.0, 0.5]", "data.crop_ratio must be"),
    ("train.ema_decay=1.5", "train.ema_decay must lie in"),
    ("train.lr_groups.backbone=fast", "train.lr_groups.backbone must be a non-negative learning rate"),
    ("model.name=nope", "unknown model.name 'nope'"),
])
def test_bad_values(override, message):
    with pytest.raises(ConfigError, match=message.replace("[", r"\[")):
        load_config(None, [override])


def test_bad_files(tmp_path):
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "missing.yaml")
    (tmp_path / "bad.yaml").write_text("train:\n  lr: [1, 2\n")
    with pytest.raises(ConfigError, match=r"bad.yaml: invalid YAML at line \d+ column \d+"):
        load_config(tmp_path / "bad.yaml")
    (tmp_path / "list.yaml").write_text("- a\n- b\n")
    with pytest.raises(ConfigError, match="must be a mapping"):
        load_config(tmp_path / "list.yaml")


def test_relative_paths(tmp_path, monkeypatch):
    cfg_dir = tmp_path / "configs"
    cfg_dir.mkdir()
    path = _write(cfg_dir / "c.yaml", {"data": {"annotations": "../data/ann.json", "features": ["rgb", "/abs/flow"],
                                                "classes": ["x", "y"]},
                                       "test": {"video_scores": "scores.json"}, "output_dir": "runs/a"})
    monkeypatch.chdir(tmp_path)
    cfg = load_config(path, ["data.classes=classes.txt"])
    assert cfg.data.annotations == os.path.join(str(tmp_path), "data", "ann.json")
    assert cfg.data.features == [str(cfg_dir / "rgb"), "/abs/flow"]
    assert cfg.test.video_scores == str(cfg_dir / "scores.json")
    assert cfg.output_dir == str(tmp_path / "runs" / "a")               # outputs: under the working dir
    assert cfg.data.classes == str(tmp_path / "classes.txt")            # overrides: against the working dir
    assert load_config(path).data.classes == ["x", "y"]                 # a class list is not a path


def test_saved_config_round_trips(tmp_path):
    cfg = load_config(None, ["train.epochs=3", "model.regression_ranges=[[0, 4], [4, .inf]]", "data.fps=30",
                             "output_dir=run"])
    cfg.save(tmp_path / "config.yaml")
    again = load_config(tmp_path / "config.yaml")
    assert again == cfg and isinstance(again, Config)
    assert again.model.params["regression_ranges"] == [[0, 4], [4, float("inf")]]
    assert load_config(cfg, ["train.epochs=4"]).train.epochs == 4 and cfg.train.epochs == 3


def test_cli_unknown_key_exits_2_with_one_line(tmp_path, capsys):
    path = _write(tmp_path / "c.yaml", {"train": {"epochs": 1}})
    assert main(["train", path, "train.lrr=1"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "unknown key 'train.lrr'" in err and "weight_decay" in err
    assert main(["train", str(tmp_path / "missing.yaml")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "missing.yaml: config file not found" in err


def test_switching_model_on_a_resolved_config():
    from tests.engine._toy import toy_defaults
    toy = load_config({"model": {"name": "toy", "hidden": 4}}, defaults_fn=toy_defaults)
    af = load_config(toy, ["model.name=actionformer", "model.embed_dim=32"], defaults_fn=toy_defaults)
    assert af.model.name == "actionformer" and af.model.params["embed_dim"] == 32
    assert "hidden" not in af.model.params and af.model.params["max_seq_len"] == 2304
    assert load_config(toy, ["model.hidden=8"], defaults_fn=toy_defaults).model.params["hidden"] == 8
