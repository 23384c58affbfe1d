"""Feature stores: pre-extracted features of each video, loaded lazily and validated.

Layouts understood by :func:`open_features`:

* a directory of ``<video_id>.npy`` (memory-mapped), ``.npz`` (the array ``feats``,
  ``features`` or ``arr_0``, or the only array), or ``.pt`` (a tensor, or a dict holding one
  under ``feats``/``features``; loaded with ``weights_only=True``);
* one HDF5 file (``.h5`` / ``.hdf5``) with one dataset per video at the top level (read
  lazily: only the requested video is read).

Every array is ``T x C`` (``layout="TC"``, the default) or ``C x T`` (``layout="CT"``);
:meth:`FeatureStore.load` always returns ``(T, C)`` float32. Video ids are matched with and
without the ActivityNet ``v_`` prefix.

Several stores concatenate on channels (two-stream RGB + flow, feature combinations) with
:class:`ConcatFeatureStore`; their lengths must agree (a difference of one or two steps,
common between RGB and flow extractors, is trimmed to the shorter when ``max_length_gap``
allows it; anything larger is an error naming both files).

Each load checks: rank 2, at least one step, no NaN/inf. Errors name the file and the fix.

A directory written by ``tadkit extract`` also holds ``features.json`` (:data:`FEATURES_META`):
the feature timing (``feature_stride``, ``feature_window`` in frames, each video's ``fps`` after
any resampling, frame counts). :attr:`FeatureStore.meta` exposes it, and the dataset takes the
timing from it wherever the config leaves ``data.fps`` / ``data.feature_stride`` /
``data.feature_window`` null.
"""
from __future__ import annotations

import lzma
import math
import os
import tokenize
import zipfile
import zlib
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from ..core.errors import DataError

__all__ = ["FeatureStore", "DirectoryFeatureStore", "HDF5FeatureStore", "MemoryFeatureStore", "ConcatFeatureStore",
           "open_features", "resample_features", "validate_features", "FEATURE_SUFFIXES", "FEATURES_META", "read_features_meta"]

FEATURE_SUFFIXES = (".npy", ".npz", ".pt")
HDF5_SUFFIXES = (".h5", ".hdf5")
_NPZ_KEYS = ("feats", "features", "arr_0")
FEATURES_META = "features.json"   # timing written by `tadkit extract` beside the feature files
# An HDF5 dataset declaring more than this many bytes must store at least 1/2048 of them (deflate's best ratio
# is about 1/1032): one that does not was never written, and reading it would allocate its declared size.
_UNWRITTEN_MIN_BYTES = 1 << 26


# What numpy, zipfile and torch raise for a damaged or foreign file (numpy's header parser can raise
# tokenize's and the compiler's errors; a corrupt member of an npz raises its decompressor's).
_READ_ERRORS = (ValueError, OSError, EOFError, zipfile.BadZipFile, RuntimeError, zlib.error, lzma.LZMAError,
                tokenize.TokenError, SyntaxError, RecursionError, OverflowError)


def _finite_number(v) -> bool:
    """A real number (not a bool) that is finite; an integer too large for a float is not."""
    if not isinstance(v, (int, float)) or isinstance(v, bool):
        return False
    try:
        return math.isfinite(v)
    except OverflowError:
        return False


def read_features_meta(directory) -> dict | None:
    """The ``features.json`` of a feature directory (None when there is none), checked.

    Holds ``feature_stride`` and ``feature_window`` (frames, positive / non-negative numbers) and
    ``videos``: ``{video_id: {"fps": frames per second of the frames the features were made from,
    ...}}``.
    """
    import json
    path = Path(directory) / FEATURES_META
    if not path.is_file():
        return None
    fix = "delete it to set the timing in the config (data.fps, data.feature_stride, data.feature_window)"
    try:
        meta = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, ValueError, RecursionError) as e:
        raise DataError(f"cannot read the feature metadata ({type(e).__name__}: {str(e)[:100]})", path=path,
                        fix=fix) from None
    ok = isinstance(meta, dict) and isinstance(meta.get("videos", {}), dict)
    for key, low in (("feature_stride", 0.0), ("feature_window", -1e-12)):
        v = meta.get(key) if isinstance(meta, dict) else None
        ok = ok and _finite_number(v) and v > low
    if ok:
        for vid, info in meta.get("videos", {}).items():
            f = info.get("fps") if isinstance(info, dict) else None
            if f is not None and not (_finite_number(f) and f > 0):
                ok = False
                break
    if not ok:
        raise DataError("feature metadata must hold a positive feature_stride, a feature_window >= 0 and "
                        "videos {id: {fps: positive number}}", path=path, fix=fix)
    return meta


