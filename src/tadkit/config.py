"""Configuration: YAML validated into typed dataclasses, with ``key.sub=value`` overrides.

A config file has five parts::

    data:   {annotations, features, fps, feature_stride, feature_window, fixed_length, layout,
             train_subset, test_subset, classes, window_overlap, crop_ratio, trunc_thresh}
    model:  {name, <the model's own keys; defaults from tadkit.models.detector_defaults(name)>}
    train:  {epochs, batch_size, lr, weight_decay, warmup_epochs, schedule, ..., seed}
    test:   {nms, sigma, iou_threshold, pre_topk, min_score, max_detections, tiou, video_scores, ...}
    output_dir: where a training run writes everything

Rules:

* every key is checked: an unknown key is a :class:`ConfigError` whose one-line message lists
  the valid keys of its section; a value of the wrong type names the key and the expected type;
* ``overrides`` such as ``train.lr=2e-4`` or ``data.features=[rgb,flow]`` are parsed as YAML
  scalars or lists and applied after the file; ``model.name=asl`` switches the model (its
  defaults are then those of ``asl``);
* relative input paths written in a config file (``data.annotations``, ``data.features``,
  ``data.classes``, ``test.video_scores``) resolve against the config file's directory;
  ``output_dir`` and every path given as an override resolve against the working directory
  (``tadkit train configs/asl/thumos14.yaml`` writes ``./runs/asl_thumos14``);
* the resolved config (every key, model defaults filled in, absolute paths) is what
  :func:`save_config` writes and what checkpoints keep; loading it again gives the same config.
"""
from __future__ import annotations

import copy
import dataclasses
import difflib
import os
import reprlib
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Optional, Union

import yaml

from .core.errors import ConfigError
from .core.io import atomic_write_text

__all__ = ["Config", "DataConfig", "ModelConfig", "TrainConfig", "TestConfig", "load_config", "save_config",
           "parse_overrides", "config_from_dict", "model_defaults"]


# -- sections ----------------------------------------------------------------------------------------
@dataclass
class DataConfig:
    """Where the data is and how features map to time (see :mod:`tadkit.core.timing`)."""

    annotations: Optional[str] = None             # ActivityNet-style JSON
    features: Union[str, list[str], None] = None  # a directory, or several concatenated on channels
    fps: Optional[float] = None                   # None: each video's fps from the annotations
    feature_stride: Optional[float] = None        # frames between features (null: features.json, else 1)
    feature_window: Optional[float] = None        # frames per feature (null: features.json, else 1)
    fixed_length: Optional[int] = None            # resample every video to N features (ActivityNet)
    layout: str = "TC"                            # TC (time x channels) or CT
    train_subset: str = "training"
    test_subset: str = "validation"
    classes: Union[list[str], str, None] = None   # class list, or a file with one name per line
    window_overlap: float = 0.25                  # overlap of inference windows on long videos
    crop_ratio: Optional[list[float]] = field(default_factory=lambda: [0.9, 1.0])  # training crops
    trunc_thresh: float = 0.5                     # keep a cropped action if this fraction remains
    train_windows: bool = False                   # train on sliding windows instead of random crops
    train_window_overlap: float = 0.75            # overlap of those training windows
    train_window_jitter: bool = False             # move each training window by up to half their stride, anew each epoch
    missing: str = "error"                        # videos without features: error | skip
    max_length_gap: int = 0                       # concatenated streams: lengths may differ by this
    videos: Optional[str] = None                  # video directory: end-to-end training from frames (model.backbone)
    flow_videos: Optional[str] = None             # same-named flow videos (two-stream, x/y in R/G)
    short_side: Optional[int] = 256               # frames: short side resized to this (null: as decoded)
    crop_size: Optional[int] = 224                # frames: square crop (random in training, centre otherwise)
    flip: bool = True                             # frames: random horizontal flip in training


@dataclass
class ModelConfig:
    """``name`` plus the model's own hyperparameters (``params``, checked against its defaults)."""

    name: str = "actionformer"
    params: dict = field(default_factory=dict)


