"""Non-maximum suppression for temporal segments: hard NMS and Soft-NMS, batched over classes and videos.

Definitions (IoU is :func:`tadkit.core.segment_iou`'s, with a zero union read as IoU 0):

* **Hard NMS** -- repeatedly keep the highest-scoring remaining segment and discard every
  remaining segment of the same class whose IoU with it is ``>= iou_threshold``.
* **Soft-NMS** (Bodla et al., ICCV 2017; the variant ActionFormer runs) -- repeatedly keep the
  highest-scoring remaining segment ``m`` (its score as it stands is its final score) and decay
  every remaining segment ``i`` of the same class::

      gaussian: s_i <- s_i * exp(-IoU(m, i)^2 / sigma)
      linear:   s_i <- s_i * (1 - IoU(m, i))   if IoU(m, i) >= iou_threshold, else unchanged

  A segment whose score is, or falls, below ``min_score`` is discarded. Scores only decrease,
  so the kept segments of one class come out in non-increasing score order.

The comparison ``>=`` and the drop rule ``score < min_score`` are those of ActionFormer's
``nms_1d_cpu`` (itself from mmcv).

**Determinism.** Among equal current scores the candidate that comes first in the input is
picked first; outputs are sorted by decreasing score with ties broken by input position (a
stable sort). The sequential references in ``tests/postprocess/test_nms.py`` follow the same
rules and agree with this module exactly.

**Batched over classes and videos.** Per-class NMS is the same greedy loop run independently in
every (video, class) group, so all groups advance together. The candidates are held as flat
arrays sorted by group (input order within a group); each round takes the current maximum of
*every* group at once (a segmented ``maximum.reduceat``) and decays every group at once. The
Python loop therefore runs ``max_g n_g`` times (the largest group), not ``sum_g n_g`` times, and
each round costs time linear in the live candidates (no padding); the arrays are rebuilt without
dead candidates whenever at most half are live. Only candidates overlapping a pick are touched
by the decay (IoU 0 changes no score, so this is exact; hard NMS at threshold 0, where IoU 0
suppresses, keeps each group's best and is handled apart). With ``max_detections``
set, a group is retired as soon as its best remaining score is below the ``max_detections``-th
best score kept so far *in its video* -- its later picks cannot reach that video's final top-k
(scores only decrease) -- which usually ends Soft-NMS after a few dozen rounds; this early exit
changes nothing in the output. :func:`postprocess_videos` runs many videos through one pass (in
batches of at most ``_BATCH_CELLS`` candidates, so memory stays bounded), which is several times
faster per video than one call per video.
"""
from __future__ import annotations

import numbers
from typing import Iterator, Mapping, Sequence

import numpy as np

from ..core.errors import ConfigError, DataError
from ..core.instances import Instances
from ..core.segments import segment_iou

__all__ = ["nms", "soft_nms", "batched_nms", "postprocess_detections", "postprocess_videos",
           "segment_voting", "NMS_METHODS", "SOFT_METHODS"]

#: Values accepted for ``method`` in :func:`postprocess_detections`.
NMS_METHODS = ("soft", "hard", "none")
#: Values accepted for ``method`` in :func:`soft_nms` (``soft_method`` in :func:`postprocess_detections`).
SOFT_METHODS = ("gaussian", "linear")

#: Defaults (METHODS.md, "Inference"): ActionFormer's THUMOS14 test settings.
DEFAULT_SIGMA = 0.5
DEFAULT_PRE_TOPK = 2000
DEFAULT_MIN_SCORE = 1e-3
DEFAULT_MAX_DETECTIONS = 200
#: Hard NMS IoU threshold (common TAD practice).
DEFAULT_HARD_IOU = 0.5
#: Linear Soft-NMS IoU threshold (ActionFormer's ``iou_threshold``; the Gaussian ignores it).
DEFAULT_SOFT_IOU = 0.1
#: ActionFormer's ``voting_thresh`` (segment voting is off unless asked for).
DEFAULT_VOTING_IOU = 0.75
#: Most candidates (and top-k cells) in one greedy pass; :func:`postprocess_videos` batches videos up
#: to it (about 8 MB per float64 array).
_BATCH_CELLS = 1 << 20


