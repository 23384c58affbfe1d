"""``tadkit extract``: a directory of videos to I3D features that ``tadkit train`` reads.

For every video of ``VIDEO_DIR`` (by file suffix, sorted): decode it (:mod:`tadkit.data.video`:
native or resampled fps, short side resized, centre crop, RGB to [-1, 1]), cut clips of ``window``
frames every ``stride`` frames (clip i covers frames ``[i·stride, i·stride + window)``; clips
running past the end repeat the last frame), run the backbone on batches of clips and average its
endpoint (``Mixed_5c``: 1024-d) over time and space. ``FEATURE_DIR/<video_id>.npy`` is ``(T, C)``
float32 with ``T = ceil(frames / stride)``; feature i is centred at ``(i·stride + window/2) / fps``
seconds, the convention of :class:`tadkit.core.timing.FeatureTiming`.

``FEATURE_DIR/features.json`` records that timing (stride, window, each video's fps, frames and
duration) and the extraction settings, so ``tadkit train`` takes the timing from it
(:func:`tadkit.data.features.read_features_meta`) without ``data.fps``/``feature_stride``/
``feature_window`` in the config.

Resuming: every feature file is written to a temporary name and renamed, so an interrupted video
leaves no file; a video whose ``.npy`` exists is skipped. A directory extracted with other settings
is refused rather than mixed. Unreadable videos do not stop the others: each is reported on one
line, and the run ends with a :class:`~tadkit.core.errors.DataError` (exit 2) naming them.

Several processes: under ``torchrun --nproc_per_node N [--nnodes M ...] -m tadkit extract ...`` the
videos still to do are dealt out round-robin (sorted by id), each process on its own device
(``LOCAL_RANK``'s GPU, or the CPU). Rank 0 checks the folder and its settings and holds its lock;
each process records a finished video in ``FEATURE_DIR/.parts/<video_id>.json`` beside its ``.npy``
(so a killed run resumes video by video, with any number of processes), and rank 0 writes
``features.json`` once, at the end, from all of them. The features are those of one process.

Decoding runs in a background thread while the backbone computes, so on a GPU the backbone, not
the decoder, sets the pace (``benchmarks/extract_speed.py`` measures both).
"""
from __future__ import annotations

import logging
import os
import queue
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
import torch

from ..core.errors import DataError, TadkitError
from ..core.io import OutputLock, atomic_path, atomic_write_json, check_output_dir, remove_stale_temporaries
from ..data.features import FEATURES_META, read_features_meta
from ..data.frames import list_videos
from .distributed import DistContext, DistributedError, init_distributed, resolve_device

__all__ = ["extract_features", "extract_video", "ExtractResult", "to_model_input"]

log = logging.getLogger("tadkit")

# settings that must agree for features to sit in one directory
_SETTINGS = ("backbone", "endpoint", "fps", "feature_stride", "feature_window", "short_side", "crop")


@dataclass
class ExtractResult:
    out_dir: Path
    extracted: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)        # already there (resumed)
    failed: list[tuple[str, str]] = field(default_factory=list)
    frames: int = 0                                          # frames decoded by this run
    seconds: float = 0.0


def to_model_input(clips: np.ndarray | torch.Tensor, device) -> torch.Tensor:
    """uint8 clips ``(N, T, H, W, C)`` -> float ``(N, C, T, H, W)`` in [-1, 1] on ``device``."""
    from ..models.backbones.i3d import scale_frames
    return scale_frames(torch.as_tensor(clips).to(device, non_blocking=True).permute(0, 4, 1, 2, 3))