@dataclass
class TrainConfig:
    """Optimisation; defaults are the shared one-stage base of METHODS.md (ActionFormer, THUMOS14)."""

    epochs: int = 35                      # total, warm-up included (5 + 30 cosine)
    batch_size: int = 2                   # global: split over processes under torchrun
    lr: float = 1e-4
    weight_decay: float = 0.05            # never on biases, normalisation weights or scales
    optimizer: str = "adamw"              # adamw | adam | sgd
    betas: list[float] = field(default_factory=lambda: [0.9, 0.999])
    momentum: float = 0.9                 # sgd only
    fused_optimizer: bool = True          # one fused kernel per update (CPU and CUDA; ~6x faster than the
                                          # per-tensor loop on the CPU, equal to float rounding); false: the loop
    lr_groups: dict = field(default_factory=dict)      # {parameter-name prefix: lr}, e.g. {backbone: 1e-5}
    no_decay: list[str] = field(default_factory=list)  # extra parameter-name patterns without decay
    warmup_epochs: float = 5.0            # linear warm-up from 0 (per step)
    schedule: str = "cosine"              # cosine | multistep | constant (after warm-up, per step)
    milestones: list[float] = field(default_factory=list)  # multistep: epochs (from the start of training)
    gamma: float = 0.1                    # multistep factor
    min_lr: float = 0.0                   # cosine floor
    clip_grad: Optional[float] = 1.0      # max gradient norm; null or 0: off
    ema_decay: Optional[float] = 0.999    # EMA of weights used for evaluation; null: off
    ema_warmup: bool = False              # decay min(ema_decay, (1+t)/(10+t)) at step t (short runs)
    eval_every: int = 5                   # evaluate every N epochs (and after the last); 0: only at the end
    seed: int = 0                         # drives initialisation, crops, shuffling, dropout
    num_workers: int = 0                  # DataLoader workers per process
    amp: bool = True                      # mixed precision on the GPU
    cpu_amp: Union[bool, str] = False     # bfloat16 autocast when training on the CPU (fast on CPUs with AMX /
                                          # AVX512-BF16, e.g. Xeon Sapphire Rapids; slow emulation elsewhere);
                                          # auto: on where the CPU has those units (cpu_amp_enabled)
    amp_dtype: str = "bfloat16"           # bfloat16 | float16 (float16 uses a gradient scaler)
    device: str = "auto"                  # auto | cpu | cuda
    deterministic: bool = False           # torch deterministic algorithms (slower on GPU)
    find_unused_parameters: bool = False  # DistributedDataParallel option
    keep_checkpoints: Optional[int] = 3     # keep only the newest N epoch_XXX.pt, besides last.pt and best.pt (null: all)
    progress: bool = True                 # tqdm bars (on a terminal)
    tensorboard: bool = False             # also write OUTPUT_DIR/tensorboard (needs `tensorboard`)


@dataclass
class TestConfig:
    """Inference and evaluation: the shared post-processing of :mod:`tadkit.postprocess`."""

    batch_size: int = 1                   # windows per inference batch
    nms: str = "soft"                     # soft | hard | none
    sigma: float = 0.5                    # Gaussian Soft-NMS
    soft_method: str = "gaussian"         # gaussian | linear
    iou_threshold: Optional[float] = None  # hard NMS (default 0.5) / linear Soft-NMS (default 0.1)
    pre_topk: Optional[int] = 2000
    min_score: float = 1e-3
    max_detections: Optional[int] = 200
    class_agnostic: bool = False
    voting_threshold: Optional[float] = None
    tiou: Union[str, list[float]] = "activitynet"   # preset, "0.3:0.7:0.1", "0.3,0.5" or a list
    exclude_ignored: bool = False         # drop predictions inside ignore regions when evaluating
    video_scores: Optional[str] = None    # JSON of video-level class scores to fuse (ActivityNet practice)
    fusion: str = "rescore"               # rescore (class-aware detections) | proposals (class-agnostic)
    fusion_topk: Optional[int] = None     # classes kept per video (proposals: default 2)
    fusion_alpha: float = 1.0             # power on the detection score
    segmentation: bool = False            # also frame (segmentation) mAP in metrics.json, multi-label data
    segmentation_beta: float = 0.2        # PointTAD Eq. 14: beta * detections + (1 - beta) * dense head scores
    segmentation_gamma: float = 0.01      # Eq. 14: detections scoring above gamma are spread over frames
    segmentation_sigma: float = 3.0       # Gaussian sigma of that spreading, in feature steps
    segmentation_frames: Optional[int] = None  # null: every feature step (MultiTHUMOS); 25: Charades protocol


