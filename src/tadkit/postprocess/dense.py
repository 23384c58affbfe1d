"""Sparse detections <-> dense per-frame class scores (PointTAD, Tan et al. NeurIPS 2022).

Frame grid. ``T`` frames (in practice one per feature step); frame ``t`` covers the interval
``[t, t + 1)`` of grid units. Segments in other units (seconds, feature units) are mapped onto
the grid by ``rate`` = frames per segment unit (``T / duration`` for segments in seconds,
which is what PointTAD's notebook does), so a segment ``[s, e]`` covers frames
``int(s * rate) <= t < int(e * rate)``. Dense arrays are ``(T, C)``, as in the paper's
``S in R^{T x C}``.

**Sparse -> dense, Eq. (14)** of the paper::

    S_final = beta * sum_n 1[c_n > gamma] * Gaussian(psi_n) + (1 - beta) * S

The paper leaves ``Gaussian(psi_n)`` informal; the authors' notebook (``multithumos_dense.ipynb``,
``sparse2dense``) makes it precise, and :func:`sparse_to_dense` follows it:

1. keep detections with score ``c_n > gamma`` (``gamma`` 0.01, the paper's optimal value);
2. ``B[t, c]`` = the **max** score of the kept class-``c`` detections covering frame ``t``
   (0 where none; ``combine="sum"`` sums them instead, the literal reading of Eq. 14's sum);
3. smooth along time with a Gaussian kernel of ``sigma`` = 3 frames scaled by ``gain`` = 5::

       D[t, c] = gain * sum_u N(t + eval_offset; mean=u, std=sigma) * B[u, c]

   (the notebook evaluates frame ``t`` at ``t + 1``, i.e. ``eval_offset=1``; we default to the
   unshifted 0). Terms farther than ``truncate`` (8) sigmas, below 1.3e-14 of the peak, are
   skipped; ``truncate=None`` sums them all.

   Frames a detection covers outside ``[0, T)`` are ignored (the notebook would also spread
   those; detections clipped to the video, as :func:`tadkit.postprocess.to_seconds` leaves
   them, give the same result).

The max of step 2 is the authors' code; Eq. 14's sum over ``n`` read literally adds the boxes
of overlapping same-class detections, which ``combine="sum"`` does. The paper's numbers come
from the code, hence the default.

:func:`fuse_sparse_dense` then returns ``beta * D + (1 - beta) * S`` with the dense head's
``S``; the paper uses beta 0.2 on MultiTHUMOS and 0.96 on Charades.

**Dense -> sparse, Eq. (15)** (the conversion the paper applies to dense baselines, after
Yeung et al.): per class, every maximal run of consecutive frames with ``p > threshold``
becomes a segment ``[first, last + 1]`` (grid units, divided by ``rate``), scored::

    score(C, p_1..p_Lf) = (sum_i p_i) * exp(-0.01 * (L_f - mu_C)^2 / sigma_C^2)      (Eq. 15)

with ``mu_C, sigma_C`` the mean and standard deviation of class-``C`` action lengths in the
training set, in frames (:func:`class_duration_stats`). Without those statistics the score is
the run's mean ``p`` (``scoring="mean"``).
"""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from ..core.errors import ConfigError, DataError
from ..core.instances import Instances
from .nms import check_choice, check_count, check_instances, check_real

__all__ = ["sparse_to_dense", "fuse_sparse_dense", "dense_to_sparse", "class_duration_stats",
           "gaussian_kernel"]

#: PointTAD defaults (paper Sec. 4.1 and the authors' notebook): gamma, the Gaussian's sigma in frames, its gain.
DEFAULT_GAMMA = 0.01
DEFAULT_SIGMA = 3.0
DEFAULT_GAIN = 5.0


def _frame_span(segments: np.ndarray, rate: float, num_frames: int) -> tuple[np.ndarray, np.ndarray]:
    """First and one-past-last covered frame of each segment: ``int(s*rate)``, ``int(e*rate)``, clipped."""
    a = np.trunc(segments[:, 0] * rate)      # int() truncates toward zero, as in the notebook
    b = np.trunc(segments[:, 1] * rate)
    a = np.clip(a, 0, num_frames).astype(np.int64)
    b = np.clip(b, 0, num_frames).astype(np.int64)
    return a, np.maximum(a, b)