# --------------------------------------------------------------------------------------------
# argument checks (shared by the post-processing modules)
# --------------------------------------------------------------------------------------------
def check_instances(inst, where: str, video: str | None = None) -> None:
    """A :class:`DataError` unless ``inst`` is an :class:`Instances` of finite, well-ordered segments."""
    if not isinstance(inst, Instances):
        raise DataError(f"{where}: expected Instances, got {type(inst).__name__}", video=video,
                        fix="pass tadkit.core.Instances(segments, labels, scores)")
    if not np.isfinite(inst.scores).all():
        raise DataError(f"{where}: scores must be finite (found NaN or inf)", video=video,
                        fix="check the detector's outputs")
    segs = inst.segments
    if not np.isfinite(segs).all():
        raise DataError(f"{where}: segments must be finite (found NaN or inf)", video=video,
                        fix="check the detector's outputs")
    bad = np.flatnonzero(segs[:, 1] < segs[:, 0])
    if len(bad):
        s, e = segs[bad[0]]
        raise DataError(f"{where}: {len(bad)} segment(s) end before they start, e.g. [{s:g}, {e:g}]",
                        video=video, fix="give segments as [start, end] with start <= end")


def check_count(name: str, value, *, allow_none: bool = True, fix: str | None = None) -> int | None:
    """``value`` as a whole number ``>= 0`` (``None`` passes when ``allow_none``), else :class:`ConfigError`."""
    if value is None and allow_none:
        return None
    ok = not isinstance(value, bool) and (isinstance(value, numbers.Integral) or
                                          (isinstance(value, numbers.Real) and float(value).is_integer()))
    if not ok or value < 0:
        raise ConfigError(f"{name} must be a whole number >= 0{' or None' if allow_none else ''}, got {value!r}",
                          fix=fix)
    return int(value)


