"""From a :class:`~tadkit.config.Config` to annotations, datasets and a detector.

The trainer and the predictor take these as arguments (``build_dataset``, ``build_model``),
so a test or a user can substitute their own; the defaults here use :mod:`tadkit.data` and
:mod:`tadkit.models`.
"""
from __future__ import annotations

from typing import Callable, Sequence

from torch import nn

from ..config import Config
from ..core.errors import ConfigError
from ..data.annotations import Annotations

__all__ = ["load_annotations", "build_dataset", "build_model", "model_info", "get_collate",
           "DatasetBuilder", "ModelBuilder"]

#: ``(cfg, subset, *, training, classes=None, features=None, video_ids=None) -> dataset``
DatasetBuilder = Callable[..., object]
#: ``(cfg, info) -> nn.Module`` with ``info`` from :func:`model_info`
ModelBuilder = Callable[[Config, dict], nn.Module]


def load_annotations(cfg: Config, classes: Sequence[str] | None = None) -> Annotations:
    """The annotation file of ``cfg``; ``classes`` (e.g. a checkpoint's) overrides ``data.classes``."""
    if cfg.data.annotations is None:
        raise ConfigError("data.annotations is not set", path=cfg.source,
                          fix="set data.annotations to the ActivityNet-style annotation file")
    return Annotations.load(cfg.data.annotations, classes=classes if classes is not None else cfg.data.classes,
                            train_subset=cfg.data.train_subset)


def max_seq_len(cfg: Config) -> int:
    """The model's window length: ``model.max_seq_len``, else ``data.fixed_length``."""
    n = cfg.model.params.get("max_seq_len")
    if n is None:
        n = cfg.data.fixed_length
    if n is None:
        raise ConfigError("model.max_seq_len is not set", path=cfg.source,
                          fix="set model.max_seq_len (feature steps per window) or data.fixed_length")
    return int(n)


def build_dataset(cfg: Config, subset: str | None, *, training: bool, classes: Sequence[str] | None = None,
                  features=None, video_ids: Sequence[str] | None = None, annotations: Annotations | None = None):
    """A :class:`tadkit.data.dataset.VideoDataset` of ``subset`` as configured.

    ``features`` overrides ``data.features`` (``tadkit predict --features``); ``video_ids``
    restricts the videos; ``classes`` fixes the class order (a checkpoint's at inference).
    """
    from ..data.dataset import VideoDataset
    from ..data.features import open_features
    d = cfg.data
    backbone = cfg.model.params.get("backbone")
    if backbone is not None or d.videos is not None:
        return _frame_dataset(cfg, subset, training=training, classes=classes, videos=features,
                              video_ids=video_ids, annotations=annotations)
    feats = features if features is not None else d.features
    if feats is None:
        raise ConfigError("data.features is not set", path=cfg.source,
                          fix="set data.features to the feature directory (or a list of them)")
    ann = annotations if annotations is not None else load_annotations(cfg, classes)
    store = open_features(feats, layout=d.layout, max_length_gap=d.max_length_gap)
    return VideoDataset(ann, store, subset, fps=d.fps, **_dataset_options(cfg, training, video_ids))


def _dataset_options(cfg: Config, training: bool, video_ids) -> dict:
    """The ``data.*`` windowing, timing and target settings every dataset kind takes."""
    d = cfg.data
    return dict(training=training, max_seq_len=max_seq_len(cfg), feature_stride=d.feature_stride,
                feature_window=d.feature_window, fixed_length=d.fixed_length, window_overlap=d.window_overlap,
                crop_ratio=d.crop_ratio, trunc_thresh=d.trunc_thresh, video_ids=video_ids, seed=cfg.train.seed,
                train_windows=d.train_windows, train_window_overlap=d.train_window_overlap,
                train_window_jitter=d.train_window_jitter, missing=d.missing)


def _frame_dataset(cfg: Config, subset, *, training: bool, classes=None, videos=None, video_ids=None,
                   annotations: Annotations | None = None):
    """End-to-end: a :class:`tadkit.data.frames.FrameDataset` over ``data.videos`` (``videos`` overrides it)."""
    from ..data.frames import FrameDataset, VideoFrameStore
    from ..models.video_detector import backbone_config
    d = cfg.data
    bb = backbone_config(cfg.model.params.get("backbone"), cfg.source)
    if bb is None:
        raise ConfigError("data.videos is set but the model has no backbone", path=cfg.source,
                          fix="add model.backbone (end-to-end training, pointtad or sptad), or use data.features")
    source = videos if videos is not None else d.videos
    if source is None:
        raise ConfigError("model.backbone is set but data.videos is not", path=cfg.source,
                          fix="set data.videos to the directory of video files")
    if isinstance(source, (list, tuple)):
        source = source[0]
    if bb.two_stream and d.flow_videos is None:
        raise ConfigError("model.backbone.two_stream needs data.flow_videos", path=cfg.source,
                          fix="set data.flow_videos to the directory of flow videos")
    ann = annotations if annotations is not None else load_annotations(cfg, classes)
    store = VideoFrameStore(source, fps=d.fps, step_frames=bb.step_frames,
                            flow_directory=d.flow_videos if bb.two_stream else None)
    return FrameDataset(ann, store, subset, short_side=d.short_side, crop_size=d.crop_size, flip=d.flip,
                        **_dataset_options(cfg, training, video_ids))


def model_info(cfg: Config, dataset) -> dict:
    """What a checkpoint records about the model: name, sizes, classes, hyperparameters."""
    params = {k: v for k, v in cfg.model.params.items() if k != "max_seq_len"}
    return {"name": cfg.model.name, "num_classes": int(dataset.num_classes), "input_dim": int(dataset.input_dim),
            "max_seq_len": max_seq_len(cfg), "classes": list(dataset.classes), "params": params}


def build_model(cfg: Config, info: dict) -> nn.Module:
    """:func:`tadkit.models.build_detector` with the sizes of ``info``."""
    from ..models import build_detector
    params = dict(info["params"])
    backbone = params.pop("backbone", None)
    if backbone is None:
        return build_detector(info["name"], num_classes=info["num_classes"], input_dim=info["input_dim"],
                              max_seq_len=info["max_seq_len"], **params)
    from ..models.video_detector import VideoDetector, backbone_config, detector_inputs
    bb = backbone_config(backbone, cfg.source)
    widths = detector_inputs(bb)
    if bb.fusion == "levels":
        params.update(pyramid_input="backbone", backbone_dims=widths)
    detector = build_detector(info["name"], num_classes=info["num_classes"], input_dim=widths[0],
                              max_seq_len=info["max_seq_len"], **params)
    return VideoDetector(detector, bb)


def get_collate(dataset) -> Callable:
    """The dataset's own ``collate`` when it has one, else :func:`tadkit.data.dataset.collate`."""
    own = getattr(dataset, "collate", None)
    if callable(own):
        return own
    from ..data.dataset import collate
    return collate
