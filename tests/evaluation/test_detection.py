import json
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from tadkit.data.annotations import Annotations
from tadkit.evaluation.api import Predictions, evaluate_detection, evaluate_files
from tadkit.evaluation.tiou import parse_tiou

from .reference import reference_map

ORACLE = [0.714286, 0.714286, 0.714286, 0.6875, 0.6875, 0.597222, 0.520833, 0.520833, 0.520833, 0.5]


def test_real_oracle(real_data):
    m = evaluate_files(real_data / "eval-oracle/gt.json", real_data / "eval-oracle/result.json",
                       tiou="activitynet")
    np.testing.assert_allclose(m["mAP"], ORACLE, atol=1e-6)
    assert abs(m["average_mAP"] - 0.6177579365) < 1e-9


def random_case(rng, n_videos=6, n_classes=3, n_gt=4, n_pred=12, grid=None, subsets=("validation", "training")):
    """Random ground truth and predictions; `grid` rounds times and scores to make ties."""
    db, results = {}, {}
    for v in range(n_videos):
        vid = f"vid{v}"
        dur = 100.0
        anns = []
        for _ in range(rng.integers(0, n_gt + 1)):
            s = rng.uniform(0, 90)
            e = s + rng.uniform(0, 20)
            if grid:
                s, e = round(s / grid) * grid, round(e / grid) * grid
            anns.append({"segment": [s, e], "label": f"c{rng.integers(n_classes)}"})
        if anns and rng.random() < 0.2:
            anns.append(dict(anns[0]))  # an exact duplicate
        db[vid] = {"subset": subsets[int(rng.random() < 0.25)], "duration": dur, "annotations": anns}
    for v in list(range(n_videos)) + [n_videos]:  # one predicted video absent from the ground truth
        dets = []
        for _ in range(rng.integers(0, n_pred + 1)):
            s = rng.uniform(0, 90)
            e = s + rng.uniform(0, 25)
            sc = rng.random()
            if grid:
                s, e, sc = round(s / grid) * grid, round(e / grid) * grid, round(sc * 4) / 4
            dets.append({"segment": [s, e], "label": f"c{rng.integers(n_classes + 1)}", "score": sc})
        results[f"vid{v}"] = dets
    return db, results


@pytest.mark.parametrize("grid", [None, 0.5, 5.0])
def test_matches_sequential_reference(grid):
    rng = np.random.default_rng(0 if grid is None else int(grid * 10))
    tiou = parse_tiou("0.1:0.9:0.1")
    checked = 0
    for _ in range(150):
        db, results = random_case(rng, grid=grid)
        if not any(a for v in db.values() if v["subset"] == "validation" for a in v["annotations"]):
            continue
        ann = Annotations.from_dict({"database": db})
        m = evaluate_detection(ann, Predictions.from_dict({"results": results}), subset="validation", tiou=tiou)
        ref, classes = reference_map(db, results, "validation", tiou)
        got = np.array([m["per_class_AP"][c] for c in classes]).T
        np.testing.assert_allclose(got, ref, rtol=0, atol=1e-12)
        np.testing.assert_allclose(m["mAP"], ref.mean(axis=1), atol=1e-12)
        checked += 1
    assert checked > 100


def test_hand_worked():
    # One ground truth [10, 20]. Predictions: A [10, 20] score .9 (tIoU 1), B [12, 20] score .8 (tIoU .8),
    # C [0, 5] score .7 (tIoU 0). At 0.5: A TP, B FP (gt taken), C FP -> precision 1, .5, .33; recall 1 at A.
    # AP = 1. At tIoU 0.5 with A removed: B TP at rank 1 -> AP 1; a FP ranked first: P=.5 at recall 1 -> AP .5.
    db = {"database": {"v": {"subset": "test", "duration": 30, "annotations": [{"segment": [10, 20], "label": "a"}]}}}
    res = {"v": [{"segment": [10, 20], "label": "a", "score": .9}, {"segment": [12, 20], "label": "a", "score": .8},
                 {"segment": [0, 5], "label": "a", "score": .7}]}
    m = evaluate_files(db, {"results": res}, tiou=[0.5])
    assert m["mAP"] == [1.0]
    res2 = {"v": [{"segment": [0, 5], "label": "a", "score": .95}, {"segment": [12, 20], "label": "a", "score": .8}]}
    assert evaluate_files(db, {"results": res2}, tiou=[0.5])["mAP"] == [0.5]
    # at 0.85 the tIoU-.8 prediction fails: AP 0
    assert evaluate_files(db, {"results": res2}, tiou=[0.85])["mAP"] == [0.0]
    # tIoU exactly at the threshold counts as a hit
    assert evaluate_files(db, {"results": res2}, tiou=[0.8])["mAP"] == [0.5]


