"""A plain, sequential statement of the ActivityNet detection protocol, for tests.

Written loop by loop from the protocol's description (see tadkit.evaluation.detection),
with no vectorisation, so that the fast implementation is checked against an
independent computation.
"""
import numpy as np


def _iou_one(p, gts):
    out = np.empty(len(gts))
    for j, g in enumerate(gts):
        inter = max(0.0, min(p[1], g[1]) - max(p[0], g[0]))
        union = (g[1] - g[0]) + (p[1] - p[0]) - inter
        out[j] = np.float64(inter) / np.float64(union) if union != 0 else np.nan
    return out


def reference_map(gt_db, results, subset, tiou):
    """gt_db: {vid: {"subset", "annotations": [{"segment", "label"}]}}; results: {vid: [dets]}."""
    classes = []
    gts = []  # (vid, s, e, label)
    for vid, v in gt_db.items():
        if v["subset"] != subset:
            continue
        for a in v["annotations"]:
            if a["label"] not in classes:
                classes.append(a["label"])
            gts.append((vid, float(a["segment"][0]), float(a["segment"][1]), a["label"]))
    preds = [(vid, float(d["segment"][0]), float(d["segment"][1]), d["label"], d["score"])
             for vid, dets in results.items() for d in dets if d["label"] in classes]
    ap = np.zeros((len(tiou), len(classes)))
    for c, lab in enumerate(classes):
        g = [x for x in gts if x[3] == lab]
        p = [x for x in preds if x[3] == lab]
        if not p:
            continue
        scores = np.array([x[4] for x in p])
        order = scores.argsort()[::-1]
        taken = np.full((len(tiou), len(g)), False)
        tp = np.zeros((len(tiou), len(p)))
        fp = np.zeros((len(tiou), len(p)))
        for i, k in enumerate(order):
            vid, s, e = p[k][0], p[k][1], p[k][2]
            idx = [j for j, x in enumerate(g) if x[0] == vid]
            if not idx:
                fp[:, i] = 1
                continue
            ious = _iou_one((s, e), [(g[j][1], g[j][2]) for j in idx])
            visit = ious.argsort()[::-1]
            for t, thr in enumerate(tiou):
                for jj in visit:
                    if ious[jj] < thr:
                        fp[t, i] = 1
                        break
                    if taken[t, idx[jj]]:
                        continue
                    tp[t, i] = 1
                    taken[t, idx[jj]] = True
                    break
                if tp[t, i] == 0 and fp[t, i] == 0:
                    fp[t, i] = 1
        for t in range(len(tiou)):
            tpc, fpc = np.cumsum(tp[t]), np.cumsum(fp[t])
            rec = tpc / len(g)
            prec = tpc / (tpc + fpc)
            mprec = [0.0] + list(prec) + [0.0]
            mrec = [0.0] + list(rec) + [1.0]
            for i in range(len(mprec) - 2, -1, -1):
                mprec[i] = max(mprec[i], mprec[i + 1])
            ap[t, c] = sum((mrec[i] - mrec[i - 1]) * mprec[i] for i in range(1, len(mrec)) if mrec[i] != mrec[i - 1])
    return ap, classes
