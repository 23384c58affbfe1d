"""Checkpoints: written atomically, read with ``torch.load(weights_only=True)``, checked.

A checkpoint is a dict of tensors, plain containers, numbers and strings::

    format "tadkit-checkpoint", version 1
    epoch        completed epochs; global_step: optimiser steps so far
    model        state dict of the trained weights
    ema          state dict of the EMA weights (None when EMA is off); used for evaluation
    optimizer, scheduler, scaler   their state dicts (scaler None without float16 AMP)
    rng          one entry per process: {"torch", "cuda", "numpy", "python"}
    model_info   {"name", "num_classes", "input_dim", "max_seq_len", "classes", "params"}
    config       the resolved config (Config.to_dict())
    best         {"epoch", "average_mAP"} or None; history: the logged rows
"""
from __future__ import annotations

import os
import pickle
import warnings
import random
import reprlib
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..core.errors import CheckpointError
from ..core.io import atomic_path

__all__ = ["FORMAT", "VERSION", "rng_state", "set_rng_state", "save_checkpoint", "copy_checkpoint",
           "load_checkpoint", "check_compatible", "load_weights"]

FORMAT = "tadkit-checkpoint"
VERSION = 1
_FIX = "pass a file written by `tadkit train` (OUTPUT_DIR/checkpoints/best.pt or last.pt)"


# -- random number generators ------------------------------------------------------------------------
def rng_state() -> dict:
    """The state of every RNG this process uses, as tensors and plain values."""
    _, keys, pos, has_gauss, gauss = np.random.get_state()
    version, internal, gauss_next = random.getstate()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "numpy": {"keys": torch.from_numpy(np.asarray(keys, dtype=np.int64)), "pos": int(pos),
                  "has_gauss": int(has_gauss), "gauss": float(gauss)},
        "python": [int(version), [int(x) for x in internal], gauss_next],
    }


def set_rng_state(state: dict) -> None:
    """Restore what :func:`rng_state` captured."""
    torch.set_rng_state(state["torch"])
    if state.get("cuda") and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    n = state["numpy"]
    np.random.set_state(("MT19937", n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["gauss"]))
    version, internal, gauss_next = state["python"]
    random.setstate((version, tuple(internal), gauss_next))


# -- writing -----------------------------------------------------------------------------------------
def save_checkpoint(path, state: dict) -> None:
    """``torch.save`` to a temporary file beside ``path``, renamed on success (old file kept on failure)."""
    state = {"format": FORMAT, "version": VERSION, **state}
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        torch.save(state, f)                 # through a Python file: a full disk is an OSError behind its error


def copy_checkpoint(src, dst) -> None:
    """``last.pt``, ``best.pt`` from ``epoch_XXX.pt``: a hard link where possible (one file's space), else a
    copy; atomic either way."""
    from ..core.io import atomic_link_or_copy
    atomic_link_or_copy(src, dst)


# -- reading -----------------------------------------------------------------------------------------
def unreadable_reason(e: Exception) -> str:
    """Why ``torch.load(weights_only=True)`` refused a file, in a few words."""
    text = str(e)
    if "GLOBAL" in text:
        return "it names Python code to run when loaded, which a safe load refuses, so it was not loaded"
    if "Weights only load failed" in text or isinstance(e, pickle.UnpicklingError):
        return "a pickle a safe load cannot read (not a tadkit checkpoint), so it was not loaded"
    if "magic number" in text:
        return "not a PyTorch file"
    first = text.strip().splitlines()[0][:100] if text.strip() else type(e).__name__
    return f"not a tadkit checkpoint, or one truncated or damaged ({type(e).__name__}: {first})"