def _check_dense(scores, where: str) -> np.ndarray:
    P = np.asarray(scores, dtype=np.float64)
    if P.ndim != 2:
        raise DataError(f"{where}: per-frame scores must be a (T, C) array, got shape {P.shape}",
                        fix="one row per frame, one column per class")
    if not np.isfinite(P).all():
        raise DataError(f"{where}: per-frame scores must be finite (found NaN or inf)", fix="check the dense head")
    return P


def _check_kernel(rate, gamma, sigma, gain, eval_offset, truncate):
    """The numeric settings of :func:`sparse_to_dense`, checked (ConfigError) and as floats."""
    positive = dict(lo=0.0, lo_open=True, hi_open=True)
    return (check_real("rate", rate, **positive, fix="frames per segment unit, e.g. T / duration"),
            check_real("gamma", gamma, fix=f"PointTAD uses {DEFAULT_GAMMA}"),
            check_real("Gaussian sigma", sigma, **positive, fix=f"in frames, e.g. {DEFAULT_SIGMA:g}"),
            check_real("gain", gain, hi_open=True, lo_open=True, fix=f"e.g. {DEFAULT_GAIN:g}"),
            check_real("eval_offset", eval_offset, lo_open=True, hi_open=True, fix="0, or 1 as the notebook"),
            None if truncate is None else check_real("truncate", truncate, **positive, fix="e.g. 8, or None"))


def gaussian_kernel(sigma: float, gain: float = 1.0, eval_offset: float = 0.0,
                    radius: int | None = None) -> tuple[np.ndarray, int]:
    """``gain * N(d + eval_offset; 0, sigma)`` for integer ``d`` in ``[-radius, radius]``.

    Returns ``(weights, radius)``: ``weights[k] = gain * N(k - radius + eval_offset; 0, sigma)``
    is the weight a source frame ``u`` gives the evaluated frame ``t`` when ``t - u = k - radius``.
    ``radius`` defaults to ``ceil(8 * sigma + |eval_offset|)``.
    """
    sigma = check_real("Gaussian sigma", sigma, 0.0, np.inf, lo_open=True, hi_open=True, fix="e.g. 3")
    if radius is None:
        radius = int(math.ceil(8.0 * sigma + abs(eval_offset)))
    d = np.arange(-radius, radius + 1, dtype=np.float64) + eval_offset
    z = d / sigma
    return gain * np.exp(-0.5 * z * z) / (sigma * math.sqrt(2.0 * math.pi)), radius


def sparse_to_dense(detections: Instances, num_frames: int, num_classes: int, *, rate: float = 1.0,
                    gamma: float = DEFAULT_GAMMA, sigma: float = DEFAULT_SIGMA, gain: float = DEFAULT_GAIN,
                    combine: str = "max", eval_offset: float = 0.0,
                    truncate: float | None = 8.0) -> np.ndarray:
    """Detections -> per-frame class scores ``(num_frames, num_classes)``: Eq. (14)'s sparse term.

    ``D[t, c] = gain * sum_u N(t + eval_offset; u, sigma) * B[u, c]`` where ``B[u, c]`` is the
    max (``combine="max"``, the authors' code) or sum (``combine="sum"``) of the scores of the
    class-``c`` detections with score ``> gamma`` that cover frame ``u`` (see the module
    docstring for the frame grid and ``rate``). Vectorised over detections and frames.
    """
    T = check_count("num_frames", num_frames, allow_none=False)
    C = check_count("num_classes", num_classes, allow_none=False)
    check_instances(detections, "sparse_to_dense")
    rate, gamma, sigma, gain, eval_offset, truncate = _check_kernel(rate, gamma, sigma, gain, eval_offset, truncate)
    check_choice("combine", combine, ("max", "sum"))
    out = np.zeros((T, C))
    if T == 0 or C == 0 or len(detections) == 0:
        return out
    det = detections[detections.scores > gamma]
    if len(det) and (det.labels.min() < 0 or det.labels.max() >= C):
        raise DataError(f"sparse_to_dense: labels must lie in [0, {C}), found {int(det.labels.min())}.."
                        f"{int(det.labels.max())}", fix="pass num_classes of the detector's class list")
    a, b = _frame_span(det.segments, rate, T)
    n_cov = b - a                                                     # (N,) frames covered
    total = int(n_cov.sum())
    if total == 0:
        return out

    # expand every detection into its covered (class, frame) cells: (total,) arrays
    det_of = np.repeat(np.arange(len(det)), n_cov)
    first = np.cumsum(n_cov) - n_cov
    frames = a[det_of] + (np.arange(total) - first[det_of])
    B = np.zeros((C, T))                                              # (C, T) box scores
    reduce = np.maximum if combine == "max" else np.add
    reduce.at(B, (det.labels[det_of], frames), det.scores[det_of])

    # Gaussian smoothing along time, all classes at once
    radius = None if truncate is None else int(math.ceil(truncate * sigma + abs(eval_offset)))
    if radius is None or radius > T - 1:
        radius = T - 1                                                # every frame reaches every frame
    w, radius = gaussian_kernel(sigma, gain, eval_offset, radius)     # w[k] weights d = k - radius
    # D[c, t] = sum_u w[t - u + radius] B[c, u]; with Bpad[c, t + j] = B[c, t + j - radius]
    # (u = t + j - radius) the weight is w[2*radius - j], i.e. the reversed kernel.
    Bpad = np.pad(B, ((0, 0), (radius, radius)))                      # (C, T + 2R)
    windows = sliding_window_view(Bpad, 2 * radius + 1, axis=1)       # (C, T, 2R + 1)
    D = windows @ w[::-1]                                             # (C, T)
    return np.ascontiguousarray(D.T)                                  # (T, C)


