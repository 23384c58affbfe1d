"""Error diagnosis of a detector in the manner of DETAD (Alwassel et al., "Diagnosing Error in
Temporal Action Detectors", ECCV 2018), on any dataset: what ``tadkit diagnose`` runs.

No torch here, numpy only. Past reading the files (tadkit's loaders) and turning video ids and
labels into integer codes, the computation is vectorised over predictions: the Python loops run
over classes, bins, matching rounds and tIoU thresholds, never over detections. Each definition
below names the file of DETAD's public code (``src/`` of its repository) that it follows.

Ground truth and predictions (``action_detector_diagnosis.py``: ``_import_ground_truth``,
``_import_prediction``)
    The ground truth is that of one subset (chosen as ``tadkit eval`` chooses it). As DETAD does,
    instances of length <= 0 (start >= end) and instances longer than their video (coverage > 1)
    are left out, with a warning. Classes are those with ground truth, in order of first
    appearance. Predictions are read with tadkit's loader: ids match with or without a ``v_``
    prefix; predictions of videos without ground truth in the subset stay in (all their errors
    are background errors); predictions whose label has no ground truth in the subset are left
    out with a warning (they cannot change any class's AP; DETAD stops on them).

Ranking
    Per class, predictions are visited in the order ``np.argsort(scores)[::-1]`` of that class's
    predictions in file order, as in the ActivityNet evaluation (:mod:`.detection`). The same
    order serves the top-``10G`` limit, the bands, the matching and every AP below. DETAD ranks
    with pandas (``nlargest``, ``sort_values``), whose order among exactly equal scores can
    differ; with distinct scores within a class the two agree.

G, the average number of instances per class (``action_detector_diagnosis.py``: ``__init__``)
    ``G = (number of ground-truth instances) // (number of classes)``: DETAD's release computes
    ``len(ground_truth) / len(activity_index)`` under Python 2, an integer division (rounded
    down). It is reported as ``"G"`` and is the ``average_num_instance_per_class`` of every
    normalised AP below.

Matching (``compute_average_precision_detection``)
    For each tIoU threshold separately, predictions of a class are visited in rank order; the
    ground truths of that class in the prediction's video are visited by decreasing tIoU
    (``np.argsort(tiou)[::-1]``); a tIoU below the threshold ends the visit (false positive), a
    ground truth already matched at this threshold is skipped, and the first free one is
    matched (true positive). This is the ActivityNet matching of :mod:`.detection`, here also
    recording which ground truth each true positive took.

Normalised AP, AP_N, and average-mAP_N (``compute_average_precision_detection`` with
``normalize_ap=True``)
    Over a class's ranked predictions, with ``tp``/``fp`` the cumulative counts and ``N_j`` the
    class's ground-truth count: ``recall = tp / N_j``, ``precision_N = recall * G / (recall * G +
    fp)``. AP_N is the all-point interpolated area under that curve (VOC 2011: the precision
    envelope, summed over the recall steps). mAP_N averages AP_N over classes (a class without
    predictions has AP_N 0) and average-mAP_N averages mAP_N over the thresholds.
    ``minimum_normalized_precision_threshold_for_detection`` is 0 in the false-positive and
    sensitivity analyses (it then changes nothing) and 0.05 in the false-negative analysis (see
    there).

False-positive profile (``false_positive_analysis.py``: ``main`` with ``limit_factor=10``,
``split_predictions_by_score_ranges``; ``analyze_fp_error_types``)
    Only the top ``10 * N_j`` predictions of each class ``j`` are analysed (``_limit_prediction``);
    since matching is greedy in rank order, their matches are those of the full list. At each
    threshold ``t``, a prediction is a *true positive* when matched. Otherwise it is judged against
    the ground truth of *any* class in its video with the highest tIoU (the first such in file
    order on ties, ``argmax``): tIoU >= ``t`` -> *double detection* when that ground truth has the
    prediction's label (it was taken by a higher-ranked prediction), else *wrong label*;
    ``min_tiou`` (0.1) <= tIoU < ``t`` -> *localization* error (same label) or *confusion* error
    (other label); tIoU < 0.1, or no ground truth in the video -> *background* error. (DETAD's
    loop means the latter; for the second and later predictions of a video without ground truth
    it compares against the previously visited video's ground truth, a slip not reproduced.)
    Band ``kG`` pools, over classes, the predictions ranked ``[(k-1) N_j, k N_j)`` within their
    class; each type's fraction of the band is averaged over the thresholds (DETAD averages the
    counts over thresholds and divides by the band's size: the same). A band with no prediction
    is ``None`` (JSON ``null``).

Removing-error gain (``action_detector_diagnosis.py``: ``diagnose``)
    For an error type ``e`` and each threshold, the top-``10G`` predictions of type ``e`` at that
    threshold are *removed* (not turned into true positives; the remaining predictions keep
    their match), AP_N is recomputed per class and threshold, and the gain is the mean of those
    APs minus the average-mAP_N of the top-``10G`` predictions (``"average_mAP_N"``).

Characteristics and bins (``action_detector_diagnosis.py``: ``characteristic_names_to_bins``;
``false_negative_analysis.py`` / ``sensitivity_analysis.py``: ``main``)
    Per ground-truth instance: *coverage* = length / video duration; *length* in seconds;
    *num_instances* = the number of instances of the same class in its video (DETAD's "# instances";
    DETAD reads these from its augmented annotation files, here they are computed). Binning is
    ``pandas.cut(..., include_lowest=True)``: intervals ``(a, b]``, the first one ``[a, b]``; a
    value in no interval belongs to no bin. DETAD's two bin sets:

    ==============  =================================  ===============================
    characteristic  ActivityNet (``"activitynet"``)    THUMOS14 (``"thumos14"``)
    ==============  =================================  ===============================
    coverage        linspace(0, 1, 6): XS S M L XL     0 .02 .04 .06 .08 1: XS S M L XL
    length (s)      0 30 60 120 180 inf: XS S M L XL   0 3 6 12 18 inf: XS S M L XL
    num_instances   -1 1 4 8 inf: XS S M L             -1 1 40 80 inf: XS S M L
    ==============  =================================  ===============================

    ``bins="auto"`` (the default) chooses per characteristic: the first of DETAD's sets, in the
    order ActivityNet then THUMOS14, that *fits* the data -- every instance falls in a bin and no
    bin holds more than 80 % of the instances (``FIT_MAX_SHARE``); when neither fits, bins from
    the data's quantiles (``"quantile"``): edges at the 0, 20, ..., 100 % quantiles of the
    instances' values (0, 25, ..., 100 % for num_instances), repeated edges merged, labels XS, S,
    M, L, XL taken in order. ``bins`` may also name one rule for all characteristics, or map a
    characteristic to a rule or to ``(edges, labels)``. The chosen edges and rule are reported
    (an infinite edge is written ``null``).

False-negative analysis (``false_negative_analysis.py``: ``fn_distribution_by_characteristic``)
    All predictions (no limit) are matched; a true positive whose normalised precision at its
    rank is <= 0.05 (``minimum_normalized_precision_threshold_for_detection``) does not count.
    Per threshold, a ground truth matched by no counted prediction is a false negative; a bin's
    false-negative rate is its false negatives over its instances, averaged over the
    thresholds. A bin without instances is ``None``.

Sensitivity (``sensitivity_analysis.py``: ``compute_average_mAP_N_for_characteristic``,
``compute_mAP_N``)
    All predictions, matched with threshold 0. For a bin ``b`` and a class ``j`` with ground
    truth in ``b``: the class's predictions matched, at any threshold, to one of its ground
    truths outside ``b`` are dropped (for all thresholds); at each threshold the rest are true
    positives when matched, AP_N uses ``N_j`` = the class's instances in ``b`` (and the global
    ``G``); the class's value is the mean over thresholds. The bin's average-mAP_N is the mean
    over the classes with ground truth in ``b`` (``None`` when there are none); a class without
    any prediction counts 0 (DETAD stops there). ``"base_average_mAP_N"`` is the average-mAP_N of
    all predictions.
"""
from __future__ import annotations

