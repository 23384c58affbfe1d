"""Reliability: kill -9 at any moment, one live process per output folder, a full disk.

Each interruption runs in a child process that kills itself with SIGKILL at a chosen moment (inside
a training step, half-way through writing a checkpoint, half-way through writing predictions or
features): what ``kill -9`` from outside does, at a moment a test can choose.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from tadkit.core.errors import DataError
from tadkit.core.io import OutputLock, atomic_write_json
from tadkit.data.synthetic import make_synthetic

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "configs" / "asl" / "demo.yaml"

# the child: install the chosen kill point, then run the command line as `tadkit` would
CHILD = textwrap.dedent('''
    import os, signal, sys, json
    from pathlib import Path
    point, at = sys.argv[1], int(sys.argv[2])
    argv = json.loads(sys.argv[3])
    calls = {"n": 0}

    def die():
        os.kill(os.getpid(), signal.SIGKILL)

    def due():
        calls["n"] += 1
        return calls["n"] == at

    if point == "step":                      # inside the at-th training step, after its forward pass
        import torch
        real = torch.Tensor.backward
        def backward(self, *a, **k):
            if due():
                die()
            return real(self, *a, **k)
        torch.Tensor.backward = backward
    elif point == "checkpoint":              # half-way through writing the at-th checkpoint file
        import torch
        from tadkit.engine import checkpoint
        real = torch.save
        def save(obj, f, *a, **k):
            if due():
                import io
                buf = io.BytesIO()
                real(obj, buf)
                f.write(buf.getvalue()[: len(buf.getvalue()) // 2])
                f.flush()
                die()
            return real(obj, f, *a, **k)
        checkpoint.torch.save = save
    elif point in ("predictions", "features"):   # half-way through writing that file (the at-th of its kind)
        real = Path.write_text
        import numpy as np
        real_save = np.save
        def write_text(self, text, *a, **k):
            if point == "predictions" and self.name.startswith(".predictions.json") and due():
                with open(self, "w") as f:
                    f.write(text[: len(text) // 2])
                die()
            return real(self, text, *a, **k)
        def save(file, arr, *a, **k):
            if point == "features" and due():
                with open(file, "wb") as f:
                    f.write(b"\\x93NUMPY half")
                die()
            return real_save(file, arr, *a, **k)
        Path.write_text = write_text
        np.save = save
    from tadkit.cli.main import main
    sys.exit(main(argv))
''')


def _child(point: str, at: int, argv: list[str]) -> subprocess.CompletedProcess:
    env = dict(os.environ, OMP_NUM_THREADS="1")
    return subprocess.run([sys.executable, "-c", CHILD, point, str(at), json.dumps(argv)], capture_output=True,
                          text=True, env=env, cwd=ROOT)


def _cli(argv: list[str]) -> subprocess.CompletedProcess:
    return _child("none", 0, argv)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    d = tmp_path_factory.mktemp("syn")
    make_synthetic(d, videos=8, classes=2, feature_dim=16, min_duration=20, max_duration=30, seed=3)
    return d


def _train_argv(data: Path, out: Path, *extra: str) -> list[str]:
    return ["train", str(DEMO), f"data.annotations={data / 'annotations.json'}", f"data.features={data / 'features'}",
            f"output_dir={out}", "train.epochs=3", "train.eval_every=0", "train.batch_size=2", "train.progress=false",
            "model.embed_dim=16", "model.fpn_dim=16", "model.head_dim=16", "model.evaluator_dim=8", *extra]


def _no_partial_files(folder: Path) -> None:
    hidden = [p for p in folder.rglob(".*") if p.name != ".tadkit.lock"]
    assert not hidden, f"temporary files left: {hidden}"
    for p in folder.rglob("*.json"):
        json.loads(p.read_text())                                   # every JSON whole


@pytest.fixture(scope="module")
def reference(data, tmp_path_factory):
    out = tmp_path_factory.mktemp("ref") / "run"
    r = _cli(_train_argv(data, out))
    assert r.returncode == 0, r.stderr
    return json.loads((out / "predictions.json").read_text())


@pytest.mark.slow
@pytest.mark.parametrize("point,at", [("step", 2), ("step", 9), ("checkpoint", 1), ("checkpoint", 3),
                                      ("predictions", 1)])
def test_train_killed_then_resumed_gives_the_uninterrupted_predictions(data, reference, tmp_path, point, at):
    out = tmp_path / "run"
    killed = _child(point, at, _train_argv(data, out))
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert not (out / "predictions.json").exists()
    resumed = _cli(_train_argv(data, out) + ["--resume"]) if (out / "checkpoints" / "last.pt").exists() \
        else _cli(_train_argv(data, out))                          # killed before the first checkpoint
    assert resumed.returncode == 0, resumed.stderr
    assert json.loads((out / "predictions.json").read_text()) == reference
    _no_partial_files(out)
    assert not (out / ".tadkit.lock").exists()                        # released at the end


@pytest.mark.slow
def test_extract_killed_then_rerun_gives_the_same_features(tmp_path, i3d_checkpoint):
    from tadkit.data.synthetic_video import make_synthetic_videos
    make_synthetic_videos(tmp_path / "v", videos=3, frames=24, size=32)
    argv = lambda out: ["extract", str(tmp_path / "v" / "videos"), "--out", str(out), "--weights",   # noqa: E731
                        str(i3d_checkpoint), "--short-side", "32", "--crop", "32", "--no-progress"]
    ref = _cli(argv(tmp_path / "ref"))
    assert ref.returncode == 0, ref.stderr
    killed = _child("features", 2, argv(tmp_path / "feats"))         # half-way through the second video's file
    assert killed.returncode == -signal.SIGKILL
    names = sorted(p.name for p in (tmp_path / "feats").glob("*.npy"))
    assert [n for n in names if not n.startswith(".")] == ["synvid_000.npy"]     # + the killed write's temporary
    again = _cli(argv(tmp_path / "feats"))
    assert again.returncode == 0, again.stderr
    for p in sorted((tmp_path / "ref").glob("*.npy")):
        assert np.array_equal(np.load(p), np.load(tmp_path / "feats" / p.name)), p.name
    _no_partial_files(tmp_path / "feats")


# -- two runs, one folder ---------------------------------------------------------------------------
HOLD = textwrap.dedent('''
    import sys
    from tadkit.core.io import OutputLock
    lock = OutputLock(sys.argv[1], sys.argv[2])
    lock.acquire()
    print("held", flush=True)
    sys.stdin.read()
''')


def test_a_second_run_on_a_live_folder_is_refused_and_a_dead_ones_lock_blocks_nobody(data, tmp_path):
    out = tmp_path / "run"
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(out), "tadkit train"], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        second = _cli(_train_argv(data, out, "train.epochs=1"))
        assert second.returncode == 2
        lines = second.stderr.strip().splitlines()
        assert len(lines) == 1 and "another live process" in lines[0] and f"pid {holder.pid}" in lines[0], lines
        assert sorted(p.name for p in out.iterdir()) == [".tadkit.lock"]       # nothing of the second run
        (tmp_path / "vids").mkdir()
        (tmp_path / "vids" / "a.mp4").write_bytes(b"x" * 100)
        extract = _cli(["extract", str(tmp_path / "vids"), "--out", str(out), "--weights", str(tmp_path / "w.ckpt")])
        assert extract.returncode == 2 and "another live process" in extract.stderr
    finally:
        holder.kill()                                                  # kill -9: its lock file stays behind
        holder.wait()
    assert (out / ".tadkit.lock").exists()
    third = _cli(_train_argv(data, out, "train.epochs=1"))
    assert third.returncode == 0, third.stderr
    assert (out / "predictions.json").exists() and not (out / ".tadkit.lock").exists()


def test_lock_is_taken_once(tmp_path):
    a, b = OutputLock(tmp_path / "x", "a"), OutputLock(tmp_path / "x", "b")
    assert not a.acquire(create=False) and not (tmp_path / "x").exists()   # nothing to lock: nothing made
    assert a.acquire()
    with pytest.raises(Exception, match="another live process"):
        b.acquire()
    a.release()
    assert b.acquire()
    b.release()


# -- a full disk ------------------------------------------------------------------------------------
FULL_DISK = textwrap.dedent('''
    import json, os, subprocess, sys, tempfile
    import torch
    from pathlib import Path
    from tadkit.core.errors import TadkitError
    from tadkit.core.io import atomic_write_json
    from tadkit.engine.checkpoint import load_checkpoint, save_checkpoint
    mnt = Path(tempfile.mkdtemp())
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(mnt)], check=True)
    out = {}
    state = lambda n: {"epoch": n, "model": {"w": torch.arange(float(n))}, "model_info": {"name": "toy"},
                       "config": {}}
    save_checkpoint(mnt / "last.pt", state(1000))                  # fits
    try:
        save_checkpoint(mnt / "last.pt", state(100000))            # 400 kB: does not
        out["checkpoint"] = "no error"
    except TadkitError as e:
        out["checkpoint"] = e.one_line()
    out["checkpoint_kept"] = int(load_checkpoint(mnt / "last.pt")["epoch"])
    atomic_write_json(mnt / "predictions.json", {"results": {"a": []}})
    try:
        atomic_write_json(mnt / "predictions.json", {"results": {"v%d" % i: [] for i in range(40000)}})
        out["predictions"] = "no error"
    except TadkitError as e:
        out["predictions"] = e.one_line()
    out["predictions_kept"] = json.loads((mnt / "predictions.json").read_text())
    out["left"] = sorted(p.name for p in mnt.iterdir())
    gt = Path(sys.argv[1])
    pred = mnt / "p.json"
    pred.write_text(json.dumps({"results": {}}))
    try:                                                           # fill what is left
        (mnt / "filler").write_bytes(b"0" * (256 * 1024))
    except OSError:
        pass
    r = subprocess.run([sys.executable, "-m", "tadkit", "eval", "--gt", str(gt), "--pred", sys.argv[2],
                        "--out", str(mnt / "metrics.json")], capture_output=True, text=True)
    out["eval"] = [r.returncode, r.stderr]
    print(json.dumps(out))
''')


def test_a_full_disk_keeps_the_previous_file_and_says_so_in_one_line(data, tmp_path):
    """On a 256 kB tmpfs (a mount namespace of its own: nothing outside changes)."""
    pred = tmp_path / "pred.json"
    ann = json.loads((data / "annotations.json").read_text())
    pred.write_text(json.dumps({"results": {v: [{"segment": [0.0, 1.0], "label": "action_00", "score": 0.5}] * 3000
                                            for v in ann["database"]}}))
    prefix = ["unshare", "--mount"] if os.geteuid() == 0 else ["unshare", "--user", "--map-root-user", "--mount"]
    r = subprocess.run(prefix + [sys.executable, "-c", FULL_DISK, str(data / "annotations.json"), str(pred)],
                       capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout.strip().splitlines()[-1])
    assert "no space left on the device while writing last.pt; the previous file is intact" in out["checkpoint"]
    assert out["checkpoint_kept"] == 1000
    assert "no space left" in out["predictions"] and "predictions.json" in out["predictions"]
    assert out["predictions_kept"] == {"results": {"a": []}}
    assert out["left"] == ["last.pt", "predictions.json"]              # no temporary file left
    assert "p.json" not in out["left"]
    code, err = out["eval"]
    errors = [ln for ln in err.strip().splitlines() if "warning:" not in ln]       # eval's warnings aside
    assert code == 2 and len(errors) == 1 and "no space left" in errors[0] and "Traceback" not in err, err


def test_atomic_link_or_copy_links_where_it_can_and_copies_where_it_cannot(tmp_path, monkeypatch):
    import os

    from tadkit.core.io import atomic_link_or_copy
    src = tmp_path / "epoch_001.pt"
    src.write_bytes(b"weights" * 1000)
    atomic_link_or_copy(src, tmp_path / "last.pt")
    assert (tmp_path / "last.pt").samefile(src)                         # one file, two names
    (tmp_path / "old.pt").write_bytes(b"old")
    atomic_link_or_copy(src, tmp_path / "old.pt")                        # replaces an existing file
    assert (tmp_path / "old.pt").read_bytes() == src.read_bytes()

    def no_links(*a, **k):                                               # e.g. another file system
        raise OSError(18, "Invalid cross-device link")
    monkeypatch.setattr(os, "link", no_links)
    atomic_link_or_copy(src, tmp_path / "copy.pt")
    assert (tmp_path / "copy.pt").read_bytes() == src.read_bytes()
    assert not (tmp_path / "copy.pt").samefile(src)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["copy.pt", "epoch_001.pt", "last.pt", "old.pt"]  # no temporaries