def check_real(name: str, value, lo: float = -np.inf, hi: float = np.inf, *, lo_open: bool = False,
               hi_open: bool = False, fix: str | None = None, error: type = ConfigError,
               video: str | None = None) -> float:
    """``value`` as a float in the interval ``lo..hi`` (open ends as flagged), else ``error`` (a ConfigError)."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        v = np.nan
    if isinstance(value, bool) or np.isnan(v) or v < lo or v > hi or (lo_open and v == lo) or (hi_open and v == hi):
        interval = f"{'(' if lo_open else '['}{lo:g}, {hi:g}{')' if hi_open else ']'}"
        raise error(f"{name} must be a number in {interval}, got {value!r}", fix=fix, video=video)
    return v


def check_choice(name: str, value, choices: Sequence[str]) -> str:
    if value not in choices:
        raise ConfigError(f"unknown {name} {value!r}", fix=f"use one of {', '.join(map(repr, choices))}")
    return value


# --------------------------------------------------------------------------------------------
# the batched greedy engine
# --------------------------------------------------------------------------------------------
def _rank_within(sorted_keys: np.ndarray) -> np.ndarray:
    """Position of each element among the equal keys before it, for keys sorted ascending."""
    return np.arange(len(sorted_keys)) - np.searchsorted(sorted_keys, sorted_keys, side="left")


class _Pool:
    """The live candidates as flat arrays, grouped in rows (one per group), input order within a row.

    ``row`` (n,) is each candidate's row, non-decreasing; ``starts`` (R,) where each row begins;
    ``budget`` (R,) the budget group (video) of each row and ``slot`` (R,) its rank among the rows
    of that budget group. Removed candidates keep their place with score ``-inf`` until
    :meth:`compacted` drops them, so no row is ever empty.
    """

    def __init__(self, keys: np.ndarray, budget: np.ndarray, starts, ends, scores, index):
        # keys, budget: (n,) group and budget group of each candidate, candidates in input order
        order = np.argsort(keys, kind="stable")                        # rows, input order kept within
        k = keys[order]
        new = np.ones(len(k), dtype=bool)
        new[1:] = k[1:] != k[:-1]
        self.starts = np.flatnonzero(new)                              # (R,)
        self.counts = np.diff(self.starts, append=len(k))              # (R,) candidates per row
        self.row = np.cumsum(new) - 1                                  # (n,)
        self.budget = budget[order[self.starts]]                       # (R,)
        by_budget = np.argsort(self.budget, kind="stable")
        self.slot = np.empty_like(by_budget)                           # (R,)
        self.slot[by_budget] = _rank_within(self.budget[by_budget])
        self.nslots = int(self.slot.max()) + 1
        self.S, self.E = starts[order], ends[order]                    # (n,) segment ends
        self.L = self.E - self.S                                       # (n,) lengths
        self.V = scores[order]                                         # (n,) current scores
        self.I = index[order]                                          # (n,) input positions

    @classmethod
    def from_input(cls, segments, scores, groups, budget, min_score):
        live = np.flatnonzero(scores >= min_score)
        return cls(groups[live], budget[live], segments[live, 0], segments[live, 1], scores[live], live)

    def compacted(self) -> "_Pool":
        """A new pool holding only the live candidates (order kept; rows left empty vanish)."""
        live = np.flatnonzero(self.V > -np.inf)
        row = self.row[live]
        return _Pool(row, self.budget[row], self.S[live], self.E[live], self.V[live], self.I[live])


def _empty_result() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return np.zeros(0, dtype=np.int64), np.zeros(0), np.zeros(0, dtype=np.int64)


def _greedy_batched(segments: np.ndarray, scores: np.ndarray, groups: np.ndarray, budget: np.ndarray, *,
                    kind: str, sigma: float, iou_threshold: float, min_score: float,
                    max_keep: int | None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Greedy (soft) NMS run independently inside every group, all groups at once.

    ``kind`` is ``"hard"``, ``"gaussian"`` or ``"linear"``. ``groups`` (N,) says which candidates
    suppress each other; ``budget`` (N,) (ids ``0..B-1``, constant within a group) says over which
    candidates ``max_keep`` counts. Candidates with a score below ``min_score`` are never kept.
    Returns ``(index, score, budget)`` of the kept candidates sorted by budget group, then
    decreasing score, then input position; at most ``max_keep`` per budget group when given.
    """
    if (max_keep is not None and max_keep <= 0) or not np.any(scores >= min_score):
        return _empty_result()
    pool = _Pool.from_input(segments, scores, groups, budget, min_score)
    if max_keep is not None:
        width = min(max_keep, int(np.bincount(budget).max()))
        top = np.full((int(budget.max()) + 1, width), -np.inf)    # (B, width) best kept scores, per budget group
        kth = top[:, 0]                                            # (B,) the max_keep-th best kept so far

    kept_idx, kept_score, kept_budget = [], [], []
    with np.errstate(invalid="ignore", under="ignore"):
        while True:
            V, counts, R = pool.V, pool.counts, len(pool.starts)
            best = np.maximum.reduceat(V, pool.starts)             # (R,) each row's current maximum
            ok = best > -np.inf
            if max_keep is not None:
                ok &= best >= kth[pool.budget]                     # else it cannot reach its video's top max_keep
            if not ok.any():
                break
            hits = np.flatnonzero(V == np.repeat(best, counts))
            pick = hits[np.searchsorted(pool.row[hits], np.arange(R))]   # (R,) first maximum: input order
            if not ok.all():
                V[np.repeat(~ok, counts)] = -np.inf                # retire the rows that cannot contribute
            kept_idx.append(pool.I[pick[ok]])
            kept_score.append(best[ok])
            kept_budget.append(pool.budget[ok])
            if max_keep is not None:                               # merge the picks into each group's top
                fresh = np.full((len(top), pool.nslots), -np.inf)
                fresh[pool.budget[ok], pool.slot[ok]] = best[ok]
                top = np.partition(np.concatenate((top, fresh), axis=1), pool.nslots, axis=1)[:, pool.nslots:]
                kth = top[:, 0]
            V[pick] = -np.inf                                      # the picks leave the pool

            if kind == "hard" and iou_threshold <= 0.0:            # IoU >= 0 everywhere: the rows are done
                V[:] = -np.inf
                break
            # intersection of each row's pick with every candidate of its row; only overlapping
            # candidates (inter > 0) can change: IoU 0 leaves a score as it is under every rule
            inter = np.minimum(np.repeat(pool.E[pick], counts), pool.E)
            inter -= np.maximum(np.repeat(pool.S[pick], counts), pool.S)
            hit = np.flatnonzero(inter > 0.0)                      # (h,)
            if len(hit):
                inter = inter[hit]
                union = pool.L[hit] + np.repeat(pool.L[pick], counts)[hit]
                union -= inter
                iou = inter / union                                # (h,) as segment_iou computes it
                if kind == "gaussian":                             # s *= exp(-iou^2 / sigma)
                    V[hit] *= np.exp(-(iou * iou) / sigma)
                elif kind == "linear":                             # s *= 1 - iou where iou >= threshold
                    sel = iou >= iou_threshold
                    V[hit[sel]] *= 1.0 - iou[sel]
                else:                                              # hard: remove where iou >= threshold
                    V[hit[iou >= iou_threshold]] = -np.inf
                if kind != "hard":
                    low = ~(V[hit] >= min_score)                   # also catches nan (-inf * 0)
                    V[hit[low]] = -np.inf

            # when at most half the pool is live, rebuild it without the dead candidates
            n_live = int(np.count_nonzero(V > -np.inf))
            if n_live == 0:
                break
            if n_live <= len(V) // 2:
                pool = pool.compacted()

    if not kept_idx:
        return _empty_result()
    idx, sc, b = np.concatenate(kept_idx), np.concatenate(kept_score), np.concatenate(kept_budget)
    final = np.lexsort((idx, -sc, b))
    if max_keep is not None:
        final = final[_rank_within(b[final]) < max_keep]
    return idx[final], sc[final], b[final]