import math
from collections import OrderedDict

import numpy as np

from ..core.errors import ConfigError, DataError
from ..core.segments import segment_iou_matched
from .api import _as_annotations, _as_predictions, choose_subset
from .detection import group_rank, match_ground_truth
from .tiou import parse_tiou

ERROR_TYPES = ("true_positive", "double_detection", "wrong_label", "localization", "confusion", "background")
TRUE_POSITIVE, DOUBLE_DETECTION, WRONG_LABEL, LOCALIZATION, CONFUSION, BACKGROUND = range(6)
CHARACTERISTICS = ("coverage", "length", "num_instances")
FIT_MAX_SHARE = 0.8
LABELS5 = ("XS", "S", "M", "L", "XL")
LABELS4 = ("XS", "S", "M", "L")

# DETAD's bin sets (false_negative_analysis.py / sensitivity_analysis.py, `main`), edges as it builds them.
DETAD_BINS = {
    "activitynet": {
        "coverage": (np.linspace(0, 1.0, 6), LABELS5),
        "length": (np.array([0, 30, 60, 120, 180, np.inf]), LABELS5),
        "num_instances": (np.array([-1, 1, 4, 8, np.inf]), LABELS4),
    },
    "thumos14": {
        "coverage": (np.array([0, 0.02, 0.04, 0.06, 0.08, 1]), LABELS5),
        "length": (np.array([0, 3, 6, 12, 18, np.inf]), LABELS5),
        "num_instances": (np.array([-1, 1, 40, 80, np.inf]), LABELS4),
    },
}
BIN_RULES = ("auto", "activitynet", "thumos14", "quantile")


