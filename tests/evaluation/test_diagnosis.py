"""tadkit.evaluation.diagnosis (DETAD's analyses) against a plain statement of DETAD's definitions,
a hand-worked case, the JSON contract, the figures and the ``tadkit diagnose`` command."""
import json

import numpy as np
import pytest

from tadkit.cli import main as cli_main
from tadkit.cli.diagnose_commands import DIAGNOSE_COMMANDS
from tadkit.core.errors import ConfigError, DataError, TadkitError
from tadkit.evaluation.api import evaluate_files
from tadkit.evaluation.diagnosis import DETAD_BINS, diagnose, match_ground_truth, normalized_ap

ERRS = ("true_positive", "double_detection", "wrong_label", "localization", "confusion", "background")
CHARS = ("coverage", "length", "num_instances")


# ---------------------------------------------------------------------------------------------
# An independent computation: DETAD's definitions written loop by loop over the detections
# (action_detector_diagnosis.py, false_positive_analysis.py, false_negative_analysis.py and
# sensitivity_analysis.py), sharing no code with the module under test.
# ---------------------------------------------------------------------------------------------
def _iou(p, g):
    inter = max(0.0, min(p[1], g[1]) - max(p[0], g[0]))
    union = (g[1] - g[0]) + (p[1] - p[0]) - inter
    return inter / union if union != 0 else float("nan")


def _ap_n(tp_flags, npos, G):
    """Normalised AP of a ranked list of true-positive flags (DETAD, normalize_ap=True)."""
    tp = fp = 0
    rec, prec = [], []
    for f in tp_flags:
        tp += f
        fp += 1 - f
        r = tp / npos
        rec.append(r)
        prec.append(r * G / (r * G + fp))
    mprec = [0.0] + prec + [0.0]
    mrec = [0.0] + rec + [1.0]
    for i in range(len(mprec) - 2, -1, -1):
        mprec[i] = max(mprec[i], mprec[i + 1])
    return sum((mrec[i] - mrec[i - 1]) * mprec[i] for i in range(1, len(mrec)) if mrec[i] != mrec[i - 1])


def _cut(x, edges):
    """pandas.cut(include_lowest=True): (a, b], the first [a, b]; None outside."""
    for i in range(len(edges) - 1):
        lo, hi = edges[i], edges[i + 1]
        if (lo < x <= hi) or (i == 0 and x == lo):
            return i
    return None


