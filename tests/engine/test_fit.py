"""``tadkit fit``: label sheet + videos -> annotations, features, config, trained detector."""
from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from tadkit.core.errors import DataError

TINY = ["model.embed_dim=16", "model.fpn_dim=16", "model.head_dim=16", "model.num_heads=2",
        "train.epochs=2", "train.warmup_epochs=1", "train.batch_size=2", "train.eval_every=1",
        "train.progress=false", "train.cpu_amp=false"]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    from tadkit.data.synthetic_video import make_synthetic_videos
    root = tmp_path_factory.mktemp("fit")
    ann = make_synthetic_videos(root, videos=8, classes=2, frames=48, fps=10, size=32)
    rows = [(f"{vid}.mp4", a["segment"][0], a["segment"][1], a["label"])
            for vid, v in sorted(ann["database"].items()) for a in v["annotations"]]
    return root, rows


def _sheet(path: Path, rows) -> Path:
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["file", "onset", "offset", "behavior"])
        w.writerows(rows)
    return path


@pytest.fixture(scope="module")
def tiny_i3d():
    import torch
    from tadkit.models.backbones.i3d import build_i3d
    torch.manual_seed(0)
    return build_i3d(None, width=0.0625, final_endpoint="Mixed_5c")


def _fit(root, sheet, out, model, **kw):
    from tadkit.engine.fit import fit
    kw.setdefault("feature_cache", False)
    return fit(root / "videos", sheet, out, short_side=32, crop=32, progress=False, extract_model=model,
               overrides=TINY, echo=None, **kw)


def test_fit_end_to_end(data, tiny_i3d, tmp_path):
    root, rows = data
    sheet = _sheet(tmp_path / "labels.csv", rows)
    run = tmp_path / "run"
    res = _fit(root, sheet, run, tiny_i3d)
    for name in ("annotations.json", "config.yaml", "metrics.json", "predictions.json", "report.html"):
        assert (run / name).is_file(), name
    ann = json.loads((run / "annotations.json").read_text())
    subsets = {v["subset"] for v in ann["database"].values()}
    assert subsets == {"training", "validation"}
    assert all(v.get("fps") == 10 for v in ann["database"].values())
    assert ann["classes"] == sorted({r[3] for r in rows})
    npys = sorted(p.stem for p in (run / "features").glob("*.npy"))
    assert npys == sorted(ann["database"]) and len(npys) == 8
    assert (run / "features" / "features.json").is_file()
    text = (run / "config.yaml").read_text()
    assert text.startswith("# tadkit fit:")
    assert "# max_seq_len " in text and "feature steps" in text and "# test.tiou " in text
    from tadkit import load_config
    cfg = load_config(run / "config.yaml")
    assert cfg.data.test_subset == "validation" and cfg.model.params["embed_dim"] == 16
    # actions of 0.9-1.5 s at 10 fps / stride 4 = 2.25-3.75 steps, all on level 0 ([0, 4]): that level and
    # one above; 48 frames / stride 4 = 12 steps, rounded up to a multiple of 2**1
    assert cfg.model.params["branch_layers"] == 1
    assert cfg.model.params["regression_ranges"] == [[0, 4], [4, 10000]]
    assert "# branch_layers / regression_ranges: 2 pyramid levels of 6" in text
    assert cfg.model.params["max_seq_len"] == 12
    assert res.checkpoint is not None and res.checkpoint.is_file()
    # one epoch checkpoint kept; last.pt is that file (a hard link), not a second copy
    ckpts = run / "checkpoints"
    assert sorted(p.name for p in ckpts.iterdir()) == ["best.pt", "epoch_002.pt", "last.pt"]
    assert (ckpts / "last.pt").samefile(ckpts / "epoch_002.pt")
    assert "# train.keep_checkpoints 1:" in text
    assert res.detect_command.endswith(f"--run {run}")
    assert set(res.per_class_ap) <= set(ann["classes"])
    m = json.loads((run / "metrics.json").read_text())
    assert f"of the final weights: {m['average_mAP']:.4f}" in res.summary
    assert f"{res.checkpoint.name}" == "best.pt" and "best epoch" in res.summary
    assert f"the run on one page: {run / 'report.html'}" in res.summary
    # a finished run is not overwritten: refused before anything is written
    from tadkit.core.errors import ConfigError
    before = (run / "annotations.json").stat().st_mtime_ns
    with pytest.raises(ConfigError, match="already holds a finished run"):
        _fit(root, sheet, run, tiny_i3d)
    assert (run / "annotations.json").stat().st_mtime_ns == before
    # a run stopped during its training (checkpoints, no predictions yet) is resumed from last.pt: with
    # one more epoch asked for, only that epoch is trained
    from tadkit.engine.fit import fit
    for name in ("predictions.json", "metrics.json", "report.html"):
        (run / name).unlink()
    res2 = fit(root / "videos", sheet, run, short_side=32, crop=32, progress=False, extract_model=tiny_i3d,
               overrides=TINY + ["train.epochs=3"], echo=None, feature_cache=False)
    assert any("resumed the training" in n for n in res2.notes)
    assert any("reused the features of 8 videos" in n for n in res2.notes)
    assert [r["epoch"] for r in csv.DictReader(open(run / "log.csv"))] == ["1", "2", "3"]
    assert (run / "predictions.json").is_file()
    # a run folder without checkpoints (stopped during extraction) is trained afresh
    import shutil
    shutil.rmtree(run / "checkpoints")
    (run / "predictions.json").unlink()
    res3 = _fit(root, sheet, run, tiny_i3d)
    assert not any("resumed" in n for n in res3.notes) and (run / "checkpoints" / "last.pt").is_file()