def _groups(labels: np.ndarray, video: np.ndarray, class_agnostic: bool) -> np.ndarray:
    """One id per (video, class) pair -- per video only when ``class_agnostic``."""
    if class_agnostic or len(labels) == 0:
        return video.copy()
    lo = int(labels.min())
    return video * (int(labels.max()) - lo + 1) + (labels - lo)


def _run_single(instances: Instances, where: str, *, kind: str, sigma: float, iou_threshold: float,
                min_score: float, class_agnostic: bool, max_detections) -> Instances:
    check_instances(instances, where)
    max_keep = check_count("max_detections", max_detections, fix="set max_detections, e.g. 200")
    iou_threshold = check_real("iou_threshold", iou_threshold, 0.0, 1.0, fix="an IoU lies in [0, 1]")
    zeros = np.zeros(len(instances), dtype=np.int64)
    idx, sc, _ = _greedy_batched(instances.segments, instances.scores,
                                 _groups(instances.labels, zeros, class_agnostic), zeros, kind=kind, sigma=sigma,
                                 iou_threshold=iou_threshold, min_score=min_score, max_keep=max_keep)
    return Instances(instances.segments[idx], instances.labels[idx], sc)


# --------------------------------------------------------------------------------------------
# public functions
# --------------------------------------------------------------------------------------------
def nms(instances: Instances, iou_threshold: float = DEFAULT_HARD_IOU, *, class_agnostic: bool = False,
        max_detections: int | None = None) -> Instances:
    """Hard NMS, per class (all classes in one batched pass).

    Repeatedly keeps the highest-scoring remaining segment and removes the remaining segments
    of its class with ``IoU >= iou_threshold``. Classes never suppress each other unless
    ``class_agnostic``. Scores are unchanged. Returns the kept instances sorted by decreasing
    score (ties: input order), at most ``max_detections`` of them when given.
    """
    return _run_single(instances, "nms", kind="hard", sigma=1.0, iou_threshold=iou_threshold, min_score=-np.inf,
                       class_agnostic=class_agnostic, max_detections=max_detections)