def detad_reference(db, results, subset, tiou, bins, limit=10, min_tiou=0.1, fn_min_prec=0.05):
    # ground truth: the subset's, without length <= 0 or coverage > 1; classes by first appearance
    gts, classes = [], []
    for vid, v in db.items():
        if v["subset"] != subset:
            continue
        for a in v["annotations"]:
            s, e = float(a["segment"][0]), float(a["segment"][1])
            if not s < e or (e - s) / v["duration"] > 1:
                continue
            if a["label"] not in classes:
                classes.append(a["label"])
            gts.append({"vid": vid, "seg": (s, e), "label": a["label"], "dur": float(v["duration"])})
    G = len(gts) // len(classes)
    preds = [{"vid": vid, "seg": (float(d["segment"][0]), float(d["segment"][1])), "label": d["label"],
              "score": d["score"]} for vid, dets in results.items() for d in dets if d["label"] in classes]
    npos = {c: sum(g["label"] == c for g in gts) for c in classes}

    # per class: ranked predictions and the ActivityNet matching at every threshold
    ranked, matched = {}, {}
    for c in classes:
        pc = [p for p in preds if p["label"] == c]
        order = np.array([p["score"] for p in pc]).argsort()[::-1] if pc else []
        ranked[c] = [pc[i] for i in order]
        gidx = [j for j, g in enumerate(gts) if g["label"] == c]
        m = [[None] * len(ranked[c]) for _ in tiou]
        for t, thr in enumerate(tiou):
            taken = set()
            for i, p in enumerate(ranked[c]):
                cand = [j for j in gidx if gts[j]["vid"] == p["vid"]]
                if not cand:
                    continue
                ious = np.array([_iou(p["seg"], gts[j]["seg"]) for j in cand])
                for jj in ious.argsort()[::-1]:
                    if ious[jj] < thr:
                        break
                    if cand[jj] in taken:
                        continue
                    taken.add(cand[jj])
                    m[t][i] = cand[jj]
                    break
        matched[c] = m

    # error type of each of the top limit * N_c predictions
    def error_type(p, t, thr):
        vg = [g for g in gts if g["vid"] == p["vid"]]
        if not vg:
            return "background"
        ious = [_iou(p["seg"], g["seg"]) for g in vg]
        best = int(np.argmax(ious))
        top, same = ious[best], vg[best]["label"] == p["label"]
        if top >= thr:
            return "double_detection" if same else "wrong_label"
        if top >= min_tiou:
            return "localization" if same else "confusion"
        return "background"

    types = {}
    for c in classes:
        lim = ranked[c][:limit * npos[c]]
        types[c] = [["true_positive" if matched[c][t][i] is not None else error_type(p, t, thr)
                     for i, p in enumerate(lim)] for t, thr in enumerate(tiou)]

    profile = []
    for k in range(limit):
        members = [(c, i) for c in classes for i in range(k * npos[c], (k + 1) * npos[c]) if i < len(types[c][0])]
        if not members:
            profile.append(None)
            continue
        frac = {e: np.mean([sum(types[c][t][i] == e for c, i in members) for t in range(len(tiou))]) / len(members)
                for e in ERRS}
        profile.append({"band": f"{k + 1}G", "num_predictions": len(members), "fractions": frac})

    def ap_lim(c, t, drop=None):
        flags = [int(matched[c][t][i] is not None) for i in range(len(types[c][t])) if types[c][t][i] != drop]
        return _ap_n(flags, npos[c], G)

    base = np.mean([ap_lim(c, t) for c in classes for t in range(len(tiou))])
    gains = {e: np.mean([ap_lim(c, t, e) for c in classes for t in range(len(tiou))]) - base for e in ERRS[1:]}

    # characteristics, false negatives and sensitivity (all predictions)
    for g in gts:
        length = g["seg"][1] - g["seg"][0]
        g["coverage"], g["length"] = length / g["dur"], length
        g["num_instances"] = sum(h["vid"] == g["vid"] and h["label"] == g["label"] for h in gts)
    detected = [set() for _ in tiou]
    for c in classes:
        for t in range(len(tiou)):
            tp = fp = 0
            for i in range(len(ranked[c])):
                j = matched[c][t][i]
                tp += j is not None
                fp += j is None
                r = tp / npos[c]
                if j is not None and r * G / (r * G + fp) > fn_min_prec:
                    detected[t].add(j)
    fn, sens = {}, {}
    for name in CHARS:
        edges, labels = bins[name]
        gbin = [_cut(g[name], edges) for g in gts]
        fn[name], sens[name] = {}, {}
        for b, lab in enumerate(labels):
            inside = [j for j in range(len(gts)) if gbin[j] == b]
            fn[name][lab] = (np.mean([sum(j not in detected[t] for j in inside) / len(inside)
                                      for t in range(len(tiou))]) if inside else None)
            per_class = []
            for c in classes:
                n_cb = sum(gts[j]["label"] == c for j in inside)
                if not n_cb:
                    continue
                keep = [i for i in range(len(ranked[c]))
                        if all(matched[c][t][i] is None or gbin[matched[c][t][i]] == b for t in range(len(tiou)))]
                per_class.append(np.mean([_ap_n([int(matched[c][t][i] is not None) for i in keep], n_cb, G)
                                          for t in range(len(tiou))]))
            sens[name][lab] = np.mean(per_class) if per_class else None
    sens_base = np.mean([_ap_n([int(x is not None) for x in matched[c][t]], npos[c], G)
                         for c in classes for t in range(len(tiou))])
    return {"G": G, "average_mAP_N": base, "profile": profile, "gains": gains, "fn": fn, "sens": sens,
            "sens_base": sens_base}