def _strip_v(video_id: str) -> str:
    return video_id[2:] if video_id.startswith("v_") else video_id


def validate_features(x, path, video_id: str, layout: str) -> np.ndarray:
    """Check one loaded array and return it as ``(T, C)`` float32."""
    try:
        x = np.asarray(x)
    except Exception:  # noqa: BLE001 - e.g. a tensor on another device
        raise DataError("could not read the features as an array", path=path, video=video_id,
                        fix="store a float array per video") from None
    if x.ndim != 2:
        shape = "x".join(map(str, x.shape)) or "scalar"
        raise DataError(f"features have rank {x.ndim} (shape {shape}); expected a 2-D T x C array", path=path,
                        video=video_id, fix="average out extra axes (e.g. spatial ones) or save one (T, C) array "
                                            "per video")
    if not np.issubdtype(x.dtype, np.number) or np.issubdtype(x.dtype, np.complexfloating):
        raise DataError(f"features have dtype {x.dtype}; expected real numbers", path=path, video=video_id,
                        fix="save float32 features")
    if layout == "CT":
        x = x.T
    if x.shape[0] == 0 or x.shape[1] == 0:
        raise DataError(f"features are empty (shape {x.shape[0]}x{x.shape[1]} as T x C)", path=path,
                        video=video_id, fix="re-extract the features of this video or drop it from the annotations")
    try:
        x = np.ascontiguousarray(x, dtype=np.float32)
        finite = np.isfinite(x)
    except MemoryError:
        raise DataError(f"features of shape {x.shape[0]}x{x.shape[1]} do not fit in memory", path=path,
                        video=video_id, fix="check the file: a damaged one can declare a huge shape") from None
    if not finite.all():
        bad_t = np.flatnonzero(~finite.all(axis=1))
        kind = "NaN" if np.isnan(x).any() else "inf"
        raise DataError(f"features contain {kind} at {len(bad_t)} of {x.shape[0]} steps (first at step {bad_t[0]})",
                        path=path, video=video_id, fix="re-extract the features of this video")
    return x


def _check_npz_member(z, name: str, path, key: str) -> None:
    """The array ``name`` of an npz must hold the bytes its header declares: a damaged header could
    otherwise make numpy allocate terabytes before finding the data short."""
    member = name if name in z.zip.namelist() else name + ".npy"
    fmt = np.lib.format
    with z.zip.open(member) as f:
        if f.read(len(fmt.MAGIC_PREFIX)) != fmt.MAGIC_PREFIX:
            return                                  # not an array: numpy hands back the bytes, refused later
    with z.zip.open(member) as f:
        version = fmt.read_magic(f)
        shape, _, dtype = (fmt.read_array_header_1_0 if version == (1, 0) else fmt.read_array_header_2_0)(f)
        need = math.prod(shape) * dtype.itemsize
        have = z.zip.getinfo(member).file_size - f.tell()
    if need > have:
        raise DataError(f"npz array {name!r} declares shape {'x'.join(map(str, shape)) or 'scalar'} ({need} bytes) "
                        f"but holds {have} bytes", path=path, video=key, fix="re-extract or re-copy this file")


def _check_layout(layout: str) -> str:
    if layout not in ("TC", "CT"):
        raise DataError(f"unknown feature layout {layout!r}", fix="set data.layout to TC (time x channels) or CT")
    return layout


