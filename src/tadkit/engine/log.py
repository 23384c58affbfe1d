"""Training logs: a table on stdout, ``log.csv`` (rewritten atomically), optional TensorBoard.

Library notes and warnings go through the ``tadkit`` :mod:`logging` logger; the table is the
only thing printed, and only by the main process.
"""
from __future__ import annotations

import csv
import io
import logging
import math
import sys
from pathlib import Path

from ..core.errors import ConfigError
from ..core.io import atomic_write_text

__all__ = ["logger", "TablePrinter", "RunLog", "format_value"]

logger = logging.getLogger("tadkit")


def format_value(v) -> str:
    if v is None or v == "":
        return "-"
    if isinstance(v, bool):
        return str(v)
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if math.isnan(v):
            return "nan"
        if v != 0 and (abs(v) < 1e-3 or abs(v) >= 1e5):
            return f"{v:.3e}"
        return f"{v:.4f}"
    return str(v)


class TablePrinter:
    """Rows of a fixed set of columns, header printed once, columns padded to their header."""

    def __init__(self, columns: list[str], stream=None, min_width: int = 9):
        self.columns = list(columns)
        self.stream = stream
        self.widths = [max(min_width, len(c)) for c in self.columns]
        self._header_done = False

    def _write(self, text: str) -> None:
        stream = self.stream if self.stream is not None else sys.stdout
        stream.write(text + "\n")
        stream.flush()

    def row(self, values: dict) -> None:
        if not self._header_done:
            self._write("  ".join(c.rjust(w) for c, w in zip(self.columns, self.widths)))
            self._header_done = True
        self._write("  ".join(format_value(values.get(c)).rjust(w) for c, w in zip(self.columns, self.widths)))


class RunLog:
    """One row per epoch: printed, kept in ``history``, written to CSV (and TensorBoard)."""

    def __init__(self, out_dir: Path | None, *, enabled: bool = True, tensorboard: bool = False,
                 history: list[dict] | None = None, stream=None):
        self.out_dir = Path(out_dir) if out_dir is not None else None
        self.enabled = enabled
        self.history: list[dict] = [dict(r) for r in (history or [])]
        self.stream = stream
        self._table: TablePrinter | None = None
        self._tb = None
        if enabled and tensorboard and self.out_dir is not None:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:
                raise ConfigError("train.tensorboard is on but the tensorboard package is not installed",
                                  fix="pip install tensorboard, or set train.tensorboard=false") from None
            self._tb = SummaryWriter(log_dir=str(self.out_dir / "tensorboard"))

    def columns(self) -> list[str]:
        cols: list[str] = []
        for r in self.history:
            for k in r:
                if k not in cols:
                    cols.append(k)
        return cols

    def log(self, row: dict) -> None:
        self.history.append(dict(row))
        if not self.enabled:
            return
        if self._table is None:
            self._table = TablePrinter(list(row), self.stream)
        self._table.row(row)
        if self.out_dir is not None:
            buf = io.StringIO()
            writer = csv.DictWriter(buf, fieldnames=self.columns(), lineterminator="\n")
            writer.writeheader()
            for r in self.history:
                writer.writerow({k: ("" if v is None else v) for k, v in r.items()})
            atomic_write_text(self.out_dir / "log.csv", buf.getvalue())
        if self._tb is not None:
            step = int(row.get("epoch", len(self.history)))
            for k, v in row.items():
                if k != "epoch" and isinstance(v, (int, float)) and not isinstance(v, bool) and v is not None:
                    self._tb.add_scalar(k, v, step)
            self._tb.flush()

    def close(self) -> None:
        if self._tb is not None:
            self._tb.close()
            self._tb = None