def soft_nms(instances: Instances, sigma: float = DEFAULT_SIGMA, iou_threshold: float = DEFAULT_SOFT_IOU, *,
             method: str = "gaussian", min_score: float = DEFAULT_MIN_SCORE, class_agnostic: bool = False,
             max_detections: int | None = None) -> Instances:
    """Soft-NMS (Bodla et al. 2017), per class (all classes in one batched pass).

    Repeatedly takes the highest-scoring remaining segment ``m`` (kept with its current score)
    and decays every remaining segment ``i`` of its class:

    * ``method="gaussian"`` (default): ``s_i *= exp(-IoU(m, i)**2 / sigma)``, ``sigma=0.5``;
      ``iou_threshold`` is unused.
    * ``method="linear"``: ``s_i *= 1 - IoU(m, i)`` when ``IoU(m, i) >= iou_threshold``
      (default 0.1, ActionFormer's value).

    Segments whose score is (or falls) below ``min_score`` (default 1e-3) are dropped. Returns
    the kept instances with their decayed scores, sorted by decreasing score (ties: input order),
    at most ``max_detections`` of them when given (the result is the same as cutting the full
    output, only faster).
    """
    check_choice("Soft-NMS method", method, SOFT_METHODS)
    sigma = check_real("Soft-NMS sigma", sigma, 0.0, np.inf, lo_open=True, hi_open=True, fix="e.g. 0.5")
    min_score = check_real("min_score", min_score, fix="e.g. 1e-3")
    return _run_single(instances, "soft_nms", kind=method, sigma=sigma, iou_threshold=iou_threshold,
                       min_score=min_score, class_agnostic=class_agnostic, max_detections=max_detections)


def segment_voting(kept: Instances, candidates: Instances, iou_threshold: float = DEFAULT_VOTING_IOU, *,
                   class_agnostic: bool = False) -> Instances:
    """Refine kept segments by score-weighted voting (ActionFormer's ``seg_voting``).

    Each kept segment ``k`` becomes ``sum_j w_kj * seg_j / sum_j w_kj`` over the candidates
    ``j`` (the pre-NMS set, original scores) of the same class (any class if
    ``class_agnostic``, which is the only mode ActionFormer votes in), with
    ``w_kj = score_j * [IoU(k, j) >= iou_threshold]``. A kept segment with no voter (zero total
    weight) is unchanged. Labels and scores are unchanged.
    """
    check_instances(kept, "segment_voting (kept)")
    check_instances(candidates, "segment_voting (candidates)")
    iou_threshold = check_real("voting iou_threshold", iou_threshold, 0.0, 1.0, lo_open=True,
                               fix=f"e.g. {DEFAULT_VOTING_IOU}")
    if len(kept) == 0 or len(candidates) == 0:
        return Instances(kept.segments.copy(), kept.labels.copy(), kept.scores.copy())
    iou = np.nan_to_num(segment_iou(kept.segments, candidates.segments), nan=0.0)     # (K, N)
    w = (iou >= iou_threshold) * candidates.scores[None, :]                          # (K, N)
    if not class_agnostic:
        w = w * (kept.labels[:, None] == candidates.labels[None, :])
    total = w.sum(axis=1)                                                            # (K,)
    with np.errstate(invalid="ignore", divide="ignore"):
        voted = (w @ candidates.segments) / total[:, None]                          # (K, 2)
    segs = np.where((total > 0)[:, None], voted, kept.segments)
    return Instances(segs, kept.labels.copy(), kept.scores.copy())


def _video_batches(bounds: np.ndarray, max_keep: int | None) -> Iterator[tuple[int, int]]:
    """Consecutive video ranges ``[v0, v1)`` whose candidates (and top-k bookkeeping) fit in ``_BATCH_CELLS``.

    ``bounds`` (V + 1,): video ``v``'s candidates are ``[bounds[v], bounds[v + 1])``.
    """
    sizes = np.diff(bounds)
    start, n, widest = 0, 0, 0
    for v, size in enumerate(sizes.tolist()):                          # scalar bookkeeping, one step a video
        w = max(widest, min(size, max_keep or 0))
        if v > start and max(n + size, (v + 1 - start) * w) > _BATCH_CELLS:
            yield start, v
            start, n, w = v, 0, min(size, max_keep or 0)
        n, widest = n + size, w
    yield start, len(sizes)


