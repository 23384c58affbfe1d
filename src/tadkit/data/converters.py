"""Converters from the common benchmark annotation layouts into tadkit's :class:`Annotations`.

``convert(fmt, inputs, ...)`` reads one of the layouts below and returns ActivityNet-style
annotations (seconds) plus a report: what was converted, then one line per defect handled.
Every video goes through :func:`tadkit.data.annotations.sanitize`, the converters' single
defect policy (reversed segments swapped, overhanging segments clipped, the rest kept and
reported, or dropped with ``drop_defects``). Nothing is changed silently.

Layouts
-------
``thumos14``
    A folder of per-class text files ``<Class>_<val|test>.txt`` with lines
    ``video_name start end`` (seconds). ``Ambiguous_*.txt`` is not a class: its segments
    become the video's ``ignore`` regions. Durations and fps come from a
    ``video_info.json`` (``{video: {"duration", "fps", ...}}``) found in the folder or up to
    two levels above it, or passed as ``video_info``.
``multithumos``
    ``{video: {"subset", "duration", "actions": [[class 1..65, start, end]]}}`` as released
    with super-events (github piergiaj/super-events-cvpr18, ``data/multithumos.json``).
``activitynet-bsn``
    BSN's ``anet_anno_action.json`` (``v_`` ids, ``duration_second``), its
    ``video_info_new.csv`` (``video,numFrame,seconds,fps,rfps,subset,featureFrame``: the
    subset and fps) and optionally ``action_name.csv`` (the class order), in any order.
``charades``
    ``Charades_v1_{train,test}.csv``: ``id,...,actions,length`` with actions like
    ``c092 11.90 21.20;c147 0.00 12.60``; optional ``Charades_v1_classes.txt``.
``ego4d-mq``
    Ego4D Moment Queries ``moments_{train,val,test_unannotated}.json``. One tadkit video per
    clip (``clip_uid``), segments clip-relative.
``epic100``
    ``EPIC_100_{train,validation}.csv`` (timestamps ``HH:MM:SS.ss``), label from the ``verb``
    or ``noun`` column; durations from ``EPIC_100_video_info.csv``.
"""
from __future__ import annotations

import csv
import math
import os
import re
from pathlib import Path
from typing import Iterable

import numpy as np

from ..core.errors import DataError
from ..core.io import read_json
from .annotations import Annotations, VideoAnnotation, read_class_list, sanitize

FORMATS = ("thumos14", "multithumos", "activitynet-bsn", "charades", "ego4d-mq", "epic100")

# MultiTHUMOS class names, in the order of the 1-based indices used by multithumos.json.
# Provenance: the tuple ``MultiThumosDataset.CLASSES`` of github Media-Smart/vedatad
# (vedatad/datasets/multithumos.py), which reads the same index space. Cross-checked
# against an independent source: the per-class instance counts that the arctix
# documentation (github durandtibo/arctix, docs for ``arctix.dataset.multithumos``) lists
# from the official per-class files (Run 3693, Jump 3496, ..., VolleyballBump 15). All 65
# counts are distinct and every one matches the count of its index in multithumos.json,
# so this order is the only one consistent with both.
MULTITHUMOS_CLASSES = (
    "BaseballPitch", "BasketballDunk", "Billiards", "CleanAndJerk", "CliffDiving",
    "CricketBowling", "CricketShot", "Diving", "FrisbeeCatch", "GolfSwing", "HammerThrow",
    "HighJump", "JavelinThrow", "LongJump", "PoleVault", "Shotput", "SoccerPenalty",
    "TennisSwing", "ThrowDiscus", "VolleyballSpiking", "Walk", "Sit", "StandUp", "Stand",
    "Run", "Jump", "Fall", "PickUp", "Hug", "PatPerson", "HighFive", "FistPump", "ClapHands",
    "OneRaisedArmCelebrate", "TwoRaisedArmCelebrate", "Throw", "Drop", "OneHandedCatch",
    "TwoHandedCatch", "BodyRoll", "BodyTurn", "BodyBend", "BodyContract", "Squat",
    "BasketballDribble", "BasketballPass", "BasketballBlock", "BasketballShot",
    "BasketballGuard", "VolleyballSet", "VolleyballBump", "VolleyballBlock", "VolleyballServe",
    "WeightliftingClean", "WeightliftingJerk", "HammerThrowWindUp", "HammerThrowSpin",
    "HammerThrowRelease", "PoleVaultPlantPole", "ShotPutBend", "DiscusWindUp",
    "DiscusRelease", "TalkToCamera", "CloseUpTalkToCamera", "NoHuman",
)

_SUBSET_NAMES = {"train": "training", "training": "training", "val": "validation",
                 "valid": "validation", "validation": "validation", "test": "testing",
                 "testing": "testing"}
_SUBSET_ORDER = ("training", "validation", "testing")
_TIMESTAMP = re.compile(r"^(\d{1,9}):([0-5]?\d):([0-5]?\d(?:\.\d+)?)$")     # hours: at most 9 digits


