"""Video decoding (PyAV): probing, resampling by timestamp, resize/crop, chunked streaming,
clips, and errors naming the file.

Synthetic clips are written with libx264rgb at crf 0 (lossless RGB), so every decoded pixel
equals the pixel written and a frame's identity can be read back from its blue level.
"""
import math
import signal
import wave
from fractions import Fraction

import av
import numpy as np
import pytest

import tadkit.data.video as video
from tadkit.core.errors import ConfigError, DataError
from tadkit.data.video import VideoInfo, clip_starts, iter_clips, iter_frames, probe_video, read_frames

# ----------------------------------------------------------------------------- helpers


def _pattern(n, h, w, step=6):
    """Frame i: R = 3x, G = 3y (position, to see crop offsets), B = step*i (identity)."""
    f = np.zeros((n, h, w, 3), np.uint8)
    f[..., 0] = (np.arange(w) * 3)[None, None, :]
    f[..., 1] = (np.arange(h) * 3)[None, :, None]
    f[..., 2] = (np.arange(n) * step)[:, None, None]
    return f


def _ids(frames, step=6):
    return np.round(frames[..., 2].mean(axis=(1, 2)) / step).astype(int)


def _write(path, frames, fps=25, pts0=0, gop=None, options=None, container_options=None, pts=None, tb=None):
    """Frame i at ``pts0 + i`` in units of ``1/fps``, or at ``pts[i]`` in units of ``tb`` (default ``1/fps``)."""
    pts = [pts0 + i for i in range(len(frames))] if pts is None else pts
    with av.open(str(path), "w", options=container_options or {}) as c:
        s = c.add_stream("libx264rgb", rate=fps)
        s.height, s.width = frames.shape[1:3]
        s.pix_fmt = "rgb24"
        s.options = {"crf": "0", **(options or {})}
        if gop:
            s.codec_context.gop_size = gop
        if tb:
            s.codec_context.time_base = tb      # else the encoder rounds every pts to 1/fps
        for i, a in enumerate(frames):
            vf = av.VideoFrame.from_ndarray(a, format="rgb24")
            vf.pts, vf.time_base = pts[i], tb or Fraction(1, fps)
            for p in s.encode(vf):
                c.mux(p)
        for p in s.encode():
            c.mux(p)
    return path


RAW = dict(short_side=None, crop=None)


@pytest.fixture(scope="module")
def clip25(tmp_path_factory):
    """40 frames, 25 fps, 64x48 (1.6 s), mp4."""
    d = tmp_path_factory.mktemp("v")
    frames = _pattern(40, 48, 64)
    return _write(d / "clip25.mp4", frames), frames


@pytest.fixture(scope="module")
def videos(real_data):
    return real_data / "videos"


@pytest.fixture
def no_hang():
    """Turn a hang into a failure."""
    def fail(*_):
        raise TimeoutError("decoding hung")
    old = signal.signal(signal.SIGALRM, fail)
    signal.alarm(30)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, old)


# ----------------------------------------------------------------------------- probing

# Values found once by decoding every frame with PyAV (frame count, frame times k/fps,
# decoded frame size); duration = frame count / fps, which the streams also declare.
REAL = {
    "kinetics_arm_wrestling.mp4": (28.0, 280, 10.0, 340, 256),
    "test_300frames.mp4": (30.0, 300, 10.0, 340, 256),
    "bigbuckbunny.mp4": (25.0, 132, 5.28, 1280, 720),   # has an audio stream too
    "bikes.mp4": (25.0, 250, 10.0, 640, 272),
}


@pytest.mark.parametrize("name", sorted(REAL))
def test_probe_real_clips(videos, name):
    fps, n, dur, w, h = REAL[name]
    info = probe_video(videos / name)
    assert info == VideoInfo(str(videos / name), fps, n, pytest.approx(dur, abs=1e-9), w, h)


