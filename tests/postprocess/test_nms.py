"""NMS and Soft-NMS: the batched implementation against plain sequential references."""
from __future__ import annotations

import importlib
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tadkit.core import ConfigError, DataError, Instances
from tadkit.postprocess import batched_nms, nms, postprocess_detections, postprocess_videos, segment_voting, soft_nms


# ------------------------------------------------------------------------------------------
# sequential references: one class at a time, one candidate at a time
# ------------------------------------------------------------------------------------------
def ref_iou(a, b):
    """IoU of the picked segment ``a`` with ``b``, term by term as segment_iou (zero union -> 0)."""
    inter = max(0.0, min(a[1], b[1]) - max(a[0], b[0]))
    union = (b[1] - b[0]) + (a[1] - a[0]) - inter
    return 0.0 if union == 0 else inter / union


def ref_greedy(segs, labels, scores, kind, sigma=0.5, thr=0.5, min_score=-math.inf, class_agnostic=False):
    """Per-class greedy (soft) NMS. Returns [(input index, final score)] sorted by (-score, index)."""
    n = len(scores)
    groups = [0] * n if class_agnostic else [int(x) for x in labels]
    kept = []
    for g in sorted(set(groups)):
        pool = [i for i in range(n) if groups[i] == g and scores[i] >= min_score]   # input order
        cur = {i: float(scores[i]) for i in pool}
        while pool:
            m = pool[0]
            for i in pool[1:]:
                if cur[i] > cur[m]:          # strictly greater: the first maximum wins ties
                    m = i
            kept.append((m, cur[m]))
            pool.remove(m)
            survivors = []
            for i in pool:
                iou = ref_iou(segs[m], segs[i])
                if kind == "gaussian":
                    cur[i] = cur[i] * np.exp(-(iou * iou) / sigma)
                elif kind == "linear":
                    if iou >= thr:
                        cur[i] = cur[i] * (1.0 - iou)
                else:  # hard
                    if iou >= thr:
                        continue
                if cur[i] >= min_score:
                    survivors.append(i)
            pool = survivors
    kept.sort(key=lambda t: (-t[1], t[0]))
    return kept


def ref_voting(segs, labels, cand, thr, class_agnostic):
    """Score-weighted mean of the candidates with IoU >= thr (same class unless agnostic), one by one."""
    out = []
    for seg, lab in zip(segs, labels):
        num, den = [0.0, 0.0], 0.0
        for j in range(len(cand)):
            if (class_agnostic or cand.labels[j] == lab) and ref_iou(seg, cand.segments[j]) >= thr:
                num[0] += cand.scores[j] * cand.segments[j, 0]
                num[1] += cand.scores[j] * cand.segments[j, 1]
                den += cand.scores[j]
        out.append([num[0] / den, num[1] / den] if den > 0 else list(seg))
    return np.array(out).reshape(-1, 2)


def ref_postprocess(inst, method, pre_topk, min_score, max_det, sigma, thr, class_agnostic, soft="gaussian"):
    """min score -> pre top-k -> (soft) NMS -> max detections, one candidate at a time.

    Returns the candidates after pre-top-k and the kept ``[(candidate index, score)]``."""
    idx = [i for i in range(len(inst)) if inst.scores[i] >= min_score]
    idx.sort(key=lambda i: -inst.scores[i])                   # Python's sort is stable
    if pre_topk is not None:
        idx = idx[:pre_topk]
    cand = inst[np.array(idx, dtype=np.int64)]
    if method == "none":
        kept = [(i, cand.scores[i]) for i in range(len(cand))]
    else:
        kind = soft if method == "soft" else "hard"
        kept = ref_greedy(cand.segments, cand.labels, cand.scores, kind, sigma, thr,
                          min_score if method == "soft" else -math.inf, class_agnostic)
    if max_det is not None:
        kept = kept[:max_det]
    return cand, kept


