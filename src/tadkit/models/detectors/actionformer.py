"""ActionFormer (Zhang, Wu, Li, ECCV 2022): a one-stage anchor-free detector on a local-attention pyramid.

Read top to bottom like the paper:

1. **Encoder.** A conv embedding projects the features, transformer blocks with local-window
   self-attention encode them, and blocks that downsample ×2 build a 6-level pyramid; a light
   neck (LayerNorm, or a top-down FPN) follows.
2. **Decoder.** Every pyramid step is a candidate point. Heads shared across levels predict
   class scores (sigmoid) and the distances (left, right) from the point to the action
   boundaries, in units of the level's stride.
3. **Training.** Centre sampling assigns each point to at most one ground truth (the shortest
   qualifying); losses are the sigmoid focal loss over all valid points and the DIoU loss over
   positive points, both divided by an EMA of the number of positives.
4. **Inference.** Scores above a threshold, the top-k per level, decoded to segments
   ``[t − d_left·s, t + d_right·s]``; NMS is left to :mod:`tadkit.postprocess`.

Defaults are the published THUMOS14 (I3D) settings. Every piece is a method so that subclasses
(ASL) can replace one step: ``encode``, ``heads``, ``assign``, ``compute_losses`` (with
``classification_loss``, ``regression_loss``, ``normalizer``), ``decode``.
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from ...core.errors import ConfigError
from ...core.instances import Instances
from ..layers import (NECKS, ClassificationHead, ConvTransformerBackbone, PointGenerator, RegressionHead,
                      build_neck, conv_inputs, model_inputs)
from ..losses import IOU_LOSSES, Targets, assign_batch, offsets_to_segments, sigmoid_focal_loss

THUMOS14_REGRESSION_RANGES = ((0, 4), (4, 8), (8, 16), (16, 32), (32, 64), (64, math.inf))


def _require(condition: bool, message: str, fix: str | None = None) -> None:
    if not condition:
        raise ConfigError(message, fix=fix)


class ActionFormer(nn.Module):
    """ActionFormer detector; see the module docstring. Hyperparameters only in the constructor.

    Encoder: ``embed_dim``, ``embed_kernel_size``, ``embed_layers``, ``embed_with_ln``, ``stem_layers``,
    ``branch_layers`` (levels = branch_layers + 1), ``scale_factor``, ``num_heads``, ``window_size`` (odd, one
    or one per level; None = global attention), ``mlp_ratio``, dropouts, ``channel_attention_theta`` (ASL's
    temporal/channel mix, 0 = off), ``neck`` (``identity`` | ``fpn``), ``fpn_dim``, ``fpn_with_ln``.
    Heads: ``head_dim``, ``head_num_convs``, ``head_kernel_size``, ``head_with_ln``, ``cls_prior_prob``,
    ``reg_bias_init`` (1.0; the released code's 0.0 can leave a boundary output dead from the first step, see
    :class:`~tadkit.models.layers.RegressionHead`),
    ``regression_ranges`` (one [lo, hi] per level, feature steps). Training: ``center_sample_radius``
    (None = whole segment), ``reg_loss`` (``diou`` | ``giou`` | ``iou``), ``reg_loss_weight``, ``focal_alpha``,
    ``focal_gamma``, ``label_smoothing``, ``init_loss_norm``, ``loss_norm_momentum``. Inference:
    ``pre_nms_thresh``, ``pre_nms_topk`` (per level), ``duration_thresh`` (feature steps).
    ``max_seq_len`` is the training window length; the model itself accepts any length.
    """

    def __init__(self, num_classes: int, input_dim: int, max_seq_len: int = 2304, *,
                 # 1. encoder
                 embed_dim: int = 512, embed_kernel_size: int = 3, embed_layers: int = 2, embed_with_ln: bool = True,
                 stem_layers: int = 2, branch_layers: int = 5, scale_factor: int = 2, num_heads: int = 4,
                 window_size: int | None | Sequence[int | None] = 19, mlp_ratio: float = 4.0,
                 attn_dropout: float = 0.0, proj_dropout: float = 0.0, path_dropout: float = 0.1,
                 channel_attention_theta: float = 0.0,
                 neck: str = "identity", fpn_dim: int = 512, fpn_with_ln: bool = True,
                 # 2. decoder heads
                 head_dim: int = 512, head_num_convs: int = 2, head_kernel_size: int = 3, head_with_ln: bool = True,
                 cls_prior_prob: float = 0.01, reg_bias_init: float = 1.0,
                 regression_ranges: Sequence[Sequence[float]] = THUMOS14_REGRESSION_RANGES,
                 # 3. training
                 center_sample_radius: float | None = 1.5, reg_loss: str = "diou", reg_loss_weight: float = 1.0,
                 focal_alpha: float = 0.25, focal_gamma: float = 2.0, label_smoothing: float = 0.0,
                 init_loss_norm: float = 100.0, loss_norm_momentum: float = 0.9,
                 # 4. inference
                 pre_nms_thresh: float = 1e-3, pre_nms_topk: int = 2000, duration_thresh: float = 0.05):
        super().__init__()
        _require(num_classes >= 1, f"num_classes must be >= 1, got {num_classes}")
        _require(input_dim >= 1, f"input_dim must be >= 1, got {input_dim}")
        _require(max_seq_len >= 1, f"max_seq_len must be >= 1, got {max_seq_len}")
        _require(neck in NECKS, f"unknown neck {neck!r}", f"use one of {', '.join(NECKS)}")
        _require(reg_loss in IOU_LOSSES, f"unknown reg_loss {reg_loss!r}", f"use one of {', '.join(IOU_LOSSES)}")
        _require(center_sample_radius is None or center_sample_radius > 0,
                 f"center_sample_radius must be > 0 or null, got {center_sample_radius}")
        _require(reg_loss_weight >= 0, f"reg_loss_weight must be >= 0, got {reg_loss_weight}")
        _require(0 <= label_smoothing < 1, f"label_smoothing must be in [0, 1), got {label_smoothing}")
        _require(init_loss_norm > 0, f"init_loss_norm must be > 0, got {init_loss_norm}")
        _require(0 <= loss_norm_momentum < 1, f"loss_norm_momentum must be in [0, 1), got {loss_norm_momentum}")
        _require(pre_nms_topk >= 1, f"pre_nms_topk must be >= 1, got {pre_nms_topk}")
        _require(0 < cls_prior_prob < 1, f"cls_prior_prob must be in (0, 1), got {cls_prior_prob}")
        self.num_classes = num_classes
        self.input_dim = input_dim
        self.max_seq_len = max_seq_len
        num_levels = branch_layers + 1

        # 1. encoder: conv embedding -> local-attention transformer pyramid -> neck
        self.backbone = ConvTransformerBackbone(
            input_dim, embed_dim, num_heads, embed_kernel_size, embed_layers, embed_with_ln, stem_layers,
            branch_layers, scale_factor, window_size, mlp_ratio, attn_dropout, proj_dropout, path_dropout,
            channel_attention_theta)
        self.neck = build_neck(neck, [embed_dim] * num_levels, fpn_dim, fpn_with_ln, scale_factor)
        self.pad_multiple = scale_factor ** (num_levels - 1)  # every level then has an integer length

        # 2. decoder: points on every level, shared classification / regression heads
        self.point_generator = PointGenerator(PointGenerator.level_strides(scale_factor, num_levels),
                                              regression_ranges)
        self.cls_head = ClassificationHead(fpn_dim, head_dim, num_classes, head_num_convs, head_kernel_size,
                                           head_with_ln, cls_prior_prob)
        self.reg_head = RegressionHead(fpn_dim, head_dim, num_levels, head_num_convs, head_kernel_size,
                                       head_with_ln, reg_bias_init)

        # 3. training
        self.center_sample_radius = center_sample_radius
        self.reg_loss_fn = IOU_LOSSES[reg_loss]
        self.reg_loss_weight = reg_loss_weight
        self.focal_alpha, self.focal_gamma = focal_alpha, focal_gamma
        self.label_smoothing = label_smoothing
        self.loss_norm_momentum = loss_norm_momentum
        self.register_buffer("loss_normalizer", torch.tensor(float(init_loss_norm)))  # EMA of #positives

        # 4. inference
        self.pre_nms_thresh = pre_nms_thresh
        self.pre_nms_topk = pre_nms_topk
        self.duration_thresh = duration_thresh

    # ---------------------------------------------------------------- 1. encoder
    def preprocess(self, batch: dict) -> tuple[torch.Tensor, torch.Tensor]:
        """Features (B, C, T') and masks (B, T') on the model's device, padded to ``pad_multiple``.

        Invalid steps are zeroed, so nothing the collate left in the padding reaches the network. Steps
        after the last valid step of every video are cut first (down to a multiple of ``pad_multiple``):
        they change no output at a valid point (the masked blocks' invariant), and a batch padded to a
        fixed length (a loader's ``pad_to``, the official release's ``max_seq_len``) then costs what the
        batch of its videos as they are costs. Outputs cover the ``T'`` steps kept.
        """
        feats, masks = batch["feats"], batch["masks"]
        length = feats.shape[-1]
        if isinstance(masks, torch.Tensor) and masks.ndim == 2 and masks.shape[-1] == length and length:
            valid = masks.any(0).nonzero()
            used = int(valid[-1]) + 1 if len(valid) else 1            # the last valid step of any video, + 1
            used += -used % self.pad_multiple
            if used < length:
                batch = {**batch, "feats": feats[..., :used], "masks": masks[:, :used]}
                length = used
        return model_inputs(batch, self.input_dim, self.loss_normalizer.device, length + -length % self.pad_multiple)

    def encode(self, feats: torch.Tensor, masks: torch.Tensor) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """Pyramid features [(B, C, T_l)] and masks [(B, T_l)]."""
        return self.neck(*self.backbone(feats, masks))

    # ---------------------------------------------------------------- 2. decoder
    def heads(self, fpn_feats: list[torch.Tensor], fpn_masks: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """Class logits (B, P, K) and distances (B, P, 2) in stride units, levels concatenated."""
        cls_logits = torch.cat(self.cls_head(fpn_feats, fpn_masks), dim=1)  # (B, P, K)
        offsets = torch.cat(self.reg_head(fpn_feats, fpn_masks), dim=1)  # (B, P, 2)
        return cls_logits, offsets

    def run(self, batch: dict) -> dict:
        """All network outputs: fpn_feats, conv_feats (fpn_feats as the head convs read them), fpn_masks,
        points (P, 4), valid (B, P), cls_logits, offsets."""
        fpn_feats, fpn_masks = self.encode(*self.preprocess(batch))
        conv_feats = conv_inputs(fpn_feats)   # cast once under autocast for every head conv that reads them
        cls_logits, offsets = self.heads(conv_feats, fpn_masks)
        points = self.point_generator([x.shape[-1] for x in fpn_feats], device=cls_logits.device)  # (P, 4)
        return {"fpn_feats": fpn_feats, "conv_feats": conv_feats, "fpn_masks": fpn_masks, "points": points,
                "valid": torch.cat(fpn_masks, dim=1), "cls_logits": cls_logits, "offsets": offsets}

    def forward(self, batch: dict) -> dict[str, torch.Tensor]:
        """Named losses of a training batch; ``loss`` is the total to minimise."""
        return self.compute_losses(self.run(batch), batch)

    # ---------------------------------------------------------------- 3. training
    def assign(self, outputs: dict, batch: dict) -> Targets:
        """Centre-sampling targets: cls (B, P, K), reg (B, P, 2), matched (B, P)."""
        return assign_batch(outputs["points"], batch["segments"], batch["labels"], self.num_classes,
                            self.center_sample_radius)

    def normalizer(self, num_positives: torch.Tensor) -> torch.Tensor:
        """Loss normaliser: EMA of the positive count (updated in training mode only).

        With N processes the EMA follows the positives of the global batch (summed over processes, so
        every process holds the same value) and each process divides by EMA / N: data parallelism
        averages the processes' gradients, so the update is the one process's of the global batch.
        """
        world = 1
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            world = torch.distributed.get_world_size()
        if self.training:
            with torch.no_grad():
                n = num_positives.detach().to(self.loss_normalizer).clone()
                if world > 1:
                    torch.distributed.all_reduce(n)
                m = self.loss_norm_momentum
                self.loss_normalizer.mul_(m).add_((1 - m) * n.clamp(min=1))
        return self.loss_normalizer.detach() / world

    def classification_loss(self, outputs: dict, targets: Targets, weight: torch.Tensor | None = None) -> torch.Tensor:
        """Summed focal loss over valid points; ``weight`` (B, P) or (B, P, K) scales each point."""
        valid = outputs["valid"]
        cls_targets = targets.cls[valid] * (1 - self.label_smoothing) + self.label_smoothing / (self.num_classes + 1)
        return sigmoid_focal_loss(outputs["cls_logits"][valid], cls_targets, self.focal_alpha, self.focal_gamma,
                                  weight=None if weight is None else self._per_point(weight, valid),
                                  reduction="sum")

    def regression_loss(self, outputs: dict, targets: Targets, weight: torch.Tensor | None = None) -> torch.Tensor:
        """Summed IoU-family loss over positive points; ``weight`` (B, P) scales each point."""
        positive = outputs["valid"] & (targets.matched >= 0)
        loss = self.reg_loss_fn(offsets_to_segments(outputs["offsets"][positive]),
                                offsets_to_segments(targets.reg[positive]))
        return (loss if weight is None else loss * weight[positive]).sum()

    @staticmethod
    def _per_point(weight: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        weight = weight[valid]  # (N,) or (N, K)
        return weight[:, None] if weight.ndim == 1 else weight

    def compute_losses(self, outputs: dict, batch: dict) -> dict[str, torch.Tensor]:
        """``cls_loss`` + ``reg_loss_weight`` · ``reg_loss``, each divided by the positive-count EMA."""
        targets = self.assign(outputs, batch)
        norm = self.normalizer((outputs["valid"] & (targets.matched >= 0)).sum())
        cls_loss = self.classification_loss(outputs, targets) / norm
        reg_loss = self.regression_loss(outputs, targets) / norm
        return {"loss": cls_loss + self.reg_loss_weight * reg_loss, "cls_loss": cls_loss, "reg_loss": reg_loss}

    # ---------------------------------------------------------------- 4. inference
    @torch.no_grad()
    def predict(self, batch: dict) -> list[Instances]:
        """Candidate detections per batch item, in feature units relative to the window start (no NMS)."""
        return self.decode(self.run(batch))

    @torch.no_grad()
    def decode(self, outputs: dict) -> list[Instances]:
        """Score threshold, per-level top-k, distances → segments, short-segment filter."""
        points = outputs["points"]  # (P, 4)
        probs = outputs["cls_logits"].sigmoid() * outputs["valid"][..., None]  # (B, P, K)
        offsets = outputs["offsets"]  # (B, P, 2)
        level_sizes = [m.shape[1] for m in outputs["fpn_masks"]]
        results = []
        for b in range(probs.shape[0]):
            point_idx, labels, scores = [], [], []
            start = 0
            for size in level_sizes:
                level = probs[b, start:start + size].flatten()  # (T_l * K,)
                top, idx = level.topk(min(self.pre_nms_topk, level.numel()))
                keep = top > self.pre_nms_thresh
                point_idx.append(start + idx[keep] // self.num_classes)
                labels.append(idx[keep] % self.num_classes)
                scores.append(top[keep])
                start += size
            point_idx, labels, scores = torch.cat(point_idx), torch.cat(labels), torch.cat(scores)
            t, stride = points[point_idx, 0], points[point_idx, 3]
            d = offsets[b, point_idx]  # (N, 2)
            segments = torch.stack((t - d[:, 0] * stride, t + d[:, 1] * stride), dim=1)  # (N, 2)
            keep = (segments[:, 1] - segments[:, 0]) > self.duration_thresh
            results.append(Instances(segments[keep].double().cpu().numpy(), labels[keep].cpu().numpy(),
                                     scores[keep].double().cpu().numpy()).sorted_by_score())
        return results


DETECTOR = ActionFormer
