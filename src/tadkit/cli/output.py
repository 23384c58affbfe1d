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


TIOU_HELP = ("thresholds: a comma list (0.3,0.5,0.7), start:stop:step inclusive (0.3:0.7:0.1) or a preset: "
             "thumos14, activitynet, multithumos, charades, ego4d, epic (default activitynet)")


def add_evaluation_inputs(p, verb: str = "evaluate") -> None:
    """--gt, --pred, --subset and --tiou, as ``tadkit eval`` and ``tadkit diagnose`` take them."""
    p.add_argument("--gt", required=True, help="annotation file (ActivityNet-style JSON)")
    p.add_argument("--pred", required=True, help="predictions file (ActivityNet results JSON)")
    p.add_argument("--subset", help=f"subset to {verb} (default: the one holding the predicted videos)")
    p.add_argument("--tiou", default="activitynet", help=TIOU_HELP)


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


def overrides_anywhere(p):
    """``key=value`` after ``--out RUN_DIR`` is an override too (argparse fills ``nargs='*'`` positionals
    with the first run of positionals only and leaves the rest unrecognised)."""
    import argparse
    base = argparse.ArgumentParser.parse_known_args

    def parse_known_args(args=None, namespace=None):
        ns, extra = base(p, args, namespace)
        moved = [a for a in extra if "=" in a and not a.startswith("-")]
        ns.overrides = list(getattr(ns, "overrides", None) or []) + moved
        return ns, [a for a in extra if a not in moved]
    return parse_known_args
