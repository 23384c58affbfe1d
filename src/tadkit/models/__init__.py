"""Detectors, their shared blocks (``layers``) and losses (``losses``), and the detector registry.

A detector lives in ``tadkit/models/detectors/<name>.py`` and exposes its class as ``DETECTOR``;
``build_detector(name, ...)`` imports that module on demand, so adding a method means adding a
file. Every detector follows one contract::

    __init__(num_classes, input_dim, max_seq_len, **hyperparameters)
    forward(batch) -> dict of named losses, "loss" the total
    predict(batch) -> list[Instances] (feature units, per window, before NMS)
"""
from __future__ import annotations

import importlib
import inspect
import pkgutil
from typing import TYPE_CHECKING

from ..core.errors import ConfigError

if TYPE_CHECKING:
    from torch import nn

CONTRACT_ARGUMENTS = ("num_classes", "input_dim", "max_seq_len")


def available_detectors() -> list[str]:
    """Names of the detector modules in ``tadkit/models/detectors``, sorted."""
    from . import detectors
    return sorted(m.name for m in pkgutil.iter_modules(detectors.__path__) if not m.name.startswith("_"))


def detector_class(name: str) -> type:
    """The class registered as ``DETECTOR`` by the module ``tadkit.models.detectors.<name>``."""
    names = available_detectors()
    if name not in names:
        raise ConfigError(f"unknown model.name {name!r}", fix=f"use one of {', '.join(names)}")
    module = importlib.import_module(f"{__name__}.detectors.{name}")
    try:
        return module.DETECTOR
    except AttributeError:
        raise ConfigError(f"detector module {name!r} does not define DETECTOR",
                          fix=f"set DETECTOR = <class> in tadkit/models/detectors/{name}.py") from None


def _hyperparameters(cls: type) -> dict[str, inspect.Parameter]:
    """Constructor parameters of ``cls`` beyond the contract ones, following ``**kwargs`` up to the base classes.

    A subclass that forwards ``**kwargs`` to ``super().__init__`` accepts its bases' parameters too;
    its own declarations (and defaults) take precedence.
    """
    params: dict[str, inspect.Parameter] = {}
    for klass in cls.__mro__:
        init = klass.__dict__.get("__init__")
        if init is None:
            continue
        signature = inspect.signature(init)
        for pname, param in signature.parameters.items():
            if pname == "self" or pname in CONTRACT_ARGUMENTS:
                continue
            if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
                continue
            params.setdefault(pname, param)
        if not any(p.kind is p.VAR_KEYWORD for p in signature.parameters.values()):
            break
    return params


def detector_defaults(name: str) -> dict:
    """The hyperparameters of detector ``name`` with their constructor defaults (contract arguments excluded)."""
    return {k: p.default for k, p in _hyperparameters(detector_class(name)).items()
            if p.default is not inspect.Parameter.empty}


def build_detector(name: str, *, num_classes: int, input_dim: int, max_seq_len: int,
                   **hyperparameters) -> "nn.Module":
    """Build detector ``name``; an unknown name or hyperparameter is a :class:`ConfigError` listing the valid ones."""
    cls = detector_class(name)
    valid = _hyperparameters(cls)
    unknown = sorted(set(hyperparameters) - set(valid))
    if unknown:
        raise ConfigError(f"unknown hyperparameter{'s' if len(unknown) > 1 else ''} {', '.join(unknown)} "
                          f"for model {name!r}", fix=f"valid keys: {', '.join(sorted(valid))}")
    missing = sorted(k for k, p in valid.items() if p.default is inspect.Parameter.empty and k not in hyperparameters)
    if missing:
        raise ConfigError(f"model {name!r} needs {', '.join(missing)}", fix="set them in the model section")
    return cls(num_classes=num_classes, input_dim=input_dim, max_seq_len=max_seq_len, **hyperparameters)


__all__ = ["build_detector", "detector_defaults", "detector_class", "available_detectors", "CONTRACT_ARGUMENTS"]