def fuse_sparse_dense(detections: Instances, dense_scores: np.ndarray, beta: float, *, rate: float = 1.0,
                      gamma: float = DEFAULT_GAMMA, sigma: float = DEFAULT_SIGMA, gain: float = DEFAULT_GAIN,
                      combine: str = "max", eval_offset: float = 0.0,
                      truncate: float | None = 8.0) -> np.ndarray:
    """Eq. (14): ``beta * sparse_to_dense(detections) + (1 - beta) * dense_scores``, shape ``(T, C)``.

    ``dense_scores`` is the dense head's ``S`` ``(T, C)``; ``beta`` is 0.2 for MultiTHUMOS and
    0.96 for Charades in the paper (1 = detections only, 0 = dense head only); ``gamma`` the
    score threshold (0.01).
    """
    S = _check_dense(dense_scores, "fuse_sparse_dense")
    beta = check_real("beta", beta, 0.0, 1.0, fix="0.2 for MultiTHUMOS, 0.96 for Charades")
    D = sparse_to_dense(detections, S.shape[0], S.shape[1], rate=rate, gamma=gamma, sigma=sigma,
                        gain=gain, combine=combine, eval_offset=eval_offset, truncate=truncate)
    return beta * D + (1.0 - beta) * S


def class_duration_stats(lengths, labels, num_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """Mean and (population) standard deviation of action lengths per class, for Eq. (15).

    ``lengths`` must be in frames of the grid used by :func:`dense_to_sparse` (seconds times
    ``rate``). Classes without instances get NaN.
    """
    num_classes = check_count("num_classes", num_classes, allow_none=False)
    lengths = np.asarray(lengths, dtype=np.float64).reshape(-1)
    labels = np.asarray(labels, dtype=np.int64).reshape(-1)
    if len(lengths) != len(labels):
        raise DataError(f"class_duration_stats: {len(lengths)} lengths but {len(labels)} labels",
                        fix="give one label per action length")
    if len(labels) and (labels.min() < 0 or labels.max() >= num_classes):
        raise DataError(f"class_duration_stats: labels must lie in [0, {num_classes}), found "
                        f"{int(labels.min())}..{int(labels.max())}", fix="pass the number of classes")
    if not np.isfinite(lengths).all():
        raise DataError("class_duration_stats: action lengths must be finite", fix="check the annotations")
    n = np.bincount(labels, minlength=num_classes)[:num_classes].astype(np.float64)
    s1 = np.bincount(labels, weights=lengths, minlength=num_classes)[:num_classes]
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = s1 / n
        dev = lengths - mean[labels]
        var = np.bincount(labels, weights=dev * dev, minlength=num_classes)[:num_classes] / n
    return mean, np.sqrt(var)


def dense_to_sparse(scores: np.ndarray, thresholds: float | Sequence[float] = 0.5, *, rate: float = 1.0,
                    duration_mean=None, duration_std=None, scoring: str | None = None) -> Instances:
    """Per-frame class scores ``(T, C)`` -> segments: runs above a threshold, scored by Eq. (15).

    For each threshold and class, every maximal run of frames ``t0..t1`` with ``p > threshold``
    becomes ``[t0, t1 + 1] / rate`` with label ``c`` and score

    * ``scoring="eq15"`` (default when ``duration_mean``/``duration_std`` are given, in frames):
      ``sum(p) * exp(-0.01 * (L - mu_c)^2 / sigma_c^2)`` with ``L = t1 - t0 + 1``; classes with
      ``sigma_c`` not > 0 (or unknown statistics) get factor 1;
    * ``scoring="mean"`` (default otherwise): ``mean(p)``;
    * ``scoring="sum"``: ``sum(p)``.

    Several thresholds give the union of their runs (duplicates are left to NMS). Output sorted by
    decreasing score (ties: threshold, class, time order). Vectorised over frames and classes.
    """
    P = _check_dense(scores, "dense_to_sparse")
    T, C = P.shape
    rate = check_real("rate", rate, 0.0, np.inf, lo_open=True, hi_open=True, fix="frames per segment unit")
    if scoring is None:
        scoring = "eq15" if duration_mean is not None and duration_std is not None else "mean"
    check_choice("scoring", scoring, ("eq15", "mean", "sum"))
    if scoring == "eq15":
        if duration_mean is None or duration_std is None:
            raise ConfigError("Eq. (15) scoring needs per-class duration_mean and duration_std",
                              fix="compute them with class_duration_stats on the training set, or use scoring='mean'")
        mu = np.asarray(duration_mean, dtype=np.float64).reshape(-1)
        sd = np.asarray(duration_std, dtype=np.float64).reshape(-1)
        if len(mu) != C or len(sd) != C:
            raise DataError(f"dense_to_sparse: duration statistics cover {len(mu)}/{len(sd)} classes, scores {C}",
                            fix="compute them with class_duration_stats over the same class list")
    ths = np.atleast_1d(np.asarray(thresholds, dtype=np.float64)).reshape(-1)
    if not np.isfinite(ths).all():
        raise ConfigError(f"dense_to_sparse: thresholds must be finite numbers, got {thresholds!r}", fix="e.g. 0.5")
    if T == 0 or C == 0 or len(ths) == 0:
        return Instances.empty()

    PT = np.ascontiguousarray(P.T)                                     # (C, T)
    flat = np.append(PT.ravel(), 0.0)                                  # (C*T + 1,) for reduceat
    parts_seg, parts_lab, parts_sc = [], [], []
    for th in ths:                                                     # a handful of thresholds
        mask = np.zeros((C, T + 2), dtype=np.int8)
        mask[:, 1:-1] = PT > th
        d = np.diff(mask, axis=1)                                      # (C, T + 1)
        c0, t0 = np.nonzero(d == 1)                                    # run starts (row-major)
        _, t1 = np.nonzero(d == -1)                                    # run ends, exclusive
        if len(c0) == 0:
            continue
        bounds = np.empty(2 * len(c0), dtype=np.int64)
        bounds[0::2] = c0 * T + t0
        bounds[1::2] = c0 * T + t1
        sums = np.add.reduceat(flat, bounds)[0::2]                     # (K,) sum of p over each run
        L = (t1 - t0).astype(np.float64)
        if scoring == "mean":
            sc = sums / L
        elif scoring == "sum":
            sc = sums
        else:
            m, s = mu[c0], sd[c0]
            with np.errstate(invalid="ignore", divide="ignore"):
                factor = np.exp(-0.01 * (L - m) ** 2 / (s * s))
            factor = np.where((s > 0) & np.isfinite(m), factor, 1.0)
            sc = sums * factor
        parts_seg.append(np.stack([t0, t1], axis=1) / rate)
        parts_lab.append(c0)
        parts_sc.append(sc)
    if not parts_sc:
        return Instances.empty()
    out = Instances(np.concatenate(parts_seg), np.concatenate(parts_lab), np.concatenate(parts_sc))
    return out[np.argsort(-out.scores, kind="stable")]
