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


__all__ = ["TadkitError", "evaluate", "__version__"]
