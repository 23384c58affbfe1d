"""Window merging, score fusion and dense <-> sparse conversion against loop references."""
from __future__ import annotations

import math

import numpy as np
import pytest

from tadkit.core import ConfigError, DataError, FeatureTiming, Instances
from tadkit.postprocess import (class_duration_stats, dense_to_sparse, fuse_proposals_with_video_scores,
                                fuse_sparse_dense, gaussian_kernel, merge_windows, rescore_with_video_scores,
                                sparse_to_dense, to_seconds, top_classes)


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


def test_to_seconds_matches_reference():
    rng = np.random.default_rng(10)
    for _ in range(30):
        fps, stride, window = float(rng.choice([10.0, 25.0, 30.0])), int(rng.integers(1, 9)), int(rng.integers(0, 33))
        inst = rand_inst(rng, int(rng.integers(0, 20)), lo=-5, hi=300)
        duration = None if rng.random() < 0.3 else float(rng.uniform(10, 60))
        out = to_seconds(inst, FeatureTiming(fps=fps, stride=stride, window=window), duration)
        expect = []
        for s, e in inst.segments:
            pair = [(x * stride + window / 2) / fps for x in (s, e)]
            expect.append(pair if duration is None else [min(max(x, 0.0), duration) for x in pair])
        np.testing.assert_allclose(out.segments, np.array(expect).reshape(-1, 2), rtol=1e-15, atol=1e-12)
        np.testing.assert_array_equal(out.labels, inst.labels)


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


def test_actionformer_geometric_mean():
    """ActionFormer's postprocess_results: sqrt(class score x proposal score), top-2 classes."""
    props = Instances([[0, 5]], [0], [0.64])
    out = fuse_proposals_with_video_scores(props, [0.25, 0.81, 0.04], topk=2, power=0.5)
    np.testing.assert_allclose(out.scores, [0.72, 0.4], rtol=0, atol=1e-15)       # sqrt(.64*.81), sqrt(.64*.25)
    np.testing.assert_array_equal(out.labels, [1, 0])
    re = rescore_with_video_scores(Instances([[0, 5], [1, 2]], [2, 1], [0.64, 0.25]), [0.25, 0.81, 0.04], power=0.5)
    np.testing.assert_allclose(re.scores, [0.45, 0.16], rtol=0, atol=1e-15)        # sqrt(.25*.81), sqrt(.64*.04)
    np.testing.assert_array_equal(re.labels, [1, 2])


def test_top_classes_matches_loop():
    rng = np.random.default_rng(12)
    for _ in range(30):
        v = np.round(rng.random(int(rng.integers(1, 12))), 1)                     # ties between classes
        k = int(rng.integers(0, 14))
        expect = sorted(range(len(v)), key=lambda c: -v[c])[:k]                    # stable: lower index first
        np.testing.assert_array_equal(top_classes(v, k), expect)


def test_fuse_proposals_matches_loop():
    rng = np.random.default_rng(1)
    for _ in range(50):
        props = rand_inst(rng, int(rng.integers(0, 30)))
        v = np.round(rng.random(int(rng.integers(1, 10))), 1)         # ties between classes
        k, alpha = int(rng.integers(0, 5)), float(rng.choice([1.0, 0.5, 2.0]))
        power = float(rng.choice([1.0, 0.5]))
        out = fuse_proposals_with_video_scores(props, v, topk=k, alpha=alpha, power=power)
        classes = sorted(range(len(v)), key=lambda c: -v[c])[:k]
        rows = [(props.segments[i], c, (props.scores[i] ** alpha * v[c]) ** power)
                for i in range(len(props)) for c in classes]
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
        alpha = float(rng.choice([1.0, 0.5]))
        out = rescore_with_video_scores(det, v, topk=topk, alpha=alpha)
        allowed = set(sorted(range(C), key=lambda c: -v[c])[:topk]) if topk is not None else set(range(C))
        rows = [(det.segments[i], det.labels[i], det.scores[i] ** alpha * v[det.labels[i]])
                for i in range(len(det)) if det.labels[i] in allowed]
        rows.sort(key=lambda r: -r[2])
        assert len(out) == len(rows)
        if rows:
            np.testing.assert_array_equal(out.labels, [r[1] for r in rows])
            np.testing.assert_allclose(out.scores, [r[2] for r in rows], rtol=0, atol=1e-15)
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


