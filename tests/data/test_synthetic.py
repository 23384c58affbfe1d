"""Synthetic data: files as the contract says, deterministic, and with learnable structure."""
from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest

from tadkit.core.errors import TadkitError
from tadkit.core.segments import segment_iou
from tadkit.core.timing import FeatureTiming
from tadkit.data.annotations import Annotations
from tadkit.data.synthetic import class_patterns, make_synthetic, synth_main


def _files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _load(root: Path):
    meta = json.loads((root / "meta.json").read_text())
    ann = Annotations.load(root / "annotations.json")
    feats = {vid: np.load(root / "features" / f"{vid}.npy") for vid in ann.videos}
    return meta, ann, feats


@pytest.fixture(scope="module")
def single(tmp_path_factory):
    root = tmp_path_factory.mktemp("synth_single")
    make_synthetic(root)  # the defaults: 40 videos, 5 classes, seed 0
    return root


@pytest.fixture(scope="module")
def multi(tmp_path_factory):
    root = tmp_path_factory.mktemp("synth_multi")
    make_synthetic(root, multilabel=True, videos=20)
    return root


def _centres(meta, n):
    return FeatureTiming(meta["fps"], meta["feature_stride"], meta["feature_window"]).to_seconds(np.arange(n))


# -- determinism --------------------------------------------------------------------------------------
@pytest.mark.parametrize("multilabel", [False, True])
def test_same_seed_gives_identical_bytes(tmp_path, multilabel):
    make_synthetic(tmp_path / "a", videos=6, seed=3, multilabel=multilabel)
    make_synthetic(tmp_path / "b", videos=6, seed=3, multilabel=multilabel)
    a, b = _files(tmp_path / "a"), _files(tmp_path / "b")
    assert len(a) == 6 + 2
    assert a == b


def test_different_seed_gives_different_data(tmp_path):
    make_synthetic(tmp_path / "a", videos=6, seed=0)
    make_synthetic(tmp_path / "b", videos=6, seed=1)
    a, b = _files(tmp_path / "a"), _files(tmp_path / "b")
    assert a["annotations.json"] != b["annotations.json"]
    assert all(a[k] != b[k] for k in a if k.startswith("features/"))


def test_class_patterns_are_stable_and_structured():
    p5, p3 = class_patterns(5, 64), class_patterns(3, 64)
    np.testing.assert_allclose(p3.start, p5.start[:3])  # adding classes keeps the first ones
    cos = p5.middle @ p5.middle.T
    assert cos[0, 1] == pytest.approx(0.7) and cos[2, 3] == pytest.approx(0.7)  # confusable pairs
    assert abs(cos[0, 2]) < 1e-6 and abs(cos[1, 4]) < 1e-6
    assert np.abs(p5.start @ p5.end.T).max() < 1e-6  # start and end phases are distinct
    assert np.abs(p5.distractors @ np.concatenate([p5.start, p5.middle, p5.end]).T).max() < 1e-6


# -- files and formats --------------------------------------------------------------------------------
def test_files_load_and_shapes_match_timing(single):
    meta, ann, feats = _load(single)
    timing = FeatureTiming(meta["fps"], meta["feature_stride"], meta["feature_window"])
    assert (meta["fps"], meta["feature_stride"], meta["feature_window"]) == (30.0, 4.0, 16.0)
    assert len(ann) == 40 and ann.classes == meta["classes"] and len(ann.classes) == 5
    for vid, v in ann.videos.items():
        x = feats[vid]
        assert x.dtype == np.float32 and x.shape == (timing.num_features(v.duration), 64)
        assert np.isfinite(x).all()
        assert v.fps == 30.0 and 30.0 <= v.duration <= 120.0
        assert len(v.labels) >= 1
        assert (v.segments[:, 0] >= 0).all() and (v.segments[:, 1] <= v.duration).all()
        assert (v.segments[:, 1] > v.segments[:, 0]).all()
    assert not [p for p in single.rglob("*") if ".tmp" in p.name]  # atomic writes left nothing behind


def test_meta_describes_the_data(single):
    meta, ann, feats = _load(single)
    assert meta["synthetic"] is True and "synthetic" in meta["note"]
    assert meta["seed"] == 0 and meta["feature_dim"] == 64 and meta["multilabel"] is False
    counts = meta["counts"]
    assert counts["videos"] == len(ann)
    assert counts["instances"] == sum(len(v.labels) for v in ann.videos.values())
    assert counts["feature_steps"] == sum(len(x) for x in feats.values())
    assert counts["subsets"] == {s: len(ann.select(s)) for s in ("training", "validation")}
    assert meta["config"]["data.test_subset"] == "validation"


def test_single_label_instances_do_not_overlap_and_vary_in_length(single):
    _, ann, _ = _load(single)
    lengths = []
    for v in ann.videos.values():
        iou = segment_iou(v.segments, v.segments)
        np.fill_diagonal(iou, 0.0)
        assert iou.max(initial=0.0) == 0.0, v.video_id
        lengths.extend(v.segments[:, 1] - v.segments[:, 0])
    lengths = np.array(lengths)
    assert np.mean([len(v.labels) for v in ann.videos.values()]) >= 3  # several per video
    assert (lengths <= 3).mean() > 0.2 and (lengths >= 10).mean() > 0.1  # short and long ones
    assert lengths.max() <= 40.0


