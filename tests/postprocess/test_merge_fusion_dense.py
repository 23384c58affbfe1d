"""Window merging, score fusion and dense <-> sparse conversion against loop references."""
from __future__ import annotations

import math

import numpy as np
import pytest

from tadkit.core import ConfigError, DataError, FeatureTiming, Instances
from tadkit.postprocess import (class_duration_stats, dense_to_sparse, fuse_proposals_with_video_scores,
                                fuse_sparse_dense, merge_windows, rescore_with_video_scores, sparse_to_dense,
                                to_seconds)


def rand_inst(rng, n, num_classes=5, lo=0.0, hi=50.0):
    s = rng.uniform(lo, hi, n)
    return Instances(np.stack([s, s + rng.exponential(5, n)], 1), rng.integers(0, num_classes, n), rng.random(n))


# ------------------------------------------------------------------------------------------
# merge_windows / to_seconds
# ------------------------------------------------------------------------------------------
def ref_merge(windows, duration, drop_empty=True):
    segs, labels, scores = [], [], []
    for off, inst in windows:
        for i in range(len(inst)):
            s0, e0 = inst.segments[i, 0] + off, inst.segments[i, 1] + off
            s, e = max(0.0, s0), max(0.0, e0)
            if duration is not None:
                s, e = min(s, duration), min(e, duration)
            if drop_empty and e <= s and e0 > s0:
                continue
            segs.append([s, e]); labels.append(inst.labels[i]); scores.append(inst.scores[i])
    return Instances(np.array(segs).reshape(-1, 2), labels, scores)


def test_merge_windows_matches_reference():
    rng = np.random.default_rng(0)
    for _ in range(100):
        windows = [(float(off), rand_inst(rng, int(rng.integers(0, 15)), lo=-10, hi=70))
                   for off in rng.uniform(-5, 200, int(rng.integers(0, 6)))]
        duration = None if rng.random() < 0.2 else float(rng.uniform(50, 250))
        out, ref = merge_windows(windows, duration), ref_merge(windows, duration)
        np.testing.assert_array_equal(out.segments, ref.segments)
        np.testing.assert_array_equal(out.labels, ref.labels)
        np.testing.assert_array_equal(out.scores, ref.scores)


def test_merge_windows_by_hand():
    w0 = Instances([[1, 3], [60, 70]], [0, 1], [0.9, 0.5])
    w1 = Instances([[2, 4], [55, 90], [-50, -49.5]], [2, 0, 1], [0.7, 0.6, 0.4])
    out = merge_windows([(0.0, w0), (48.0, w1)], duration=100.0)
    # [55, 90] + 48 lies beyond the video end: clipped to nothing, dropped; [-50, -49.5] + 48 = [-2, -1.5]
    np.testing.assert_array_equal(out.segments, [[1, 3], [60, 70], [50, 52]])
    np.testing.assert_array_equal(out.labels, [0, 1, 2])
    np.testing.assert_array_equal(out.scores, [0.9, 0.5, 0.7])
    kept = merge_windows([(48.0, w1)], duration=100.0, drop_empty=False)
    np.testing.assert_array_equal(kept.segments, [[50, 52], [100, 100], [0, 0]])
    clipped = merge_windows([(95.0, Instances([[0, 10]], [0], [1.0]))], duration=100.0)
    np.testing.assert_array_equal(clipped.segments, [[95, 100]])
    assert len(merge_windows([])) == 0 and len(merge_windows([(3.0, Instances.empty())], 10.0)) == 0


def test_to_seconds():
    timing = FeatureTiming(fps=30.0, stride=4, window=16)
    inst = Instances([[0, 10], [100, 400], [-3, 2]], [0, 1, 2], [0.5, 0.6, 0.7])
    out = to_seconds(inst, timing, duration=40.0)
    expect = np.clip((inst.segments * 4 + 8) / 30.0, 0, 40.0)
    np.testing.assert_allclose(out.segments, expect, rtol=0, atol=1e-12)
    np.testing.assert_array_equal(out.labels, inst.labels)
    np.testing.assert_array_equal(out.scores, inst.scores)
    np.testing.assert_allclose(to_seconds(inst, timing).segments, (inst.segments * 4 + 8) / 30.0)
    assert len(to_seconds(Instances.empty(), timing, 10.0)) == 0