def test_eq14_by_hand():
    """Eq. (14) at two frames, worked out by hand: beta 0.2, gamma 0.3, sigma 1, gain 5.

    Detections (frames, class, score): [2, 4) class 0 score 0.5; [3, 4) class 0 score 0.8;
    [0, 6) class 1 score 0.25 (below gamma 0.3: ignored). Box B[:, 0] = 0.5, 0.8 at frames 2, 3
    (max of the overlapping 0.5 and 0.8 at frame 3). With g(d) = 5 N(d; 0, 1):
    g(0) = 1.9947114, g(1) = 1.2098536, g(2) = 0.2699548, g(3) = 0.0221592.
      D[3, 0] = 0.5 g(1) + 0.8 g(0) = 0.6049268 + 1.5957691 = 2.2006959
      D[0, 0] = 0.5 g(2) + 0.8 g(3) = 0.1349774 + 0.0177274 = 0.1527048
    Fused with S = 0.1 everywhere: 0.2 D + 0.8 * 0.1 -> 0.5201392 and 0.1105410; class 1: 0.08.
    """
    det = Instances([[2, 4], [3, 4], [0, 6]], [0, 0, 1], [0.5, 0.8, 0.25])
    S = np.full((6, 2), 0.1)
    out = fuse_sparse_dense(det, S, 0.2, gamma=0.3, sigma=1.0)
    assert out[3, 0] == pytest.approx(0.5201392, abs=1e-7)
    assert out[0, 0] == pytest.approx(0.1105410, abs=1e-7)
    np.testing.assert_allclose(out[:, 1], 0.08, rtol=0, atol=1e-15)
    D = sparse_to_dense(det, 6, 2, gamma=0.3, sigma=1.0)
    assert D[3, 0] == pytest.approx(2.2006959, abs=1e-7)
    # gamma 0.2 lets the 0.25 detection in: class 1 gets 5 * 0.25 * sum_u N(t - u) over u in [0, 6);
    # at t = 0: 1.25 * (0.3989423 + 0.2419707 + 0.0539910 + 0.0044318 + 0.0001338 + 0.0000015) = 0.8743389
    D2 = sparse_to_dense(det, 6, 2, gamma=0.2, sigma=1.0)
    assert D2[0, 1] == pytest.approx(0.8743389, abs=1e-7)
    # the notebook's evaluation at t + 1 (x_d = 1..T): D[t] there is D at t + 1 here
    shifted = sparse_to_dense(det, 6, 2, gamma=0.3, sigma=1.0, eval_offset=1.0)
    np.testing.assert_allclose(shifted[:5, 0], D[1:, 0], rtol=0, atol=1e-15)


def test_gaussian_kernel_matches_loop():
    for sigma, gain, off in ((3.0, 5.0, 0.0), (1.0, 1.0, 1.0), (0.7, 2.0, -0.5)):
        w, radius = gaussian_kernel(sigma, gain, off)
        assert radius == math.ceil(8 * sigma + abs(off))
        np.testing.assert_allclose(w, [gain * pdf(d + off, 0.0, sigma) for d in range(-radius, radius + 1)],
                                   rtol=1e-14, atol=0)


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
        np.testing.assert_allclose(out, beta * ref_sparse_to_dense(det, 50, 3) + (1 - beta) * S, rtol=0, atol=1e-12)
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
    # Eq. 15 for class 0 with mu = 4, sigma = 2 frames:
    #   frames 1-2: L = 2 -> (0.8 + 0.7) * exp(-0.01 * (2 - 4)^2 / 2^2) = 1.5 * exp(-0.01)   = 1.4850748
    #   frame 4:    L = 1 -> 0.9 * exp(-0.01 * (1 - 4)^2 / 2^2)         = 0.9 * exp(-0.0225) = 0.8799761
    eq = dense_to_sparse(P[:, :1], 0.5, duration_mean=[4.0], duration_std=[2.0])
    assert eq.scores.tolist() == pytest.approx([1.4850748, 0.8799761], abs=1e-7)
    np.testing.assert_array_equal(eq.segments, [[1, 3], [4, 5]])
    # in seconds at 2.5 frames per second, statistics still in frames
    eq = dense_to_sparse(P[:, :1], 0.5, rate=2.5, duration_mean=[4.0], duration_std=[2.0])
    np.testing.assert_allclose(eq.segments, [[0.4, 1.2], [1.6, 2.0]], rtol=0, atol=1e-15)
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