class FeatureStore:
    """Features of many videos. Subclasses implement :meth:`_path`, :meth:`_read`, :meth:`_ids`."""

    layout: str = "TC"
    where: str = ""
    meta: dict | None = None      # features.json of the directory (timing), when it has one

    # -- subclass hooks --------------------------------------------------------------------
    def _ids(self) -> list[str]:
        raise NotImplementedError

    def _key(self, video_id: str) -> str | None:
        """The stored key of ``video_id`` (tried as given, then with/without ``v_``)."""
        ids = self._id_set
        for cand in (video_id, _strip_v(video_id), "v_" + video_id):
            if cand in ids:
                return cand
        return None

    def _read(self, key: str) -> np.ndarray:
        raise NotImplementedError

    def _source(self, key: str) -> str:
        return self.where

    # -- public API ------------------------------------------------------------------------
    @property
    def video_ids(self) -> list[str]:
        return list(self._id_list)

    @property
    def _id_list(self) -> list[str]:
        if not hasattr(self, "_cached_ids"):
            self._cached_ids = sorted(self._ids())
            self._cached_id_set = set(self._cached_ids)
        return self._cached_ids

    @property
    def _id_set(self) -> set[str]:
        self._id_list
        return self._cached_id_set

    def __contains__(self, video_id: str) -> bool:
        return self._key(video_id) is not None

    def __len__(self) -> int:
        return len(self._id_list)

    def missing(self, video_ids: Iterable[str]) -> list[str]:
        return [v for v in video_ids if v not in self]

    def load(self, video_id: str) -> np.ndarray:
        """Features of one video, ``(T, C)`` float32, validated."""
        key = self._key(video_id)
        if key is None:
            raise DataError(f"no features for video {video_id!r} ({len(self)} videos there)", path=self.where,
                            video=video_id, fix="extract its features, or point data.features at the right "
                                                "directory, or drop the video from the annotations")
        return validate_features(self._read(key), self._source(key), video_id, self.layout)

    def length(self, video_id: str) -> int:
        """Number of feature steps of a video (cheap where the format allows: no full read)."""
        key = self._key(video_id)
        shape = None if key is None else self._shape(key)
        if shape is None or len(shape) != 2:
            return int(self.load(video_id).shape[0])     # errors and odd shapes go through load()
        return int(shape[0] if self.layout == "TC" else shape[1])

    def _shape(self, key: str) -> tuple | None:
        return None

    def width(self, video_id: str) -> int | None:
        """Channels of a video's features where the format tells without a full read, else None."""
        key = self._key(video_id)
        shape = None if key is None else self._shape(key)
        if shape is None or len(shape) != 2:
            return None
        return int(shape[1] if self.layout == "TC" else shape[0])

    def source(self, video_id: str) -> str:
        """The file (or store) holding a video's features, for messages."""
        key = self._key(video_id)
        return self.where if key is None else self._source(key)

    def check_widths(self, video_ids: Iterable[str]) -> None:
        """Every video's features as wide as the first's (:attr:`dim`), checked before any training starts."""
        dim = self.dim
        for vid in video_ids:
            w = self.width(vid)
            if w is not None and w != dim:
                raise DataError(f"features of {w} channels where the other videos have {dim}",
                                path=self.source(vid), video=vid,
                                fix="extract every video with the same backbone and settings, or remove this one")

    @property
    def dim(self) -> int:
        """Channels per feature (read from the first video)."""
        if not hasattr(self, "_dim"):
            if not len(self):
                raise DataError("the feature store holds no videos", path=self.where,
                                fix=f"put one {'/'.join(FEATURE_SUFFIXES)} file per video there")
            self._dim = int(self.load(self._id_list[0]).shape[1])
        return self._dim

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.where!r}, {len(self)} videos, layout {self.layout})"

    def video_fps(self, video_id: str) -> float | None:
        """The frame rate the video's features were extracted at, from :attr:`meta` (None if unknown)."""
        if not self.meta:
            return None
        videos = self.meta.get("videos", {})
        for cand in (video_id, _strip_v(video_id), "v_" + video_id):
            if isinstance(videos.get(cand), dict) and videos[cand].get("fps") is not None:
                return float(videos[cand]["fps"])
        return None


