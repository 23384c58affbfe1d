"""Converters from benchmark annotation layouts into tadkit's Annotations.

Real files (THUMOS14, MultiTHUMOS, ActivityNet/BSN) are read from tests/data/real and their
counts are checked against published numbers and against independent counts made here with
plain file reading. Charades, Ego4D-MQ and EPIC-100 use the small hand-made fixtures in
tests/fixtures/converters/ (see its README.md); their expected values are worked out by hand.
"""
from __future__ import annotations

import csv
import json
import shutil
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from tadkit.core.errors import DataError, TadkitError
from tadkit.data.annotations import Annotations
from tadkit.data.converters import FORMATS, MULTITHUMOS_CLASSES, convert
from tests.conftest import REAL_DATA

ROOT = Path(__file__).resolve().parents[2]
FIX = ROOT / "tests" / "fixtures" / "converters"

THUMOS = REAL_DATA / "thumos14"
THUMOS_VAL = THUMOS / "official" / "annotations_val"
THUMOS_TEST = THUMOS / "official" / "annotations_test"
MULTITHUMOS = REAL_DATA / "multithumos" / "multithumos.json"
ANET = REAL_DATA / "activitynet"

# The real files travel with the repository (tests/data/real); conftest unpacks them at collection.
needs_real_data = pytest.mark.usefixtures("real_data")


def _counts(ann: Annotations) -> dict[str, tuple[int, int]]:
    out: dict[str, list[int]] = {}
    for v in ann.videos.values():
        c = out.setdefault(v.subset, [0, 0])
        c[0] += 1
        c[1] += len(v.labels)
    return {k: tuple(v) for k, v in out.items()}


def _segs(ann: Annotations, vid: str) -> list[tuple[float, float, str]]:
    v = ann.videos[vid]
    return [(float(s), float(e), lab) for (s, e), lab in zip(v.segments, v.labels)]


def _assert_round_trip(ann: Annotations, path: Path) -> None:
    ann.save(path)
    back = Annotations.load(path)
    assert back.classes == ann.classes
    assert list(back.videos) == list(ann.videos)
    assert sum(len(v.labels) for v in back.videos.values()) == sum(len(v.labels) for v in ann.videos.values())
    # every field of every video (subset, duration, fps, segments, labels, ignore regions)
    assert back.to_dict() == ann.to_dict()


# -- THUMOS14 (real files) ------------------------------------------------------------------------
def _raw_thumos(folder: Path, suffix: str):
    """Independent count: non-Ambiguous lines, Ambiguous lines, all video names."""
    inst, amb, vids = 0, 0, set()
    for f in folder.glob(f"*_{suffix}.txt"):
        for line in f.read_text().splitlines():
            parts = line.split()
            if not parts:
                continue
            vids.add(parts[0])
            if f.name.startswith("Ambiguous_"):
                amb += 1
            else:
                inst += 1
    return inst, amb, vids


@pytest.fixture(scope="module")
def thumos():
    return convert("thumos14", [str(THUMOS_VAL), str(THUMOS_TEST)])


@needs_real_data
def test_thumos14_counts_match_the_published_numbers_and_the_raw_files(thumos):
    ann, report = thumos
    # THUMOS14: 200 validation videos with 3007 non-ambiguous instances; 213 test videos
    # (212 with actions, video_test_0001292 only Ambiguous) with 3358 non-ambiguous instances.
    assert _counts(ann) == {"validation": (200, 3007), "testing": (213, 3358)}
    for folder, suffix, subset in ((THUMOS_VAL, "val", "validation"), (THUMOS_TEST, "test", "testing")):
        inst, amb, vids = _raw_thumos(folder, suffix)
        assert {vid for vid, v in ann.videos.items() if v.subset == subset} == vids
        assert sum(len(v.labels) for v in ann.videos.values() if v.subset == subset) == inst
        assert sum(len(v.ignore) for v in ann.videos.values() if v.subset == subset) == amb
    assert report[0] == "format: thumos14"
    assert "validation: 200 videos, 3007 instances, 89 ignore regions" in report
    assert "testing: 213 videos, 3358 instances, 99 ignore regions (1 video without instances)" in report