def random_case(rng):
    """Ground truth with duplicates (tIoU ties), zero-length and over-long instances, a video in another
    subset, a video without ground truth; predictions partly jittered around the ground truth, some of
    an unknown label or video. Scores are distinct."""
    n_classes = int(rng.integers(2, 5))
    db, results = {}, {}
    for v in range(int(rng.integers(4, 9))):
        dur = float(rng.uniform(60, 200))
        anns = []
        for _ in range(int(rng.integers(0, 6))):
            s = float(rng.uniform(0, dur * 0.9))
            e = min(dur, s + float(rng.uniform(1, 40)))
            anns.append({"segment": [s, e], "label": f"c{rng.integers(n_classes)}"})
        if anns and rng.random() < 0.3:
            anns.append(dict(anns[0]))                                           # exact duplicate
        if rng.random() < 0.1:
            anns.append({"segment": [5.0, 5.0], "label": "c0"})                  # zero length: left out
        if rng.random() < 0.1:
            anns.append({"segment": [-1.0, dur + 1.0], "label": "c1"})           # coverage > 1: left out
        db[f"vid{v}"] = {"subset": "validation" if rng.random() > 0.15 else "training", "duration": dur,
                         "annotations": anns}
    if not any(a for v in db.values() if v["subset"] == "validation" for a in v["annotations"]):
        db["vid0"] = {"subset": "validation", "duration": 100.0, "annotations": [{"segment": [10, 30], "label": "c0"}]}
    for vid in list(db) + ["ghost"]:
        anns = db.get(vid, {}).get("annotations", [])
        dets = []
        for _ in range(int(rng.integers(0, 25))):
            if anns and rng.random() < 0.6:
                a = anns[int(rng.integers(len(anns)))]
                s, e = a["segment"]
                j = max(e - s, 1.0) * 0.3
                s, e = s + rng.normal(0, j), e + rng.normal(0, j)
                s, e = min(s, e), max(s, e)
                lab = a["label"] if rng.random() < 0.75 else f"c{rng.integers(n_classes + 1)}"
            else:
                s = float(rng.uniform(0, 150))
                e = s + float(rng.uniform(1, 40))
                lab = f"c{rng.integers(n_classes + 1)}"
            dets.append({"segment": [float(s), float(e)], "label": lab, "score": float(rng.random())})
        results[vid] = dets
    return db, results


TEST_BINS = {"coverage": ([0.0, 0.05, 0.1, 0.2, 1.0], ["XS", "S", "M", "L"]),
             "length": ([0.0, 5.0, 15.0, 25.0, np.inf], ["XS", "S", "M", "L"]),
             "num_instances": ([-1.0, 1.0, 2.0, np.inf], ["XS", "S", "M"])}


def _close(a, b):
    if a is None or b is None:
        return a is None and b is None
    return abs(a - b) <= 1e-6


def _assert_equal_to_reference(out, ref):
    assert out["G"] == ref["G"]
    assert _close(out["average_mAP_N"], ref["average_mAP_N"])
    assert len(out["false_positive_profile"]) == len(ref["profile"])
    for got, want in zip(out["false_positive_profile"], ref["profile"]):
        if want is None:
            assert got is None
            continue
        assert got["band"] == want["band"] and got["num_predictions"] == want["num_predictions"]
        for e in ERRS:
            assert _close(got["fractions"][e], want["fractions"][e]), (got, want)
        assert abs(sum(got["fractions"].values()) - 1) < 1e-9
    for e in ERRS[1:]:
        assert _close(out["removing_error_gain"][e], ref["gains"][e]), (e, out["removing_error_gain"], ref["gains"])
    for name in CHARS:
        for lab, want in ref["fn"][name].items():
            assert _close(out["false_negative"][name]["false_negative_rate"][lab], want), (name, lab)
        for lab, want in ref["sens"][name].items():
            assert _close(out["sensitivity"][name]["average_mAP_N"][lab], want), (name, lab)
    assert _close(out["sensitivity"]["base_average_mAP_N"], ref["sens_base"])


@pytest.mark.parametrize("seed", range(12))
def test_random_cases_equal_the_loop_reference(seed):
    rng = np.random.default_rng(1000 + seed)
    db, results = random_case(rng)
    tiou = [0.3, 0.5, 0.7] if seed % 2 else [0.1, 0.4, 0.55, 0.75, 0.9]
    limit = 10 if seed % 3 else 2                 # a small limit cuts the lists and leaves empty bands
    out = diagnose({"database": db}, {"results": results}, subset="validation", tiou=tiou, bins=TEST_BINS,
                   limit_factor=limit)
    ref = detad_reference(db, results, "validation", tiou, TEST_BINS, limit=limit)
    _assert_equal_to_reference(out, ref)


