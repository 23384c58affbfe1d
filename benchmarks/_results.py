"""Results of the benchmark scripts as JSON: the machine and code a run measured, and its table's rows.

Every script in ``benchmarks/`` writes ``benchmarks/results/<script>.json`` (``--results PATH``
overrides) through :func:`save`; ``benchmarks/render.py`` turns those files into
``docs/benchmarks.md``. A file holds::

    benchmark  the script's name (e.g. "eval_speed")
    command    the command line, "python benchmarks/<script>.py ARGS"
    date       when the command started, ISO 8601, UTC
    commit     git HEAD when the command started, "-dirty" appended when the tree had changes outside
               the generated files
    cpu        the CPU's model name (/proc/cpuinfo, else the platform's)
    cpu_count  os.cpu_count()
    threads    torch's CPU threads where the script computes with torch, else os.cpu_count()
    device     where the script runs on a device (absent otherwise)
    python     Python's version
    torch      torch's version (null when it is not installed)
    setting    one line on what was measured (optional)
    columns    the table's column order
    rows       the table's rows, one dict each, units in the keys (e.g. "ms_per_step"); a row's
               "table" key, where present, names the table it belongs to when a script prints several

Keys are written sorted; NaN and infinity are written as null.
"""
from __future__ import annotations

import argparse
import datetime as _dt
import json
import math
import os
import platform
import shlex
import subprocess
import sys
import tempfile
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS_DIR = ROOT / "benchmarks" / "results"
# written by the benchmarks themselves: not a change to the code measured
GENERATED = ("benchmarks/results", "docs/benchmarks.md")


def add_results_argument(parser: argparse.ArgumentParser, name: str) -> None:
    """``--results PATH``: where the JSON goes (default ``benchmarks/results/<name>.json``)."""
    parser.add_argument("--results", type=Path, default=RESULTS_DIR / f"{name}.json", metavar="JSON",
                        help=f"write the results here (default benchmarks/results/{name}.json)")


def command_line(script: str, argv: list[str] | None = None) -> str:
    """``python benchmarks/<script>.py ARGS`` with the arguments as given, shell-quoted."""
    args = sys.argv[1:] if argv is None else list(argv)
    return shlex.join(["python", f"benchmarks/{script}.py", *args])


def git_commit() -> str:
    """HEAD's hash, ``-dirty`` appended when tracked or untracked files differ (generated files aside)."""
    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    try:
        head = git("rev-parse", "HEAD").strip()
        changes = git("status", "--porcelain", "--", ".", *(f":(exclude){p}" for p in GENERATED)).strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return head + ("-dirty" if changes else "")


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def package_version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def utc_now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


# taken when a script imports this module, i.e. as it starts: the code it measures
STARTED = {"date": utc_now(), "commit": git_commit()}


def metadata_for(script: str, *, threads: int | None = None, device: str | None = None,
                 argv: list[str] | None = None) -> dict:
    """The fields every results file holds besides its rows."""
    meta = {"benchmark": script, "command": command_line(script, argv), "date": STARTED["date"],
            "commit": STARTED["commit"], "cpu": cpu_model(), "cpu_count": os.cpu_count(),
            "threads": threads if threads is not None else os.cpu_count(),
            "python": platform.python_version(), "torch": package_version("torch")}
    if device is not None:
        meta["device"] = device
    return meta


def clean(value):
    """JSON-safe: numpy scalars and arrays to Python, NaN / infinity to None, tuples to lists."""
    if hasattr(value, "tolist") and not isinstance(value, (str, bytes)):
        value = value.tolist()
    if isinstance(value, dict):
        return {str(k): clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [clean(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def columns_of(rows: list[dict]) -> list[str]:
    """Every key of ``rows`` but ``table``, in the order of first appearance."""
    out: dict[str, None] = {}
    for row in rows:
        out.update(dict.fromkeys(k for k in row if k != "table"))
    return list(out)


def write_json(path: str | os.PathLike, data: dict) -> Path:
    """Write ``data`` (sorted keys) to ``path`` atomically: a temporary file beside it, then a rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, 0o644)   # mkstemp's 0600 would make the file private
        with os.fdopen(fd, "w") as f:
            json.dump(clean(data), f, indent=1, sort_keys=True, allow_nan=False)
            f.write("\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def save(script: str, rows: list[dict], path: str | os.PathLike | None = None, *, threads: int | None = None,
         device: str | None = None, setting: str | None = None, columns: list[str] | None = None,
         argv: list[str] | None = None, **extra) -> Path:
    """Write one run's results (metadata, ``rows``, ``extra`` fields) and return the path written."""
    data = metadata_for(script, threads=threads, device=device, argv=argv)
    if setting is not None:
        data["setting"] = setting
    data.update(extra)
    data["columns"] = columns or columns_of(rows)
    data["rows"] = rows
    path = write_json(path or RESULTS_DIR / f"{script}.json", data)
    print(f"results written to {_shown(path)}", flush=True)
    return path


def load(path: str | os.PathLike) -> dict | None:
    """A results file's contents, or None when it does not exist."""
    try:
        with open(path) as f:
            return json.load(f)
    except FileNotFoundError:
        return None


def _shown(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(ROOT))
    except ValueError:
        return str(path)
