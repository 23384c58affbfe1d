"""Speed of the batched (Soft-)NMS against plain sequential implementations, per video.

Setting: 200 s videos with 2,000 candidates over 20 classes each (the default pre-NMS top-k),
made to look like a detector's output: most candidates are jittered copies of ~25 actions (same
class mostly), the rest random. Two label layouts: ``uniform`` (classes equally likely) and
``skewed`` (a THUMOS-like video where a few classes dominate).

Operations: hard NMS (IoU 0.5), Soft-NMS Gaussian (sigma 0.5) and Soft-NMS linear (IoU 0.1),
min score 1e-3; each once keeping everything and once as ``postprocess_detections`` does by
default (at most 200 per video).

Columns (milliseconds per video; the best of ``--repeats`` runs over ``--videos`` videos -- the
least disturbed by other work on the machine):

* ``batched``: ``tadkit.postprocess`` called once per video -- all classes advance together;
* ``batched videos``: ``postprocess_videos`` -- all videos and classes in one pass;
* ``numpy loop``: a Python loop over classes, inside it the usual one-pick-at-a-time loop with
  the decay of the remaining candidates vectorised (what most Python TAD code does);
* ``sequential``: the plain sequential reference -- Python loops over classes, picks and
  candidates, no numpy in the hot loop (the algorithm the tests compare against); best of two
  runs.

Every implementation's output is checked identical (same segments, labels, order, and scores to
1e-12) on every video before timing.

Run:  python benchmarks/nms_speed.py [--candidates 2000] [--classes 20] [--videos 8] [--repeats 5]
          [--results JSON]

Prints the table and writes it to ``benchmarks/results/nms_speed.json`` (``--results``).
"""
from __future__ import annotations

import argparse
import math
import time

import numpy as np

from tadkit.core import Instances
from tadkit.postprocess import postprocess_detections, postprocess_videos

import _results  # benchmarks/_results.py (the script's folder is on sys.path)

MIN_SCORE = 1e-3
SIGMA = 0.5
IOU = {"hard": 0.5, "gaussian": 0.1, "linear": 0.1}
SEQUENTIAL_RUNS = 2                  # the pure-Python reference is slow: best of two runs


# ------------------------------------------------------------------------------------------
# baselines: a Python loop over classes, a sequential loop inside
# ------------------------------------------------------------------------------------------
def _decay(kind: str, iou, thr: float):
    """The factor a candidate's score is multiplied by; ``None`` means: remove it (hard NMS)."""
    if kind == "gaussian":
        return np.exp(-(iou * iou) / SIGMA)
    if kind == "linear":
        return np.where(iou >= thr, 1.0 - iou, 1.0)
    return None


def _per_class_numpy(segs, scores, kind, thr, min_score):
    """One class: the classic sequential loop, decay vectorised with numpy."""
    s, e, sc, idx = segs[:, 0], segs[:, 1], scores, np.arange(len(scores))
    alive = sc >= min_score
    s, e, sc, idx = s[alive], e[alive], sc[alive], idx[alive]
    keep_i, keep_s = [], []
    while len(sc):
        m = int(np.argmax(sc))
        keep_i.append(idx[m])
        keep_s.append(sc[m])
        ms, me = s[m], e[m]
        s, e, sc, idx = np.delete(s, m), np.delete(e, m), np.delete(sc, m), np.delete(idx, m)
        inter = np.maximum(np.minimum(me, e) - np.maximum(ms, s), 0.0)
        union = (e - s) + (me - ms) - inter
        with np.errstate(invalid="ignore", divide="ignore"):
            iou = np.nan_to_num(inter / union, nan=0.0)
        factor = _decay(kind, iou, thr)
        if factor is None:
            alive = iou < thr
        else:
            sc = sc * factor
            alive = sc >= min_score
        s, e, sc, idx = s[alive], e[alive], sc[alive], idx[alive]
    return np.array(keep_i, dtype=np.int64), np.array(keep_s)


def _per_class_python(segs, scores, kind, thr, min_score):
    """One class: everything in plain Python."""
    pool = [(float(scores[i]), i, float(segs[i, 0]), float(segs[i, 1])) for i in range(len(scores))
            if scores[i] >= min_score]
    keep_i, keep_s = [], []
    while pool:
        m = max(range(len(pool)), key=lambda j: pool[j][0])      # first maximum
        ms, mi, a0, a1 = pool.pop(m)
        keep_i.append(mi)
        keep_s.append(ms)
        nxt = []
        for sc, i, b0, b1 in pool:
            inter = max(0.0, min(a1, b1) - max(a0, b0))
            union = (b1 - b0) + (a1 - a0) - inter
            iou = inter / union if union else 0.0
            if kind == "hard":
                if iou < thr:
                    nxt.append((sc, i, b0, b1))
                continue
            if kind == "gaussian":
                sc *= math.exp(-(iou * iou) / SIGMA)
            elif iou >= thr:
                sc *= 1.0 - iou
            if sc >= min_score:
                nxt.append((sc, i, b0, b1))
        pool = nxt
    return np.array(keep_i, dtype=np.int64), np.array(keep_s)


