"""Windows, crops, VideoDataset and collate: seconds <-> indices round trips and the truncation rule."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tadkit.core.errors import DataError
from tadkit.core.timing import FeatureTiming
from tadkit.data.annotations import Annotations
from tadkit.data.dataset import VideoDataset, collate
from tadkit.data.features import open_features
from tadkit.data.windows import crop_segments, random_crop, sliding_windows


@given(st.integers(1, 3000), st.integers(1, 500), st.floats(0, 0.9))
@settings(max_examples=200, deadline=None)
def test_sliding_windows_cover_everything(length, window, overlap):
    ws = sliding_windows(length, window, overlap)
    covered = np.zeros(length, bool)
    for s, e in ws:
        assert 0 <= s < e <= length and e - s <= window
        if length >= window:
            assert e - s == window
        covered[s:e] = True
    assert covered.all()
    assert [s for s, _ in ws] == sorted({s for s, _ in ws})


def test_sliding_windows_hand_case():
    assert sliding_windows(10, 4, 0.5) == [(0, 4), (2, 6), (4, 8), (6, 10)]
    assert sliding_windows(10, 4, 0.0) == [(0, 4), (4, 8), (6, 10)]
    assert sliding_windows(3, 4, 0.5) == [(0, 3)]


def test_crop_segments_truncation_rule():
    segs = np.array([[0.0, 10.0], [8.0, 12.0], [15.0, 25.0], [30.0, 40.0]])
    kept, idx = crop_segments(segs, 5.0, 20.0, 0.5)
    # [0,10]: 5/10 inside -> kept; [8,12] fully; [15,25]: 5/10 -> kept; [30,40] outside
    assert idx.tolist() == [0, 1, 2]
    np.testing.assert_allclose(kept, [[5, 10], [8, 12], [15, 20]])
    _, idx = crop_segments(segs, 5.0, 20.0, 0.6)
    assert idx.tolist() == [1]


@given(st.integers(5, 400), st.integers(1, 300), st.integers(0, 10_000))
@settings(max_examples=100, deadline=None)
def test_random_crop_properties(length, max_len, seed):
    rng = np.random.default_rng(seed)
    segs = np.sort(rng.uniform(0, length, size=(3, 2)), axis=1)
    s, e = random_crop(length, max_len, segs, np.random.default_rng(seed), crop_ratio=(0.9, 1.0))
    assert 0 <= s < e <= length
    assert e - s == (max_len if length > max_len else e - s)
    if length <= max_len:
        assert e - s >= round(0.9 * length) - 1
    # same seed, same crop
    assert (s, e) == random_crop(length, max_len, segs, np.random.default_rng(seed), crop_ratio=(0.9, 1.0))


@given(st.floats(1, 60), st.floats(1, 16), st.floats(0, 32), st.floats(-100, 5000))
@settings(max_examples=200, deadline=None)
def test_timing_roundtrip(fps, stride, window, seconds):
    t = FeatureTiming(fps, stride, window)
    assert t.to_seconds(t.to_index(seconds)) == pytest.approx(seconds, rel=1e-9, abs=1e-9)
    i = t.to_index(seconds)
    assert t.to_index(t.to_seconds(i)) == pytest.approx(i, rel=1e-9, abs=1e-9)


def _dataset(tmp_path, durations=(20.0, 50.0), fps=10.0, stride=2, window=4, segments=None, dim=3):
    db, feat_dir = {}, tmp_path / "f"
    feat_dir.mkdir(exist_ok=True)
    timing = FeatureTiming(fps, stride, window)
    for i, d in enumerate(durations):
        vid = f"v{i}"
        segs = segments[i] if segments else [[2.0, 6.0], [10.0, 14.0]]
        db[vid] = {"subset": "training", "duration": d,
                   "annotations": [{"segment": s, "label": "ab"[j % 2]} for j, s in enumerate(segs)]}
        t = timing.num_features(d)
        x = np.tile(np.arange(t, dtype=np.float32)[:, None], (1, dim))       # feature value = its index
        np.save(feat_dir / f"{vid}.npy", x)
    ann = Annotations.from_dict({"database": db})
    return ann, open_features(feat_dir), timing


def test_dataset_targets_in_feature_units_roundtrip(tmp_path):
    ann, store, timing = _dataset(tmp_path)
    ds = VideoDataset(ann, store, "training", training=False, max_seq_len=1000, fps=10, feature_stride=2,
                      feature_window=4)
    assert len(ds) == 2 and ds.num_classes == 2 and ds.input_dim == 3
    it = ds[0]
    # seconds -> feature units by hand: (s * fps - window/2) / stride
    np.testing.assert_allclose(it["segments"].numpy(), [[(2 * 10 - 2) / 2, (6 * 10 - 2) / 2],
                                                        [(10 * 10 - 2) / 2, (14 * 10 - 2) / 2]])
    back = it["timing"].segments_to_seconds(it["segments"].numpy().astype(np.float64) + it["offset"])
    np.testing.assert_allclose(back, ann.videos["v0"].segments, atol=1e-5)
    assert it["labels"].tolist() == [0, 1]
    assert it["num_features"] == timing.num_features(20.0)


def test_inference_windows_offsets_and_features(tmp_path):
    ann, store, timing = _dataset(tmp_path, durations=(50.0,))
    n = timing.num_features(50.0)
    ds = VideoDataset(ann, store, "training", training=False, max_seq_len=64, window_overlap=0.5, fps=10,
                      feature_stride=2, feature_window=4)
    assert len(ds) == len(sliding_windows(n, 64, 0.5)) > 1
    for i in range(len(ds)):
        it = ds[i]
        off = int(it["offset"])
        # feature value = index in the video: the window really starts at its offset
        np.testing.assert_array_equal(it["feats"][0].numpy(), np.arange(off, off + it["feats"].shape[1]))
        # segments relative to the window map back to the original seconds (for those not cut)
        secs = it["timing"].segments_to_seconds(it["segments"].numpy().astype(np.float64) + off)
        for s, e in secs:
            assert any(abs(s - a) < 1e-4 or abs(e - b) < 1e-4 for a, b in ann.videos["v0"].segments)


def test_training_crop_reproducible_and_epoch_dependent(tmp_path):
    ann, store, _ = _dataset(tmp_path, durations=(50.0,), segments=[[[5.0, 40.0], [41, 45]]])
    kw = dict(training=True, max_seq_len=64, fps=10, feature_stride=2, feature_window=4, seed=3)
    a, b = VideoDataset(ann, store, "training", **kw), VideoDataset(ann, store, "training", **kw)
    offs = []
    for e in range(6):
        a.set_epoch(e), b.set_epoch(e)
        ia, ib = a[0], b[0]
        assert ia["offset"] == ib["offset"]
        assert ia["feats"].shape[1] == 64
        offs.append(ia["offset"])
        # truncation rule: every kept target keeps >= 50 % of its length
        assert len(ia["segments"]) >= 1
    assert len(set(offs)) > 1


def test_ground_truth_policy_reports_defects(tmp_path):
    ann, store, _ = _dataset(tmp_path, durations=(20.0,),
                             segments=[[[2.0, 6.0], [9.0, 7.0], [2.0, 6.0], [18.0, 25.0], [30.0, 31.0], [5, 5]]])
    with pytest.warns(UserWarning, match="1 reversed, 1 clipped, 2 empty, 1 duplicate"):
        ds = VideoDataset(ann, store, "training", training=False, max_seq_len=1000, fps=10, feature_stride=2,
                          feature_window=4)
    secs = ds.timing("v0").segments_to_seconds(ds[0]["segments"].numpy().astype(np.float64))
    np.testing.assert_allclose(secs, [[2, 6], [7, 9], [18, 20]], atol=1e-5)


def test_fixed_length_resampling(tmp_path):
    ann, store, _ = _dataset(tmp_path, durations=(20.0, 50.0))
    ds = VideoDataset(ann, store, "training", training=False, max_seq_len=16, fixed_length=16)
    assert len(ds) == 2
    it = ds[1]
    assert it["feats"].shape == (3, 16)
    # feature i of N is centred at (i + 0.5) * duration / N
    t = ds.timing("v1")
    assert t.to_seconds(0) == pytest.approx(0.5 * 50 / 16)
    np.testing.assert_allclose(t.segments_to_seconds(it["segments"].numpy().astype(np.float64)),
                               ann.videos["v1"].segments, atol=1e-5)


def test_collate_pads_and_masks(tmp_path):
    ann, store, _ = _dataset(tmp_path)
    ds = VideoDataset(ann, store, "training", training=False, max_seq_len=1000, fps=10, feature_stride=2,
                      feature_window=4)
    items = [ds[0], ds[1]]
    b = collate(items)
    t0, t1 = items[0]["feats"].shape[1], items[1]["feats"].shape[1]
    assert b["feats"].shape == (2, 3, max(t0, t1))
    assert b["masks"].sum(1).tolist() == [t0, t1]
    assert (b["feats"][0, :, t0:] == 0).all()
    assert b["video_ids"] == ["v0", "v1"] and len(b["segments"]) == 2
    assert collate(items, pad_to=512)["feats"].shape[2] == 512


def test_dataset_errors(tmp_path):
    ann, store, _ = _dataset(tmp_path)
    with pytest.raises(DataError, match="subsets are"):
        VideoDataset(ann, store, "testing", training=False, max_seq_len=10, fps=10)
    with pytest.raises(DataError, match="no fps"):
        VideoDataset(ann, store, "training", training=False, max_seq_len=10)
    (tmp_path / "f" / "v1.npy").unlink()
    store = open_features(tmp_path / "f")
    with pytest.raises(DataError, match="1 of 2 videos .* have no features") as e:
        VideoDataset(ann, store, "training", training=False, max_seq_len=10, fps=10)
    assert "data.missing=skip" in e.value.one_line()
    with pytest.warns(UserWarning, match="skipped"):
        ds = VideoDataset(ann, store, "training", training=False, max_seq_len=10, fps=10, missing="skip")
    assert ds.video_ids == ["v0"]


def test_train_windows_only_windows_with_actions(tmp_path):
    ann, store, timing = _dataset(tmp_path, durations=(50.0,), segments=[[[2.0, 4.0]]])
    ds = VideoDataset(ann, store, "training", training=True, train_windows=True, max_seq_len=32,
                      train_window_overlap=0.75, fps=10, feature_stride=2, feature_window=4)
    assert len(ds) >= 1
    for i in range(len(ds)):
        assert len(ds[i]["segments"]) == 1


def test_train_window_jitter_moves_windows_within_half_a_stride_each_epoch(tmp_path):
    segs = [[[2.0 + 7 * k, 4.0 + 7 * k] for k in range(14)]]
    ann, store, _ = _dataset(tmp_path, durations=(100.0,), segments=segs)
    opts = dict(training=True, train_windows=True, max_seq_len=32, train_window_overlap=0.75, fps=10,
                feature_stride=2, feature_window=4, seed=3)
    fixed = VideoDataset(ann, store, "training", **opts)
    moved = VideoDataset(ann, store, "training", train_window_jitter=True, **opts)
    assert len(fixed) == len(moved) > 4
    stride, n = 8, fixed.entries[0].num_features
    starts = {}
    for epoch in range(3):
        fixed.set_epoch(epoch)
        moved.set_epoch(epoch)
        for i in range(len(fixed)):
            a, b = fixed[i], moved[i]
            # features hold their own index: the item's first feature is its offset
            assert b["feats"][0, 0].item() == b["offset"]
            assert b["feats"].shape == a["feats"].shape                       # same length
            assert 0 <= b["offset"] and b["offset"] + b["feats"].shape[1] <= n  # inside the video
            assert abs(b["offset"] - a["offset"]) <= stride // 2
            starts.setdefault(i, []).append(b["offset"])
            # targets are clipped to the moved window
            for s, e in b["segments"].numpy():
                assert -1e-6 <= s <= e <= b["feats"].shape[1] + 1e-6
    assert any(len(set(v)) > 1 for v in starts.values())              # moves from epoch to epoch
    again = VideoDataset(ann, store, "training", train_window_jitter=True, **opts)
    again.set_epoch(2)
    assert [again[i]["offset"] for i in range(len(again))] == [v[2] for v in starts.values()]  # reproducible


def test_unknown_label_is_an_error_in_training_and_skipped_at_inference(tmp_path):
    ann, store, _ = _dataset(tmp_path)
    ann = Annotations.from_dict(ann.to_dict(), classes=["a"])          # "b" is not a class
    with pytest.raises(DataError, match="unknown label 'b'"):
        VideoDataset(ann, store, "training", training=True, max_seq_len=100, fps=10, feature_stride=2,
                     feature_window=4)
    ds = VideoDataset(ann, store, "training", training=False, max_seq_len=1000, fps=10, feature_stride=2,
                      feature_window=4)
    assert ds.unknown_labels == 2 and ds[0]["labels"].tolist() == [0]


def test_config_timing_that_contradicts_features_json_is_warned_about(tmp_path):
    import json
    import warnings
    ann, _, _ = _dataset(tmp_path)
    (tmp_path / "f" / "features.json").write_text(json.dumps({"feature_stride": 2, "feature_window": 16,
                                                              "videos": {}}))
    store = open_features(tmp_path / "f")
    with pytest.warns(UserWarning, match=r"data.feature_window=4 \(features.json: 16\)"):
        VideoDataset(ann, store, "training", training=True, max_seq_len=1000, fps=10, feature_stride=2,
                     feature_window=4)
    with warnings.catch_warnings():
        warnings.simplefilter("error")                    # the same timing, or the file's own: no warning
        VideoDataset(ann, store, "training", training=True, max_seq_len=1000, fps=10, feature_stride=2,
                     feature_window=16)
        ds = VideoDataset(ann, store, "training", training=True, max_seq_len=1000, fps=10)
    assert ds.entries[0].timing.window == 16
