"""NMS and Soft-NMS: the batched implementation against plain sequential references."""
from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tadkit.core import ConfigError, Instances
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


def ref_postprocess(inst, method, pre_topk, min_score, max_det, sigma, thr, class_agnostic):
    idx = [i for i in range(len(inst)) if inst.scores[i] >= min_score]
    idx.sort(key=lambda i: -inst.scores[i])                   # Python's sort is stable
    if pre_topk is not None:
        idx = idx[:pre_topk]
    cand = inst[np.array(idx, dtype=np.int64)]
    if method == "none":
        kept = [(i, cand.scores[i]) for i in range(len(cand))]
    else:
        kind = "gaussian" if method == "soft" else "hard"
        kept = ref_greedy(cand.segments, cand.labels, cand.scores, kind, sigma, thr,
                          min_score if method == "soft" else -math.inf, class_agnostic)
    if max_det is not None:
        kept = kept[:max_det]
    return cand, kept


def assert_same(out: Instances, src: Instances, kept):
    """``out`` holds exactly the reference's kept candidates of ``src``, same order, same scores."""
    assert len(out) == len(kept)
    if not kept:
        return
    ids = np.array([k[0] for k in kept])
    np.testing.assert_array_equal(out.segments, src.segments[ids])
    np.testing.assert_array_equal(out.labels, src.labels[ids])
    np.testing.assert_allclose(out.scores, [k[1] for k in kept], rtol=0, atol=1e-12)


def random_instances(rng, n=None, num_classes=None, ties=None):
    n = int(rng.integers(0, 60)) if n is None else n
    num_classes = int(rng.integers(1, 6)) if num_classes is None else num_classes
    starts = rng.uniform(0, 50, n)
    lengths = rng.exponential(6, n)
    if n and rng.random() < 0.3:                              # some exact duplicates and points
        k = int(rng.integers(1, n + 1))
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


# ------------------------------------------------------------------------------------------
# agreement with the references on random inputs
# ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["gaussian", "linear", "hard"])
@pytest.mark.parametrize("class_agnostic", [False, True])
def test_matches_reference_random(kind, class_agnostic):
    rng = np.random.default_rng(12345 + (kind == "linear") + 2 * (kind == "hard") + 4 * class_agnostic)
    for _ in range(150):
        inst = random_instances(rng)
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


@pytest.mark.parametrize("method", ["soft", "hard", "none"])
def test_postprocess_matches_reference(method):
    rng = np.random.default_rng(7 + len(method))
    for _ in range(60):
        inst = random_instances(rng, n=int(rng.integers(0, 120)), num_classes=int(rng.integers(1, 8)))
        pre_topk = None if rng.random() < 0.3 else int(rng.integers(0, 80))
        max_det = None if rng.random() < 0.3 else int(rng.integers(0, 40))
        min_score = float(rng.choice([1e-3, 0.2]))
        agnostic = bool(rng.random() < 0.3)
        thr = 0.5 if method == "hard" else 0.1
        out = postprocess_detections(inst, method=method, pre_topk=pre_topk, min_score=min_score,
                                     max_detections=max_det, sigma=0.5, class_agnostic=agnostic)
        cand, ref = ref_postprocess(inst, method, pre_topk, min_score, max_det, 0.5, thr, agnostic)
        assert_same(out, cand, ref)


def test_realistic_size_matches_reference():
    """2000 candidates over 20 classes, the benchmark's setting, with the default pipeline."""
    rng = np.random.default_rng(0)
    n = 2000
    starts = rng.uniform(0, 190, n)
    segs = np.stack([starts, np.minimum(starts + rng.lognormal(1.5, 0.8, n), 200)], 1)
    inst = Instances(segs, rng.integers(0, 20, n), rng.beta(0.5, 3, n))
    out = postprocess_detections(inst)
    cand, ref = ref_postprocess(inst, "soft", 2000, 1e-3, 200, 0.5, 0.1, False)
    assert_same(out, cand, ref)
    full = soft_nms(cand)                                      # without the early exit
    ref_full = ref_greedy(cand.segments, cand.labels, cand.scores, "gaussian", 0.5, 0.1, 1e-3)
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
    for out in (soft_nms(inst), nms(inst, 0.1), postprocess_detections(inst), postprocess_detections(inst, method="hard")):
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


def test_postprocess_videos_and_errors():
    rng = np.random.default_rng(9)
    res = {"b": random_instances(rng, n=30), "a": Instances.empty()}
    out = postprocess_videos(res, max_detections=5)
    assert list(out) == ["b", "a"] and len(out["b"]) <= 5 and len(out["a"]) == 0
    with pytest.raises(ConfigError):
        postprocess_detections(res["b"], method="greedy")
    with pytest.raises(ConfigError):
        soft_nms(res["b"], method="exp")
    with pytest.raises(ConfigError):
        soft_nms(res["b"], sigma=0)
    with pytest.raises(ValueError):
        nms(Instances([[0, 1]], [0], [np.nan]))


def test_segment_voting_matches_loop():
    rng = np.random.default_rng(11)
    for agnostic in (False, True):
        for _ in range(20):
            cand = random_instances(rng, n=40, num_classes=3)
            kept = nms(cand, 0.5, class_agnostic=agnostic)
            out = segment_voting(kept, cand, 0.6, class_agnostic=agnostic)
            for k in range(len(kept)):
                num, den = np.zeros(2), 0.0
                for j in range(len(cand)):
                    if (agnostic or cand.labels[j] == kept.labels[k]) and \
                            ref_iou(kept.segments[k], cand.segments[j]) >= 0.6:
                        num += cand.scores[j] * cand.segments[j]
                        den += cand.scores[j]
                expect = num / den if den > 0 else kept.segments[k]
                np.testing.assert_allclose(out.segments[k], expect, rtol=1e-12, atol=1e-12)
            np.testing.assert_array_equal(out.scores, kept.scores)
    # by hand: [0,10] (0.9) absorbs [0,12] (0.3) at IoU 10/12
    kept = Instances([[0, 10]], [0], [0.9])
    cand = Instances([[0, 10], [0, 12]], [0, 0], [0.9, 0.3])
    np.testing.assert_allclose(segment_voting(kept, cand, 0.7).segments, [[0, (9 + 3.6) / 1.2]])
    out = postprocess_detections(cand, method="hard", voting_threshold=0.7)
    np.testing.assert_allclose(out.segments, [[0, 10.5]])
