"""``tadkit detect``: one video file in, detections (seconds) out — no annotation file, no launcher.

Two kinds of checkpoint:

* **feature-based** (trained on features from ``tadkit extract``): the video is decoded and its
  I3D features extracted on the fly with ``weights`` (default: the ``tadkit weights i3d`` cache) and the extraction settings recorded in the
  ``features.json`` of the config's ``data.features`` (else the ``tadkit extract`` defaults:
  native fps, stride 4, window 16, short side 256, crop 224); the feature width must be the
  checkpoint's (1024 for RGB Mixed_5c);
* **end-to-end** (``model.backbone``): the frames go to the model itself.

Then the run's own inference: sliding windows, merging, the configured (Soft-)NMS, seconds.
The result is the ActivityNet results dict of that one video.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..config import Config
from ..core.errors import CheckpointError, ConfigError
from ..core.io import atomic_write_json, check_output_file
from ..data.annotations import Annotations, VideoAnnotation
from . import builders
from .checkpoint import check_compatible, checkpoint_weights, load_checkpoint, load_weights
from .distributed import DistContext, resolve_device
from .inference import detections_per_video, predict_windows, results_dict

__all__ = ["detect", "detect_run", "detection_files", "check_video_path", "clock_time", "extraction_settings",
           "write_detections_csv"]

_DEFAULTS = {"fps": None, "feature_stride": 4, "feature_window": 16, "short_side": 256, "crop": 224,
             "endpoint": "Mixed_5c"}


def extraction_settings(cfg: Config) -> dict:
    """How the training features were made: ``features.json`` of ``data.features``, else the defaults."""
    from ..data.features import read_features_meta
    feats = cfg.data.features
    first = feats[0] if isinstance(feats, (list, tuple)) and feats else feats
    meta = read_features_meta(first) if first and Path(first).is_dir() else None
    out = dict(_DEFAULTS)
    if meta:
        out.update({k: meta[k] for k in _DEFAULTS if k in meta})
    if cfg.data.feature_stride is not None:
        out["feature_stride"] = cfg.data.feature_stride
    if cfg.data.feature_window is not None:
        out["feature_window"] = cfg.data.feature_window
    return out


def detect(cfg: Config, checkpoint, video, *, weights=None, out=None, picture=None, device: str = "auto",
           progress: bool = True, batch_size: int = 8) -> dict:
    """Detections of one video file; written to ``out`` (JSON) and drawn to ``picture`` when given."""
    from ..data.video import probe_video
    from .extract import extract_video
    video = Path(video)
    for path, option in ((out, "--out"), (picture, "--picture")):
        if path is not None:
            check_output_file(path, option)
    info_v = probe_video(video)                      # missing, corrupt or empty video: DataError
    ckpt = load_checkpoint(checkpoint)
    check_compatible(ckpt, name=cfg.model.name)
    info = dict(ckpt["model_info"])
    classes = list(info["classes"])
    end_to_end = info["params"].get("backbone") is not None
    vid = video.stem
    dev = resolve_device(device, option="--device")
    ann = Annotations({vid: VideoAnnotation(vid, "detect", float(info_v.duration), np.zeros((0, 2)), [])},
                      classes=classes)

    if end_to_end:
        from ..data.frames import FrameDataset, VideoFrameStore
        from ..models.video_detector import backbone_config
        bb = backbone_config(info["params"]["backbone"], cfg.source)
        if bb.two_stream:
            raise ConfigError("tadkit detect reads RGB only; this checkpoint is two-stream (needs flow videos)",
                              path=ckpt["path"], fix="predict with `tadkit predict` and data.flow_videos instead")
        store = VideoFrameStore(files={vid: video}, fps=cfg.data.fps, step_frames=bb.step_frames)
        dataset = FrameDataset(ann, store, "detect", training=False, max_seq_len=int(info["max_seq_len"]),
                               short_side=cfg.data.short_side, crop_size=cfg.data.crop_size,
                               window_overlap=cfg.data.window_overlap)
    else:
        from ..data.dataset import VideoDataset
        from ..data.features import MemoryFeatureStore
        from ..models.backbones.i3d import build_i3d
        if weights is None:                          # the cached checkpoint, or one line naming the command
            from .weights import default_weights
            weights = default_weights("i3d")
        s = extraction_settings(cfg)
        if not float(s["feature_stride"]).is_integer() or not float(s["feature_window"]).is_integer():
            raise ConfigError(f"feature stride/window must be whole frames for extraction, got "
                              f"{s['feature_stride']}/{s['feature_window']}", path=cfg.source,
                              fix="set data.feature_stride and data.feature_window (frames)")
        backbone = build_i3d(weights, final_endpoint=s["endpoint"]).to(dev)
        if backbone.endpoint_channels(s["endpoint"]) != int(info["input_dim"]):
            raise CheckpointError(f"the checkpoint reads {info['input_dim']}-d features but I3D {s['endpoint']} "
                                  f"gives {backbone.endpoint_channels(s['endpoint'])}", path=ckpt["path"],
                                  fix="use a checkpoint trained on `tadkit extract` features")
        feats = extract_video(backbone, video, fps=s["fps"], stride=int(s["feature_stride"]),
                              window=int(s["feature_window"]), short_side=s["short_side"], crop=s["crop"],
                              batch_size=batch_size, endpoint=s["endpoint"], device=dev)
        rate = float(s["fps"]) if s["fps"] is not None else float(info_v.fps)
        store = MemoryFeatureStore({vid: feats}, where=str(video))
        dataset = VideoDataset(ann, store, "detect", training=False, max_seq_len=int(info["max_seq_len"]),
                               fps=rate, feature_stride=float(s["feature_stride"]),
                               feature_window=float(s["feature_window"]), window_overlap=cfg.data.window_overlap)
    check_compatible(ckpt, name=cfg.model.name, input_dim=dataset.input_dim)
    model = builders.build_model(cfg, info)
    load_weights(model, checkpoint_weights(ckpt), ckpt["path"])
    model.to(dev)
    windows = predict_windows(model, dataset, batch_size=1, dist=DistContext(device=dev), progress=progress)
    dets = detections_per_video(windows, cfg.test)
    results = results_dict(dets, classes)
    if out is not None:
        atomic_write_json(Path(out), results)
    if picture is not None:
        from ..viz import plot_timeline
        plot_timeline(picture, [vid], {vid: float(info_v.duration)}, {}, results["results"], classes=classes,
                      min_score=0.1)
    return results



def clock_time(seconds: float) -> str:
    """``hh:mm:ss.mmm``, as label sheets with clock times write them."""
    ms = int(round(max(0.0, seconds) * 1000))
    h, ms = divmod(ms, 3_600_000)
    m, ms = divmod(ms, 60_000)
    return f"{h:02d}:{m:02d}:{ms // 1000:02d}.{ms % 1000:03d}"


def write_detections_csv(path, video_name: str, detections: list[dict], fmt: dict | None = None) -> None:
    """Detections as a label sheet: the run's column names (``video, start, end, label`` by default) plus ``score``."""
    import csv
    import io
    fmt = fmt or {}
    cols = {"video": "video", "start": "start", "end": "end", "label": "label", **fmt.get("columns", {})}
    buf = io.StringIO()
    w = csv.writer(buf, delimiter=fmt.get("delimiter", ","), lineterminator="\n")
    w.writerow([cols["video"], cols["start"], cols["end"], cols["label"], "score"])
    when = clock_time if fmt.get("clock_times") else (lambda t: f"{t:.3f}")
    for d in detections:
        s, e = d["segment"]
        w.writerow([video_name, when(s), when(e), d["label"], f"{d['score']:.6f}"])
    from ..core.io import atomic_write_text
    atomic_write_text(path, buf.getvalue())