# -- public entry point ----------------------------------------------------------------------
def convert(fmt: str, inputs: list[str], *, subset: str | None = None, task: str = "verb",
            video_info: str | None = None, classes: str | None = None, drop_defects: bool = False
            ) -> tuple[Annotations, list[str]]:
    """Convert annotation files of layout ``fmt`` into :class:`Annotations`.

    Parameters
    ----------
    fmt : one of :data:`FORMATS`.
    inputs : the files (folders for ``thumos14``) to convert; several are merged.
    subset : put every video in this subset instead of the one the files say.
    task : ``epic100`` only: label by ``"verb"`` or ``"noun"``.
    video_info : durations/fps (``thumos14``, ``epic100``, ``multithumos`` fps), or
        ``video_info_new.csv`` for ``activitynet-bsn``.
    classes : a class list file; its order is the class order (and for ``charades`` it maps
        ``c000`` codes to names, for ``multithumos`` 1-based indices to names).
    drop_defects : drop what :func:`sanitize` cannot fix instead of keeping it.

    Returns the annotations and a report: one line per thing converted (counts per subset)
    and one line per defect handled. Bad input raises :class:`DataError`.
    """
    key = str(fmt).strip().lower().replace("_", "-")
    if key not in _CONVERTERS:
        raise DataError(f"unknown annotation format {fmt!r}", fix=f"use one of: {', '.join(FORMATS)}")
    if isinstance(inputs, (str, os.PathLike)):
        inputs = [inputs]
    inputs = [os.fspath(p) for p in inputs or []]
    if not inputs:
        raise DataError(f"no input given to convert from {key}", fix="pass the annotation file(s) to convert")
    seen: dict[str, str] = {}
    for inp in inputs:
        real = os.path.realpath(inp)
        if real in seen:
            raise DataError(f"given twice (also as {seen[real]})", path=inp, fix="pass each input once")
        seen[real] = inp
    subset = _subset_name(subset) if subset is not None else None
    col = _Collector()
    if video_info is not None and key in ("charades", "ego4d-mq"):
        col.notes.append(f"video info {video_info} not used: {key} files hold the durations")
    if task != "verb" and key != "epic100":
        col.notes.append(f"task {task!r} not used: only epic100 has verb and noun labels")
    class_names = _CONVERTERS[key](inputs, col, subset=subset, task=task, video_info=video_info,
                                   classes=classes)
    return _finish(key, inputs, col, class_names, classes, drop_defects)


# -- shared machinery ----------------------------------------------------------------------
class _Video:
    """One video being assembled from the input files."""

    def __init__(self, subset: str, source: str):
        self.subset = subset
        self.source = source
        self.duration: float | None = None
        self.fps: float | None = None
        self.segments: list[tuple[float, float]] = []
        self.labels: list[str] = []
        self.ignore: list[tuple[float, float]] = []


class _Collector:
    def __init__(self):
        self.videos: dict[str, _Video] = {}
        self.notes: list[str] = []
        self.class_source = None  # the class list file, when an input rather than ``classes``

    def video(self, vid: str, subset: str, source, *, once: bool = False) -> _Video:
        source = os.fspath(source)
        v = self.videos.get(vid)
        if v is None:
            v = self.videos[vid] = _Video(subset, source)
            return v
        if once:
            where = "again" if v.source == source else f"also in {v.source}"
            raise DataError(f"listed twice ({where})", path=source, video=vid,
                            fix="keep one entry per video")
        if v.subset != subset:
            raise DataError(f"is in subset {subset!r} here but in {v.subset!r} in {v.source}", path=source,
                            video=vid, fix="a video belongs to one subset: remove it from one file, or pass --subset")
        return v


def _subset_name(name) -> str:
    if not isinstance(name, str) or not name.strip():
        raise DataError(f"subset must be a name, got {name!r}", fix="pass training, validation or testing")
    return _SUBSET_NAMES.get(name.strip().lower(), name.strip())


def _subset_from_filename(name: str) -> str | None:
    low = name.lower()
    if "validation" in low or re.search(r"(^|[^a-z])val([^a-z]|$)", low):
        return "validation"
    if "train" in low:
        return "training"
    if "test" in low:
        return "testing"
    return None


def _file(path, what: str) -> Path:
    p = Path(path)
    if not p.exists():
        raise DataError(f"{what} not found", path=p, fix="check the path")
    if p.is_dir():
        raise DataError(f"expected a {what}, found a directory", path=p, fix="pass the file inside it")
    return p


def _float(value, what: str, path, where: str | None = None, video: str | None = None) -> float:
    prefix = f"{where}: " if where else ""
    try:
        x = float(str(value).strip()) if isinstance(value, str) else float(value)
        if isinstance(value, bool):
            raise TypeError
    except (TypeError, ValueError):
        raise DataError(f"{prefix}{what} must be a number, got {value!r}", path=path, video=video,
                        fix="write it as a number of seconds") from None
    except OverflowError:
        raise DataError(f"{prefix}{what} is too large a number", path=path, video=video,
                        fix="write a finite number") from None
    if not math.isfinite(x):
        raise DataError(f"{prefix}{what} is {value!r}", path=path, video=video, fix="write a finite number")
    return x


def _positive(value, what, path, where=None, video=None) -> float:
    x = _float(value, what, path, where, video)
    if x <= 0:
        prefix = f"{where}: " if where else ""
        raise DataError(f"{prefix}{what} must be positive, got {value!r}", path=path, video=video,
                        fix="write the video length in seconds")
    return x


def _timestamp(text, what: str, path, where: str) -> float:
    """``HH:MM:SS.ss`` -> seconds."""
    m = _TIMESTAMP.match(str(text).strip()) if text is not None else None
    if m is None:
        raise DataError(f"{where}: {what} {text!r} is not a timestamp HH:MM:SS.ss", path=path,
                        fix="write times as HH:MM:SS.ss, e.g. 00:01:02.50")
    h, mnt, s = m.groups()
    return int(h) * 3600 + int(mnt) * 60 + float(s)


