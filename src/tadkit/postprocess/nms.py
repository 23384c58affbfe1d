"""Non-maximum suppression for temporal segments: hard NMS and Soft-NMS, batched over classes.

Definitions (IoU is :func:`tadkit.core.segment_iou`'s, with a zero union read as IoU 0):

* **Hard NMS** -- repeatedly keep the highest-scoring remaining segment and discard every
  remaining segment of the same class whose IoU with it is ``>= iou_threshold``.
* **Soft-NMS** (Bodla et al., ICCV 2017; the variant ActionFormer runs) -- repeatedly keep the
  highest-scoring remaining segment ``m`` (its score as it stands is its final score) and decay
  every remaining segment ``i`` of the same class::

      gaussian: s_i <- s_i * exp(-IoU(m, i)^2 / sigma)
      linear:   s_i <- s_i * (1 - IoU(m, i))   if IoU(m, i) >= iou_threshold, else unchanged

  A segment whose score falls below ``min_score`` is discarded. Scores only decrease, so the
  kept segments of one class come out in non-increasing score order.

The comparison ``>=`` and the drop rule ``score < min_score`` are those of ActionFormer's
``nms_1d_cpu`` (itself from mmcv).

**Determinism.** Among equal current scores the candidate that comes first in the input is
picked first; outputs are sorted by decreasing score with ties broken by input position (a
stable sort). The sequential references in ``tests/postprocess/test_nms.py`` follow the same
rules and agree with this module exactly.

**Batched over classes.** Per-class NMS is the same greedy loop run independently in every
class, so all classes advance together: candidates are laid out as a padded ``(G, M)`` table
(one row per class, rows ordered by class size), and each iteration picks the current maximum
of *every* row at once and decays all rows at once. The Python loop therefore runs
``max_c n_c`` times (the largest class), not ``sum_c n_c`` times, and rows that are exhausted
drop out of the table. With ``max_detections`` set, a row is retired as soon as its best
remaining score is below the ``max_detections``-th best kept score so far -- its later picks
cannot reach the final top-k (scores only decrease) -- which usually ends Soft-NMS after a few
dozen iterations. This early exit changes nothing in the output.
"""
from __future__ import annotations

from typing import Mapping

import numpy as np

from ..core.errors import ConfigError
from ..core.instances import Instances

__all__ = ["nms", "soft_nms", "batched_nms", "postprocess_detections", "postprocess_videos",
           "segment_voting", "NMS_METHODS"]

#: Values accepted for ``method`` in :func:`postprocess_detections`.
NMS_METHODS = ("soft", "hard", "none")
_SOFT_KINDS = ("gaussian", "linear")

#: Defaults (METHODS.md, "Inference"): ActionFormer's THUMOS14 test settings.
DEFAULT_SIGMA = 0.5
DEFAULT_PRE_TOPK = 2000
DEFAULT_MIN_SCORE = 1e-3
DEFAULT_MAX_DETECTIONS = 200
#: Hard NMS IoU threshold (common TAD practice).
DEFAULT_HARD_IOU = 0.5
#: Linear Soft-NMS IoU threshold (ActionFormer's ``iou_threshold``; the Gaussian ignores it).
DEFAULT_SOFT_IOU = 0.1