@needs_real_data
def test_thumos14_classes_exclude_ambiguous_which_becomes_ignore_regions(thumos):
    ann, report = thumos
    assert len(ann.classes) == 20 and "Ambiguous" not in ann.classes
    assert ann.classes == sorted(ann.classes) and ann.classes[0] == "BaseballPitch"
    v = ann.videos["video_test_0001292"]
    assert v.labels == [] and len(v.segments) == 0
    # Ambiguous_test.txt lines 69-71, sorted by start
    np.testing.assert_allclose(v.ignore, [[39.9, 47.4], [78.4, 113.2], [141.2, 154.1]])
    # not in video_info.json: the duration is estimated, and that is said
    assert v.duration == pytest.approx(154.1)
    assert any("video_test_0001292" in line and "only Ambiguous" in line for line in report)
    assert any("video_test_0001292" in line and "estimated" in line for line in report)
    # a video from the info file gets its duration and fps
    info = json.loads((THUMOS / "video_info.json").read_text())
    w = ann.videos["video_validation_0000170"]
    expected = info["video_validation_0000170"]
    assert (w.duration, w.fps) == (expected["duration"], expected["fps"])


@needs_real_data
def test_thumos14_known_out_of_range_defects_are_reported(thumos):
    ann, report = thumos

    def outside(vid):
        return [line for line in report if line.startswith(vid + " ") and "outside the video" in line]

    # known_defects.md: 364 and 856 the last two annotations, 814 the last three, 1081 the last one
    assert len(outside("video_validation_0000364")) == 2
    assert len(outside("video_validation_0000856")) == 2
    assert len(outside("video_test_0000814")) == 3
    assert len(outside("video_test_0001081")) == 1
    assert any("[113.6, 117.3] HighJump" in line for line in outside("video_validation_0000364"))
    # video_test_0000270: "most annotations are out of range"; count them from the raw files
    info = json.loads((THUMOS / "video_info.json").read_text())
    dur = info["video_test_0000270"]["duration"]
    raw = [ln.split() for f in THUMOS_TEST.glob("*_test.txt") if not f.name.startswith("Ambiguous")
           for ln in f.read_text().splitlines() if ln.startswith("video_test_0000270")]
    assert len(outside("video_test_0000270")) == sum(float(p[1]) >= dur for p in raw) > len(raw) / 2
    # kept by default (counts match the source), so the wholly-outside segments are still there
    assert any(s >= ann.videos["video_test_0000814"].duration for s, _, _ in _segs(ann, "video_test_0000814"))


@needs_real_data
def test_thumos14_drop_defects_drops_the_wholly_outside_segments():
    ann, report = convert("thumos14", [str(THUMOS_VAL), str(THUMOS_TEST)], drop_defects=True)
    # 2 + 2 validation segments and 3 + 1 + 22 (video_test_0000270) test segments lie past the end
    assert _counts(ann) == {"validation": (200, 3007 - 4), "testing": (213, 3358 - 26)}
    assert sum(line.endswith(", dropped") for line in report) == 30


@needs_real_data
def test_thumos14_round_trip(thumos, tmp_path):
    _assert_round_trip(thumos[0], tmp_path / "thumos14.json")


@needs_real_data
def test_thumos14_subset_override_and_missing_video_info(tmp_path):
    ann, _ = convert("thumos14", [str(THUMOS_VAL)], subset="train")
    assert _counts(ann) == {"training": (200, 3007)}

    folder = tmp_path / "annotations_val"
    folder.mkdir()
    for name in ("GolfSwing_val.txt", "Ambiguous_val.txt"):
        shutil.copy(THUMOS_VAL / name, folder / name)
    with pytest.raises(DataError, match="--video-info") as err:
        convert("thumos14", [str(folder)])
    assert str(folder) in str(err.value)
    ann, report = convert("thumos14", [str(folder)], video_info=str(THUMOS / "video_info.json"))
    golf = [ln for ln in (THUMOS_VAL / "GolfSwing_val.txt").read_text().splitlines() if ln.strip()]
    assert ann.classes == ["GolfSwing"]
    assert sum(len(v.labels) for v in ann.videos.values()) == len(golf) == 31


