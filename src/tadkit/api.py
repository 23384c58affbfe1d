"""The implementation of the Python API that :mod:`tadkit` exports.

Users call ``tadkit.train``, ``tadkit.predict``, ... : their docstrings (with runnable examples)
are the documentation, and ``docs/python-api.md`` walks through them. Each function here takes
a :class:`~tadkit.config.Config`, a YAML path or a dict, plus ``key=value`` overrides; files and
errors are those of the command line.
"""
from __future__ import annotations

import os
from typing import Iterable, Sequence

from .config import Config
from .config import load_config as _load_config

__all__ = ["load_config", "build_detector", "train", "predict", "evaluate", "extract", "detect"]


def load_config(source=None, overrides: Iterable[str] = ()) -> Config:
    """See :func:`tadkit.load_config`."""
    return _load_config(source, overrides)


def _config(config, overrides: Iterable[str]) -> Config:
    overrides = list(overrides)
    if isinstance(config, Config) and not overrides:
        return config
    return _load_config(config, overrides)


def build_detector(config, *, num_classes: int | None = None, input_dim: int | None = None,
                   max_seq_len: int | None = None, overrides: Iterable[str] = (), **hyperparameters):
    """See :func:`tadkit.build_detector`."""
    from .models import build_detector as _build
    if isinstance(config, str) and not os.path.exists(config) and not config.endswith((".yaml", ".yml")):
        if num_classes is None or input_dim is None:
            raise TypeError("build_detector(name, ...) needs num_classes and input_dim")
        if max_seq_len is None:                 # the detector's own default (its signature's)
            from .config import model_defaults
            max_seq_len = model_defaults(config)["max_seq_len"]
            if max_seq_len is None:
                raise TypeError(f"build_detector({config!r}, ...) needs max_seq_len: the detector has no default")
        return _build(config, num_classes=num_classes, input_dim=input_dim, max_seq_len=max_seq_len,
                      **hyperparameters)
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
    """See :func:`tadkit.train`."""
    from .engine.trainer import train as _train
    return _train(_config(config, overrides), resume=resume, **kwargs)


def predict(config, checkpoint, *, features=None, subset: str | None = None, videos: Sequence[str] | None = None,
            out=None, overrides: Iterable[str] = (), **kwargs) -> dict:
    """See :func:`tadkit.predict`."""
    from .engine.predictor import predict as _predict
    return _predict(_config(config, overrides), checkpoint, features=features, subset=subset, videos=videos,
                    out=out, **kwargs)


def evaluate(gt, pred, subset=None, tiou="activitynet", **kwargs) -> dict:
    """See :func:`tadkit.evaluate`."""
    from .evaluation.api import evaluate_files
    return evaluate_files(gt, pred, subset=subset, tiou=tiou, **kwargs)


def extract(video_dir, weights=None, out_dir=None, **kwargs):
    """See :func:`tadkit.extract`."""
    if out_dir is None:
        raise TypeError("tadkit.extract() needs out_dir, the feature folder to write: call "
                        "extract(video_dir, out_dir=...) or extract(video_dir, weights, out_dir)")
    from .engine.extract import extract_features
    return extract_features(video_dir, weights, out_dir, **kwargs)


def detect(config, checkpoint, video, *, weights=None, out=None, picture=None, overrides: Iterable[str] = (),
           **kwargs) -> dict:
    """See :func:`tadkit.detect`."""
    from .engine.detect import detect as _detect
    return _detect(_config(config, overrides), checkpoint, video, weights=weights, out=out, picture=picture,
                   **kwargs)