def test_matching_agrees_with_tadkit_eval():
    """With G = N_j the normalised AP is the ActivityNet AP: the matching is tadkit eval's."""
    rng = np.random.default_rng(7)
    for _ in range(5):
        db, results = random_case(rng)
        for v in db.values():                       # keep every instance, so both see the same ground truth
            v["annotations"] = [a for a in v["annotations"]
                                if a["segment"][0] < a["segment"][1] and a["segment"][1] - a["segment"][0] <= v["duration"]]
        if not any(v["annotations"] for v in db.values() if v["subset"] == "validation"):
            continue
        m = evaluate_files({"database": db}, {"results": results}, subset="validation", tiou=[0.3, 0.5, 0.7],
                           recall_ks=())
        classes = list(m["per_class_AP"])
        gts = [(vid, a["segment"], classes.index(a["label"])) for vid, v in db.items()
               if v["subset"] == "validation" for a in v["annotations"]]
        vids = {vid: i for i, vid in enumerate(list(db) + ["ghost"])}
        preds = [(vid, d["segment"], classes.index(d["label"]), d["score"]) for vid, dets in results.items()
                 for d in dets if d["label"] in classes]
        for c, lab in enumerate(classes):
            pc = [p for p in preds if p[2] == c]
            pc = [pc[i] for i in np.array([p[3] for p in pc]).argsort()[::-1]] if pc else []
            tiou = np.array([0.3, 0.5, 0.7])
            matched = match_ground_truth(
                np.array([vids[g[0]] for g in gts]), np.array([g[1] for g in gts], float).reshape(-1, 2),
                np.array([g[2] for g in gts]), np.array([vids[p[0]] for p in pc], dtype=np.int64),
                np.array([p[1] for p in pc], float).reshape(-1, 2), np.full(len(pc), c, dtype=np.int64), tiou)
            n = sum(g[2] == c for g in gts)
            np.testing.assert_allclose(normalized_ap(matched >= 0, n, n), m["per_class_AP"][lab], atol=1e-12)