def test_thumos14_malformed_lines_name_the_file_and_line(tmp_path):
    folder = tmp_path / "ann"
    folder.mkdir()
    (tmp_path / "video_info.json").write_text(json.dumps({"video_validation_0000001": {"duration": 60.0, "fps": 30}}))
    bad = folder / "Diving_val.txt"
    bad.write_text("video_validation_0000001  1.0 2.0\nvideo_validation_0000001 12.5\n")
    with pytest.raises(DataError) as err:
        convert("thumos14", [str(folder)])
    assert "Diving_val.txt" in str(err.value) and "line 2" in str(err.value)
    bad.write_text("video_validation_0000001 1.0 2,5\n")
    with pytest.raises(DataError, match=r"Diving_val\.txt.*line 1.*end must be a number"):
        convert("thumos14", [str(folder)])
    bad.write_text("video_validation_0000001  1.0 2.0\n")  # two spaces, as in the real files
    ann, _ = convert("thumos14", [str(folder)])
    assert _segs(ann, "video_validation_0000001") == [(1.0, 2.0, "Diving")]
    assert ann.videos["video_validation_0000001"].subset == "validation"


def test_thumos14_subset_from_the_folder_name(tmp_path):
    folder = tmp_path / "annotations_test"
    folder.mkdir()
    (folder / "video_info.json").write_text(json.dumps({"video_test_0000001": {"duration": 30.0, "fps": 25.0}}))
    (folder / "HighJump.txt").write_text("video_test_0000001 4.0 6.5\nvideo_test_0000001 1.0 3.0\n")
    (folder / "Ambiguous.txt").write_text("video_test_0000001 28.0 31.0\n")
    (folder / "readme.txt").write_text("THUMOS CHALLENGE 2014\n")
    ann, report = convert("thumos14", [str(folder)])
    v = ann.videos["video_test_0000001"]
    assert (v.subset, v.duration, v.fps) == ("testing", 30.0, 25.0)
    assert _segs(ann, "video_test_0000001") == [(1.0, 3.0, "HighJump"), (4.0, 6.5, "HighJump")]
    np.testing.assert_array_equal(v.ignore, [[28.0, 30.0]])  # clipped to the video, and said
    assert any("ignore region [28, 31]" in line and "clipped to [28, 30]" in line for line in report)
    assert any("skipped" in line and "readme.txt" in line for line in report)


# -- MultiTHUMOS (real file) ---------------------------------------------------------------------------
@needs_real_data
def test_multithumos_counts_and_official_class_names(tmp_path):
    ann, report = convert("multithumos", [str(MULTITHUMOS)])
    raw = json.loads(MULTITHUMOS.read_text())
    assert len(raw) == 413 and sum(len(v["actions"]) for v in raw.values()) == 38690
    assert len(ann) == 413
    assert sum(len(v.labels) for v in ann.videos.values()) == 38690
    assert _counts(ann) == {
        "training": (200, sum(len(v["actions"]) for v in raw.values() if v["subset"] == "training")),
        "testing": (213, sum(len(v["actions"]) for v in raw.values() if v["subset"] == "testing"))}
    assert ann.classes == list(MULTITHUMOS_CLASSES) and len(ann.classes) == 65
    # Independent source (arctix docs, from the official per-class files): instances per class
    per_class = Counter(lab for v in ann.videos.values() for lab in v.labels)
    assert per_class["Run"] == 3693 and per_class["Jump"] == 3496 and per_class["Walk"] == 3059
    assert per_class["BaseballPitch"] == 71 and per_class["VolleyballBump"] == 15 and per_class["NoHuman"] == 1176
    # ... and the first rows of video_test_0000004 there: Stand, CricketBowling, Jump, Throw, CricketShot
    assert _segs(ann, "video_test_0000004")[:5] == [
        (0.03, 1.1, "Stand"), (0.2, 1.1, "CricketBowling"), (0.23, 0.93, "Jump"), (0.33, 1.13, "Throw"),
        (1.0, 1.5, "CricketShot")]
    # the test video with an end far past its duration (4000.36 s in a 1315.39 s video) is clipped
    assert any(line.startswith("video_test_0000950 [398.44, 4000.36]") and "clipped" in line for line in report)
    _assert_round_trip(ann, tmp_path / "multithumos.json")


def test_multithumos_class_file_and_bad_index(tmp_path):
    data = {"v1": {"subset": "training", "duration": 10.0, "actions": [[2, 1.0, 2.0], [1, 3.0, 4.0]]}}
    ann_path = tmp_path / "mt.json"
    ann_path.write_text(json.dumps(data))
    names = tmp_path / "class_list.txt"
    names.write_text("1 Alpha\n2 Beta\n")
    ann, _ = convert("multithumos", [str(ann_path)], classes=str(names))
    assert ann.classes == ["Alpha", "Beta"]
    assert _segs(ann, "v1") == [(1.0, 2.0, "Beta"), (3.0, 4.0, "Alpha")]
    data["v1"]["actions"].append([66, 1.0, 2.0])
    ann_path.write_text(json.dumps(data))
    with pytest.raises(DataError, match=r"mt\.json.*class index 66 is not in 1\.\.65"):
        convert("multithumos", [str(ann_path)])