# ------------------------------------------------------------------------------ preparation
class _Case:
    """The subset's ground truth and the predictions, as flat arrays; predictions in rank order."""

    def __init__(self, gt, pred, subset, tiou):
        self.warnings: list[str] = []
        ann = _as_annotations(gt)
        preds = _as_predictions(pred)
        self.tiou = parse_tiou(tiou)
        self.subset, note = choose_subset(ann, preds, subset)
        if note:
            self.warnings.append(note)
        video_index: dict[str, int] = {}
        class_index: dict[str, int] = {}
        gv, gs, gl, gd = [], [], [], []
        n_short = n_long = n_all = 0
        for v in ann.select(self.subset):
            vi = video_index.setdefault(v.video_id, len(video_index))
            for (s, e), lab in zip(v.segments, v.labels):
                n_all += 1
                if not s < e:
                    n_short += 1
                    continue
                if (e - s) / v.duration > 1.0:
                    n_long += 1
                    continue
                gv.append(vi)
                gs.append((s, e))
                gl.append(class_index.setdefault(lab, len(class_index)))
                gd.append(v.duration)
        if n_short:
            self.warnings.append(f"{n_short} ground-truth instances of length <= 0 are left out, as DETAD does")
        if n_long:
            self.warnings.append(f"{n_long} ground-truth instances longer than their video (coverage > 1) "
                                 "are left out, as DETAD does")
        if not gv:
            raise DataError(f"subset {self.subset!r} has no usable ground-truth instance "
                            f"({n_all} annotated)", path=ann.path,
                            fix=f"diagnose a subset with annotations; the subsets are {ann.subsets}")
        self.classes = list(class_index)
        self.gt_video = np.array(gv, dtype=np.int64)
        self.gt_seg = np.array(gs, dtype=np.float64).reshape(-1, 2)
        self.gt_label = np.array(gl, dtype=np.int64)
        self.gt_duration = np.array(gd, dtype=np.float64)
        C = len(self.classes)
        self.npos = np.bincount(self.gt_label, minlength=C)
        self.G = len(gv) // C

        # each distinct video id and label is resolved once, then mapped with numpy
        vid_names = list(dict.fromkeys(preds.videos))
        vid_code = {v: i for i, v in enumerate(vid_names)}
        unknown_videos, other_subset = set(), set()
        vid_to_index = np.empty(len(vid_names), dtype=np.int64)
        for i, vid in enumerate(vid_names):
            rid = ann.resolve(vid)
            if rid is None:
                unknown_videos.add(vid)
                rid = vid
            elif ann.videos[rid].subset != self.subset:
                other_subset.add(rid)
            vid_to_index[i] = video_index.setdefault(rid, len(video_index))
        lab_names = list(dict.fromkeys(preds.labels))
        lab_code = {lab: i for i, lab in enumerate(lab_names)}
        lab_to_class = np.array([class_index.get(lab, -1) for lab in lab_names], dtype=np.int64)
        p_vid = np.array([vid_code[v] for v in preds.videos], dtype=np.int64)
        p_lab = np.array([lab_code[lab] for lab in preds.labels], dtype=np.int64)
        label_all = lab_to_class[p_lab] if len(p_lab) else np.zeros(0, dtype=np.int64)
        keep = np.nonzero(label_all >= 0)[0]
        pl = label_all[keep]
        pv = vid_to_index[p_vid[keep]] if len(keep) else np.zeros(0, dtype=np.int64)
        unknown_labels = {lab: int(n) for lab, n in zip(lab_names, np.bincount(p_lab, minlength=len(lab_names)))
                          if class_index.get(lab) is None}
        if len(preds) and len(unknown_videos) == len(vid_names):
            raise DataError(f"none of the {len(unknown_videos)} predicted videos is in the annotation file "
                            f"(e.g. {sorted(unknown_videos)[:3]})", path=preds.path,
                            fix=f"check that {ann.path or 'the annotations'} and the predictions belong together")
        if unknown_videos:
            self.warnings.append(f"{len(unknown_videos)} predicted videos are not in the annotations "
                                 f"(e.g. {sorted(unknown_videos)[:3]}); their predictions are background errors")
        if other_subset:
            self.warnings.append(f"{len(other_subset)} predicted videos belong to another subset than "
                                 f"{self.subset!r}; their predictions are background errors")
        if unknown_labels:
            n = sum(unknown_labels.values())
            self.warnings.append(f"{n} predictions have labels without ground truth in {self.subset!r} "
                                 f"(e.g. {sorted(unknown_labels)[:3]}); they are left out")
        label = pl.astype(np.int64)
        video = pv.astype(np.int64)
        score = preds.scores[keep] if len(keep) else np.zeros(0)
        seg = preds.segments[keep]
        # rank order: class by class, each class as np.argsort(scores)[::-1] of its file-order predictions
        by_class = np.argsort(label, kind="stable")
        counts = np.bincount(label, minlength=C)
        self.bounds = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        parts = []
        for c in range(C):
            idx = by_class[self.bounds[c]:self.bounds[c + 1]]
            parts.append(idx[score[idx].argsort()[::-1]])
        order = np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)
        self.p_video, self.p_label, self.p_seg = video[order], label[order], seg[order]
        self.p_rank = np.arange(len(order)) - np.repeat(self.bounds[:-1], counts)   # rank within the class
        self.n_videos = len(video_index)