def assert_same(out: Instances, src: Instances, kept, segments=None):
    """``out`` holds exactly the reference's kept candidates of ``src``, same order, same scores
    (and, when given, these ``segments`` in place of the kept ones)."""
    assert len(out) == len(kept)
    ids = np.array([k[0] for k in kept], dtype=np.int64)
    if segments is None:
        np.testing.assert_array_equal(out.segments, src.segments[ids])
    else:                                                      # computed means: equal up to rounding
        np.testing.assert_allclose(out.segments, segments.reshape(-1, 2), rtol=1e-12, atol=1e-12)
    np.testing.assert_array_equal(out.labels, src.labels[ids])
    np.testing.assert_allclose(out.scores, np.array([k[1] for k in kept], dtype=float), rtol=0, atol=1e-12)


def random_instances(rng, n=None, num_classes=None, ties=None, dups=None):
    """Random candidates; ``ties`` rounds scores to one decimal, ``dups`` copies segments exactly
    (and makes some zero-length); each is drawn at random when ``None``."""
    n = int(rng.integers(0, 60)) if n is None else n
    num_classes = int(rng.integers(1, 6)) if num_classes is None else num_classes
    starts = rng.uniform(0, 50, n)
    lengths = rng.exponential(6, n)
    if n and (dups if dups is not None else rng.random() < 0.3):   # exact duplicates and points
        k = int(rng.integers(n // 2, n + 1))
        j = rng.integers(0, n, k)
        starts[:k], lengths[:k] = starts[j], lengths[j]
        lengths[rng.random(n) < 0.05] = 0.0
    scores = rng.random(n)
    if ties if ties is not None else rng.random() < 0.4:      # many equal scores
        scores = np.round(scores, 1)
    segs = np.stack([starts, starts + lengths], 1)
    if rng.random() < 0.5:                                    # integer grid: many equal IoUs
        segs = np.round(segs)
    return Instances(segs, rng.integers(0, num_classes, n), scores)


def test_random_inputs_have_ties_and_duplicates():
    """The generator really produces what the reference comparisons rely on."""
    inst = random_instances(np.random.default_rng(0), n=50, ties=True, dups=True)
    assert len(np.unique(inst.scores)) < 15
    assert len(np.unique(inst.segments, axis=0)) < 40


# ------------------------------------------------------------------------------------------
# agreement with the references on random inputs
# ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["gaussian", "linear", "hard"])
@pytest.mark.parametrize("class_agnostic", [False, True])
def test_matches_reference_random(kind, class_agnostic):
    rng = np.random.default_rng(12345 + (kind == "linear") + 2 * (kind == "hard") + 4 * class_agnostic)
    for case in range(150):
        inst = random_instances(rng, ties=case % 3 == 0 or None, dups=case % 3 == 1 or None)
        sigma = float(rng.choice([0.5, 0.2, 1.0]))
        thr = float(rng.choice([0.1, 0.3, 0.5, 0.7]))
        min_score = float(rng.choice([1e-3, 0.05, 0.3]))
        max_det = None if rng.random() < 0.5 else int(rng.integers(0, 30))
        if kind == "hard":
            out = nms(inst, thr, class_agnostic=class_agnostic, max_detections=max_det)
            ref = ref_greedy(inst.segments, inst.labels, inst.scores, "hard", thr=thr,
                             class_agnostic=class_agnostic)
        else:
            out = soft_nms(inst, sigma, thr, method=kind, min_score=min_score, class_agnostic=class_agnostic,
                           max_detections=max_det)
            ref = ref_greedy(inst.segments, inst.labels, inst.scores, kind, sigma, thr, min_score,
                             class_agnostic)
        if max_det is not None:
            ref = ref[:max_det]
        assert_same(out, inst, ref)


@settings(max_examples=150, deadline=None)
@given(data=st.data(), kind=st.sampled_from(["gaussian", "linear", "hard"]), agnostic=st.booleans())
def test_matches_reference_hypothesis(data, kind, agnostic):
    n = data.draw(st.integers(0, 25))
    coord = st.integers(0, 20).map(float)                     # coarse grid: ties and duplicates
    starts = data.draw(st.lists(coord, min_size=n, max_size=n))
    lengths = data.draw(st.lists(st.integers(0, 8).map(float), min_size=n, max_size=n))
    scores = data.draw(st.lists(st.sampled_from([0.0005, 0.1, 0.3, 0.5, 0.9, 1.0]), min_size=n, max_size=n))
    labels = data.draw(st.lists(st.integers(0, 2), min_size=n, max_size=n))
    max_det = data.draw(st.one_of(st.none(), st.integers(0, 10)))
    thr = data.draw(st.sampled_from([0.0, 0.25, 0.5, 1.0]))
    segs = np.array([[s, s + l] for s, l in zip(starts, lengths)]).reshape(-1, 2)
    inst = Instances(segs, labels, scores)
    if kind == "hard":
        out = nms(inst, thr, class_agnostic=agnostic, max_detections=max_det)
        ref = ref_greedy(segs, labels, scores, "hard", thr=thr, class_agnostic=agnostic)
    else:
        out = soft_nms(inst, 0.5, thr, method=kind, min_score=1e-3, class_agnostic=agnostic, max_detections=max_det)
        ref = ref_greedy(segs, labels, scores, kind, 0.5, thr, 1e-3, agnostic)
    if max_det is not None:
        ref = ref[:max_det]
    assert_same(out, inst, ref)


def random_settings(rng, method):
    """Random post-processing keyword arguments (and the matching reference arguments)."""
    kw = dict(method=method, pre_topk=None if rng.random() < 0.3 else int(rng.integers(0, 80)),
              max_detections=None if rng.random() < 0.3 else int(rng.integers(0, 40)),
              min_score=float(rng.choice([1e-3, 0.2])), sigma=float(rng.choice([0.5, 0.3])),
              class_agnostic=bool(rng.random() < 0.3), soft_method=str(rng.choice(["gaussian", "linear"])),
              iou_threshold=None if rng.random() < 0.5 else float(rng.choice([0.1, 0.3, 0.6])),
              voting_threshold=None if rng.random() < 0.6 else float(rng.choice([0.5, 0.75])))
    thr = kw["iou_threshold"]
    if thr is None:
        thr = 0.5 if method == "hard" else 0.1
    return kw, thr


def check_postprocess(out: Instances, inst: Instances, kw: dict, thr: float):
    cand, ref = ref_postprocess(inst, kw["method"], kw["pre_topk"], kw["min_score"], kw["max_detections"],
                                kw["sigma"], thr, kw["class_agnostic"], kw["soft_method"])
    voted = None
    if kw["voting_threshold"]:
        ids = np.array([k[0] for k in ref], dtype=np.int64)
        voted = ref_voting(cand.segments[ids], cand.labels[ids], cand, kw["voting_threshold"], kw["class_agnostic"])
    assert_same(out, cand, ref, segments=voted)


@pytest.mark.parametrize("method", ["soft", "hard", "none"])
def test_postprocess_matches_reference(method):
    rng = np.random.default_rng(7 + len(method))
    for case in range(60):
        inst = random_instances(rng, n=int(rng.integers(0, 120)), num_classes=int(rng.integers(1, 8)),
                                ties=case % 2 == 0 or None, dups=case % 3 == 0 or None)
        kw, thr = random_settings(rng, method)
        check_postprocess(postprocess_detections(inst, **kw), inst, kw, thr)


@pytest.mark.parametrize("method", ["soft", "hard", "none"])
def test_postprocess_videos_matches_reference(method, monkeypatch):
    """Many videos in one batched pass (also split into several batches) = the reference per video."""
    nms_module = importlib.import_module("tadkit.postprocess.nms")     # the module, not the function
    rng = np.random.default_rng(70 + len(method))
    for case in range(8):
        if case % 2:
            monkeypatch.setattr(nms_module, "_BATCH_CELLS", int(rng.integers(1, 120)))
        videos = {f"v{i}": random_instances(rng, n=int(rng.integers(0, 90)), num_classes=int(rng.integers(1, 6)))
                  for i in range(int(rng.integers(1, 12)))}
        kw, thr = random_settings(rng, method)
        out = postprocess_videos(videos, **kw)
        assert list(out) == list(videos)
        for vid, inst in videos.items():
            check_postprocess(out[vid], inst, kw, thr)
        monkeypatch.undo()
    assert postprocess_videos({}) == {}


@pytest.mark.parametrize("kind", ["gaussian", "linear", "hard"])
def test_realistic_size_matches_reference(kind):
    """2000 candidates over 20 classes, the benchmark's setting, with the default pipeline."""
    rng = np.random.default_rng(0)
    n = 2000
    starts = rng.uniform(0, 190, n)
    segs = np.stack([starts, np.minimum(starts + rng.lognormal(1.5, 0.8, n), 200)], 1)
    inst = Instances(segs, rng.integers(0, 20, n), rng.beta(0.5, 3, n))
    method, thr = ("hard", 0.5) if kind == "hard" else ("soft", 0.1)
    out = postprocess_detections(inst, method=method, soft_method="gaussian" if kind == "hard" else kind)
    cand, ref = ref_postprocess(inst, method, 2000, 1e-3, 200, 0.5, thr, False, kind)
    assert len(ref) == 200
    assert_same(out, cand, ref)
    # without the early exit of max_detections
    full = nms(cand, thr) if kind == "hard" else soft_nms(cand, 0.5, thr, method=kind)
    ref_full = ref_greedy(cand.segments, cand.labels, cand.scores, kind, 0.5, thr,
                          -math.inf if kind == "hard" else 1e-3)
    assert len(ref_full) > 200
    assert_same(full, cand, ref_full)
    assert_same(full[:200], cand, ref)


# ------------------------------------------------------------------------------------------
# hand-worked cases and properties
# ------------------------------------------------------------------------------------------
def two_overlapping(labels=(0, 0)):
    # [0, 10] and [5, 15]: intersection 5, union 15, IoU 1/3
    return Instances([[0.0, 10.0], [5.0, 15.0]], list(labels), [0.9, 0.8])


def test_gaussian_decay_by_hand():
    out = soft_nms(two_overlapping(), sigma=0.5)
    expected = 0.8 * math.exp(-(1 / 3) ** 2 / 0.5)             # 0.8 * exp(-2/9) = 0.8 * 0.800737... = 0.640590...
    assert expected == pytest.approx(0.6405899, abs=1e-7)
    np.testing.assert_allclose(out.scores, [0.9, expected], rtol=0, atol=1e-15)
    np.testing.assert_array_equal(out.segments, [[0, 10], [5, 15]])


def test_linear_decay_by_hand():
    out = soft_nms(two_overlapping(), iou_threshold=0.3, method="linear")
    np.testing.assert_allclose(out.scores, [0.9, 0.8 * (2 / 3)], rtol=0, atol=1e-15)
    out = soft_nms(two_overlapping(), iou_threshold=0.4, method="linear")   # IoU 1/3 < 0.4: untouched
    np.testing.assert_allclose(out.scores, [0.9, 0.8], rtol=0, atol=0)


def test_hard_by_hand():
    assert len(nms(two_overlapping(), 0.3)) == 1
    assert len(nms(two_overlapping(), 0.5)) == 2
    assert len(nms(two_overlapping(), 1 / 3)) == 1              # IoU >= threshold suppresses


def test_decay_reorders_and_drops_below_min_score():
    # the third segment is decayed under the fourth's score; a tiny one is dropped by min_score
    inst = Instances([[0, 10], [0, 10], [20, 30], [0, 9]], [0, 0, 0, 0], [0.9, 0.85, 0.5, 0.002])
    out = soft_nms(inst, sigma=0.5, min_score=1e-3)
    d1 = 0.85 * math.exp(-1 / 0.5)                              # identical segment: IoU 1
    assert len(out) == 3
    np.testing.assert_allclose(out.scores, [0.9, 0.5, d1], rtol=0, atol=1e-15)


def test_classes_never_suppress_each_other():
    inst = Instances([[0, 10], [0, 10], [1, 10]], [0, 1, 2], [0.9, 0.8, 0.7])
    for out in (soft_nms(inst), nms(inst, 0.1), postprocess_detections(inst),
                postprocess_detections(inst, method="hard")):
        np.testing.assert_array_equal(out.scores, [0.9, 0.8, 0.7])
        np.testing.assert_array_equal(out.labels, [0, 1, 2])
    agn = soft_nms(inst, class_agnostic=True)
    assert agn.scores[0] == 0.9 and agn.scores[1] < 0.8
    assert len(nms(inst, 0.5, class_agnostic=True)) == 1


def test_batched_equals_per_class_calls():
    rng = np.random.default_rng(3)
    for _ in range(30):
        inst = random_instances(rng, n=80, num_classes=6)
        out = soft_nms(inst)
        per = Instances.cat([soft_nms(inst[inst.labels == c]) for c in range(6)])
        order = np.lexsort((per.labels, -per.scores))
        got = np.lexsort((out.labels, -out.scores))
        np.testing.assert_allclose(out.scores[got], per.scores[order], rtol=0, atol=1e-12)


def test_max_detections_min_score_pre_topk():
    rng = np.random.default_rng(5)
    inst = random_instances(rng, n=500, num_classes=4, ties=False)
    out = postprocess_detections(inst, max_detections=17)
    assert len(out) == 17 and np.all(np.diff(out.scores) <= 0)
    out = postprocess_detections(inst, min_score=0.6, method="none", max_detections=None, pre_topk=None)
    assert np.all(out.scores >= 0.6) and len(out) == np.sum(inst.scores >= 0.6)
    out = postprocess_detections(inst, method="none", pre_topk=10, max_detections=None, min_score=0)
    np.testing.assert_array_equal(out.scores, np.sort(inst.scores)[::-1][:10])
    assert np.all(postprocess_detections(inst, min_score=0.3).scores >= 0.3)     # decayed ones too
    assert len(postprocess_detections(inst, max_detections=0)) == 0


def test_ties_are_deterministic_and_stable():
    inst = Instances([[0, 1], [5, 6], [10, 11], [15, 16]], [1, 0, 1, 0], [0.5, 0.5, 0.5, 0.5])
    for out in (soft_nms(inst), nms(inst), postprocess_detections(inst)):
        np.testing.assert_array_equal(out.segments[:, 0], [0, 5, 10, 15])   # input order


def test_empty_inputs():
    e = Instances.empty()
    for out in (nms(e), soft_nms(e), postprocess_detections(e), postprocess_detections(e, method="hard"),
                postprocess_detections(e, method="none"), batched_nms(e)):
        assert len(out) == 0 and out.segments.shape == (0, 2)
    low = Instances([[0, 1]], [0], [1e-4])
    assert len(soft_nms(low)) == 0 and len(postprocess_detections(low)) == 0


def test_postprocess_videos_keeps_order_and_empty_videos():
    rng = np.random.default_rng(9)
    res = {"b": random_instances(rng, n=30), "a": Instances.empty(), "c": Instances([[0, 1]], [0], [1e-5])}
    out = postprocess_videos(res, max_detections=5)
    assert list(out) == ["b", "a", "c"] and len(out["b"]) == 5 and len(out["a"]) == 0 and len(out["c"]) == 0
    for vid in res:
        np.testing.assert_array_equal(out[vid].scores, postprocess_detections(res[vid], max_detections=5).scores)


GOOD = Instances([[0, 1], [0.5, 2]], [0, 1], [0.9, 0.4])


@pytest.mark.parametrize("call, error, words", [
    (lambda: postprocess_detections(GOOD, method="greedy"), ConfigError, "unknown NMS method 'greedy'"),
    (lambda: postprocess_detections(GOOD, soft_method="exp"), ConfigError, "unknown Soft-NMS method 'exp'"),
    (lambda: soft_nms(GOOD, method="exp"), ConfigError, "'gaussian', 'linear'"),
    (lambda: soft_nms(GOOD, sigma=0), ConfigError, "sigma must be a number in (0, inf)"),
    (lambda: postprocess_detections(GOOD, sigma=-1.0), ConfigError, "sigma"),
    (lambda: nms(GOOD, 1.5), ConfigError, "iou_threshold must be a number in [0, 1], got 1.5"),
    (lambda: nms(GOOD, -0.1), ConfigError, "iou_threshold"),
    (lambda: soft_nms(GOOD, iou_threshold=float("nan"), method="linear"), ConfigError, "iou_threshold"),
    (lambda: postprocess_detections(GOOD, pre_topk=-1), ConfigError, "pre_topk must be a whole number >= 0"),
    (lambda: postprocess_detections(GOOD, pre_topk=2.5), ConfigError, "pre_topk"),
    (lambda: postprocess_detections(GOOD, max_detections=-3), ConfigError, "max_detections"),
    (lambda: nms(GOOD, max_detections="10"), ConfigError, "max_detections"),
    (lambda: postprocess_detections(GOOD, min_score=float("nan")), ConfigError, "min_score"),
    (lambda: postprocess_detections(GOOD, voting_threshold=2), ConfigError, "voting_threshold"),
    (lambda: segment_voting(GOOD, GOOD, 0.0), ConfigError, "voting iou_threshold must be a number in (0, 1]"),
    (lambda: postprocess_videos({"v": GOOD}, max_dets=3), ConfigError, "unknown argument(s) max_dets"),
    (lambda: nms(Instances([[0, 1]], [0], [np.nan])), DataError, "scores must be finite"),
    (lambda: soft_nms(Instances([[0, np.inf]], [0], [0.5])), DataError, "segments must be finite"),
    (lambda: nms(Instances([[3, 1]], [0], [0.5])), DataError, "end before they start, e.g. [3, 1]"),
    (lambda: nms([[0, 1, 0.5]]), DataError, "expected Instances, got list"),
    (lambda: postprocess_videos({"v1": GOOD, "v2": Instances([[0, 1]], [0], [np.inf])}), DataError, "video 'v2'"),
])
def test_bad_arguments(call, error, words):
    with pytest.raises(error) as info:
        call()
    assert words in str(info.value)
    assert "\n" not in str(info.value)                         # one line, as the CLI prints it


def test_whole_number_floats_and_numpy_ints_are_accepted():
    a = postprocess_detections(GOOD, pre_topk=np.int64(1), max_detections=1.0)
    b = postprocess_detections(GOOD, pre_topk=1, max_detections=1)
    np.testing.assert_array_equal(a.scores, b.scores)
    assert len(a) == 1


def test_segment_voting_matches_reference():
    rng = np.random.default_rng(11)
    for case in range(40):
        agnostic = case % 2 == 1
        cand = random_instances(rng, n=40, num_classes=3, ties=case % 4 < 2, dups=case % 3 == 0 or None)
        kept = nms(cand, 0.5, class_agnostic=agnostic)
        thr = float(rng.choice([0.5, 0.6, 0.75, 1.0]))
        out = segment_voting(kept, cand, thr, class_agnostic=agnostic)
        expect = ref_voting(kept.segments, kept.labels, cand, thr, agnostic)
        np.testing.assert_allclose(out.segments, expect, rtol=1e-12, atol=1e-12)
        np.testing.assert_array_equal(out.labels, kept.labels)
        np.testing.assert_array_equal(out.scores, kept.scores)


def test_segment_voting_by_hand():
    # [0, 10] (0.9) absorbs [0, 12] (0.3) at IoU 10/12; [0, 11] of class 1 does not vote
    kept = Instances([[0, 10]], [0], [0.9])
    cand = Instances([[0, 10], [0, 12], [0, 11]], [0, 0, 1], [0.9, 0.3, 0.5])
    np.testing.assert_allclose(segment_voting(kept, cand, 0.7).segments, [[0, (9 + 3.6) / 1.2]])    # 10.5
    # class-agnostic (ActionFormer's only voting mode): the class-1 [0, 11] votes too
    np.testing.assert_allclose(segment_voting(kept, cand, 0.7, class_agnostic=True).segments,
                               [[0, (9 + 3.6 + 5.5) / 1.7]])
    # threshold above the neighbours' IoU: only the segment itself votes -> unchanged
    np.testing.assert_array_equal(segment_voting(kept, cand, 0.95).segments, [[0, 10]])
    # no voter at all (a kept segment that is not among the candidates): unchanged
    np.testing.assert_array_equal(segment_voting(Instances([[50, 60]], [0], [0.5]), cand, 0.5).segments, [[50, 60]])
    out = postprocess_detections(cand[:2], method="hard", voting_threshold=0.7)
    np.testing.assert_allclose(out.segments, [[0, 10.5]])
    assert len(postprocess_detections(cand[:2], method="hard", voting_threshold=None)) == 1
    np.testing.assert_array_equal(postprocess_detections(cand[:2], method="hard", voting_threshold=0).segments,
                                  [[0, 10]])                   # 0 = off, as in ActionFormer
