"""The data commands end to end: synth, convert, demo — outputs and bad-input behaviour."""
import json
import subprocess
import sys

import numpy as np
import pytest

from tadkit.cli.main import main


def run_cli(*args, cwd=None):
    """Run the real console entry point in a subprocess (exit code, stdout, stderr)."""
    p = subprocess.run([sys.executable, "-m", "tadkit", *map(str, args)], capture_output=True, text=True, cwd=cwd)
    return p.returncode, p.stdout, p.stderr


def test_synth_writes_the_contract_files(tmp_path):
    assert main(["synth", str(tmp_path / "s"), "--videos", "6", "--classes", "3", "--seed", "1"]) == 0
    ann = json.loads((tmp_path / "s" / "annotations.json").read_text())
    meta = json.loads((tmp_path / "s" / "meta.json").read_text())
    assert len(ann["database"]) == 6 and meta["num_classes"] == 3
    for vid in ann["database"]:
        x = np.load(tmp_path / "s" / "features" / f"{vid}.npy")
        assert x.ndim == 2 and x.shape[1] == meta["feature_dim"] and np.isfinite(x).all()


def test_synth_noise_scale_scales_the_background(tmp_path):
    """Same seed, same actions: the features differ only by the noise, which --noise-scale scales."""
    for name, scale in (("a", "1"), ("b", "0.5"), ("c", "0")):
        assert main(["synth", str(tmp_path / name), "--videos", "4", "--noise-scale", scale]) == 0
    vid = sorted(json.loads((tmp_path / "a" / "annotations.json").read_text())["database"])[0]
    a, b, c = (np.load(tmp_path / n / "features" / f"{vid}.npy") for n in "abc")
    assert a.shape == b.shape == c.shape
    np.testing.assert_allclose(b - c, 0.5 * (a - c), rtol=1e-4, atol=1e-4)   # background linear in the scale
    assert np.abs(a - c).max() > 0.1


def test_synth_bad_arguments_exit_2(tmp_path):
    code, out, err = run_cli("synth", tmp_path / "s", "--videos", "0")
    assert code == 2 and err.count("\n") == 1 and "Traceback" not in err
    assert not (tmp_path / "s" / "annotations.json").exists()


def test_synth_video_writes_readable_videos_matching_their_annotations(tmp_path, capsys):
    from tadkit.data.video import probe_video
    assert main(["synth", str(tmp_path / "v"), "--video", "--videos", "4", "--classes", "3", "--seed", "2"]) == 0
    ann = json.loads((tmp_path / "v" / "annotations.json").read_text())
    assert sorted(p.stem for p in (tmp_path / "v" / "videos").glob("*.mp4")) == sorted(ann["database"])
    subsets = {v["subset"] for v in ann["database"].values()}
    assert subsets == {"training", "testing"}
    for vid, v in ann["database"].items():
        info = probe_video(tmp_path / "v" / "videos" / f"{vid}.mp4")
        assert abs(info.duration - v["duration"]) < 0.2 and info.fps == v["fps"]
        assert all(0 <= a["segment"][0] < a["segment"][1] <= v["duration"] for a in v["annotations"])
        assert {a["label"] for a in v["annotations"]} <= {"action_0", "action_1", "action_2"}
    n = sum(len(v["annotations"]) for v in ann["database"].values())
    assert f"{n} instances of 3 classes" in capsys.readouterr().out
    # labels.csv: the training videos' instances, as the label-sheet reader of tadkit fit reads them
    from tadkit.data.label_sheet import read_label_sheet
    sheet = read_label_sheet(tmp_path / "v" / "labels.csv")
    got = sorted((r.video, r.start, r.end, r.label) for r in sheet.rows)
    want = sorted((f"{vid}.mp4", *a["segment"], a["label"]) for vid, v in ann["database"].items()
                  if v["subset"] == "training" for a in v["annotations"])
    assert got == want and len(want) > 0


def test_synth_video_bad_arguments_exit_2(tmp_path):
    code, out, err = run_cli("synth", tmp_path / "v", "--video", "--classes", "7")
    assert code == 2 and err.count("\n") == 1 and "tadkit synth OUT --video" in err
    assert not (tmp_path / "v").exists()


def test_convert_thumos14_real_counts_and_report(tmp_path, real_data):
    th = real_data / "thumos14"
    out = tmp_path / "th.json"
    code, stdout, err = run_cli("convert", "thumos14", th / "official" / "annotations_val",
                                th / "official" / "annotations_test", "--video-info", th / "video_info.json",
                                "--out", out, "--max-report", "2")
    assert code == 0, err
    db = json.loads(out.read_text())["database"]
    assert sum(v["subset"] == "validation" for v in db.values()) == 200
    assert sum(len(v["annotations"]) for v in db.values() if v["subset"] == "testing") == 3358
    assert "more defect lines" in stdout                 # the console report is capped ...
    full = (tmp_path / "th.json.report.txt").read_text()
    assert full.count("wholly outside the video") >= 3   # ... the file has every defect


@pytest.mark.parametrize("content,match", [
    ("{not json", "JSON"),
    ('{"database": []}', "database"),
])
def test_convert_and_eval_bad_json_exit_2(tmp_path, content, match):
    bad = tmp_path / "bad.json"
    bad.write_text(content)
    out = tmp_path / "out.json"
    code, _, err = run_cli("convert", "multithumos", bad, "--out", out)
    assert code == 2 and "bad.json" in err and err.count("\n") == 1
    assert not out.exists()
    pred = tmp_path / "pred.json"
    pred.write_text('{"results": {}}')
    code, _, err = run_cli("eval", "--gt", bad, "--pred", pred, "--out", out)
    assert code == 2 and "bad.json" in err and match.lower() in err.lower()
    assert not out.exists()


def test_convert_missing_input_exit_2(tmp_path):
    code, _, err = run_cli("convert", "charades", tmp_path / "nope.csv", "--out", tmp_path / "o.json")
    assert code == 2 and "nope.csv" in err and "Traceback" not in err


def test_demo_writes_consistent_outputs(tmp_path):
    code, stdout, err = run_cli("demo", "--out", tmp_path / "demo", "--epochs", "2", "--videos", "12")
    assert code == 0, err
    d = tmp_path / "demo"
    for name in ("predictions.json", "metrics.json", "timeline.png", "training_curve.png", "checkpoints/last.pt"):
        assert (d / name).stat().st_size > 0
    # the demo's metrics are what an independent `tadkit eval` run gives on its files
    code, _, err = run_cli("eval", "--gt", d / "data" / "annotations.json", "--pred", d / "predictions.json",
                           "--tiou", "thumos14", "--out", d / "again.json")
    assert code == 0, err
    a = json.loads((d / "metrics.json").read_text())
    b = json.loads((d / "again.json").read_text())
    assert a["mAP"] == pytest.approx(b["mAP"], abs=1e-12)
    assert 0.0 <= a["average_mAP"] <= 1.0
    # and the table printed at the end shows those numbers
    row = next(line for line in stdout.splitlines() if line.startswith("mAP "))
    assert float(row.split()[-1]) == pytest.approx(100 * a["average_mAP"], abs=0.006)


def test_demo_bad_arguments_exit_2(tmp_path):
    code, _, err = run_cli("demo", "--out", tmp_path / "d", "--videos", "2")
    assert code == 2 and err.count("\n") == 1 and "Traceback" not in err
    assert not (tmp_path / "d").exists()
