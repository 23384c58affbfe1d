"""Label sheets: reading (headers, times, CSV/TSV/JSON), checking against videos, dropping,
the split by video, and the annotation dict."""
import json

import pytest

from tadkit.core.errors import DataError
from tadkit.data.annotations import Annotations
from tadkit.data.label_sheet import (HEADER_SYNONYMS, apply_problems, check_against_videos, parse_time,
                                     read_label_sheet, split_by_video, to_annotations)


def _write(tmp_path, text, name="labels.csv", bom=False, crlf=False):
    if crlf:
        text = text.replace("\n", "\r\n")
    p = tmp_path / name
    p.write_bytes((b"\xef\xbb\xbf" if bom else b"") + text.encode("utf-8"))
    return p


def _kinds(problems):
    return [(p.kind, p.lines) for p in problems]


# ----------------------------------------------------------------------------- reading


@pytest.mark.parametrize("i", range(5))
def test_each_synonym_header_set(tmp_path, i):
    names = {role: syn[min(i, len(syn) - 1)] for role, syn in HEADER_SYNONYMS.items() if role != "subset"}
    header = [names["video"].upper(), names["start"].title(), names["end"], names["label"].capitalize()]
    p = _write(tmp_path, ",".join(header) + "\nv1,1.5,2.5,walk\n")
    sheet = read_label_sheet(p)
    assert sheet.columns == dict(zip(["video", "start", "end", "label"], header))
    r, = sheet.rows
    assert (r.video, r.start, r.end, r.label, r.subset, r.line) == ("v1", 1.5, 2.5, "walk", None, 2)


@pytest.mark.parametrize("header", ["file,onset,offset,behavior", "clip,begin,stop,category",
                                    "Video ID,Start Time,End-Time,Class", "filename,t_start,t_end,action"])
def test_named_synonyms(tmp_path, header):
    sheet = read_label_sheet(_write(tmp_path, header + "\nv1,0,1,a\n"))
    assert set(sheet.columns) == {"video", "start", "end", "label"}
    assert sheet.columns["video"] == header.split(",")[0]


def test_subset_column_kept_with_its_name(tmp_path):
    sheet = read_label_sheet(_write(tmp_path, "video,start,end,label,Split,notes\nv1,0,1,a,train,x\n"))
    assert sheet.has_subsets and sheet.columns["subset"] == "Split" and sheet.rows[0].subset == "train"
    assert sheet.header == ["video", "start", "end", "label", "Split", "notes"]


@pytest.mark.parametrize("text, seconds", [
    ("12.5", 12.5), ("0", 0.0), ("01:02:03.250", 3723.25), ("1:02:03", 3723.0), ("02:03.5", 123.5),
    ("75:30", 4530.0), ("00:00:07,040", 7.04), ("-1.5", -1.5), (" 3 ", 3.0), ("12,5", 12.5), ("-1,5", -1.5),
])
def test_parse_time(text, seconds):
    assert parse_time(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "x", "1:2:3:4", "01:60:00", "00:00:60", "1:75", "nan", "inf", "12s", "1.2.3",
                                  "1,2,3", "1,"])
def test_parse_time_rejects(text):
    assert parse_time(text) is None


def test_tsv_with_bom_and_crlf(tmp_path):
    p = _write(tmp_path, "Video\tStart\tEnd\tLabel\nv1\t00:00:01.500\t00:01:00\tsniff\n\nv2\t2\t3\tgroom\n",
               name="labels.tsv", bom=True, crlf=True)
    sheet = read_label_sheet(p)
    assert sheet.format == "tsv" and sheet.columns["video"] == "Video"
    assert [(r.video, r.start, r.end, r.label, r.line) for r in sheet.rows] == [
        ("v1", 1.5, 60.0, "sniff", 2), ("v2", 2.0, 3.0, "groom", 4)]


def test_csv_with_bom_crlf_and_quoted_commas(tmp_path):
    p = _write(tmp_path, 'video,start,end,label\n"a,b",1,2,"walk, slow"\n', bom=True, crlf=True)
    sheet = read_label_sheet(p)
    assert sheet.format == "csv" and sheet.columns["video"] == "video"
    assert (sheet.rows[0].video, sheet.rows[0].label) == ("a,b", "walk, slow")