def _read_csv(path, required: Iterable[str], what: str) -> tuple[list[tuple[int, dict]], list[str]]:
    """Rows of a CSV with a header, as ``(line number, row)``; checks the required columns."""
    p = _file(path, what)
    required = list(required)
    rows: list[tuple[int, dict]] = []
    try:
        with open(p, newline="", encoding="utf-8-sig") as f:
            reader = csv.DictReader(f)
            header = reader.fieldnames
            if not header:
                raise DataError(f"the {what} is empty", path=p, fix=f"pass the {what} with its header line")
            header = [h.strip() for h in header]
            reader.fieldnames = header
            missing = [c for c in required if c not in header]
            if missing:
                raise DataError(f"missing column{'s' if len(missing) > 1 else ''} {', '.join(missing)}; "
                                f"the header has {', '.join(header)}", path=p,
                                fix=f"pass the {what} with columns {', '.join(required)}")
            for row in reader:
                line = reader.line_num
                if None in row:
                    raise DataError(f"line {line}: {len(header) + len(row[None])} fields but the header has "
                                    f"{len(header)}", path=p, fix="quote fields that contain commas")
                short = [c for c in required if row.get(c) is None]
                if short:
                    raise DataError(f"line {line}: too few fields, no value for {', '.join(short)}", path=p,
                                    fix=f"give every row the {len(header)} columns of the header")
                rows.append((line, row))
    except csv.Error as e:
        raise DataError(f"not a valid CSV: {e}", path=p, fix=f"pass the {what}") from None
    except UnicodeDecodeError:
        raise DataError("not a UTF-8 text file", path=p, fix=f"pass the {what}, not a binary file") from None
    return rows, header


def _read_lines(path, what: str) -> list[str]:
    p = _file(path, what)
    try:
        return p.read_text(encoding="utf-8-sig").splitlines()
    except UnicodeDecodeError:
        raise DataError("not a UTF-8 text file", path=p, fix=f"pass the {what}, not a binary file") from None


def _plain_classes(path) -> list[str]:
    _read_lines(path, "class list")  # checks the file exists and is text
    return read_class_list(os.fspath(path), path_hint=os.fspath(path))


def _read_video_info(path) -> dict[str, dict]:
    """Per-video ``duration`` and ``fps`` from a JSON mapping or a CSV.

    JSON: ``{video: {"duration" | "duration_second" | "seconds", "fps", ...}}`` (THUMOS14's
    ``video_info.json``), also under ``"database"``. CSV: an id column (``video_id``,
    ``video`` or ``id``) and ``duration`` or ``seconds``, optionally ``fps``
    (``EPIC_100_video_info.csv``).
    """
    p = Path(path)
    info: dict[str, dict] = {}
    if p.suffix.lower() == ".csv":
        rows, header = _read_csv(p, [], "video info CSV")
        id_col = next((c for c in ("video_id", "video", "id") if c in header), None)
        dur_col = next((c for c in ("duration", "seconds", "duration_second") if c in header), None)
        if id_col is None or dur_col is None:
            raise DataError(f"needs a video id column (video_id) and a duration column (duration); "
                            f"the header has {', '.join(header)}", path=p,
                            fix="pass a video info CSV such as EPIC_100_video_info.csv (video_id,duration,fps)")
        for line, row in rows:
            vid = (row[id_col] or "").strip()
            if not vid:
                raise DataError(f"line {line}: empty video id", path=p, fix="fill in the video id")
            fps = row.get("fps")
            info[vid] = {"duration": _positive(row[dur_col], "duration", p, f"line {line}", vid),
                         "fps": _positive(fps, "fps", p, f"line {line}", vid) if fps not in (None, "") else None}
        return info
    data = read_json(p, "video info file")
    if isinstance(data, dict) and isinstance(data.get("database"), dict):
        data = data["database"]
    if not isinstance(data, dict) or not data:
        raise DataError("video info must map video ids to {\"duration\": ..., \"fps\": ...}", path=p,
                        fix="pass a video_info.json like THUMOS14's")
    for vid, entry in data.items():
        if not isinstance(entry, dict):
            raise DataError(f"entry must be an object, got {type(entry).__name__}", path=p, video=str(vid),
                            fix='write {"duration": seconds, "fps": frames per second}')
        key = next((k for k in ("duration", "duration_second", "seconds") if k in entry), None)
        if key is None:
            raise DataError('missing key "duration"', path=p, video=str(vid), fix="add the video length in seconds")
        fps = entry.get("fps")
        info[str(vid)] = {"duration": _positive(entry[key], "duration", p, video=str(vid)),
                          "fps": _positive(fps, "fps", p, video=str(vid)) if fps is not None else None}
    return info


def _sanitize_ignore(vid: str, regions, duration: float) -> tuple[np.ndarray, list[str]]:
    """Ignore regions get the same treatment as segments: swapped, clipped, or dropped if outside."""
    out, report = [], []
    for s, e in regions:
        tag = f"{vid} ignore region [{s:g}, {e:g}]"
        if s > e:
            s, e = e, s
            report.append(f"{tag}: start after end, swapped")
        if e <= 0 or s >= duration:
            report.append(f"{tag}: wholly outside the video (duration {duration:g} s), dropped")
            continue
        if s < 0 or e > duration:
            s, e = max(s, 0.0), min(e, duration)
            report.append(f"{tag}: reaches outside the video (duration {duration:g} s), clipped to [{s:g}, {e:g}]")
        out.append((s, e))
    return np.array(out, dtype=np.float64).reshape(-1, 2), report


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" + ("" if n == 1 else "s")


