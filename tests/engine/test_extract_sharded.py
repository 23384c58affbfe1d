"""``torchrun --nproc_per_node 2 -m tadkit extract``: the videos dealt out between two CPU processes give
the files of one process; a killed sharded run resumes video by video."""
import json
import os
import socket
import subprocess
import sys

import numpy as np
import pytest

SMALL = ["--short-side", "32", "--crop", "32", "--no-progress"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _extract(videos, weights, out, processes: int):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}     # the same arithmetic in every process
    launcher = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(processes),
                "--master_port", str(_free_port())] if processes > 1 else [sys.executable]
    proc = subprocess.run([*launcher, "-m", "tadkit", "extract", str(videos), "--weights", str(weights),
                           "--out", str(out), *SMALL], capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout


def _files(folder):
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())


@pytest.fixture(scope="module")
def runs(tmp_path_factory, i3d_checkpoint):
    from tadkit.data.synthetic_video import make_synthetic_videos
    root = tmp_path_factory.mktemp("sharded")
    make_synthetic_videos(root, videos=5, classes=2, frames=24, fps=10.0, size=32, seed=5)  # 5: unequal shares
    one, two = root / "one", root / "two"
    _extract(root / "videos", i3d_checkpoint, one, 1)
    said = _extract(root / "videos", i3d_checkpoint, two, 2)
    return root, one, two, said


def _same(a, b):
    assert _files(a) == _files(b)
    assert (a / "features.json").read_text() == (b / "features.json").read_text()
    assert json.loads((a / "features.json").read_text())["weights"].endswith("i3d-kinetics-400.ckpt")
    for name in _files(a):
        if name.endswith(".npy"):
            np.testing.assert_array_equal(np.load(a / name), np.load(b / name))


def test_two_processes_write_the_files_of_one(runs):
    root, one, two, said = runs
    assert len(_files(one)) == 6                                  # 5 videos + features.json
    _same(one, two)
    assert said.count("extracted 5 videos") == 1                  # rank 0 speaks for both


def test_a_killed_sharded_run_resumes_video_by_video(runs, i3d_checkpoint, tmp_path):
    import shutil
    root, one, two, _ = runs
    # what a killed two-process run leaves: three finished videos recorded in .parts, no features.json,
    # and a half-written temporary
    killed = tmp_path / "killed"
    shutil.copytree(two, killed)
    meta = json.loads((killed / "features.json").read_text())
    (killed / "features.json").unlink()
    (killed / ".parts").mkdir()
    from tadkit.engine.extract import write_part
    settings = {k: meta[k] for k in ("backbone", "endpoint", "fps", "feature_stride", "feature_window",
                                     "short_side", "crop")}
    ids = sorted(meta["videos"])
    for vid in ids[:3]:
        write_part(killed, vid, settings, meta["videos"][vid])
    for vid in ids[3:]:
        (killed / f"{vid}.npy").unlink()
    (killed / f".{ids[3]}.npy.abcd.tmp.npy").write_bytes(b"half")
    # a fourth video recorded with other settings (a killed run at another stride): made again, not taken
    np.save(killed / f"{ids[3]}.npy", np.zeros((3, 1024), np.float32))
    write_part(killed, ids[3], {**settings, "feature_stride": 8}, meta["videos"][ids[3]])
    said = _extract(root / "videos", i3d_checkpoint, killed, 2)
    assert "extracted 2 videos" in said and "3 already there" in said
    _same(one, killed)                                            # .parts and the temporary are gone too


def test_torchrun_fit_two_processes(runs, i3d_checkpoint, tmp_path):
    """``torchrun --nproc_per_node 2 -m tadkit fit``: the extraction shared, one set of run files, one summary."""
    import csv
    root, one, _, _ = runs
    ann = json.loads((root / "annotations.json").read_text())
    with open(tmp_path / "labels.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["video", "start", "end", "label"])
        for vid, v in sorted(ann["database"].items()):
            for a in v["annotations"]:
                w.writerow([f"{vid}.mp4", *a["segment"], a["label"]])
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TADKIT_HOME": str(tmp_path / "home")}
    tiny = ["model.embed_dim=16", "model.fpn_dim=16", "model.head_dim=16", "model.num_heads=2", "train.epochs=1",
            "train.warmup_epochs=0", "train.batch_size=2", "train.progress=false", "train.cpu_amp=false"]
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port",
                           str(_free_port()), "-m", "tadkit", "fit", str(root / "videos"), str(tmp_path / "labels.csv"),
                           "--out", str(tmp_path / "run"), "--weights", str(i3d_checkpoint), *SMALL[:4],
                           "--val-fraction", "0.4", *tiny], capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.count("tadkit fit: trained") == 1                 # rank 0's summary only
    run = tmp_path / "run"
    for name in ("annotations.json", "config.yaml", "metrics.json", "predictions.json", "report.html"):
        assert (run / name).is_file(), name
    _same(one, run / "features")                                          # the one-process features
    assert len(list((tmp_path / "home" / "features").rglob("*.npy"))) == 5   # and kept for the next fit
