"""File helpers: output checks, atomic writes and JSON reading with errors that name the file.

Every command follows one rule: validate, then write. Its inputs are read and checked and its
outputs checked with :func:`check_output_dir` / :func:`check_output_file` (which create nothing)
before the first byte is written; files are then written under a temporary name and renamed
(:func:`atomic_path`), so an error or an interruption never leaves a folder or half a file behind.
"""
from __future__ import annotations

import contextlib
import errno
import json
import os
import socket
import tempfile
import time
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
    except BaseException as e:
        with contextlib.suppress(FileNotFoundError):
            tmp_path.unlink()
        if _disk_full(e):
            raise DataError(f"no space left on the device while writing {path.name}; "
                            f"{'the previous file is intact' if path.exists() else 'nothing was written'}",
                            path=path, fix="free some disk space, then run the same command again "
                                           "(training: with --resume)") from None
        raise


_DISK_FULL = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG}


def _disk_full(e: BaseException | None) -> bool:
    """A write that failed for lack of space (also behind a library's own error, e.g. torch.save's)."""
    seen = 0
    while e is not None and seen < 10:
        if isinstance(e, OSError) and e.errno in _DISK_FULL:
            return True
        e = e.__cause__ or e.__context__
        seen += 1
    return False


def remove_stale_temporaries(folder: str | os.PathLike) -> list[Path]:
    """Delete what :func:`atomic_path` leaves when its process is killed (``.NAME.XXXX.tmpSUFFIX``).

    Only for a folder whose :class:`OutputLock` the caller holds: no live process is writing there.
    """
    removed = []
    folder = Path(folder)
    if folder.is_dir():
        for p in folder.rglob(".*.tmp*"):
            if p.is_file() and ".tmp" in p.name[1:]:
                with contextlib.suppress(OSError):
                    p.unlink()
                    removed.append(p)
    return removed


class OutputLock:
    """One live process per output folder: ``FOLDER/.tadkit.lock``, held with ``flock`` while it runs.

    The operating system drops the lock when its process ends, however it ends (``kill -9``
    included), so a stale lock file never blocks: a second process is refused only while the first
    is alive. The file names the holder (pid, host, command, start) for the refusal's message.
    """

    NAME = ".tadkit.lock"

    def __init__(self, folder: str | os.PathLike, command: str):
        self.folder = Path(folder)
        self.command = command
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self, create: bool = True) -> bool:
        """Take the lock (making the folder when ``create``); False when the folder is not there to lock."""
        import fcntl
        if self._fd is not None:
            return True
        if not self.folder.is_dir():
            if not create:
                return False
            self.folder.mkdir(parents=True, exist_ok=True)
        path = self.folder / self.NAME
        for _ in range(10):
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666 & ~_umask())
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                os.close(fd)
                raise ConfigError(f"another live process is using this folder{self._holder(path)}",
                                  path=self.folder, fix="wait for it to finish, or choose another output folder") from None
            try:                                   # the holder before us may have removed the file meanwhile
                same = os.fstat(fd).st_ino == os.stat(path).st_ino
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)
        else:
            raise ConfigError("could not take the folder's lock file", path=path, fix="run the command again")
        os.ftruncate(fd, 0)
        os.write(fd, json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "command": self.command,
                                 "started": time.strftime("%Y-%m-%d %H:%M:%S")}).encode())
        self._fd = fd
        return True

    @staticmethod
    def _holder(path: Path) -> str:
        with contextlib.suppress(OSError, ValueError, AttributeError):
            info = json.loads(path.read_text() or "{}")
            return (f" ({info.get('command', 'tadkit')}, pid {info.get('pid')} on {info.get('host')}, "
                    f"since {info.get('started')})")
        return ""

    def release(self) -> None:
        """Remove the lock file, then drop the lock (a killed holder's file stays; it blocks nobody)."""
        if self._fd is not None:
            with contextlib.suppress(OSError):
                (self.folder / self.NAME).unlink()
            os.close(self._fd)                      # closing drops the flock
            self._fd = None


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


def atomic_link_or_copy(src: str | os.PathLike, dest: str | os.PathLike) -> None:
    """``dest`` becomes ``src``'s content at once: a hard link (no space, no time) where the file system
    allows, else a copy; never half there. Safe because tadkit replaces files, never edits them in place."""
    import shutil
    dest = Path(dest)
    with atomic_path(dest, suffix=dest.suffix) as tmp:
        tmp.unlink()
        try:
            os.link(src, tmp)
        except OSError:
            shutil.copyfile(src, tmp)


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
    except ValueError as e:                   # e.g. an integer of more than 4300 digits
        raise DataError(f"invalid JSON: {str(e).split(';')[0][:100]}", path=path,
                        fix=f"repair or regenerate the {what}") from None
    except RecursionError:
        raise DataError("invalid JSON: nested too deeply", path=path,
                        fix=f"repair or regenerate the {what}") from None