def _postprocess(videos: Sequence[Instances], names: Sequence[str | None], *, method: str = "soft",
                 pre_topk: int | None = DEFAULT_PRE_TOPK, min_score: float = DEFAULT_MIN_SCORE,
                 max_detections: int | None = DEFAULT_MAX_DETECTIONS, sigma: float = DEFAULT_SIGMA,
                 iou_threshold: float | None = None, soft_method: str = "gaussian", class_agnostic: bool = False,
                 voting_threshold: float | None = None) -> list[Instances]:
    """:func:`postprocess_detections` of many videos at once (see there); one output per input."""
    check_choice("NMS method", method, NMS_METHODS)
    check_choice("Soft-NMS method", soft_method, SOFT_METHODS)
    for inst, name in zip(videos, names):
        check_instances(inst, "postprocess", video=name)
    pre_topk = check_count("pre_topk", pre_topk, fix="set pre_topk, e.g. 2000")
    max_keep = check_count("max_detections", max_detections, fix="set max_detections, e.g. 200")
    min_score = check_real("min_score", min_score, fix="e.g. 1e-3")
    sigma = check_real("Soft-NMS sigma", sigma, 0.0, np.inf, lo_open=True, hi_open=True, fix="e.g. 0.5")
    if iou_threshold is None:
        iou_threshold = DEFAULT_HARD_IOU if method == "hard" else DEFAULT_SOFT_IOU
    iou_threshold = check_real("iou_threshold", iou_threshold, 0.0, 1.0, fix="an IoU lies in [0, 1]")
    if voting_threshold is not None:
        voting_threshold = check_real("voting_threshold", voting_threshold, 0.0, 1.0,
                                      fix=f"0 or None turns voting off; ActionFormer uses {DEFAULT_VOTING_IOU}")

    # all videos in one set of arrays: (N,) each, video ids 0..V-1
    n_videos = len(videos)
    video = np.repeat(np.arange(n_videos), [len(x) for x in videos])
    segs = np.concatenate([x.segments for x in videos] + [np.zeros((0, 2))])
    labels = np.concatenate([x.labels for x in videos] + [np.zeros(0, dtype=np.int64)])
    scores = np.concatenate([x.scores for x in videos] + [np.zeros(0)])

    # steps 1-2: min score, then the pre_topk best of each video (stable: ties keep input order)
    keep = np.flatnonzero(scores >= min_score)
    cand = keep[np.lexsort((keep, -scores[keep], video[keep]))]     # by video, score, input position
    if pre_topk is not None:
        cand = cand[_rank_within(video[cand]) < pre_topk]
    c_segs, c_labels, c_scores, c_video = segs[cand], labels[cand], scores[cand], video[cand]
    cand_bounds = np.searchsorted(c_video, np.arange(n_videos + 1))  # video v: [cand_bounds[v], cand_bounds[v+1])

    # steps 3-4: NMS in every (video, class) group, at most max_keep kept per video
    if method == "none":
        pos = np.arange(len(cand))
        if max_keep is not None:
            pos = pos[_rank_within(c_video) < max_keep]
        out_scores = c_scores[pos]
    else:
        kind = soft_method if method == "soft" else "hard"
        floor = min_score if method == "soft" else -np.inf
        groups = _groups(c_labels, c_video, class_agnostic)
        parts = []
        for v0, v1 in _video_batches(cand_bounds, max_keep):
            a, b = cand_bounds[v0], cand_bounds[v1]
            idx, sc, _ = _greedy_batched(c_segs[a:b], c_scores[a:b], groups[a:b], c_video[a:b] - v0, kind=kind,
                                         sigma=sigma, iou_threshold=iou_threshold, min_score=floor,
                                         max_keep=max_keep)
            parts.append((idx + a, sc))
        pos = np.concatenate([p for p, _ in parts] + [np.zeros(0, dtype=np.int64)])
        out_scores = np.concatenate([s for _, s in parts] + [np.zeros(0)])

    # split per video; step 5: optional segment voting against each video's candidates
    out_bounds = np.searchsorted(c_video[pos], np.arange(n_videos + 1))
    results = []
    for v in range(n_videos):
        sel = slice(out_bounds[v], out_bounds[v + 1])
        out = Instances(c_segs[pos[sel]], c_labels[pos[sel]], out_scores[sel])
        if voting_threshold:
            cs = slice(cand_bounds[v], cand_bounds[v + 1])
            out = segment_voting(out, Instances(c_segs[cs], c_labels[cs], c_scores[cs]), voting_threshold,
                                 class_agnostic=class_agnostic)
        results.append(out)
    return results


