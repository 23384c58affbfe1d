"""Label sheets: the annotations a user writes by hand, read, checked against the videos, split.

Accepted
--------
CSV or TSV
    UTF-8 with or without a byte-order mark, LF or CRLF line ends. The delimiter (comma,
    tab or semicolon) is the one under which the header line names the most known columns.
    One header line, then one row per action instance. Header names are matched
    case-insensitively, spaces and hyphens read as underscores:

    - video: ``video, file, filename, file_name, video_id, video_name, clip, clip_id``
    - start: ``start, onset, begin, start_time, t_start, start_s, start_sec, start_seconds``
    - end: ``end, offset, stop, end_time, t_end, end_s, end_sec, end_seconds``
    - label: ``label, class, class_name, behavior, behaviour, action, category``
    - optional subset: ``subset, split, set``

    Other columns are kept in the header but not read. Blank rows (all fields empty) are
    skipped.
Times
    Seconds (``12.5``, or ``12,5`` with a decimal comma; ``-1`` is read and then reported as a negative start),
    ``hh:mm:ss(.ms)`` or ``mm:ss(.ms)`` (minutes and seconds below 60 under a higher field;
    the fraction may follow ``.`` or ``,``). Anything else is reported, not guessed.
ActivityNet-style JSON
    ``{"database": {video: {"annotations": [{"segment": [s, e], "label": l}], "subset": ...}}}``
    (or the bare ``{video: {...}}`` mapping), as :mod:`tadkit.data.annotations` reads it;
    ``subset`` and ``duration`` are optional here since the videos are measured. A video
    with an empty annotation list is kept: a video without actions.

Choices
-------
- Reading fails (:class:`DataError`) only for what makes the sheet unreadable as a whole:
  a missing or non-UTF-8 file, no header, a required column missing or matched twice. A
  bad value in a row is kept with the row and reported by :func:`check_against_videos`,
  so that one report lists *all* the problems of the sheet at once.
- Each row keeps its line number in the sheet (for JSON: its position, counted from 1,
  among all the annotations of the file) and the original column names are kept in
  :attr:`LabelSheet.columns`, so results can be written back with the user's names.
- A ``video`` value matches a file of the video folder by file name (``a.mp4``) or by
  stem (``a``), case as given; the video id used downstream is the file's stem. A stem
  shared by two files (``a.mp4``, ``a.avi``) is reported as ambiguous.
- An interval may end up to ``tolerance`` (default 0.1 s) past the video's measured end
  (annotation tools round); :func:`to_annotations` clips it to the video.
- :func:`apply_problems` with ``drop_defects`` drops the defective rows; a video left
  with no rows, whose rows were all defective, is dropped too (kept, it would be taught
  as a video without actions), and so is a video whose file is missing or unreadable.
- :func:`split_by_video` never puts one video in two subsets. Without a subset column it
  shuffles the videos with the seed (after sorting them, so the row order of the sheet
  does not matter), then greedily gives every class seen in at least two videos one
  validation video (rarest classes first, never taking a class's last training video),
  then fills the validation share with the remaining videos.
"""
from __future__ import annotations

import csv
import io
import json
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping

from ..core.errors import DataError

__all__ = ["SheetRow", "LabelSheet", "Problem", "parse_time", "read_label_sheet", "match_videos",
           "video_durations", "check_against_videos", "apply_problems", "split_by_video", "to_annotations",
           "HEADER_SYNONYMS", "SUBSET_SYNONYMS"]

