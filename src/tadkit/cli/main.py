"""The ``tadkit`` command line: thin parsing around the library.

User errors (:class:`tadkit.TadkitError`) print one line on stderr and exit 2;
anything else is an internal error (exit 1, with the traceback).
"""
from __future__ import annotations

import argparse
import sys
import traceback

from ..core.errors import TadkitError
from .data_commands import DATA_COMMANDS
from .diagnose_commands import DIAGNOSE_COMMANDS
from .engine_commands import ENGINE_COMMANDS
from .fit_commands import FIT_COMMANDS
from .report_commands import REPORT_COMMANDS
from .video_commands import VIDEO_COMMANDS

# the order of `tadkit --help`: the first hour first
_ALL = DATA_COMMANDS | ENGINE_COMMANDS | VIDEO_COMMANDS | DIAGNOSE_COMMANDS | REPORT_COMMANDS | FIT_COMMANDS
COMMANDS: dict = {name: _ALL[name] for name in (
    "demo", "fit", "train", "predict", "eval", "diagnose", "report", "weights", "extract", "detect", "convert",
    "synth")}


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="tadkit", description="Temporal action detection toolkit.")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name, (register, _) in COMMANDS.items():
        register(sub)
    return p


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        code = COMMANDS[args.command][1](args)
        return int(code or 0)
    except TadkitError as e:
        print(f"tadkit {args.command}: error: {e.one_line()}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"tadkit {args.command}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0
    except Exception:  # an internal error: keep the traceback for the bug report
        traceback.print_exc()
        print(f"tadkit {args.command}: internal error (exit 1); please report it with the traceback above",
              file=sys.stderr)
        return 1


def entry() -> None:
    sys.exit(main())


if __name__ == "__main__":
    entry()