# ------------------------------------------------------------------------------------------
# fusion with video-level class scores
# ------------------------------------------------------------------------------------------
def test_fuse_proposals_by_hand():
    props = Instances([[0, 5], [10, 20]], [7, 7], [0.8, 0.5])    # labels ignored
    v = np.array([0.1, 0.6, 0.3])
    out = fuse_proposals_with_video_scores(props, v, topk=2)
    # classes 1 (0.6) and 2 (0.3): 0.8*0.6=0.48, 0.8*0.3=0.24, 0.5*0.6=0.30, 0.5*0.3=0.15
    np.testing.assert_allclose(out.scores, [0.48, 0.30, 0.24, 0.15], rtol=0, atol=1e-15)
    np.testing.assert_array_equal(out.labels, [1, 1, 2, 2])
    np.testing.assert_array_equal(out.segments, [[0, 5], [10, 20], [0, 5], [10, 20]])
    sq = fuse_proposals_with_video_scores(props, v, topk=1, alpha=0.5)
    np.testing.assert_allclose(sq.scores, [math.sqrt(0.8) * 0.6, math.sqrt(0.5) * 0.6])


def test_fuse_proposals_matches_loop():
    rng = np.random.default_rng(1)
    for _ in range(50):
        props = rand_inst(rng, int(rng.integers(0, 30)))
        v = np.round(rng.random(int(rng.integers(1, 10))), 1)         # ties between classes
        k, alpha = int(rng.integers(0, 5)), float(rng.choice([1.0, 0.5, 2.0]))
        out = fuse_proposals_with_video_scores(props, v, topk=k, alpha=alpha)
        classes = sorted(range(len(v)), key=lambda c: -v[c])[:k]
        rows = [(props.segments[i], c, props.scores[i] ** alpha * v[c]) for i in range(len(props)) for c in classes]
        rows.sort(key=lambda r: -r[2])
        assert len(out) == len(rows)
        if rows:
            np.testing.assert_array_equal(out.segments, np.array([r[0] for r in rows]))
            np.testing.assert_array_equal(out.labels, [r[1] for r in rows])
            np.testing.assert_allclose(out.scores, [r[2] for r in rows], rtol=0, atol=1e-15)


def test_rescore_matches_loop():
    rng = np.random.default_rng(2)
    for _ in range(50):
        C = int(rng.integers(1, 8))
        det = rand_inst(rng, int(rng.integers(0, 30)), num_classes=C)
        v = rng.random(C)
        topk = None if rng.random() < 0.5 else int(rng.integers(0, C + 1))
        out = rescore_with_video_scores(det, v, topk=topk)
        allowed = set(sorted(range(C), key=lambda c: -v[c])[:topk]) if topk is not None else set(range(C))
        rows = [(det.segments[i], det.labels[i], det.scores[i] * v[det.labels[i]])
                for i in range(len(det)) if det.labels[i] in allowed]
        rows.sort(key=lambda r: -r[2])
        assert len(out) == len(rows)
        if rows:
            np.testing.assert_array_equal(out.labels, [r[1] for r in rows])
            np.testing.assert_allclose(out.scores, [r[2] for r in rows], rtol=0, atol=1e-15)
    with pytest.raises(DataError):
        rescore_with_video_scores(Instances([[0, 1]], [3], [0.5]), [0.1, 0.2])
    with pytest.raises(DataError):
        fuse_proposals_with_video_scores(Instances([[0, 1]], [0], [0.5]), [np.nan])
    assert len(fuse_proposals_with_video_scores(Instances.empty(), [0.3, 0.4])) == 0
    assert len(rescore_with_video_scores(Instances.empty(), [0.3, 0.4])) == 0


# ------------------------------------------------------------------------------------------
# PointTAD Eq. (14): sparse -> dense
# ------------------------------------------------------------------------------------------
def pdf(x, mean, sd):
    return math.exp(-0.5 * ((x - mean) / sd) ** 2) / (sd * math.sqrt(2 * math.pi))


def ref_sparse_to_dense(det, T, C, rate=1.0, thr=0.01, sigma=3.0, gain=5.0, combine="max", eval_offset=0.0):
    """The authors' notebook (sparse2dense), with frames outside [0, T) ignored."""
    temp = [dict() for _ in range(C)]
    for i in range(len(det)):
        score, c = float(det.scores[i]), int(det.labels[i])
        if score > thr:
            for loc in range(int(det.segments[i, 0] * rate), int(det.segments[i, 1] * rate)):
                if 0 <= loc < T:
                    if combine == "max":
                        temp[c][loc] = max(temp[c].get(loc, score), score)
                    else:
                        temp[c][loc] = temp[c].get(loc, 0.0) + score
    out = np.zeros((T, C))
    for c in range(C):
        for t in range(T):
            out[t, c] = sum(pdf(t + eval_offset, loc, sigma) * gain * v for loc, v in temp[c].items())
    return out