def detect_run(run_dir, videos, *, out_dir=None, weights=None, device: str = "auto", overrides=(),
               progress: bool = True, min_score: float = 0.0) -> dict[str, dict]:
    """``tadkit detect VIDEO... --run RUN_DIR``: each video through a ``tadkit fit`` (or ``train``) run.

    Uses the run's ``config.yaml`` and its best checkpoint (else ``last.pt``); writes, per video,
    ``<video>_detections.json`` (ActivityNet results), ``.csv`` (the run's label-sheet column names
    plus ``score``; ``video, start, end, label, score`` for a run without a sheet) and ``.png``
    (a timeline), beside the video or into ``out_dir``. ``min_score`` leaves weaker detections out of
    the CSV (the JSON keeps them all, for ``tadkit eval``).
    """
    from ..config import load_config
    from ..core.io import check_output_dir, read_json
    from .fit import LABEL_FORMAT
    run = Path(run_dir)
    if not (run / "config.yaml").is_file():
        raise ConfigError("not a run folder (no config.yaml)", path=run,
                          fix="pass the RUN_DIR of `tadkit fit` or the output_dir of `tadkit train`")
    ckpt = next((c for c in (run / "checkpoints" / "best.pt", run / "checkpoints" / "last.pt") if c.is_file()), None)
    if ckpt is None:
        raise CheckpointError("the run has no checkpoint (checkpoints/best.pt or last.pt)", path=run,
                              fix="finish its training first (tadkit train ... --resume)")
    fmt = read_json(run / LABEL_FORMAT, "label sheet format") if (run / LABEL_FORMAT).is_file() else {}
    own = []                    # the run's own features folder: its settings even after the run is moved
    feats = run / "features"
    if (feats / "features.json").is_file():
        own = [f"data.features={feats.resolve()}"]
        if weights is None:     # the I3D the run's features came from, when fit was given --weights
            made_with = (read_json(feats / "features.json", "features.json") or {}).get("weights")
            if made_with and Path(made_with).is_file():
                weights = made_with
    cfg = load_config(run / "config.yaml", own + list(overrides))
    videos = [Path(v) for v in videos]
    for v in videos:
        check_video_path(v)
    if out_dir is not None:
        check_output_dir(out_dir, "--out")
    done = {}
    for v in videos:
        files = detection_files(v, out_dir)
        results = detect(cfg, ckpt, v, weights=weights, out=files["json"], picture=files["png"], device=device,
                         progress=progress)
        name = v.name if fmt.get("video_with_suffix", True) else v.stem
        kept = [d for d in results["results"].get(v.stem, []) if d["score"] >= min_score]
        write_detections_csv(files["csv"], name, kept, fmt)
        done[str(v)] = results
    return done


def check_video_path(video) -> None:
    """A video file that is there; a folder or a missing path is a one-line error."""
    v = Path(video)
    if v.is_dir():
        raise ConfigError("is a folder, not a video file", path=v, fix=f"pass the videos themselves, e.g. {v}/*.mp4")
    if not v.is_file():
        raise ConfigError("video not found", path=v, fix="check the path")


def detection_files(video, out_dir=None) -> dict[str, Path]:
    """``<video stem>_detections.{json,csv,png}`` beside the video or in ``out_dir`` (a dotted stem such as
    ``cam.1`` keeps its dots)."""
    video = Path(video)
    folder = Path(out_dir) if out_dir is not None else video.parent
    return {ext: folder / f"{video.stem}_detections.{ext}" for ext in ("json", "csv", "png")}