# ------------------------------------------------------------------------------ AP_N
def normalized_ap(tp: np.ndarray, npos, G, keep: np.ndarray | None = None) -> np.ndarray:
    """AP_N along the last axis of ``tp`` (ranked true-positive flags), for every leading index.

    ``keep`` (broadcastable to ``tp``) drops predictions: the result equals AP_N of the kept
    predictions alone (a dropped one changes neither count; its precision is set to 0, below the
    envelope, and the recall does not step there).
    """
    tp = np.asarray(tp, dtype=bool)
    if keep is not None:
        keep = np.broadcast_to(keep, tp.shape)
        tpk = tp & keep
        fpk = ~tp & keep
    else:
        tpk, fpk = tp, ~tp
    tp_cum = np.cumsum(tpk, axis=-1, dtype=np.float64)
    fp_cum = np.cumsum(fpk, axis=-1, dtype=np.float64)
    rec = tp_cum / npos
    with np.errstate(divide="ignore", invalid="ignore"):
        prec = rec * G / (rec * G + fp_cum)
    if keep is not None:
        prec = np.where(keep, prec, 0.0)
    shape = tp.shape[:-1]
    mprec = np.concatenate([np.zeros(shape + (1,)), prec, np.zeros(shape + (1,))], axis=-1)
    mrec = np.concatenate([np.zeros(shape + (1,)), rec, np.ones(shape + (1,))], axis=-1)
    env = np.maximum.accumulate(mprec[..., ::-1], axis=-1)[..., ::-1]
    step = mrec[..., 1:] - mrec[..., :-1]
    return np.where(step != 0, step * env[..., 1:], 0.0).sum(axis=-1)