def test_two_classes_mean_and_missing_class():
    db = {"database": {"v": {"subset": "test", "duration": 30, "annotations": [
        {"segment": [10, 20], "label": "a"}, {"segment": [0, 4], "label": "b"}]}}}
    res = {"v": [{"segment": [10, 20], "label": "a", "score": .9}]}
    m = evaluate_files(db, {"results": res}, tiou=[0.5])
    assert m["per_class_AP"] == {"a": [1.0], "b": [0.0]}
    assert m["mAP"] == [0.5]
    assert any("no predictions" in w for w in m["warnings"])


def _db_results(seed):
    rng = np.random.default_rng(seed)
    db, res = random_case(rng, n_videos=8, subsets=("validation", "validation"))
    # distinct scores so that order invariance is a property of the protocol, not of tie-breaking
    k = 0
    for dets in res.values():
        for d in dets:
            d["score"] = float(rng.random()) + 1e-9 * k
            k += 1
    return db, res


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 10_000), st.randoms(use_true_random=False))
def test_invariant_to_prediction_and_video_order(seed, rnd):
    db, res = _db_results(seed)
    if not any(v["annotations"] for v in db.values()):
        return
    base = evaluate_files({"database": db}, {"results": res}, tiou="0.3:0.7:0.1")
    vids = list(res)
    rnd.shuffle(vids)
    shuffled = {v: rnd.sample(res[v], len(res[v])) for v in vids}
    gvids = list(db)
    rnd.shuffle(gvids)
    db2 = {v: db[v] for v in gvids}
    other = evaluate_files({"database": db2}, {"results": shuffled}, tiou="0.3:0.7:0.1")
    for c in base["per_class_AP"]:
        np.testing.assert_allclose(other["per_class_AP"][c], base["per_class_AP"][c], atol=1e-12)


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 10_000))
def test_perfect_predictions_give_ap_one(seed):
    db, _ = _db_results(seed)
    if not any(v["annotations"] for v in db.values()):
        return
    res = {vid: [{"segment": a["segment"], "label": a["label"], "score": 1.0} for a in v["annotations"]]
           for vid, v in db.items()}
    m = evaluate_files({"database": db}, {"results": res}, tiou="activitynet")
    for c, ap in m["per_class_AP"].items():
        segs = [tuple(a["segment"]) for v in db.values() for a in v["annotations"] if a["label"] == c]
        if all(e > s for s, e in segs):  # zero-length ground truth cannot be hit with tIoU >= t
            assert ap == [1.0] * 10


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 10_000), st.floats(0.0, 1.0))
def test_adding_a_false_positive_never_helps(seed, score):
    db, res = _db_results(seed)
    if not any(v["annotations"] for v in db.values()):
        return
    base = evaluate_files({"database": db}, {"results": res}, tiou="thumos14")
    vid = next(iter(db))
    label = next(iter(base["per_class_AP"]))
    res2 = {k: list(v) for k, v in res.items()}
    res2.setdefault(vid, []).append({"segment": [1000.0, 1001.0], "label": label, "score": score})  # overlaps nothing
    worse = evaluate_files({"database": db}, {"results": res2}, tiou="thumos14")
    assert all(w <= b + 1e-12 for w, b in zip(worse["per_class_AP"][label], base["per_class_AP"][label]))