HEADER_SYNONYMS: dict[str, tuple[str, ...]] = {
    "video": ("video", "file", "filename", "file_name", "video_id", "videoid", "video_name", "clip", "clip_id"),
    "start": ("start", "onset", "begin", "start_time", "t_start", "starttime", "start_s", "start_sec",
              "start_seconds"),
    "end": ("end", "offset", "stop", "end_time", "t_end", "endtime", "end_s", "end_sec", "end_seconds"),
    "label": ("label", "class", "class_name", "behavior", "behaviour", "action", "category"),
    "subset": ("subset", "split", "set"),
}
REQUIRED = ("video", "start", "end", "label")
SUBSET_SYNONYMS = {"train": "training", "training": "training", "trn": "training",
                   "val": "validation", "valid": "validation", "validation": "validation", "dev": "validation",
                   "test": "testing", "testing": "testing", "tst": "testing"}
_SUBSET_FIX = "write train, val or test in the subset column"
_TIME_FIX = "write times as seconds (12.5) or hh:mm:ss.ms (00:00:12.500)"
_DROP_FIX = "fix the sheet, or pass --drop-defects"
_TIMESTAMP = re.compile(r"^(?:(\d+):)?(\d+):(\d+(?:[.,]\d*)?)$")
_DECIMAL_COMMA = re.compile(r"^[+-]?\d+,\d+$")
_NUMBER = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$")
_ROLE_BY_NAME = {name: role for role, names in HEADER_SYNONYMS.items() for name in names}


def _video_suffixes() -> tuple[str, ...]:
    from .frames import VIDEO_SUFFIXES          # imported here: tadkit.data.frames imports torch
    return VIDEO_SUFFIXES


# -- data -------------------------------------------------------------------------------------
@dataclass
class SheetRow:
    """One action instance as the sheet gives it.

    ``start``/``end`` are seconds, or ``None`` when ``start_text``/``end_text`` is not a
    time. ``line`` is the sheet's line number (JSON: the annotation's position from 1),
    ``where`` says it in words.
    """

    video: str
    start: float | None
    end: float | None
    label: str
    subset: str | None
    line: int
    start_text: str = ""
    end_text: str = ""
    where: str = ""
    fields: int | None = None         # the row's field count, when it has more non-empty fields than the header

    def __post_init__(self):
        if not self.where:
            self.where = f"line {self.line}"


@dataclass
class LabelSheet:
    """A label sheet as read: rows, original column names and format.

    ``columns`` maps each role (``video``, ``start``, ``end``, ``label``, and ``subset``
    when present) to the column name the sheet uses; ``header`` is the whole header line.
    ``videos`` lists the distinct video values in order of first appearance (for JSON, also
    the videos without annotations, whose subsets ``video_subsets`` holds). ``format`` is
    ``"csv"``, ``"tsv"`` or ``"json"``.
    """

    path: str
    format: str
    rows: list[SheetRow]
    columns: dict[str, str]
    header: list[str] = field(default_factory=list)
    delimiter: str | None = None
    videos: list[str] = field(default_factory=list)
    video_subsets: dict[str, str | None] = field(default_factory=dict)   # JSON: each video's subset

    @property
    def has_subsets(self) -> bool:
        return "subset" in self.columns

    @property
    def labels(self) -> list[str]:
        return sorted({r.label for r in self.rows if r.label})

    def rows_of(self, video: str) -> list[SheetRow]:
        return [r for r in self.rows if r.video == video]


@dataclass(frozen=True)
class Problem:
    """One thing wrong with the sheet: ``kind``, where (``lines``: the rows concerned), the
    video, the offending value and a message. ``str()`` gives one line naming the place."""

    kind: str          # missing_video, ambiguous_video, unreadable_video, empty_video, bad_time,
    #                    negative_start, reversed, empty_interval, past_end, empty_label, bad_row
    where: str
    video: str
    value: str
    message: str
    lines: tuple[int, ...] = ()

    def __str__(self) -> str:
        return f"{self.where}: {self.message}"


