"""Synthetic features and annotations with learnable, realistic structure.

``make_synthetic(out_dir)`` writes what ``tadkit synth`` promises::

    out_dir/annotations.json        ActivityNet-style, subsets "training" and "validation"
    out_dir/features/<video>.npy    float32, T x C, feature i covers frames [i*stride, i*stride + window)
    out_dir/meta.json               timing, sizes, seed, counts, the structure below, "synthetic": true

What a detector can learn from the features
-------------------------------------------
* **Three phases per class.** Class ``k`` owns three unit directions in feature space:
  ``start_k``, ``middle_k`` and ``end_k``. An instance shows ``start_k`` during its first
  ~20 % (at least 0.3 s, at most a third), ``middle_k`` in between and ``end_k`` during its
  last ~20 %; so boundaries are visible in the features, not only the presence of an action.
  Each feature averages its window (``window`` frames), so a phase that covers part of a
  window contributes that fraction: boundaries are smeared as with real clip features.
* **Confusable pairs.** Classes ``2j`` and ``2j + 1`` share their middle direction partly
  (cosine :data:`PAIR_MIDDLE_COSINE`); they differ mainly in their start and end phases.
* **Variation.** Each instance has its own amplitude (1.0..2.0), a slightly tilted copy of
  the class directions (cosine ~0.97) and a slow amplitude ripple through its middle phase.
  Durations mix short (1-3 s), medium (3-10 s) and long (10-40 s) instances, with a
  class-specific preference; each video favours a few classes (Dirichlet class mixture).
* **Background.** A per-video offset, low-frequency drift (Gaussian-filtered noise, about
  a 20 s time scale), white noise, and unlabelled *distractor* events (two patterns that
  belong to no class, shaped like actions) in the gaps between actions.
* **Multi-label mode** (MultiTHUMOS-like): every class has its own track of non-overlapping
  instances, so instances of different classes overlap densely; a long instance of class
  ``k`` often contains a nested instance of its partner class ``(k + 2) % K``
  (co-occurrence). The features are the sum of all active patterns.

Signal-to-noise
---------------
A pattern is a unit direction times the instance amplitude, uniform in 1.0..2.0 (mean
1.5). Noise per channel (std): white 0.5, drift 0.35, video offset 0.3, i.e. 0.68 in all
(times ``noise_scale``). Over a whole 64-d feature the noise energy (0.46 x 64 = 30) dwarfs
the signal energy (2.25), so no channel reveals an action by itself; projected on the
right class direction one feature step has an amplitude SNR of 1.5 / 0.68 = 2.2 (~7 dB).
Measured at the defaults (seeds 0-5): a linear 5-way classifier on single foreground steps
is right 40-50 % of the time (chance 20 %), a nearest-centroid classifier on whole-instance
means 50-75 %, many errors falling inside the confusable pairs. So a detector must pool over
time (0.5-1 s) and use the start/end phases, which is what real detectors do; the task is
learnable but far from saturated. ``noise_scale`` makes it harder (> 1) or easier (< 1).

The class and distractor patterns depend on ``pattern_seed`` (fixed by default), not on
``seed``: every seed draws new videos of the same "world", so a detector trained on one
seed applies to data made with another. Everything is deterministic: the same arguments
write byte-identical files.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..core.errors import DataError
from ..core.io import atomic_path, atomic_write_json
from ..core.timing import FeatureTiming
from .annotations import Annotations, VideoAnnotation

# -- the knobs of the generator, documented in meta.json ---------------------------------------------
PAIR_MIDDLE_COSINE = 0.7     # middle directions of classes 2j and 2j+1
PHASE_FRACTION = 0.2         # start / end phases: this fraction of the instance ...
PHASE_MIN_SECONDS = 0.3      # ... but at least this long (at most a third of the instance)
AMPLITUDE_RANGE = (1.0, 2.0)  # per-instance pattern amplitude (the noise is ~0.68 per channel)
DIRECTION_JITTER = 0.25      # norm of the per-instance tilt of the class directions
RIPPLE = 0.15                # relative slow amplitude ripple in the middle phase
WHITE_STD = 0.5              # white noise, per channel
DRIFT_STD = 0.35             # low-frequency drift, per channel
DRIFT_SECONDS = 20.0         # drift time scale (period at the filter's cut-off)
OFFSET_STD = 0.3             # constant per-video offset, per channel
DISTRACTOR_TYPES = 2
MIN_GAP = 0.5                # seconds between consecutive single-label instances
DURATION_BUCKETS = ((1.0, 3.0), (3.0, 10.0), (10.0, 40.0))  # short, medium, long (seconds)
SUBSETS = ("training", "validation")


@dataclass(frozen=True)
class ClassPatterns:
    """Unit directions in feature space: ``start``, ``middle``, ``end`` are ``(K, C)``,
    ``distractors`` is ``(DISTRACTOR_TYPES, C)``."""

    start: np.ndarray
    middle: np.ndarray
    end: np.ndarray
    distractors: np.ndarray


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


def class_patterns(classes: int, feature_dim: int, pattern_seed: int = 0) -> ClassPatterns:
    """The class and distractor directions of the synthetic "world".

    Directions are drawn per class (so the first classes keep their patterns when more
    are added) and made orthonormal in a fixed order when they fit in ``feature_dim``;
    then the middle direction of each odd class is mixed with its even partner's, so
    ``cos(middle[2j], middle[2j+1]) = PAIR_MIDDLE_COSINE``.
    """
    rows = [np.random.default_rng([pattern_seed, 1000 + d]).standard_normal(feature_dim)
            for d in range(DISTRACTOR_TYPES)]
    for k in range(classes):
        rows.extend(np.random.default_rng([pattern_seed, k]).standard_normal((3, feature_dim)))
    raw = np.stack(rows)                                    # (2 + 3K, C)
    if len(raw) <= feature_dim:
        q, r = np.linalg.qr(raw.T)                          # Gram-Schmidt in row order
        raw = (q * np.sign(np.diag(r))).T
    raw = _unit(raw)
    distractors = raw[:DISTRACTOR_TYPES]
    start, middle, end = (raw[DISTRACTOR_TYPES + i::3].copy() for i in range(3))
    c = PAIR_MIDDLE_COSINE
    for k in range(1, classes, 2):
        own = _unit(middle[k] - (middle[k] @ middle[k - 1]) * middle[k - 1])
        middle[k] = c * middle[k - 1] + np.sqrt(1 - c * c) * own
    return ClassPatterns(start, middle, end, distractors)


def class_names(classes: int) -> list[str]:
    width = max(2, len(str(classes - 1)))
    return [f"action_{k:0{width}d}" for k in range(classes)]


# -- layouts of instances --------------------------------------------------------------------------
def _bucket_probs(classes: int, rng: np.random.Generator, multilabel: bool) -> np.ndarray:
    """Per class, the probability of a short / medium / long instance, shape (K, 3)."""
    base = np.array([0.55, 0.3, 0.15]) if multilabel else np.array([0.4, 0.25, 0.35])
    return rng.dirichlet(base * 8.0, size=classes)


def _draw_durations(rng, n, labels, bucket_probs, cap) -> np.ndarray:
    """``n`` instance durations (seconds) for the given labels, log-uniform within buckets."""
    u = rng.random(n)
    cum = np.cumsum(bucket_probs[labels], axis=1)
    bucket = (u[:, None] > cum).sum(axis=1).clip(0, len(DURATION_BUCKETS) - 1)
    lo = np.log(np.array([b[0] for b in DURATION_BUCKETS]))[bucket]
    hi = np.log(np.array([b[1] for b in DURATION_BUCKETS]))[bucket]
    return np.minimum(np.exp(lo + (hi - lo) * rng.random(n)), cap)


def _place(rng, lengths: np.ndarray, total: float, min_gap: float) -> np.ndarray:
    """Non-overlapping ``[start, end]`` for ``lengths`` in ``[0, total]``, random gaps of at least
    ``min_gap`` between them, in order; instances that do not fit are dropped from the end."""
    n = len(lengths)
    while n and lengths[:n].sum() + (n - 1) * min_gap > total:
        n -= 1
    lengths = lengths[:n]
    if not n:
        return np.zeros((0, 2))
    free = total - lengths.sum() - (n - 1) * min_gap
    gaps = rng.dirichlet(np.ones(n + 1)) * free             # (n+1,) before, between, after
    starts = np.cumsum(gaps[:n]) + np.concatenate([[0.0], np.cumsum(lengths[:-1] + min_gap)])
    return np.stack([starts, starts + lengths], axis=1)


def _round(segments: np.ndarray, duration: float) -> np.ndarray:
    """Two decimals (as annotation files have), kept inside the video and non-empty."""
    seg = np.round(segments, 2).clip(0.0, duration)
    seg[:, 1] = np.maximum(seg[:, 1], np.minimum(seg[:, 0] + 0.01, duration))
    return seg


def _gap_distractors(rng, segments: np.ndarray, duration: float, rate: float) -> np.ndarray:
    """Distractor events inside the background gaps between (sorted) ``segments``."""
    edges = np.concatenate([[0.0], segments.reshape(-1), [duration]]).reshape(-1, 2)  # gaps
    out = []
    for g0, g1 in edges:
        room = g1 - g0 - 2 * 0.25
        if room < 1.0 or rng.random() > min(1.0, rate * (g1 - g0)):
            continue
        length = rng.uniform(1.0, min(8.0, room))
        s = g0 + 0.25 + rng.random() * (room - length)
        out.append((s, s + length))
    return np.array(out).reshape(-1, 2)


def _single_label_layout(rng, duration, class_mix, bucket_probs):
    k = len(class_mix)
    coverage = rng.uniform(0.3, 0.65)
    cap = 0.45 * duration
    budget = coverage * duration
    pool = max(64, int(duration))                                       # more than can fit
    labels_all = rng.choice(k, size=pool, p=class_mix)
    lengths_all = _draw_durations(rng, pool, labels_all, bucket_probs, cap)
    n = max(1, int(np.searchsorted(np.cumsum(lengths_all), budget)))
    segments = _place(rng, lengths_all[:n], duration, MIN_GAP)       # i.i.d. draws: random order already
    labels = labels_all[: len(segments)]
    segments = _round(segments, duration)
    distractors = _round(_gap_distractors(rng, segments, duration, rate=1 / 25.0), duration)
    return segments, labels, distractors


def _multi_label_layout(rng, duration, class_mix, bucket_probs):
    k = len(class_mix)
    cap = 0.45 * duration
    segs, labs = [], []
    active = rng.random(k) < np.clip(0.5 + 2.0 * class_mix, 0.0, 0.95)
    active[np.argmax(class_mix)] = True
    for c in np.flatnonzero(active):
        coverage = rng.uniform(0.1, 0.35)
        pool = max(48, int(duration))
        lengths = _draw_durations(rng, pool, np.full(pool, c), bucket_probs, cap)
        n = max(1, int(np.searchsorted(np.cumsum(lengths), coverage * duration)))
        placed = _place(rng, lengths[:n], duration, MIN_GAP)
        segs.append(placed)
        labs.append(np.full(len(placed), c))
    segs_by_class = {int(c): s for c, s in zip(np.flatnonzero(active), segs)}
    # co-occurrence: long instances of class c often contain one of the partner class (c + 2) % K
    nested_s, nested_l = [], []
    if k > 1:
        for c, placed in list(segs_by_class.items()):
            partner = (c + 2) % k if k > 2 else 1 - c
            mine = segs_by_class.get(partner, np.zeros((0, 2)))
            for s, e in placed:
                if e - s < 6.0 or rng.random() > 0.6:
                    continue
                length = rng.uniform(1.0, min(4.0, 0.5 * (e - s)))
                ns = s + 0.5 + rng.random() * (e - s - 1.0 - length)
                ne = ns + length
                if len(mine) and np.any((mine[:, 0] < ne + 0.1) & (mine[:, 1] > ns - 0.1)):
                    continue  # a class never overlaps itself
                mine = np.concatenate([mine, [[ns, ne]]])
                nested_s.append((ns, ne))
                nested_l.append(partner)
            segs_by_class[partner] = mine
    segments = np.concatenate(segs + [np.array(nested_s).reshape(-1, 2)])
    labels = np.concatenate(labs + [np.array(nested_l, dtype=np.int64)]).astype(np.int64)
    order = np.lexsort((labels, segments[:, 0]))
    segments, labels = _round(segments[order], duration), labels[order]
    n_dis = rng.poisson(duration / 30.0)
    dl = rng.uniform(1.0, 6.0, size=n_dis)
    ds = rng.random(n_dis) * (duration - dl)
    distractors = _round(np.stack([ds, ds + dl], axis=1), duration)
    return segments, labels, distractors


# -- features --------------------------------------------------------------------------------------
def _feature_intervals(timing: FeatureTiming, t: int) -> tuple[np.ndarray, np.ndarray]:
    """Seconds covered by each feature, (T,) starts and ends (window 0: one stride around the centre)."""
    centre = timing.to_seconds(np.arange(t))
    half = (timing.window if timing.window > 0 else timing.stride) / (2.0 * timing.fps)
    return centre - half, centre + half


def _overlap(a, b, s, e) -> np.ndarray:
    return (np.minimum(b, e) - np.maximum(a, s)).clip(0.0) / (b - a)


def _background(rng, t: int, dim: int, timing: FeatureTiming, noise_scale: float) -> np.ndarray:
    offset = OFFSET_STD * rng.standard_normal(dim)
    white = WHITE_STD * rng.standard_normal((t, dim))
    # low-frequency drift: white noise through a Gaussian low-pass (cut-off 1/DRIFT_SECONDS Hz)
    raw = rng.standard_normal((t, dim))
    freq = np.fft.rfftfreq(t, d=timing.seconds_per_feature)          # Hz
    gain = np.exp(-0.5 * (freq * DRIFT_SECONDS) ** 2)
    drift = np.fft.irfft(np.fft.rfft(raw, axis=0) * gain[:, None], n=t, axis=0)
    std = float(drift.std())
    drift = drift * (DRIFT_STD / std) if t > 1 and std > 0 else np.zeros_like(drift)
    return noise_scale * (offset + drift + white)                      # (T, C)


def _phase_bounds(s: float, e: float) -> tuple[float, float]:
    length = e - s
    b = min(max(PHASE_FRACTION * length, PHASE_MIN_SECONDS), length / 3.0)
    return s + b, e - b


def _add_instance(x, a, b, s, e, dirs, amp, rng) -> None:
    """Add one instance's three-phase pattern in place. ``dirs`` is (3, C): start, middle, end."""
    lo, hi = np.searchsorted(b, s, side="right"), np.searchsorted(a, e, side="left")
    if hi <= lo:
        return
    a, b = a[lo:hi], b[lo:hi]
    m0, m1 = _phase_bounds(s, e)
    w = np.stack([_overlap(a, b, s, m0), _overlap(a, b, m0, m1), _overlap(a, b, m1, e)], axis=1)  # (t, 3)
    centre = 0.5 * (a + b)
    ripple = 1.0 + RIPPLE * np.sin(2 * np.pi * (centre - s) / rng.uniform(3.0, 8.0) + rng.uniform(0, 2 * np.pi))
    w[:, 1] *= ripple
    dim = dirs.shape[1]
    tilted = _unit(dirs + DIRECTION_JITTER * rng.standard_normal(dirs.shape) / np.sqrt(dim))
    x[lo:hi] += amp * (w @ tilted)                                     # (t, C)


