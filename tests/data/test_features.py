"""Feature stores: formats, layouts, concatenation, resampling, and errors naming the file."""
import h5py
import numpy as np
import pytest
import torch

from tadkit.core.errors import DataError
from tadkit.data.features import ConcatFeatureStore, open_features, resample_features


def _arr(t=12, c=5, seed=0):
    return np.random.default_rng(seed).normal(size=(t, c)).astype(np.float32)


@pytest.fixture
def mixed_dir(tmp_path):
    d = tmp_path / "feats"
    d.mkdir()
    np.save(d / "a.npy", _arr(10, 4, 1))
    np.savez(d / "b.npz", feats=_arr(7, 4, 2))
    torch.save(torch.from_numpy(_arr(9, 4, 3)), d / "v_c.pt")
    (d / "notes.txt").write_text("ignored")
    return d


def test_directory_formats_roundtrip(mixed_dir):
    st = open_features(mixed_dir)
    assert st.video_ids == ["a", "b", "v_c"]
    np.testing.assert_array_equal(st.load("a"), _arr(10, 4, 1))
    np.testing.assert_array_equal(st.load("b"), _arr(7, 4, 2))
    np.testing.assert_array_equal(st.load("c"), _arr(9, 4, 3))     # v_ prefix matched both ways
    assert "v_a" in st and "zzz" not in st
    assert [st.length(v) for v in ("a", "b", "c")] == [10, 7, 9]
    assert st.dim == 4


def test_npy_is_memory_mapped(tmp_path):
    np.save(tmp_path / "a.npy", _arr())
    st = open_features(tmp_path)
    raw = st._read("a")
    assert isinstance(raw, np.memmap)


def test_ct_layout_transposes(tmp_path):
    x = _arr(12, 5)
    np.save(tmp_path / "a.npy", x.T)
    st = open_features(tmp_path, layout="CT")
    np.testing.assert_array_equal(st.load("a"), x)
    assert st.length("a") == 12 and st.dim == 5


def test_hdf5_store(tmp_path):
    p = tmp_path / "f.h5"
    with h5py.File(p, "w") as f:
        f["v1"] = _arr(6, 3, 1)
        f["v2"] = _arr(8, 3, 2)
    st = open_features(p)
    assert st.video_ids == ["v1", "v2"]
    np.testing.assert_array_equal(st.load("v2"), _arr(8, 3, 2))
    assert st.length("v1") == 6


def test_concat_on_channels_and_length_gap(tmp_path):
    (tmp_path / "rgb").mkdir()
    (tmp_path / "flow").mkdir()
    np.save(tmp_path / "rgb" / "a.npy", _arr(10, 3, 1))
    np.save(tmp_path / "flow" / "a.npy", _arr(11, 2, 2))
    st = open_features([tmp_path / "rgb", tmp_path / "flow"], max_length_gap=1)
    assert isinstance(st, ConcatFeatureStore) and st.dim == 5
    x = st.load("a")
    assert x.shape == (10, 5)
    np.testing.assert_array_equal(x[:, :3], _arr(10, 3, 1))
    np.testing.assert_array_equal(x[:, 3:], _arr(11, 2, 2)[:10])
    strict = open_features([tmp_path / "rgb", tmp_path / "flow"])
    with pytest.raises(DataError, match="disagree on the length") as e:
        strict.load("a")
    assert "rgb: 10" in str(e.value) and "flow: 11" in str(e.value)


@pytest.mark.parametrize("bad,match", [
    (np.zeros((0, 4), np.float32), "empty"),
    (np.zeros((3, 4, 2), np.float32), "rank 3"),
    (np.array([[1.0, np.nan], [0.0, 1.0]], np.float32), "NaN"),
    (np.array([[1.0, np.inf]], np.float32), "inf"),
])
def test_bad_arrays_name_file_and_video(tmp_path, bad, match):
    np.save(tmp_path / "vid.npy", bad)
    st = open_features(tmp_path)
    with pytest.raises(DataError, match=match) as e:
        st.load("vid")
    line = e.value.one_line()
    assert "vid.npy" in line and "\n" not in line


def test_missing_and_corrupt_files(tmp_path):
    with pytest.raises(DataError, match="not found"):
        open_features(tmp_path / "nope")
    np.save(tmp_path / "a.npy", _arr())
    st = open_features(tmp_path)
    with pytest.raises(DataError, match="no features for video 'b'"):
        st.load("b")
    (tmp_path / "c.npy").write_bytes(b"\x93NUMPY garbage")
    st = open_features(tmp_path)
    with pytest.raises(DataError, match="cannot read") as e:
        st.load("c")
    assert "c.npy" in e.value.one_line()
    (tmp_path / "d.pt").write_bytes(b"not a zip")
    with pytest.raises(DataError, match=r"\.pt"):
        open_features(tmp_path).load("d")


def test_resample_identity_constant_and_linear():
    x = _arr(10, 3)
    np.testing.assert_array_equal(resample_features(x, 10), x)
    const = np.full((7, 2), 3.5, np.float32)
    np.testing.assert_allclose(resample_features(const, 20), 3.5)
    # a linear ramp over bin centres stays the same ramp at the new centres (inside the hull)
    t = 8
    ramp = (np.arange(t, dtype=np.float32) + 0.5)[:, None] / t               # value = centre time
    out = resample_features(ramp, 4)[:, 0]
    np.testing.assert_allclose(out, (np.arange(4) + 0.5) / 4, atol=1e-6)
    # upsampling: interior points equal the same linear function
    up = resample_features(ramp, 16)[:, 0]
    centres = (np.arange(16) + 0.5) / 16
    inside = (centres >= 0.5 / t) & (centres <= 1 - 0.5 / t)
    np.testing.assert_allclose(up[inside], centres[inside], atol=1e-6)