# -- ActivityNet, BSN layout (real files) ------------------------------------------------------------
@pytest.fixture(scope="module")
def anet():
    return convert("activitynet-bsn", [str(ANET / "anet_anno_action.json"), str(ANET / "video_info_new.csv"),
                                       str(ANET / "action_name.csv")])


@needs_real_data
def test_activitynet_bsn_counts_match_an_independent_count(anet):
    ann, report = anet
    raw = json.loads((ANET / "anet_anno_action.json").read_text())
    with open(ANET / "video_info_new.csv", newline="") as f:
        subset_of = {row["video"]: row["subset"] for row in csv.DictReader(f)}
    expected: dict[str, list[int]] = {}
    for vid, entry in raw.items():
        c = expected.setdefault(subset_of[vid], [0, 0])
        c[0] += 1
        c[1] += len(entry["annotations"])
    assert _counts(ann) == {k: tuple(v) for k, v in expected.items()}
    assert len(ann) == len(raw) == 19228
    assert ann.videos["v_QOlSCBRmfWY"].duration == raw["v_QOlSCBRmfWY"]["duration_second"]
    assert all(vid.startswith("v_") for vid in ann.videos)
    # action_name.csv gives the class order (a header line "action", then 200 names)
    names = (ANET / "action_name.csv").read_text().splitlines()[1:]
    assert ann.classes == names and len(names) == 200
    # fps from video_info_new.csv (first data line: v_---9CpRcKoU,...,30.0,...)
    assert ann.videos["v_---9CpRcKoU"].fps == 30.0 and ann.videos["v_---9CpRcKoU"].subset == "training"
    # every segment reaching past the end (but not wholly outside) is clipped, and reported
    overhang = sum(1 for e in raw.values() for a in e["annotations"]
                   if (min(a["segment"]) < 0 or max(a["segment"]) > e["duration_second"])
                   and not (max(a["segment"]) <= 0 or min(a["segment"]) >= e["duration_second"]))
    assert overhang > 0 and sum("clipped to" in line for line in report) == overhang
    assert all(0 <= v.segments.min(initial=0) and v.segments.max(initial=0) <= v.duration
               for v in ann.videos.values())


@needs_real_data
def test_activitynet_bsn_round_trip(anet, tmp_path):
    _assert_round_trip(anet[0], tmp_path / "anet.json")


@needs_real_data
def test_activitynet_bsn_inputs_in_any_order(tmp_path):
    raw = json.loads((ANET / "anet_anno_action.json").read_text())
    keep = ["v_QOlSCBRmfWY", "v_ehGHCYKzyZ8", "v_nwznKOuZM7w"]
    small = tmp_path / "anet_anno_action.json"
    small.write_text(json.dumps({k: raw[k] for k in keep}))
    lines = (ANET / "video_info_new.csv").read_text().splitlines()
    info = tmp_path / "video_info_new.csv"
    info.write_text("\n".join([lines[0]] + [ln for ln in lines[1:] if ln.split(",")[0] in keep]) + "\n")
    a, _ = convert("activitynet-bsn", [str(small), str(info)])
    b, _ = convert("activitynet-bsn", [str(info), str(small)])
    c, _ = convert("activitynet-bsn", [str(small)], video_info=str(info))
    assert a.to_dict() == b.to_dict() == c.to_dict()
    assert set(a.videos) == set(keep)
    assert _segs(a, "v_QOlSCBRmfWY") == [(6.195294851794072, 77.73085420904837, "Ballet")]
    with pytest.raises(DataError, match="video_info_new.csv") as err:
        convert("activitynet-bsn", [str(small)])
    assert str(small) in str(err.value)


# -- Charades (fixtures) ---------------------------------------------------------------------------
CHARADES = [str(FIX / "charades" / "Charades_v1_train_excerpt.csv"),
            str(FIX / "charades" / "Charades_v1_test_excerpt.csv")]
CHARADES_CLASSES = str(FIX / "charades" / "Charades_v1_classes_excerpt.txt")


