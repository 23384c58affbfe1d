"""The Python API; it mirrors the command line.

>>> import tadkit
>>> cfg = tadkit.load_config("configs/actionformer/thumos14.yaml", ["train.epochs=10", "output_dir=runs/af"])
>>> run = tadkit.train(cfg)                                        # tadkit train CFG ...
>>> preds = tadkit.predict(cfg, "runs/af/checkpoints/best.pt")     # tadkit predict ...
>>> metrics = tadkit.evaluate(cfg.data.annotations, preds, subset="validation", tiou="thumos14")

Everything takes a :class:`~tadkit.config.Config`, a YAML path or a dict, plus ``key=value``
overrides; files and errors are those of the command line.
"""
from __future__ import annotations

import os
from typing import Iterable, Sequence

from .config import Config
from .config import load_config as _load_config

__all__ = ["load_config", "build_detector", "train", "predict", "evaluate", "extract", "detect"]


def load_config(source=None, overrides: Iterable[str] = ()) -> Config:
    """A validated :class:`~tadkit.config.Config` from a YAML file (or dict), with ``key.sub=value`` overrides."""
    return _load_config(source, overrides)


def _config(config, overrides: Iterable[str]) -> Config:
    overrides = list(overrides)
    if isinstance(config, Config) and not overrides:
        return config
    return _load_config(config, overrides)


def build_detector(config, *, num_classes: int | None = None, input_dim: int | None = None,
                   max_seq_len: int | None = None, overrides: Iterable[str] = (), **hyperparameters):
    """A detector (``nn.Module``) from a config, or from a model name and its hyperparameters.

    ``build_detector("actionformer", num_classes=20, input_dim=2048, max_seq_len=2304, embed_dim=256)``
    builds by name; ``build_detector(cfg)`` builds the configured model, reading the class count
    from the annotations and the feature width from the features unless given.
    """
    from .models import build_detector as _build
    if isinstance(config, str) and not os.path.exists(config) and not config.endswith((".yaml", ".yml")):
        if num_classes is None or input_dim is None:
            raise TypeError("build_detector(name, ...) needs num_classes and input_dim")
        extra = {} if max_seq_len is None else {"max_seq_len": max_seq_len}
        return _build(config, num_classes=num_classes, input_dim=input_dim, **extra, **hyperparameters)
    cfg = _config(config, overrides)
    from .engine import builders
    if num_classes is None:
        num_classes = len(builders.load_annotations(cfg).classes)
    if input_dim is None:
        from .data.features import open_features
        if cfg.data.features is None:
            from .core.errors import ConfigError
            raise ConfigError("data.features is not set", path=cfg.source,
                              fix="set data.features or pass input_dim=")
        input_dim = open_features(cfg.data.features, layout=cfg.data.layout,
                                  max_length_gap=cfg.data.max_length_gap).dim
    params = {k: v for k, v in cfg.model.params.items() if k != "max_seq_len"}
    params.update(hyperparameters)
    return _build(cfg.model.name, num_classes=num_classes, input_dim=input_dim,
                  max_seq_len=max_seq_len or builders.max_seq_len(cfg), **params)


def train(config, overrides: Iterable[str] = (), *, resume: bool = False, **kwargs):
    """``tadkit train``: returns a :class:`~tadkit.engine.trainer.TrainResult` (paths, metrics, best epoch)."""
    from .engine.trainer import train as _train
    return _train(_config(config, overrides), resume=resume, **kwargs)


def predict(config, checkpoint, *, features=None, subset: str | None = None, videos: Sequence[str] | None = None,
            out=None, overrides: Iterable[str] = (), **kwargs) -> dict:
    """``tadkit predict``: ActivityNet results dict (seconds), also written to ``out`` when given."""
    from .engine.predictor import predict as _predict
    return _predict(_config(config, overrides), checkpoint, features=features, subset=subset, videos=videos,
                    out=out, **kwargs)


def evaluate(gt, pred, subset=None, tiou="activitynet", **kwargs) -> dict:
    """``tadkit eval``: detection mAP of a predictions file or dict against an annotation file or dict."""
    from .evaluation.api import evaluate_files
    return evaluate_files(gt, pred, subset=subset, tiou=tiou, **kwargs)


def extract(video_dir, weights, out_dir, **kwargs):
    """``tadkit extract``: I3D features of every video of ``video_dir`` in ``out_dir`` (an ``ExtractResult``)."""
    from .engine.extract import extract_features
    return extract_features(video_dir, weights, out_dir, **kwargs)


def detect(config, checkpoint, video, *, weights=None, out=None, picture=None, overrides: Iterable[str] = (),
           **kwargs) -> dict:
    """``tadkit detect``: detections of one video file (ActivityNet results dict, seconds)."""
    from .engine.detect import detect as _detect
    return _detect(_config(config, overrides), checkpoint, video, weights=weights, out=out, picture=picture,
                   **kwargs)