def test_real_clip_decodes_every_frame_and_resamples(videos):
    native = read_frames(videos / "test_300frames.mp4", short_side=32, crop=None)
    assert native.shape == (300, 32, 43, 3)
    at10 = read_frames(videos / "test_300frames.mp4", fps=10, short_side=32, crop=None)
    assert np.array_equal(at10, native[::3])                     # 30 -> 10 fps: every third frame
    k = read_frames(videos / "kinetics_arm_wrestling.mp4", short_side=32, crop=None)
    k10 = read_frames(videos / "kinetics_arm_wrestling.mp4", fps=10, short_side=32, crop=None, chunk_size=7)
    assert len(k) == 280 and len(k10) == 100
    assert np.array_equal(k10, k[(np.arange(100) * 28) // 10])  # floor(j * 28 / 10)


def test_probe_synthetic_mp4_and_mkv(tmp_path, clip25):
    path, frames = clip25
    mkv = _write(tmp_path / "c.mkv", frames)      # Matroska declares no frame count: counted by demuxing
    for p in (path, mkv):
        assert probe_video(p) == VideoInfo(str(p), 25.0, 40, pytest.approx(1.6), 64, 48)


def test_nonzero_start_time(tmp_path, clip25):
    _, frames = clip25
    for ext in (".mp4", ".mkv"):
        p = _write(tmp_path / f"late{ext}", frames, pts0=250)   # timestamps start at 10 s
        with av.open(str(p)) as c:
            assert next(c.decode(video=0)).time == pytest.approx(10.0)
        info = probe_video(p)
        assert (info.num_frames, info.duration) == (40, pytest.approx(1.6))
        assert np.array_equal(_ids(read_frames(p, fps=10, **RAW)), (np.arange(16) * 25) // 10)


# ----------------------------------------------------------------------------- frames


def test_native_decoding_returns_every_frame(clip25):
    path, frames = clip25
    got = read_frames(path, **RAW)
    assert np.array_equal(got, frames)          # lossless: every pixel, every frame, in order
    assert got.dtype == np.uint8


@pytest.mark.parametrize("fps", [10, 7, 60, 25])
def test_resampling_picks_the_latest_frame_at_or_before(clip25, fps):
    path, _ = clip25
    got = _ids(read_frames(path, fps=fps, **RAW))
    n = math.ceil(1.6 * fps - 1e-9)                     # every j with j / fps < 1.6 s
    assert len(got) == n == probe_video(path).num_frames_at(fps)
    assert np.array_equal(got, (np.arange(n) * 25) // fps)   # floor(j * 25 / fps)
    if fps > 25:
        assert (np.diff(got) == 0).any()                # upsampling repeats frames
    if fps < 25:
        assert len(set(got)) == n < 40                  # downsampling drops frames


def test_center_crop_offsets(tmp_path):
    for w, h in ((64, 48), (48, 64)):
        frames = _pattern(3, h, w)
        p = _write(tmp_path / f"c{w}x{h}.mp4", frames)
        got = read_frames(p, short_side=None, crop=32)
        x0, y0 = (w - 32) // 2, (h - 32) // 2
        assert got.shape == (3, 32, 32, 3)
        assert (got[0, 0, 0, 0] // 3, got[0, 0, 0, 1] // 3) == (x0, y0)
        assert np.array_equal(got, frames[:, y0:y0 + 32, x0:x0 + 32])


def test_center_crop_after_resize(tmp_path):
    frames = np.zeros((2, 96, 128, 3), np.uint8)
    frames[..., 0] = np.arange(128) * 2
    frames[..., 1] = (np.arange(96) * 2)[:, None]
    p = _write(tmp_path / "ramp.mp4", frames)
    got = read_frames(p, short_side=48, crop=32)     # 128x96 -> 64x48, crop at (16, 8)
    assert got.shape == (2, 32, 32, 3)
    # A ramp 2x halved bilinearly is 4x + 1 at resized pixel x (pixel centres aligned).
    x = 16 + np.arange(32)
    y = 8 + np.arange(32)
    assert np.abs(got[0, 10, 1:-1, 0].astype(int) - (4 * x[1:-1] + 1)).max() <= 1
    assert np.abs(got[0, 1:-1, 10, 1].astype(int) - (4 * y[1:-1] + 1)).max() <= 1


def test_random_crop_reproducible(clip25):
    path, frames = clip25
    kw = dict(short_side=None, crop=24, crop_mode="random")
    a = read_frames(path, rng=np.random.default_rng(3), **kw)
    b = read_frames(path, rng=np.random.default_rng(3), **kw)
    assert np.array_equal(a, b)
    offsets = set()
    for seed in range(8):
        g = read_frames(path, rng=np.random.default_rng(seed), end_frame=5, **kw)
        x0, y0 = g[:, 0, 0, 0] // 3, g[:, 0, 0, 1] // 3
        assert len(set(x0)) == len(set(y0)) == 1        # one offset per video
        ref = np.random.default_rng(seed)               # drawn as documented: y0 then x0
        assert (y0[0], x0[0]) == (ref.integers(0, 48 - 24 + 1), ref.integers(0, 64 - 24 + 1))
        assert np.array_equal(g, frames[:5, y0[0]:y0[0] + 24, x0[0]:x0[0] + 24])
        offsets.add((int(x0[0]), int(y0[0])))
    assert len(offsets) > 1


def test_resize_short_side(tmp_path):
    for (w, h), expect in {(64, 48): (24, 32), (48, 64): (32, 24), (90, 30): (16, 48), (100, 30): (16, 53),
                           (30, 100): (53, 16)}.items():
        p = _write(tmp_path / f"r{w}x{h}.mp4", np.zeros((2, h, w, 3), np.uint8))
        assert read_frames(p, short_side=16 if w in (90, 100, 30) else 24, crop=None).shape[1:3] == expect


@pytest.mark.parametrize("fps", [None, 10, 60])
def test_chunked_equals_unchunked(clip25, fps):
    path, _ = clip25
    whole = read_frames(path, fps=fps, chunk_size=1000, **RAW)
    for chunk in (1, 3, 7, 40, 64):
        chunks = list(iter_frames(path, fps=fps, chunk_size=chunk, **RAW))
        assert all(len(c) == chunk for c in chunks[:-1]) and 0 < len(chunks[-1]) <= chunk
        assert np.array_equal(np.concatenate(chunks), whole)


def test_start_end_frames_with_seeking(tmp_path, monkeypatch):
    # keyframe every 5 frames and B-frames, so seeking lands inside the video
    frames = _pattern(60, 48, 64, step=4)
    p = _write(tmp_path / "gop.mp4", frames, gop=5, options={"bf": "2"})
    for fps in (None, 10, 30):
        full = read_frames(p, fps=fps, **RAW)
        for s, e in ((1, None), (7, 12), (13, 14), (len(full) - 2, None)):
            assert np.array_equal(read_frames(p, fps=fps, start_frame=s, end_frame=e, **RAW), full[s:e]), (fps, s, e)
    # a container that seeks past the target: decoding restarts from the beginning
    full = read_frames(p, fps=10, **RAW)
    real_seek = video._Decoder.seek
    monkeypatch.setattr(video._Decoder, "seek", lambda self, t: real_seek(self, t + 1.0))
    assert np.array_equal(read_frames(p, fps=10, start_frame=4, **RAW), full[4:])


# Native-rate seeking: B-frames need a lossy encode (x264 makes none when lossless), so these
# compare a part-way read with the same frames of a full decode rather than with the pixels.
BFRAMES = {"crf": "10", "bf": "2", "x264-params": "b-adapt=0"}


def _count_decoded(monkeypatch):
    """Count the frames the decoder hands out (each decoded frame once, whatever is kept)."""
    count = [0]
    real = video._Decoder.frames

    def frames(self):
        for item in real(self):
            count[0] += 1
            yield item

    monkeypatch.setattr(video._Decoder, "frames", frames)
    return count


@pytest.fixture(scope="module", params=["mp4", "mkv"])
def bframes_gop5(request, tmp_path_factory):
    """60 frames at 25 fps, a keyframe every 5 frames (0, 5, ..., 55), two B-frames between references."""
    frames = _pattern(60, 48, 64, step=4)
    path = _write(tmp_path_factory.mktemp("b") / f"bf.{request.param}", frames, gop=5, options=BFRAMES)
    with av.open(str(path)) as c:
        packets = [(p.pts, p.is_keyframe) for p in c.demux(c.streams.video[0]) if p.size]
    pts = [q for q, _ in packets]
    assert pts != sorted(pts)                               # decode order differs: real B-frames
    step = sorted(pts)[1] - sorted(pts)[0]
    assert [q // step for q, key in packets if key] == list(range(0, 60, 5))
    return path


@pytest.mark.parametrize("s,e", [(5, 12), (10, 11), (7, 13), (13, 14), (4, 30), (1, None), (50, None),
                                 (52, None), (58, 59), (59, None), (57, 100), (60, None), (75, 90)])
def test_native_start_end_equals_full_decode(bframes_gop5, s, e):
    # keyframe starts (5, 10, 50), mid-GOP starts, near the end, an end past the last frame, past the end
    full = read_frames(bframes_gop5, **RAW)
    assert len(full) == 60 and np.array_equal(_ids(full, step=4), np.arange(60))
    got = read_frames(bframes_gop5, start_frame=s, end_frame=e, **RAW)
    assert got.shape == full[s:e].shape and np.array_equal(got, full[s:e])
    chunks = list(iter_frames(bframes_gop5, start_frame=s, end_frame=e, chunk_size=3, **RAW))
    assert sum(map(len, chunks)) == len(got) and (not chunks or np.array_equal(np.concatenate(chunks), got))


def test_native_late_start_seeks(bframes_gop5, monkeypatch):
    full = read_frames(bframes_gop5, **RAW)
    count = _count_decoded(monkeypatch)
    for s, e, keyframe in ((52, None, 50), (50, 54, 50), (33, 40, 30)):
        count[0] = 0
        assert np.array_equal(read_frames(bframes_gop5, start_frame=s, end_frame=e, **RAW), full[s:e])
        # the first frame (to anchor times), then the keyframe at or before s through the last frame kept
        assert count[0] == 1 + (e or 60) - keyframe < s, (s, e, count[0])
    count[0] = 0
    read_frames(bframes_gop5, start_frame=3, end_frame=5, **RAW)
    assert count[0] == 1 + 5                                # within the first GOP: frames 0-4 after the anchor


def test_native_seek_past_target_falls_back(bframes_gop5, monkeypatch):
    full = read_frames(bframes_gop5, **RAW)
    count = _count_decoded(monkeypatch)
    real_seek = video._Decoder.seek
    monkeypatch.setattr(video._Decoder, "seek", lambda self, t: real_seek(self, t + 0.5))
    assert np.array_equal(read_frames(bframes_gop5, start_frame=32, end_frame=40, **RAW), full[32:40])
    assert count[0] > 40                                    # decoded again from the first frame
    monkeypatch.setattr(video._Decoder, "seek", lambda self, t: False)   # a container that cannot seek
    assert np.array_equal(read_frames(bframes_gop5, start_frame=32, **RAW), full[32:])


@pytest.mark.parametrize("ext", ["mp4", "mkv"])
@pytest.mark.parametrize("kind", ["gap", "slower", "jitter"])
def test_native_start_with_irregular_timestamps(tmp_path, monkeypatch, ext, kind):
    # Frame k of a native read is the k-th decoded frame. Where timestamps do not give k
    # (a missing frame slot, a rate change, jitter), reading must not trust them.
    frames = _pattern(60, 48, 64, step=4)
    tb = Fraction(1, 100)
    pts = {"gap": [4 * i + (4 if i >= 30 else 0) for i in range(60)],               # slot 30 empty
           "slower": [4 * i if i < 30 else 120 + 8 * (i - 30) for i in range(60)],  # 25 fps, then 12.5
           "jitter": [4 * i + (0, 1, -1, 2)[i % 4] for i in range(60)]}[kind]      # up to half a frame
    p = _write(tmp_path / f"{kind}.{ext}", frames, gop=5, options=BFRAMES, pts=pts, tb=tb)
    full = read_frames(p, **RAW)
    assert len(full) == 60
    count = _count_decoded(monkeypatch)
    for s, e in ((31, 40), (40, None), (52, 53), (5, 12)):
        count[0] = 0
        assert np.array_equal(read_frames(p, start_frame=s, end_frame=e, **RAW), full[s:e]), (s, e)
        if kind == "gap":
            assert count[0] >= (e or 60)                    # not trusted: decoded from the start


@pytest.mark.parametrize("ext", ["mp4", "mkv"])
def test_native_start_on_a_file_cut_inside_a_gop(tmp_path, monkeypatch, ext):
    # Without its first two packets (frames 0 and 3) the decoder drops frames up to the
    # keyframe at 5, so native frame k is encoded frame k + 5, which a seek must respect.
    src = _write(tmp_path / f"src.{ext}", _pattern(60, 48, 64, step=4), gop=5, options=BFRAMES)
    cut = tmp_path / f"cut.{ext}"
    with av.open(str(src)) as ic, av.open(str(cut), "w") as oc:
        ost = oc.add_stream_from_template(ic.streams.video[0])
        for i, pkt in enumerate(p for p in ic.demux(ic.streams.video[0]) if p.size):
            if i >= 2:
                pkt.stream = ost
                oc.mux(pkt)
    full = read_frames(cut, **RAW)
    assert np.array_equal(_ids(full, step=4), np.arange(5, 60))
    count = _count_decoded(monkeypatch)
    for s, e in ((3, 9), (12, 20), (45, None), (50, None)):
        count[0] = 0
        assert np.array_equal(read_frames(cut, start_frame=s, end_frame=e, **RAW), full[s:e]), (s, e)
        if ext == "mp4" and s >= 12:
            assert count[0] < s                               # seeked (the mkv's duration disagrees: no seek)


def test_native_start_real_clip(videos, monkeypatch):
    path = videos / "bikes.mp4"                             # 250 frames, keyframes 0 30 76 137 187 242
    kw = dict(short_side=48, crop=None)
    full = read_frames(path, **kw)
    assert len(full) == 250
    count = _count_decoded(monkeypatch)
    for s, e in ((186, 250), (30, 40), (100, 164), (245, 300), (249, None)):
        count[0] = 0
        assert np.array_equal(read_frames(path, start_frame=s, end_frame=e, **kw), full[s:e]), (s, e)
        assert count[0] < s
    count[0] = 0
    read_frames(path, start_frame=186, end_frame=250, **kw)  # the last 64 frames: from keyframe 137
    assert count[0] == 1 + 250 - 137


def test_big_real_clip_streams_in_chunks(videos):
    path = videos / "bigbuckbunny.mp4"                   # 1280x720 with audio (ignored)
    sizes = []
    for chunk in iter_frames(path, chunk_size=16):
        assert chunk.shape[1:] == (224, 224, 3) and chunk.dtype == np.uint8
        sizes.append(len(chunk))
    assert max(sizes) <= 16 and sum(sizes) == probe_video(path).num_frames == 132


# ----------------------------------------------------------------------------- clips


def test_clip_starts_hand_worked():
    assert clip_starts(10, 16, 4).tolist() == [0, 4, 8]          # ceil(10 / 4) = 3, padded
    assert clip_starts(16, 16, 4).tolist() == [0, 4, 8, 12]
    assert clip_starts(17, 16, 4).tolist() == [0, 4, 8, 12, 16]
    assert clip_starts(1, 16, 4).tolist() == [0]
    assert clip_starts(10, 2, 4).tolist() == [0, 4, 8]
    assert clip_starts(0, 16, 4).tolist() == []
    with pytest.raises(ConfigError, match="stride"):
        clip_starts(10, 16, 0)


def _brute_clips(frames, window, stride):
    starts = clip_starts(len(frames), window, stride)
    need = starts[-1] + window
    padded = np.concatenate([frames, np.repeat(frames[-1:], max(0, need - len(frames)), axis=0)])
    return np.stack([padded[s:s + window] for s in starts])


@pytest.mark.parametrize("window,stride", [(16, 4), (4, 4), (2, 5), (8, 1), (3, 2)])
def test_iter_clips_matches_brute_force(window, stride):
    rng = np.random.default_rng(0)
    for n in (1, 5, 16, 17, 30):
        frames = rng.integers(0, 255, (n, 2, 3, 3), dtype=np.uint8)
        expect = _brute_clips(frames, window, stride)
        for chunk in (1, 3, 7, 64):
            batches = list(iter_clips((frames[i:i + chunk] for i in range(0, n, chunk)), window, stride))
            got = np.concatenate(batches)
            assert got.shape == (len(clip_starts(n, window, stride)), window, 2, 3, 3)
            assert np.array_equal(got, expect), (n, chunk)


def test_iter_clips_is_streaming():
    frames = np.arange(40, dtype=np.uint8)[:, None, None, None] * np.ones((1, 2, 2, 3), np.uint8)
    consumed = []

    def chunks():
        for i in range(0, 40, 4):
            consumed.append(i)
            yield frames[i:i + 4]

    it = iter_clips(chunks(), window=8, stride=4)
    first = next(it)
    assert len(consumed) == 2 and first.shape == (1, 8, 2, 2, 3)     # clip 0 needs frames 0..7 only
    assert first[0, :, 0, 0, 0].tolist() == list(range(8))


def test_frames_into_clips_real_clip(videos):
    chunks = iter_frames(videos / "kinetics_arm_wrestling.mp4", short_side=32, crop=32, chunk_size=50)
    n = sum(len(b) for b in iter_clips(chunks, window=16, stride=4))
    assert n == len(clip_starts(280, 16, 4)) == 70


# ----------------------------------------------------------------------------- errors


def _wav(path):
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes((np.sin(np.arange(8000) * 0.3) * 8000).astype("<i2").tobytes())
    return path


def _m4a(path):
    with av.open(str(path), "w") as c:
        s = c.add_stream("aac", rate=16000)
        x = (0.3 * np.sin(np.arange(16000) * 0.2)).astype(np.float32)[None]
        fr = av.AudioFrame.from_ndarray(x, format="fltp", layout="mono")
        fr.sample_rate = 16000
        for p in list(s.encode(fr)) + list(s.encode()):
            c.mux(p)
    return path


def _empty_video(path):
    """A Matroska file with an H.264 video track and no decodable frame."""
    with av.open(str(path), "w") as c:
        s = c.add_stream("libx264", rate=25)
        s.width, s.height, s.pix_fmt = 64, 48, "yuv420p"
        c.start_encoding()
        for i in range(10):
            pkt = av.Packet(b"\x00\x00\x00\x02\x09\xf0")    # an access-unit delimiter, no picture
            pkt.pts = pkt.dts = i
            pkt.time_base, pkt.stream = s.time_base, s
            c.mux(pkt)
    with av.open(str(path)) as c:
        assert len(c.streams.video) == 1
    return path


def _truncated(src, dst, fraction=0.4):
    data = src.read_bytes()
    dst.write_bytes(data[:int(len(data) * fraction)])
    return dst


def _faststart(src, dst):
    """Remux ``src`` with the index first, so a truncated copy still opens."""
    with av.open(str(src)) as ic, av.open(str(dst), "w", options={"movflags": "faststart"}) as oc:
        ost = oc.add_stream_from_template(ic.streams.video[0])
        for pkt in ic.demux(ic.streams.video[0]):
            if pkt.dts is not None:
                pkt.stream = ost
                oc.mux(pkt)
    return dst


BAD = {
    "missing": lambda d, v: d / "nope.mp4",
    "directory": lambda d, v: d,
    "random_bytes": lambda d, v: (d / "rand.mp4").write_bytes(np.random.default_rng(0).bytes(5000)) and d / "rand.mp4",
    "zero_bytes": lambda d, v: (d / "zero.mp4").write_bytes(b"") or d / "zero.mp4",
    "audio_wav": lambda d, v: _wav(d / "a.wav"),
    "audio_m4a": lambda d, v: _m4a(d / "a.m4a"),
    "empty_video": lambda d, v: _empty_video(d / "empty.mkv"),
    "truncated_real_mp4": lambda d, v: _truncated(v / "kinetics_arm_wrestling.mp4", d / "trunc.mp4"),
    "truncated_mkv": lambda d, v: _truncated(_write(d / "full.mkv", _pattern(40, 48, 64)), d / "trunc.mkv"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_files_raise_data_error_naming_the_file(tmp_path, videos, case, no_hang):
    path = BAD[case](tmp_path, videos)
    for call in (probe_video, lambda p: read_frames(p, short_side=32, crop=None)):
        with pytest.raises(DataError) as e:
            call(path)
        assert str(path) in str(e.value) and "\n" not in str(e.value)
    message = str(e.value)
    expected = {"missing": "not found", "audio_wav": "no video stream", "audio_m4a": "no video stream",
                "empty_video": "empty video", "truncated_mkv": "truncated", "directory": "directory",
                "zero_bytes": "empty (0 bytes)", "random_bytes": "not a video file"}
    assert expected.get(case, "") in message


def test_truncated_mid_stream_raises_with_frame_index(tmp_path, videos, no_hang):
    # The real clip's index is at its end, so a truncated copy does not open at all (above);
    # with the index first, the copy opens and decoding stops part-way.
    full = _faststart(videos / "kinetics_arm_wrestling.mp4", tmp_path / "fast.mp4")
    assert probe_video(full).num_frames == 280
    cut = _truncated(full, tmp_path / "cut.mp4")
    assert probe_video(cut).num_frames == 280          # the index still declares every frame
    got = []
    with pytest.raises(DataError, match=r"frame[s]? \d+|after \d+ frames") as e:
        for chunk in iter_frames(cut, short_side=32, crop=None, chunk_size=8):
            got.append(len(chunk))
    assert str(cut) in str(e.value)
    assert 0 < sum(got) < 280                          # frames before the damage were yielded


def test_corrupt_packet_raises_with_frame_index(tmp_path, clip25, no_hang):
    src, _ = clip25
    dst = tmp_path / "corrupt.mp4"
    with av.open(str(src)) as ic, av.open(str(dst), "w") as oc:
        ost = oc.add_stream_from_template(ic.streams.video[0])
        for i, pkt in enumerate(p for p in ic.demux(ic.streams.video[0]) if p.dts is not None):
            if i == 20:     # an IDR slice of junk in place of frame 20
                junk = av.Packet(b"\x00\x00\x00\x05\x65\x88\x84\x00\x33")
                junk.pts, junk.dts, junk.time_base = pkt.pts, pkt.dts, pkt.time_base
                pkt = junk
            pkt.stream = ost
            oc.mux(pkt)
    got = []
    with pytest.raises(DataError, match="decoding failed at frame 20") as e:
        for chunk in iter_frames(dst, chunk_size=4, **RAW):
            got.append(len(chunk))
    assert str(dst) in str(e.value) and sum(got) == 20
    with pytest.raises(DataError, match="decoding failed at frame 20"):   # counted after a seek too
        read_frames(dst, start_frame=12, **RAW)


@pytest.mark.parametrize("kwargs,name", [
    (dict(short_side=0), "short_side"), (dict(crop=-1), "crop"), (dict(fps=0), "fps"),
    (dict(fps=float("nan")), "fps"), (dict(chunk_size=0), "chunk_size"), (dict(crop_mode="corner"), "crop_mode"),
    (dict(rng=42, crop_mode="random"), "rng"), (dict(start_frame=-1), "start_frame"),
    (dict(start_frame=5, end_frame=5), "end_frame"),
])
def test_bad_arguments(clip25, kwargs, name):
    path, _ = clip25
    with pytest.raises(ConfigError, match=name):
        iter_frames(path, **kwargs)


def test_crop_larger_than_frame(clip25):
    path, _ = clip25
    with pytest.raises(DataError, match="crop=50") as e:
        read_frames(path, short_side=None, crop=50)
    assert str(path) in str(e.value)
    assert read_frames(path, short_side=64, crop=50).shape == (40, 50, 50, 3)   # 85x64 fits it
