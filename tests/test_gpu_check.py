"""benchmarks/gpu_check.py, the device smoke test, run on the CPU so that it keeps working between GPU runs."""
from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "gpu_check.py"
METHODS = ("asl", "amnet", "tags", "sptad", "pointtad", "actionformer")
EXPECTED = (["synthetic features", "synthetic videos"] + [f"train {m}" for m in METHODS]
            + [f"predict {m}" for m in METHODS]
            + ["torchrun", "extract", "detect", "e2e pointtad", "e2e sptad", "detect e2e"])


def _module():
    sys.path.insert(0, str(SCRIPT.parent))          # the script imports benchmarks/_results.py
    try:
        spec = importlib.util.spec_from_file_location("gpu_check", SCRIPT)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(SCRIPT.parent))
    return module


def test_a_cpu_run_writes_no_results_unless_asked(tmp_path):
    gpu_check = _module()
    assert gpu_check.results_path("cpu", None) is None                      # the GPU record stays
    assert gpu_check.results_path("cpu", tmp_path / "r.json") == tmp_path / "r.json"
    assert gpu_check.results_path("cuda", None) == ROOT / "benchmarks" / "results" / "gpu_check.json"


def test_cuda_without_a_gpu_exits_2(capsys):
    import torch
    if torch.cuda.is_available():
        pytest.skip("a GPU is visible")
    assert _module().main(["--device", "cuda"]) == 2
    assert "--device cpu" in capsys.readouterr().err


@pytest.mark.slow
def test_every_check_passes_on_the_cpu(tmp_path):
    """The whole script with --device cpu; the I3D cache empty, so extract and detect take the
    random-weight path a GPU machine without the cached weights takes."""
    results = tmp_path / "gpu_check.json"
    env = {**os.environ, "TADKIT_HOME": str(tmp_path / "empty_home")}
    proc = subprocess.run([sys.executable, str(SCRIPT), "--device", "cpu", "--results", str(results)],
                          capture_output=True, text=True, env=env, cwd=tmp_path, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert re.search(r"^check +\| passed \| seconds \| note$", proc.stdout, re.M)      # the printed table
    data = json.loads(results.read_text())
    assert data["benchmark"] == "gpu_check" and data["device"] == "cpu"
    assert data["columns"] == ["check", "passed", "seconds", "note"]
    assert [r["check"] for r in data["rows"]] == EXPECTED
    failed = [(r["check"], r["note"]) for r in data["rows"] if not r["passed"]]
    assert not failed
    assert all(r["seconds"] > 0 for r in data["rows"])
    notes = {r["check"]: r["note"] for r in data["rows"]}
    assert "not cached" in notes["extract"] and "random weights" in notes["extract"]
    assert all("bfloat16 autocast" in notes[f"train {m}"] for m in METHODS)
    assert not list((tmp_path / "empty_home").rglob("*.ckpt"))                 # nothing fetched