# --------------------------------------------------------------------------------------------
# the batched greedy engine
# --------------------------------------------------------------------------------------------
class _Table:
    """Candidates laid out as a padded ``(R, M)`` table: one row per group, columns in input order.

    Rows are sorted by decreasing number of live candidates ``bound`` (a row can make at most
    that many more picks). Padding and removed candidates have score ``-inf``.
    """

    def __init__(self, rows: np.ndarray, starts, ends, lengths, scores, index):
        # rows: (K,) row of each live candidate, the candidates given row-major in input order
        _, inv, counts = np.unique(rows, return_inverse=True, return_counts=True)
        row_order = np.argsort(-counts, kind="stable")                 # new row r <- old row_order[r]
        new_row = np.empty_like(row_order)
        new_row[row_order] = np.arange(len(row_order))
        r = new_row[inv.reshape(-1)]                                   # (K,)
        order = np.argsort(r, kind="stable")                           # keeps input order within a row
        r = r[order]
        self.bound = counts[row_order]                                 # (R,) non-increasing
        first = np.cumsum(self.bound) - self.bound
        c = np.arange(len(r)) - first[r]
        R, M = len(self.bound), int(self.bound[0])
        self.S = np.zeros((R, M))                                      # (R, M) starts
        self.E = np.zeros((R, M))                                      # (R, M) ends
        self.L = np.zeros((R, M))                                      # (R, M) lengths, end - start
        self.V = np.full((R, M), -np.inf)                              # (R, M) current scores
        self.I = np.full((R, M), -1, dtype=np.int64)                   # (R, M) input positions
        for dst, src in ((self.S, starts), (self.E, ends), (self.L, lengths), (self.V, scores), (self.I, index)):
            dst[r, c] = src[order]

    @classmethod
    def from_input(cls, segments, scores, groups, min_score):
        live = np.flatnonzero(scores >= min_score)
        s, e = segments[live, 0], segments[live, 1]
        return cls(groups[live], s, e, e - s, scores[live], live)

    def compacted(self, R: int) -> "_Table":
        """A new table holding only the live candidates of rows ``[:R]`` (column order kept)."""
        rr, cc = np.nonzero(self.V[:R] > -np.inf)                      # row-major: input order kept
        return _Table(rr, self.S[rr, cc], self.E[rr, cc], self.L[rr, cc], self.V[rr, cc], self.I[rr, cc])


def _greedy_batched(segments: np.ndarray, scores: np.ndarray, groups: np.ndarray, *, kind: str,
                    sigma: float, iou_threshold: float, min_score: float,
                    max_keep: int | None) -> tuple[np.ndarray, np.ndarray]:
    """Greedy (soft) NMS run independently inside every group, all groups at once.

    ``kind`` is ``"hard"``, ``"gaussian"`` or ``"linear"``. Candidates with a score below
    ``min_score`` are never kept. Returns ``(index, score)``: input positions of the kept
    candidates and their final scores, sorted by decreasing score then input position, cut to
    ``max_keep`` when given.
    """
    if max_keep is not None and max_keep <= 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0)
    if not np.any(scores >= min_score):
        return np.zeros(0, dtype=np.int64), np.zeros(0)
    tab = _Table.from_input(segments, scores, groups, min_score)
    # a zero union (two zero-length segments) gives IoU nan; only then must it be mended to 0
    zero_len = bool(np.any(segments[:, 1] == segments[:, 0]))

    kept_idx: list[np.ndarray] = []
    kept_score: list[np.ndarray] = []
    top = np.zeros(0)            # the best max_keep kept scores so far (when max_keep is set)
    kth = -np.inf                # the max_keep-th best kept score so far
    R = len(tab.bound)           # active rows are the prefix [:R]
    it = 0                       # iterations since the table was built
    compact_below = tab.V.size // 2
    with np.errstate(invalid="ignore", divide="ignore", over="ignore", under="ignore"):
        while True:
            # a row with n live candidates is exhausted after n picks; rows are sorted by n
            while R > 0 and tab.bound[R - 1] <= it:
                R -= 1
            if R == 0:
                break
            M = tab.V.shape[1]
            V = tab.V[:R]
            col = V.argmax(axis=1)                                 # first maximum: input order breaks ties
            flat = np.arange(R) * M + col                          # (R,) position of each row's pick
            best = V.ravel()[flat]                                 # (R,)
            ok = best >= kth if max_keep is not None else best > -np.inf
            if not ok.all():
                if not ok.any():
                    break
                V[~ok] = -np.inf                                   # exhausted, or cannot reach the top max_keep
                while not ok[R - 1]:                               # drop trailing retired rows
                    R -= 1
                ok, flat, best, V = ok[:R], flat[:R], best[:R], tab.V[:R]
                new_idx, new_score = tab.I.ravel()[flat[ok]], best[ok]
            else:
                new_idx, new_score = tab.I.ravel()[flat], best
            kept_idx.append(new_idx)
            kept_score.append(new_score)

            # IoU of each row's pick with every candidate of its row, as segment_iou computes it
            ps, pe, pl = tab.S.ravel()[flat], tab.E.ravel()[flat], tab.L.ravel()[flat]   # (R,)
            iou = np.minimum(pe[:, None], tab.E[:R])
            iou -= np.maximum(ps[:, None], tab.S[:R])              # intersection ...
            np.maximum(iou, 0.0, out=iou)
            union = tab.L[:R] + pl[:, None]
            union -= iou
            iou /= union                                           # ... over union: (R, M)
            if zero_len:
                iou[np.isnan(iou)] = 0.0                           # zero union -> no overlap
            V.ravel()[flat] = -np.inf                              # the picks leave the pool
            if kind == "gaussian":                                 # s *= exp(-iou^2 / sigma)
                np.multiply(iou, iou, out=iou)
                np.negative(iou, out=iou)
                iou /= sigma
                V *= np.exp(iou, out=iou)
            elif kind == "linear":                                 # s *= 1 - iou where iou >= threshold
                V *= np.where(iou >= iou_threshold, 1.0 - iou, 1.0)
            else:                                                  # hard: remove where iou >= threshold
                V[iou >= iou_threshold] = -np.inf
            if kind == "hard":
                live = V > -np.inf
            else:
                live = V >= min_score                              # also false for nan (-inf * 0)
                V[~live] = -np.inf
            it += 1

            if max_keep is not None:
                pool = np.concatenate((top, new_score))
                if len(pool) >= max_keep:
                    top = np.partition(pool, len(pool) - max_keep)[len(pool) - max_keep:]
                    kth = top[0]
                else:
                    top = pool

            # when at most half the table is live, rebuild it without the dead candidates
            n_live = int(np.count_nonzero(live))
            if n_live == 0:
                break
            if n_live <= compact_below:
                tab = tab.compacted(R)
                R, it = len(tab.bound), 0
                compact_below = min(tab.V.size, n_live) // 2

    if not kept_idx:
        return np.zeros(0, dtype=np.int64), np.zeros(0)
    idx = np.concatenate(kept_idx)
    sc = np.concatenate(kept_score)
    final = np.lexsort((idx, -sc))
    if max_keep is not None:
        final = final[:max_keep]
    return idx[final], sc[final]


