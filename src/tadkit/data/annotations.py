"""Annotations: ActivityNet-style JSON, validated, in seconds.

The file layout is ``{"database": {video_id: {"subset", "duration", "annotations":
[{"segment": [start, end], "label": name}]}}}``; a bare ``{video_id: {...}}`` mapping is
accepted too. Optional per video: ``"fps"`` and ``"ignore"`` (a list of ``[start, end]``
regions such as THUMOS14's Ambiguous segments, which are neither actions nor background).

Loading never changes the ground truth: the ActivityNet protocol keeps duplicates and
zero-length segments, and so do we. Defects are *reported* by :func:`find_defects`;
the training dataset applies its own policy (see :mod:`tadkit.data.dataset`), and the
converters apply theirs (see :func:`sanitize`).
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

import numpy as np

from ..core.errors import DataError
from ..core.instances import Instances
from ..core.io import atomic_write_json, read_json

SUBSET_ALIASES = {"train": "training", "val": "validation", "test": "testing"}


@dataclass
class VideoAnnotation:
    video_id: str
    subset: str
    duration: float
    segments: np.ndarray                      # (N, 2) seconds
    labels: list[str]
    fps: float | None = None
    ignore: np.ndarray = field(default_factory=lambda: np.zeros((0, 2)))  # (M, 2) seconds

    def __post_init__(self):
        self.segments = np.asarray(self.segments, dtype=np.float64).reshape(-1, 2)
        self.ignore = np.asarray(self.ignore, dtype=np.float64).reshape(-1, 2)
        self.labels = list(self.labels)

    def to_dict(self) -> dict:
        d = {"subset": self.subset, "duration": float(self.duration)}
        if self.fps is not None:
            d["fps"] = float(self.fps)
        d["annotations"] = [{"segment": [float(s), float(e)], "label": lab}
                            for (s, e), lab in zip(self.segments, self.labels)]
        if len(self.ignore):
            d["ignore"] = [[float(s), float(e)] for s, e in self.ignore]
        return d


def _number(value, what: str, path, video) -> float:
    try:
        x = float(value)
    except (TypeError, ValueError):
        raise DataError(f"{what} must be a number, got {value!r}", path=path, video=video,
                        fix="write it as a number of seconds") from None
    except OverflowError:
        raise DataError(f"{what} is too large a number", path=path, video=video,
                        fix="write a finite number of seconds") from None
    if not np.isfinite(x):
        raise DataError(f"{what} is {value!r}", path=path, video=video, fix="write a finite number of seconds")
    return x


def _segment(seg, path, video, where) -> tuple[float, float]:
    if not isinstance(seg, (list, tuple)) or len(seg) != 2:
        raise DataError(f"{where}: segment must be [start, end], got {seg!r}", path=path, video=video,
                        fix="write each segment as a pair of seconds")
    return (_number(seg[0], f"{where}: segment start", path, video),
            _number(seg[1], f"{where}: segment end", path, video))


def parse_video(video_id: str, entry, path=None) -> VideoAnnotation:
    """Validate one database entry."""
    if not isinstance(entry, dict):
        raise DataError(f"entry must be an object, got {type(entry).__name__}", path=path, video=video_id,
                        fix='write {"subset": ..., "duration": ..., "annotations": [...]}')
    if "subset" not in entry:
        raise DataError('missing key "subset"', path=path, video=video_id,
                        fix='add "subset": "training", "validation" or "testing"')
    subset = entry["subset"]
    if not isinstance(subset, str):
        raise DataError(f'"subset" must be a string, got {subset!r}', path=path, video=video_id, fix="name the subset")
    duration_key = "duration" if "duration" in entry else "duration_second" if "duration_second" in entry else None
    if duration_key is None:
        raise DataError('missing key "duration"', path=path, video=video_id,
                        fix='add "duration": the video length in seconds')
    duration = _number(entry[duration_key], "duration", path, video_id)
    if duration <= 0:
        raise DataError(f"duration must be positive, got {duration}", path=path, video=video_id,
                        fix="write the video length in seconds")
    anns = entry.get("annotations", [])
    if anns is None:
        anns = []
    if not isinstance(anns, list):
        raise DataError('"annotations" must be a list', path=path, video=video_id,
                        fix='write "annotations": [{"segment": [s, e], "label": name}, ...]')
    segments, labels = [], []
    for i, ann in enumerate(anns):
        where = f"annotation {i}"
        if not isinstance(ann, dict) or "segment" not in ann or "label" not in ann:
            raise DataError(f'{where} needs "segment" and "label", got {ann!r}', path=path, video=video_id,
                            fix='write {"segment": [start, end], "label": name}')
        segments.append(_segment(ann["segment"], path, video_id, where))
        label = ann["label"]
        if not isinstance(label, str) or not label:
            raise DataError(f"{where}: label must be a class name, got {label!r}", path=path, video=video_id,
                            fix="write the class name as a string")
        labels.append(label)
    fps = entry.get("fps")
    if fps is not None:
        fps = _number(fps, "fps", path, video_id)
        if fps <= 0:
            raise DataError(f"fps must be positive, got {fps}", path=path, video=video_id, fix="fix or remove fps")
    ignore = entry.get("ignore", []) or []
    if not isinstance(ignore, (list, tuple)):
        raise DataError('"ignore" must be a list of [start, end] regions', path=path, video=video_id,
                        fix='write "ignore": [[start, end], ...] or leave it out')
    ignore = [_segment(s, path, video_id, "ignore region") for s in ignore]
    return VideoAnnotation(video_id, subset, duration, np.array(segments).reshape(-1, 2), labels, fps,
                           np.array(ignore).reshape(-1, 2))


def read_class_list(classes, path_hint=None) -> list[str] | None:
    """Classes from a list of names, or from a text file with one name per line."""
    if classes is None:
        return None
    if isinstance(classes, (str, os.PathLike)):
        p = Path(classes)
        if not p.exists():
            raise DataError("class list file not found", path=p, fix="pass a text file with one class name per line")
        names = [ln.strip() for ln in p.read_text(encoding="utf-8").splitlines() if ln.strip()]
    else:
        names = [str(c) for c in classes]
    if not names:
        raise DataError("the class list is empty", path=path_hint, fix="list at least one class")
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise DataError(f"the class list repeats {dup[:5]}", path=path_hint, fix="list each class once")
    return names


class Annotations:
    """All videos of an annotation file, with the class list.

    Class order: the explicit ``classes`` list when given, else the sorted label names
    of ``train_subset`` (all subsets when it has none).
    """

    def __init__(self, videos: dict[str, VideoAnnotation], classes: Iterable[str] | None = None,
                 path: str | os.PathLike | None = None, train_subset: str = "training"):
        self.videos = dict(videos)
        self.path = None if path is None else os.fspath(path)
        explicit = read_class_list(classes, self.path)
        if explicit is None:
            names = {lab for v in self.videos.values() if v.subset == train_subset for lab in v.labels}
            if not names:
                names = {lab for v in self.videos.values() for lab in v.labels}
            explicit = sorted(names)
        self.classes: list[str] = explicit
        self._index = {c: i for i, c in enumerate(self.classes)}
        self._alias: dict[str, str] | None = None

    # -- loading and saving ------------------------------------------------------------
    @classmethod
    def from_dict(cls, data, path=None, classes=None, train_subset="training") -> "Annotations":
        if not isinstance(data, dict):
            raise DataError("annotation file must hold a JSON object", path=path,
                            fix='write {"database": {video_id: {...}}}')
        if "database" in data:
            db = data["database"]
            if not isinstance(db, dict):
                raise DataError('"database" must map video ids to entries', path=path,
                                fix='write {"database": {video_id: {...}}}')
        elif data and all(isinstance(v, dict) and ("annotations" in v or "subset" in v) for v in data.values()):
            db = data  # a bare {video_id: entry} mapping
        else:
            raise DataError('missing key "database"', path=path,
                            fix='write {"database": {video_id: {"subset", "duration", "annotations"}}} '
                                "or convert the file with `tadkit convert`")
        videos = {str(vid): parse_video(str(vid), entry, path) for vid, entry in db.items()}
        if not videos:
            raise DataError("the annotation file lists no videos", path=path, fix="check that it is the right file")
        if classes is None and isinstance(data.get("classes"), list):
            classes = data["classes"]
        return cls(videos, classes=classes, path=path, train_subset=train_subset)

    @classmethod
    def load(cls, path, classes=None, train_subset="training") -> "Annotations":
        return cls.from_dict(read_json(path, "annotation file"), path=path, classes=classes,
                             train_subset=train_subset)

    def to_dict(self) -> dict:
        return {"version": "tadkit", "classes": list(self.classes),
                "database": {vid: v.to_dict() for vid, v in self.videos.items()}}

    def save(self, path) -> None:
        atomic_write_json(path, self.to_dict())

    # -- queries -----------------------------------------------------------------------
    @property
    def subsets(self) -> list[str]:
        return sorted({v.subset for v in self.videos.values()})

    def check_subset(self, subset: str) -> str:
        """Return the subset name as stored (``val`` finds ``validation``); error if absent."""
        have = self.subsets
        if subset in have:
            return subset
        alias = SUBSET_ALIASES.get(subset)
        if alias in have:
            return alias
        inverse = {v: k for k, v in SUBSET_ALIASES.items()}.get(subset)
        if inverse in have:
            return inverse
        raise DataError(f"no video is in subset {subset!r}; the subsets are {have}", path=self.path,
                        fix="pass one of those subset names")

    def select(self, subset: str | None) -> list[VideoAnnotation]:
        if subset is None:
            return list(self.videos.values())
        subset = self.check_subset(subset)
        return [v for v in self.videos.values() if v.subset == subset]

    def class_index(self, label: str, video: str | None = None) -> int:
        try:
            return self._index[label]
        except KeyError:
            raise DataError(f"unknown label {label!r}; the classes are {self.classes[:10]}"
                            f"{' ...' if len(self.classes) > 10 else ''}", path=self.path, video=video,
                            fix="add it to data.classes or fix the annotation") from None

    def resolve(self, video_id: str) -> str | None:
        """The stored id for ``video_id``, allowing a ``v_`` prefix on either side."""
        if video_id in self.videos:
            return video_id
        if self._alias is None:
            self._alias = {}
            for vid in self.videos:
                alt = vid[2:] if vid.startswith("v_") else "v_" + vid
                if alt not in self.videos:
                    self._alias[alt] = vid
        return self._alias.get(video_id)

    def instances(self, video_id: str) -> Instances:
        v = self.videos[video_id]
        labels = [self.class_index(lab, video_id) for lab in v.labels]
        return Instances(v.segments, np.array(labels, dtype=np.int64))

    def __len__(self) -> int:
        return len(self.videos)

    def __repr__(self) -> str:
        n = sum(len(v.labels) for v in self.videos.values())
        return f"Annotations({len(self.videos)} videos, {n} instances, {len(self.classes)} classes, subsets={self.subsets})"


# -- defects -------------------------------------------------------------------------------
def find_defects(video: VideoAnnotation) -> list[str]:
    """Human-readable defects of one video: past the end, reversed, zero length, duplicates."""
    out = []
    seen = set()
    for (s, e), lab in zip(video.segments, video.labels):
        tag = f"{video.video_id} [{s:g}, {e:g}] {lab}"
        if s > e:
            out.append(f"{tag}: start after end")
        elif s == e:
            out.append(f"{tag}: zero length")
        if max(s, e) > video.duration or min(s, e) < 0:
            out.append(f"{tag}: outside the video (duration {video.duration:g} s)")
        key = (s, e, lab)
        if key in seen:
            out.append(f"{tag}: duplicate")
        seen.add(key)
    return out


def sanitize(video: VideoAnnotation, drop_defects: bool = False) -> tuple[VideoAnnotation, list[str]]:
    """The converters' policy for annotation defects; returns the fixed video and a report.

    - start after end: the two are swapped;
    - a segment reaching before 0 or past the duration is clipped to the video;
    - what clipping cannot fix (a segment wholly outside the video), zero-length segments
      and exact duplicates are kept and reported, since the evaluation protocol keeps
      them and instance counts then match the source; ``drop_defects`` drops them.
    """
    report, segs, labels = [], [], []
    seen = set()
    d = video.duration
    for (s, e), lab in zip(video.segments, video.labels):
        tag = f"{video.video_id} [{s:g}, {e:g}] {lab}"
        if s > e:
            s, e = e, s
            report.append(f"{tag}: start after end, swapped")
        if e <= 0 or s >= d:
            if drop_defects:
                report.append(f"{tag}: wholly outside the video (duration {d:g} s), dropped")
                continue
            report.append(f"{tag}: wholly outside the video (duration {d:g} s), kept")
        elif s < 0 or e > d:
            s, e = max(s, 0.0), min(e, d)
            report.append(f"{tag}: reaches outside the video (duration {d:g} s), clipped to [{s:g}, {e:g}]")
        if s == e:
            if drop_defects:
                report.append(f"{tag}: zero length, dropped")
                continue
            report.append(f"{tag}: zero length, kept")
        key = (s, e, lab)
        if key in seen:
            if drop_defects:
                report.append(f"{tag}: duplicate, dropped")
                continue
            report.append(f"{tag}: duplicate, kept")
        seen.add(key)
        segs.append((s, e))
        labels.append(lab)
    fixed = VideoAnnotation(video.video_id, video.subset, video.duration, np.array(segs).reshape(-1, 2),
                            labels, video.fps, video.ignore)
    return fixed, report