class DirectoryFeatureStore(FeatureStore):
    """A directory of one ``.npy`` / ``.npz`` / ``.pt`` file per video."""

    def __init__(self, directory, layout: str = "TC"):
        self.directory = Path(directory)
        self.where = os.fspath(directory)
        self.layout = _check_layout(layout)
        if not self.directory.is_dir():
            raise DataError("feature directory not found", path=self.where,
                            fix="pass the directory holding <video_id>.npy files (data.features)")
        files: dict[str, Path] = {}
        for p in sorted(self.directory.iterdir()):
            if p.suffix in FEATURE_SUFFIXES and p.is_file() and not p.name.startswith("."):
                if p.stem in files:
                    raise DataError(f"two feature files for video {p.stem!r}: {files[p.stem].name} and {p.name}",
                                    path=self.where, fix="keep one file per video")
                files[p.stem] = p
        self._files = files
        self.meta = read_features_meta(self.directory)

    def _ids(self) -> list[str]:
        return list(self._files)

    def _source(self, key: str) -> str:
        return os.fspath(self._files[key])

    def _shape(self, key: str) -> tuple | None:
        path = self._files[key]
        if path.suffix != ".npy":
            return None
        try:
            x = np.load(path, mmap_mode="r", allow_pickle=False)
        except _READ_ERRORS + (MemoryError,):
            return None                            # load() says what is wrong
        if not isinstance(x, np.ndarray):          # an npz archive named .npy: load() says so
            x.close()
            return None
        return x.shape

    def _read(self, key: str) -> np.ndarray:
        path = self._files[key]
        try:
            if path.suffix == ".npy":
                x = np.load(path, mmap_mode="r", allow_pickle=False)
                if not isinstance(x, np.ndarray):
                    x.close()
                    raise DataError("the .npy file is an npz archive", path=path, video=key,
                                    fix="rename it to .npz, or save one array with np.save")
                return x
            if path.suffix == ".npz":
                z = np.load(path, allow_pickle=False)
                if not isinstance(z, np.lib.npyio.NpzFile):
                    raise DataError("the .npz file holds one .npy array, not an npz archive", path=path, video=key,
                                    fix="rename it to .npy, or save it with np.savez")
                with z:
                    names = list(z.files)
                    name = next((k for k in _NPZ_KEYS if k in names), names[0] if len(names) == 1 else None)
                    if name is None:
                        raise DataError(f"npz holds arrays {names}; none is named {' or '.join(_NPZ_KEYS)}",
                                        path=path, video=key, fix="save the features under the name 'feats'")
                    _check_npz_member(z, name, path, key)
                    return z[name]
            return self._read_pt(path, key)
        except DataError:
            raise
        except _READ_ERRORS as e:
            first = str(e).splitlines()[0][:120] if str(e).strip() else ""
            raise DataError(f"cannot read the feature file ({type(e).__name__}: {first})",
                            path=path, video=key, fix="re-extract or re-copy this file") from None
        except MemoryError:
            raise DataError("the feature file declares more data than fits in memory", path=path, video=key,
                            fix="re-extract or re-copy this file") from None

    @staticmethod
    def _read_pt(path: Path, key: str) -> np.ndarray:
        import torch
        try:
            obj = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as e:  # noqa: BLE001 - torch raises many kinds for a bad file
            raise DataError(f"cannot read the .pt feature file ({type(e).__name__})", path=path, video=key,
                            fix="save a tensor with torch.save(features, path), or re-extract") from None
        if isinstance(obj, dict):
            obj = next((obj[k] for k in _NPZ_KEYS if k in obj), None)
        if not isinstance(obj, torch.Tensor):
            raise DataError("the .pt file holds no tensor (nor a dict with 'feats')", path=path, video=key,
                            fix="save a (T, C) tensor per video")
        if obj.is_complex() or obj.dtype == torch.bool:
            raise DataError(f"features have dtype {obj.dtype}; expected real numbers", path=path, video=key,
                            fix="save float32 features")
        try:
            return obj.detach().float().numpy()
        except (TypeError, RuntimeError) as e:   # a sparse, meta or other tensor without plain CPU memory
            raise DataError(f"the .pt file holds a tensor that is not a plain array ({type(e).__name__})",
                            path=path, video=key,
                            fix="save a dense CPU tensor: torch.save(features.to_dense().cpu(), path)") from None