def _check_common(instances: Instances, name: str) -> None:
    if not isinstance(instances, Instances):
        raise TypeError(f"{name}: expected Instances, got {type(instances).__name__}")
    if len(instances) and not np.isfinite(instances.scores).all():
        raise ValueError(f"{name}: scores must be finite (found NaN or inf)")
    if len(instances) and not np.isfinite(instances.segments).all():
        raise ValueError(f"{name}: segments must be finite (found NaN or inf)")


def _groups(instances: Instances, class_agnostic: bool) -> np.ndarray:
    return np.zeros(len(instances), dtype=np.int64) if class_agnostic else instances.labels


def _check_max(max_detections):
    if max_detections is not None and int(max_detections) < 0:
        raise ConfigError(f"max_detections must be >= 0 or None, got {max_detections!r}",
                          fix="set max_detections to a non-negative number")
    return None if max_detections is None else int(max_detections)


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
    _check_common(instances, "nms")
    max_detections = _check_max(max_detections)
    idx, sc = _greedy_batched(instances.segments, instances.scores, _groups(instances, class_agnostic),
                              kind="hard", sigma=1.0, iou_threshold=float(iou_threshold),
                              min_score=-np.inf, max_keep=max_detections)
    return Instances(instances.segments[idx], instances.labels[idx], sc)


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
    _check_common(instances, "soft_nms")
    if method not in _SOFT_KINDS:
        raise ConfigError(f"unknown Soft-NMS method {method!r}", fix=f"use one of {', '.join(_SOFT_KINDS)}")
    if not sigma > 0:
        raise ConfigError(f"Soft-NMS sigma must be > 0, got {sigma!r}", fix="set sigma, e.g. 0.5")
    max_detections = _check_max(max_detections)
    idx, sc = _greedy_batched(instances.segments, instances.scores, _groups(instances, class_agnostic),
                              kind=method, sigma=float(sigma), iou_threshold=float(iou_threshold),
                              min_score=float(min_score), max_keep=max_detections)
    return Instances(instances.segments[idx], instances.labels[idx], sc)


