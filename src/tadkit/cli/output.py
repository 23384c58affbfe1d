"""What the commands share: the metrics table and the library's log lines on stderr."""
from __future__ import annotations

import logging
import os
import sys


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever ``sys.stderr`` is at the time of each record (it may be replaced after set-up)."""

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, value):
        pass


def setup_logging() -> None:
    """Library notes (logger ``tadkit``) on stderr, once, only on the main process."""
    log = logging.getLogger("tadkit")
    if not log.handlers:
        handler = _StderrHandler()
        handler.setFormatter(logging.Formatter("tadkit: %(levelname)s: %(message)s"))
        log.addHandler(handler)
        log.setLevel(logging.INFO if os.environ.get("RANK", "0") == "0" else logging.ERROR)
        log.propagate = False


def print_metrics(m: dict) -> None:
    """The metrics of ``tadkit eval`` / ``train`` as a table, in percent."""
    head = f"subset {m['subset']!r}: {m['num_videos']} videos, {m['num_ground_truth']} ground truths, " \
           f"{m['num_predictions']} predictions"
    print(head)
    tious = m["tiou"]
    print("tIoU   " + " ".join(f"{t:6.2f}" for t in tious) + "    avg")
    print("mAP    " + " ".join(f"{100 * x:6.2f}" for x in m["mAP"]) + f" {100 * m['average_mAP']:6.2f}")
    for k, vals in m.get("recall", {}).items():
        print(f"{k:<7}" + " ".join(f"{100 * x:6.2f}" for x in vals))
    if "segmentation_mAP" in m:
        print(f"segmentation mAP ({m['frames_per_video']} frames per video): {100 * m['segmentation_mAP']:.2f}")
    print("(percent; metrics files hold fractions)")