class MemoryFeatureStore(FeatureStore):
    """Arrays held in memory, ``{video_id: (T, C)}`` (features made on the fly, e.g. ``tadkit detect``)."""

    def __init__(self, arrays: dict, meta: dict | None = None, where: str = "<memory>"):
        self._arrays = dict(arrays)
        self.meta = meta
        self.where = where

    def _ids(self) -> list[str]:
        return list(self._arrays)

    def _read(self, key: str) -> np.ndarray:
        return self._arrays[key]


class HDF5FeatureStore(FeatureStore):
    """One HDF5 file with a dataset per video (read lazily, one video at a time)."""

    def __init__(self, path, layout: str = "TC"):
        import h5py
        self.path = Path(path)
        self.where = os.fspath(path)
        self.layout = _check_layout(layout)
        if not self.path.is_file():
            raise DataError("HDF5 feature file not found", path=self.where, fix="check data.features")
        try:
            with h5py.File(self.path, "r") as f:
                self._keys = [k for k, v in f.items() if isinstance(v, h5py.Dataset)]
        except (OSError, RuntimeError, KeyError, ValueError) as e:      # h5py's errors for a damaged file
            first = (str(e).splitlines() or [type(e).__name__])[0][:120]
            raise DataError(f"cannot open the HDF5 file ({first})", path=self.where,
                            fix="re-copy the file; it may be truncated") from None
        self._h5 = None
        self._pid = None

    def _ids(self) -> list[str]:
        return list(self._keys)

    def _file(self):
        import h5py
        if self._h5 is None or self._pid != os.getpid():  # one handle per process (data-loader workers)
            self._h5 = h5py.File(self.path, "r")
            self._pid = os.getpid()
        return self._h5

    def _shape(self, key: str) -> tuple | None:
        try:
            shape = self._file()[key].shape
        except (OSError, KeyError, RuntimeError, ValueError):
            return None
        return None if shape is None else tuple(shape)      # None: an empty dataset (h5py.Empty)

    def _read(self, key: str) -> np.ndarray:
        try:
            ds = self._file()[key]
            if ds.shape is not None and not ds.external and not ds.is_virtual:
                need = math.prod(ds.shape) * ds.dtype.itemsize
                have = ds.id.get_storage_size()
                if need > _UNWRITTEN_MIN_BYTES and have * 2048 < need:
                    raise DataError(f"dataset {key!r} declares shape {'x'.join(map(str, ds.shape))} ({need} bytes) "
                                    f"but stores {have} bytes: it was never written", path=self.where, video=key,
                                    fix="re-extract the features of this video")
            return ds[()]
        except (OSError, KeyError, TypeError, RuntimeError, ValueError) as e:
            first = str(e).splitlines()[0][:120] if str(e).strip() else type(e).__name__
            raise DataError(f"cannot read dataset {key!r} ({first})", path=self.where,
                            video=key, fix="re-copy the file; it may be truncated") from None
        except MemoryError:
            raise DataError(f"dataset {key!r} does not fit in memory", path=self.where, video=key,
                            fix="check the file: a damaged one can declare a huge shape") from None

    def __getstate__(self):
        state = dict(self.__dict__)
        state["_h5"] = None
        return state


