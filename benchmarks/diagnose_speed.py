"""DETAD diagnosis speed: ``tadkit.evaluation.diagnosis.diagnose`` from files (loading included).

The cases are those of ``benchmarks/eval_speed.py`` (the same synthetic generator and seed):
  THUMOS14-sized:    213 videos, 20 classes, 200 predictions per video, 5 thresholds
  ActivityNet-sized: 4,728 videos, 200 classes, 100 predictions per video, 10 thresholds (0.5:0.95:0.05)

Each is timed as a user runs it: the false-positive profile and removing-error gains, the
false-negative analysis and the sensitivity analysis, all from the JSON files. The figures are
timed apart (``--figures``), since they do not depend on the case's size.

    python benchmarks/diagnose_speed.py [--repeat 3] [--case thumos14|activitynet|all] [--figures]
        [--results JSON]

Prints the table and writes it to ``benchmarks/results/diagnose_speed.json`` (``--results``).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "src"))
from tadkit.evaluation.diagnosis import diagnose  # noqa: E402

import _results  # noqa: E402  # benchmarks/_results.py (the script's folder is on sys.path)
from eval_speed import CASES, make_case  # noqa: E402  # the same synthetic cases as the mAP benchmark


def best_of(fn, repeat):
    times, out = [], None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return min(times), out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--case", default="all", choices=["all", *CASES])
    ap.add_argument("--figures", action="store_true", help="also time drawing the figures (PNG and SVG)")
    _results.add_results_argument(ap, "diagnose_speed")
    args = ap.parse_args()
    rows, records = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for name, spec in CASES.items():
            if args.case not in ("all", name):
                continue
            gt, pred = make_case(np.random.default_rng(0), **spec)
            gp, pp = os.path.join(tmp, f"{name}_gt.json"), os.path.join(tmp, f"{name}_pred.json")
            with open(gp, "w") as f:
                json.dump(gt, f)
            with open(pp, "w") as f:
                json.dump(pred, f)
            t, d = best_of(lambda: diagnose(gp, pp, subset="validation", tiou=spec["tiou"]), args.repeat)
            record = {"case": name, "videos": spec["videos"], "classes": spec["classes"],
                      "preds_per_video": spec["preds"], "tiou_thresholds": len(spec["tiou"]), "G": d["G"],
                      "predictions_in_top_10G": d["num_predictions_analyzed"], "diagnose_s": t,
                      "average_mAP_N": d["average_mAP_N"]}
            row = [name, f"{spec['videos']}x{spec['preds']}", str(len(spec["tiou"])), f"{t:.3f}",
                   f"{100 * d['average_mAP_N']:.2f}"]
            if args.figures:
                from tadkit.evaluation.diagnosis_plots import render_figures
                tf, _ = best_of(lambda: render_figures(d), 1)
                record["figures_s"] = tf
                row.append(f"{tf:.2f}")
            rows.append(row)
            records.append(record)
    head = ["case", "videos x preds", "thresholds", "diagnose s", "avg mAP_N %"] + (["figures s"] if args.figures else [])
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(head)]
    print(" | ".join(h.ljust(w) for h, w in zip(head, widths)))
    print("-+-".join("-" * w for w in widths))
    for r in rows:
        print(" | ".join(c.ljust(w) for c, w in zip(r, widths)))
    _results.save("diagnose_speed", records, args.results,
                  setting=f"DETAD diagnosis (false-positive profile and gains, false negatives, sensitivity) from "
                          f"files, loading included, best of {args.repeat} run{'s' if args.repeat > 1 else ''}")


if __name__ == "__main__":
    main()