def _normalized_precision(tp: np.ndarray, npos, G) -> np.ndarray:
    tp_cum = np.cumsum(tp, axis=-1, dtype=np.float64)
    fp_cum = np.cumsum(~tp, axis=-1, dtype=np.float64)
    rec = tp_cum / npos
    with np.errstate(divide="ignore", invalid="ignore"):
        return rec * G / (rec * G + fp_cum)


# ---------------------------------------------------------------------------- error types
def _best_overlap(case: _Case, sel: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For the predictions ``sel``: tIoU and label of the best-overlapping ground truth of any class
    in the video (the first in file order on ties), and whether the video has ground truth."""
    V = case.n_videos
    gv = case.gt_video
    vrank = group_rank(gv, V)
    maxv = int(vrank.max()) + 1
    pad_seg = np.zeros((V, maxv, 2))
    pad_lab = np.full((V, maxv), -1, dtype=np.int64)
    pad_seg[gv, vrank] = case.gt_seg
    pad_lab[gv, vrank] = case.gt_label
    has = np.bincount(gv, minlength=V) > 0
    top = np.full(len(sel), -np.inf)
    best_lab = np.full(len(sel), -1, dtype=np.int64)
    chunk = max(1, 4_000_000 // maxv)
    for a in range(0, len(sel), chunk):
        idx = sel[a:a + chunk]
        vids = case.p_video[idx]
        iou = segment_iou_matched(case.p_seg[idx][:, None, :], pad_seg[vids])
        iou = np.where(pad_lab[vids] >= 0, iou, -np.inf)
        b = iou.argmax(axis=1)                       # first maximum; a NaN wins, as np.argmax does
        r = np.arange(len(idx))
        top[a:a + chunk] = iou[r, b]
        best_lab[a:a + chunk] = pad_lab[vids, b]
    return top, best_lab, has[case.p_video[sel]]


def _error_types(case: _Case, sel: np.ndarray, matched: np.ndarray, min_tiou: float) -> np.ndarray:
    """DETAD's type (0..5) of each prediction in ``sel`` at each threshold, shape ``(T, len(sel))``."""
    top, best_lab, has = _best_overlap(case, sel)
    same = best_lab == case.p_label[sel]
    with np.errstate(invalid="ignore"):
        ge_min = top >= min_tiou
        ge_thr = top[None, :] >= case.tiou[:, None]
    types = np.where(ge_thr, np.where(same, DOUBLE_DETECTION, WRONG_LABEL),
                     np.where(ge_min, np.where(same, LOCALIZATION, CONFUSION), BACKGROUND))
    types = np.where(has[None, :], types, BACKGROUND)
    types = np.where(matched[:, sel] >= 0, TRUE_POSITIVE, types)
    return types.astype(np.int8)


# ----------------------------------------------------------------------------------- bins
def _cut(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """``pandas.cut(values, edges, include_lowest=True)`` as bin numbers; -1 outside every bin."""
    edges = np.asarray(edges, dtype=np.float64)
    idx = np.searchsorted(edges, values, side="left")
    idx = np.where(values == edges[0], 1, idx)
    return np.where((idx >= 1) & (idx < len(edges)), idx - 1, -1)


def _quantile_bins(values: np.ndarray, n: int) -> tuple[np.ndarray, tuple]:
    edges = np.unique(np.quantile(values, np.linspace(0, 1, n + 1)))
    if len(edges) == 1:
        edges = np.array([edges[0], edges[0]])
    labels = (LABELS4 if n == 4 else LABELS5)[:len(edges) - 1]
    return edges, labels


def _fits(ids: np.ndarray, nbins: int) -> bool:
    if np.any(ids < 0):
        return False
    share = np.bincount(ids, minlength=nbins) / len(ids)
    return bool(share.max() <= FIT_MAX_SHARE)


def _check_bins(name, spec):
    try:
        edges, labels = spec
        edges = np.asarray(edges, dtype=np.float64).reshape(-1)
        labels = tuple(str(x) for x in labels)
    except (TypeError, ValueError):
        raise ConfigError(f"bins for {name!r} must be (edges, labels) or one of {BIN_RULES}, got {spec!r}",
                          fix="give increasing edges and one label per interval") from None
    if len(edges) < 2 or np.any(np.isnan(edges)) or not np.all(np.diff(edges) > 0) or len(labels) != len(edges) - 1 \
            or len(set(labels)) != len(labels):
        raise ConfigError(f"bins for {name!r}: need at least 2 increasing edges and one distinct label per "
                          f"interval, got {spec!r}", fix="e.g. ([0, 30, 60, inf], ['S', 'M', 'L'])")
    return edges, labels


def resolve_bins(bins) -> dict:
    """Validate ``bins`` (a rule name, or a mapping characteristic -> rule or (edges, labels))."""
    if bins is None:
        bins = "auto"
    if isinstance(bins, str):
        bins = {name: bins for name in CHARACTERISTICS}
    if not isinstance(bins, dict):
        raise ConfigError(f"bins must be one of {BIN_RULES} or a mapping, got {bins!r}",
                          fix=f"pass one of {', '.join(BIN_RULES)}")
    unknown = sorted(set(bins) - set(CHARACTERISTICS))
    if unknown:
        raise ConfigError(f"unknown characteristic(s) {unknown} in bins", fix=f"use {', '.join(CHARACTERISTICS)}")
    out = {}
    for name in CHARACTERISTICS:
        spec = bins.get(name, "auto")
        if isinstance(spec, str):
            if spec not in BIN_RULES:
                raise ConfigError(f"unknown bin rule {spec!r} for {name!r}", fix=f"use one of {', '.join(BIN_RULES)}")
            out[name] = spec
        else:
            out[name] = _check_bins(name, spec)
    return out


def _choose_bins(name: str, values: np.ndarray, spec) -> tuple[np.ndarray, tuple, str]:
    n = 4 if name == "num_instances" else 5
    if not isinstance(spec, str):
        return spec[0], spec[1], "given"
    if spec in DETAD_BINS:
        edges, labels = DETAD_BINS[spec][name]
        return edges, labels, spec
    if spec == "auto":
        for rule in ("activitynet", "thumos14"):
            edges, labels = DETAD_BINS[rule][name]
            if _fits(_cut(values, edges), len(labels)):
                return edges, labels, rule
    edges, labels = _quantile_bins(values, n)
    return edges, labels, "quantile"


def _characteristics(case: _Case) -> dict[str, np.ndarray]:
    length = case.gt_seg[:, 1] - case.gt_seg[:, 0]
    key = case.gt_label * (case.n_videos + 1) + case.gt_video
    _, inv, cnt = np.unique(key, return_inverse=True, return_counts=True)
    return {"coverage": length / case.gt_duration, "length": length,
            "num_instances": cnt[inv.reshape(-1)].astype(np.float64)}


def _edges_json(edges) -> list:
    return [None if not math.isfinite(float(x)) else float(x) for x in edges]


# ------------------------------------------------------------------------------- diagnose
def diagnose(gt, pred, subset: str | None = None, tiou="activitynet", *, limit_factor: int = 10,
             min_tiou: float = 0.1, bins="auto", fn_min_precision: float = 0.05) -> dict:
    """DETAD's false-positive, false-negative and sensitivity analyses (see the module docstring).

    ``gt`` and ``pred`` are file paths, dicts or loaded objects, as for
    :func:`tadkit.evaluation.api.evaluate_files`; ``tiou`` what ``tadkit eval --tiou`` takes.
    Returns a JSON-ready dict (``None`` where a value is undefined).
    """
    if isinstance(limit_factor, bool) or not isinstance(limit_factor, (int, np.integer)) or limit_factor < 1:
        raise ConfigError(f"limit_factor must be a positive integer, got {limit_factor!r}", fix="e.g. 10")
    if not 0 <= float(min_tiou) <= 1:
        raise ConfigError(f"min_tiou must lie in [0, 1], got {min_tiou!r}", fix="e.g. 0.1")
    if not 0 <= float(fn_min_precision) < 1:
        raise ConfigError(f"fn_min_precision must lie in [0, 1), got {fn_min_precision!r}", fix="e.g. 0.05")
    bin_specs = resolve_bins(bins)
    tiou = parse_tiou(tiou)
    case = _Case(gt, pred, subset, tiou)
    T, C, G = len(case.tiou), len(case.classes), case.G
    bounds, npos = case.bounds, case.npos
    matched = match_ground_truth(case.gt_video, case.gt_seg, case.gt_label, case.p_video, case.p_seg,
                                 case.p_label, case.tiou)
    tp_all = matched >= 0
    p_npos = npos[case.p_label]

    # --- false-positive analysis on the top limit_factor * N_j of each class
    limited = case.p_rank < limit_factor * p_npos
    sel = np.nonzero(limited)[0]
    types = _error_types(case, sel, matched, float(min_tiou)) if len(sel) else np.zeros((T, 0), np.int8)
    band = case.p_rank[sel] // p_npos[sel]
    profile = []
    for k in range(limit_factor):
        in_band = band == k
        n = int(in_band.sum())
        if n == 0:
            profile.append(None)
            continue
        bt = types[:, in_band].astype(np.int64)
        counts = np.stack([np.bincount(bt[t], minlength=6) for t in range(T)])      # (T, 6)
        frac = counts.mean(axis=0) / n
        profile.append({"band": f"{k + 1}G", "num_predictions": n,
                        "fractions": {name: float(frac[i]) for i, name in enumerate(ERROR_TYPES)}})

    ap_lim = np.zeros((T, C))
    ap_removed = np.zeros((5, T, C))
    sel_bounds = np.searchsorted(sel, bounds)            # sel is sorted: class blocks of the limited set
    err_codes = np.arange(1, 6)[:, None, None]
    for c in range(C):
        a, b = sel_bounds[c], sel_bounds[c + 1]
        if a == b:
            continue
        tp = tp_all[:, sel[a:b]]
        ap_lim[:, c] = normalized_ap(tp, npos[c], G)
        ap_removed[:, :, c] = normalized_ap(np.broadcast_to(tp, (5,) + tp.shape), npos[c], G,
                                            keep=types[None, :, a:b] != err_codes)
    average_map_lim = float(ap_lim.mean())
    gains = {name: float(ap_removed[i].mean() - average_map_lim) for i, name in enumerate(ERROR_TYPES[1:])}

    # --- characteristics and bins
    values = _characteristics(case)
    chosen = {name: _choose_bins(name, values[name], bin_specs[name]) for name in CHARACTERISTICS}
    gt_bin = {name: _cut(values[name], chosen[name][0]) for name in CHARACTERISTICS}

    # --- false negatives: all predictions; true positives under the normalised-precision floor do not count
    K = len(case.gt_video)
    detected = np.zeros((T, K), dtype=bool)
    ap_full = np.zeros((T, C))
    for c in range(C):
        a, b = bounds[c], bounds[c + 1]
        if a == b:
            continue
        tp = tp_all[:, a:b]
        ap_full[:, c] = normalized_ap(tp, npos[c], G)
        counted = tp & (_normalized_precision(tp, npos[c], G) > fn_min_precision)
        t_i, p_i = np.nonzero(counted)
        detected[t_i, matched[t_i, a + p_i]] = True
    missed = (~detected).astype(np.float64)                                    # (T, K)

    false_negative: dict = OrderedDict()
    sensitivity: dict = OrderedDict()
    for name in CHARACTERISTICS:
        edges, labels, rule = chosen[name]
        ids = gt_bin[name]
        B = len(labels)
        n_in = np.bincount(ids[ids >= 0], minlength=B)
        fn_rate = {}
        for bi, lab in enumerate(labels):
            inside = ids == bi
            fn_rate[lab] = float((missed[:, inside].sum(axis=1) / n_in[bi]).mean()) if n_in[bi] else None
        head = {"rule": rule, "edges": _edges_json(edges), "labels": list(labels),
                "num_ground_truth": {lab: int(n_in[bi]) for bi, lab in enumerate(labels)}}
        false_negative[name] = dict(head, false_negative_rate=fn_rate)

        # sensitivity: per class, per bin
        npos_cb = np.zeros((C, B), dtype=np.int64)
        np.add.at(npos_cb, (case.gt_label[ids >= 0], ids[ids >= 0]), 1)
        ap_cb = np.full((C, B), np.nan)
        bin_of_match = np.where(matched >= 0, ids[np.maximum(matched, 0)], -2)  # -2: unmatched; -1: in no bin
        codes = np.arange(B)[:, None, None]
        for c in range(C):
            have = npos_cb[c] > 0
            if not have.any():
                continue
            a, b = bounds[c], bounds[c + 1]
            if a == b:
                ap_cb[c, have] = 0.0
                continue
            bm = bin_of_match[:, a:b][None]                                      # (1, T, n)
            in_b = bm == codes                                                   # (B, T, n)
            keep = np.all(in_b | (bm == -2), axis=1)                             # (B, n)
            denom = np.maximum(npos_cb[c], 1)[:, None, None]
            ap = normalized_ap(in_b, denom, G, keep=keep[:, None, :]).mean(axis=1)   # (B,)
            ap_cb[c, have] = ap[have]
        with np.errstate(invalid="ignore"):
            by_bin = {}
            for bi, lab in enumerate(labels):
                col = ap_cb[:, bi]
                col = col[~np.isnan(col)]
                by_bin[lab] = float(col.mean()) if len(col) else None
        sensitivity[name] = dict(head, average_mAP_N=by_bin)
    false_negative["min_normalized_precision"] = float(fn_min_precision)
    sensitivity["base_average_mAP_N"] = float(ap_full.mean())

    return {
        "subset": case.subset,
        "tiou": [float(t) for t in case.tiou],
        "G": int(G),
        "num_classes": C,
        "num_ground_truth": int(K),
        "num_predictions": int(len(case.p_video)),
        "limit_factor": int(limit_factor),
        "min_tiou": float(min_tiou),
        "num_predictions_analyzed": int(len(sel)),
        "mAP_N": [float(x) for x in ap_lim.mean(axis=1)],
        "average_mAP_N": average_map_lim,
        "false_positive_profile": profile,
        "removing_error_gain": gains,
        "false_negative": false_negative,
        "sensitivity": sensitivity,
        "warnings": case.warnings,
    }