def test_semicolon_sheet(tmp_path):
    sheet = read_label_sheet(_write(tmp_path, "video;start;end;label\nv1;1;2;a\n"))
    assert sheet.delimiter == ";" and sheet.rows[0].end == 2.0


def test_json_input(tmp_path):
    data = {"database": {"v1": {"subset": "training", "duration": 10,
                                "annotations": [{"segment": [1, 2.5], "label": "a"},
                                                {"segment": ["00:00:03", 4], "label": "b"}]},
                         "v2": {"subset": "validation", "annotations": []}}}
    p = tmp_path / "labels.json"
    p.write_text(json.dumps(data))
    sheet = read_label_sheet(p)
    assert sheet.format == "json" and sheet.has_subsets and sheet.videos == ["v1", "v2"]
    assert [(r.video, r.start, r.end, r.label, r.line) for r in sheet.rows] == [
        ("v1", 1.0, 2.5, "a", 1), ("v1", 3.0, 4.0, "b", 2)]
    assert split_by_video(sheet) == {"v1": "training", "v2": "validation"}
    assert check_against_videos(sheet, durations={"v1": 10, "v2": 5}) == []


@pytest.mark.parametrize("text, match", [
    ("", "empty"), ("video,begin,label\nv,1,a\n", "no column for end"),
    ("video,start,onset,end,label\n", "all name the start"),
])
def test_unreadable_sheets_raise(tmp_path, text, match):
    with pytest.raises(DataError, match=match) as e:
        read_label_sheet(_write(tmp_path, text))
    assert e.value.path.endswith("labels.csv") and e.value.fix


def test_not_utf8_and_missing(tmp_path):
    p = tmp_path / "labels.csv"
    p.write_bytes("video,start,end,label\nvidéo,1,2,a\n".encode("utf-16"))
    with pytest.raises(DataError, match="UTF-8"):
        read_label_sheet(p)
    with pytest.raises(DataError, match="not found"):
        read_label_sheet(tmp_path / "nope.csv")


# ----------------------------------------------------------------------------- checking

DUR = {"v1": 10.0, "v2": 20.0}
HEAD = "video,start,end,label\n"


def _check(tmp_path, body, **kw):
    sheet = read_label_sheet(_write(tmp_path, HEAD + body))
    return sheet, check_against_videos(sheet, durations=kw.get("durations", DUR))


@pytest.mark.parametrize("body, kind, value", [
    ("v1,1,2,a\nv9,1,2,a\n", "missing_video", "v9"),
    ("v1,1,2,a\nv1,5,10.5,a\n", "past_end", "10.5"),
    ("v1,1,2,a\nv1,11,12,a\n", "past_end", "12"),
    ("v1,1,2,a\nv1,5,3,a\n", "reversed", "5-3"),
    ("v1,1,2,a\nv1,4,4,a\n", "empty_interval", "4-4"),
    ("v1,1,2,a\nv1,-1,3,a\n", "negative_start", "-1"),
    ("v1,1,2,a\nv1,1:2:3:4,5,a\n", "bad_time", "1:2:3:4"),
    ("v1,1,2,a\nv1,1,,a\n", "bad_time", ""),
    ("v1,1,2,a\nv1,1,2,\n", "empty_label", ""),
    ("v1,1,2,a\n,1,2,a\n", "empty_video", ""),
    ("v1,1,2,a\nv1,1,2,a,extra\n", "bad_row", "5"),
])
def test_each_defect_reported_with_its_line(tmp_path, body, kind, value):
    sheet, problems = _check(tmp_path, body)
    mine = [p for p in problems if p.kind == kind]
    assert len(mine) == 1, problems
    p, = mine
    assert p.lines == (3,) and p.value == value and str(p).startswith("line 3: ")
    assert all(3 in q.lines for q in problems)


def test_within_tolerance_is_not_past_end(tmp_path):
    _, problems = _check(tmp_path, "v1,1,10.05,a\n")
    assert problems == []