def test_charades_parses_codes_names_subsets_and_defects():
    ann, report = convert("charades", CHARADES, classes=CHARADES_CLASSES)
    assert _counts(ann) == {"training": (3, 5), "testing": (1, 3)}
    assert ann.classes[:2] == ["Closing a door", "Opening a door"] and len(ann.classes) == 8
    assert ann.videos["AB12C"].duration == 21.33
    assert _segs(ann, "AB12C") == [(0.0, 4.5, "Opening a door"), (5.1, 20.0, "Sitting at a table"),
                                   (12.4, 20.0, "Watching/Reading/Looking at a book")]
    # empty actions field: listed, no instances
    assert ann.videos["ZZ9X1"].labels == [] and ann.videos["ZZ9X1"].duration == 15.0
    # "c026 9.00 3.50" reversed -> swapped; "c006 30.10 33.80" in a 31 s video -> clipped
    assert _segs(ann, "QW3E4") == [(3.5, 9.0, "Holding a book"), (30.1, 31.0, "Closing a door")]
    assert "QW3E4 [9, 3.5] Holding a book: start after end, swapped" in report
    assert ("QW3E4 [30.1, 33.8] Closing a door: reaches outside the video (duration 31 s), "
            "clipped to [30.1, 31]") in report
    # duplicate kept by default, reported
    assert ann.videos["TS001"].subset == "testing"
    assert _segs(ann, "TS001") == [(1.2, 8.7, "Talking on a phone/camera"), (1.2, 8.7, "Talking on a phone/camera"),
                                   (8.7, 10.0, "Putting a phone/camera somewhere")]
    assert "TS001 [1.2, 8.7] Talking on a phone/camera: duplicate, kept" in report


def test_charades_without_class_file_uses_codes_and_drop_defects():
    ann, report = convert("charades", CHARADES, drop_defects=True)
    assert ann.classes == ["c006", "c008", "c011", "c017", "c019", "c026", "c032"]
    assert _segs(ann, "TS001") == [(1.2, 8.7, "c019"), (8.7, 10.0, "c017")]
    assert "TS001 [1.2, 8.7] c019: duplicate, dropped" in report
    ann, _ = convert("charades", CHARADES[:1], subset="validation")
    assert _counts(ann) == {"validation": (3, 5)}


def test_charades_bad_inputs(tmp_path):
    no_length = tmp_path / "Charades_v1_train.csv"
    no_length.write_text("id,subject,scene,actions\nAB12C,HR01,Kitchen,c008 0.00 4.50\n")
    with pytest.raises(DataError, match="missing column length") as err:
        convert("charades", [str(no_length)])
    assert "Charades_v1_train.csv" in str(err.value)

    unquoted = tmp_path / "Charades_v1_test.csv"
    header = (FIX / "charades" / "Charades_v1_test_excerpt.csv").read_text().splitlines()[0]
    unquoted.write_text(header + "\nTS9,HR4,Hall,6,7,Yes,A person sits, then stands.,chair,Sits.,c011 1.0 2.0,9.0\n")
    with pytest.raises(DataError, match=r"Charades_v1_test\.csv: line 2: .*quote fields"):
        convert("charades", [str(unquoted)])

    bad_action = tmp_path / "charades_train_bad.csv"
    bad_action.write_text(header + "\nTS9,HR4,Hall,6,7,Yes,x,chair,y,c011 1.0,9.0\n")
    with pytest.raises(DataError, match=r"charades_train_bad\.csv: video 'TS9': line 2: action 'c011 1.0'"):
        convert("charades", [str(bad_action)])

    with pytest.raises(DataError, match="not in the class list"):
        classes = tmp_path / "classes.txt"
        classes.write_text("c008 Opening a door\n")
        convert("charades", CHARADES[:1], classes=str(classes))

    no_subset = tmp_path / "charades.csv"
    shutil.copy(CHARADES[0], no_subset)
    with pytest.raises(DataError, match="--subset"):
        convert("charades", [str(no_subset)])


# -- Ego4D Moment Queries (fixtures) -----------------------------------------------------------------
EGO4D = [str(FIX / "ego4d" / "moments_train_mini.json"), str(FIX / "ego4d" / "moments_test_mini.json")]


