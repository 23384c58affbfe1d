"""Detection mAP, exactly as the ActivityNet reference evaluation computes it — only faster.

The protocol (``Evaluation/eval_detection.py`` of the ActivityNet challenge):

- per class, predictions are visited in the order ``np.argsort(scores)[::-1]`` of the
  class's predictions as they appear in the file (ties resolve by that very call);
- for each prediction and each threshold independently, the ground truths of the same
  video are visited by decreasing tIoU (order ``np.argsort(tiou)[::-1]``): a tIoU below
  the threshold makes a false positive, a ground truth already taken at this threshold
  is skipped, the first free one is taken (true positive);
- AP is the all-point interpolated area under the precision envelope; mAP averages the
  classes that have ground truth in the subset.

Equivalently, a prediction is a true positive at threshold ``t`` iff the first ground truth
*not yet taken* in its visiting order has tIoU >= ``t`` (a NaN tIoU, from a zero-length
prediction on a zero-length ground truth, sorts first and passes every test, as in the
reference). Ground truths of different (class, video) pairs never compete, so all pairs
are matched at once: round ``r`` handles the ``r``-th prediction of every pair, vectorised
over pairs and thresholds. The visiting order of a prediction's ground truths is computed
vectorised; only where two relevant tIoUs tie exactly is the reference's own ``argsort``
call repeated on that row, so the outcome is the reference's to the last bit.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..core.segments import segment_iou_matched


@dataclass
class DetectionTable:
    """Flat arrays, one row per instance, in file order. ``video`` and ``label`` are ints."""

    video: np.ndarray
    segments: np.ndarray   # (N, 2)
    label: np.ndarray
    score: np.ndarray | None = None

    def __len__(self):
        return len(self.video)


def _interpolated_ap(prec: np.ndarray, rec: np.ndarray) -> float:
    """All-point interpolated AP (VOC 2011), computed term by term as the reference does."""
    mprec = np.hstack([[0], prec, [0]])
    mrec = np.hstack([[0], rec, [1]])
    mprec = np.maximum.accumulate(mprec[::-1])[::-1]
    idx = np.where(mrec[1::] != mrec[0:-1])[0] + 1
    return float(np.sum((mrec[idx] - mrec[idx - 1]) * mprec[idx]))


def group_rank(keys: np.ndarray, n_groups: int) -> np.ndarray:
    """Rank of each element among the elements of its group (``keys`` in 0..n_groups-1), in array order."""
    order = np.argsort(keys, kind="stable")
    counts = np.bincount(keys, minlength=n_groups)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    rank = np.empty(len(keys), dtype=np.int64)
    rank[order] = np.arange(len(keys)) - np.repeat(starts, counts)
    return rank


def match_ground_truth(gt_video, gt_seg, gt_label, p_video, p_seg, p_label, tiou) -> np.ndarray:
    """ActivityNet matching, recording the ground truth each true positive takes.

    Predictions must come in visiting order (rank order within each class). Returns ``matched``
    of shape ``(len(tiou), P)``: the index of the matched ground truth, or -1. All (class, video)
    pairs are matched at once, round ``r`` handling the ``r``-th prediction of every pair.
    """
    tiou = np.asarray(tiou, dtype=np.float64)
    T, P, K = len(tiou), len(p_video), len(gt_video)
    matched = np.full((T, P), -1, dtype=np.int64)
    if P == 0 or K == 0:
        return matched
    n_vid = int(max(gt_video.max(), p_video.max())) + 1
    gkey = gt_label * n_vid + gt_video
    keys, gid = np.unique(gkey, return_inverse=True)
    gid = gid.reshape(-1)
    NG = len(keys)
    grank = group_rank(gid, NG)
    maxg = int(grank.max()) + 1
    pad_gt = np.full((NG, maxg), -1, dtype=np.int64)
    pad_gt[gid, grank] = np.arange(K)
    pad_seg = np.zeros((NG, maxg, 2))
    pad_seg[gid, grank] = gt_seg
    pad_valid = pad_gt >= 0

    pkey = p_label * n_vid + p_video
    pos = np.minimum(np.searchsorted(keys, pkey), NG - 1)
    m = np.nonzero(keys[pos] == pkey)[0]
    if len(m) == 0:
        return matched
    mg = pos[m]
    mrank = group_rank(mg, NG)

    iou = segment_iou_matched(p_seg[m][:, None, :], pad_seg[mg])            # (M, maxg); NaN where union is 0
    valid = pad_valid[mg]
    key = np.where(valid, np.where(np.isnan(iou), np.inf, iou), -np.inf)      # NaN sorts first, as in argsort[::-1]
    visit = np.argsort(-key, axis=1, kind="stable")
    key_sorted = np.take_along_axis(key, visit, axis=1)
    # rows where two tIoUs that matter tie exactly: the reference's own argsort()[::-1] decides
    rel = key_sorted[:, 1:] >= tiou.min()
    for r in np.nonzero(np.any(rel & (key_sorted[:, 1:] == key_sorted[:, :-1]), axis=1))[0]:
        n = int(valid[r].sum())
        visit[r, :n] = iou[r, :n].argsort()[::-1]
        visit[r, n:] = np.arange(n, maxg)
        key_sorted[r] = key[r, visit[r]]
    valid_sorted = np.take_along_axis(valid, visit, axis=1)

    taken = np.zeros((T, NG, maxg), dtype=bool)
    round_order = np.argsort(mrank, kind="stable")
    round_bounds = np.concatenate([[0], np.cumsum(np.bincount(mrank))])
    thr = tiou[:, None]
    for r in range(len(round_bounds) - 1):
        rows = round_order[round_bounds[r]:round_bounds[r + 1]]
        g = mg[rows]
        v = visit[rows]
        free = ~taken[:, g[:, None], v] & valid_sorted[rows][None]            # (T, k, maxg)
        first = free.argmax(axis=2)                                          # (T, k)
        hit = free.any(axis=2) & (key_sorted[rows][np.arange(len(rows))[None, :], first] >= thr)
        t_i, k_i = np.nonzero(hit)
        col = v[k_i, first[t_i, k_i]]
        taken[t_i, g[k_i], col] = True
        matched[t_i, m[rows[k_i]]] = pad_gt[g[k_i], col]
    return matched


def match_detections(gt: DetectionTable, pred: DetectionTable, tiou: np.ndarray,
                     num_classes: int) -> tuple[np.ndarray, list[np.ndarray], np.ndarray]:
    """Greedy matching of the reference protocol, all classes at once.

    Returns ``tp`` of shape ``(len(tiou), P)`` over predictions arranged class by class,
    each class in reference order; the per-class index arrays into ``pred`` giving that
    arrangement; and per-class boundaries ``bounds`` (``bounds[c]:bounds[c+1]``).
    """
    tiou = np.asarray(tiou, dtype=np.float64)
    # Per class, the reference's own sort of that class's scores (file order in, ties as it breaks them).
    by_class = np.argsort(pred.label, kind="stable")
    counts = np.bincount(pred.label, minlength=num_classes) if len(pred) else np.zeros(num_classes, int)
    bounds = np.concatenate([[0], np.cumsum(counts)])
    class_orders = []
    for c in range(num_classes):
        idx = by_class[bounds[c]:bounds[c + 1]]
        class_orders.append(idx[pred.score[idx].argsort()[::-1]] if len(idx) else idx)
    order = np.concatenate(class_orders) if class_orders else np.zeros(0, dtype=np.int64)
    matched = match_ground_truth(gt.video, gt.segments, gt.label, pred.video[order], pred.segments[order],
                                 pred.label[order], tiou)
    return matched >= 0, class_orders, bounds


def average_precision(gt: DetectionTable, pred: DetectionTable, tiou: np.ndarray,
                      num_classes: int) -> np.ndarray:
    """AP of shape ``(len(tiou), num_classes)``; a class without ground truth gets NaN."""
    tiou = np.asarray(tiou, dtype=np.float64)
    tp, _, bounds = match_detections(gt, pred, tiou, num_classes)
    npos = np.bincount(gt.label, minlength=num_classes).astype(np.float64) if len(gt) else np.zeros(num_classes)
    ap = np.zeros((len(tiou), num_classes))
    for c in range(num_classes):
        if npos[c] == 0:
            ap[:, c] = np.nan
            continue
        a, b = bounds[c], bounds[c + 1]
        if a == b:
            continue
        tpc = tp[:, a:b].astype(np.float64)
        tp_cum = np.cumsum(tpc, axis=1)
        fp_cum = np.cumsum(1.0 - tpc, axis=1)
        rec = tp_cum / npos[c]
        prec = tp_cum / (tp_cum + fp_cum)
        for t in range(len(tiou)):
            ap[t, c] = _interpolated_ap(prec[t], rec[t])
    return ap


def recall_at_k(gt: DetectionTable, pred: DetectionTable, tiou: np.ndarray, ks,
                class_aware: bool = True) -> np.ndarray:
    """Fraction of ground truths hit by one of the top-``k`` predictions of their video.

    A ground truth counts as recalled at threshold ``t`` when some prediction among the
    ``k`` highest-scoring of its video (of the same class, unless ``class_aware`` is
    False) has tIoU >= ``t`` with it; no one-to-one matching (the ActivityNet proposal
    recall). Returns ``(len(ks), len(tiou))``.
    """
    tiou = np.asarray(tiou, dtype=np.float64)
    ks = [int(k) for k in ks]
    out = np.zeros((len(ks), len(tiou)))
    if len(gt) == 0:
        return out * np.nan
    # rank of each prediction within its video, by decreasing score (stable)
    order = np.lexsort((-pred.score, pred.video)) if len(pred) else np.zeros(0, dtype=np.int64)
    pv = pred.video[order]
    vstart = np.searchsorted(pv, pv, side="left")
    prank = np.arange(len(order)) - vstart
    best = np.full((len(ks), len(gt)), -np.inf)    # best tIoU over the top-k, per gt
    for v in np.unique(gt.video):
        gi = np.nonzero(gt.video == v)[0]
        lo, hi = np.searchsorted(pv, v, "left"), np.searchsorted(pv, v, "right")
        if lo == hi:
            continue
        sel = order[lo:hi]
        iou = segment_iou_matched(gt.segments[gi][:, None, :], pred.segments[sel][None, :, :])  # (g, p)
        iou = np.nan_to_num(iou, nan=1.0)
        if class_aware:
            iou = np.where(gt.label[gi][:, None] == pred.label[sel][None, :], iou, -np.inf)
        for j, k in enumerate(ks):
            within = prank[lo:hi] < k
            if within.any():
                best[j, gi] = iou[:, within].max(axis=1)
    out = (best[:, :, None] >= tiou[None, None, :]).mean(axis=1)
    return out