SECTIONS = {"data": DataConfig, "train": TrainConfig, "test": TestConfig}
TOP_LEVEL = ("data", "model", "train", "test", "output_dir")
CHOICES = {
    ("data", "layout"): ("TC", "CT"),
    ("data", "missing"): ("error", "skip"),
    ("train", "optimizer"): ("adamw", "adam", "sgd"),
    ("train", "schedule"): ("cosine", "multistep", "constant"),
    ("train", "amp_dtype"): ("bfloat16", "float16"),
    ("train", "device"): ("auto", "cpu", "cuda"),
    ("test", "nms"): ("soft", "hard", "none"),
    ("test", "soft_method"): ("gaussian", "linear"),
    ("test", "fusion"): ("rescore", "proposals"),
}
# keys holding input paths, resolved against the config file's directory; output_dir (and every
# path given as an override) resolves against the working directory, so that the shipped
# configs' `output_dir: runs/NAME` lands under the directory `tadkit train` runs in
PATH_KEYS = (("data", "annotations"), ("data", "features"), ("data", "classes"), ("test", "video_scores"),
             ("data", "videos"), ("data", "flow_videos"), ("model.backbone", "weights"),
             ("model.backbone", "flow_weights"))
CWD_PATH_KEYS = ((None, "output_dir"),)


@dataclass
class Config:
    """A validated configuration. ``source`` is the file it came from (not saved)."""

    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    test: TestConfig = field(default_factory=TestConfig)
    output_dir: Optional[str] = None
    source: Optional[str] = field(default=None, compare=False)

    def to_dict(self) -> dict:
        """Plain nested dict; the model section is flat (``name`` beside its keys)."""
        out = {s: dataclasses.asdict(getattr(self, s)) for s in ("data",)}
        out["model"] = {"name": self.model.name, **_plain(self.model.params)}
        for s in ("train", "test"):
            out[s] = dataclasses.asdict(getattr(self, s))
        out["output_dir"] = self.output_dir
        return out

    def to_yaml(self) -> str:
        return yaml.dump(self.to_dict(), Dumper=_Dumper, sort_keys=False, default_flow_style=False)

    def save(self, path) -> None:
        save_config(self, path)


class _Dumper(yaml.SafeDumper):
    """Block-style mappings; lists of scalars on one line (``[0.9, 1.0]``)."""


def _represent_list(dumper, data):
    flow = all(not isinstance(v, (list, dict)) for v in data) or all(
        isinstance(v, list) and all(not isinstance(x, (list, dict)) for x in v) for v in data)
    return dumper.represent_sequence("tag:yaml.org,2002:seq", data, flow_style=flow)


_Dumper.add_representer(list, _represent_list)


