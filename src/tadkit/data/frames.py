"""Frames instead of features: the data side of end-to-end training (PointTAD, SP-TAD from video).

:class:`VideoFrameStore` presents a directory of video files the way a feature store presents
feature files: one *step* is ``step_frames`` consecutive frames at the store's frame rate (the
resolution of the detector's input sequence: 4 frames for PointTAD's stride-4 I3D features, 1
frame for SP-TAD, whose pyramid reads the backbone's stride 2, 4 and 8 stages), so a video of N
frames has ``ceil(N / step_frames)`` steps and step i covers frames ``[i·s, (i+1)·s)``: feature
timing ``(fps, stride = s, window = s)``. Frame counts come from :func:`tadkit.data.video.probe_video`
(cached), so windows and targets are set without decoding.

:class:`FrameDataset` is :class:`~tadkit.data.dataset.VideoDataset` (same windows, crops,
truncation rule and targets in steps) whose items carry ``frames`` ``(3, L, H, W)`` uint8,
``L = steps · s``, decoded for the item's steps only: the short side resized to ``short_side``,
a ``crop_size`` square cropped at random in training (one offset per item, drawn from the
item's seed) and at the centre otherwise; with ``flip`` (training only) half the items are
mirrored left-right (flow x negated: ``255 - x``). Frames past the video end repeat the last frame.
With ``flow_directory`` (two-stream input) each video id has precomputed optical flow there,
either as a same-named video whose first two colour channels hold x and y, or as a same-named
folder of flow frames (``*x*NNNNN.jpg`` and ``*y*NNNNN.jpg`` grey images, e.g. ``flow_x_00001.jpg``,
the usual TV-L1 output; sorted by name, pair k = frame k), in both cases 0..255 ↔ −1..1 and one
flow frame per video frame at the store's frame rate. Flow is resized and cropped like the RGB
(same offsets): items then also carry ``flow`` ``(2, L, H, W)``.

:meth:`FrameDataset.collate` pads frames with zeros to the longest item and gives ``masks``
``(B, T)`` over steps; ``feats`` is absent: the model makes its features from ``frames``.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from ..core.errors import DataError
from .dataset import VideoDataset
from .features import FeatureStore

__all__ = ["VIDEO_SUFFIXES", "list_videos", "VideoFrameStore", "FrameDataset"]

VIDEO_SUFFIXES = (".mp4", ".avi", ".mkv", ".webm", ".mov", ".m4v", ".mpg", ".mpeg", ".wmv", ".flv", ".gif",
                  ".3gp", ".ts", ".ogv")


def list_videos(video_dir, videos: Sequence[str] | None = None) -> dict[str, Path]:
    """``{video_id: path}`` of the video files in ``video_dir`` (id = file name without suffix), sorted."""
    d = Path(video_dir)
    if not d.is_dir():
        raise DataError("video directory not found", path=d, fix="pass the directory holding the video files")
    found: dict[str, Path] = {}
    for p in sorted(d.iterdir()):
        if p.is_file() and p.suffix.lower() in VIDEO_SUFFIXES and not p.name.startswith("."):
            if p.stem in found:
                raise DataError(f"two videos named {p.stem!r}: {found[p.stem].name} and {p.name}", path=d,
                                fix="keep one file per video id")
            found[p.stem] = p
    if videos:
        unknown = [v for v in videos if v not in found]
        if unknown:
            raise DataError(f"{len(unknown)} requested videos are not in the directory (e.g. {unknown[:3]})",
                            path=d, fix="video ids are the file names without suffix")
        found = {v: found[v] for v in videos}
    if not found:
        raise DataError(f"no video files ({', '.join(VIDEO_SUFFIXES)})", path=d,
                        fix="pass the directory holding the videos")
    return found


_FLOW_IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")


def _flow_sources(directory) -> dict[str, Path]:
    """``{video_id: video file or folder of flow frames}`` in a flow directory."""
    d = Path(directory)
    if not d.is_dir():
        raise DataError("flow directory not found", path=d, fix="set data.flow_videos to the flow directory")
    found = {p.name: p for p in sorted(d.iterdir()) if p.is_dir() and not p.name.startswith(".")}
    try:
        for vid, p in list_videos(d).items():
            found.setdefault(vid, p)
    except DataError:
        if not found:
            raise
    return found


def _flow_frame_files(folder: Path, video: str) -> tuple[list[Path], list[Path]]:
    files = [p for p in sorted(folder.iterdir()) if p.suffix.lower() in _FLOW_IMAGE_SUFFIXES]
    xs = [p for p in files if "x" in p.stem.lower().replace("flow", "", 1).rstrip("0123456789")]
    ys = [p for p in files if "y" in p.stem.lower().replace("flow", "", 1).rstrip("0123456789")]
    if not xs or len(xs) != len(ys):
        raise DataError(f"flow frames must come in x / y pairs (found {len(xs)} x and {len(ys)} y images)",
                        path=folder, video=video, fix="name them flow_x_00001.jpg, flow_y_00001.jpg, ...")
    return xs, ys


def _read_flow_images(folder: Path, lo: int, n: int, *, short_side, crop, seed, video: str) -> np.ndarray:
    """Flow frames ``[lo, lo + n)`` (past the end: the last repeated) as ``(n, H, W, 2)`` uint8,
    resized (bilinear) and cropped with the offsets the RGB frames got from the same ``seed``."""
    from PIL import Image

    from .video import frame_geometry
    xs, ys = _flow_frame_files(folder, video)
    rng = None if seed is None else np.random.default_rng(seed)
    out = []
    geo = None
    for k in range(lo, lo + n):
        k = min(k, len(xs) - 1)
        pair = []
        for p in (xs[k], ys[k]):
            try:
                img = Image.open(p).convert("L")
            except (OSError, ValueError) as e:
                raise DataError(f"cannot read the flow frame ({type(e).__name__})", path=p, video=video,
                                fix="re-extract the flow frames") from None
            if geo is None:                  # the RGB's resize and crop (same seed: same offsets)
                geo = frame_geometry(img.width, img.height, short_side, crop,
                                     "center" if rng is None else "random", rng, path=p)
            if (geo.width, geo.height) != img.size:
                img = img.resize((geo.width, geo.height), Image.BILINEAR)
            pair.append(np.asarray(img)[geo.y0:geo.y0 + geo.out_h, geo.x0:geo.x0 + geo.out_w])
        out.append(np.stack(pair, axis=-1))
    return np.stack(out)                                                                   # (n, H, W, 2)


class VideoFrameStore(FeatureStore):
    """A directory of videos seen as a feature store of ``step_frames``-frame steps (see the module doc).

    Ids, the ``v_`` prefix rule and ``missing`` are :class:`~tadkit.data.features.FeatureStore`'s;
    frames come from :meth:`read`, not ``load``.
    """

    def __init__(self, directory=None, *, fps: float | None = None, step_frames: int = 4, flow_directory=None,
                 files: dict | None = None):
        if not (isinstance(step_frames, int) and step_frames >= 1):
            raise DataError(f"frames per step must be a positive integer, got {step_frames!r}",
                            fix="check model.backbone.fusion")
        if fps is not None and not fps > 0:
            raise DataError(f"data.fps must be positive, got {fps}", fix="set data.fps or null (native rate)")
        if (directory is None) == (files is None):
            raise ValueError("pass a video directory or a {video_id: path} mapping (files=)")
        self.where = os.fspath(directory) if directory is not None else ", ".join(map(os.fspath, files.values()))
        self.videos = list_videos(directory) if directory is not None else {k: Path(v) for k, v in files.items()}
        self.flow = _flow_sources(flow_directory) if flow_directory is not None else None
        self.fps = None if fps is None else float(fps)
        self.step_frames = int(step_frames)
        self.meta = {"feature_stride": float(step_frames), "feature_window": float(step_frames), "videos": {}}
        self._info: dict = {}

    # -- the FeatureStore interface VideoDataset uses -------------------------------------
    def _ids(self) -> list[str]:
        return [v for v in self.videos if self.flow is None or v in self.flow]

    @property
    def dim(self) -> int:
        """Input channels: 3 (RGB), 5 with flow."""
        return 3 if self.flow is None else 5

    def info(self, video_id: str):
        key = self._key(video_id)
        if key is None:
            raise DataError(f"no video file for {video_id!r}", path=self.where, video=video_id,
                            fix="put the video there, or drop it from the annotations")
        if key not in self._info:
            from .video import probe_video
            self._info[key] = probe_video(self.videos[key])
        return self._info[key]

    def video_fps(self, video_id: str) -> float:
        return self.fps if self.fps is not None else float(self.info(video_id).fps)

    def num_frames(self, video_id: str) -> int:
        """Frames at the store's rate: native count, or those with time j / fps < duration when resampled."""
        info = self.info(video_id)
        if self.fps is None:
            return int(info.num_frames)
        return max(1, int(info.num_frames_at(self.fps)))

    def length(self, video_id: str) -> int:
        return -(-self.num_frames(video_id) // self.step_frames)

    # -- frames ---------------------------------------------------------------------------
    def read(self, video_id: str, start_step: int, end_step: int, *, short_side: int | None, crop: int | None,
             rng: np.random.Generator | None = None) -> dict[str, np.ndarray]:
        """``{"frames": (L, H, W, 3) uint8[, "flow": (L, H, W, 2)]}`` of steps ``[start_step, end_step)``."""
        from .video import read_frames
        key = self._key(video_id)
        lo, n = start_step * self.step_frames, (end_step - start_step) * self.step_frames
        seed = None if rng is None else int(rng.integers(2 ** 31))
        out = {}
        sources = [("frames", self.videos[key])] + ([("flow", self.flow[key])] if self.flow is not None else [])
        for name, path in sources:
            if name == "flow" and path.is_dir():
                out[name] = _read_flow_images(path, lo, n, short_side=short_side, crop=crop, seed=seed,
                                              video=video_id)
                continue
            x = read_frames(path, fps=self.fps, short_side=short_side, crop=crop,
                            crop_mode="center" if seed is None else "random",
                            rng=None if seed is None else np.random.default_rng(seed),
                            start_frame=lo, end_frame=lo + n)                         # (l, H, W, 3)
            if len(x) == 0:
                raise DataError(f"no frames decoded from frame {lo}", path=path, video=video_id,
                                fix="check the video file (tadkit extract reports unreadable videos)")
            if len(x) < n:                                                             # past the end: repeat
                x = np.concatenate([x, np.repeat(x[-1:], n - len(x), axis=0)])
            out[name] = x[:n] if name == "frames" else x[:n, ..., :2]
        return out


class FrameDataset(VideoDataset):
    """:class:`VideoDataset` over a :class:`VideoFrameStore`: items carry decoded frames (see the module doc)."""

    def __init__(self, annotations, store: VideoFrameStore, subset, *, short_side: int | None = 256,
                 crop_size: int | None = 224, flip: bool = True, **kwargs):
        for k in ("fps", "feature_stride", "feature_window", "fixed_length"):
            if kwargs.get(k) is not None:
                raise DataError(f"end-to-end training takes the timing from the videos; data.{k} must be null "
                                f"(data.fps sets the decoding rate)", fix=f"remove data.{k} from the config")
        super().__init__(annotations, store, subset, **kwargs)
        self.short_side = short_side
        self.crop_size = crop_size
        self.flip = bool(flip)

    @property
    def step_frames(self) -> int:
        return self.features.step_frames

    def __getitem__(self, index: int) -> dict:
        ei, start, end = self._items[index]
        e = self.entries[ei]
        start, end = self.window_of(index, e, start, end)
        item = self.targets_of(e, start, end)
        rng = np.random.default_rng([self.seed, self.epoch, index, 7]) if self.training else None
        x = self.features.read(e.video_id, start, end, short_side=self.short_side, crop=self.crop_size, rng=rng)
        if rng is not None and self.flip and rng.random() < 0.5:
            x = {k: v[:, :, ::-1] for k, v in x.items()}                                    # (L, H, W, C) mirrored
            if "flow" in x:
                x["flow"] = np.ascontiguousarray(x["flow"])
                x["flow"][..., 0] = 255 - x["flow"][..., 0]
        item["frames"] = torch.from_numpy(np.ascontiguousarray(x["frames"].transpose(3, 0, 1, 2)))  # (3, L, H, W)
        if "flow" in x:
            item["flow"] = torch.from_numpy(np.ascontiguousarray(x["flow"].transpose(3, 0, 1, 2)))  # (2, L, H, W)
        item["steps"] = end - start
        return item

    def collate(self, items: list[dict]) -> dict:
        """Frames padded with zeros to the longest item, ``masks`` (B, T) over steps, targets as lists."""
        if not items:
            raise ValueError("collate needs at least one item")
        steps = [it["steps"] for it in items]
        t = max(steps)
        batch = {"masks": torch.zeros((len(items), t), dtype=torch.bool)}                    # (B, T)
        for b, n in enumerate(steps):
            batch["masks"][b, :n] = True
        for name in ("frames", "flow"):
            if name not in items[0]:
                continue
            c, _, h, w = items[0][name].shape
            x = torch.zeros((len(items), c, t * self.step_frames, h, w), dtype=torch.uint8)  # (B, C, L, H, W)
            for b, it in enumerate(items):
                x[b, :, :it[name].shape[1]] = it[name]
            batch[name] = x
        batch.update({"segments": [it["segments"] for it in items], "labels": [it["labels"] for it in items],
                      "video_ids": [it["video_id"] for it in items], "offsets": [it["offset"] for it in items],
                      "durations": [it["duration"] for it in items],
                      "num_features": [it["num_features"] for it in items],
                      "timings": [it["timing"] for it in items]})
        return batch