def load_checkpoint(path) -> dict:
    """Read and sanity-check a checkpoint; any defect is a :class:`CheckpointError`."""
    path = Path(path)
    if not path.exists():
        raise CheckpointError("checkpoint not found", path=path, fix=_FIX)
    if path.is_dir():
        raise CheckpointError("expected a checkpoint file, found a directory", path=path, fix=_FIX)
    try:
        with warnings.catch_warnings():      # torch's notes on pickle protocols: the error below says it all
            warnings.simplefilter("ignore")
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # truncated zip, foreign pickle, random bytes: all unreadable
        raise CheckpointError(f"cannot read the checkpoint: {unreadable_reason(e)}", path=path, fix=_FIX) from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise CheckpointError("not a tadkit checkpoint (no 'format': 'tadkit-checkpoint' entry)", path=path,
                              fix=_FIX)
    try:
        newer = int(state.get("version", 0)) > VERSION
    except (TypeError, ValueError, OverflowError, RuntimeError):
        raise CheckpointError(f"checkpoint version {reprlib.repr(state.get('version'))} is not a number", path=path,
                              fix=_FIX) from None
    if newer:
        raise CheckpointError(f"checkpoint version {state.get('version')} is newer than this tadkit reads "
                              f"({VERSION})", path=path, fix="upgrade tadkit")
    missing = [k for k in ("model", "model_info", "config") if k not in state]
    if missing or not isinstance(state.get("model"), dict):
        raise CheckpointError(f"checkpoint lacks {missing or ['model']}", path=path, fix=_FIX)
    odd = [k for k in ("model_info", "ema") if state.get(k) is not None and not isinstance(state[k], dict)]
    if odd or state.get("model_info") is None:
        raise CheckpointError(f"checkpoint entry {(odd or ['model_info'])[0]!r} is not a mapping", path=path, fix=_FIX)
    state["path"] = os.fspath(path)
    return state


def check_compatible(ckpt: dict, *, name: str, num_classes: int | None = None, input_dim: int | None = None) -> None:
    """The checkpoint must hold the configured model for the same classes and feature size."""
    info = ckpt["model_info"]
    path = ckpt.get("path")
    fix = "pass the config the checkpoint was trained with (OUTPUT_DIR/config.yaml) or the right checkpoint"
    if info.get("name") != name:
        raise CheckpointError(f"checkpoint holds model {reprlib.repr(info.get('name'))} but the config asks for "
                              f"{name!r}", path=path, fix=fix)
    if num_classes is not None and _as_int(info.get("num_classes", -1)) != int(num_classes):
        raise CheckpointError(f"checkpoint was trained for {reprlib.repr(info.get('num_classes'))} classes but the "
                              f"data has {num_classes}", path=path, fix=fix)
    if input_dim is not None and _as_int(info.get("input_dim", -1)) != int(input_dim):
        raise CheckpointError(f"checkpoint expects {reprlib.repr(info.get('input_dim'))}-d features but the features "
                              f"are {input_dim}-d", path=path, fix="pass the features the model was trained on")


def _as_int(value) -> int | None:
    """An integer entry of model_info; None where it is not one (so that it matches nothing)."""
    try:
        return int(value)
    except (TypeError, ValueError, OverflowError, RuntimeError):
        return None


def checkpoint_weights(ckpt: dict, weights: str = "auto") -> dict:
    """The state dict to predict with: ``auto`` (the EMA weights when the checkpoint has them, as
    training evaluates), ``ema`` or ``model`` (the raw weights)."""
    if weights not in ("auto", "ema", "model"):
        raise ValueError(f"weights must be auto, ema or model, got {weights!r}")
    if weights == "ema" and ckpt.get("ema") is None:
        raise CheckpointError("the checkpoint has no EMA weights (trained with train.ema_decay=null)",
                              path=ckpt.get("path"), fix="use the raw weights (weights='model')")
    return ckpt["ema"] if weights != "model" and ckpt.get("ema") is not None else ckpt["model"]


def load_weights(model: nn.Module, state_dict: dict, path=None) -> None:
    """``load_state_dict(strict=True)``, with a one-line :class:`CheckpointError` on mismatch."""
    try:
        model.load_state_dict(state_dict, strict=True)
    except (RuntimeError, KeyError, ValueError) as e:
        msg = " ".join(str(e).split())
        raise CheckpointError(f"the weights do not fit the configured model: {msg[:300]}", path=path,
                              fix="use the model keys the checkpoint was trained with (its config.yaml)") from None