def segment_voting(kept: Instances, candidates: Instances, iou_threshold: float = 0.75, *,
                   class_agnostic: bool = False) -> Instances:
    """Refine kept segments by score-weighted voting (ActionFormer's ``seg_voting``).

    Each kept segment ``k`` becomes ``sum_j w_kj * seg_j / sum_j w_kj`` over the candidates
    ``j`` (the pre-NMS set, original scores) of the same class (any class if
    ``class_agnostic``), with ``w_kj = score_j * [IoU(k, j) >= iou_threshold]``. A kept segment
    with no voter (zero total weight) is unchanged. Labels and scores are unchanged.
    """
    if len(kept) == 0 or len(candidates) == 0:
        return Instances(kept.segments.copy(), kept.labels.copy(), kept.scores.copy())
    from ..core.segments import segment_iou
    iou = np.nan_to_num(segment_iou(kept.segments, candidates.segments), nan=0.0)     # (K, N)
    w = (iou >= iou_threshold) * candidates.scores[None, :]                          # (K, N)
    if not class_agnostic:
        w = w * (kept.labels[:, None] == candidates.labels[None, :])
    total = w.sum(axis=1)                                                            # (K,)
    with np.errstate(invalid="ignore", divide="ignore"):
        voted = (w @ candidates.segments) / total[:, None]                          # (K, 2)
    segs = np.where((total > 0)[:, None], voted, kept.segments)
    return Instances(segs, kept.labels.copy(), kept.scores.copy())


def postprocess_detections(instances: Instances, *, method: str = "soft", pre_topk: int | None = DEFAULT_PRE_TOPK,
                           min_score: float = DEFAULT_MIN_SCORE,
                           max_detections: int | None = DEFAULT_MAX_DETECTIONS, sigma: float = DEFAULT_SIGMA,
                           iou_threshold: float | None = None, soft_method: str = "gaussian",
                           class_agnostic: bool = False, voting_threshold: float | None = None) -> Instances:
    """The shared post-processing of one video's candidates.

    Steps (defaults from METHODS.md, "Inference", ActionFormer's settings):

    1. drop candidates with ``score < min_score`` (1e-3);
    2. keep the ``pre_topk`` (2000) best by score (stable: ties keep input order); ``None`` = all;
    3. NMS per class, batched over classes (``class_agnostic`` to let classes suppress each other):

       * ``method="soft"``: :func:`soft_nms`, Gaussian with ``sigma`` 0.5 (``soft_method="linear"``
         uses ``iou_threshold``, default 0.1); decayed scores below ``min_score`` are dropped;
       * ``method="hard"``: :func:`nms` with ``iou_threshold`` (default 0.5);
       * ``method="none"``: no suppression (PointTAD's set prediction);

    4. keep the ``max_detections`` (200) best; ``None`` = all;
    5. optionally refine the kept segments by :func:`segment_voting` over the step-2 candidates
       when ``voting_threshold`` is given (off by default).

    Returns instances sorted by decreasing score (ties: input order).
    """
    _check_common(instances, "postprocess_detections")
    if method not in NMS_METHODS:
        raise ConfigError(f"unknown NMS method {method!r}", fix=f"use one of {', '.join(NMS_METHODS)}")
    max_detections = _check_max(max_detections)
    if pre_topk is not None and int(pre_topk) < 0:
        raise ConfigError(f"pre_topk must be >= 0 or None, got {pre_topk!r}", fix="set pre_topk, e.g. 2000")

    keep = np.flatnonzero(instances.scores >= min_score)
    order = keep[np.argsort(-instances.scores[keep], kind="stable")]
    if pre_topk is not None:
        order = order[: int(pre_topk)]
    cand = instances[order]                                        # sorted by score, stable

    if method == "soft":
        thr = DEFAULT_SOFT_IOU if iou_threshold is None else iou_threshold
        out = soft_nms(cand, sigma=sigma, iou_threshold=thr, method=soft_method, min_score=min_score,
                       class_agnostic=class_agnostic, max_detections=max_detections)
    elif method == "hard":
        thr = DEFAULT_HARD_IOU if iou_threshold is None else iou_threshold
        out = nms(cand, iou_threshold=thr, class_agnostic=class_agnostic, max_detections=max_detections)
    else:
        out = cand if max_detections is None else cand[:max_detections]
    if voting_threshold is not None and voting_threshold > 0:
        out = segment_voting(out, cand, voting_threshold, class_agnostic=class_agnostic)
    return out


#: The batched per-class NMS with pre-top-k, min score and max detections (an alias).
batched_nms = postprocess_detections


def postprocess_videos(results: Mapping[str, Instances], **kwargs) -> dict[str, Instances]:
    """:func:`postprocess_detections` applied to every video of ``{video_id: Instances}``.

    Keyword arguments are those of :func:`postprocess_detections`. Videos keep their order.
    """
    return {vid: postprocess_detections(inst, **kwargs) for vid, inst in results.items()}
