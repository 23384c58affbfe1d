"""End-to-end detection from frames: an I3D backbone in front of a detector (PointTAD, SP-TAD).

``model.backbone`` in a config (a mapping, keys of :class:`BackboneConfig`) turns a detector
that reads features into one trained from video: :class:`VideoDetector` runs the backbone on the
batch's ``frames`` (``(B, 3, L, H, W)`` uint8 from :class:`tadkit.data.frames.FrameDataset`; RGB
mapped to [-1, 1]), averages each endpoint over space, and hands the detector its usual batch
with ``feats`` filled in. Losses, predictions and post-processing are the detector's own.

Fusions (how backbone maps become detector input):

* ``concat`` (PointTAD): Mixed_4f and Mixed_5c, both at temporal stride 4 (the released
  PointTAD backbone pools Mixed_5a over space only), spatially averaged and concatenated on
  channels (832 + 1024). PointTAD projects each to 512 and sums them; its 1×1 input projection
  on the concatenation is that same map (one bias instead of two). One step = 4 frames.
* ``levels`` (SP-TAD): Mixed_3c, Mixed_4f and Mixed_5c at strides 2, 4, 8 frames (480, 832,
  1024 channels), spatially averaged, as the list SP-TAD's ``pyramid_input: backbone`` reads.
  One step = 1 frame.

Two-stream input (``two_stream: true``): a second I3D with 2 input channels reads the batch's
``flow`` ``(B, 2, L, H, W)``; its maps are concatenated after the RGB ones, per endpoint.

Memory: ``frozen_bn`` (default true, the usual practice with small video batches) keeps batch
norms in eval mode with frozen affine parameters; ``checkpoint`` recomputes each Inception
block in the backward pass. The backbone's learning rate is ``lr_mult`` (0.1) times
``train.lr`` unless ``train.lr_groups`` names ``backbone`` itself.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Optional

import torch
from torch import nn

from ..core.errors import ConfigError

__all__ = ["BackboneConfig", "VideoDetector", "FUSIONS", "backbone_config", "detector_inputs"]

FUSIONS = {
    "concat": (("Mixed_4f", "Mixed_5c"), 4),                 # (endpoints, frames per detector step)
    "levels": (("Mixed_3c", "Mixed_4f", "Mixed_5c"), 1),
}


@dataclass
class BackboneConfig:
    """``model.backbone``: the I3D in front of the detector."""

    name: str = "i3d"
    weights: Optional[str] = None          # RGB I3D weights (pickle of numpy arrays or rgb_imagenet.pt)
    flow_weights: Optional[str] = None     # flow I3D weights (two-stream)
    fusion: str = "concat"                 # concat (PointTAD) | levels (SP-TAD)
    two_stream: bool = False               # also a flow I3D on data.flow_videos
    width: float = 1.0                     # channel multiplier (tests; pretrained weights need 1.0)
    frozen_bn: bool = True
    checkpoint: bool = False               # gradient checkpointing per Inception block
    lr_mult: float = 0.1                   # backbone lr = lr_mult * train.lr

    @property
    def endpoints(self) -> tuple[str, ...]:
        return FUSIONS[self.fusion][0]

    @property
    def step_frames(self) -> int:
        return FUSIONS[self.fusion][1]


def backbone_config(raw, where=None) -> BackboneConfig | None:
    """``model.backbone`` (a mapping or None) validated into a :class:`BackboneConfig`."""
    if raw is None:
        return None
    if isinstance(raw, BackboneConfig):
        return raw
    if not isinstance(raw, dict):
        raise ConfigError(f"model.backbone must be a mapping or null, got {raw!r}", path=where,
                          fix="write model.backbone: {weights: PATH, fusion: concat} or leave it out")
    names = [f.name for f in dataclasses.fields(BackboneConfig)]
    unknown = [k for k in raw if k not in names]
    if unknown:
        raise ConfigError(f"unknown key model.backbone.{unknown[0]}", path=where,
                          fix=f"valid keys: {', '.join(names)}")
    cfg = BackboneConfig(**raw)
    if cfg.name != "i3d":
        raise ConfigError(f"model.backbone.name must be i3d, got {cfg.name!r}", path=where, fix="set name: i3d")
    if cfg.fusion not in FUSIONS:
        raise ConfigError(f"model.backbone.fusion must be one of {', '.join(FUSIONS)}, got {cfg.fusion!r}",
                          path=where, fix="concat for PointTAD, levels for SP-TAD")
    if not (isinstance(cfg.width, (int, float)) and cfg.width > 0) or not cfg.lr_mult >= 0:
        raise ConfigError("model.backbone.width must be > 0 and lr_mult >= 0", path=where,
                          fix="e.g. width: 1.0, lr_mult: 0.1")
    if cfg.two_stream is False and cfg.flow_weights is not None:
        raise ConfigError("model.backbone.flow_weights given without two_stream: true", path=where,
                          fix="set model.backbone.two_stream: true (and data.flow_videos) or drop flow_weights")
    return cfg


def _i3d(cfg: BackboneConfig, in_channels: int, weights):
    from .backbones.i3d import InceptionI3d, build_i3d
    kw = dict(in_channels=in_channels, final_endpoint="Mixed_5c", width=cfg.width, frozen_bn=cfg.frozen_bn,
              use_checkpoint=cfg.checkpoint, pool5a_temporal=cfg.fusion != "concat")
    model = build_i3d(weights, **kw) if weights is not None else InceptionI3d(**kw)
    if cfg.frozen_bn:
        model.freeze_batchnorm()
    return model


def detector_inputs(cfg: BackboneConfig) -> list[int]:
    """Channels the detector receives: one width (concat) or three level widths (levels)."""
    from .backbones.i3d import InceptionI3d
    probe = InceptionI3d(final_endpoint="Mixed_5c", width=cfg.width)
    widths = [probe.endpoint_channels(e) * (2 if cfg.two_stream else 1) for e in cfg.endpoints]
    return [sum(widths)] if cfg.fusion == "concat" else widths


class VideoDetector(nn.Module):
    """``backbone`` (I3D, RGB and optionally flow) + ``detector``; the detector contract on frame batches."""

    def __init__(self, detector: nn.Module, cfg: BackboneConfig):
        super().__init__()
        self.cfg = cfg
        self.backbone = nn.ModuleDict({"rgb": _i3d(cfg, 3, cfg.weights)})
        if cfg.two_stream:
            self.backbone["flow"] = _i3d(cfg, 2, cfg.flow_weights)
        self.detector = detector
        self._last_features = None          # (frames tensor, its features) of the last predict

    @property
    def step_frames(self) -> int:
        return self.cfg.step_frames

    def lr_multipliers(self) -> dict[str, float]:
        """Parameter-name prefix -> multiplier of ``train.lr`` (read by the optimiser builder)."""
        return {"backbone": float(self.cfg.lr_mult)}

    def features(self, batch: dict):
        """Detector input from ``frames`` (and ``flow``): ``(B, C, T)`` (concat) or three ``(B, C_l, L / s_l)``."""
        if "frames" not in batch:
            raise ConfigError("an end-to-end model needs frames in the batch (data.videos), got features",
                              fix="set data.videos to the video directory, or drop model.backbone")
        from .backbones.i3d import scale_frames
        device = next(self.parameters()).device
        streams = [("rgb", batch["frames"])]
        if self.cfg.two_stream:
            if "flow" not in batch:
                raise ConfigError("model.backbone.two_stream needs flow videos", fix="set data.flow_videos")
            streams.append(("flow", batch["flow"]))
        per_endpoint: dict[str, list[torch.Tensor]] = {e: [] for e in self.cfg.endpoints}
        for name, x in streams:
            x = scale_frames(x.to(device, non_blocking=True))                    # (B, C, L, H, W) in [-1, 1]
            maps = self.backbone[name](x, endpoints=self.cfg.endpoints)
            for e in self.cfg.endpoints:
                per_endpoint[e].append(maps[e].mean(dim=(3, 4)))                  # (B, C_e, L / s_e)
        levels = [torch.cat(per_endpoint[e], dim=1) for e in self.cfg.endpoints]
        if self.cfg.fusion == "levels":
            return levels
        steps = batch["masks"].shape[1]
        levels = [nn.functional.pad(m, (0, max(0, steps - m.shape[2])))[..., :steps] for m in levels]
        return torch.cat(levels, dim=1)                                           # (B, sum C, T)

    def _with_features(self, batch: dict, feats=None) -> dict:
        out = {k: v for k, v in batch.items() if k not in ("frames", "flow")}
        out["feats"] = self.features(batch) if feats is None else feats
        return out

    def forward(self, batch: dict) -> dict:
        self._last_features = None
        return self.detector(self._with_features(batch))

    @torch.no_grad()
    def predict(self, batch: dict):
        """The detector's predictions; the features are kept for a ``frame_scores`` call on the
        same batch (inference asks for both), so the backbone runs once."""
        out = self._with_features(batch)
        self._last_features = (batch.get("frames"), out["feats"])
        return self.detector.predict(out)

    @torch.no_grad()
    def frame_scores(self, batch: dict):
        fn = getattr(self.detector, "frame_scores", None)
        if fn is None:
            return None
        kept, self._last_features = self._last_features, None
        feats = kept[1] if kept is not None and kept[0] is batch.get("frames") else None
        return fn(self._with_features(batch, feats))