def test_fit_defects_one_line_and_nothing_written(data, tiny_i3d, tmp_path):
    root, rows = data
    bad = rows + [(rows[0][0], 1.0, 99.0, rows[0][3]), ("missing.mp4", 0.0, 1.0, rows[0][3])]
    sheet = _sheet(tmp_path / "labels.csv", bad)
    run = tmp_path / "run"
    with pytest.raises(DataError) as e:
        _fit(root, sheet, run, tiny_i3d)
    msg = e.value.one_line()
    assert "\n" not in msg and "2 problems" in msg
    assert f"line {len(rows) + 2}" in msg and f"line {len(rows) + 3}" in msg
    assert not run.exists()


def test_fit_drop_defects_proceeds(data, tiny_i3d, tmp_path):
    root, rows = data
    bad = rows + [(rows[0][0], 1.0, 99.0, rows[0][3]), ("missing.mp4", 0.0, 1.0, rows[0][3])]
    sheet = _sheet(tmp_path / "labels.csv", bad)
    run = tmp_path / "run"
    res = _fit(root, sheet, run, tiny_i3d, drop_defects=True)
    assert (run / "metrics.json").is_file()
    assert len(json.loads((run / "annotations.json").read_text())["database"]) == 8
    note = next(n for n in res.notes if n.startswith("--drop-defects"))
    assert f"left out 2 rows (lines {len(rows) + 2}, {len(rows) + 3})" in note
    assert "1 video (missing.mp4)" in note


def test_fit_cli_bad_override_exit_2(data, tmp_path, capsys):
    from tadkit.cli import main as m
    from tadkit.cli.fit_commands import FIT_COMMANDS
    root, rows = data
    sheet = _sheet(tmp_path / "labels.csv", rows)
    old = dict(m.COMMANDS)
    m.COMMANDS.update(FIT_COMMANDS)
    try:
        code = m.main(["fit", str(root / "videos"), str(sheet), "--out", str(tmp_path / "run"), "model.nokey=1"])
    finally:
        m.COMMANDS.clear()
        m.COMMANDS.update(old)
    assert code == 2
    assert not (tmp_path / "run").exists()
    assert len(capsys.readouterr().err.strip().splitlines()) == 1