def _plain(obj):
    """Deep copy with tuples as lists (what YAML and JSON write)."""
    if isinstance(obj, dict):
        return {k: _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    return copy.deepcopy(obj)


# -- model defaults ----------------------------------------------------------------------------------
def model_defaults(name: str) -> dict:
    """The model section's keys with their defaults: ``max_seq_len`` (the window length, from the
    detector's signature) and :func:`tadkit.models.detector_defaults`."""
    import inspect

    from .models import detector_class, detector_defaults
    defaults = _plain(detector_defaults(name))     # an unknown name is a ConfigError listing the valid ones
    cls = detector_class(name)
    param = inspect.signature(cls.__init__).parameters.get("max_seq_len")
    max_len = None if param is None or param.default is inspect.Parameter.empty else param.default
    extra = {"backbone": None} if getattr(cls, "END_TO_END", False) else {}   # tadkit.models.video_detector
    return {"max_seq_len": max_len, **defaults, **extra}


def _show(value) -> str:
    """A short repr for messages: YAML aliases can make a value of millions of shared items."""
    return _SHORT.repr(value)


_SHORT = reprlib.Repr()
_SHORT.maxlevel, _SHORT.maxlist, _SHORT.maxdict, _SHORT.maxtuple, _SHORT.maxset = 3, 8, 8, 8, 8
_SHORT.maxstring, _SHORT.maxother, _SHORT.maxlong = 100, 100, 60


# -- overrides ---------------------------------------------------------------------------------------
def parse_overrides(items: Iterable[str]) -> list[tuple[str, Any]]:
    """``["train.lr=2e-4", "data.features=[a,b]"]`` -> ``[("train.lr", 2e-4), ("data.features", ["a", "b"])]``.

    Values are read as YAML (numbers, booleans, ``null``, lists, quoted strings); anything that
    is not valid YAML is kept as the literal string.
    """
    out = []
    for item in items:
        if "=" not in item:
            raise ConfigError(f"override {item!r} has no '='", fix="write key.sub=value, e.g. train.lr=2e-4")
        key, raw = item.split("=", 1)
        key = key.strip()
        if not key or any(not part for part in key.split(".")):
            raise ConfigError(f"override {item!r} has an empty key", fix="write key.sub=value, e.g. train.lr=2e-4")
        try:
            value = yaml.safe_load(raw) if raw.strip() else None
        except yaml.YAMLError:
            value = raw
        except (ValueError, RecursionError) as e:       # an integer of 4300+ digits, or nested too deeply
            why = "nested too deeply" if isinstance(e, RecursionError) else str(e).split(":")[0]
            raise ConfigError(f"override {key!r}: cannot read the value ({why})",
                              fix="write a plain number, string or list, e.g. train.lr=2e-4") from None
        out.append((key, value))
    return out


def _set_dotted(tree: dict, key: str, value: Any, where: str) -> None:
    """Set ``a.b.c`` in a nested dict; intermediate nodes must be dicts (or are created)."""
    parts = key.split(".")
    node = tree
    for i, part in enumerate(parts[:-1]):
        nxt = node.get(part)
        if nxt is None:
            nxt = node[part] = {}
        elif not isinstance(nxt, dict):
            raise ConfigError(f"override {key!r}: {'.'.join(parts[:i + 1])} is not a section", path=where,
                              fix=f"write {'.'.join(parts[:i + 1])}=value")
        node = nxt
    node[parts[-1]] = value


# -- validation --------------------------------------------------------------------------------------
def _type_name(tp) -> str:
    origin = typing.get_origin(tp)
    if origin is Union:
        return " or ".join(_type_name(a) for a in typing.get_args(tp))
    if origin is list:
        (arg,) = typing.get_args(tp) or (Any,)
        return f"a list of {_type_name(arg)}"
    if tp is type(None):
        return "null"
    return {float: "a number", int: "an integer", str: "a string", bool: "true/false", dict: "a mapping",
            Any: "anything"}.get(tp, getattr(tp, "__name__", str(tp)))


def _coerce(value, tp):
    """Return ``value`` converted to ``tp`` or raise ``TypeError``."""
    origin = typing.get_origin(tp)
    if origin is Union:
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg)
            except TypeError:
                continue
        raise TypeError
    if origin is list:
        (arg,) = typing.get_args(tp) or (Any,)
        if isinstance(value, tuple):
            value = list(value)
        if not isinstance(value, list):
            raise TypeError
        return [_coerce(v, arg) for v in value]
    if tp is Any:
        return value
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise TypeError
    if tp is int:
        if isinstance(value, bool):
            raise TypeError
        if isinstance(value, int):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        raise TypeError
    if tp is float:
        if isinstance(value, bool):
            raise TypeError
        if isinstance(value, (int, float)):
            try:
                return float(value)
            except OverflowError:              # an integer too large for a float
                raise TypeError from None
        if isinstance(value, str):  # PyYAML reads 1e-4 (no dot) as a string
            try:
                return float(value)
            except ValueError:
                raise TypeError from None
        raise TypeError
    if tp is str:
        if isinstance(value, str):
            return value
        if isinstance(value, os.PathLike):
            return os.fspath(value)
        raise TypeError
    if tp is dict:
        if isinstance(value, dict):
            return copy.deepcopy(value)
        raise TypeError
    raise TypeError