def test_all_problems_reported_at_once(tmp_path):
    body = "v1,1,2,a\nv9,1,2,a\nv1,5,3,a\nv2,-1,30,\nv1,x,2,b\nv9,3,4,b\n"
    sheet, problems = _check(tmp_path, body)
    assert _kinds(problems) == [
        ("missing_video", (3, 7)), ("reversed", (4,)), ("negative_start", (5,)), ("past_end", (5,)),
        ("empty_label", (5,)), ("bad_time", (6,))]
    assert str(problems[0]).startswith("lines 3, 7: video 'v9' not found")
    with pytest.raises(DataError) as e:
        apply_problems(sheet, problems, drop_defects=False)
    msg = str(e.value)
    assert "\n" not in msg and "6 problems in the label sheet" in msg and "more" not in msg
    assert all(str(pr) in msg for pr in problems)                     # every one, in one report
    assert msg.endswith("(fix the sheet, or pass --drop-defects)") and e.value.path == sheet.path


def test_a_sheet_with_very_many_problems_lists_the_first_hundred(tmp_path):
    from tadkit.data.label_sheet import SHOWN_PROBLEMS
    body = "v1,2,1,a\n" * (SHOWN_PROBLEMS + 7)                           # every row reversed
    sheet, problems = _check(tmp_path, body)
    assert len(problems) == SHOWN_PROBLEMS + 7
    with pytest.raises(DataError) as e:
        apply_problems(sheet, problems, drop_defects=False)
    msg = str(e.value)
    assert str(problems[SHOWN_PROBLEMS - 1]) in msg and str(problems[SHOWN_PROBLEMS]) not in msg
    assert "; and 7 more" in msg and "\n" not in msg


def test_drop_defects_keeps_the_survivors(tmp_path):
    body = "v1,1,2,a\nv9,1,2,a\nv1,5,3,a\nv2,-1,30,\nv1,3,4,b\n"
    sheet, problems = _check(tmp_path, body)
    kept = apply_problems(sheet, problems, drop_defects=True)
    assert [r.line for r in kept.rows] == [2, 6]
    assert kept.videos == ["v1"]            # v9 missing, v2 lost its only row
    assert kept.columns == sheet.columns and check_against_videos(kept, durations=DUR) == []
    assert apply_problems(sheet, [], drop_defects=False) is sheet


def test_video_files_matched_by_stem_or_name(tmp_path):
    (tmp_path / "vids").mkdir()
    for name in ("v1.mp4", "v2.avi", "v3.mp4", "v3.mkv", "notes.txt"):
        (tmp_path / "vids" / name).write_bytes(b"")
    sheet = read_label_sheet(_write(tmp_path, HEAD + "v1,1,2,a\nv2.avi,1,2,a\nv3,1,2,a\nnotes,1,2,a\nV1,1,2,a\n"))
    problems = check_against_videos(sheet, tmp_path / "vids", durations={"v1": 5, "v2": 5, "v3": 5})
    assert _kinds(problems) == [("ambiguous_video", (4,)), ("missing_video", (5,)), ("missing_video", (6,))]


def test_check_probes_real_videos(tmp_path):
    from tadkit.data.synthetic_video import make_synthetic_videos
    make_synthetic_videos(tmp_path, videos=3, frames=16, size=32)   # 16 frames at 10 fps: 1.6 s
    (tmp_path / "videos" / "synvid_002.mp4").unlink()
    (tmp_path / "videos" / "broken.mp4").write_bytes(b"not a video")
    sheet = read_label_sheet(_write(tmp_path, HEAD + "synvid_000,0.2,1.5,a\nsynvid_001.mp4,0.5,2.5,b\n"
                                                      "synvid_002,0,1,a\nbroken,0,1,a\n"))
    problems = check_against_videos(sheet, tmp_path / "videos")
    assert _kinds(problems) == [("past_end", (3,)), ("missing_video", (4,)), ("unreadable_video", (5,))]
    assert "(1.6 s)" in str(problems[0])


# ----------------------------------------------------------------------------- splitting