def _finish(fmt: str, inputs: list[str], col: _Collector, class_names: list[str] | None, classes_path,
            drop_defects: bool) -> tuple[Annotations, list[str]]:
    if not col.videos:
        raise DataError(f"found no videos to convert in {', '.join(inputs)}",
                        path=inputs[0] if len(inputs) == 1 else None,
                        fix=f"check that these are {fmt} annotation files")
    videos: dict[str, VideoAnnotation] = {}
    defects: list[str] = []
    for vid in sorted(col.videos):
        raw = col.videos[vid]
        va = VideoAnnotation(vid, raw.subset, float(raw.duration),
                             np.array(raw.segments, dtype=np.float64).reshape(-1, 2), raw.labels, raw.fps)
        fixed, rep = sanitize(va, drop_defects)
        defects.extend(rep)
        ignore, irep = _sanitize_ignore(vid, raw.ignore, va.duration)
        defects.extend(irep)
        order = np.lexsort((fixed.segments[:, 1], fixed.segments[:, 0]))  # by start, then end; stable
        ignore = ignore[np.lexsort((ignore[:, 1], ignore[:, 0]))]
        videos[vid] = VideoAnnotation(vid, raw.subset, va.duration, fixed.segments[order],
                                      [fixed.labels[i] for i in order], raw.fps, ignore)
    labels = {lab for v in videos.values() for lab in v.labels}
    if class_names is not None:
        unknown = sorted(labels - set(class_names))
        if unknown:
            raise DataError(f"{len(unknown)} label(s) are not in the class list: {unknown[:5]}",
                            path=col.class_source or classes_path, fix="pass the complete class list, or none")
        names = list(class_names)
    else:
        names = sorted(labels)
    ann = Annotations(videos, classes=names or None)

    report = [f"format: {fmt}", f"inputs: {', '.join(inputs)}"]
    subsets = [s for s in _SUBSET_ORDER if s in ann.subsets] + [s for s in ann.subsets if s not in _SUBSET_ORDER]
    for s in subsets:
        vs = [v for v in videos.values() if v.subset == s]
        n_inst = sum(len(v.labels) for v in vs)
        empty = sum(1 for v in vs if not v.labels)
        n_ign = sum(len(v.ignore) for v in vs)
        line = f"{s}: {_plural(len(vs), 'video')}, {_plural(n_inst, 'instance')}"
        if n_ign:
            line += f", {_plural(n_ign, 'ignore region')}"
        if empty:
            line += f" ({_plural(empty, 'video')} without instances)"
        report.append(line)
    preview = ", ".join(ann.classes[:5]) + (", ..." if len(ann.classes) > 5 else "")
    report.append(f"classes: {len(ann.classes)}" + (f" ({preview})" if ann.classes else ""))
    report.extend(col.notes)
    if defects:
        report.append(f"defects: {len(defects)} handled ({'dropped' if drop_defects else 'kept'} where they "
                      "cannot be fixed; reversed segments swapped, overhanging ones clipped)")
    else:
        report.append("defects: none")
    report.extend(defects)
    return ann, report


# -- THUMOS14 ----------------------------------------------------------------------------------
_THUMOS_FILE = re.compile(r"^(?P<cls>.+)_(?P<subset>val|validation|test|testing|train|training)$", re.I)


def _find_video_info(folder: Path) -> Path | None:
    for d in (folder, folder.parent, folder.parent.parent):
        cand = d / "video_info.json"
        if cand.is_file():
            return cand
    return None


def _thumos14(inputs, col: _Collector, *, subset, video_info, classes, **_) -> list[str] | None:
    info_cache: dict[Path, dict] = {}
    info_given = _read_video_info(video_info) if video_info is not None else None
    if info_given is not None:
        col.notes.append(f"durations and fps from {video_info}")
    amb_count = 0
    for inp in inputs:
        p = Path(inp)
        if not p.exists():
            raise DataError("THUMOS14 annotation folder not found", path=p, fix="check the path")
        files = sorted(p.glob("*.txt")) if p.is_dir() else [p]
        folder = p if p.is_dir() else p.parent
        if info_given is not None:
            info, info_path = info_given, Path(video_info)
        else:
            info_path = _find_video_info(folder)
            if info_path is None:
                raise DataError("no video_info.json in this folder or the two above it; the video durations "
                                "are needed", path=p, fix="pass --video-info FILE (a JSON {video: {duration, fps}})")
            if info_path not in info_cache:
                info_cache[info_path] = _read_video_info(info_path)
                col.notes.append(f"durations and fps from {info_path}")
            info = info_cache[info_path]
        n_class_files = 0
        seen_here: set[str] = set()
        folder_subset = _subset_from_filename(folder.name)  # e.g. annotations_val
        for f in files:
            m = _THUMOS_FILE.match(f.stem)
            if f.stem.lower().startswith("readme") or (m is None and subset is None and folder_subset is None):
                col.notes.append(f"skipped {f} (not a per-class file <Class>_val.txt / <Class>_test.txt)")
                continue
            cls = m.group("cls") if m else f.stem
            sub = subset or (_subset_name(m.group("subset")) if m else folder_subset)
            n_class_files += 1
            is_amb = cls.lower() == "ambiguous"
            for i, line in enumerate(_read_lines(f, "THUMOS14 per-class file"), start=1):
                parts = line.split()
                if not parts:
                    continue
                if len(parts) != 3:
                    raise DataError(f"line {i}: expected 'video_name start end', got {line.strip()!r}", path=f,
                                    fix="write one instance per line: video name, start and end in seconds")
                vid = parts[0]
                s = _float(parts[1], "start", f, f"line {i}", vid)
                e = _float(parts[2], "end", f, f"line {i}", vid)
                v = col.video(vid, sub, f)
                seen_here.add(vid)
                if is_amb:
                    v.ignore.append((s, e))
                    amb_count += 1
                else:
                    v.segments.append((s, e))
                    v.labels.append(cls)
        if n_class_files == 0:
            raise DataError("no per-class annotation files <Class>_val.txt / <Class>_test.txt here", path=p,
                            fix="pass the folder of THUMOS14 per-class text files, or --subset to take any .txt")
        known = [vid for vid in seen_here if vid in info]
        if seen_here and not known:
            raise DataError(f"none of the {len(seen_here)} videos of {p} is in this video info file", path=info_path,
                            fix="pass --video-info with the durations of these videos")
        for vid in sorted(seen_here):
            v = col.videos[vid]
            if vid in info:
                v.duration, v.fps = info[vid]["duration"], info[vid]["fps"]
            else:
                v.duration = max(max(s, e) for s, e in v.segments + v.ignore)
                if v.duration <= 0:
                    raise DataError(f"not in {info_path} and every segment ends at 0 s, so its duration is "
                                    "unknown", path=p, video=vid, fix="pass --video-info with its duration")
                col.notes.append(f"{vid}: not in {info_path}; duration estimated as {v.duration:g} s "
                                 "(the last segment end)")
    if amb_count:
        col.notes.append(f"Ambiguous: {amb_count} segments kept as ignore regions, not as a class")
    for vid in sorted(col.videos):
        v = col.videos[vid]
        if not v.segments and v.ignore:
            col.notes.append(f"{vid}: only Ambiguous segments; listed with no instances and "
                             f"{len(v.ignore)} ignore regions")
    return _plain_classes(classes) if classes is not None else None


