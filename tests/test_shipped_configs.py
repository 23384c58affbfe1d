"""The configs travel with the package: an installed tadkit (no source tree) finds ``configs/<method>/*.yaml``."""
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tadkit.config import configs_dir, load_config, shipped_config

ROOT = Path(__file__).resolve().parents[1]
SOURCE = sorted(p.relative_to(ROOT / "configs").as_posix() for p in (ROOT / "configs").glob("*/*.yaml"))


def test_the_package_sees_every_config_of_the_source_tree():
    assert len(SOURCE) > 20
    assert sorted(p.relative_to(configs_dir()).as_posix() for p in configs_dir().glob("*/*.yaml")) == SOURCE


def test_a_built_wheel_carries_every_config(tmp_path):
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w",
                    str(tmp_path), str(ROOT)], check=True, capture_output=True, timeout=300)
    (wheel,) = tmp_path.glob("tadkit-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    shipped = sorted(n.removeprefix("tadkit/_configs/") for n in names if n.startswith("tadkit/_configs/"))
    assert shipped == SOURCE
    for n in shipped:                                            # a copy of the file, not a link
        assert zipfile.ZipFile(wheel).read("tadkit/_configs/" + n) == (ROOT / "configs" / n).read_bytes()


def test_configs_paths_resolve_from_any_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)                                  # no configs/ here
    assert not Path("configs/asl/custom.yaml").exists()
    for name in ("configs/asl/custom.yaml", "asl/custom.yaml"):
        cfg = load_config(name, ["train.epochs=3"])
        assert cfg.model.name == "asl" and cfg.train.epochs == 3
        assert Path(cfg.source).resolve() == (ROOT / "configs/asl/custom.yaml").resolve()
    # a file of the user's own with that name wins
    own = tmp_path / "configs" / "asl"
    own.mkdir(parents=True)
    (own / "custom.yaml").write_text("model:\n  name: actionformer\n")
    assert load_config("configs/asl/custom.yaml").model.name == "actionformer"
    assert shipped_config("configs/../x.yaml") is None and shipped_config("configs/asl/nothere.yaml") is None
    from tadkit.core.errors import ConfigError
    with pytest.raises(ConfigError, match="not found"):
        load_config("configs/asl/nothere.yaml")