class ConcatFeatureStore(FeatureStore):
    """Several stores concatenated on channels; lengths must agree within ``max_length_gap``."""

    def __init__(self, stores: Sequence[FeatureStore], max_length_gap: int = 0):
        if not stores:
            raise DataError("no feature stores to concatenate", fix="pass at least one directory in data.features")
        self.stores = list(stores)
        self.max_length_gap = int(max_length_gap)
        self.where = " + ".join(s.where for s in self.stores)
        self.layout = "TC"
        self.meta = next((s.meta for s in self.stores if s.meta), None)   # streams share one timing

    def _ids(self) -> list[str]:
        common = set(_strip_v(v) for v in self.stores[0].video_ids)
        for s in self.stores[1:]:
            common &= set(_strip_v(v) for v in s.video_ids)
        return list(common)

    def _key(self, video_id: str) -> str | None:
        return _strip_v(video_id) if all(video_id in s for s in self.stores) else None

    def load(self, video_id: str) -> np.ndarray:
        for s in self.stores:
            if video_id not in s:
                raise DataError(f"no features for video {video_id!r} in one of the concatenated stores",
                                path=s.where, video=video_id,
                                fix="every directory in data.features needs a file for each video")
        parts = [s.load(video_id) for s in self.stores]
        lengths = [len(p) for p in parts]
        if max(lengths) - min(lengths) > self.max_length_gap:
            detail = ", ".join(f"{s.where}: {n}" for s, n in zip(self.stores, lengths))
            raise DataError(f"concatenated feature stores disagree on the length of video {video_id!r} ({detail})",
                            video=video_id, path=self.stores[int(np.argmax(lengths))].where,
                            fix="extract all streams with the same fps/stride/window, or allow a small gap with "
                                "data.max_length_gap")
        t = min(lengths)
        return np.concatenate([p[:t] for p in parts], axis=1)

    def length(self, video_id: str) -> int:
        if video_id not in self:
            return int(self.load(video_id).shape[0])          # raises the missing-file error
        lengths = [s.length(video_id) for s in self.stores]
        if max(lengths) - min(lengths) > self.max_length_gap:
            return int(self.load(video_id).shape[0])          # raises the mismatch error
        return min(lengths)

    def width(self, video_id: str) -> int | None:
        widths = [s.width(video_id) for s in self.stores]
        return None if any(w is None for w in widths) else sum(widths)

    def check_widths(self, video_ids: Iterable[str]) -> None:
        for s in self.stores:                 # each stream on its own, so the message names its file
            s.check_widths(video_ids)

    @property
    def dim(self) -> int:
        return sum(s.dim for s in self.stores)


def open_features(paths, layout: str = "TC", max_length_gap: int = 0) -> FeatureStore:
    """A store for a directory, an HDF5 file, or a list of them (concatenated on channels)."""
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    paths = list(paths)
    if not paths:
        raise DataError("no feature path given", fix="set data.features to a directory (or a list of them)")
    stores = []
    for p in paths:
        p = Path(p)
        if p.suffix.lower() in HDF5_SUFFIXES:
            stores.append(HDF5FeatureStore(p, layout))
        elif p.is_file():
            raise DataError(f"a single feature file must be HDF5 ({'/'.join(HDF5_SUFFIXES)})", path=p,
                            fix="pass the directory holding one file per video, or an HDF5 file")
        else:
            stores.append(DirectoryFeatureStore(p, layout))
    return stores[0] if len(stores) == 1 else ConcatFeatureStore(stores, max_length_gap)


def resample_features(x: np.ndarray, length: int) -> np.ndarray:
    """Linear interpolation of ``(T, C)`` features to ``(length, C)`` (ActivityNet practice).

    Samples are taken at the centres of ``length`` equal bins over the video, on the grid of
    the ``T`` feature centres (``align_corners=False`` convention), so a constant sequence stays
    constant and resampling to the same length is the identity.
    """
    if length <= 0:
        raise DataError(f"cannot resample features to {length} steps", fix="set data.fixed_length to a positive number")
    t = x.shape[0]
    if t == length:
        return np.ascontiguousarray(x, dtype=np.float32)
    pos = (np.arange(length) + 0.5) * (t / length) - 0.5             # (L,) positions on the source grid
    pos = np.clip(pos, 0.0, t - 1)
    lo = np.floor(pos).astype(np.int64)
    hi = np.minimum(lo + 1, t - 1)
    w = (pos - lo)[:, None].astype(np.float32)
    return np.ascontiguousarray(x[lo] * (1 - w) + x[hi] * w, dtype=np.float32)   # (L, C)
