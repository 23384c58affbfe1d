"""features.json (written by ``tadkit extract``): the dataset takes the feature timing from it."""
import json

import numpy as np
import pytest

from tadkit.core.errors import DataError
from tadkit.data.annotations import Annotations
from tadkit.data.dataset import VideoDataset
from tadkit.data.features import open_features


def _write(tmp_path, meta):
    feats = tmp_path / "feats"
    feats.mkdir()
    np.save(feats / "a.npy", np.zeros((50, 8), np.float32))
    if meta is not None:
        (feats / "features.json").write_text(meta if isinstance(meta, str) else json.dumps(meta))
    ann = {"database": {"a": {"subset": "training", "duration": 20.0, "fps": 30.0,
                              "annotations": [{"segment": [4.0, 8.0], "label": "x"}]}}}
    (tmp_path / "ann.json").write_text(json.dumps(ann))
    return Annotations.load(tmp_path / "ann.json"), feats


def _dataset(ann, feats, **kw):
    return VideoDataset(ann, open_features(feats), "training", training=False, max_seq_len=64, **kw)


def test_timing_comes_from_features_json(tmp_path):
    ann, feats = _write(tmp_path, {"feature_stride": 4, "feature_window": 16, "videos": {"a": {"fps": 10.0}}})
    ds = _dataset(ann, feats)
    t = ds.timing("a")
    assert (t.fps, t.stride, t.window) == (10.0, 4.0, 16.0)      # extraction fps beats the video's 30 fps
    # the action [4 s, 8 s] in feature units: (s * fps - window / 2) / stride, worked by hand
    np.testing.assert_allclose(ds.entries[0].segments, [[(40 - 8) / 4, (80 - 8) / 4]])


def test_config_timing_overrides_features_json(tmp_path):
    ann, feats = _write(tmp_path, {"feature_stride": 4, "feature_window": 16, "videos": {"a": {"fps": 10.0}}})
    t = _dataset(ann, feats, fps=25.0, feature_stride=8.0, feature_window=8.0).timing("a")
    assert (t.fps, t.stride, t.window) == (25.0, 8.0, 8.0)


def test_without_features_json_the_annotation_fps_and_unit_stride(tmp_path):
    ann, feats = _write(tmp_path, None)
    t = _dataset(ann, feats).timing("a")
    assert (t.fps, t.stride, t.window) == (30.0, 1.0, 1.0)


@pytest.mark.parametrize("bad", ["{not json", json.dumps({"feature_stride": 0, "feature_window": 16}),
                                 json.dumps({"feature_stride": 4, "feature_window": 16, "videos": {"a": {"fps": -1}}}),
                                 json.dumps([1, 2])])
def test_bad_features_json_is_a_one_line_error_naming_it(tmp_path, bad):
    ann, feats = _write(tmp_path, bad)
    with pytest.raises(DataError) as e:
        open_features(feats)
    assert "features.json" in str(e.value) and "\n" not in str(e.value)