def _like_default(value, default):
    """A model value given as a numeric string (YAML reads ``1e-4`` as one) becomes a number when
    the default is a number; everything else is left to the model to check."""
    if isinstance(default, float) and not isinstance(default, bool):
        if isinstance(value, int) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                return value
    return value


def _unknown_key(section: str, key: str, valid: Iterable[str], where) -> ConfigError:
    valid = sorted(valid)
    close = difflib.get_close_matches(key, valid, n=1)
    hint = f"did you mean {section + '.' if section else ''}{close[0]}? " if close else ""
    name = f"{section}.{key}" if section else key
    scope = f"of {section}" if section else "at the top level"
    return ConfigError(f"unknown key {name!r}; the valid keys {scope} are: {', '.join(valid)}", path=where,
                       fix=f"{hint}fix the spelling or remove the key")


def _build_section(cls, raw: dict, section: str, where) -> Any:
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(f"section {section!r} must be a mapping, got {type(raw).__name__}", path=where,
                          fix=f"write {section}: followed by indented key: value lines")
    kwargs = {}
    for key, value in raw.items():
        if key not in names:
            raise _unknown_key(section, str(key), names, where)
        try:
            kwargs[key] = _coerce(value, hints[key])
        except TypeError:
            raise ConfigError(f"{section}.{key} must be {_type_name(hints[key])}, got {_show(value)}", path=where,
                              fix=f"correct {section}.{key}") from None
        allowed = CHOICES.get((section, key))
        if allowed is not None and kwargs[key] not in allowed:
            raise ConfigError(f"{section}.{key} must be one of {', '.join(allowed)}, got {_show(value)}", path=where,
                              fix=f"set {section}.{key} to one of those")
    return cls(**kwargs)


