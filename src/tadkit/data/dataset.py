"""``VideoDataset``: features + annotations -> model inputs in feature units, and ``collate``.

Items
-----
*Training* (``training=True``): one item per video, a random crop of at most
``max_seq_len`` steps (:func:`tadkit.data.windows.random_crop`, with ``crop_ratio`` and the
truncation rule), or, with ``train_windows=True`` (PointTAD, SP-TAD practice), one item per
sliding window with ``train_window_overlap`` (moved at random each epoch by up to half the
windows' stride with ``train_window_jitter``), where only the actions inside a window (by the
truncation rule) are its targets.
*Inference* (``training=False``): one item per sliding window of ``max_seq_len`` steps with
``window_overlap``; a video that fits is one window.

Every item holds ``feats`` ``(C, T)``, ``segments`` ``(N, 2)`` (feature units relative to the
item's start), ``labels`` ``(N,)``, ``video_id``, ``offset`` (the item's start, a feature
index of the video), ``duration`` (s), ``num_features`` (steps of the whole video) and
``timing`` (:class:`~tadkit.core.timing.FeatureTiming`, the one seconds <-> index map).

Ground-truth policy (training targets only; evaluation always uses the file as it is):
reversed segments are swapped, segments are clipped to ``[0, duration]``, and segments then
empty (zero length or wholly outside the video) and exact duplicates are dropped; the
numbers are in :attr:`VideoDataset.defects` and reported once as a warning. Ignore regions
(THUMOS14 Ambiguous) are never targets.

Randomness: the crop of item ``i`` in epoch ``e`` comes from ``default_rng([seed, e, i])``, so
training is reproducible, independent of data-loader workers, and resumable mid-run.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch

from ..core.errors import DataError
from ..core.timing import FeatureTiming
from .annotations import Annotations, VideoAnnotation
from .features import FeatureStore, resample_features
from .windows import crop_segments, random_crop, sliding_windows

__all__ = ["VideoDataset", "collate", "VideoEntry"]


@dataclass
class VideoEntry:
    """One video as the dataset sees it: timing, length and targets in feature units."""

    video_id: str
    duration: float
    timing: FeatureTiming
    num_features: int
    segments: np.ndarray          # (N, 2) feature units, whole video
    labels: np.ndarray            # (N,) int64


def _target_segments(video: VideoAnnotation) -> tuple[np.ndarray, list[int], dict[str, int]]:
    """Apply the training ground-truth policy; return (segments s, kept positions, defect counts)."""
    seg = np.sort(video.segments, axis=1) if len(video.segments) else video.segments.reshape(0, 2)
    counts = {"reversed": int((video.segments[:, 0] > video.segments[:, 1]).sum()) if len(seg) else 0,
              "clipped": 0, "empty": 0, "duplicate": 0}
    clipped = np.clip(seg, 0.0, video.duration)
    keep, seen = [], set()
    for i, ((s, e), lab) in enumerate(zip(clipped, video.labels)):
        if e <= s:
            counts["empty"] += 1
            continue
        key = (round(float(s), 6), round(float(e), 6), lab)
        if key in seen:
            counts["duplicate"] += 1
            continue
        seen.add(key)
        keep.append(i)
        counts["clipped"] += int(np.abs(clipped[i] - seg[i]).max() > 1e-9)
    return clipped[keep] if keep else np.zeros((0, 2)), keep, counts


class VideoDataset(torch.utils.data.Dataset):
    """Features and targets of one subset; see the module docstring.

    Parameters
    ----------
    annotations : :class:`~tadkit.data.annotations.Annotations` (gives classes and durations).
    features : :class:`~tadkit.data.features.FeatureStore`.
    subset : subset name (aliases such as ``val`` accepted); ``None`` for all videos.
    training : random crops (or training windows) instead of inference windows.
    max_seq_len : longest item in feature steps.
    fps, feature_stride, feature_window : feature timing. ``None`` takes it from the features'
        ``features.json`` (written by ``tadkit extract``) when there is one; else each video's
        ``fps`` from the annotations, stride and window 1. Ignored with ``fixed_length``.
    fixed_length : resample every video to this many features (ActivityNet practice).
    window_overlap : overlap of inference windows (fraction of a window).
    crop_ratio : ``(lo, hi)`` random crop fraction for videos not longer than ``max_seq_len``.
    trunc_thresh : fraction of a cut segment that must stay inside a crop for it to be kept.
    video_ids : restrict to these videos.
    missing : ``"error"`` (default) or ``"skip"`` videos without features (with a warning).
    """

    def __init__(self, annotations: Annotations, features: FeatureStore, subset: str | None, *, training: bool,
                 max_seq_len: int, fps: float | None = None, feature_stride: float | None = None,
                 feature_window: float | None = None, fixed_length: int | None = None, window_overlap: float = 0.25,
                 crop_ratio: Sequence[float] | None = None, trunc_thresh: float = 0.5,
                 video_ids: Sequence[str] | None = None, seed: int = 0, train_windows: bool = False,
                 train_window_overlap: float = 0.75, train_window_jitter: bool = False, missing: str = "error"):
        if max_seq_len < 1:
            raise DataError(f"max_seq_len must be >= 1, got {max_seq_len}", fix="set model.max_seq_len")
        if missing not in ("error", "skip"):
            raise DataError(f"data.missing must be 'error' or 'skip', got {missing!r}", fix="set data.missing")
        self.annotations = annotations
        self.features = features
        self.subset = None if subset is None else annotations.check_subset(subset)
        self.training = bool(training)
        self.max_seq_len = int(max_seq_len)
        self.fixed_length = None if fixed_length is None else int(fixed_length)
        self.window_overlap = float(window_overlap)
        self.crop_ratio = None if crop_ratio is None else (float(crop_ratio[0]), float(crop_ratio[1]))
        self.trunc_thresh = float(trunc_thresh)
        self.seed = int(seed)
        self.epoch = 0
        self.train_windows = bool(train_windows)
        self.train_window_overlap = float(train_window_overlap)
        self.train_window_jitter = bool(train_window_jitter)

        videos = annotations.select(self.subset)
        if video_ids is not None:
            wanted = {annotations.resolve(v) or v for v in video_ids}
            unknown = sorted(wanted - set(annotations.videos))
            if unknown:
                raise DataError(f"{len(unknown)} requested videos are not in the annotations "
                                f"(e.g. {unknown[:3]})", path=annotations.path, fix="check the video ids")
            videos = [v for v in videos if v.video_id in wanted] if self.subset else \
                [annotations.videos[v] for v in sorted(wanted)]
        if not videos:
            raise DataError(f"no videos in subset {self.subset!r}", path=annotations.path,
                            fix=f"pick one of the subsets {annotations.subsets}")
        absent = features.missing([v.video_id for v in videos])
        if absent:
            msg = (f"{len(absent)} of {len(videos)} videos of subset {self.subset!r} have no features "
                   f"(e.g. {absent[:3]})")
            if missing == "error":
                raise DataError(msg, path=features.where,
                                fix="extract them, or set data.missing=skip to leave those videos out")
            warnings.warn(msg + "; they are skipped", stacklevel=2)
            absent_set = set(absent)
            videos = [v for v in videos if v.video_id not in absent_set]
            if not videos:
                raise DataError("no video left with features", path=features.where, fix="check data.features")
        self.skipped = absent

        self.defects = {"reversed": 0, "clipped": 0, "empty": 0, "duplicate": 0}
        self.unknown_labels = 0
        self._class_set = set(annotations.classes)
        self.entries: list[VideoEntry] = []
        meta = getattr(features, "meta", None) or {}
        differ = [f"data.{k}={mine:g} (features.json: {meta[k]:g})"
                  for k, mine in (("feature_stride", feature_stride), ("feature_window", feature_window))
                  if mine is not None and isinstance(meta.get(k), (int, float)) and float(meta[k]) != float(mine)]
        if differ and training:      # once per run; the config wins, as documented, but it is likely a slip
            warnings.warn(f"{', '.join(differ)}: the config's timing replaces the one the features were made "
                          f"with; set those keys to null to use features.json", stacklevel=2)
        if feature_stride is None:
            feature_stride = meta.get("feature_stride", 1.0)
        if feature_window is None:
            feature_window = meta.get("feature_window", 1.0)
        for v in videos:
            self.entries.append(self._entry(v, fps, feature_stride, feature_window))
        check = getattr(features, "check_widths", None)
        if check is not None:                  # a stray width fails here, not in the middle of an epoch
            check([e.video_id for e in self.entries])
        if any(self.defects.values()):
            detail = ", ".join(f"{n} {k}" for k, n in self.defects.items() if n)
            warnings.warn(f"ground truth of subset {self.subset!r} ({annotations.path}): {detail} segments "
                          f"handled by the training policy (swap, clip to the video, drop empty and duplicates)",
                          stacklevel=2)
        self._items = self._make_items()

    # -- set-up --------------------------------------------------------------------------
    def _entry(self, v: VideoAnnotation, fps, stride, window) -> VideoEntry:
        if not v.duration > 0:
            raise DataError(f"video duration is {v.duration}", path=self.annotations.path, video=v.video_id,
                            fix="give every video a positive duration in seconds")
        if self.fixed_length is not None:
            timing = FeatureTiming.fixed_length(self.fixed_length, v.duration)
            n = self.fixed_length
        else:
            f = fps
            if f is None:   # the rate the features were made at (extraction may resample), else the video's
                video_fps = getattr(self.features, "video_fps", None)
                f = video_fps(v.video_id) if video_fps is not None else None
            if f is None:
                f = v.fps
            if f is None:
                raise DataError("no fps for this video", path=self.annotations.path, video=v.video_id,
                                fix="set data.fps, or add \"fps\" to each video in the annotations")
            timing = FeatureTiming(float(f), float(stride), float(window))
            n = self.features.length(v.video_id)
        seconds, keep, counts = _target_segments(v)
        for k, c in counts.items():
            self.defects[k] += c
        if not self.training:        # inference: a class unseen in training is no target (evaluation still sees it)
            known = [i for i in keep if v.labels[i] in self._class_set]
            self.unknown_labels += len(keep) - len(known)
            keep, seconds = known, seconds[[keep.index(i) for i in known]] if known else np.zeros((0, 2))
        labels = np.array([self.annotations.class_index(v.labels[i], v.video_id) for i in keep], dtype=np.int64)
        return VideoEntry(v.video_id, float(v.duration), timing, int(n),
                          timing.segments_to_index(seconds).reshape(-1, 2), labels)

    def _make_items(self) -> list[tuple[int, int, int]]:
        """``(entry index, start, end)`` per item; training crops are drawn in ``__getitem__``."""
        items = []
        for i, e in enumerate(self.entries):
            if self.training and not self.train_windows:
                items.append((i, 0, e.num_features))
                continue
            overlap = self.train_window_overlap if self.training else self.window_overlap
            for s, t in sliding_windows(e.num_features, self.max_seq_len, overlap):
                if self.training and self.trunc_thresh > 0 and len(e.segments):
                    if not len(crop_segments(e.segments, s, t, self.trunc_thresh)[1]):
                        continue          # a training window without an action teaches nothing but background
                items.append((i, s, t))
        if self.training and self.train_windows and not items:
            items = [(i, s, t) for i, e in enumerate(self.entries)
                     for s, t in sliding_windows(e.num_features, self.max_seq_len, self.train_window_overlap)]
        return items

    # -- public API ----------------------------------------------------------------------
    @property
    def classes(self) -> list[str]:
        return self.annotations.classes

    @property
    def num_classes(self) -> int:
        return len(self.annotations.classes)

    @property
    def input_dim(self) -> int:
        return self.features.dim

    @property
    def video_ids(self) -> list[str]:
        return [e.video_id for e in self.entries]

    def timing(self, video_id: str) -> FeatureTiming:
        return self._entry_of(video_id).timing

    def _entry_of(self, video_id: str) -> VideoEntry:
        for e in self.entries:
            if e.video_id == video_id:
                return e
        raise KeyError(video_id)

    def set_epoch(self, epoch: int) -> None:
        """Select the random crops of ``epoch`` (call before each training epoch)."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self._items)

    def load_features(self, entry: VideoEntry) -> np.ndarray:
        x = self.features.load(entry.video_id)                         # (T, C)
        if self.fixed_length is not None:
            x = resample_features(x, self.fixed_length)
        return x

    def __getitem__(self, index: int) -> dict:
        ei, start, end = self._items[index]
        e = self.entries[ei]
        x = self.load_features(e)                                      # (T, C)
        if len(x) != e.num_features:                                   # lengths read cheaply may differ for .pt
            e.num_features = len(x)
            end = min(end, len(x))
        start, end = self.window_of(index, e, start, end)
        item = self.targets_of(e, start, end)
        item["feats"] = torch.from_numpy(np.ascontiguousarray(x[start:end].T))  # (C, T)
        return item

    def window_of(self, index: int, e: VideoEntry, start: int, end: int) -> tuple[int, int]:
        """The item's steps ``[start, end)``: a random crop in training (without ``train_windows``).

        With ``train_windows`` and ``train_window_jitter`` the window keeps its length and moves by a random
        whole number of steps within half the windows' stride either way (inside the video), drawn anew each
        epoch: the windows then cut the actions at other places every epoch.
        """
        if self.training and not self.train_windows:
            rng = np.random.default_rng([self.seed, self.epoch, index])
            start, end = random_crop(e.num_features, self.max_seq_len, e.segments, rng, crop_ratio=self.crop_ratio,
                                     trunc_thresh=self.trunc_thresh)
        elif self.training and self.train_window_jitter:
            stride = max(1, int(round(self.max_seq_len * (1.0 - self.train_window_overlap))))
            shift = int(np.random.default_rng([self.seed, self.epoch, index]).integers(-(stride // 2), stride // 2 + 1))
            length = end - start
            start = int(min(max(start + shift, 0), max(e.num_features - length, 0)))
            end = start + length
        return start, end

    def targets_of(self, e: VideoEntry, start: int, end: int) -> dict:
        """Everything of an item but its inputs: targets relative to ``start``, ids, timing."""
        # a side that is not cut keeps its segments as they are (a start before the first
        # feature centre is real: an action at 0 s starts at index -window/2/stride)
        lo = start if start > 0 else -np.inf
        hi = end if end < e.num_features else np.inf
        thresh = self.trunc_thresh if self.training else 0.0
        segs, idx = crop_segments(e.segments, lo, hi, thresh)
        return {
            "segments": torch.from_numpy((segs - start).astype(np.float32)).reshape(-1, 2),  # (N, 2)
            "labels": torch.from_numpy(e.labels[idx]),                                     # (N,)
            "video_id": e.video_id,
            "offset": float(start),
            "duration": e.duration,
            "num_features": int(e.num_features),
            "timing": e.timing,
        }


def collate(items: list[dict], pad_to: int | None = None) -> dict:
    """Batch items: features padded with zeros to the longest (or ``pad_to``), masks True = valid."""
    if not items:
        raise ValueError("collate needs at least one item")
    lengths = [it["feats"].shape[1] for it in items]
    t = max(lengths) if pad_to is None else max(int(pad_to), max(lengths))
    c = items[0]["feats"].shape[0]
    feats = items[0]["feats"].new_zeros((len(items), c, t))                             # (B, C, T)
    masks = torch.zeros((len(items), t), dtype=torch.bool)                             # (B, T)
    for b, (it, n) in enumerate(zip(items, lengths)):
        feats[b, :, :n] = it["feats"]
        masks[b, :n] = True
    return {
        "feats": feats,
        "masks": masks,
        "segments": [it["segments"] for it in items],
        "labels": [it["labels"] for it in items],
        "video_ids": [it["video_id"] for it in items],
        "offsets": [it["offset"] for it in items],
        "durations": [it["duration"] for it in items],
        "num_features": [it["num_features"] for it in items],
        "timings": [it["timing"] for it in items],
    }