def _video_features(rng, duration, timing, dim, patterns, segments, labels, distractors, dis_types,
                    noise_scale=1.0):
    t = timing.num_features(duration)
    x = _background(rng, t, dim, timing, noise_scale)
    a, b = _feature_intervals(timing, t)
    lo_amp, hi_amp = AMPLITUDE_RANGE
    for (s, e), k in zip(segments, labels):
        dirs = np.stack([patterns.start[k], patterns.middle[k], patterns.end[k]])
        _add_instance(x, a, b, s, e, dirs, rng.uniform(lo_amp, hi_amp), rng)
    for (s, e), d in zip(distractors, dis_types):
        # a distractor rises and falls like an action but along a direction of no class
        dirs = np.stack([0.6 * patterns.distractors[d], patterns.distractors[d], 0.6 * patterns.distractors[d]])
        _add_instance(x, a, b, s, e, dirs, rng.uniform(lo_amp, hi_amp), rng)
    return x.astype(np.float32)


def _snr(noise_scale: float) -> float | None:
    """Mean pattern amplitude over the std of the noise along any direction."""
    sigma = noise_scale * float(np.sqrt(WHITE_STD ** 2 + DRIFT_STD ** 2 + OFFSET_STD ** 2))
    return round(float(np.mean(AMPLITUDE_RANGE)) / sigma, 3) if sigma > 0 else None


