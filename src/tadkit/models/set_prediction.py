"""Set prediction for query-based detectors (DETR, Carion et al. ECCV 2020): Hungarian matching and the set loss.

A query-based detector emits a fixed set of Q predictions per video, each a class distribution
and a segment. Training assigns every ground truth to exactly one prediction (bipartite
matching of least total cost); unmatched predictions are trained towards "no action".

**Matching cost** between prediction i and ground truth j (each term named and weighted)::

    C[i, j] = cost_class · class(i, j) + cost_l1 · |seg_i − seg_j|_1 + cost_iou · (1 − IoU(seg_i, seg_j))

* ``class`` is ``−p_i(c_j)`` with ``p = softmax`` over K classes + no-action (``class_cost="softmax"``,
  DETR), or the focal-style cost of sigmoid classifiers (``class_cost="focal"``, Deformable DETR):
  ``α (1 − p)^γ (−log p) − (1 − α) p^γ (−log(1 − p))`` at ``p = σ(logit_i(c_j))``;
* the L1 term compares ``(start, end)`` (``l1_format="se"``) or ``(centre, width)`` (``"cw"``)
  after dividing both segments by ``normalizer`` (e.g. the window length, so that costs and losses
  do not depend on the unit);
* the overlap term is ``1 − IoU`` (``iou_type="iou"``) or ``1 − GIoU`` (``"giou"``); it differs
  from ``−IoU`` by a constant per matched pair, so the assignment is the same.

Segments are ``[start, end]`` in any unit (feature units in tadkit's models). Matching is per
video with :func:`scipy.optimize.linear_sum_assignment`; a video without ground truth gets
empty index tensors (all its predictions are "no action").

**Set loss** (:class:`SetCriterion`), per decoder layer, each layer matched on its own:

* ``loss_ce``: softmax cross-entropy over all queries with the no-action class weighted
  ``eos_coef`` (DETR's weighted mean), or the sigmoid focal loss over all queries and classes
  (no-action = all-zero target) summed and divided by the number of ground truths. With
  ``class_target="iou"`` (softmax only) a matched query's target is soft: its ground truth's class
  with probability ``u``, no action with ``1 − u``, where ``u`` is the (detached) IoU of its segment
  with that ground truth, so that the class probability learns to rank detections by localisation
  quality (the IoU-aware classification of VarifocalNet / Stable-DINO, in softmax form); the
  weighted mean then divides by ``Σ_i Σ_c w_c y_ic``, which equals DETR's for hard targets;
* ``loss_l1`` and ``loss_iou``: summed over matched pairs, divided by the number of ground truths.

The number of ground truths is that of the batch, averaged over processes when
``torch.distributed`` is initialised (DETR's ``num_boxes``), at least 1. The last layer's
losses are named ``loss_ce``, ``loss_l1``, ``loss_iou``; those of intermediate layer ``i``
(0-based) get the suffix ``_i``; ``loss`` is ``Σ_layers weight_class·ce + weight_l1·l1 +
weight_iou·iou``.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from scipy.optimize import linear_sum_assignment
from torch import nn

from ..core.errors import ConfigError
from .losses import giou_loss_1d, iou_loss_1d, sigmoid_focal_loss

__all__ = ["HungarianMatcher", "SetCriterion", "se_to_cw", "cw_to_se", "pairwise_iou", "pairwise_giou",
           "num_targets", "matched_pairs", "CLASS_COSTS", "L1_FORMATS", "IOU_TYPES"]

CLASS_COSTS = ("softmax", "focal")
L1_FORMATS = ("se", "cw")
IOU_TYPES = ("iou", "giou")
_OVERLAP_LOSSES = {"iou": iou_loss_1d, "giou": giou_loss_1d}


def _choice(name: str, value: str, allowed: Sequence[str]) -> str:
    if value not in allowed:
        raise ConfigError(f"unknown {name} {value!r}", fix=f"use one of {', '.join(allowed)}")
    return value


# ---------------------------------------------------------------- segment helpers
def se_to_cw(segments: torch.Tensor) -> torch.Tensor:
    """(…, 2) ``[start, end]`` → ``[centre, width]``."""
    s, e = segments.unbind(-1)
    return torch.stack((0.5 * (s + e), e - s), dim=-1)


def cw_to_se(segments: torch.Tensor) -> torch.Tensor:
    """(…, 2) ``[centre, width]`` → ``[start, end]``."""
    c, w = segments.unbind(-1)
    return torch.stack((c - 0.5 * w, c + 0.5 * w), dim=-1)


def pairwise_iou(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """IoU of every segment of ``a`` (N, 2) with every segment of ``b`` (M, 2): (N, M)."""
    return 1.0 - iou_loss_1d(a[:, None, :], b[None, :, :])


def pairwise_giou(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Generalised IoU of every pair: (N, M), in [−1, 1]."""
    return 1.0 - giou_loss_1d(a[:, None, :], b[None, :, :])


