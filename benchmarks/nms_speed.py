"""Speed of the batched (Soft-)NMS against naive per-class Python loops.

Setting: one 200 s video, 2,000 candidates over 20 classes (the default pre-NMS top-k), made
to look like a detector's output: most candidates are jittered copies of ~25 actions (same
class mostly), the rest random. Two label layouts: ``uniform`` (classes equally likely) and
``skewed`` (a THUMOS-like video where a few classes dominate).

Rows:

* ``batched``: ``tadkit.postprocess`` -- all classes advance together, one pick per class per
  iteration (``soft_nms`` / ``nms`` without a cap, and ``postprocess_detections`` with its
  default cap of 200, where rows that cannot reach the top 200 retire early);
* ``naive, numpy inner``: a Python loop over classes, inside it the usual one-pick-at-a-time
  loop with the decay of the remaining candidates vectorised (what most Python TAD code does);
* ``naive, pure Python``: the same with plain Python loops inside (no numpy in the hot loop).

Each number is the median over ``--repeats`` runs of the time for one video. Outputs of all
implementations are checked to agree before timing.

Run:  python benchmarks/nms_speed.py [--candidates 2000] [--classes 20] [--repeats 7]
"""
from __future__ import annotations

import argparse
import math
import statistics
import time

import numpy as np

from tadkit.core import Instances
from tadkit.postprocess import nms, postprocess_detections, soft_nms


# ------------------------------------------------------------------------------------------
# naive baselines: a Python loop over classes
# ------------------------------------------------------------------------------------------
def _per_class_numpy(segs, scores, kind, sigma, thr, min_score):
    """One class: the classic sequential loop, decay vectorised with numpy."""
    s, e = segs[:, 0].copy(), segs[:, 1].copy()
    sc = scores.copy()
    idx = np.arange(len(sc))
    keep_i, keep_s = [], []
    alive = sc >= min_score
    s, e, sc, idx = s[alive], e[alive], sc[alive], idx[alive]
    while len(sc):
        m = int(np.argmax(sc))
        keep_i.append(idx[m]); keep_s.append(sc[m])
        ms, me = s[m], e[m]
        s, e, sc, idx = np.delete(s, m), np.delete(e, m), np.delete(sc, m), np.delete(idx, m)
        inter = np.maximum(np.minimum(me, e) - np.maximum(ms, s), 0.0)
        union = (e - s) + (me - ms) - inter
        with np.errstate(invalid="ignore", divide="ignore"):
            iou = np.nan_to_num(inter / union, nan=0.0)
        if kind == "gaussian":
            sc = sc * np.exp(-(iou * iou) / sigma)
            alive = sc >= min_score
        else:
            alive = iou < thr
        s, e, sc, idx = s[alive], e[alive], sc[alive], idx[alive]
    return np.array(keep_i, dtype=np.int64), np.array(keep_s)


def _per_class_python(segs, scores, kind, sigma, thr, min_score):
    """One class: everything in plain Python."""
    pool = [(float(scores[i]), i, float(segs[i, 0]), float(segs[i, 1])) for i in range(len(scores))
            if scores[i] >= min_score]
    keep_i, keep_s = [], []
    while pool:
        m = max(range(len(pool)), key=lambda j: pool[j][0])
        ms, mi, a0, a1 = pool.pop(m)
        keep_i.append(mi); keep_s.append(ms)
        nxt = []
        for sc, i, b0, b1 in pool:
            inter = max(0.0, min(a1, b1) - max(a0, b0))
            union = (b1 - b0) + (a1 - a0) - inter
            iou = inter / union if union else 0.0
            if kind == "gaussian":
                sc *= math.exp(-(iou * iou) / sigma)
                if sc >= min_score:
                    nxt.append((sc, i, b0, b1))
            elif iou < thr:
                nxt.append((sc, i, b0, b1))
        pool = nxt
    return np.array(keep_i, dtype=np.int64), np.array(keep_s)


def naive(inst: Instances, kind: str, inner, sigma=0.5, thr=0.5, min_score=1e-3, max_det=None) -> Instances:
    idx_all, sc_all = [], []
    for c in np.unique(inst.labels):                       # the Python loop over classes
        members = np.flatnonzero(inst.labels == c)
        i, s = inner(inst.segments[members], inst.scores[members], kind, sigma, thr,
                     min_score if kind == "gaussian" else -math.inf)
        idx_all.append(members[i]); sc_all.append(s)
    idx, sc = np.concatenate(idx_all), np.concatenate(sc_all)
    order = np.lexsort((idx, -sc))
    if max_det is not None:
        order = order[:max_det]
    return Instances(inst.segments[idx[order]], inst.labels[idx[order]], sc[order])


