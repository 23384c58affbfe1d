"""tadkit: temporal action detection on one shared infrastructure.

The Python API mirrors the command line. Heavy modules (torch) load only when a
function that needs them is called, so ``import tadkit`` and the evaluation stay light.
"""
from __future__ import annotations

__version__ = "0.1.0"

from .core.errors import TadkitError  # noqa: E402


def evaluate(gt, pred, subset=None, tiou="activitynet", **kwargs):
    """Detection mAP of a predictions file (or dict) against an annotation file (or dict)."""
    from .evaluation.api import evaluate_files
    return evaluate_files(gt, pred, subset=subset, tiou=tiou, **kwargs)


def load_config(source=None, overrides=()):
    """A validated :class:`tadkit.config.Config` from a YAML file (or dict) and ``key=value`` overrides."""
    from .api import load_config as f
    return f(source, overrides)


def build_detector(config, **kwargs):
    """The detector a config describes (``model.name`` and its hyperparameters)."""
    from .api import build_detector as f
    return f(config, **kwargs)


def train(config, overrides=(), **kwargs):
    """Train as ``tadkit train`` does; returns the run's summary."""
    from .api import train as f
    return f(config, overrides, **kwargs)


def predict(config, checkpoint, **kwargs):
    """Predict as ``tadkit predict`` does; returns the ActivityNet-style results."""
    from .api import predict as f
    return f(config, checkpoint, **kwargs)


def extract(video_dir, weights, out_dir, **kwargs):
    """Extract I3D features as ``tadkit extract`` does; returns an ``ExtractResult``."""
    from .api import extract as f
    return f(video_dir, weights, out_dir, **kwargs)


def detect(config, checkpoint, video, **kwargs):
    """Detect actions in one video file as ``tadkit detect`` does; returns the ActivityNet-style results."""
    from .api import detect as f
    return f(config, checkpoint, video, **kwargs)


__all__ = ["TadkitError", "evaluate", "load_config", "build_detector", "train", "predict", "extract", "detect",
           "__version__"]
