"""Video decoding for feature extraction and end-to-end training (PyAV).

Only the first video stream of a file is decoded (attached cover pictures are skipped);
audio, subtitle and data streams are ignored. Decoding is streamed: frames come out in
chunks of at most ``chunk_size`` and the whole video is never held in memory.

Frame times
    A decoded frame's time is ``(pts - start) * time_base`` seconds, where ``start`` is the
    video stream's start time (the first frame's pts when the container has none), so a
    file whose timestamps begin at 10 s still starts at 0. Frames without a pts are put one
    frame interval (``1/fps``) after the previous frame.

Native frames (``fps=None``)
    Every decoded frame, in presentation order. :attr:`VideoInfo.num_frames` counts them.

Resampling (``fps=f``)
    Output frame ``j`` is the decoded frame whose time is the latest ``<= j/f`` (nearest
    previous), for every ``j >= 0`` with ``j/f < duration``; so upsampling repeats frames,
    downsampling drops them, and a constant-rate video at ``r`` fps gives native frame
    ``floor(j*r/f)``. A frame counts as "at or before" ``j/f`` if its time is within one
    time-base tick (at most a quarter frame) of it, so timestamps that a container rounded
    (Matroska's millisecond clock) do not shift the pick by a frame. Targets before the
    first decoded frame take the first frame. :meth:`VideoInfo.num_frames_at` gives the
    number of output frames (``ceil(duration * f)``).

Resize and crop
    The short side is scaled to ``short_side`` keeping the aspect ratio (the long side is
    rounded half up; pixels are taken as square, rotation metadata is ignored), in the
    same libswscale call that converts to RGB24, with bilinear interpolation (FFmpeg's
    bilinear filter widens with the scale factor, so downscaling is antialiased like
    Pillow's). Then a ``crop`` x ``crop`` square is cut: ``crop_mode="center"`` at
    ``((W'-crop)//2, (H'-crop)//2)``, or ``"random"`` at one offset per video drawn from
    ``rng`` (``y0`` then ``x0``, each ``rng.integers(0, size - crop + 1)``) before decoding,
    so augmentation is reproducible from a seed. ``short_side=None`` keeps the decoded size;
    ``crop=None`` keeps the whole (resized) frame. Output is ``uint8`` RGB,
    ``(n, H, W, 3)``.

Clips
    Clip ``i`` covers frames ``[i*stride, i*stride + window)``. Every ``i`` with
    ``i*stride < num_frames`` is a clip (:func:`clip_starts`), so there are
    ``ceil(num_frames / stride)`` clips and a video shorter than a window still gives one;
    clips that run past the end are padded by repeating the last frame. Feature ``i``
    computed from clip ``i`` is centred at ``(i*stride + window/2) / fps`` seconds, as in
    :mod:`tadkit.core.timing`. (:meth:`FeatureTiming.num_features` counts whole windows
    only; a store made with these clips has up to ``ceil(window/stride) - 1`` more steps.)
    :func:`iter_clips` builds the clips from a chunk stream, holding at most
    ``window - 1 + chunk`` frames.

Starting part-way
    ``start_frame`` / ``end_frame`` select output frames ``[start_frame, end_frame)``, always
    the same frames as a read from the beginning would give at those positions. With
    ``fps`` set, decoding seeks to the last keyframe before ``start_frame / fps`` (and falls
    back to decoding from the start if the container seeks past it). Without ``fps`` frame
    indices stay counts of decoded frames; on a stream whose timestamps say so - the frame
    count matching the duration at the average rate, the base rate agreeing with it - frame
    ``k`` is the one at ``t0 + k/fps`` (``t0`` the first decoded frame's time), so decoding
    seeks to the last keyframe at or before ``start_frame``'s time, skips frames decoded
    ahead of that keyframe, and takes the keyframe's index from its time. Every frame from
    there to ``start_frame`` must lie within a quarter frame of its index, one index after
    the other, and past ``start_frame`` frames are counted. Otherwise (a variable rate, a
    missing frame, jittery or missing timestamps, a container that cannot seek or seeks
    past the target, no keyframe before the target) decoding starts at the beginning.
    After a seek, damage before the keyframe reached is not decoded, so not reported.

Errors
    Every problem with a file is a :class:`~tadkit.core.errors.DataError` whose one-line
    message names the file and what to do: file missing; not a video or a corrupt
    container (FFmpeg cannot open it); no video stream (e.g. audio only); no decodable
    frame ("empty video"); a decoding error part-way (raised with the frame index reached,
    after the frames before it were yielded - a short video is never returned silently);
    a stream that ends well before the length the file declares (a truncated file that
    decodes without error: the last frame ending more than ``max(2 frames, 1 %)`` before
    the stream's duration, or, for containers without a frame count, the packets of all
    streams ending more than ``max(0.5 s, 5 %)`` before the duration the container
    declares). Frames a decoder drops at the very start (a file cut inside a group of
    pictures) are not an error: times stay right, but at native rate fewer frames than
    :attr:`VideoInfo.num_frames` come out. Bad arguments (``fps``, ``short_side``,
    ``crop`` <= 0, an unknown ``crop_mode``, ...) are a
    :class:`~tadkit.core.errors.ConfigError` naming the argument; a crop larger than the
    resized frame is a ``DataError`` naming the file.
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Iterable, Iterator

import av
import numpy as np
from av.video.reformatter import VideoReformatter

from ..core.errors import ConfigError, DataError

__all__ = ["VideoInfo", "probe_video", "iter_frames", "read_frames", "clip_starts", "iter_clips"]

_INTERPOLATION = "BILINEAR"
_CORRUPT_FIX = "the file is truncated or corrupt; re-download it or re-encode it with ffmpeg"


@dataclass(frozen=True)
class VideoInfo:
    """What :func:`probe_video` finds out about a file's video stream.

    ``num_frames`` is the number of frames :func:`iter_frames` yields at native rate (the
    container's count, or the count of video packets; see the module docstring for the
    rare files whose decoder drops a few leading frames), ``duration`` the video stream's
    length in seconds, ``width`` x ``height`` the decoded frame size in pixels.
    """

    path: str
    fps: float
    num_frames: int
    duration: float
    width: int
    height: int

    def num_frames_at(self, fps: float | None) -> int:
        """How many frames :func:`iter_frames` yields at ``fps`` (``None``: native)."""
        if fps is None:
            return self.num_frames
        return _num_resampled(self.duration, _check_fps(fps))


# ----------------------------------------------------------------------------- probing


def _check_file(path) -> Path:
    p = Path(path)
    if not p.exists():
        raise DataError("video file not found", path=p, fix="check the path")
    if p.is_dir():
        raise DataError("expected a video file, found a directory", path=p, fix="pass a video file inside it")
    if p.stat().st_size == 0:
        raise DataError("the video file is empty (0 bytes)", path=p, fix="re-download or re-create it")
    return p


def _open(p: Path):
    try:
        return av.open(os.fspath(p), metadata_errors="ignore")
    except av.error.EOFError:
        raise DataError("not a readable video: the file ends before any data", path=p, fix=_CORRUPT_FIX) from None
    except (av.error.FFmpegError, UnicodeDecodeError) as e:
        raise DataError(f"not a video file or a corrupt container ({_reason(e)})", path=p,
                        fix="pass a video file (mp4, mkv, webm, avi, ...); if it is one, re-download or re-encode it"
                        ) from None


def _reason(e: Exception) -> str:
    return str(getattr(e, "strerror", None) or e).strip() or type(e).__name__


def _video_stream(container, p: Path):
    for s in container.streams.video:
        if not (s.disposition & av.stream.Disposition.attached_pic):
            return s
    kinds = sorted({s.type for s in container.streams}) or ["none"]
    raise DataError(f"no video stream (streams found: {', '.join(kinds)})", path=p,
                    fix="pass a video file; an audio-only file cannot be used")


def _stream_rate(stream, p: Path) -> Fraction:
    for rate in (stream.average_rate, stream.guessed_rate, stream.base_rate):
        if rate is not None and rate.denominator != 0 and rate > 0:
            return Fraction(rate)
    raise DataError("the video stream has no usable frame rate", path=p,
                    fix="re-encode the video with a constant frame rate, e.g. ffmpeg -i IN -r 30 OUT")


def _num_resampled(duration: float, fps: float) -> int:
    # j/fps < duration  <=>  j < duration*fps; rounding keeps 1.6 s * 10 fps at 16, not 17.
    return max(0, math.ceil(round(duration * fps, 6)))


def probe_video(path: str | os.PathLike) -> VideoInfo:
    """Frame rate, frame count, duration and size of the first video stream of ``path``.

    Uses the container's metadata when it is consistent (the frame count agrees with
    duration x fps within half a frame, as in mp4/mov/avi). Otherwise (webm, mkv, gif, or an
    mp4 whose edit list trims frames) the frames are counted by demuxing the video packets
    without decoding them (packets flagged for discard are not counted), and the duration is
    taken from their timestamps. fps is the stream's average rate, else its guessed or
    base rate.
    """
    p = _check_file(path)
    container = _open(p)
    try:
        stream = _video_stream(container, p)
        return _probe(container, stream, p)
    finally:
        container.close()


def _probe(container, stream, p: Path) -> VideoInfo:
    rate = _stream_rate(stream, p)
    fps = float(rate)
    tb = stream.time_base
    width, height = stream.codec_context.width, stream.codec_context.height
    n_meta = stream.frames or 0
    dur_meta = float(stream.duration * tb) if (stream.duration and stream.duration > 0 and tb) else None

    if n_meta > 0 and (dur_meta is None or abs(n_meta - dur_meta * fps) <= 0.5):
        num_frames, duration = n_meta, (dur_meta if dur_meta is not None else n_meta / fps)
    else:
        num_frames, duration = _count_packets(container, stream, p, fps)

    if num_frames <= 0:
        raise DataError("empty video: the video stream holds no frames", path=p,
                        fix="re-encode or re-download the video")
    if not (width and height):
        width, height = _first_frame_size(p)
    return VideoInfo(path=os.fspath(p), fps=fps, num_frames=int(num_frames), duration=float(duration),
                     width=int(width), height=int(height))


def _count_packets(container, stream, p: Path, fps: float) -> tuple[int, float]:
    """Count the video packets (no decoding) and find where the video stream ends."""
    count, first, end, content_end = 0, None, None, None
    try:
        for pkt in container.demux():
            st = pkt.stream
            if pkt.size == 0:
                continue
            tb = pkt.time_base or st.time_base
            if pkt.pts is not None and tb:
                t0 = pkt.pts * tb
                if pkt.duration:
                    t1 = t0 + pkt.duration * tb
                else:
                    t1 = t0 + (1 / Fraction(fps) if st.type == "video" else 0)
                content_end = t1 if content_end is None else max(content_end, t1)
            if st.index != stream.index or pkt.is_discard:
                continue
            count += 1
            if pkt.pts is not None and tb:
                first = t0 if first is None else min(first, t0)
                end = t1 if end is None else max(end, t1)
    except av.error.FFmpegError as e:
        raise DataError(f"reading the file failed after {count} video packets ({_reason(e)})", path=p,
                        fix=_CORRUPT_FIX) from None

    if stream.start_time is not None and stream.time_base:
        start = stream.start_time * stream.time_base
    else:
        start = first
    duration = float(end - start) if (end is not None and start is not None and end > start) else count / fps

    # A Matroska/WebM header declares the length before the clusters; a truncated copy
    # keeps it while its packets stop early, without any decoding error. Some containers
    # declare the end time rather than the length (Matroska with a non-zero start), so
    # the packets' absolute end time is compared: a shortfall there is one either way.
    if container.duration and content_end is not None and count > 0:
        declared = container.duration / av.time_base
        c_start = (container.start_time or 0) / av.time_base
        got = float(content_end)
        if declared - got > max(0.5, 0.05 * (declared - c_start)):
            raise DataError(f"truncated file: its packets stop at {got:.2f} s but it declares {declared:.2f} s",
                            path=p, fix=_CORRUPT_FIX)
    return count, duration


def _first_frame_size(p: Path) -> tuple[int, int]:
    container = _open(p)
    try:
        stream = _video_stream(container, p)
        for frame in container.decode(stream):
            return frame.width, frame.height
    except av.error.FFmpegError as e:
        raise DataError(f"decoding failed at frame 0 ({_reason(e)})", path=p, fix=_CORRUPT_FIX) from None
    finally:
        container.close()
    raise DataError("empty video: no frame could be decoded", path=p, fix="re-encode or re-download the video")


# ----------------------------------------------------------------------------- arguments


def _positive_int(value, name: str, allow_none: bool) -> int | None:
    if value is None and allow_none:
        return None
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)) or value <= 0:
        hint = "None or " if allow_none else ""
        raise ConfigError(f"{name} must be {hint}a positive integer, got {value!r}", fix=f"pass a valid {name}")
    return int(value)


def _check_fps(fps) -> float:
    number = (int, float, np.integer, np.floating, Fraction)
    if isinstance(fps, (bool, np.bool_)) or not isinstance(fps, number) or not (math.isfinite(fps) and fps > 0):
        raise ConfigError(f"fps must be None or a positive number, got {fps!r}",
                          fix="pass fps=None to keep every frame")
    return float(fps)


def _resized_size(width: int, height: int, short_side: int | None) -> tuple[int, int]:
    """(W', H') after scaling the short side to ``short_side`` (long side rounded half up)."""
    if short_side is None:
        return width, height
    if width <= height:
        return short_side, max(1, int(math.floor(height * short_side / width + 0.5)))
    return max(1, int(math.floor(width * short_side / height + 0.5))), short_side


@dataclass(frozen=True)
class FrameGeometry:
    """Where frames go: resized to ``width`` x ``height``, then ``out_w`` x ``out_h`` cut at ``(x0, y0)``."""

    width: int   # after resize
    height: int
    x0: int
    y0: int
    out_w: int
    out_h: int


def frame_geometry(width: int, height: int, short_side, crop, crop_mode="center", rng=None,
                   path=None) -> FrameGeometry:
    """The resize and crop :func:`iter_frames` applies to ``width`` x ``height`` frames; the random
    offset is drawn from ``rng`` (y, then x), so the same seed crops other frames (flow) alike."""
    w, h = _resized_size(width, height, short_side)
    if crop is None:
        return FrameGeometry(w, h, 0, 0, w, h)
    if crop > w or crop > h:
        raise DataError(f"crop={crop} is larger than the {w}x{h} frame (short_side={short_side})",
                        path=path, fix="lower crop or raise short_side")
    if crop_mode == "center":
        x0, y0 = (w - crop) // 2, (h - crop) // 2
    else:
        gen = rng if rng is not None else np.random.default_rng()
        y0 = int(gen.integers(0, h - crop + 1))
        x0 = int(gen.integers(0, w - crop + 1))
    return FrameGeometry(w, h, x0, y0, crop, crop)


# ----------------------------------------------------------------------------- decoding


class _Decoder:
    """Decoded frames with their times; counts them and turns FFmpeg errors into DataError."""

    def __init__(self, p: Path, info: VideoInfo, threads: int):
        self.p, self.info = p, info
        self.container = _open(p)
        self.stream = _video_stream(self.container, p)
        self.stream.thread_type = "AUTO"
        self.stream.codec_context.thread_count = threads
        self.tb = self.stream.time_base
        st = self.stream.start_time
        self.offset = st if st is not None else None
        self.index: int | None = 0     # decoded frames so far; None once a seek made it unknown
        self.last_time: float | None = None

    def close(self):
        self.container.close()

    def seek(self, seconds: float) -> bool:
        """Seek to the last keyframe at or before ``seconds``; False if that is not possible."""
        if self.offset is None or not self.tb:
            return False
        target = self.offset + int(math.floor(Fraction(seconds) / self.tb))
        try:
            self.container.seek(target, stream=self.stream, backward=True, any_frame=False)
        except av.error.FFmpegError:
            return False
        self.index = None
        return True

    def _where(self) -> str:
        if self.index is not None:
            return f"frame {self.index}"
        t = self.last_time or 0.0
        return f"frame ~{int(round(t * self.info.fps))} ({t:.2f} s)"

    def frames(self) -> Iterator[tuple[float, "av.VideoFrame"]]:
        dt = 1.0 / self.info.fps
        try:
            for frame in self.container.decode(self.stream):
                pts = frame.pts
                if pts is not None and self.tb:
                    if self.offset is None:
                        self.offset = pts
                    t = float((pts - self.offset) * self.tb)
                else:
                    t = 0.0 if self.last_time is None else self.last_time + dt
                self.last_time = t
                yield t, frame
                if self.index is not None:
                    self.index += 1
        except av.error.FFmpegError as e:
            raise DataError(f"decoding failed at {self._where()} ({_reason(e)})", path=self.p,
                            fix=_CORRUPT_FIX) from None

    def check_complete(self):
        """After decoding to the end: no frame at all, or frames stopping well short, is an error."""
        if self.last_time is None:
            raise DataError("empty video: no frame could be decoded", path=self.p,
                            fix="re-encode or re-download the video")
        info = self.info
        end = self.last_time + 1.0 / info.fps
        if end < info.duration - max(2.0 / info.fps, 0.01 * info.duration):
            got = f"{self.index} frames" if self.index is not None else "frames"
            raise DataError(f"the video stream stops after {got} ({end:.2f} s) but the file declares "
                            f"{info.num_frames} frames ({info.duration:.2f} s)", path=self.p, fix=_CORRUPT_FIX)


def iter_frames(path: str | os.PathLike, *, fps: float | None = None, short_side: int | None = 256,
                crop: int | None = 224, crop_mode: str = "center", rng: np.random.Generator | None = None,
                chunk_size: int = 64, start_frame: int = 0, end_frame: int | None = None,
                threads: int = 0) -> Iterator[np.ndarray]:
    """Decode ``path`` in chunks of RGB frames, ``uint8`` arrays ``(n <= chunk_size, H, W, 3)``.

    ``fps=None`` keeps every frame; a number resamples by timestamp (nearest previous
    frame, see the module docstring). The short side is resized to ``short_side``
    (bilinear; ``None``: no resize), then a ``crop`` square is cut (``None``: no crop) at the
    centre or, with ``crop_mode="random"``, at one offset per video drawn from ``rng``
    (``None``: a fresh unseeded generator, not reproducible).
    ``start_frame`` / ``end_frame`` select output frames ``[start_frame, end_frame)``
    (output indices, i.e. after resampling); frames past the end of the video are not
    produced. A late ``start_frame`` seeks to the keyframe before it where the timestamps
    make that safe, at native rate too, and otherwise decodes from the beginning; the frames
    are the same either way (see "Starting part-way" in the module docstring). ``threads`` is the decoder's (and scaler's) thread count, 0 letting FFmpeg
    choose; use 1 inside data-loader workers.

    Raises :class:`DataError` naming the file for a missing, unreadable, audio-only,
    empty, truncated or corrupt video (a decoding error part-way is raised after the frames
    before it were yielded), :class:`ConfigError` for bad arguments.
    """
    fps_v = None if fps is None else _check_fps(fps)
    short_side = _positive_int(short_side, "short_side", allow_none=True)
    crop = _positive_int(crop, "crop", allow_none=True)
    chunk_size = _positive_int(chunk_size, "chunk_size", allow_none=False)
    threads_ok = isinstance(threads, (int, np.integer)) and not isinstance(threads, bool) and threads >= 0
    if not threads_ok:
        raise ConfigError(f"threads must be an integer >= 0, got {threads!r}", fix="pass 0 to let FFmpeg choose")
    if crop_mode not in ("center", "random"):
        raise ConfigError(f"crop_mode must be 'center' or 'random', got {crop_mode!r}", fix="pass crop_mode='center'")
    if rng is not None and not isinstance(rng, np.random.Generator):
        raise ConfigError(f"rng must be a numpy.random.Generator, got {type(rng).__name__}",
                          fix="pass rng=numpy.random.default_rng(seed)")
    if isinstance(start_frame, bool) or not isinstance(start_frame, (int, np.integer)) or start_frame < 0:
        raise ConfigError(f"start_frame must be an integer >= 0, got {start_frame!r}", fix="pass start_frame=0")
    if end_frame is not None and (isinstance(end_frame, bool) or not isinstance(end_frame, (int, np.integer))
                                  or end_frame <= start_frame):
        raise ConfigError(f"end_frame must be None or an integer > start_frame ({start_frame}), got {end_frame!r}",
                          fix="pass end_frame=None to read to the end")
    p = _check_file(path)
    info = probe_video(p)
    geo = frame_geometry(info.width, info.height, short_side, crop, crop_mode, rng, path=info.path)
    return _generate(p, info, geo, fps_v, chunk_size, int(start_frame),
                     None if end_frame is None else int(end_frame), int(threads))


def _generate(p, info, geo, fps, chunk_size, start, end, threads) -> Iterator[np.ndarray]:
    convert = _converter(geo, threads)
    buf = np.empty((chunk_size, geo.out_h, geo.out_w, 3), np.uint8)
    n = 0
    for arr in (_native(p, info, start, end, threads, convert) if fps is None
                else _resampled(p, info, fps, start, end, threads, convert)):
        buf[n] = arr
        n += 1
        if n == chunk_size:
            yield buf
            buf = np.empty_like(buf)
            n = 0
    if n:
        yield buf[:n].copy()


def _converter(geo: FrameGeometry, threads: int):
    w, h, x0, y0, cw, ch = geo.width, geo.height, geo.x0, geo.y0, geo.out_w, geo.out_h
    # One reformatter per video keeps one libswscale context (and its threads) for all
    # frames; a frame's own reformat() builds a new one per frame, 2x slower with threads.
    reformatter = VideoReformatter()

    def convert(frame) -> np.ndarray:
        rgb = reformatter.reformat(frame, width=w, height=h, format="rgb24",
                                   interpolation=_INTERPOLATION, threads=threads)
        return rgb.to_ndarray()[y0:y0 + ch, x0:x0 + cw]

    return convert


def _native(p, info, start, end, threads, convert) -> Iterator[np.ndarray]:
    dec = _Decoder(p, info, threads)
    frames = None
    try:
        if start > 0:
            frames = _seek_native(dec, start)
            if frames is None:
                # Seeking was not possible or not safe: decode from the beginning instead.
                dec.close()
                dec = _Decoder(p, info, threads)
        if frames is None:
            frames = dec.frames()
        for _, frame in frames:
            k = dec.index                   # this frame's index: counted, or set by _seek_native
            if k >= start:
                yield convert(frame)
                if end is not None and k + 1 >= end:
                    return
        dec.check_complete()
    finally:
        if frames is not None:
            frames.close()
        dec.close()


def _steady_rate(dec: _Decoder) -> bool:
    """Whether native frame ``k`` can be found by time: the stream looks constant-rate and gapless.

    The frame count must match the duration at the average rate, and the base rate (the
    finest rate the timestamps fit, FFmpeg's r_frame_rate) must agree with the average rate
    to within a quarter frame over the whole video; a dropped frame or a variable rate
    breaks one or the other.
    """
    info, stream = dec.info, dec.stream
    if not dec.tb:
        return False
    rates = []
    for rate in (stream.average_rate, stream.base_rate):
        if rate is None or rate.denominator == 0 or rate <= 0:
            return False
        rates.append(float(rate))
    avg, base = rates
    n, d = info.num_frames, info.duration
    return avg == info.fps and abs(d * avg - n) <= 0.5 and abs(d * (avg - base)) <= 0.25


def _seek_native(dec: _Decoder, start: int):
    """Frames from native frame ``start`` on (the decoder's ``index`` set), by seeking; None if unsafe.

    Native frame ``k`` is the ``k``-th decoded frame. On a steady-rate stream (see
    :func:`_steady_rate`) it is the frame at time ``t0 + k/fps``, ``t0`` the first decoded
    frame's time (so frames a decoder drops at the start are accounted for). Decoding seeks
    to the last keyframe at or before ``start``'s time, skips any frame decoded ahead of the
    first keyframe (leading frames of an open GOP, which may be damaged), and takes the
    keyframe's index from its time; every frame from there to ``start`` must have a
    timestamp that lands within a quarter frame of its index. Past ``start`` frames are
    counted, as in a decode from the beginning. Returns None (decoding from the beginning
    is then the only safe way) when the stream is not steady, a timestamp is missing or off
    its index, the container cannot seek or seeks past ``start``, or no keyframe comes
    before ``start``; the decoder must then be reopened.
    """
    if not _steady_rate(dec):
        return None
    fps = dec.info.fps
    frames = dec.frames()
    first = next(frames, None)
    frames.close()
    if first is None or first[1].pts is None:
        return None
    t0 = first[0]
    # A quarter frame past start's time, so a keyframe at start with a rounded timestamp counts.
    if not dec.seek(t0 + (start + 0.25) / fps):
        return None
    frames = dec.frames()
    for t, frame in frames:
        x = (t - t0) * fps
        k = int(round(x))
        if frame.pts is None or abs(x - k) > 0.25:
            break                           # missing or off-grid timestamp
        if dec.index is None:               # before the first keyframe
            if k > start:
                break                       # the container seeked past start
            if not frame.key_frame:
                continue
            dec.index = k
        elif k != dec.index:
            break                           # a gap or an extra frame: counting and time disagree
        if k == start:
            return _chain((t, frame), frames)
    else:
        if dec.index is not None:
            return frames                   # the video ends before start: nothing to yield
    frames.close()
    return None


def _resampled(p, info, fps, start, end, threads, convert) -> Iterator[np.ndarray]:
    n_out = _num_resampled(info.duration, fps)
    stop = n_out if end is None else min(end, n_out)
    if start >= stop:
        return
    dec = _Decoder(p, info, threads)
    frames = None
    try:
        tb_s = float(dec.tb) if dec.tb else 0.0
        tol = max(1e-9, min(tb_s, 0.25 / info.fps))
        if start > 0 and dec.seek(start / fps):
            frames = dec.frames()
            first = next(frames, None)
            if first is None or first[0] > start / fps + tol:
                # The container seeked past the target: decode from the beginning instead.
                frames.close()
                dec.close()
                dec = _Decoder(p, info, threads)
                frames = None
            else:
                frames = _chain(first, frames)
        if frames is None:
            frames = dec.frames()

        j = start
        prev = None                      # latest frame at or before target j
        cache_id, cache = None, None      # converted array of the last emitted frame

        def emit(frame):
            nonlocal cache_id, cache
            if frame is not cache_id:
                cache_id, cache = frame, convert(frame)
            return cache

        for t, frame in frames:
            while j < stop and t > j / fps + tol:
                yield emit(prev if prev is not None else frame)
                j += 1
            if j >= stop:
                return
            prev = frame
        dec.check_complete()
        while j < stop:
            yield emit(prev)
            j += 1
    finally:
        if frames is not None:
            frames.close()
        dec.close()


def _chain(first, rest):
    yield first
    yield from rest


def read_frames(path: str | os.PathLike, **kwargs) -> np.ndarray:
    """All frames :func:`iter_frames` yields for ``path``, as one ``(N, H, W, 3)`` uint8 array."""
    chunks = list(iter_frames(path, **kwargs))
    if chunks:
        return np.concatenate(chunks) if len(chunks) > 1 else chunks[0]
    info = probe_video(path)
    w, h = _resized_size(info.width, info.height, kwargs.get("short_side", 256))
    c = kwargs.get("crop", 224)
    return np.empty((0, h if c is None else c, w if c is None else c, 3), np.uint8)


# ----------------------------------------------------------------------------- clips


def clip_starts(num_frames: int, window: int = 16, stride: int = 4) -> np.ndarray:
    """Start frame of every clip: ``[0, stride, 2*stride, ...]`` while ``< num_frames``.

    Clip ``i`` covers frames ``[i*stride, i*stride + window)``; clips running past the end
    are padded with the last frame, so there are ``ceil(num_frames / stride)`` clips and
    any non-empty video gives at least one. ``num_frames=0`` gives none.
    """
    if isinstance(num_frames, bool) or not isinstance(num_frames, (int, np.integer)) or num_frames < 0:
        raise ConfigError(f"num_frames must be an integer >= 0, got {num_frames!r}", fix="pass the video's frame count")
    _positive_int(window, "window", allow_none=False)
    stride = _positive_int(stride, "stride", allow_none=False)
    return np.arange(0, int(num_frames), stride, dtype=np.int64)


def iter_clips(frames_iter: Iterable[np.ndarray] | np.ndarray, window: int = 16,
               stride: int = 4) -> Iterator[np.ndarray]:
    """Turn a stream of frame chunks ``(n, H, W, C)`` into batches of clips ``(B, window, H, W, C)``.

    Clips come in the order of :func:`clip_starts` over the total frame count; each batch
    holds the clips completed by one incoming chunk, and the clips past the end (padded by
    repeating the last frame) come in a final batch. At most ``window - 1 + chunk`` frames
    are buffered; the batches are read-only views into that buffer (no copy) - copy them
    (``np.array(batch)``) to write into them. A single array is taken as one chunk.
    """
    window = _positive_int(window, "window", allow_none=False)
    stride = _positive_int(stride, "stride", allow_none=False)
    if isinstance(frames_iter, np.ndarray):
        frames_iter = (frames_iter,)
    buf = None        # frames [buf_start, buf_start + len(buf))
    buf_start = 0
    total = 0
    done = 0          # clips yielded so far
    for chunk in frames_iter:
        chunk = np.asarray(chunk)
        if chunk.ndim < 1 or len(chunk) == 0:
            continue
        buf = chunk if buf is None or len(buf) == 0 else np.concatenate([buf, chunk])
        total += len(chunk)
        complete = (total - window) // stride + 1 if total >= window else 0
        if complete > done:
            yield _clip_views(buf, buf_start, done, complete, window, stride)
            done = complete
        drop = min(done * stride - buf_start, len(buf))
        if drop > 0:
            buf = buf[drop:]
            buf_start += drop
    if total == 0:
        return
    n_clips = -(-total // stride)
    if n_clips > done:
        need = (n_clips - 1) * stride + window - total
        buf = np.concatenate([buf, np.repeat(buf[-1:], need, axis=0)])
        yield _clip_views(buf, buf_start, done, n_clips, window, stride)


def _clip_views(buf: np.ndarray, buf_start: int, first: int, last: int, window: int, stride: int) -> np.ndarray:
    """Clips ``first .. last-1`` as views: ``(last-first, window, *frame_shape)``."""
    s0 = first * stride - buf_start
    views = np.lib.stride_tricks.sliding_window_view(buf, window, axis=0)   # (n, *frame, window)
    views = views[s0:s0 + (last - first - 1) * stride + 1:stride]
    return np.moveaxis(views, -1, 1)