# -- the public entry points -----------------------------------------------------------------------
def _check(name, value, ok, fix):
    if not ok:
        raise DataError(f"synthetic data: {name} = {value!r} is not valid", fix=fix)


def synthesize_annotations(*, videos: int = 40, classes: int = 5, seed: int = 0, multilabel: bool = False,
                           fps: float = 30.0, min_duration: float = 30.0, max_duration: float = 120.0,
                           test_fraction: float = 0.25) -> tuple[list[VideoAnnotation], dict]:
    """The videos (with subsets, durations, fps and labelled segments) and, per video, the
    unlabelled distractor events: ``{video_id: {"distractors": (M, 2) seconds,
    "distractor_types": (M,)}}``.

    Deterministic in its arguments. Used by :func:`make_synthetic`, which adds the features.
    """
    names = class_names(classes)
    root = np.random.SeedSequence([int(seed), 7, int(multilabel)])
    layout_ss, split_ss, video_ss = root.spawn(3)
    world = np.random.default_rng(layout_ss)
    bucket_probs = _bucket_probs(classes, world, multilabel)          # (K, 3)
    n_test = int(round(test_fraction * videos))
    if 0 < test_fraction < 1 and videos >= 2:
        n_test = min(max(n_test, 1), videos - 1)
    test = set(np.random.default_rng(split_ss).permutation(videos)[:n_test].tolist())
    width = max(4, len(str(videos - 1)))
    out, extra = [], {}
    for i, ss in enumerate(video_ss.spawn(videos)):
        rng = np.random.default_rng(ss)
        vid = f"synth_{i:0{width}d}"
        duration = float(np.round(rng.uniform(min_duration, max_duration), 2))
        class_mix = rng.dirichlet(np.full(classes, 0.5 if not multilabel else 1.0))
        layout = _multi_label_layout if multilabel else _single_label_layout
        segments, labels, distractors = layout(rng, duration, class_mix, bucket_probs)
        dis_types = rng.integers(0, DISTRACTOR_TYPES, size=len(distractors))
        out.append(VideoAnnotation(vid, SUBSETS[1] if i in test else SUBSETS[0], duration, segments,
                                   [names[k] for k in labels], fps=float(fps)))
        extra[vid] = {"distractors": distractors, "distractor_types": dis_types}
    return out, extra