# -- MultiTHUMOS -------------------------------------------------------------------------------
def _indexed_classes(path) -> list[str]:
    """Class names in index order: lines ``name`` or ``<1-based index> <name>``."""
    lines = [ln.strip() for ln in _read_lines(path, "class list") if ln.strip()]
    pairs = [re.match(r"^(\d+)\s+(\S.*)$", ln) for ln in lines]
    if lines and all(pairs):
        by_index = {int(m.group(1)): m.group(2).strip() for m in pairs}
        if sorted(by_index) != list(range(1, len(lines) + 1)):
            raise DataError("the numbered class list must number its lines 1..N once each", path=path,
                            fix="write one '<index> <name>' per line, or plain names in index order")
        return read_class_list([by_index[i] for i in range(1, len(lines) + 1)], path_hint=os.fspath(path))
    return _plain_classes(path)


def _multithumos(inputs, col: _Collector, *, subset, video_info, classes, **_) -> list[str]:
    names = _indexed_classes(classes) if classes is not None else list(MULTITHUMOS_CLASSES)
    if classes is None:
        col.notes.append("class names: the official MultiTHUMOS 65-class order (index 1 = BaseballPitch)")
    fps_info = _read_video_info(video_info) if video_info is not None else None
    for inp in inputs:
        p = _file(inp, "MultiTHUMOS JSON")
        data = read_json(p, "MultiTHUMOS JSON")
        if not isinstance(data, dict) or not data:
            raise DataError('expected {video: {"subset", "duration", "actions"}}', path=p,
                            fix="pass multithumos.json (as released with super-events)")
        for vid, entry in data.items():
            vid = str(vid)
            if not isinstance(entry, dict) or "duration" not in entry:
                raise DataError('entry needs "duration", "subset" and "actions"', path=p, video=vid,
                                fix="pass multithumos.json (as released with super-events)")
            if subset is None and not isinstance(entry.get("subset"), str):
                raise DataError('missing key "subset"', path=p, video=vid, fix="add it, or pass --subset")
            v = col.video(vid, subset or _subset_name(entry["subset"]), p, once=True)
            v.duration = _positive(entry["duration"], "duration", p, video=vid)
            actions = entry.get("actions") or []
            if not isinstance(actions, list):
                raise DataError('"actions" must be a list of [class, start, end]', path=p, video=vid,
                                fix="write each action as [class index, start, end]")
            for j, act in enumerate(actions):
                if not isinstance(act, (list, tuple)) or len(act) != 3:
                    raise DataError(f"action {j}: expected [class, start, end], got {act!r}", path=p, video=vid,
                                    fix="write each action as [class index 1..65, start, end]")
                c = _float(act[0], "class index", p, f"action {j}", vid)
                if c != int(c) or not 1 <= int(c) <= len(names):
                    raise DataError(f"action {j}: class index {act[0]!r} is not in 1..{len(names)}", path=p,
                                    video=vid, fix="use 1-based class indices, or pass the matching class list")
                v.segments.append((_float(act[1], "start", p, f"action {j}", vid),
                                   _float(act[2], "end", p, f"action {j}", vid)))
                v.labels.append(names[int(c) - 1])
            if fps_info is not None and vid in fps_info:
                v.fps = fps_info[vid]["fps"]
    return names


# -- ActivityNet (BSN layout) ----------------------------------------------------------------------
def _anet_class_file(path) -> list[str]:
    p = _file(path, "class list")
    rows = []
    try:
        with open(p, newline="", encoding="utf-8-sig") as f:
            rows = [r for r in csv.reader(f) if r and any(x.strip() for x in r)]
    except (csv.Error, UnicodeDecodeError):
        raise DataError("cannot read the class list", path=p, fix="pass action_name.csv, one class per line") from None
    if rows and rows[0][0].strip().lower() in ("action", "name", "label", "class"):
        rows = rows[1:]
    return read_class_list([r[0].strip() for r in rows], path_hint=os.fspath(p))


def _csv_header(path) -> list[str]:
    p = _file(path, "CSV file")
    try:
        with open(p, newline="", encoding="utf-8-sig") as f:
            first = next(csv.reader(f), [])
    except (csv.Error, UnicodeDecodeError):
        raise DataError("cannot read this CSV file", path=p, fix="pass video_info_new.csv or action_name.csv") from None
    return [h.strip() for h in first]