def test_ego4d_mq_one_video_per_clip_with_all_annotators():
    ann, report = convert("ego4d-mq", EGO4D)
    assert _counts(ann) == {"training": (1, 4), "validation": (1, 1), "testing": (1, 0)}
    clip = ann.videos["clip-0001"]
    assert clip.duration == 480.0  # clip_end_sec 660 - clip_start_sec 180
    # both annotators' primary labels; the non-primary one skipped; 480.5 clipped to 480
    assert _segs(ann, "clip-0001") == [
        (63.403, 70.19469, "stir_/_mix_food_while_cooking"), (63.403, 70.19469, "stir_/_mix_food_while_cooking"),
        (94.876, 141.32536, "wash_dishes_/_utensils_/_bakeware_etc."),
        (459.37458, 480.0, "paint_using_paint_brush_/_roller")]
    assert "converse_/_interact_with_someone" not in ann.classes
    assert any("skipped 1 non-primary label" in line for line in report)
    assert any(line.startswith("clip-0001 [63.403, 70.1947]") and "duplicate, kept" in line for line in report)
    assert any(line.startswith("clip-0001 [459.375, 480.5]") and "clipped to [459.375, 480]" in line
               for line in report)
    # reversed label swapped
    assert _segs(ann, "clip-0002") == [(187.7517, 196.681, "arrange_/_organize_items_in_fridge")]
    assert ann.videos["clip-0002"].duration == 209.0
    # the unannotated test clip is listed with its length
    assert ann.videos["clip-0003"].duration == pytest.approx(312.5) and ann.videos["clip-0003"].labels == []
    assert ann.classes == sorted(ann.classes) and len(ann.classes) == 4


def test_ego4d_mq_bad_inputs(tmp_path):
    bad = tmp_path / "moments_val.json"
    bad.write_text('{"videos": [{"video_uid": "x", "split": "val", "clips": [')
    with pytest.raises(DataError, match="invalid JSON") as err:
        convert("ego4d-mq", [str(bad)])
    assert "moments_val.json" in str(err.value)
    bad.write_text('{"clips": []}')
    with pytest.raises(DataError, match=r'moments_val\.json: missing key "videos"'):
        convert("ego4d-mq", [str(bad)])
    bad.write_text('{"videos": [{"video_uid": "x", "split": "val", "clips": [{"clip_uid": "c", '
                   '"clip_start_sec": 0, "clip_end_sec": 480, "annotations": [{"labels": '
                   '[{"start_time": "1.0s", "end_time": 2.0, "label": "use_phone", "primary": true}]}]}]}]}')
    with pytest.raises(DataError, match=r"moments_val\.json: video 'c': .*start_time must be a number"):
        convert("ego4d-mq", [str(bad)])
    classes = tmp_path / "mq_classes.txt"
    classes.write_text("stir_/_mix_food_while_cooking\n")
    with pytest.raises(DataError, match=r"mq_classes\.txt: 3 label\(s\) are not in the class list"):
        convert("ego4d-mq", EGO4D, classes=str(classes))


# -- EPIC-Kitchens-100 (fixtures) --------------------------------------------------------------------
EPIC = [str(FIX / "epic100" / "EPIC_100_train_excerpt.csv"), str(FIX / "epic100" / "EPIC_100_validation_excerpt.csv")]
EPIC_INFO = str(FIX / "epic100" / "EPIC_100_video_info_excerpt.csv")
EPIC_VERBS = str(FIX / "epic100" / "EPIC_100_verb_classes_excerpt.csv")


def test_epic100_verbs_with_video_info():
    ann, report = convert("epic100", EPIC, task="verb", video_info=EPIC_INFO)
    assert _counts(ann) == {"training": (2, 6), "validation": (1, 2)}
    p0302 = ann.videos["P03_02"]
    assert (p0302.duration, p0302.fps) == (426.609517, 59.9400599400599)
    # 00:00:09.46 -> 00:00:07.21 is reversed: swapped
    assert _segs(ann, "P03_02") == [(3.29, 4.26, "put"), (7.21, 9.46, "open"), (14.18, 14.82, "place"),
                                    (23.79, 24.6, "put-in")]
    # 00:01:10.50 -> 00:01:12.00 in a 70.987583 s video: clipped
    assert _segs(ann, "P03_03") == [(1.0, 2.5, "turn-on"), (70.5, 70.987583, "close")]
    assert _segs(ann, "P01_11") == [(0.14, 3.37, "take"), (3.37, 5.1, "put")]
    assert ann.videos["P01_11"].subset == "validation"
    assert "P03_02 [9.46, 7.21] open: start after end, swapped" in report
    assert any(line.startswith("P03_03 [70.5, 72] close: reaches outside") for line in report)
    # "put" and "place" share verb_class 1: said, and the labels keep the words
    assert ann.classes == ["close", "open", "place", "put", "put-in", "take", "turn-on"]
    assert any("1: place, put" in line for line in report)