def test_v_prefix_and_unknown_labels_reported():
    db = {"database": {"v_abc": {"subset": "validation", "duration": 30,
                                 "annotations": [{"segment": [1, 5], "label": "a"}]}}}
    res = {"abc": [{"segment": [1, 5], "label": "a", "score": .5}, {"segment": [1, 5], "label": "zzz", "score": .9}],
           "other": [{"segment": [1, 5], "label": "a", "score": .1}]}
    m = evaluate_files(db, {"results": res}, tiou=[0.5])
    assert m["mAP"] == [1.0]
    text = " ".join(m["warnings"])
    assert "zzz" in text and "not in the annotations" in text


def test_tiou_parsing():
    np.testing.assert_array_equal(parse_tiou("0.3:0.7:0.1"), np.linspace(0.3, 0.7, 5))
    np.testing.assert_array_equal(parse_tiou("activitynet"), np.linspace(0.5, 0.95, 10))
    np.testing.assert_array_equal(parse_tiou("0.3,0.5"), [0.3, 0.5])
    assert parse_tiou("charades")[-1] == np.linspace(0.1, 0.9, 9)[-1]


# -- the command line on bad input: one line, exit 2, nothing written -------------------------------
def _cli(*args):
    return subprocess.run([sys.executable, "-m", "tadkit", *args], capture_output=True, text=True)


@pytest.mark.parametrize("gt_text,pred_text,needle", [
    ('{"database": {"v": {"subset": "val", "duration": 10, "annotations": [{"segment": [1, 2], "label": "a"}]}}}',
     '{"results": {"v": [{"segment": [1, 2], "label": "a", "score": 1}]', "invalid JSON"),
    ('{"database": {"v": {"subset": "val", "duration": 10, "annotations": [{"segment": [1, 2], "label": "a"}]}}}',
     '{"res": {}}', "missing key"),
    ('{"database": {"v": {"subset": "val", "annotations": [{"segment": [1, 2], "label": "a"}]}}}',
     '{"results": {}}', 'missing key "duration"'),
    ('{"database": {"v": {"subset": "val", "duration": 10, "annotations": []}}}',
     '{"results": {"v": []}}', "no ground-truth"),
    ('{"database": {"v": {"subset": "val", "duration": 10, "annotations": [{"segment": [1, 2], "label": "a"}]}}}',
     '{"results": {"w": [{"segment": [1, 2], "label": "a", "score": 1}]}}', "none of the"),
    ('{"database": {"v": {"subset": "val", "duration": 10, "annotations": [{"segment": [1, "x"], "label": "a"}]}}}',
     '{"results": {}}', "must be a number"),
])
def test_cli_bad_input(tmp_path, gt_text, pred_text, needle):
    gt, pred, out = tmp_path / "gt.json", tmp_path / "pred.json", tmp_path / "metrics.json"
    gt.write_text(gt_text)
    pred.write_text(pred_text)
    r = _cli("eval", "--gt", str(gt), "--pred", str(pred), "--out", str(out))
    assert r.returncode == 2, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0] and "Traceback" not in r.stderr
    assert set(tmp_path.iterdir()) == {gt, pred}  # nothing written, not even a temporary file


def test_cli_unknown_subset_lists_the_subsets(tmp_path, real_data):
    r = _cli("eval", "--gt", str(real_data / "eval-oracle/gt.json"),
             "--pred", str(real_data / "eval-oracle/result.json"), "--subset", "testing")
    assert r.returncode == 2 and "['validation']" in r.stderr


def test_cli_writes_metrics(tmp_path, real_data):
    out = tmp_path / "m.json"
    r = _cli("eval", "--gt", str(real_data / "eval-oracle/gt.json"),
             "--pred", str(real_data / "eval-oracle/result.json"), "--tiou", "activitynet", "--out", str(out))
    assert r.returncode == 0, r.stderr
    m = json.loads(out.read_text())
    assert set(["tiou", "mAP", "average_mAP", "per_class_AP"]) <= set(m)
    np.testing.assert_allclose(m["mAP"], ORACLE, atol=1e-6)
