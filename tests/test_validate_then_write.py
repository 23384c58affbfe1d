"""Validate, then write: a command whose input or output path is wrong says so in one line (exit 2) and
leaves no file or folder behind."""
from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from tadkit.cli.main import main
from tadkit.data.synthetic import make_synthetic

ROOT = __import__("pathlib").Path(__file__).resolve().parents[1]
DEMO = ROOT / "configs" / "asl" / "demo.yaml"


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    d = tmp_path_factory.mktemp("syn")
    make_synthetic(d, videos=6, classes=2, feature_dim=16, min_duration=20, max_duration=30)
    return d


def _one_line_error(capsys, code) -> str:
    assert code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "Traceback" not in err[0], err
    return err[0]


def _train(data, out, *extra):
    return main(["train", str(DEMO), f"data.annotations={data / 'annotations.json'}",
                 f"data.features={data / 'features'}", f"output_dir={out}", "train.epochs=1",
                 "train.progress=false", *extra])


def test_train_into_an_existing_file(data, tmp_path, capsys):
    target = tmp_path / "afile"
    target.write_text("mine")
    line = _one_line_error(capsys, _train(data, target))
    assert "afile" in line and "not a directory" in line
    assert target.read_text() == "mine"


def test_train_with_a_narrower_feature_file_writes_nothing(data, tmp_path, capsys):
    feats = tmp_path / "features"
    shutil.copytree(data / "features", feats)
    odd = sorted(feats.glob("*.npy"))[-1]
    np.save(odd, np.load(odd)[:, :8])
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "annotations.json").write_text((data / "annotations.json").read_text())
    shutil.move(str(feats), bad / "features")
    out = tmp_path / "run"
    line = _one_line_error(capsys, _train(bad, out))
    assert odd.name in line and "8 channels" in line and "16" in line
    assert not out.exists()


@pytest.mark.parametrize("command", ["eval", "convert", "synth", "diagnose", "report", "predict"])
def test_an_output_path_under_a_file_is_refused_before_any_work(data, tmp_path, capsys, command):
    blocker = tmp_path / "blocker"
    blocker.write_text("x")
    out = blocker / "out.json"
    ann, feats = str(data / "annotations.json"), str(data / "features")
    pred = tmp_path / "pred.json"
    pred.write_text(json.dumps({"results": {}}))
    argv = {
        "eval": ["eval", "--gt", ann, "--pred", str(pred), "--out", str(out)],
        "convert": ["convert", "multithumos", str(tmp_path / "missing.json"), "--out", str(out)],
        "synth": ["synth", str(blocker / "syn")],
        "diagnose": ["diagnose", "--gt", ann, "--pred", str(pred), "--out", str(blocker / "diag")],
        "report": ["report", "--gt", ann, "--pred", str(pred), "--out", str(out)],
        "predict": ["predict", "--config", str(DEMO), "--checkpoint", str(tmp_path / "none.pt"), "--out", str(out),
                    f"data.annotations={ann}", f"data.features={feats}"],
    }[command]
    line = _one_line_error(capsys, main(argv))
    assert "blocker" in line and "is a file" in line                   # the output is checked first
    assert sorted(p.name for p in tmp_path.iterdir()) == ["blocker", "pred.json"]


def test_extract_with_no_readable_video_leaves_no_folder(tmp_path, capsys, i3d_checkpoint):
    vids = tmp_path / "videos"
    vids.mkdir()
    (vids / "a.mp4").write_bytes(np.random.default_rng(0).bytes(3000))
    (vids / "b.mp4").write_bytes(b"")
    out = tmp_path / "feats"
    assert main(["extract", str(vids), "--out", str(out), "--weights", str(i3d_checkpoint), "--no-progress"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 3 and "Traceback" not in "".join(err)         # one line per unreadable video, then the error
    assert "a.mp4" in err[0] and "b.mp4" in err[1] and "2 of 2 videos could not be read" in err[2]
    assert not out.exists()