def _check_values(cfg: Config, where) -> None:
    """Range checks that types cannot express."""
    def bad(key, msg, fix):
        return ConfigError(f"{key} {msg}", path=where, fix=fix)

    d, t, s = cfg.data, cfg.train, cfg.test
    if d.fps is not None and not d.fps > 0:
        raise bad("data.fps", f"must be positive or null, got {d.fps}", "set the video frame rate or null")
    if d.feature_stride is not None and not d.feature_stride > 0:
        raise bad("data.feature_stride", f"must be positive or null, got {d.feature_stride}",
                  "frames between features (null: from the features' features.json)")
    if d.feature_window is not None and not d.feature_window >= 0:
        raise bad("data.feature_window", f"must be >= 0 or null, got {d.feature_window}",
                  "frames per feature (null: from the features' features.json)")
    for key in ("short_side", "crop_size"):
        v = getattr(d, key)
        if v is not None and not v > 0:
            raise bad(f"data.{key}", f"must be a positive number of pixels or null, got {v}", "e.g. 256 and 224")
    if d.flow_videos is not None and d.videos is None:
        raise bad("data.flow_videos", "needs data.videos (the RGB videos)", "set data.videos or drop flow_videos")
    if d.fixed_length is not None and d.fixed_length <= 0:
        raise bad("data.fixed_length", f"must be positive or null, got {d.fixed_length}", "e.g. 100 or null")
    if not 0.0 <= d.window_overlap < 1.0:
        raise bad("data.window_overlap", f"must lie in [0, 1), got {d.window_overlap}", "e.g. 0.25")
    if d.crop_ratio is not None and not (len(d.crop_ratio) == 2 and 0 < d.crop_ratio[0] <= d.crop_ratio[1] <= 1):
        raise bad("data.crop_ratio", f"must be [low, high] with 0 < low <= high <= 1, got {d.crop_ratio}",
                  "e.g. [0.9, 1.0] or null")
    if not 0.0 <= d.train_window_overlap < 1.0:
        raise bad("data.train_window_overlap", f"must lie in [0, 1), got {d.train_window_overlap}", "e.g. 0.75")
    if d.max_length_gap < 0:
        raise bad("data.max_length_gap", f"must be >= 0, got {d.max_length_gap}", "e.g. 2")
    if not 0.0 <= d.trunc_thresh <= 1.0:
        raise bad("data.trunc_thresh", f"must lie in [0, 1], got {d.trunc_thresh}", "e.g. 0.5")
    if isinstance(t.cpu_amp, str) and t.cpu_amp != "auto":
        raise bad("train.cpu_amp", f"must be true, false or auto, got {_show(t.cpu_amp)}",
                  "auto: bfloat16 on a CPU with AMX / AVX512-BF16 units")
    for key in ("epochs", "batch_size"):
        if getattr(t, key) < 1:
            raise bad(f"train.{key}", f"must be >= 1, got {getattr(t, key)}", "use a positive integer")
    for key in ("lr", "weight_decay", "warmup_epochs", "min_lr", "num_workers", "eval_every", "seed"):
        if getattr(t, key) < 0:
            raise bad(f"train.{key}", f"must be >= 0, got {getattr(t, key)}", "use a non-negative value")
    if t.ema_decay is not None and not 0.0 <= t.ema_decay < 1.0:
        raise bad("train.ema_decay", f"must lie in [0, 1) or be null, got {t.ema_decay}", "e.g. 0.999")
    if t.clip_grad is not None and t.clip_grad < 0:
        raise bad("train.clip_grad", f"must be >= 0 or null, got {t.clip_grad}", "e.g. 1.0")
    if len(t.betas) != 2:
        raise bad("train.betas", f"must hold two numbers, got {t.betas}", "e.g. [0.9, 0.999]")
    if t.keep_checkpoints is not None and t.keep_checkpoints < 1:
        raise bad("train.keep_checkpoints", f"must be >= 1 or null, got {t.keep_checkpoints}", "e.g. 3")
    for prefix, lr in list(t.lr_groups.items()):
        try:
            t.lr_groups[prefix] = _coerce(lr, float)
        except TypeError:
            t.lr_groups[prefix] = -1.0
        if t.lr_groups[prefix] < 0:
            raise bad(f"train.lr_groups.{prefix}", f"must be a non-negative learning rate, got {_show(lr)}",
                      "write prefix: 1e-5")
    if s.batch_size < 1:
        raise bad("test.batch_size", f"must be >= 1, got {s.batch_size}", "e.g. 1")
    for key in ("pre_topk", "max_detections", "fusion_topk"):
        v = getattr(s, key)
        if v is not None and v < 1:
            raise bad(f"test.{key}", f"must be >= 1 or null, got {v}", "use a positive integer or null")
    if not s.sigma > 0:
        raise bad("test.sigma", f"must be positive, got {s.sigma}", "e.g. 0.5")
    if not 0.0 <= s.segmentation_beta <= 1.0:
        raise bad("test.segmentation_beta", f"must lie in [0, 1], got {s.segmentation_beta}",
                  "0.2 for MultiTHUMOS, 0.96 for Charades (1: detections only)")
    if not s.segmentation_sigma > 0:
        raise bad("test.segmentation_sigma", f"must be positive, got {s.segmentation_sigma}", "e.g. 3 feature steps")
    if s.segmentation_frames is not None and s.segmentation_frames < 1:
        raise bad("test.segmentation_frames", f"must be >= 1 or null, got {s.segmentation_frames}",
                  "null for every feature step, 25 for the Charades protocol")
    if not isinstance(s.tiou, str) and (not s.tiou or not all(0 <= x <= 1 for x in s.tiou)):
        raise bad("test.tiou", f"must be a preset or thresholds in [0, 1], got {s.tiou}", "e.g. thumos14")