def test_detect_with_the_run_writes_json_and_csv_in_the_sheets_columns(data, tiny_i3d, tmp_path, monkeypatch,
                                                                      capsys):
    import tadkit.models.backbones.i3d as i3d
    from tadkit.cli.main import main
    root, rows = data
    sheet = _sheet(tmp_path / "labels.csv", rows)
    run = tmp_path / "run"
    _fit(root, sheet, run, tiny_i3d)
    import shutil
    monkeypatch.setattr(i3d, "build_i3d", lambda *a, **k: tiny_i3d)      # the run's (tiny, random) backbone
    moved = tmp_path / "moved"
    shutil.move(run, moved)                  # a run folder moved elsewhere still knows its feature settings
    run = moved
    videos = []
    for i, v in enumerate(sorted((root / "videos").glob("*.mp4"))[:2]):   # dotted stems: clip.0, clip.1
        videos.append(tmp_path / f"clip.{i}.mp4")
        shutil.copy(v, videos[-1])
    out = tmp_path / "dets"
    import tadkit.engine.extract as ex
    seen, real = [], ex.extract_video

    def spy(*a, **k):
        seen.append((k["short_side"], k["crop"], k["stride"], k["window"]))
        return real(*a, **k)
    monkeypatch.setattr(ex, "extract_video", spy)
    code = main(["detect", *map(str, videos), "--run", str(run), "--out", str(out), "--weights", str(sheet),
                 "test.min_score=0.0"])
    assert code == 0, capsys.readouterr().err
    for v in videos:
        got = json.loads((out / f"{v.stem}_detections.json").read_text())["results"][v.stem]
        with open(out / f"{v.stem}_detections.csv", newline="") as f:
            table = list(csv.reader(f))
        assert table[0] == ["file", "onset", "offset", "behavior", "score"]    # the sheet's own names
        assert len(table) - 1 == len(got) > 0
        for row, d in zip(table[1:], got):
            assert row[0] == v.name and row[3] == d["label"]
            assert float(row[1]) == pytest.approx(d["segment"][0], abs=1e-3)
            assert float(row[2]) == pytest.approx(d["segment"][1], abs=1e-3)
            assert float(row[4]) == pytest.approx(d["score"], abs=1e-6)
        assert (out / f"{v.stem}_detections.png").is_file()
    # the settings of the run's own features (32 x 32 frames), not tadkit extract's defaults (256 / 224)
    assert seen == [(32, 32, 4, 16)] * 2
    with open(out / "clip.0_detections.csv", newline="") as f:
        first = list(csv.reader(f))
    with open(out / "clip.1_detections.csv", newline="") as f:
        second = list(csv.reader(f))
    assert {r[0] for r in first[1:]} == {"clip.0.mp4"} and {r[0] for r in second[1:]} == {"clip.1.mp4"}
    said = capsys.readouterr().out
    n = len(json.loads((out / "clip.0_detections.json").read_text())["results"]["clip.0"])
    assert f"clip.0: {n} detections" + (" (the 20 best shown" if n > 20 else "") in said
    # --min-score trims the table and the CSV; the JSON keeps every detection
    assert main(["detect", str(videos[0]), "--run", str(run), "--out", str(out), "--min-score", "0.05",
                 "test.min_score=0.0"]) == 0
    with open(out / "clip.0_detections.csv", newline="") as f:
        scores = [float(r[4]) for r in list(csv.reader(f))[1:]]
    everything = json.loads((out / "clip.0_detections.json").read_text())["results"]["clip.0"]
    assert scores == [d["score"] for d in everything if d["score"] >= 0.05] and len(everything) > len(scores)
    # not a run folder, or a folder given as a video: one line, exit 2
    capsys.readouterr()
    code = main(["detect", str(videos[0]), "--run", str(tmp_path), "--out", str(out)])
    assert code == 2 and "config.yaml" in capsys.readouterr().err
    code = main(["detect", str(root / "videos"), "--run", str(run), "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 2 and "is a folder, not a video file" in err and err.count("\n") == 1


@pytest.mark.parametrize("text, fmt, want", [
    ("video,start,end,label\na.mp4,1.5,2,x\n", {"delimiter": ",", "clock_times": False}, ["a.mp4", "1.000", "2.500"]),
    ("file\tonset\toffset\tbehavior\na\t00:00:01.5\t00:00:02\tx\n",          # a TSV: written as a comma CSV
     {"delimiter": ",", "clock_times": True, "video_with_suffix": False}, ["a", "00:00:01.000", "00:00:02.500"]),
    ("clip;begin;stop;class\na.mp4;1,5;2;x\n", {"delimiter": ";", "clock_times": False}, ["a.mp4", "1.000", "2.500"]),
])
def test_detections_written_back_in_the_sheets_manner(tmp_path, text, fmt, want):
    from tadkit.data.label_sheet import read_label_sheet
    from tadkit.engine.detect import write_detections_csv
    from tadkit.engine.fit import label_format
    (tmp_path / "s.txt").write_text(text)
    got = label_format(read_label_sheet(tmp_path / "s.txt"))
    assert {k: got[k] for k in fmt} == fmt
    write_detections_csv(tmp_path / "d.csv", want[0], [{"segment": [1.0, 2.5], "label": "x", "score": 0.5}], got)
    lines = (tmp_path / "d.csv").read_text().splitlines()
    header = text.splitlines()[0].replace("\t", ",").replace(";", got["delimiter"]).split(got["delimiter"])
    assert lines[0].split(got["delimiter"]) == header + ["score"]
    assert lines[1].split(got["delimiter"]) == want + ["x", "0.500000"]


def test_clock_time_by_hand():
    from tadkit.engine.detect import clock_time
    assert [clock_time(t) for t in (0, 1.5, 61.0004, 3723.25, 59.9996)] == \
        ["00:00:00.000", "00:00:01.500", "00:01:01.000", "01:02:03.250", "00:01:00.000"]


RANGES = [[0, 4], [4, 8], [8, 16], [16, 32], [32, 64], [64, 10000]]


@pytest.mark.parametrize("steps, longest, levels, why", [
    ([2.0, 5.0, 7.9], 2304, 3, "longest action's level"),      # longest action on level 1: levels 0-2
    ([3.0, 20.0], 2304, 5, "longest action's level"),           # level 3: levels 0-4
    ([3.0, 100.0], 2304, None, None),                           # the top level is used: unchanged
    ([3.0, 100.0], 12, 3, "under 2 steps"),                     # 12 steps: strides 1, 2, 4 (a stride 8 level: 1.5)
    ([1.0], 2304, 2, "longest action's level"),                 # at least two levels
])
def test_choose_levels_by_hand(steps, longest, levels, why):
    from tadkit.engine.fit import _choose_levels
    got = _choose_levels({"branch_layers": 5, "regression_ranges": RANGES, "scale_factor": 2}, steps, longest)
    if levels is None:
        assert got is None
        return
    opts, text = got
    assert opts["branch_layers"] == levels - 1
    assert opts["regression_ranges"] == RANGES[:levels - 1] + [[RANGES[levels - 1][0], 10000]]
    assert why in text
    # methods without regression ranges (set-prediction detectors) are left alone
    assert _choose_levels({"num_queries": 40}, steps, longest) is None
    # one attention window per level: cut with the levels
    windows = [19, 17, 15, 13, 11, 9]
    opts, _ = _choose_levels({"branch_layers": 5, "regression_ranges": RANGES, "window_size": windows}, steps, longest)
    assert opts["window_size"] == windows[:levels]


def test_choose_levels_keeps_amnets_long_group():
    from tadkit.engine.fit import _choose_levels
    params = {"branch_layers": 5, "regression_ranges": RANGES, "gam_split": 3}     # G_short: 3 levels
    opts, _ = _choose_levels(params, [2.0, 3.0], 2304)          # the data alone would give 2 levels
    assert opts["branch_layers"] == 3                            # 4 levels: G_long keeps one
    assert _choose_levels({**params, "gam_split": 5}, [2.0, 3.0], 2304) is None


def test_a_second_fit_takes_the_features_from_the_cache(data, tiny_i3d, tmp_path):
    import numpy as np
    import torch

    from tadkit.models.backbones.i3d import build_i3d
    root, rows = data
    sheet = _sheet(tmp_path / "labels.csv", rows)
    cache = tmp_path / "cache"
    first = _fit(root, sheet, tmp_path / "a", tiny_i3d, feature_cache=cache)
    assert not any("feature cache" in n for n in first.notes)
    second = _fit(root, sheet, tmp_path / "b", tiny_i3d, feature_cache=cache, val_fraction=0.4)
    assert any("took the features of 8 videos from the feature cache" in n for n in second.notes)
    a, b = tmp_path / "a" / "features", tmp_path / "b" / "features"
    assert sorted(p.name for p in a.iterdir()) == sorted(p.name for p in b.iterdir())   # no .parts left
    assert (a / "features.json").read_text() == (b / "features.json").read_text()
    for f in a.glob("*.npy"):
        np.testing.assert_array_equal(np.load(f), np.load(b / f.name))
    # other weights: nothing taken from the cache
    torch.manual_seed(1)
    other = build_i3d(None, width=0.0625, final_endpoint="Mixed_5c")
    third = _fit(root, sheet, tmp_path / "c", other, feature_cache=cache)
    assert not any("feature cache" in n for n in third.notes)
    assert not np.array_equal(np.load(a / f.name), np.load(tmp_path / "c" / "features" / f.name))


def test_video_fingerprint_follows_the_content_not_the_name(tmp_path):
    import shutil

    from tadkit.engine.feature_cache import video_fingerprint
    blob = bytes(range(256)) * (3 * 2 ** 20 // 256 + 7)         # > 2 MiB: first and last MiB read
    a = tmp_path / "a.mp4"
    a.write_bytes(blob)
    shutil.copy(a, tmp_path / "copy.mp4")
    assert video_fingerprint(a) == video_fingerprint(tmp_path / "copy.mp4")
    for pos in (0, len(blob) - 1):                               # a changed first or last byte
        changed = bytearray(blob)
        changed[pos] ^= 1
        (tmp_path / "b.mp4").write_bytes(bytes(changed))
        assert video_fingerprint(tmp_path / "b.mp4") != video_fingerprint(a)
    (tmp_path / "c.mp4").write_bytes(blob + b"x")               # another size
    assert video_fingerprint(tmp_path / "c.mp4") != video_fingerprint(a)
    small = blob[:3 * 2 ** 19]                                   # 1.5 MiB: the bytes after the first MiB count
    changed = bytearray(small)
    changed[-2 ** 18] ^= 1
    (tmp_path / "d.mp4").write_bytes(small)
    (tmp_path / "e.mp4").write_bytes(bytes(changed))
    assert video_fingerprint(tmp_path / "d.mp4") != video_fingerprint(tmp_path / "e.mp4")


def test_feature_cache_failures_only_cost_the_reuse(data, tiny_i3d, tmp_path, monkeypatch):
    """A full cache disk (DataError from the atomic writer) or an unreadable cache: fit goes on."""
    import tadkit.engine.feature_cache as fc
    from tadkit.core.errors import DataError as DE
    root, rows = data
    sheet = _sheet(tmp_path / "labels.csv", rows)

    def full(*a, **k):
        raise DE("no space left on the device")
    monkeypatch.setattr(fc, "atomic_link_or_copy", full)
    res = _fit(root, sheet, tmp_path / "a", tiny_i3d, feature_cache=tmp_path / "cache")
    assert (tmp_path / "a" / "metrics.json").is_file() and res.checkpoint is not None
    assert not list((tmp_path / "cache").rglob("*.npy"))

    def unreadable(self):
        raise PermissionError("permission denied")
    monkeypatch.setattr(fc.Path, "is_dir", unreadable, raising=True)
    assert fc.FeatureCache(tmp_path / "cache", {}, "x").fetch({"v": tmp_path / "labels.csv"}, tmp_path / "f") == []
