"""Checkpoints: atomic writes, weights-only loading, clear errors for bad files."""
from __future__ import annotations

import random

import numpy as np
import pytest
import torch

from tadkit.core.errors import CheckpointError
from tadkit.engine.checkpoint import (check_compatible, load_checkpoint, load_weights, rng_state, save_checkpoint,
                                      set_rng_state)

from ._toy import ToyDetector


def _state(value: float) -> dict:
    return {"epoch": 1, "model": {"w": torch.full((3,), value)}, "model_info": {"name": "toy", "num_classes": 3,
            "input_dim": 8, "classes": ["a", "b", "c"]}, "config": {}}


def test_failure_mid_save_leaves_the_old_checkpoint(tmp_path, monkeypatch):
    path = tmp_path / "last.pt"
    save_checkpoint(path, _state(1.0))
    original = path.read_bytes()

    def crash(obj, f, *args, **kwargs):
        f.write(b"PK\x03\x04 half a checkpoint")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", crash)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(path, _state(2.0))
    assert path.read_bytes() == original
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]          # no temporary file left behind
    assert torch.equal(load_checkpoint(path)["model"]["w"], torch.full((3,), 1.0))


@pytest.mark.parametrize("content", [b"", b"not a checkpoint at all", None])
def test_unreadable_files_are_checkpoint_errors(tmp_path, content):
    path = tmp_path / "bad.pt"
    if content is None:        # a truncated real checkpoint
        save_checkpoint(path, _state(1.0))
        path.write_bytes(path.read_bytes()[:200])
    else:
        path.write_bytes(content)
    with pytest.raises(CheckpointError, match="cannot read the checkpoint: (not a PyTorch file|not a tadkit "
                                               "checkpoint, or one truncated or damaged|a pickle a safe load cannot read)") as e:
        load_checkpoint(path)
    assert "bad.pt" in str(e.value) and "\n" not in str(e.value)


class _RunsCode:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        import pathlib
        return pathlib.Path.touch, (pathlib.Path(self.marker),)


@pytest.mark.parametrize("protocol", [2, 4])   # torch.save writes 2; 4 made torch warn about the protocol
def test_a_pickle_that_would_run_code_is_refused_in_one_line(tmp_path, protocol):
    """Not loaded (the marker file is never made), and the user sees tadkit's line only: no torch warning."""
    import pickle
    import subprocess
    import sys
    marker = tmp_path / "ran"
    path = tmp_path / "evil.pt"
    with open(path, "wb") as f:
        pickle.dump({"model": _RunsCode(str(marker))}, f, protocol=protocol)
    code = ("import sys; from tadkit.engine.checkpoint import load_checkpoint\n"
            "from tadkit.core.errors import TadkitError\n"
            "try: load_checkpoint(sys.argv[1])\n"
            "except TadkitError as e: print(e.one_line(), file=sys.stderr); sys.exit(2)")
    p = subprocess.run([sys.executable, "-W", "default", "-c", code, str(path)], capture_output=True, text=True)
    assert p.returncode == 2 and not marker.exists()
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and "evil.pt" in lines[0] and "was not loaded" in lines[0], p.stderr


def test_other_torch_files_and_missing_files(tmp_path):
    torch.save({"state_dict": {"w": torch.ones(2)}}, tmp_path / "other.pt")
    with pytest.raises(CheckpointError, match="not a tadkit checkpoint"):
        load_checkpoint(tmp_path / "other.pt")
    with pytest.raises(CheckpointError, match="not found"):
        load_checkpoint(tmp_path / "missing.pt")
    with pytest.raises(CheckpointError, match="directory"):
        load_checkpoint(tmp_path)


def test_compatibility_checks(tmp_path):
    save_checkpoint(tmp_path / "c.pt", _state(1.0))
    ckpt = load_checkpoint(tmp_path / "c.pt")
    check_compatible(ckpt, name="toy", num_classes=3, input_dim=8)
    with pytest.raises(CheckpointError, match="holds model 'toy' but the config asks for 'actionformer'"):
        check_compatible(ckpt, name="actionformer")
    with pytest.raises(CheckpointError, match="trained for 3 classes but the data has 5"):
        check_compatible(ckpt, name="toy", num_classes=5)
    with pytest.raises(CheckpointError, match="8-d features"):
        check_compatible(ckpt, name="toy", input_dim=16)
    model = ToyDetector(3, 8, hidden=4)
    with pytest.raises(CheckpointError, match="do not fit the configured model"):
        load_weights(model, ToyDetector(3, 8, hidden=6).state_dict())


def test_rng_state_round_trip_is_weights_only(tmp_path):
    torch.manual_seed(3), np.random.seed(3), random.seed(3)
    state = rng_state()
    expected = (torch.rand(3), np.random.rand(3), random.random())
    torch.save({"rng": state}, tmp_path / "rng.pt")
    loaded = torch.load(tmp_path / "rng.pt", weights_only=True)["rng"]
    torch.manual_seed(99), np.random.seed(99), random.seed(99)
    set_rng_state(loaded)
    assert torch.equal(torch.rand(3), expected[0])
    assert np.array_equal(np.random.rand(3), expected[1]) and random.random() == expected[2]