def test_sparse_to_dense_matches_reference():
    rng = np.random.default_rng(3)
    for case in range(40):
        T, C = int(rng.integers(1, 90)), int(rng.integers(1, 5))
        duration = float(rng.uniform(5, 60))
        rate = T / duration                                          # segments in seconds
        n = int(rng.integers(0, 25))
        s = rng.uniform(-2, duration, n)
        det = Instances(np.stack([s, s + rng.exponential(duration / 6, n)], 1), rng.integers(0, C, n),
                        np.round(rng.random(n), 2) * (rng.random(n) < 0.9))
        combine = "sum" if case % 3 == 0 else "max"
        sigma = float(rng.choice([3.0, 1.0, 0.7]))
        off = float(rng.choice([0.0, 1.0]))
        ref = ref_sparse_to_dense(det, T, C, rate, 0.01, sigma, 5.0, combine, off)
        out = sparse_to_dense(det, T, C, rate=rate, sigma=sigma, combine=combine, eval_offset=off)
        np.testing.assert_allclose(out, ref, rtol=0, atol=1e-12)
        full = sparse_to_dense(det, T, C, rate=rate, sigma=sigma, combine=combine, eval_offset=off, truncate=None)
        np.testing.assert_allclose(full, ref, rtol=0, atol=1e-12)


def test_sparse_to_dense_by_hand():
    # one detection covering frame 10 only, score 0.5, one below gamma that must not count
    det = Instances([[10, 11], [0, 30]], [1, 0], [0.5, 0.01])
    out = sparse_to_dense(det, 30, 2)
    assert out.shape == (30, 2) and np.all(out[:, 0] == 0)
    t = np.arange(30)
    expect = 5.0 * 0.5 * np.exp(-0.5 * ((t - 10) / 3.0) ** 2) / (3.0 * math.sqrt(2 * math.pi))
    expect[np.abs(t - 10) > 24] = 0.0
    np.testing.assert_allclose(out[:, 1], expect, rtol=0, atol=1e-15)
    assert out[10, 1] == pytest.approx(5 * 0.5 / (3 * math.sqrt(2 * math.pi)))
    # two overlapping detections of one class: max (code) vs sum (literal Eq. 14 sum)
    two = Instances([[0, 20], [10, 30]], [0, 0], [0.4, 0.6])
    mx = sparse_to_dense(two, 30, 1, sigma=1e-3)                    # tiny sigma: no spreading
    sm = sparse_to_dense(two, 30, 1, sigma=1e-3, combine="sum")
    peak = 5.0 / (1e-3 * math.sqrt(2 * math.pi))
    np.testing.assert_allclose(mx[:, 0] / peak, [0.4] * 10 + [0.6] * 20, atol=1e-12)
    np.testing.assert_allclose(sm[:, 0] / peak, [0.4] * 10 + [1.0] * 10 + [0.6] * 10, atol=1e-12)
    assert sparse_to_dense(Instances.empty(), 7, 3).shape == (7, 3)
    with pytest.raises(ConfigError):
        sparse_to_dense(det, 30, 2, combine="mean")


def test_fuse_sparse_dense():
    rng = np.random.default_rng(4)
    S = rng.random((50, 3))
    det = rand_inst(rng, 10, num_classes=3, hi=40)
    for beta in (0.0, 0.2, 0.96, 1.0):
        out = fuse_sparse_dense(det, S, beta)
        np.testing.assert_allclose(out, beta * sparse_to_dense(det, 50, 3) + (1 - beta) * S, rtol=0, atol=1e-15)
    np.testing.assert_array_equal(fuse_sparse_dense(det, S, 0.0), S)
    with pytest.raises(ConfigError):
        fuse_sparse_dense(det, S, 1.5)


# ------------------------------------------------------------------------------------------
# PointTAD Eq. (15): dense -> sparse
# ------------------------------------------------------------------------------------------
def ref_dense_to_sparse(P, thresholds, rate=1.0, mu=None, sd=None, scoring="mean"):
    rows = []
    T, C = P.shape
    for th in np.atleast_1d(thresholds):
        for c in range(C):
            t = 0
            while t < T:
                if P[t, c] > th:
                    t0 = t
                    while t < T and P[t, c] > th:
                        t += 1
                    vals = [P[i, c] for i in range(t0, t)]
                    total, L = sum(vals), t - t0
                    if scoring == "mean":
                        sc = total / L
                    elif scoring == "sum":
                        sc = total
                    else:
                        ok = sd[c] > 0 and np.isfinite(mu[c])
                        sc = total * (math.exp(-0.01 * (L - mu[c]) ** 2 / sd[c] ** 2) if ok else 1.0)
                    rows.append(([t0 / rate, t / rate], c, sc))
                else:
                    t += 1
    rows.sort(key=lambda r: -r[2])
    return rows