def test_epic100_nouns_without_video_info_estimate_durations():
    ann, report = convert("epic100", EPIC, task="noun")
    assert _segs(ann, "P03_02") == [(3.29, 4.26, "box:lunch"), (7.21, 9.46, "lid"), (14.18, 14.82, "box:lunch"),
                                    (23.79, 24.6, "rubbish")]
    # durations estimated as the last segment end, so nothing is clipped
    assert ann.videos["P03_02"].duration == pytest.approx(24.6)
    assert ann.videos["P03_03"].duration == pytest.approx(72.0)
    assert ann.videos["P01_11"].duration == pytest.approx(5.1)
    assert ann.videos["P03_02"].fps is None
    assert any(line.startswith("3 videos (P01_11, P03_02, P03_03)") and "estimated" in line for line in report)
    # one noun per noun_class here, so the classes follow the class ids 0, 2, 6, 23, 54
    assert ann.classes == ["tap", "plate", "lid", "box:lunch", "rubbish"]


def test_epic100_labels_by_benchmark_classes_from_the_class_csv():
    ann, _ = convert("epic100", EPIC, classes=EPIC_VERBS, video_info=EPIC_INFO)
    assert ann.classes == ["take", "put", "open", "close", "insert", "turn-on"]
    assert [lab for _, _, lab in _segs(ann, "P03_02")] == ["put", "open", "put", "insert"]


def test_epic100_bad_inputs(tmp_path):
    header = Path(EPIC[0]).read_text().splitlines()[0]
    bad = tmp_path / "EPIC_100_train.csv"
    bad.write_text(header + "\nP01_01_0,P01,P01_01,00:00:01.0,00:00:01.50,00:00:3x.00,1,2,take cup,take,0,cup,13,"
                   "['cup'],[13]\n")
    with pytest.raises(DataError, match=r"EPIC_100_train\.csv: line 2: stop_timestamp '00:00:3x\.00'"):
        convert("epic100", [str(bad)])
    bad.write_text("narration_id,video_id,start_timestamp,stop_timestamp,noun\nP01_01_0,P01_01,00:00:01.00,"
                   "00:00:02.00,cup\n")
    with pytest.raises(DataError, match=r"EPIC_100_train\.csv: missing column verb"):
        convert("epic100", [str(bad)], task="verb")
    with pytest.raises(DataError, match="task must be 'verb' or 'noun'"):
        convert("epic100", EPIC, task="action")


# -- errors common to all formats ----------------------------------------------------------------------
def test_unknown_format_and_missing_inputs(tmp_path):
    with pytest.raises(DataError, match="unknown annotation format 'thumos15'") as err:
        convert("thumos15", [str(tmp_path)])
    assert all(f in str(err.value) for f in FORMATS)
    for fmt in FORMATS:
        missing = tmp_path / f"missing_{fmt}.json"
        with pytest.raises(DataError) as err:
            convert(fmt, [str(missing)])
        assert str(missing) in str(err.value) and "not found" in str(err.value)
    with pytest.raises(DataError, match="no input"):
        convert("charades", [])
    with pytest.raises(DataError, match="given twice"):
        convert("charades", [CHARADES[0], CHARADES[0]])


def test_invalid_json_names_the_file(tmp_path):
    bad = tmp_path / "multithumos.json"
    bad.write_text('{"video_test_0000004": {"subset": "testing", "duration": 1')
    with pytest.raises(DataError) as err:
        convert("multithumos", [str(bad)])
    assert isinstance(err.value, TadkitError)
    msg = str(err.value)
    assert msg.startswith(str(bad)) and "invalid JSON" in msg and "\n" not in msg


def test_a_video_in_two_subsets_is_an_error(tmp_path):
    a = tmp_path / "EPIC_100_train.csv"
    b = tmp_path / "EPIC_100_validation.csv"
    text = Path(EPIC[1]).read_text()
    a.write_text(text)
    b.write_text(text)
    with pytest.raises(DataError, match=r"video 'P01_11': is in subset 'validation' here but in 'training'"):
        convert("epic100", [str(a), str(b)])