# ---------------------------------------------------------------------------------------------
# A case worked by hand (one threshold, 0.5).
# Ground truth (durations 100 s): v1: A [10,20], B [50,60]; v2: A [0,40], B [70,80]; v3: none;
# v4: C [0,10]. 5 instances, 3 classes -> G = 5 // 3 = 1; N_A = N_B = 2, N_C = 1.
# Predictions, by rank within their class, with their type at tIoU 0.5:
#   A: a1 v1 [11,20] .9  tIoU .9 with A[10,20]            -> true positive
#      a2 v1 [10,20] .8  A[10,20] taken, best tIoU 1 (A)   -> double detection
#      a3 v2 [0,15]  .7  best A[0,40], tIoU 15/40 = .375   -> localization
#      a4 v2 [0,40]  .6  tIoU 1 with A[0,40]                -> true positive
#      a5 v1 [50,60] .5  best B[50,60], tIoU 1, other label -> wrong label
#      a6 v2 [60,78] .4  best B[70,80], tIoU 8/20 = .4      -> confusion
#      a7 v2 [90,100] .3 no overlap                          -> background
#   B: b1 v3 [0,10]  .95 video without ground truth         -> background
#      b2 v1 [50,60] .85                                     -> true positive
#      b3 v2 [0,40]  .75 best A[0,40], tIoU 1, other label  -> wrong label
#      b4 v2 [70,79] .65 tIoU .9 with B[70,80]              -> true positive
# Normalised precision with G = 1: p = r / (r + fp), r = tp / 2.
#   A: r = .5 .5 .5 1 1 1 1, fp = 0 1 2 2 3 4 5 -> p = 1, 1/3, 1/5, 1/3, 1/4, 1/5, 1/6;
#      AP_N = .5 * 1 + .5 * 1/3 = 2/3.
#   B: r = 0 .5 .5 1, fp = 1 1 2 2 -> p = 0, 1/3, 1/5, 1/3; AP_N = .5/3 + .5/3 = 1/3.
#   C: no prediction, AP_N 0.     average-mAP_N = (2/3 + 1/3 + 0) / 3 = 1/3.
# Bands (N_A = N_B = 2): 1G {a1 TP, a2 DD, b1 BG, b2 TP}; 2G {a3 LOC, a4 TP, b3 WL, b4 TP};
#   3G {a5 WL, a6 CONF}; 4G {a7 BG}; 5G..10G empty.
# Removing an error type (the rest keep their matches):
#   double:  A = TP LOC TP WL CONF BG, p at the 2nd TP = 1/(1+1) -> AP_A = .5 + .25 = 3/4;
#            mean = (3/4 + 1/3 + 0)/3 = 13/36 -> gain 1/36.
#   wrong:   A: 2nd TP still at fp 2 -> 2/3; B = BG TP TP, p = 0, 1/3, 1/2 -> AP_B = .25 + .25 = 1/2;
#            mean = (2/3 + 1/2)/3 = 7/18 -> gain 1/18.
#   loc:     A = TP DD TP WL CONF BG -> 3/4 -> gain 1/36.
#   conf:    A's TPs are before it -> nothing changes -> gain 0.
#   bg:      A unchanged (its BG is last); B = TP WL TP, p = 1, 1/3, 1/2 -> AP_B = 3/4;
#            mean = (2/3 + 3/4)/3 = 17/36 -> gain 5/36.
# False negatives (a true positive counts when its normalised precision > .05: all four do):
#   only C [0,10] is missed. Length XS [0,30]: A1 B1 B2 C1 -> 1/4; S (30,60]: A2 -> 0.
#   Coverage: .1 .4 .1 .1 .1; .4 lies in S = (.2,.4] -> XS 1/4, S 0. # instances: all 1 -> XS 1/5.
# Sensitivity, length XS (A1, B1, B2, C1): A keeps all but a4 (matched outside XS):
#   TP FP FP FP FP FP with N = 1 -> 1; B (N = 2) as above -> 1/3; C -> 0; mean 4/9.
#   Length S (A2): A without a1: FP FP TP ..., p at the TP = 1/(1+2) -> 1/3; mean over A only = 1/3.
# ---------------------------------------------------------------------------------------------
HAND_GT = {"database": {
    "v1": {"subset": "validation", "duration": 100, "annotations": [
        {"segment": [10, 20], "label": "A"}, {"segment": [50, 60], "label": "B"}]},
    "v2": {"subset": "validation", "duration": 100, "annotations": [
        {"segment": [0, 40], "label": "A"}, {"segment": [70, 80], "label": "B"}]},
    "v3": {"subset": "validation", "duration": 100, "annotations": []},
    "v4": {"subset": "validation", "duration": 100, "annotations": [{"segment": [0, 10], "label": "C"}]},
}}
_HAND = [("v1", 11, 20, "A", .9), ("v1", 10, 20, "A", .8), ("v2", 0, 15, "A", .7), ("v2", 0, 40, "A", .6),
         ("v1", 50, 60, "A", .5), ("v2", 60, 78, "A", .4), ("v2", 90, 100, "A", .3),
         ("v3", 0, 10, "B", .95), ("v1", 50, 60, "B", .85), ("v2", 0, 40, "B", .75), ("v2", 70, 79, "B", .65)]
HAND_PRED = {"results": {}}
for _v, _s, _e, _l, _p in _HAND:
    HAND_PRED["results"].setdefault(_v, []).append({"segment": [_s, _e], "label": _l, "score": _p})


def _fr(**kw):
    return {e: kw.get(e, 0.0) for e in ERRS}


def test_hand_worked_case():
    d = diagnose(HAND_GT, HAND_PRED, tiou="0.5", bins="activitynet")
    assert d["G"] == 1 and d["num_classes"] == 3 and d["num_ground_truth"] == 5
    assert d["average_mAP_N"] == pytest.approx(1 / 3, abs=1e-12)
    want = [(4, _fr(true_positive=.5, double_detection=.25, background=.25)),
            (4, _fr(true_positive=.5, localization=.25, wrong_label=.25)),
            (2, _fr(wrong_label=.5, confusion=.5)),
            (1, _fr(background=1.0))] + [None] * 6
    for k, (got, w) in enumerate(zip(d["false_positive_profile"], want)):
        if w is None:
            assert got is None
        else:
            assert got == {"band": f"{k + 1}G", "num_predictions": w[0], "fractions": pytest.approx(w[1], abs=1e-12)}
    assert d["removing_error_gain"] == pytest.approx(
        {"double_detection": 1 / 36, "wrong_label": 1 / 18, "localization": 1 / 36, "confusion": 0.0,
         "background": 5 / 36}, abs=1e-12)
    fn = d["false_negative"]
    assert fn["length"]["false_negative_rate"] == pytest.approx({"XS": .25, "S": 0.0, "M": None, "L": None,
                                                                 "XL": None})
    assert fn["coverage"]["false_negative_rate"]["XS"] == pytest.approx(.25)
    assert fn["coverage"]["false_negative_rate"]["S"] == 0.0
    assert fn["num_instances"]["false_negative_rate"] == {"XS": pytest.approx(.2), "S": None, "M": None, "L": None}
    assert fn["length"]["num_ground_truth"] == {"XS": 4, "S": 1, "M": 0, "L": 0, "XL": 0}
    s = d["sensitivity"]
    assert s["length"]["average_mAP_N"]["XS"] == pytest.approx(4 / 9, abs=1e-12)
    assert s["length"]["average_mAP_N"]["S"] == pytest.approx(1 / 3, abs=1e-12)
    assert s["length"]["average_mAP_N"]["M"] is None
    assert s["base_average_mAP_N"] == pytest.approx(1 / 3, abs=1e-12)
    # and the loop reference agrees
    bins = {k: (list(e), list(lab)) for k, (e, lab) in DETAD_BINS["activitynet"].items()}
    ref = detad_reference(HAND_GT["database"], HAND_PRED["results"], "validation", [0.5], bins)
    _assert_equal_to_reference(d, ref)