def test_dense_to_sparse_matches_reference():
    rng = np.random.default_rng(5)
    for case in range(60):
        T, C = int(rng.integers(1, 120)), int(rng.integers(1, 6))
        P = rng.random((T, C))
        if case % 2:                                                 # smooth, run-rich signals
            P = np.cumsum(rng.normal(0, 0.2, (T, C)), 0) % 1.0
        ths = [0.5] if case % 3 else [0.3, 0.6, 0.9]
        rate = float(rng.choice([1.0, 2.5]))
        scoring = ["mean", "sum", "eq15"][case % 3]
        mu = rng.uniform(1, 20, C)
        sd = rng.uniform(0, 6, C) * (rng.random(C) < 0.8)           # some zero: factor 1
        out = dense_to_sparse(P, ths if len(ths) > 1 else ths[0], rate=rate, duration_mean=mu,
                              duration_std=sd, scoring=scoring)
        ref = ref_dense_to_sparse(P, ths, rate, mu, sd, scoring)
        assert len(out) == len(ref)
        if ref:
            np.testing.assert_allclose(out.scores, [r[2] for r in ref], rtol=0, atol=1e-12)
            np.testing.assert_array_equal(out.labels, [r[1] for r in ref])
            np.testing.assert_allclose(out.segments, np.array([r[0] for r in ref]), rtol=0, atol=0)


def test_dense_to_sparse_by_hand():
    P = np.array([[0.1, 0.9], [0.8, 0.9], [0.7, 0.2], [0.2, 0.6], [0.9, 0.6]])
    out = dense_to_sparse(P, 0.5)
    # class 0: frames 1-2 (mean 0.75), frame 4 (0.9); class 1: frames 0-1 (0.9), frames 3-4 (0.6)
    got = sorted(zip(out.labels.tolist(), out.segments.tolist(), out.scores.tolist()))
    expect = [(0, [1, 3], 0.75), (0, [4, 5], 0.9), (1, [0, 2], 0.9), (1, [3, 5], 0.6)]
    for (gl, gs, gsc), (el, es, esc) in zip(got, expect):
        assert gl == el and gs == es and gsc == pytest.approx(esc, abs=1e-15)
    # Eq. 15 for class 0, frames 1-2: L=2, mu=4, sigma=2 -> (0.8+0.7) * exp(-0.01 * 4 / 4)
    eq = dense_to_sparse(P[:, :1], 0.5, duration_mean=[4.0], duration_std=[2.0])
    assert eq.scores.tolist() == pytest.approx(sorted([1.5 * math.exp(-0.01), 0.9 * math.exp(-0.01 * 9 / 4)],
                                                      reverse=True), abs=1e-15)
    assert len(dense_to_sparse(np.zeros((10, 3)), 0.5)) == 0
    assert len(dense_to_sparse(np.zeros((0, 3)), 0.5)) == 0
    with pytest.raises(ConfigError):
        dense_to_sparse(P, 0.5, scoring="eq15")


def test_round_trip_dense_sparse_dense():
    """dense_to_sparse's [t0, t1 + 1] segments cover exactly frames t0..t1 in sparse_to_dense."""
    P = np.zeros((40, 2))
    P[5:12, 0] = 0.8
    P[20:21, 1] = 0.6
    det = dense_to_sparse(P, 0.5, rate=0.5)                        # 0.5 frames per unit
    box = sparse_to_dense(det, 40, 2, rate=0.5, sigma=1e-3) * (1e-3 * math.sqrt(2 * math.pi) / 5.0)
    np.testing.assert_allclose(box, P, atol=1e-12)


def test_class_duration_stats():
    rng = np.random.default_rng(6)
    lengths, labels = rng.exponential(10, 200), rng.integers(0, 6, 200)
    mu, sd = class_duration_stats(lengths, labels, 7)
    for c in range(6):
        np.testing.assert_allclose(mu[c], lengths[labels == c].mean(), rtol=1e-12)
        np.testing.assert_allclose(sd[c], lengths[labels == c].std(), rtol=1e-9)
    assert np.isnan(mu[6]) and np.isnan(sd[6])