def _activitynet_bsn(inputs, col: _Collector, *, subset, video_info, classes, **_) -> list[str] | None:
    ann_files, info_files, class_file = [], [], classes
    for inp in inputs + ([video_info] if video_info is not None else []):
        p = _file(inp, "input file")
        if p.suffix.lower() == ".json":
            ann_files.append(p)
            continue
        header = _csv_header(p)
        if "video" in header and "subset" in header:
            info_files.append(p)
        elif len(header) == 1:
            if class_file is not None and os.fspath(class_file) != os.fspath(p):
                raise DataError("two class lists given", path=p, fix="pass one action_name.csv")
            class_file = p
        else:
            raise DataError(f"cannot tell what this file is (header {', '.join(header)})", path=p,
                            fix="pass anet_anno_action.json, video_info_new.csv (video,...,subset) "
                                "and optionally action_name.csv")
    if not ann_files:
        raise DataError("no annotation JSON among the inputs", path=inputs[0] if len(inputs) == 1 else None,
                        fix="pass anet_anno_action.json (and video_info_new.csv)")
    info: dict[str, tuple[str, float | None, Path]] = {}
    for p in info_files:
        rows, header = _read_csv(p, ["video", "subset"], "video info CSV (video_info_new.csv)")
        for line, row in rows:
            fps = row.get("fps")
            fps = _positive(fps, "fps", p, f"line {line}") if fps not in (None, "") else None
            info[row["video"].strip()] = (_subset_name(row["subset"]), fps, p)
        col.notes.append(f"subsets and fps from {p}")
    if not info_files and subset is None:
        raise DataError("no video_info_new.csv given, so the subset of each video is unknown", path=ann_files[0],
                        fix="pass video_info_new.csv as an input (or --video-info), or --subset")
    used_info = set()
    for p in ann_files:
        data = read_json(p, "ActivityNet annotation JSON")
        if isinstance(data, dict) and isinstance(data.get("database"), dict):
            data = data["database"]
        if not isinstance(data, dict) or not data:
            raise DataError('expected {video: {"duration_second", "annotations"}}', path=p,
                            fix="pass BSN's anet_anno_action.json")
        for vid, entry in data.items():
            vid = str(vid)
            if not isinstance(entry, dict):
                raise DataError(f"entry must be an object, got {type(entry).__name__}", path=p, video=vid,
                                fix='write {"duration_second": ..., "annotations": [...]}')
            key = "duration_second" if "duration_second" in entry else "duration" if "duration" in entry else None
            if key is None:
                raise DataError('missing key "duration_second"', path=p, video=vid,
                                fix="add the video length in seconds")
            alt = vid[2:] if vid.startswith("v_") else "v_" + vid
            found = vid if vid in info else alt if alt in info else None
            if subset is not None:
                sub = subset
            elif found is not None:
                sub = info[found][0]
            elif isinstance(entry.get("subset"), str):
                sub = _subset_name(entry["subset"])
            else:
                raise DataError(f"not in {', '.join(map(str, info_files))}, so its subset is unknown", path=p,
                                video=vid, fix="pass the matching video_info_new.csv, or --subset")
            v = col.video(vid, sub, p, once=True)
            v.duration = _positive(entry[key], "duration", p, video=vid)
            if found is not None:
                v.fps = info[found][1]
                used_info.add(found)
            anns = entry.get("annotations") or []
            if not isinstance(anns, list):
                raise DataError('"annotations" must be a list', path=p, video=vid,
                                fix='write [{"segment": [start, end], "label": name}, ...]')
            for j, a in enumerate(anns):
                seg = a.get("segment") if isinstance(a, dict) else None
                if not isinstance(seg, (list, tuple)) or len(seg) != 2 or not isinstance(a.get("label"), str):
                    raise DataError(f"annotation {j}: expected {{\"segment\": [start, end], \"label\": name}}, "
                                    f"got {a!r}", path=p, video=vid, fix="repair the annotation")
                v.segments.append((_float(seg[0], "segment start", p, f"annotation {j}", vid),
                                   _float(seg[1], "segment end", p, f"annotation {j}", vid)))
                v.labels.append(a["label"])
    extra = len(set(info) - used_info)
    if extra:
        col.notes.append(f"{extra} videos of the video info CSV are not in the annotation JSON; not listed")
    if class_file is None:
        return None
    col.class_source = class_file
    return _anet_class_file(class_file)


# -- Charades ------------------------------------------------------------------------------------
def _charades_classes(path) -> dict[str, str]:
    codes: dict[str, str] = {}
    for i, line in enumerate(_read_lines(path, "Charades class list"), start=1):
        if not line.strip():
            continue
        m = re.match(r"^\s*(c\d+)\s+(\S.*?)\s*$", line)
        if m is None:
            raise DataError(f"line {i}: expected 'c000 Class name', got {line.strip()!r}", path=path,
                            fix="pass Charades_v1_classes.txt")
        if m.group(1) in codes:
            raise DataError(f"line {i}: code {m.group(1)} listed twice", path=path, fix="list each code once")
        codes[m.group(1)] = m.group(2)
    if not codes:
        raise DataError("the class list is empty", path=path, fix="pass Charades_v1_classes.txt")
    return codes


