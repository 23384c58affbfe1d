"""Detection-mAP speed: tadkit against the official ActivityNet evaluation code.

Two cases, each evaluated from files (loading included, as a user runs it):
  THUMOS14-sized:    213 videos, 20 classes, 200 predictions per video, 5 thresholds
  ActivityNet-sized: 4,728 videos, 200 classes, 100 predictions per video, 10 thresholds

The official code is not part of tadkit. Pass the folder holding its ``eval_detection.py``
(Python 3; the ActivityNet repository's ``Evaluation`` folder) with ``--official DIR`` to time
it in the same run and check that the numbers agree; without it only tadkit is timed.

    python benchmarks/eval_speed.py [--official DIR] [--repeat 3] [--case thumos14|activitynet|all]
        [--results JSON]

Prints the table and writes it to ``benchmarks/results/eval_speed.json`` (``--results``).
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
from tadkit.evaluation.api import evaluate_files  # noqa: E402

import _results  # noqa: E402  # benchmarks/_results.py (the script's folder is on sys.path)

CASES = {
    "thumos14": dict(videos=213, classes=20, preds=200, tiou=np.linspace(0.3, 0.7, 5), gt_per_video=(1, 30),
                     duration=(60, 600), classes_per_video=3),
    "activitynet": dict(videos=4728, classes=200, preds=100, tiou=np.linspace(0.5, 0.95, 10), gt_per_video=(1, 4),
                        duration=(30, 240), classes_per_video=2),
}


def make_case(rng, videos, classes, preds, gt_per_video, duration, classes_per_video, **_):
    """Realistic structure: each video holds a few classes; predictions are mostly of those classes,
    jittered around the ground truth, plus random background detections."""
    db, res = {}, {}
    for v in range(videos):
        vid = f"video_{v:05d}"
        dur = float(rng.uniform(*duration))
        vc = rng.choice(classes, size=rng.integers(1, classes_per_video + 1), replace=False)
        anns = []
        for _ in range(rng.integers(gt_per_video[0], gt_per_video[1] + 1)):
            length = float(rng.uniform(0.02, 0.3) * dur)
            s = float(rng.uniform(0, dur - length))
            anns.append({"segment": [s, s + length], "label": f"class_{int(rng.choice(vc))}"})
        db[vid] = {"subset": "validation", "duration": dur, "annotations": anns}
        dets = []
        for _ in range(preds):
            if rng.random() < 0.6:
                a = anns[rng.integers(len(anns))]
                s, e = a["segment"]
                j = (e - s) * 0.3
                s, e = s + rng.normal(0, j), e + rng.normal(0, j)
                lab = a["label"] if rng.random() < 0.8 else f"class_{int(rng.integers(classes))}"
            else:
                length = float(rng.uniform(0.02, 0.3) * dur)
                s = float(rng.uniform(0, dur - length))
                e = s + length
                lab = f"class_{int(rng.choice(vc))}"
            s, e = max(0.0, min(s, e)), min(dur, max(s, e))
            dets.append({"segment": [s, e], "label": lab, "score": float(rng.random())})
        res[vid] = dets
    return {"database": db}, {"results": res}


def best_of(fn, repeat):
    times, out = [], None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return min(times), out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--official", help="folder with the official eval_detection.py (Python 3)")
    ap.add_argument("--official-jobs", type=int, default=1, help="joblib n_jobs for the official code (default 1)")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--case", default="all", choices=["all", *CASES])
    _results.add_results_argument(ap, "eval_speed")
    args = ap.parse_args()
    official = None
    if args.official:
        sys.path.insert(0, args.official)
        import eval_detection as official  # type: ignore
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
            t_ours, m = best_of(lambda: evaluate_files(gp, pp, subset="validation", tiou=spec["tiou"], recall_ks=()),
                                args.repeat)
            row = [name, f"{spec['videos']}x{spec['preds']}", f"{t_ours:.3f}"]
            record = {"case": name, "videos": spec["videos"], "classes": spec["classes"],
                      "preds_per_video": spec["preds"], "tiou_thresholds": len(spec["tiou"]), "tadkit_s": t_ours,
                      "tadkit_average_mAP": m["average_mAP"]}
            if official is not None:
                def run_official():
                    ev = official.ANETdetection(gp, pp, tiou_thresholds=spec["tiou"], subset="validation",
                                                n_jobs=args.official_jobs)
                    ev.evaluate()
                    return ev
                t_off, ev = best_of(run_official, 1)
                diff = float(np.max(np.abs(np.asarray(m["mAP"]) - ev.mAP)))
                row += [f"{t_off:.2f}", f"{t_off / t_ours:.0f}x", f"{diff:.1e}"]
                record.update(official_s=t_off, speedup_x=t_off / t_ours, max_abs_dmAP=diff)
            rows.append(row)
            records.append(record)
    head = ["case", "videos x preds", "tadkit s"] + (["official s", "speed-up", "max |dmAP|"] if official else [])
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(head)]
    print(" | ".join(h.ljust(w) for h, w in zip(head, widths)))
    print("-+-".join("-" * w for w in widths))
    for r in rows:
        print(" | ".join(c.ljust(w) for c, w in zip(r, widths)))
    _results.save("eval_speed", records, args.results,
                  setting=f"detection mAP from files (loading included), best of {args.repeat} "
                          f"run{'s' if args.repeat > 1 else ''}"
                          + (f"; official code with n_jobs={args.official_jobs}" if official else ""))


if __name__ == "__main__":
    main()