# ------------------------------------------------------------------------------------------
def make_video(n: int, num_classes: int, layout: str, rng, duration: float = 200.0) -> Instances:
    n_act = 25
    if layout == "uniform":
        p = np.full(num_classes, 1.0 / num_classes)
    else:
        p = 1.0 / np.arange(1, num_classes + 1) ** 2
        p /= p.sum()
    act_c = rng.choice(num_classes, n_act, p=p)
    act_len = np.minimum(rng.lognormal(1.5, 0.8, n_act), 60)
    act_s = rng.uniform(0, duration - act_len)
    n_near = int(0.7 * n)
    a = rng.integers(0, n_act, n_near)
    jit = rng.normal(0, 0.25, (n_near, 2)) * act_len[a, None]
    near = np.stack([act_s[a], act_s[a] + act_len[a]], 1) + jit
    near_c = np.where(rng.random(n_near) < 0.8, act_c[a], rng.choice(num_classes, n_near, p=p))
    m = n - n_near
    rs = rng.uniform(0, duration, m)
    rand = np.stack([rs, rs + rng.lognormal(1.2, 1.0, m)], 1)
    segs = np.clip(np.concatenate([near, rand]), 0, duration)
    segs = np.stack([segs.min(1), segs.max(1)], 1)
    labels = np.concatenate([near_c, rng.choice(num_classes, m, p=p)])
    scores = np.concatenate([rng.beta(2, 3, n_near), rng.beta(0.5, 6, m)])
    return Instances(segs, labels, scores).sorted_by_score()


def median_time(fn, repeats: int) -> float:
    fn()                                                    # warm-up
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def check_same(a: Instances, b: Instances, what: str) -> None:
    ok = (len(a) == len(b) and np.array_equal(a.segments, b.segments) and np.array_equal(a.labels, b.labels)
          and np.allclose(a.scores, b.scores, rtol=0, atol=1e-12))
    if not ok:
        raise SystemExit(f"outputs differ: {what}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--candidates", type=int, default=2000)
    ap.add_argument("--classes", type=int, default=20)
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    rng = np.random.default_rng(args.seed)
    R = args.repeats

    print(f"{args.candidates} candidates x {args.classes} classes, 200 s video; median of {R} runs, ms per video")
    header = f"{'layout':8} {'operation':44} {'batched':>9} {'naive np':>9} {'naive py':>9} {'vs np':>7} {'vs py':>7}"
    print(header)
    print("-" * len(header))
    for layout in ("uniform", "skewed"):
        inst = make_video(args.candidates, args.classes, layout, rng)
        cases = [
            ("Soft-NMS (Gaussian 0.5), all kept",
             lambda: soft_nms(inst, 0.5),
             lambda inner: naive(inst, "gaussian", inner)),
            ("Soft-NMS + top-200 (postprocess_detections)",
             lambda: postprocess_detections(inst),
             lambda inner: naive(inst, "gaussian", inner, max_det=200)),
            ("hard NMS (IoU 0.5), all kept",
             lambda: nms(inst, 0.5),
             lambda inner: naive(inst, "hard", inner)),
            ("hard NMS + top-200 (postprocess_detections)",
             lambda: postprocess_detections(inst, method="hard"),
             lambda inner: naive(inst, "hard", inner, max_det=200)),
        ]
        for name, fast, slow in cases:
            ref = fast()
            check_same(ref, slow(_per_class_numpy), f"{layout} {name} (numpy)")
            check_same(ref, slow(_per_class_python), f"{layout} {name} (python)")
            tb = median_time(fast, R)
            tn = median_time(lambda: slow(_per_class_numpy), R)
            tp = median_time(lambda: slow(_per_class_python), R)
            print(f"{layout:8} {name:44} {tb * 1e3:9.2f} {tn * 1e3:9.2f} {tp * 1e3:9.2f} "
                  f"{tn / tb:6.1f}x {tp / tb:6.1f}x")
    print("\nbatched = tadkit.postprocess; naive np / naive py = Python loop over classes with a numpy / "
          "pure-Python sequential inner loop. All outputs checked identical.")


if __name__ == "__main__":
    main()