# -- times ------------------------------------------------------------------------------------
def parse_time(value) -> float | None:
    """Seconds from ``12.5``, ``hh:mm:ss(.ms)`` or ``mm:ss(.ms)``; ``None`` if not a time."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, (int, float)):
        x = float(value)
        return x if math.isfinite(x) else None
    text = str(value).strip()
    if _DECIMAL_COMMA.match(text):               # 1,5: seconds with a decimal comma (European exports)
        text = text.replace(",", ".")
    if _NUMBER.match(text):
        x = float(text)
        return x if math.isfinite(x) else None
    m = _TIMESTAMP.match(text)
    if m is None:
        return None
    h, mnt, sec = m.groups()
    s = float(sec.replace(",", "."))
    if s >= 60 or (h is not None and int(mnt) >= 60):
        return None
    return (int(h) * 3600 if h is not None else 0) + int(mnt) * 60 + s


# -- reading ----------------------------------------------------------------------------------
def _norm(name: str) -> str:
    return re.sub(r"[\s\-]+", "_", name.strip().lstrip("\ufeff").strip().lower())


def _match_header(header: list[str]) -> dict[str, list[int]]:
    found: dict[str, list[int]] = {}
    for i, name in enumerate(header):
        role = _ROLE_BY_NAME.get(_norm(name))
        if role:
            found.setdefault(role, []).append(i)
    return found


def read_label_sheet(path) -> LabelSheet:
    """Read a CSV/TSV label sheet or an ActivityNet-style JSON (see the module docstring)."""
    p = Path(path)
    if not p.exists():
        raise DataError("label sheet not found", path=p, fix="check the path")
    if p.is_dir():
        raise DataError("expected a label sheet, found a directory", path=p, fix="pass the CSV, TSV or JSON file")
    try:
        text = p.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError:
        raise DataError("not a UTF-8 text file", path=p,
                        fix="save the sheet as CSV UTF-8 (or TSV) from the spreadsheet") from None
    if not text.strip():
        raise DataError("the label sheet is empty", path=p, fix="write a header line video,start,end,label and rows")
    if p.suffix.lower() == ".json" or text.lstrip().startswith(("{", "[")):
        return _read_json(p, text)
    return _read_table(p, text)


def _read_table(p: Path, text: str) -> LabelSheet:
    first = next(ln for ln in text.splitlines() if ln.strip())
    best = None
    for delim in ("\t", ",", ";"):
        header = next(csv.reader([first], delimiter=delim))
        score = (len({r for r in _match_header(header) if r in REQUIRED}), len(header))
        if best is None or score > best[0]:
            best = (score, delim)
    delim = best[1]
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delim)
    try:
        header = next(h for h in reader if any(c.strip() for c in h))
    except csv.Error as e:
        raise DataError(f"not a valid CSV: {e}", path=p, fix="check the header line") from None
    header = [h.strip().lstrip("\ufeff").strip() for h in header]
    found = _match_header(header)
    twice = {r: idx for r, idx in found.items() if len(idx) > 1}
    if twice:
        role, idx = next(iter(twice.items()))
        raise DataError(f"columns {', '.join(header[i] for i in idx)} all name the {role}", path=p,
                        fix="keep one of them, or rename the others")
    missing = [r for r in REQUIRED if r not in found]
    if missing:
        names = "; ".join(f"{r}: {', '.join(HEADER_SYNONYMS[r][:5])}" for r in missing)
        raise DataError(f"no column for {', '.join(missing)}; the header has {', '.join(header) or 'nothing'}",
                        path=p, fix=f"name the columns, e.g. {names}")
    col = {r: idx[0] for r, idx in found.items()}
    rows: list[SheetRow] = []
    prev = reader.line_num
    try:
        for fields in reader:
            line, prev = prev + 1, reader.line_num
            if not any(f.strip() for f in fields):
                continue
            get = (lambda role: fields[col[role]].strip() if role in col and col[role] < len(fields) else "")
            row = SheetRow(video=get("video"), start=parse_time(get("start")), end=parse_time(get("end")),
                           label=get("label"), subset=get("subset") if "subset" in col else None, line=line,
                           start_text=get("start"), end_text=get("end"))
            if any(f.strip() for f in fields[len(header):]):
                row.fields = len(fields)     # kept; check_against_videos reports it
            rows.append(row)
    except csv.Error as e:
        raise DataError(f"line {reader.line_num}: not valid CSV: {e}", path=p,
                        fix="check the quotes on that line") from None
    columns = {r: header[i] for r, i in col.items()}
    videos = list(dict.fromkeys(r.video for r in rows if r.video))
    return LabelSheet(os.fspath(p), "tsv" if delim == "\t" else "csv", rows, columns, header, delim, videos)


def _read_json(p: Path, text: str) -> LabelSheet:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise DataError(f"invalid JSON at line {e.lineno} column {e.colno}: {e.msg}", path=p,
                        fix="repair the file, or write the labels as a CSV") from None
    if isinstance(data, dict) and "database" in data:
        db = data["database"]
    elif isinstance(data, dict) and data and all(isinstance(v, dict) for v in data.values()):
        db = data
    else:
        db = None
    if not isinstance(db, dict) or not db:
        raise DataError('expected {"database": {video: {"annotations": [...]}}}', path=p,
                        fix="write the labels in the ActivityNet layout, or as a CSV video,start,end,label")
    rows: list[SheetRow] = []
    videos: list[str] = []
    has_subset = False
    n = 0
    for vid, entry in db.items():
        vid = str(vid)
        if not isinstance(entry, dict):
            raise DataError(f"entry must be an object, got {type(entry).__name__}", path=p, video=vid,
                            fix='write {"annotations": [{"segment": [start, end], "label": name}]}')
        anns = entry.get("annotations") or []
        if not isinstance(anns, list):
            raise DataError('"annotations" must be a list', path=p, video=vid,
                            fix='write "annotations": [{"segment": [start, end], "label": name}, ...]')
        subset = entry.get("subset")
        has_subset |= subset is not None
        subset = None if subset is None else str(subset).strip()
        videos.append(vid)
        for i, ann in enumerate(anns):
            n += 1
            ann = ann if isinstance(ann, dict) else {}
            seg = ann.get("segment")
            s, e = (seg[0], seg[1]) if isinstance(seg, (list, tuple)) and len(seg) == 2 else (seg, seg)
            label = ann.get("label")
            rows.append(SheetRow(video=vid, start=parse_time(s), end=parse_time(e),
                                 label=label.strip() if isinstance(label, str) else "", subset=subset, line=n,
                                 start_text=json.dumps(s), end_text=json.dumps(e),
                                 where=f"video {vid!r} annotation {i + 1}"))
    columns = {"video": "database", "start": "segment", "end": "segment", "label": "label"}
    if has_subset:
        columns["subset"] = "subset"
    return LabelSheet(os.fspath(p), "json", rows, columns, ["video", "start", "end", "label"]
                      + (["subset"] if has_subset else []), None, videos,
                      {v: None if db[v].get("subset") is None else str(db[v]["subset"]).strip() for v in videos})


# -- checking ---------------------------------------------------------------------------------
def _lines(rows: list[SheetRow], sheet: LabelSheet) -> tuple[str, tuple[int, ...]]:
    lines = tuple(r.line for r in rows)
    if not rows:
        return "sheet", ()
    if sheet.format == "json":
        return rows[0].where.split(" annotation")[0], lines
    shown = ", ".join(str(x) for x in lines[:5]) + (f" (+{len(lines) - 5} more)" if len(lines) > 5 else "")
    return (f"line {shown}" if len(lines) == 1 else f"lines {shown}"), lines


def match_videos(sheet: LabelSheet, video_dir) -> tuple[dict[str, Path], list[Problem]]:
    """``{video value: file}`` for the sheet's videos found in ``video_dir``, and a problem for
    each one missing or ambiguous."""
    d = Path(video_dir)
    if not d.is_dir():
        raise DataError("video folder not found", path=d, fix="pass the folder holding the videos")
    suffixes = _video_suffixes()
    by_name: dict[str, Path] = {}
    by_stem: dict[str, list[Path]] = {}
    for f in sorted(d.iterdir()):
        if f.is_file() and f.suffix.lower() in suffixes and not f.name.startswith("."):
            by_name[f.name] = f
            by_stem.setdefault(f.stem, []).append(f)
    found: dict[str, Path] = {}
    problems: list[Problem] = []
    for v in sheet.videos:
        rows = sheet.rows_of(v)
        where, lines = _lines(rows, sheet)
        if sheet.format == "json" and not rows:
            where = f"video {v!r}"
        if v in by_name:
            found[v] = by_name[v]
        elif len(by_stem.get(v, [])) == 1:
            found[v] = by_stem[v][0]
        elif v in by_stem:
            names = ", ".join(f.name for f in by_stem[v])
            problems.append(Problem("ambiguous_video", where, v, v,
                                    f"video {v!r} matches several files ({names}) in {d}", lines))
        else:
            problems.append(Problem("missing_video", where, v, v, f"video {v!r} not found in {d}", lines))
    return found, problems


def video_durations(sheet: LabelSheet, video_dir=None, durations: Mapping[str, float] | None = None
                    ) -> tuple[dict[str, float], list[Problem]]:
    """Durations in seconds of the sheet's videos, keyed by the sheet's video values.

    ``durations`` (keyed by the video value or the file stem) is used where it has the
    video; otherwise the file found in ``video_dir`` is probed. Without ``video_dir`` a
    video absent from ``durations`` is reported missing. Returns the durations and the
    problems (missing, ambiguous or unreadable videos).
    """
    durations = dict(durations or {})
    out: dict[str, float] = {}
    problems: list[Problem] = []
    if video_dir is None:
        files: dict[str, Path] = {}
        for v in sheet.videos:
            if v not in durations:
                where, lines = _lines(sheet.rows_of(v), sheet)
                problems.append(Problem("missing_video", where if lines else f"video {v!r}", v, v,
                                        f"video {v!r} not found among the given durations", lines))
    else:
        files, problems = match_videos(sheet, video_dir)
    for v in sheet.videos:
        f = files.get(v)
        known = durations.get(v, durations.get(f.stem) if f is not None else None)
        if known is not None:
            out[v] = float(known)
        elif f is not None:
            from .video import probe_video
            try:
                out[v] = float(probe_video(f).duration)
            except DataError as e:
                where, lines = _lines(sheet.rows_of(v), sheet)
                problems.append(Problem("unreadable_video", where if lines else f"video {v!r}", v, f.name,
                                        f"video {v!r} cannot be read: {e.message}", lines))
    return out, problems


def check_against_videos(sheet: LabelSheet, video_dir=None, durations: Mapping[str, float] | None = None,
                         tolerance: float = 0.1) -> list[Problem]:
    """Every problem of the sheet, checked against the videos, in sheet order.

    Per video: file missing, ambiguous or unreadable. Per row: empty video value, a start
    or end that is not a time, negative start, reversed or empty interval, an interval
    ending more than ``tolerance`` seconds past the video's end, an empty label, a row with
    more fields than the header. ``durations`` (seconds, keyed by the video value or file
    stem) spares probing; see :func:`video_durations`.
    """
    found, problems = video_durations(sheet, video_dir, durations)
    for r in sheet.rows:
        one = [r.line]

        def add(kind, value, message):
            problems.append(Problem(kind, r.where, r.video, str(value), message, tuple(one)))

        if r.fields is not None:
            add("bad_row", r.fields, f"{r.fields} fields but the header has {len(sheet.header)} "
                                     f"(quote fields that hold the delimiter)")
        if not r.video:
            add("empty_video", "", "no video named")
        for what, x, text in (("start", r.start, r.start_text), ("end", r.end, r.end_text)):
            if x is None:
                add("bad_time", text, f"{what} {text!r} is not a time ({_TIME_FIX})" if text
                    else f"no {what} time ({_TIME_FIX})")
        if r.start is not None and r.start < 0:
            add("negative_start", r.start_text, f"start {r.start_text} is negative")
        if r.start is not None and r.end is not None:
            if r.end < r.start:
                add("reversed", f"{r.start_text}-{r.end_text}", f"end {r.end_text} is before start {r.start_text}")
            elif r.end == r.start:
                add("empty_interval", f"{r.start_text}-{r.end_text}",
                    f"empty interval: start and end are both {r.start_text}")
        d = found.get(r.video)
        if d is not None:
            for what, x, text in (("end", r.end, r.end_text), ("start", r.start, r.start_text)):
                if x is not None and x > d + tolerance:
                    add("past_end", text, f"{what} {text} is past the end of video {r.video!r} ({d:g} s)")
                    break
        if not r.label:
            add("empty_label", "", "no label")
    problems.sort(key=lambda pr: pr.lines[0] if pr.lines else 0)
    return problems


SHOWN_PROBLEMS = 100     # problems listed in the one-line error (a sheet with more is mostly wrong)


def apply_problems(sheet: LabelSheet, problems: list[Problem], drop_defects: bool = False) -> LabelSheet:
    """Raise one :class:`DataError` listing ``problems`` (the first :data:`SHOWN_PROBLEMS`), or with
    ``drop_defects`` return the sheet without the defective rows (and without videos left with no rows,
    or missing)."""
    if not problems:
        return sheet
    if not drop_defects:
        n = len(problems)
        shown = "; ".join(str(pr) for pr in problems[:SHOWN_PROBLEMS])
        more = f"; and {n - SHOWN_PROBLEMS} more" if n > SHOWN_PROBLEMS else ""
        raise DataError(f"{n} problem{'s' if n > 1 else ''} in the label sheet: {shown}{more}",
                        path=sheet.path, fix=_DROP_FIX)
    bad_lines = {x for pr in problems for x in pr.lines}
    bad_videos = {pr.video for pr in problems if pr.kind.endswith("_video")}
    rows = [r for r in sheet.rows if r.line not in bad_lines and r.video not in bad_videos]
    kept = {r.video for r in rows}
    videos = [v for v in sheet.videos if v not in bad_videos and (v in kept or not sheet.rows_of(v))]
    return LabelSheet(sheet.path, sheet.format, rows, dict(sheet.columns), list(sheet.header), sheet.delimiter,
                      videos, {v: s for v, s in sheet.video_subsets.items() if v in videos})


# -- splitting --------------------------------------------------------------------------------
def split_by_video(sheet: LabelSheet, val_fraction: float = 0.2, seed: int = 0) -> dict[str, str]:
    """``{video: "training" | "validation" | "testing"}``: the sheet's subset column, or a
    seeded split by video, stratified by class (see the module docstring)."""
    if sheet.has_subsets:
        return _given_split(sheet)
    if not 0 <= val_fraction < 1:
        raise DataError(f"the validation fraction must be in [0, 1), got {val_fraction}", path=sheet.path,
                        fix="pass a fraction such as 0.2")
    import numpy as np
    videos = sorted(sheet.videos)
    n = len(videos)
    n_val = 0 if val_fraction == 0 or n < 2 else min(n - 1, max(1, round(val_fraction * n)))
    order = [videos[i] for i in np.random.default_rng(seed).permutation(n)]
    classes_of = {v: {r.label for r in sheet.rows_of(v) if r.label} for v in videos}
    videos_of: dict[str, list[str]] = {}
    for v in order:
        for c in classes_of[v]:
            videos_of.setdefault(c, []).append(v)
    val: list[str] = []
    train_count = {c: len(vs) for c, vs in videos_of.items()}

    def keeps_training(v):
        return all(train_count[c] > 1 for c in classes_of[v])

    def take(v):
        val.append(v)
        for c in classes_of[v]:
            train_count[c] -= 1

    covered: set[str] = set()
    for c in sorted((c for c, vs in videos_of.items() if len(vs) >= 2), key=lambda c: (len(videos_of[c]), c)):
        if len(val) >= n_val:
            break
        if c in covered:
            continue
        pick = next((v for v in videos_of[c] if v not in val and keeps_training(v)), None)
        if pick is not None:
            take(pick)
            covered |= classes_of[pick]
    for strict in (True, False):
        for v in order:
            if len(val) >= n_val:
                break
            if v not in val and (keeps_training(v) or not strict):
                take(v)
    chosen = set(val)
    return {v: "validation" if v in chosen else "training" for v in sheet.videos}


def _given_split(sheet: LabelSheet) -> dict[str, str]:
    out: dict[str, str] = {}
    first: dict[str, SheetRow] = {}
    col = sheet.columns["subset"]
    for r in sheet.rows:
        raw = (r.subset or "").strip()
        name = SUBSET_SYNONYMS.get(raw.lower())
        if name is None:
            raise DataError(f"{r.where}: {col} {raw!r} is not a subset" if raw else f"{r.where}: no {col} given",
                            path=sheet.path, video=r.video or None, fix=_SUBSET_FIX)
        if r.video in out and out[r.video] != name:
            raise DataError(f"{r.where}: {col} {raw!r} but {first[r.video].where} puts video {r.video!r} in "
                            f"{out[r.video]}", path=sheet.path, fix="a video belongs to one subset: give all its "
                                                                      "rows the same one")
        out.setdefault(r.video, name)
        first.setdefault(r.video, r)
    for v in sheet.videos:            # JSON videos without annotations
        if v not in out:
            raw = (sheet.video_subsets.get(v) or "").strip()
            if raw.lower() not in SUBSET_SYNONYMS:
                raise DataError(f"video {v!r}: {col} {raw!r} is not a subset" if raw else f"video {v!r} has no {col}",
                                path=sheet.path, fix=_SUBSET_FIX)
            out[v] = SUBSET_SYNONYMS[raw.lower()]
    return {v: out[v] for v in sheet.videos}


# -- output -----------------------------------------------------------------------------------
def _video_id(value: str) -> str:
    p = Path(value)
    return p.stem if p.suffix.lower() in _video_suffixes() else value


def to_annotations(sheet: LabelSheet, subsets: Mapping[str, str], durations: Mapping[str, float]) -> dict:
    """tadkit's ActivityNet-style dict (what :meth:`Annotations.from_dict` reads) for the
    sheet's videos. The video id is the file stem (``a.mp4`` -> ``a``); segments are clipped
    to ``[0, duration]``. Call it on a sheet without problems (see :func:`apply_problems`)."""
    db: dict[str, dict] = {}
    for v in sheet.videos:
        if v not in subsets:
            raise DataError(f"video {v!r} has no subset", path=sheet.path, fix="split the sheet with split_by_video")
        if v not in durations:
            raise DataError(f"video {v!r} has no duration", path=sheet.path,
                            fix="pass the durations found by video_durations")
        vid = _video_id(v)
        if vid in db:
            raise DataError(f"videos {v!r} and another value both name video {vid!r}", path=sheet.path,
                            fix="write each video the same way in every row")
        d = float(durations[v])
        anns = []
        for r in sheet.rows_of(v):
            if r.start is None or r.end is None or not r.label:
                raise DataError(f"{r.where}: row is defective", path=sheet.path, fix=_DROP_FIX)
            anns.append({"segment": [max(0.0, r.start), min(d, r.end)], "label": r.label})
        db[vid] = {"subset": subsets[v], "duration": d, "annotations": anns}
    return {"version": "tadkit-label-sheet", "classes": sheet.labels, "database": db}