def make_synthetic(out_dir, *, videos: int = 40, classes: int = 5, seed: int = 0, multilabel: bool = False,
                   feature_dim: int = 64, fps: float = 30.0, stride: int = 4, window: int = 16,
                   min_duration: float = 30.0, max_duration: float = 120.0, test_fraction: float = 0.25,
                   pattern_seed: int = 0, noise_scale: float = 1.0) -> dict:
    """Write a synthetic dataset to ``out_dir`` and return its meta dict (also ``meta.json``).

    See the module docstring for the structure of the data. ``seed`` draws the videos,
    layouts and noise; ``pattern_seed`` the class patterns (shared across seeds);
    ``noise_scale`` multiplies every noise term (1 = the documented SNR).
    """
    _check("videos", videos, isinstance(videos, (int, np.integer)) and videos >= 1, "pass at least 1 video")
    _check("classes", classes, isinstance(classes, (int, np.integer)) and classes >= 1, "pass at least 1 class")
    _check("feature_dim", feature_dim, isinstance(feature_dim, (int, np.integer)) and feature_dim >= 1,
           "pass a positive feature dimension")
    _check("test_fraction", test_fraction, 0.0 <= test_fraction <= 1.0, "pass a fraction in [0, 1]")
    _check("min_duration", min_duration, np.isfinite(min_duration) and min_duration >= 5.0,
           "pass at least 5 seconds")
    _check("max_duration", max_duration, np.isfinite(max_duration) and max_duration >= min_duration,
           "pass max_duration >= min_duration")
    _check("seed", seed, isinstance(seed, (int, np.integer)) and seed >= 0, "pass a non-negative integer seed")
    _check("noise_scale", noise_scale, np.isfinite(noise_scale) and noise_scale >= 0, "pass a scale >= 0")
    timing = FeatureTiming(float(fps), float(stride), float(window))
    _check("window", window, window / fps < min_duration, "pass a feature window shorter than the videos")
    out_dir = Path(out_dir)
    feat_dir = out_dir / "features"
    feat_dir.mkdir(parents=True, exist_ok=True)

    vids, extra = synthesize_annotations(videos=videos, classes=classes, seed=seed, multilabel=multilabel,
                                         fps=fps, min_duration=min_duration, max_duration=max_duration,
                                         test_fraction=test_fraction)
    names = class_names(classes)
    index = {n: i for i, n in enumerate(names)}
    patterns = class_patterns(classes, feature_dim, pattern_seed)
    steps = 0
    for i, v in enumerate(vids):
        rng = np.random.default_rng([int(seed), 13, int(multilabel), i])  # the noise of this video
        labels = np.array([index[n] for n in v.labels], dtype=np.int64)
        x = _video_features(rng, v.duration, timing, feature_dim, patterns, v.segments, labels,
                            extra[v.video_id]["distractors"], extra[v.video_id]["distractor_types"],
                            float(noise_scale))                        # (T, C) float32
        steps += len(x)
        with atomic_path(feat_dir / f"{v.video_id}.npy") as tmp, open(tmp, "wb") as f:
            np.save(f, x)
    Annotations({v.video_id: v for v in vids}, classes=names).save(out_dir / "annotations.json")

    per_class = {n: 0 for n in names}
    for v in vids:
        for n in v.labels:
            per_class[n] += 1
    n_dis = sum(len(e["distractors"]) for e in extra.values())
    subsets = {s: sum(v.subset == s for v in vids) for s in SUBSETS}
    meta = {
        "synthetic": True,
        "note": "synthetic features and annotations made by tadkit.data.synthetic (`tadkit synth`); "
                "no real video lies behind them",
        "generator": "tadkit.data.synthetic.make_synthetic",
        "seed": int(seed),
        "pattern_seed": int(pattern_seed),
        "multilabel": bool(multilabel),
        "fps": float(fps),
        "feature_stride": float(stride),
        "feature_window": float(window),
        "feature_dim": int(feature_dim),
        "classes": names,
        "num_classes": int(classes),
        "counts": {
            "videos": int(videos),
            "subsets": subsets,
            "instances": int(sum(per_class.values())),
            "instances_per_class": per_class,
            "distractors": int(n_dis),
            "feature_steps": int(steps),
        },
        "structure": {
            "phases": f"start / middle / end directions per class; start and end phases last "
                      f"{PHASE_FRACTION:.0%} of an instance (>= {PHASE_MIN_SECONDS} s, <= 1/3)",
            "confusable_pairs": f"classes 2j and 2j+1 share their middle direction (cosine {PAIR_MIDDLE_COSINE})",
            "durations_s": [list(b) for b in DURATION_BUCKETS],
            "amplitude_range": list(AMPLITUDE_RANGE),
            "noise_scale": float(noise_scale),
            "noise_std_per_channel": {"white": WHITE_STD * noise_scale, "drift": DRIFT_STD * noise_scale,
                                      "offset": OFFSET_STD * noise_scale},
            "drift_time_scale_s": DRIFT_SECONDS,
            "snr_per_step_along_class_direction": _snr(noise_scale),
            "distractors": f"{DISTRACTOR_TYPES} unlabelled patterns of no class, in the background",
            "overlaps": "dense, overlapping instances of different classes" if multilabel
                        else "none (single label)",
        },
        "annotations": "annotations.json",
        "features": "features",
        "config": {
            "data.annotations": "annotations.json",
            "data.features": "features",
            "data.fps": float(fps),
            "data.feature_stride": float(stride),
            "data.feature_window": float(window),
            "data.train_subset": SUBSETS[0],
            "data.test_subset": SUBSETS[1],
        },
    }
    atomic_write_json(out_dir / "meta.json", meta)
    return meta


def synth_main(out, videos: int = 40, classes: int = 5, seed: int = 0, multilabel: bool = False,
               feature_dim: int = 64, noise_scale: float = 1.0) -> str:
    """What ``tadkit synth`` runs; returns a one-line summary."""
    meta = make_synthetic(out, videos=videos, classes=classes, seed=seed, multilabel=multilabel,
                          feature_dim=feature_dim, noise_scale=noise_scale)
    c = meta["counts"]
    subsets = ", ".join(f"{n} {s}" for s, n in c["subsets"].items())
    kind = "multi-label" if multilabel else "single-label"
    return (f"wrote {c['videos']} synthetic videos ({subsets}), {c['instances']} {kind} instances of "
            f"{meta['num_classes']} classes, {meta['feature_dim']}-d features every "
            f"{meta['feature_stride'] / meta['fps']:.3g} s, to {os.fspath(out)}")
