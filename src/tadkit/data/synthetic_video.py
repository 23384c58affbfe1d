"""Small synthetic *videos* with known actions, for end-to-end tests and ``tadkit detect`` smoke runs.

Each video is a noisy grey background; during an action of class k a coloured square (colour k of
a fixed palette) moves across the frame (left to right for even k, top to bottom for odd k), so
both appearance and motion tell the classes apart. Written with PyAV (H.264, yuv420p) beside an
ActivityNet-style ``annotations.json`` whose videos carry ``fps`` and ``duration``.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..core.io import atomic_write_json, atomic_write_text

__all__ = ["make_synthetic_videos", "write_video"]

_PALETTE = np.array([[230, 40, 40], [40, 200, 60], [50, 80, 230], [230, 200, 40], [200, 60, 220], [40, 210, 210]],
                    dtype=np.uint8)


def write_video(path, frames: np.ndarray, fps: float, codec: str = "libx264") -> None:
    """Write ``frames`` ``(N, H, W, 3)`` uint8 RGB (even H and W) to ``path``."""
    import av
    from fractions import Fraction
    path = Path(path)
    tmp = path.with_name(f".{path.stem}.tmp{path.suffix}")
    with av.open(str(tmp), mode="w") as out:
        stream = out.add_stream(codec, rate=Fraction(fps).limit_denominator(1001))
        stream.width, stream.height = int(frames.shape[2]), int(frames.shape[1])
        stream.pix_fmt = "yuv420p"
        stream.options = {"crf": "18", "preset": "ultrafast"}
        for x in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(x), format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    tmp.replace(path)


def make_synthetic_videos(out_dir, *, videos: int = 6, classes: int = 2, frames: int = 64, fps: float = 10.0,
                          size: int = 64, seed: int = 0, test_fraction: float = 0.34) -> dict:
    """Write ``out_dir/videos/<id>.mp4``, ``out_dir/annotations.json`` and ``out_dir/labels.csv`` (a label
    sheet of the training videos, ``video,start,end,label`` in seconds, as ``tadkit fit`` reads; the
    testing videos are left out of it, as new videos for ``tadkit detect``); return the annotation dict."""
    if not 1 <= classes <= len(_PALETTE):
        raise ValueError(f"classes must be in 1..{len(_PALETTE)}")
    rng = np.random.default_rng(seed)
    out = Path(out_dir)
    (out / "videos").mkdir(parents=True, exist_ok=True)
    n_test = int(round(videos * test_fraction))
    db = {}
    box = max(4, size // 4)
    for v in range(videos):
        vid = f"synvid_{v:03d}"
        x = rng.normal(110, 12, size=(frames, size, size, 3)).clip(0, 255).astype(np.uint8)
        anns, t = [], int(rng.integers(2, 8))
        while t < frames - 8:
            length = int(rng.integers(8, max(9, frames // 3)))
            end = min(frames - 1, t + length)
            k = int(rng.integers(classes))
            for f in range(t, end):
                p = (f - t) / max(1, end - t - 1)
                pos = int(p * (size - box))
                r, c = (size // 2 - box // 2, pos) if k % 2 == 0 else (pos, size // 2 - box // 2)
                x[f, r:r + box, c:c + box] = _PALETTE[k]
            anns.append({"segment": [t / fps, end / fps], "label": f"action_{k}"})
            t = end + int(rng.integers(4, 12))
        write_video(out / "videos" / f"{vid}.mp4", x, fps)
        db[vid] = {"subset": "testing" if v >= videos - n_test else "training", "duration": frames / fps,
                   "fps": fps, "annotations": anns}
    ann = {"version": "tadkit-synthetic-video", "classes": [f"action_{k}" for k in range(classes)], "database": db}
    atomic_write_json(out / "annotations.json", ann)
    rows = ["video,start,end,label"] + [f"{vid}.mp4,{a['segment'][0]:g},{a['segment'][1]:g},{a['label']}"
                                        for vid, v in db.items() if v["subset"] == "training" for a in v["annotations"]]
    atomic_write_text(out / "labels.csv", "\n".join(rows) + "\n")
    return ann