def _many(tmp_path, n_videos=20, classes=("a", "b", "c", "rare")):
    rows = []
    for i in range(n_videos):
        rows.append(f"vid{i:02d},1,2,{classes[i % 3]}")
        if i in (4, 13):
            rows.append(f"vid{i:02d},3,4,rare")
    return read_label_sheet(_write(tmp_path, HEAD + "\n".join(rows) + "\n"))


def test_split_deterministic_by_video_and_fraction(tmp_path):
    sheet = _many(tmp_path)
    a, b = split_by_video(sheet, 0.2, seed=3), split_by_video(sheet, 0.2, seed=3)
    assert a == b and set(a) == set(sheet.videos)
    assert sum(s == "validation" for s in a.values()) == 4
    assert set(a.values()) == {"training", "validation"}
    assert any(split_by_video(sheet, 0.2, seed=s) != a for s in range(5))
    # the row order of the sheet does not change the split
    rev = read_label_sheet(_write(tmp_path, HEAD + "\n".join(reversed(
        (tmp_path / "labels.csv").read_text().splitlines()[1:])) + "\n", name="rev.csv"))
    assert split_by_video(rev, 0.2, seed=3) == a


@pytest.mark.parametrize("seed", range(10))
def test_split_every_class_with_two_videos_in_validation(tmp_path, seed):
    sheet = _many(tmp_path)
    split = split_by_video(sheet, 0.2, seed=seed)
    for c in ("a", "b", "c", "rare"):
        subs = {split[r.video] for r in sheet.rows if r.label == c}
        assert subs == {"training", "validation"}, c


def test_split_small_and_zero(tmp_path):
    sheet = read_label_sheet(_write(tmp_path, HEAD + "v1,1,2,a\nv2,1,2,a\nv3,1,2,b\n"))
    split = split_by_video(sheet, 0.2)
    assert list(split.values()).count("validation") == 1 and split["v3"] == "training"
    assert set(split_by_video(sheet, 0.0).values()) == {"training"}
    with pytest.raises(DataError, match="fraction"):
        split_by_video(sheet, 1.5)


def test_split_from_subset_column(tmp_path):
    sheet = read_label_sheet(_write(tmp_path, "video,start,end,label,set\nv1,1,2,a,Train\nv1,3,4,a,training\n"
                                              "v2,1,2,a,val\nv3,1,2,b,TEST\n"))
    assert split_by_video(sheet) == {"v1": "training", "v2": "validation", "v3": "testing"}
    bad = read_label_sheet(_write(tmp_path, "video,start,end,label,set\nv1,1,2,a,train\nv1,3,4,a,val\n",
                                  name="bad.csv"))
    with pytest.raises(DataError, match="line 3: set 'val' but line 2 puts video 'v1' in training"):
        split_by_video(bad)
    odd = read_label_sheet(_write(tmp_path, "video,start,end,label,set\nv1,1,2,a,holdout\n", name="odd.csv"))
    with pytest.raises(DataError, match="'holdout' is not a subset"):
        split_by_video(odd)


# ----------------------------------------------------------------------------- annotations


def test_annotation_dict_round_trips(tmp_path):
    sheet = read_label_sheet(_write(tmp_path, HEAD + "v1.mp4,1,2.5,a\nv1.mp4,00:00:03.250,4,b\n"
                                                     "v2,0:05,10.05,a\nv3,1,2,b\n"))
    subsets = split_by_video(sheet, 0.34, seed=0)
    durations = {"v1.mp4": 5.0, "v2": 10.0, "v3": 3.0}
    d = to_annotations(sheet, subsets, durations)
    ann = Annotations.from_dict(d)
    assert ann.classes == ["a", "b"] and set(ann.videos) == {"v1", "v2", "v3"}
    assert ann.videos["v1"].subset == subsets["v1.mp4"] and ann.videos["v2"].duration == 10.0
    got = [(v, *map(float, seg), lab) for v, va in ann.videos.items() for seg, lab in zip(va.segments, va.labels)]
    assert got == [("v1", 1.0, 2.5, "a"), ("v1", 3.25, 4.0, "b"), ("v2", 5.0, 10.0, "a"), ("v3", 1.0, 2.0, "b")]
    with pytest.raises(DataError, match="no duration"):
        to_annotations(sheet, subsets, {"v2": 1.0})