def _resolve_paths(tree: dict, base: Path, only: set | None = None, keys=PATH_KEYS + CWD_PATH_KEYS) -> None:
    """Make the path ``keys`` of a raw config tree absolute against ``base`` (in place)."""
    def fix(v):
        if isinstance(v, str) and v and not os.path.isabs(os.path.expanduser(v)):
            return os.path.normpath(os.fspath(base / v))
        return os.path.expanduser(v) if isinstance(v, str) else v

    for section, key in keys:
        name = key if section is None else f"{section}.{key}"
        if only is not None and name not in only:
            continue
        node = tree
        for part in ([] if section is None else section.split(".")):
            node = node.get(part) if isinstance(node, dict) else None
        if not isinstance(node, dict) or node.get(key) is None:
            continue
        value = node[key]
        if isinstance(value, list):
            if key == "classes":
                continue  # a list of class names, not paths
            node[key] = [fix(v) for v in value]
        else:
            node[key] = fix(value)


def config_from_dict(tree: dict, *, where=None, defaults_fn: Callable[[str], dict] | None = None) -> Config:
    """Validate a raw nested dict (paths already resolved) into a :class:`Config`."""
    tree = _check_tree(tree, where)
    for key in tree:
        if key not in TOP_LEVEL:
            raise _unknown_key("", str(key), TOP_LEVEL, where)
    sections = {name: _build_section(cls, tree.get(name), name, where) for name, cls in SECTIONS.items()}

    raw_model = tree.get("model") or {}
    if not isinstance(raw_model, dict):
        raise ConfigError(f"section 'model' must be a mapping, got {type(raw_model).__name__}", path=where,
                          fix="write model: followed by name: and the model's keys")
    raw_model = dict(raw_model)
    name = raw_model.pop("name", ModelConfig.name)
    if not isinstance(name, str):
        raise ConfigError(f"model.name must be a string, got {_show(name)}", path=where,
                          fix="use one of asl, amnet, tags, sptad, pointtad, actionformer")
    defaults = (defaults_fn or model_defaults)(name)
    params = copy.deepcopy(defaults)
    for key, value in raw_model.items():
        if key not in defaults:
            raise _unknown_key("model", str(key), ["name", *defaults], where)
        params[key] = _like_default(value, defaults[key])
    if params.get("backbone") is not None:      # end-to-end: validated, every key filled in
        from .models.video_detector import BackboneConfig, backbone_config
        raw_backbone = params["backbone"]
        if not isinstance(raw_backbone, dict):
            raise ConfigError(f"model.backbone must be a mapping or null, got {_show(raw_backbone)}", path=where,
                              fix="write model.backbone: {weights: PATH, fusion: concat} or leave it out")
        names = [f.name for f in dataclasses.fields(BackboneConfig)]
        if all(k in names for k in raw_backbone):     # types first (backbone_config names an unknown key)
            raw_backbone = dataclasses.asdict(_build_section(BackboneConfig, raw_backbone, "model.backbone", where))
        params["backbone"] = dataclasses.asdict(backbone_config(raw_backbone, where))
    output_dir = tree.get("output_dir")
    if output_dir is not None and not isinstance(output_dir, str):
        raise ConfigError(f"output_dir must be a path, got {_show(output_dir)}", path=where, fix="write a directory")
    cfg = Config(data=sections["data"], model=ModelConfig(name, params), train=sections["train"],
                 test=sections["test"], output_dir=output_dir, source=None if where is None else os.fspath(where))
    _check_values(cfg, where)
    return cfg