def _l1_coords(segments: torch.Tensor, fmt: str) -> torch.Tensor:
    return se_to_cw(segments) if fmt == "cw" else segments


def _normalizer(normalizer, batch: int, device, dtype) -> torch.Tensor:
    """``normalizer`` (None, a number or a (B,) tensor) as a (B,) tensor."""
    if normalizer is None:
        return torch.ones(batch, device=device, dtype=dtype)
    return torch.as_tensor(normalizer, device=device, dtype=dtype).reshape(-1).expand(batch)


# ---------------------------------------------------------------- matcher
class HungarianMatcher:
    """Optimal one-to-one assignment of predictions to ground truths; see the module docstring.

    ``cost_class``, ``cost_l1``, ``cost_iou``: weights of the three cost terms (not all zero).
    ``class_cost``: ``softmax`` (logits (B, Q, K + 1), last = no action) or ``focal`` (logits
    (B, Q, K), sigmoid; ``focal_alpha``, ``focal_gamma``). ``l1_format``: ``se`` or ``cw``.
    ``iou_type``: ``iou`` or ``giou``.
    """

    def __init__(self, cost_class: float = 1.0, cost_l1: float = 5.0, cost_iou: float = 2.0, *,
                 class_cost: str = "softmax", l1_format: str = "se", iou_type: str = "iou",
                 focal_alpha: float = 0.25, focal_gamma: float = 2.0):
        for name, w in (("cost_class", cost_class), ("cost_l1", cost_l1), ("cost_iou", cost_iou)):
            if not w >= 0:
                raise ConfigError(f"matcher {name} must be >= 0, got {w}", fix=f"set {name} to a weight >= 0")
        if cost_class == 0 and cost_l1 == 0 and cost_iou == 0:
            raise ConfigError("all matching costs are 0", fix="give cost_class, cost_l1 or cost_iou a positive weight")
        self.cost_class, self.cost_l1, self.cost_iou = float(cost_class), float(cost_l1), float(cost_iou)
        self.class_cost = _choice("class_cost", class_cost, CLASS_COSTS)
        self.l1_format = _choice("l1_format", l1_format, L1_FORMATS)
        self.iou_type = _choice("iou_type", iou_type, IOU_TYPES)
        self.focal_alpha, self.focal_gamma = float(focal_alpha), float(focal_gamma)

    def class_costs(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Class cost of every prediction (P, K') against every ground-truth label (M,): (P, M)."""
        if self.class_cost == "softmax":
            return -logits.float().softmax(-1)[:, labels]
        p = logits.float().sigmoid()[:, labels]  # (P, M)
        a, g, eps = self.focal_alpha, self.focal_gamma, 1e-8
        positive = a * (1 - p) ** g * -(p + eps).log()
        negative = (1 - a) * p ** g * -(1 - p + eps).log()
        return positive - negative

    @torch.no_grad()
    def cost_matrices(self, logits: torch.Tensor, segments: torch.Tensor, gt_segments: Sequence[torch.Tensor],
                      gt_labels: Sequence[torch.Tensor], normalizer=None) -> list[torch.Tensor]:
        """Per video the (Q, N_b) matrix of total matching costs (float32, on the CPU)."""
        B, Q = logits.shape[:2]
        device = logits.device
        sizes = [int(len(l)) for l in gt_labels]
        if sum(sizes) == 0:
            return [torch.zeros(Q, 0) for _ in sizes]
        norm = _normalizer(normalizer, B, device, torch.float32)  # (B,)
        tgt_labels = torch.cat([l.to(device=device, dtype=torch.long).reshape(-1) for l in gt_labels])  # (M,)
        tgt_seg = torch.cat([s.to(device=device, dtype=torch.float32).reshape(-1, 2) for s in gt_segments])  # (M, 2)
        tgt_norm = torch.cat([norm[b].expand(n) for b, n in enumerate(sizes)])  # (M,)
        out_seg = segments.float().flatten(0, 1)  # (B·Q, 2)
        out_norm = norm.repeat_interleave(Q)  # (B·Q,)
        cost = self.cost_class * self.class_costs(logits.flatten(0, 1), tgt_labels)  # (B·Q, M)
        if self.cost_l1:
            a = _l1_coords(out_seg / out_norm[:, None], self.l1_format)
            b = _l1_coords(tgt_seg / tgt_norm[:, None], self.l1_format)
            cost = cost + self.cost_l1 * torch.cdist(a, b, p=1)
        if self.cost_iou:
            cost = cost + self.cost_iou * _OVERLAP_LOSSES[self.iou_type](out_seg[:, None, :], tgt_seg[None, :, :])
        cost = torch.nan_to_num(cost, nan=1e8, posinf=1e8, neginf=-1e8).view(B, Q, -1).cpu()  # (B, Q, M)
        return [c[b] for b, c in enumerate(cost.split(sizes, dim=-1))]

    @torch.no_grad()
    def __call__(self, logits: torch.Tensor, segments: torch.Tensor, gt_segments: Sequence[torch.Tensor],
                 gt_labels: Sequence[torch.Tensor], normalizer=None) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Per video ``(query_idx, gt_idx)`` LongTensors (on ``logits.device``) of equal length ``min(Q, N_b)``.

        logits (B, Q, K') · segments (B, Q, 2) ``[start, end]`` · gt_segments [(N_b, 2)] in the same unit ·
        gt_labels [(N_b,)] · normalizer: None, a number or (B,) per-video divisor of the segments for the L1 term.
        """
        out = []
        for c in self.cost_matrices(logits, segments, gt_segments, gt_labels, normalizer):
            rows, cols = linear_sum_assignment(c.numpy()) if c.shape[1] else (np.zeros(0), np.zeros(0))
            out.append((torch.as_tensor(rows, dtype=torch.long, device=logits.device),
                        torch.as_tensor(cols, dtype=torch.long, device=logits.device)))
        return out


# ---------------------------------------------------------------- losses
def num_targets(gt_labels: Sequence[torch.Tensor], device) -> torch.Tensor:
    """Ground truths in the batch, averaged over processes when torch.distributed is initialised; at least 1."""
    n = torch.tensor(float(sum(int(len(l)) for l in gt_labels)), device=device)
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.all_reduce(n)
        n = n / torch.distributed.get_world_size()
    return n.clamp(min=1.0)


def matched_pairs(indices: Sequence[tuple[torch.Tensor, torch.Tensor]]) -> tuple[torch.Tensor, torch.Tensor]:
    """(batch_idx, query_idx) of all matched predictions, videos concatenated."""
    batch_idx = torch.cat([torch.full_like(q, b) for b, (q, _) in enumerate(indices)])
    query_idx = torch.cat([q for q, _ in indices])
    return batch_idx, query_idx


class SetCriterion(nn.Module):
    """DETR's set loss over every decoder layer (see the module docstring).

    ``num_classes`` K; ``matcher`` a :class:`HungarianMatcher`; ``class_loss``: ``ce`` (softmax over
    K + 1, no-action weight ``eos_coef``) or ``focal`` (sigmoid over K; ``focal_alpha``, ``focal_gamma``);
    ``l1_format`` / ``iou_type`` as for the matcher; ``weight_class``, ``weight_l1``, ``weight_iou`` weigh
    the terms in ``loss``; ``aux_loss`` False keeps only the last layer; ``class_target``: ``label``
    (DETR) or ``iou`` (soft targets by the matched IoU, ``ce`` only).
    """

    def __init__(self, num_classes: int, matcher: HungarianMatcher, *, class_loss: str = "ce",
                 eos_coef: float = 0.1, focal_alpha: float = 0.25, focal_gamma: float = 2.0,
                 l1_format: str = "se", iou_type: str = "iou", weight_class: float = 1.0, weight_l1: float = 5.0,
                 weight_iou: float = 2.0, aux_loss: bool = True, class_target: str = "label"):
        super().__init__()
        if num_classes < 1:
            raise ConfigError(f"num_classes must be >= 1, got {num_classes}")
        if not 0 <= eos_coef:
            raise ConfigError(f"eos_coef must be >= 0, got {eos_coef}", fix="e.g. 0.1")
        self.num_classes = num_classes
        self.matcher = matcher
        self.class_loss = _choice("class_loss", class_loss, ("ce", "focal"))
        self.class_target = _choice("class_target", class_target, ("label", "iou"))
        if self.class_target == "iou" and self.class_loss != "ce":
            raise ConfigError("class_target 'iou' needs the softmax class loss", fix="set class_loss: ce")
        self.focal_alpha, self.focal_gamma = float(focal_alpha), float(focal_gamma)
        self.l1_format = _choice("l1_format", l1_format, L1_FORMATS)
        self.iou_type = _choice("iou_type", iou_type, IOU_TYPES)
        self.weights = {"ce": float(weight_class), "l1": float(weight_l1), "iou": float(weight_iou)}
        self.aux_loss = bool(aux_loss)
        empty_weight = torch.ones(num_classes + 1)
        empty_weight[-1] = eos_coef
        self.register_buffer("empty_weight", empty_weight, persistent=False)  # (K + 1,)

    def loss_class(self, logits: torch.Tensor, gt_labels: Sequence[torch.Tensor],
                   indices: Sequence[tuple[torch.Tensor, torch.Tensor]], num_gt: torch.Tensor,
                   quality: torch.Tensor | None = None) -> torch.Tensor:
        """Classification loss over all queries; logits (B, Q, K + 1) for ``ce``, (B, Q, K) for ``focal``.

        ``quality`` (P,): the matched pairs' IoU, in the order of :func:`matched_pairs`, for ``class_target="iou"``.
        """
        B, Q = logits.shape[:2]
        target = torch.full((B, Q), self.num_classes, dtype=torch.long, device=logits.device)  # (B, Q) no action
        batch_idx, query_idx = matched_pairs(indices)
        target[batch_idx, query_idx] = torch.cat([l.to(logits.device, torch.long).reshape(-1)[j]
                                                  for l, (_, j) in zip(gt_labels, indices)])
        if self.class_target == "iou":   # softmax only (checked in __init__)
            if quality is None:
                raise ValueError("class_target 'iou' needs the matched pairs' IoU (quality)")
            probs = F.one_hot(target, self.num_classes + 1).float()  # (B, Q, K + 1)
            u = quality.detach().float().clamp(0.0, 1.0)  # (P,)
            probs[batch_idx, query_idx] = probs[batch_idx, query_idx] * u[:, None]
            probs[batch_idx, query_idx, self.num_classes] = 1.0 - u
            weighted = probs * self.empty_weight.to(logits.device)  # (B, Q, K + 1): w_c · y_c
            log_p = logits.float().log_softmax(-1)
            return -(weighted * log_p).sum() / weighted.sum().clamp(min=1e-12)
        if self.class_loss == "ce":
            return F.cross_entropy(logits.float().transpose(1, 2), target, self.empty_weight.to(logits.device))
        onehot = F.one_hot(target, self.num_classes + 1)[..., :-1].float()  # (B, Q, K)
        return sigmoid_focal_loss(logits, onehot, self.focal_alpha, self.focal_gamma, reduction="sum") / num_gt

    @staticmethod
    def matched_segments(segments: torch.Tensor, gt_segments: Sequence[torch.Tensor],
                         indices: Sequence[tuple[torch.Tensor, torch.Tensor]]):
        """``(batch_idx (P,), predicted (P, 2), ground truth (P, 2))`` of the matched pairs, float32."""
        batch_idx, query_idx = matched_pairs(indices)
        src = segments.float()[batch_idx, query_idx]
        tgt = torch.cat([s.to(segments.device, torch.float32).reshape(-1, 2)[j]
                         for s, (_, j) in zip(gt_segments, indices)])
        return batch_idx, src, tgt

    def loss_segments(self, segments: torch.Tensor, gt_segments: Sequence[torch.Tensor],
                      indices: Sequence[tuple[torch.Tensor, torch.Tensor]], num_gt: torch.Tensor,
                      normalizer=None) -> tuple[torch.Tensor, torch.Tensor]:
        """(L1, 1 − IoU/GIoU) summed over matched pairs / ``num_gt``; segments (B, Q, 2) ``[start, end]``."""
        B = segments.shape[0]
        norm = _normalizer(normalizer, B, segments.device, torch.float32)  # (B,)
        batch_idx, src, tgt = self.matched_segments(segments, gt_segments, indices)
        scale = norm[batch_idx][:, None]  # (P, 1)
        l1 = F.l1_loss(_l1_coords(src / scale, self.l1_format), _l1_coords(tgt / scale, self.l1_format),
                       reduction="sum")
        overlap = _OVERLAP_LOSSES[self.iou_type](src, tgt, reduction="sum")
        return l1 / num_gt, overlap / num_gt

    def layer_losses(self, logits: torch.Tensor, segments: torch.Tensor, gt_segments, gt_labels, num_gt,
                     normalizer=None) -> dict[str, torch.Tensor]:
        """``{"ce", "l1", "iou"}`` of one decoder layer, matched on its own."""
        indices = self.matcher(logits.detach(), segments.detach(), gt_segments, gt_labels, normalizer)
        quality = None
        if self.class_target == "iou":
            _, src, tgt = self.matched_segments(segments.detach(), gt_segments, indices)
            quality = 1.0 - iou_loss_1d(src, tgt)  # (P,)
        ce = self.loss_class(logits, gt_labels, indices, num_gt, quality)
        l1, iou = self.loss_segments(segments, gt_segments, indices, num_gt, normalizer)
        return {"ce": ce, "l1": l1, "iou": iou}

    def forward(self, layers: Sequence[dict], gt_segments: Sequence[torch.Tensor], gt_labels: Sequence[torch.Tensor],
                normalizer=None) -> dict[str, torch.Tensor]:
        """Named losses; ``layers`` holds ``{"logits", "segments"}`` per decoder layer, first to last."""
        if not layers:
            raise ValueError("SetCriterion needs the outputs of at least one decoder layer")
        num_gt = num_targets(gt_labels, layers[-1]["logits"].device)
        chosen = list(enumerate(layers)) if self.aux_loss else [(len(layers) - 1, layers[-1])]
        out: dict[str, torch.Tensor] = {}
        total = layers[-1]["logits"].new_zeros((), dtype=torch.float32)
        for i, layer in chosen:
            parts = self.layer_losses(layer["logits"], layer["segments"], gt_segments, gt_labels, num_gt, normalizer)
            suffix = "" if i == len(layers) - 1 else f"_{i}"
            for k, v in parts.items():
                out[f"loss_{k}{suffix}"] = v
                total = total + self.weights[k] * v
        out["loss"] = total
        return out