def _prefetch(iterator: Iterator, size: int = 3) -> Iterator:
    """Run ``iterator`` in a background thread (decoding beside the backbone); errors re-raised here."""
    q: queue.Queue = queue.Queue(maxsize=size)
    done = object()
    stop = threading.Event()

    def work():
        try:
            for item in iterator:
                while not stop.is_set():
                    try:
                        q.put(item, timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            q.put(done)
        except BaseException as e:  # noqa: BLE001 - handed to the consumer
            q.put(e)

    t = threading.Thread(target=work, daemon=True)
    t.start()
    try:
        while True:
            item = q.get()
            if item is done:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()


def _clip_batches(path, *, fps, stride, window, short_side, crop, batch_size,
                  counter: list | None = None) -> Iterator[np.ndarray]:
    """Batches of ``batch_size`` clips ``(N, window, H, W, 3)`` uint8 (the last may be smaller);
    ``counter[0]`` counts the decoded frames."""
    from ..data.video import iter_clips, iter_frames
    frames = iter_frames(path, fps=fps, short_side=short_side, crop=crop, crop_mode="center",
                         chunk_size=max(2 * window, batch_size * stride))

    def counted():
        for chunk in frames:
            if counter is not None:
                counter[0] += len(chunk)
            yield chunk

    rest = None                                    # clips waiting for a full batch
    for clips in iter_clips(counted(), window=window, stride=stride):
        # iter_clips yields views into the decoder's buffer: both branches copy
        clips = np.concatenate([rest, clips]) if rest is not None else np.array(clips)
        full = len(clips) // batch_size * batch_size
        for i in range(0, full, batch_size):
            yield clips[i:i + batch_size]
        rest = clips[full:] if full < len(clips) else None
    if rest is not None:
        yield rest


@torch.no_grad()
def extract_video(model, path, *, fps: float | None = None, stride: int = 4, window: int = 16,
                  short_side: int | None = 256, crop: int | None = 224, batch_size: int = 8,
                  endpoint: str = "Mixed_5c", device=None, amp: bool = False,
                  counter: list | None = None) -> np.ndarray:
    """Features ``(T, C)`` float32 of one video (see the module docstring); ``counter[0]`` counts frames."""
    from ..models.backbones.i3d import i3d_features
    device = torch.device(device) if device is not None else next(model.parameters()).device
    out = []
    batches = _prefetch(_clip_batches(path, fps=fps, stride=stride, window=window, short_side=short_side,
                                      crop=crop, batch_size=batch_size, counter=counter))
    for clips in batches:                                                   # (N, window, H, W, 3) uint8
        x = to_model_input(clips, device)                                   # (N, 3, window, H, W)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp and device.type == "cuda"):
            f = i3d_features(model, x, endpoint)                            # (N, C)
        out.append(f.float().cpu())
    if not out:
        raise DataError("the video has no frames", path=path, fix="re-encode or remove the file")
    feats = torch.cat(out).numpy().astype(np.float32)
    if not np.isfinite(feats).all():
        raise DataError("the backbone produced NaN/inf features", path=path,
                        fix="check the weights file and the video")
    return feats


def _check_settings(out_dir: Path, settings: dict) -> dict:
    """The existing ``features.json`` (or a fresh one); refuse a directory made with other settings."""
    meta = read_features_meta(out_dir)
    if meta is None:
        return {**settings, "videos": {}}
    differ = [k for k in _SETTINGS if meta.get(k) != settings[k]]
    if differ:
        k = differ[0]
        raise DataError(f"the feature directory was extracted with {k}={meta.get(k)!r}, this run asks for "
                        f"{settings[k]!r}", path=out_dir / FEATURES_META,
                        fix="extract into another --out directory, or repeat the original settings")
    meta.setdefault("videos", {})
    return meta


def extract_features(video_dir, weights, out_dir, *, fps: float | None = None, stride: int = 4, window: int = 16,
                     short_side: int | None = 256, crop: int | None = 224, batch_size: int = 8,
                     endpoint: str = "Mixed_5c", videos: Sequence[str] | None = None, device: str | None = "auto",
                     amp: bool = False, progress: bool = True, model=None) -> ExtractResult:
    """``tadkit extract``: features of every video of ``video_dir`` in ``out_dir``; see the module docstring.

    ``weights`` None means the checkpoint ``tadkit weights i3d`` cached. ``model`` replaces the I3D built
    from ``weights`` (tests, other backbones with the same ``i3d_features`` endpoint contract).
    """
    from ..data.video import probe_video
    if not (isinstance(stride, int) and stride >= 1) or not (isinstance(window, int) and window >= 1):
        raise DataError(f"--stride and --window must be positive integers, got {stride} and {window}",
                        fix="e.g. --stride 4 --window 16")
    if fps is not None and not fps > 0:
        raise DataError(f"--fps must be positive, got {fps}", fix="omit it to keep each video's frame rate")
    if batch_size < 1:
        raise DataError(f"--batch-size must be >= 1, got {batch_size}", fix="e.g. --batch-size 8")
    found = list_videos(video_dir, videos)
    out = Path(out_dir)
    check_output_dir(out, "--out")
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:       # under torchrun: the videos dealt out
        ctx = init_distributed(device or "auto")
        try:
            return _extract_sharded(ctx, found, out, weights, video_dir, fps=fps, stride=stride, window=window,
                                    short_side=short_side, crop=crop, batch_size=batch_size, endpoint=endpoint,
                                    amp=amp, progress=progress, model=model)
        finally:
            ctx.close()
    lock = OutputLock(out, "tadkit extract")     # one live extraction per folder
    if lock.acquire(create=False):
        remove_stale_temporaries(out)           # what a killed extraction was writing
    try:
        return _extract_into(lock, found, out, weights, video_dir, fps=fps, stride=stride, window=window,
                             short_side=short_side, crop=crop, batch_size=batch_size, endpoint=endpoint,
                             device=device, amp=amp, progress=progress, model=model)
    finally:
        lock.release()


def _extract_into(lock: OutputLock, found: dict, out: Path, weights, video_dir, *, fps, stride, window, short_side,
                  crop, batch_size, endpoint, device, amp, progress, model) -> ExtractResult:
    had_parts = (out / PARTS).is_dir()          # left by a sharded run, or put there by the feature cache
    settings = _settings(endpoint, fps, stride, window, short_side, crop)
    meta = _merge_parts(out, _check_settings(out, settings), settings)
    dev = resolve_device(device or "auto", option="--device")
    weights = _weights_file(model, weights)
    meta["weights"] = None if weights is None else str(weights)
    model = _backbone(model, weights, endpoint).to(dev).eval()
    # the folder appears with the first video's features (atomic_path makes it): a run where no video
    # can be read leaves nothing behind

    result = ExtractResult(out)
    result.skipped = [vid for vid in found if _done(out, meta, vid)]
    todo = [(vid, path) for vid, path in found.items() if vid not in result.skipped]

    def first_write():                           # the folder appears with the first video's features
        if not lock.held:
            lock.acquire()
            remove_stale_temporaries(out)

    def record(vid, entry):
        meta["videos"][vid] = entry
        _write_meta(out, meta)

    _extract_list(model, todo, out, result, first_write=first_write, record=record, fps=fps, stride=stride,
                  window=window, short_side=short_side, crop=crop, batch_size=batch_size, endpoint=endpoint,
                  device=dev, amp=amp, progress=progress)
    if (result.extracted or result.skipped) and (had_parts or not (out / FEATURES_META).exists()):
        _write_meta(out, meta)
    if had_parts:
        _drop_parts(out)
    _raise_failed(result.failed, len(found), video_dir)
    return result


def _settings(endpoint, fps, stride, window, short_side, crop) -> dict:
    return {"backbone": "i3d", "endpoint": endpoint, "fps": None if fps is None else float(fps),
            "feature_stride": stride, "feature_window": window, "short_side": short_side, "crop": crop}


def _write_meta(out: Path, meta: dict) -> None:
    """``features.json``, its videos sorted by id (the same file however the videos were dealt out)."""
    atomic_write_json(out / FEATURES_META, {**meta, "videos": dict(sorted(meta["videos"].items()))})


def _weights_file(model, weights) -> Path | None:
    """The I3D weights file the features come from (the cached one when none is given; recorded for
    ``tadkit detect --run``); None when a ``model`` is given instead."""
    if model is not None:
        return None
    if weights is None:
        from .weights import default_weights
        weights = default_weights("i3d")
    return Path(weights).resolve()


def _backbone(model, weights_file, endpoint):
    """``model``, or the I3D of ``weights_file`` (:func:`_weights_file`)."""
    if model is not None:
        return model
    from ..models.backbones.i3d import build_i3d
    return build_i3d(weights_file, final_endpoint=endpoint)


def _done(out: Path, meta: dict, vid: str) -> bool:
    return (out / f"{vid}.npy").is_file() and vid in meta["videos"]


PARTS = ".parts"   # FEATURE_DIR/.parts/<video_id>.json: a video finished by one of several processes


def write_part(out: Path, vid: str, settings: dict, entry: dict) -> None:
    """Record a finished video (its ``.npy`` already in place) with the settings it was made with."""
    atomic_write_json(out / PARTS / f"{vid}.json", {"settings": settings, "entry": entry})


def _merge_parts(out: Path, meta: dict, settings: dict) -> dict:
    """``meta`` with the videos recorded in ``.parts`` (by the processes of a sharded run, or the feature
    cache) whose ``.npy`` is there and whose settings are ``settings``; any other is extracted again."""
    import json
    parts = out / PARTS
    if parts.is_dir():
        for p in sorted(parts.glob("*.json")):
            if (out / f"{p.stem}.npy").is_file():
                try:
                    part = json.loads(p.read_text())
                except (OSError, ValueError):
                    continue                     # unreadable: the video is extracted again
                if isinstance(part, dict) and part.get("settings") == settings and "entry" in part:
                    meta["videos"][p.stem] = part["entry"]
    return meta


def _drop_parts(out: Path) -> None:
    import shutil
    shutil.rmtree(out / PARTS, ignore_errors=True)


def _extract_list(model, todo, out: Path, result: ExtractResult, *, first_write, record, fps, stride, window,
                  short_side, crop, batch_size, endpoint, device, amp, progress, desc: str = "extract") -> None:
    """Extract ``todo`` ([(id, path)]) into ``out``; ``record(id, entry)`` after each ``.npy`` is in place."""
    from tqdm import tqdm

    from ..data.video import probe_video
    bar = tqdm(total=len(todo), unit="video", desc=desc, disable=not progress or not todo, leave=False)
    start = time.perf_counter()
    try:
        for vid, path in todo:
            bar.set_postfix_str(vid[:30])
            try:
                info = probe_video(path)
                counter = [0]
                feats = extract_video(model, path, fps=fps, stride=stride, window=window, short_side=short_side,
                                      crop=crop, batch_size=batch_size, endpoint=endpoint, device=device, amp=amp,
                                      counter=counter)
            except TadkitError as e:
                result.failed.append((vid, e.one_line()))
                log.error(e.one_line())
                bar.update(1)
                continue
            rate = float(fps) if fps is not None else float(info.fps)
            frames = counter[0]
            first_write()
            with atomic_path(out / f"{vid}.npy", suffix=".npy") as tmp:   # no half-written file
                np.save(tmp, feats)
            record(vid, {"fps": rate, "frames": frames, "duration": float(info.duration),
                         "num_features": int(len(feats)), "source": str(path.name)})
            result.extracted.append(vid)
            result.frames += frames
            bar.update(1)
    finally:
        bar.close()
        result.seconds = time.perf_counter() - start


def _raise_failed(failed: list, total: int, video_dir) -> None:
    if failed:
        vid, msg = failed[0]
        more = f" (and {len(failed) - 1} more, listed above)" if len(failed) > 1 else ""
        raise DataError(f"{len(failed)} of {total} videos could not be read{more}; first: {msg}",
                        path=video_dir, fix="re-encode or remove those files, then run the same command again "
                                            "(finished videos are kept and skipped)")


def _extract_sharded(ctx: DistContext, found: dict, out: Path, weights, video_dir, *, fps, stride, window,
                     short_side, crop, batch_size, endpoint, amp, progress, model) -> ExtractResult:
    """One process of a ``torchrun`` extraction (module docstring): rank 0 checks and locks the folder and
    says what is left; every process extracts its share (round-robin); rank 0 writes ``features.json``."""
    lock = OutputLock(out, "tadkit extract")
    settings = _settings(endpoint, fps, stride, window, short_side, crop)
    word: dict = {}
    error = None
    meta: dict = {}
    if ctx.is_main:
        try:
            lock.acquire()
            remove_stale_temporaries(out)
            meta = _merge_parts(out, _check_settings(out, settings), settings)
            word = {"done": [vid for vid in found if _done(out, meta, vid)]}
        except TadkitError as e:
            error, word = e, {"error": e.one_line()}
    word = ctx.broadcast_object(word)
    try:
        if error is not None:
            raise error
        if "error" in word:
            raise DistributedError(f"rank 0 stopped: {word['error']}")
        result = ExtractResult(out, skipped=list(word["done"]))
        todo = [(vid, path) for vid, path in found.items() if vid not in result.skipped]
        mine = todo[ctx.rank::ctx.world_size]
        weights = _weights_file(model, weights)
        net = _backbone(model, weights, endpoint).to(ctx.device).eval()

        entries: dict = {}

        def record(vid, entry):
            write_part(out, vid, settings, entry)     # kept if this process is stopped before the end
            entries[vid] = entry

        _extract_list(net, mine, out, result, first_write=lambda: None, record=record, fps=fps, stride=stride,
                      window=window, short_side=short_side, crop=crop, batch_size=batch_size, endpoint=endpoint,
                      device=ctx.device, amp=amp, progress=progress and ctx.is_main,
                      desc=f"extract (rank 0 of {ctx.world_size})")
        try:
            shares = ctx.all_gather_object((entries, result.failed, result.frames))
        except RuntimeError as e:                # a process died: say which, in one line
            raise (ctx.stopped_elsewhere(e) or e) from None
        result.extracted = sorted(v for ex, _, _ in shares for v in ex)
        result.failed = [f for _, fl, _ in shares for f in fl]
        result.frames = sum(fr for _, _, fr in shares)
        if ctx.is_main:
            meta["weights"] = None if weights is None else str(weights)
            for ex, _, _ in shares:              # the entries themselves: no file another node wrote is read
                meta["videos"].update(ex)
            if result.extracted or result.skipped:
                _write_meta(out, meta)           # once, with every process's videos
            _drop_parts(out)
        ctx.barrier()                            # features.json is there before any process goes on
    except TadkitError as e:
        ctx.report_failure(e.one_line())
        raise
    finally:
        lock.release()
    _raise_failed(result.failed, len(found), video_dir)
    return result

