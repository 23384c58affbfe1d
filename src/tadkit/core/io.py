"""File helpers: output checks, atomic writes and JSON reading with errors that name the file.

Every command follows one rule: validate, then write. Its inputs are read and checked and its
outputs checked with :func:`check_output_dir` / :func:`check_output_file` (which create nothing)
before the first byte is written; files are then written under a temporary name and renamed
(:func:`atomic_path`), so an error or an interruption never leaves a folder or half a file behind.
"""
from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Iterator

from .errors import ConfigError, DataError


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` on success.

    On any exception the temporary file is removed and ``path`` is untouched, so an
    interrupted run never leaves half a file. ``suffix`` keeps a file extension
    that a writer insists on (``np.save`` appends ``.npy`` otherwise).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    suffix = suffix if suffix is not None else path.suffix
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=f".tmp{suffix}", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        with contextlib.suppress(OSError):          # mkstemp makes 0600; give the usual 0666 & ~umask
            os.chmod(tmp_path, 0o666 & ~_umask())
        os.replace(tmp_path, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp_path.unlink()
        raise


def _writable_ancestor(path: Path, option: str) -> None:
    """The nearest existing ancestor of ``path`` must be a directory we may write into."""
    a = path
    while not a.exists():
        if a.parent == a:
            break
        a = a.parent
    if a.exists() and not a.is_dir():
        raise ConfigError(f"{option}: {a} is a file, so {path} cannot be made", path=path,
                          fix="choose a path whose folders are folders")
    if not os.access(a, os.W_OK | os.X_OK):
        raise ConfigError(f"{option}: no permission to write into {a}", path=path, fix="choose a writable place")


def check_output_dir(path: str | os.PathLike, option: str = "the output directory") -> Path:
    """An output directory that is there or can be made (creates nothing); a one-line error otherwise."""
    p = Path(path)
    if p.exists():
        if not p.is_dir():
            raise ConfigError(f"{option} exists and is a file, not a directory", path=p,
                              fix="choose another path, or remove the file")
        if not os.access(p, os.W_OK | os.X_OK):
            raise ConfigError(f"{option}: no permission to write into it", path=p, fix="choose a writable place")
        return p
    _writable_ancestor(p, option)
    return p


def check_output_file(path: str | os.PathLike, option: str = "the output file") -> Path:
    """An output file that can be written (creates nothing); a one-line error otherwise."""
    p = Path(path)
    if p.is_dir():
        raise ConfigError(f"{option} is a directory", path=p, fix="give a file name")
    if p.exists() and not os.access(p, os.W_OK):
        raise ConfigError(f"{option}: no permission to replace it", path=p, fix="choose a writable place")
    check_output_dir(p.parent if str(p.parent) else Path("."), f"the folder of {option}")
    return p


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def atomic_write_json(path: str | os.PathLike, obj: Any, indent: int | None = 1) -> None:
    atomic_write_text(path, json.dumps(obj, indent=indent) + "\n")


def read_json(path: str | os.PathLike, what: str = "JSON file") -> Any:
    """Read a JSON file; missing or malformed files raise :class:`DataError`."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"{what} not found", path=path, fix="check the path")
    if path.is_dir():
        raise DataError(f"expected a {what}, found a directory", path=path,
                        fix="pass the JSON file inside it")
    try:
        with open(path, "r", encoding="utf-8") as f:
            return json.load(f)
    except json.JSONDecodeError as e:
        raise DataError(f"invalid JSON at line {e.lineno} column {e.colno}: {e.msg}", path=path,
                        fix=f"repair or regenerate the {what}") from None
    except UnicodeDecodeError:
        raise DataError("not a UTF-8 text file", path=path,
                        fix=f"pass the {what}, not a binary file") from None