def per_class_loop(inst: Instances, kind: str, inner, max_det=None) -> Instances:
    """Candidates with score >= MIN_SCORE, best first, then ``inner`` once per class."""
    inst = inst[inst.scores >= MIN_SCORE].sorted_by_score()
    idx_all, sc_all = [np.zeros(0, dtype=np.int64)], [np.zeros(0)]
    for c in np.unique(inst.labels):                            # the Python loop over classes
        members = np.flatnonzero(inst.labels == c)
        i, s = inner(inst.segments[members], inst.scores[members], kind, IOU[kind],
                     -math.inf if kind == "hard" else MIN_SCORE)
        idx_all.append(members[i])
        sc_all.append(s)
    idx, sc = np.concatenate(idx_all), np.concatenate(sc_all)
    order = np.lexsort((idx, -sc))[:max_det]
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
    return Instances(segs, labels, scores)


def timed(fn, repeats: int) -> tuple[float, object]:
    """Fewest seconds over ``repeats`` runs, and the first run's result."""
    times, out = [], None
    for k in range(repeats):
        t0 = time.perf_counter()
        res = fn()
        times.append(time.perf_counter() - t0)
        out = res if k == 0 else out
    return min(times), out


def check_same(a: list[Instances], b: list[Instances], what: str) -> None:
    for x, y in zip(a, b, strict=True):
        if not (len(x) == len(y) and np.array_equal(x.segments, y.segments) and np.array_equal(x.labels, y.labels)
                and np.allclose(x.scores, y.scores, rtol=0, atol=1e-12)):
            raise SystemExit(f"outputs differ: {what}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--candidates", type=int, default=2000)
    ap.add_argument("--classes", type=int, default=20)
    ap.add_argument("--videos", type=int, default=8, help="videos per layout")
    ap.add_argument("--repeats", type=int, default=5, help="runs of each fast implementation (>= 1)")
    ap.add_argument("--seed", type=int, default=0)
    _results.add_results_argument(ap, "nms_speed")
    args = ap.parse_args()
    rng = np.random.default_rng(args.seed)
    R, N = args.repeats, args.videos

    print(f"{args.candidates} candidates x {args.classes} classes per 200 s video, {N} videos per layout; "
          f"ms per video (best of {R} runs; sequential: of {SEQUENTIAL_RUNS})")
    header = (f"{'layout':8} {'operation':28} {'batched':>8} {'batched':>8} {'numpy':>8} {'sequen-':>9} "
              f"{'speed-up vs sequential':>23}")
    sub = f"{'':8} {'':28} {'':>8} {'videos':>8} {'loop':>8} {'tial':>9} {'batched':>11} {'videos':>11}"
    print(header)
    print(sub)
    print("-" * len(header))
    records = []
    for layout in ("uniform", "skewed"):
        videos = [make_video(args.candidates, args.classes, layout, rng) for _ in range(N)]
        named = {f"v{i}": v for i, v in enumerate(videos)}
        for kind in ("hard", "gaussian", "linear"):
            for max_det in (None, 200):
                kw = dict(method="hard" if kind == "hard" else "soft", soft_method="linear" if kind == "linear"
                          else "gaussian", iou_threshold=IOU[kind], sigma=SIGMA, min_score=MIN_SCORE,
                          pre_topk=None, max_detections=max_det)
                t_one, one = timed(lambda: [postprocess_detections(v, **kw) for v in videos], R)
                t_all, every = timed(lambda: postprocess_videos(named, **kw), R)
                t_np, loop_np = timed(lambda: [per_class_loop(v, kind, _per_class_numpy, max_det) for v in videos], R)
                t_py, loop_py = timed(lambda: [per_class_loop(v, kind, _per_class_python, max_det) for v in videos],
                                      SEQUENTIAL_RUNS)
                name = {"hard": "hard NMS", "gaussian": "Soft-NMS Gaussian", "linear": "Soft-NMS linear"}[kind]
                name += ", all kept" if max_det is None else ", top 200"
                check_same(one, loop_py, f"{layout} {name}: batched vs sequential")
                check_same(list(every.values()), loop_py, f"{layout} {name}: batched videos vs sequential")
                check_same(loop_np, loop_py, f"{layout} {name}: numpy loop vs sequential")
                ms = [t * 1e3 / N for t in (t_one, t_all, t_np, t_py)]
                print(f"{layout:8} {name:28} {ms[0]:8.2f} {ms[1]:8.2f} {ms[2]:8.2f} {ms[3]:9.2f} "
                      f"{ms[3] / ms[0]:10.1f}x {ms[3] / ms[1]:10.1f}x")
                records.append({"layout": layout, "operation": name, "batched_ms_per_video": ms[0],
                                "batched_videos_ms_per_video": ms[1], "numpy_loop_ms_per_video": ms[2],
                                "sequential_ms_per_video": ms[3], "speedup_batched_x": ms[3] / ms[0],
                                "speedup_batched_videos_x": ms[3] / ms[1]})
    print("\nbatched = postprocess_detections per video; batched videos = postprocess_videos over the "
          "videos of a layout;\nnumpy loop / sequential = a Python loop over classes with a numpy / pure-Python "
          "sequential loop inside.\nAll outputs checked identical.")
    _results.save("nms_speed", records, args.results,
                  setting=f"{args.candidates} candidates x {args.classes} classes per 200 s video, {N} videos per "
                          f"layout; ms per video, best of {R} runs (sequential: of {SEQUENTIAL_RUNS}); "
                          "outputs checked identical")


if __name__ == "__main__":
    main()