# ------------------------------------------------------------------------------------------
# bad arguments
# ------------------------------------------------------------------------------------------
ONE = Instances([[0, 1]], [0], [0.5])


@pytest.mark.parametrize("call, error, words", [
    (lambda: merge_windows([(np.nan, ONE)]), DataError, "window 0 offset must be a number"),
    (lambda: merge_windows([ONE]), DataError, "expected (offset, Instances)"),
    (lambda: merge_windows([(0.0, ONE)], duration=-1.0), DataError, "video duration"),
    (lambda: merge_windows([(0.0, Instances([[0, np.nan]], [0], [0.5]))]), DataError, "window 0: segments"),
    (lambda: to_seconds(ONE, "30fps"), DataError, "expected a FeatureTiming"),
    (lambda: to_seconds(ONE, FeatureTiming(30.0), duration=np.inf), DataError, "video duration"),
    (lambda: rescore_with_video_scores(Instances([[0, 1]], [3], [0.5]), [0.1, 0.2], video="v7"), DataError,
     "video 'v7': detection labels must lie in [0, 2)"),
    (lambda: fuse_proposals_with_video_scores(ONE, [np.nan]), DataError, "video-level class scores"),
    (lambda: fuse_proposals_with_video_scores(ONE, []), DataError, "got none"),
    (lambda: fuse_proposals_with_video_scores(Instances([[0, 1]], [0], [-0.5]), [0.3]), DataError, ">= 0"),
    (lambda: fuse_proposals_with_video_scores(ONE, [0.3], topk=-1), ConfigError, "topk must be a whole number"),
    (lambda: fuse_proposals_with_video_scores(ONE, [0.3], alpha=np.inf), ConfigError, "alpha"),
    (lambda: rescore_with_video_scores(ONE, [0.3], power=0), ConfigError, "power"),
    (lambda: rescore_with_video_scores(ONE, [0.3], topk=1.5), ConfigError, "topk"),
    (lambda: sparse_to_dense(ONE, 10, 2, combine="mean"), ConfigError, "unknown combine 'mean'"),
    (lambda: sparse_to_dense(ONE, 10, 2, sigma=0), ConfigError, "Gaussian sigma"),
    (lambda: sparse_to_dense(ONE, 10, 2, rate=-1), ConfigError, "rate"),
    (lambda: sparse_to_dense(ONE, 10, 2, gamma=np.nan), ConfigError, "gamma"),
    (lambda: sparse_to_dense(ONE, 10, 2, truncate=0), ConfigError, "truncate"),
    (lambda: sparse_to_dense(ONE, -1, 2), ConfigError, "num_frames"),
    (lambda: sparse_to_dense(Instances([[0, 1]], [5], [0.5]), 10, 2), DataError, "labels must lie in [0, 2)"),
    (lambda: fuse_sparse_dense(ONE, np.zeros(10), 0.2), DataError, "(T, C) array"),
    (lambda: fuse_sparse_dense(ONE, np.zeros((10, 2)), 1.5), ConfigError, "beta must be a number in [0, 1]"),
    (lambda: dense_to_sparse(np.full((4, 2), np.nan)), DataError, "finite"),
    (lambda: dense_to_sparse(np.zeros((4, 2)), scoring="max"), ConfigError, "unknown scoring 'max'"),
    (lambda: dense_to_sparse(np.zeros((4, 2)), scoring="eq15"), ConfigError, "duration_mean and duration_std"),
    (lambda: dense_to_sparse(np.zeros((4, 2)), duration_mean=[1.0], duration_std=[1.0]), DataError,
     "duration statistics cover 1/1 classes"),
    (lambda: dense_to_sparse(np.zeros((4, 2)), [0.5, np.nan]), ConfigError, "thresholds"),
    (lambda: class_duration_stats([1.0, 2.0], [0, 3], 2), DataError, "labels must lie in [0, 2)"),
    (lambda: class_duration_stats([1.0], [0, 1], 2), DataError, "1 lengths but 2 labels"),
])
def test_bad_arguments(call, error, words):
    with pytest.raises(error) as info:
        call()
    assert words in str(info.value)