def _charades(inputs, col: _Collector, *, subset, classes, **_) -> list[str] | None:
    codes = _charades_classes(classes) if classes is not None else None
    for inp in inputs:
        p = _file(inp, "Charades CSV")
        sub = subset or _subset_from_filename(p.name)
        if sub is None:
            raise DataError("cannot tell the subset from the file name", path=p,
                            fix="name it *train*.csv or *test*.csv, or pass --subset")
        rows, _ = _read_csv(p, ["id", "actions", "length"], "Charades CSV")
        for line, row in rows:
            vid = row["id"].strip()
            where = f"line {line}"
            if not vid:
                raise DataError(f"{where}: empty id", path=p, fix="fill in the video id")
            v = col.video(vid, sub, p, once=True)
            v.duration = _positive(row["length"], "length", p, where, vid)
            for item in row["actions"].split(";"):
                if not item.strip():
                    continue
                parts = item.split()
                if len(parts) != 3:
                    raise DataError(f"{where}: action {item.strip()!r} is not 'c000 start end'", path=p, video=vid,
                                    fix="write actions as 'c092 11.90 21.20;c147 0.00 12.60'")
                code = parts[0]
                if codes is not None and code not in codes:
                    raise DataError(f"{where}: class code {code!r} is not in the class list", path=p, video=vid,
                                    fix="pass the complete Charades_v1_classes.txt")
                v.segments.append((_float(parts[1], "start", p, where, vid), _float(parts[2], "end", p, where, vid)))
                v.labels.append(codes[code] if codes is not None else code)
    if codes is None:
        col.notes.append("labels are the class codes (pass --classes Charades_v1_classes.txt for names)")
        return None
    return list(codes.values())


# -- Ego4D Moment Queries -------------------------------------------------------------------------
# Field names as read by the Ego4D episodic-memory repository's MQ/Convert_annotation.py
# (videos[].video_uid/split/clips[].clip_uid/video_start_sec/video_end_sec/annotations[].labels[],
# keeping labels whose "primary" is true) and its converted clip annotations
# (MQ/Evaluation/ego4d/annot/clip_annotations_split.json: labels' start_time/end_time are
# clip-relative, within [0, clip length]).
def _ego4d_mq(inputs, col: _Collector, *, subset, classes, **_) -> list[str] | None:
    skipped = 0
    for inp in inputs:
        p = _file(inp, "Ego4D Moment Queries JSON")
        data = read_json(p, "Ego4D Moment Queries JSON")
        if not isinstance(data, dict) or not isinstance(data.get("videos"), list):
            raise DataError('missing key "videos"', path=p,
                            fix="pass an Ego4D moments_{train,val,test_unannotated}.json")
        for i, video in enumerate(data["videos"]):
            if not isinstance(video, dict) or not isinstance(video.get("clips"), list):
                raise DataError(f"videos[{i}] needs a list of \"clips\"", path=p, fix="pass an Ego4D moments JSON")
            if subset is not None:
                sub = subset
            elif isinstance(video.get("split"), str):
                sub = _subset_name(video["split"])
            else:
                raise DataError(f'videos[{i}] has no "split"', path=p, video=video.get("video_uid"),
                                fix="pass --subset")
            for k, clip in enumerate(video["clips"]):
                if not isinstance(clip, dict) or not clip.get("clip_uid"):
                    raise DataError(f'videos[{i}].clips[{k}] has no "clip_uid"', path=p,
                                    video=video.get("video_uid"), fix="pass an Ego4D moments JSON")
                cid = str(clip["clip_uid"])
                if "clip_start_sec" in clip and "clip_end_sec" in clip:
                    a, b = "clip_start_sec", "clip_end_sec"
                elif "video_start_sec" in clip and "video_end_sec" in clip:
                    a, b = "video_start_sec", "video_end_sec"
                else:
                    raise DataError("clip has neither clip_start_sec/clip_end_sec nor video_start_sec/video_end_sec",
                                    path=p, video=cid, fix="pass an Ego4D moments JSON")
                duration = _float(clip[b], b, p, video=cid) - _float(clip[a], a, p, video=cid)
                if duration <= 0:
                    raise DataError(f"clip length {b} - {a} = {duration:g} s is not positive", path=p, video=cid,
                                    fix="repair the clip times")
                new = cid not in col.videos
                v = col.video(cid, sub, p)
                if not new:
                    col.notes.append(f"{cid}: clip listed more than once; labels merged")
                v.duration = duration if new else max(v.duration, duration)
                for ann in clip.get("annotations") or []:
                    if not isinstance(ann, dict):
                        raise DataError(f"annotation must be an object with \"labels\", got {ann!r}", path=p,
                                        video=cid, fix="pass an Ego4D moments JSON")
                    for j, lab in enumerate(ann.get("labels") or []):
                        where = f"annotator {ann.get('annotator_uid', '?')} label {j}"
                        if not isinstance(lab, dict) or not {"start_time", "end_time", "label"} <= set(lab):
                            raise DataError(f"{where}: needs start_time, end_time and label, got {lab!r}", path=p,
                                            video=cid, fix="pass an Ego4D moments JSON")
                        if not lab.get("primary", True):
                            skipped += 1
                            continue
                        if not isinstance(lab["label"], str) or not lab["label"].strip():
                            raise DataError(f"{where}: label must be a class name, got {lab['label']!r}", path=p,
                                            video=cid, fix="repair the label")
                        v.segments.append((_float(lab["start_time"], "start_time", p, where, cid),
                                           _float(lab["end_time"], "end_time", p, where, cid)))
                        v.labels.append(lab["label"])
    col.notes.append("labels of all annotators kept, one video per clip (clip_uid), times clip-relative")
    if skipped:
        col.notes.append(f"skipped {_plural(skipped, 'non-primary label')} "
                         "(the official MQ conversion keeps primary ones only)")
    return _plain_classes(classes) if classes is not None else None