def postprocess_detections(instances: Instances, *, method: str = "soft", pre_topk: int | None = DEFAULT_PRE_TOPK,
                           min_score: float = DEFAULT_MIN_SCORE,
                           max_detections: int | None = DEFAULT_MAX_DETECTIONS, sigma: float = DEFAULT_SIGMA,
                           iou_threshold: float | None = None, soft_method: str = "gaussian",
                           class_agnostic: bool = False, voting_threshold: float | None = None) -> Instances:
    """The shared post-processing of one video's candidates.

    Steps (defaults from METHODS.md, "Inference", ActionFormer's settings):

    1. drop candidates with ``score < min_score`` (1e-3);
    2. keep the ``pre_topk`` (2000) best by score (stable: ties keep input order); ``None`` = all
       (ActionFormer applies its top-k per pyramid level inside the model; here it bounds the
       merged set of a video);
    3. NMS per class, batched over classes (``class_agnostic`` to let classes suppress each other):

       * ``method="soft"``: :func:`soft_nms`, Gaussian with ``sigma`` 0.5 (``soft_method="linear"``
         uses ``iou_threshold``, default 0.1); decayed scores below ``min_score`` are dropped;
       * ``method="hard"``: :func:`nms` with ``iou_threshold`` (default 0.5);
       * ``method="none"``: no suppression (PointTAD's set prediction);

    4. keep the ``max_detections`` (200) best; ``None`` = all;
    5. optionally refine the kept segments by :func:`segment_voting` over the step-2 candidates
       when ``voting_threshold`` is given (``None`` or 0: off, the default; ActionFormer's 0.75).

    Returns instances sorted by decreasing score (ties: input order). Bad values raise
    :class:`ConfigError`; bad instances :class:`DataError`.
    """
    return _postprocess([instances], [None], method=method, pre_topk=pre_topk, min_score=min_score,
                        max_detections=max_detections, sigma=sigma, iou_threshold=iou_threshold,
                        soft_method=soft_method, class_agnostic=class_agnostic,
                        voting_threshold=voting_threshold)[0]


#: The batched per-class NMS with pre-top-k, min score and max detections (an alias).
batched_nms = postprocess_detections


def postprocess_videos(results: Mapping[str, Instances], **kwargs) -> dict[str, Instances]:
    """:func:`postprocess_detections` of every video of ``{video_id: Instances}``, batched over videos.

    All videos go through one greedy table (in batches bounded in memory), so the Python loop
    runs once per round of the largest (video, class) group, not once per video. Keyword
    arguments are those of :func:`postprocess_detections`; ``max_detections`` and ``pre_topk``
    count per video. The output equals calling :func:`postprocess_detections` on each video;
    videos keep their order.
    """
    names = list(results)
    unknown = sorted(set(kwargs) - set(_POSTPROCESS_KEYS))
    if unknown:
        raise ConfigError(f"postprocess_videos: unknown argument(s) {', '.join(unknown)}",
                          fix=f"use {', '.join(_POSTPROCESS_KEYS)}")
    return dict(zip(names, _postprocess([results[n] for n in names], names, **kwargs)))


_POSTPROCESS_KEYS = ("method", "pre_topk", "min_score", "max_detections", "sigma", "iou_threshold", "soft_method",
                     "class_agnostic", "voting_threshold")