def _read_yaml(path: Path) -> dict:
    if not path.exists():
        raise ConfigError("config file not found", path=path, fix="check the path")
    if path.is_dir():
        raise ConfigError("expected a config file, found a directory", path=path, fix="pass the YAML file")
    try:
        tree = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1} column {mark.column + 1}" if mark is not None else ""
        problem = getattr(e, "problem", None) or "syntax error"
        raise ConfigError(f"invalid YAML{where}: {problem}", path=path, fix="repair the YAML syntax") from None
    except UnicodeDecodeError:
        raise ConfigError("not a UTF-8 text file", path=path, fix="pass the YAML config file") from None
    except (ValueError, RecursionError) as e:          # an integer of 4300+ digits, or nested too deeply
        why = "nested too deeply" if isinstance(e, RecursionError) else str(e).split(":")[0]
        raise ConfigError(f"invalid YAML: {why}", path=path, fix="repair the YAML") from None
    return _check_tree(tree, path)


def _check_tree(tree, where) -> dict:
    """A config's top level is a mapping (an empty file is an empty one)."""
    if tree is None:
        return {}
    if not isinstance(tree, dict):
        raise ConfigError(f"a config must be a mapping of sections, got {type(tree).__name__}", path=where,
                          fix="write data:, model:, train:, test: sections and output_dir:")
    return tree


def configs_dir() -> Path:
    """The configs shipped with tadkit (``tadkit/_configs``: the source tree's ``configs/`` in a checkout,
    a copy in an installed wheel)."""
    return Path(__file__).resolve().parent / "_configs"


def shipped_config(path: Union[str, os.PathLike]) -> Path | None:
    """The shipped config a missing path names as in the source tree (``configs/asl/custom.yaml`` or
    ``asl/custom.yaml``), so the README's commands work from any folder once tadkit is installed."""
    parts = Path(path).parts
    if parts and parts[0] == "configs":
        parts = parts[1:]
    if len(parts) != 2 or ".." in parts:
        return None
    p = configs_dir().joinpath(*parts)
    return p if p.is_file() else None


def load_config(source: Union[str, os.PathLike, dict, Config, None] = None, overrides: Iterable[str] = (), *,
                defaults_fn: Callable[[str], dict] | None = None) -> Config:
    """Read, override and validate a configuration.

    Parameters
    ----------
    source : a YAML file, a nested dict (relative paths against the working directory), an
        existing :class:`Config` (overrides applied to a copy) or ``None`` (all defaults).
    overrides : ``key.sub=value`` strings, applied in order after the file.
    defaults_fn : ``name -> {key: default}`` for the model section (default
        :func:`tadkit.models.detector_defaults`); tests pass their own.
    """
    where = None
    if isinstance(source, Config):
        tree, where = source.to_dict(), source.source
    elif isinstance(source, dict):
        tree = copy.deepcopy(source)
        _resolve_paths(tree, Path.cwd())
    elif source is None:
        tree = {}
    else:
        path = Path(source)
        if not path.exists():
            path = shipped_config(path) or path
        tree = _read_yaml(path)
        where = os.fspath(path)
        _resolve_paths(tree, path.resolve().parent, keys=PATH_KEYS)
        _resolve_paths(tree, Path.cwd(), keys=CWD_PATH_KEYS)
    parsed = parse_overrides(overrides)
    new_name = [v for k, v in parsed if k == "model.name"]
    if isinstance(source, Config) and new_name and new_name[-1] != source.model.name:
        tree["model"] = {}      # a resolved config holds every key of its model: start from the new one's
    if parsed:
        touched = set()
        for key, value in parsed:
            head = key.split(".")[0]
            if head not in TOP_LEVEL:
                raise _unknown_key("", head, TOP_LEVEL, where)
            if head in SECTIONS or head == "model":
                if "." not in key:
                    raise ConfigError(f"override {key!r} names a whole section", path=where,
                                      fix=f"set one key at a time, e.g. {head}.KEY=value")
                if not isinstance(tree.get(head), dict):
                    tree[head] = {}
            _set_dotted(tree, key, value, where)
            touched.add(key)
        _resolve_paths(tree, Path.cwd(), only=touched)
    return config_from_dict(tree, where=where, defaults_fn=defaults_fn)


def save_config(cfg: Config, path) -> None:
    """Write the resolved config as YAML, atomically."""
    atomic_write_text(path, cfg.to_yaml())