def test_contract_keys_and_null_bands_are_json():
    d = diagnose(HAND_GT, HAND_PRED, tiou="activitynet")
    text = json.dumps(d, allow_nan=False)                    # no NaN or infinity anywhere
    back = json.loads(text)
    assert {"G", "false_positive_profile", "removing_error_gain", "false_negative", "sensitivity"} <= set(back)
    assert isinstance(back["G"], int)
    assert len(back["false_positive_profile"]) == 10 and back["false_positive_profile"][9] is None
    first = back["false_positive_profile"][0]
    assert set(first) >= {"band", "num_predictions", "fractions"} and set(first["fractions"]) == set(ERRS)
    assert set(back["removing_error_gain"]) == set(ERRS[1:])
    for sec in ("false_negative", "sensitivity"):
        assert set(CHARS) <= set(back[sec])


def test_auto_bins_follow_the_documented_rule():
    rng = np.random.default_rng(3)

    def case(dur_range, len_range, per_video, same_len=None):
        db, res = {}, {}
        for v in range(60):
            dur = float(rng.uniform(*dur_range))
            anns = []
            for _ in range(per_video):
                length = same_len or min(float(rng.uniform(*len_range)), 0.9 * dur)
                s = float(int(rng.uniform(0, dur - length)))      # whole seconds: exact lengths
                anns.append({"segment": [s, s + length], "label": f"c{v % 3}"})
            db[f"v{v}"] = {"subset": "validation", "duration": dur, "annotations": anns}
            res[f"v{v}"] = [{"segment": a["segment"], "label": a["label"], "score": float(rng.random())}
                            for a in anns]
        return {"database": db}, {"results": res}

    # ActivityNet-like: long actions in short videos
    d = diagnose(*case((30, 240), (5, 150), 1), tiou="0.5")
    assert d["sensitivity"]["length"]["rule"] == "activitynet"
    assert d["sensitivity"]["coverage"]["rule"] == "activitynet"
    # THUMOS-like: short actions in long videos -> ActivityNet's XS would hold everything
    d = diagnose(*case((200, 600), (1, 25), 3), tiou="0.5")
    assert d["sensitivity"]["length"]["rule"] == "thumos14"
    assert d["sensitivity"]["coverage"]["rule"] == "thumos14"
    assert d["false_negative"]["length"]["edges"] == [0.0, 3.0, 6.0, 12.0, 18.0, None]
    # all lengths equal: no DETAD set fits -> quantile bins
    d = diagnose(*case((100, 100), (7, 7), 1, same_len=7.0), tiou="0.5")
    assert d["sensitivity"]["length"]["rule"] == "quantile"
    assert d["sensitivity"]["length"]["num_ground_truth"] == {"XS": 60}
    # an explicit preset is taken as it is
    d = diagnose(*case((100, 100), (7, 7), 1, same_len=7.0), tiou="0.5", bins="thumos14")
    assert d["sensitivity"]["num_instances"]["edges"] == [-1.0, 1.0, 40.0, 80.0, None]