# -- EPIC-Kitchens-100 ------------------------------------------------------------------------------
# The ``verb``/``noun`` columns hold the word as narrated (``put``, ``place``, ``put-down`` ...);
# the benchmark's classes are ``verb_class``/``noun_class`` (97 verbs, 300 nouns), named by the
# ``key`` column of EPIC_100_verb_classes.csv / EPIC_100_noun_classes.csv (id,key,instances,category).
def _epic_classes(path) -> tuple[list[str], dict[int, str] | None]:
    """Class names in order, and ``{class id: key}`` for a class CSV with id,key columns."""
    p = _file(path, "class list")
    if p.suffix.lower() == ".csv":
        rows, header = _read_csv(p, [], "class list CSV")
        if "key" in header and "id" in header:
            by_id: dict[int, str] = {}
            for line, row in rows:
                cid = _float(row["id"], "id", p, f"line {line}")
                if cid != int(cid) or int(cid) in by_id:
                    raise DataError(f"line {line}: id {row['id']!r} is not a new integer", path=p,
                                    fix="pass EPIC_100_verb_classes.csv or EPIC_100_noun_classes.csv")
                by_id[int(cid)] = (row["key"] or "").strip()
            names = read_class_list([by_id[k] for k in sorted(by_id)], path_hint=os.fspath(p))
            return names, by_id
        if "key" in header:
            return read_class_list([(r["key"] or "").strip() for _, r in rows], path_hint=os.fspath(p)), None
    return _plain_classes(p), None


def _epic100(inputs, col: _Collector, *, subset, task, video_info, classes, **_) -> list[str] | None:
    if task not in ("verb", "noun"):
        raise DataError(f"task must be 'verb' or 'noun', got {task!r}", fix="pass --task verb or --task noun")
    info = _read_video_info(video_info) if video_info is not None else None
    names, key_of = _epic_classes(classes) if classes is not None else (None, None)
    cls_col = f"{task}_class"
    words: dict[int, set] = {}      # class id -> the words written for it
    for inp in inputs:
        p = _file(inp, "EPIC-Kitchens-100 CSV")
        sub = subset or _subset_from_filename(p.name)
        if sub is None:
            raise DataError("cannot tell the subset from the file name", path=p,
                            fix="name it *train*, *validation* or *test*, or pass --subset")
        required = ["video_id", "start_timestamp", "stop_timestamp", task] + ([cls_col] if key_of else [])
        rows, header = _read_csv(p, required, "EPIC-Kitchens-100 CSV")
        has_ids = cls_col in header
        for line, row in rows:
            where = f"line {line}"
            vid = row["video_id"].strip()
            if not vid:
                raise DataError(f"{where}: empty video_id", path=p, fix="fill in the video id")
            label = row[task].strip()
            if not label:
                raise DataError(f"{where}: empty {task}", path=p, video=vid, fix=f"fill in the {task}")
            cid = None
            if has_ids and row[cls_col] is not None:
                text = row[cls_col].strip()
                if not re.fullmatch(r"\d{1,18}", text):       # an int64, not 5000 digits
                    raise DataError(f"{where}: {cls_col} must be a class number, got {row[cls_col]!r}", path=p,
                                    video=vid, fix=f"write the {task} class id as an integer")
                cid = int(text)
                words.setdefault(cid, set()).add(label)
            if key_of is not None:
                if cid not in key_of:
                    raise DataError(f"{where}: {cls_col} {cid} is not in the class list", path=p, video=vid,
                                    fix=f"pass the complete EPIC_100_{task}_classes.csv")
                label = key_of[cid]
            s = _timestamp(row["start_timestamp"], "start_timestamp", p, where)
            e = _timestamp(row["stop_timestamp"], "stop_timestamp", p, where)
            v = col.video(vid, sub, p)
            v.segments.append((s, e))
            v.labels.append(label)
    estimated = []
    for vid, v in col.videos.items():
        if info is not None and vid in info:
            v.duration, v.fps = info[vid]["duration"], info[vid]["fps"]
        else:
            v.duration = max(max(s, e) for s, e in v.segments)
            if v.duration <= 0:
                raise DataError("cannot estimate the duration: every segment ends at 0 s", video=vid,
                                path=video_info or inputs[0], fix="pass --video-info EPIC_100_video_info.csv")
            estimated.append(vid)
    if estimated:
        head = ", ".join(sorted(estimated)[:5]) + (", ..." if len(estimated) > 5 else "")
        why = f"not in {video_info}" if info is not None else "no video info given"
        col.notes.append(f"{len(estimated)} videos ({head}): {why}; duration estimated as the last segment end "
                         "(pass --video-info EPIC_100_video_info.csv for exact durations)")
    else:
        col.notes.append(f"durations and fps from {video_info}")
    if key_of is not None:
        col.notes.append(f"labels: the {task} classes ({cls_col}) named by {classes}")
        return names
    col.notes.append(f"labels: the {task} column as written")
    shared = {k: sorted(w) for k, w in sorted(words.items()) if len(w) > 1}
    if shared:
        ex = "; ".join(f"{k}: {', '.join(w)}" for k, w in list(shared.items())[:3])
        col.notes.append(f"{len(shared)} {cls_col} ids are written with several {task}s ({ex}); the labels keep "
                         f"the words, pass --classes EPIC_100_{task}_classes.csv to label by the benchmark classes")
    if names is not None:
        return names
    by_id = [next(iter(words[k])) for k in sorted(words)]
    if words and not shared and len(set(by_id)) == len(by_id) \
            and len(by_id) == len({lab for v in col.videos.values() for lab in v.labels}):
        col.notes.append(f"class order: by {cls_col}")
        return by_id
    return None


_CONVERTERS = {
    "thumos14": _thumos14,
    "multithumos": _multithumos,
    "activitynet-bsn": _activitynet_bsn,
    "charades": _charades,
    "ego4d-mq": _ego4d_mq,
    "epic100": _epic100,
}