def test_multilabel_instances_overlap_densely(multi):
    meta, ann, feats = _load(multi)
    assert meta["multilabel"] is True
    overlapping = total = 0
    for v in ann.videos.values():
        inst = ann.instances(v.video_id)
        seg, lab = inst.segments, inst.labels
        assert (seg[:, 0] >= 0).all() and (seg[:, 1] <= v.duration).all()
        over = (seg[:, None, 0] < seg[None, :, 1]) & (seg[None, :, 0] < seg[:, None, 1])
        np.fill_diagonal(over, False)
        assert not (over & (lab[:, None] == lab[None, :])).any()  # a class never overlaps itself
        overlapping += over.any(axis=1).sum()
        total += len(lab)
        assert len(set(lab.tolist())) >= 2  # co-occurring classes in one video
    assert total / len(ann) >= 8  # dense
    assert overlapping / total > 0.3


@pytest.mark.parametrize("videos,fraction", [(40, 0.25), (10, 0.5), (7, 0.3)])
def test_subsets_follow_test_fraction(tmp_path, videos, fraction):
    meta = make_synthetic(tmp_path, videos=videos, test_fraction=fraction, max_duration=40.0)
    ann = Annotations.load(tmp_path / "annotations.json")
    assert ann.subsets == ["training", "validation"]
    n_val = len(ann.select("validation"))
    assert abs(n_val - fraction * videos) <= 1
    assert meta["counts"]["subsets"]["validation"] == n_val


# -- learnable structure ------------------------------------------------------------------------------
def _instance_means(ann, feats, meta, subset):
    xs, ys = [], []
    for v in ann.select(subset):
        x = feats[v.video_id]
        c = _centres(meta, len(x))
        inst = ann.instances(v.video_id)
        for (s, e), k in zip(inst.segments, inst.labels):
            inside = (c >= s) & (c <= e)
            if inside.any():
                xs.append(x[inside].mean(axis=0))
                ys.append(k)
    return np.array(xs), np.array(ys)


def test_nearest_centroid_beats_chance_on_held_out_instances(single):
    meta, ann, feats = _load(single)
    xtr, ytr = _instance_means(ann, feats, meta, "training")
    xte, yte = _instance_means(ann, feats, meta, "validation")
    k = len(ann.classes)
    centroids = np.stack([xtr[ytr == c].mean(axis=0) for c in range(k)])
    pred = np.argmin(((xte[:, None] - centroids[None]) ** 2).sum(-1), axis=1)
    acc = (pred == yte).mean()
    assert len(yte) >= 30
    assert acc > 2.0 / k, acc  # well above chance (1/k)
    assert acc < 0.95, acc     # but not trivial


@pytest.mark.parametrize("which", ["single", "multi"])
def test_class_middle_pattern_shows_inside_instances_only(which, request):
    root = request.getfixturevalue(which)
    meta, ann, feats = _load(root)
    pat = class_patterns(len(ann.classes), meta["feature_dim"], meta["pattern_seed"])
    inside_proj, bg_proj = [], []
    for v in ann.videos.values():
        x = feats[v.video_id]
        c = _centres(meta, len(x))
        inst = ann.instances(v.video_id)
        fg = np.zeros(len(x), bool)
        for (s, e), k in zip(inst.segments, inst.labels):
            m0, m1 = s + 0.3 * (e - s), e - 0.3 * (e - s)  # well inside the middle phase
            mid = (c >= m0) & (c <= m1)
            inside_proj.append(x[mid] @ pat.middle[k])
            fg |= (c >= s - 1.0) & (c <= e + 1.0)
        bg_proj.append(x[~fg] @ pat.middle.T)
    inside, bg = np.concatenate(inside_proj), np.concatenate(bg_proj).ravel()
    assert inside.mean() > bg.mean() + 0.8, (inside.mean(), bg.mean())
    assert abs(bg.mean()) < 0.3


def test_start_phase_differs_from_end_phase(single):
    meta, ann, feats = _load(single)
    pat = class_patterns(len(ann.classes), meta["feature_dim"], meta["pattern_seed"])
    right = own = total = 0
    for v in ann.videos.values():
        x = feats[v.video_id]
        c = _centres(meta, len(x))
        inst = ann.instances(v.video_id)
        for (s, e), k in zip(inst.segments, inst.labels):
            if e - s < 5.0:
                continue
            head = x[(c >= s) & (c <= s + 0.15 * (e - s))].mean(axis=0)
            tail = x[(c >= e - 0.15 * (e - s)) & (c <= e)].mean(axis=0)
            axis = pat.start[k] - pat.end[k]
            right += int(head @ axis > tail @ axis)
            own += int(head @ pat.start[k] > head @ pat.end[k] and tail @ pat.end[k] > tail @ pat.start[k])
            total += 1
    assert total >= 20
    assert right / total > 0.9
    assert own / total > 0.75  # each phase matches its own direction


def test_distractors_are_unlabelled_background(single):
    meta, _, _ = _load(single)
    assert meta["counts"]["distractors"] > 0


# -- interface ----------------------------------------------------------------------------------------
def test_synth_main_returns_a_summary(tmp_path):
    text = synth_main(tmp_path / "out", videos=4, classes=3, seed=2, multilabel=True)
    assert isinstance(text, str) and "\n" not in text and "4" in text and "3 classes" in text
    assert (tmp_path / "out" / "annotations.json").exists() and (tmp_path / "out" / "meta.json").exists()
    assert len(list((tmp_path / "out" / "features").glob("*.npy"))) == 4


@pytest.mark.parametrize("kwargs", [dict(videos=0), dict(classes=0), dict(test_fraction=1.5),
                                    dict(min_duration=60.0, max_duration=30.0), dict(seed=-1)])
def test_bad_arguments_are_user_errors(tmp_path, kwargs):
    with pytest.raises(TadkitError):
        make_synthetic(tmp_path, **kwargs)


def test_defaults_are_fast(tmp_path):
    t0 = time.perf_counter()
    make_synthetic(tmp_path)
    assert time.perf_counter() - t0 < 5.0