def test_bad_arguments_raise_tadkit_errors():
    with pytest.raises(ConfigError):
        diagnose(HAND_GT, HAND_PRED, bins="deciles")
    with pytest.raises(ConfigError):
        diagnose(HAND_GT, HAND_PRED, bins={"length": ([0, 10], ["a", "b"])})
    with pytest.raises(ConfigError):
        diagnose(HAND_GT, HAND_PRED, limit_factor=0)
    with pytest.raises(TadkitError):
        diagnose(HAND_GT, HAND_PRED, tiou="0.5:x")
    with pytest.raises(DataError):
        diagnose(HAND_GT, HAND_PRED, subset="testing")
    with pytest.raises(DataError):
        diagnose(HAND_GT, {"results": {"nowhere": [{"segment": [0, 1], "label": "A", "score": 1}]}})


def test_figures_png_and_svg(tmp_path):
    from tadkit.evaluation.diagnosis_plots import diagnosis_svgs, plot_diagnosis
    d = diagnose(HAND_GT, HAND_PRED, tiou="0.5")
    paths = plot_diagnosis(d, tmp_path / "figs")
    names = sorted(p.name for p in paths)
    assert names == sorted(f"{n}_analysis.{x}" for n in ("false_positive", "false_negative", "sensitivity")
                           for x in ("png", "svg"))
    for p in paths:
        assert p.stat().st_size > 1000
    assert paths[0].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    svgs = diagnosis_svgs(d)
    assert set(svgs) == {"false_positive_analysis", "false_negative_analysis", "sensitivity_analysis"}
    assert all("<svg" in s for s in svgs.values())
    assert svgs == diagnosis_svgs(d)                           # deterministic


# ---------------------------------------------------------------------------------------------- CLI
@pytest.fixture
def cli(monkeypatch):
    monkeypatch.setitem(cli_main.COMMANDS, "diagnose", DIAGNOSE_COMMANDS["diagnose"])
    return lambda *args: cli_main.main(["diagnose", *map(str, args)])


@pytest.fixture
def files(tmp_path):
    gt, pred = tmp_path / "gt.json", tmp_path / "pred.json"
    gt.write_text(json.dumps(HAND_GT))
    pred.write_text(json.dumps(HAND_PRED))
    return gt, pred


def test_cli_writes_the_contract(cli, files, tmp_path, capsys):
    gt, pred = files
    out = tmp_path / "diag"
    assert cli("--gt", gt, "--pred", pred, "--subset", "validation", "--tiou", "0.5", "--out", out) == 0
    d = json.loads((out / "diagnosis.json").read_text())
    assert d["G"] == 1 and d["tiou"] == [0.5]
    assert d["removing_error_gain"]["background"] == pytest.approx(5 / 36)
    assert d["false_positive_profile"][4] is None
    for name in ("false_positive_analysis", "false_negative_analysis", "sensitivity_analysis"):
        for ext in ("png", "svg"):
            assert (out / f"{name}.{ext}").stat().st_size > 0
    printed = capsys.readouterr().out
    assert "1G" in printed and "background" not in printed.split("\n")[0]
    assert "+13.89" in printed                                  # the background gain, in points
    assert not [p for p in out.iterdir() if p.name.startswith(".")]   # no temporary files left


@pytest.mark.parametrize("bad", ["json", "pred-json", "subset", "tiou", "tiou-range", "out-file"])
def test_cli_bad_input_one_line_exit_2_nothing_written(cli, files, tmp_path, capsys, bad):
    gt, pred = files
    out = tmp_path / "diag"
    args = ["--gt", gt, "--pred", pred, "--tiou", "0.5", "--out", out]
    if bad == "json":
        (tmp_path / "broken.json").write_text('{"database": {"v1": [')
        args[1] = tmp_path / "broken.json"                     # the annotation file
    elif bad == "pred-json":
        (tmp_path / "broken.json").write_text("[1, 2")
        args[3] = tmp_path / "broken.json"                     # the predictions file
    elif bad == "subset":
        args += ["--subset", "testing"]
    elif bad == "tiou":
        args[5] = "abc"
    elif bad == "tiou-range":
        args[5] = "0.5:1.5:0.1"
    else:
        out.write_text("a file")
    code = cli(*args)
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1 and err.startswith("tadkit diagnose: error:") and "Traceback" not in err
    if bad in ("json", "pred-json"):
        assert "broken.json" in err
    if bad == "out-file":
        assert out.read_text() == "a file"
    else:
        assert not out.exists()
