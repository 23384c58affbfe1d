"""ASL: Action Sensitivity Learning for temporal action localization (Shao et al., ICCV 2023).

Read top to bottom like the paper (``papers/asl.txt``):

* **3.1 Feature encoder.** ActionFormer's local-attention pyramid whose attention runs a
  temporal branch (Eq. 1) and a channel branch (Eq. 2) in parallel, mixed as
  ``f' = (1 − θ) f'_ta + θ f'_ca`` (``channel_attention_theta`` θ = 0.2).
* **3.2 Action Sensitivity Evaluator (ASE).** For every positive point, assigned to a ground
  truth of class c̄, its signed distance to the ground-truth centre normalised by the length,
  ``d ∈ [−0.5, 0.5]``:

  - class level (:class:`ClassLevelSensitivity`): learnable per-class Gaussians,
    ``p_cls = exp(−(d − μ_c)² / 2σ_c²)`` (Eq. 3) and ``p_loc = p_sot + p_eot`` (Eq. 4),
    initialised μ = 0 (cls), μ = −0.5 / +0.5 (start / end), σ = 1, σ clamped at 5;
  - instance level (:class:`InstanceLevelEvaluator`): Φ_cls, Φ_loc = temporal conv → FC →
    sigmoid on the pyramid features (Eq. 5), trained by MSE (Eq. 7) towards the quality of the
    point's own prediction, sigmoid of its ground-truth-class logit and the tIoU of its segment
    with the ground truth (Eq. 6);
  - ``h = p·1[c̄] + q`` (Eq. 8) weights the focal loss of positive points (Eq. 9; background
    points keep weight 1) and their DIoU loss (Eq. 10).
* **3.3 Action Sensitive Contrastive Loss (ASCL, Eq. 11–14).** Per ground truth: the most
  sensitive frames a_cls, a_sot, a_eot (argmax of the class-level Gaussians, Eq. 11), ranges of
  ±δ·N_f around them inside the instance, sensitivity-weighted features f_cls and f_loc
  (Eq. 12) and the boundary background f_bg of δ·N_f outside each end (Eq. 13). Anchors are
  every f_cls and f_loc; positives the f_cls / f_loc of instances of the same class in the
  batch (so an instance's f_cls and f_loc attract each other); negatives those of other
  classes and every f_bg (Eq. 14).
* **3.4 Training and inference.** ``L = L_cls + L_loc + L_s + λ L_ASCL`` (Eq. 15, λ = 0.3);
  inference as ActionFormer, Soft-NMS in :mod:`tadkit.postprocess`.

Paper hyperparameters: θ 0.2, λ 0.3, δ 0.2, σ clamp 5.0, one Gaussian for classification and
two for localisation (Table 7); THUMOS14: batch 2, lr 1e-4, 30 epochs, 200 detections kept;
MultiTHUMOS: batch 2, lr 2e-4, 60 epochs; ActivityNet: batch 16, lr 1e-3, 15 epochs with
external video-level scores fused; Ego4D / EPIC: 2000 detections kept.

Switches for the ablations: ``ase_class``, ``ase_instance``, ``ascl`` (Table 5);
``learnable_cls_gaussians``, ``learnable_loc_gaussians`` (Table 6, fixed = not learnable);
``num_cls_gaussians``, ``num_loc_gaussians``, ``shared_gaussians`` (Table 7). With every switch
off and θ = 0 the model *is* the ActionFormer baseline (same parameters, same losses).

Choices where the paper is silent (a reviewer can check each):

* **Trivial solution.** Multiplying a positive loss by a learnable weight in (0, 1] invites
  the optimiser to shrink the weight. We normalise the sensitivity ``h`` of the positive
  points of each ground truth to mean 1 (``normalize_sensitivity``, default on): the Gaussians
  can only *redistribute* weight among an instance's points, never lower the total; σ is
  clamped to ``[sigma_min, sigma_max] = [0.05, 5]`` (the paper gives the upper clamp). The
  instance-level ``q`` enters ``h`` detached: it is learned through ``L_s`` only (Eq. 7),
  otherwise the weighted losses would also push it to zero.
* **Eq. 4** writes ``2σ`` in the denominator; we read it as ``2σ²`` like Eq. 3.
* With two classification Gaussians they start at μ = ∓0.25; with one localisation Gaussian
  it starts at 0; ``shared_gaussians`` uses the classification Gaussians for both sub-tasks.
* **ASCL features** are taken from the finest pyramid level (full temporal resolution), the
  similarity is ``exp(cos / τ)`` with τ = 0.07 (the authors' challenge code), and the loss is
  averaged over anchors. With class-level modelling off, f_cls and f_loc are both pooled around
  the instance centre (the paper's Table 5, row 4). A ground truth shorter than one step pools
  its nearest step; a boundary range that falls outside the video gives no f_bg. Negatives
  are the other classes' anchors and the backgrounds (Eq. 14, ``ascl_negatives: all``); the
  released challenge code uses the backgrounds only (``ascl_negatives: background``).
* **configs/asl/custom.yaml departs in two ASCL choices** (the dataset configs keep the paper's
  and the challenge code's): ``ascl_temperature: 0.5`` and ``ascl_sampling: center`` (f_cls and
  f_loc pooled ±δ·N_f around the instance centre, as with class-level modelling off; the
  Gaussians still weight the losses, Eq. 9–10). Measured on tadkit's synthetic benchmark
  (``benchmarks/synthetic_accuracy.py``: 80 videos, noise 0.7, 64 channels, 24 epochs; average
  mAP at tIoU 0.3:0.7, seeds 0 / 1 / 2): tadkit ActionFormer 64.5 / 71.4 / 71.1, the official
  release's model and loss in the same loop 62.5 / 63.5 / 69.7; ASL as in the paper with τ 0.07
  54.4 / 56.5 / –, τ 0.2 62.4 / 61.9 / –, τ 0.5 67.1 / 61.2 / 57.6, τ 1.0 65.9 (seed 0);
  τ 0.5 with centre sampling (custom.yaml) 79.4 / 72.4 / 74.2. Seed-1 ablations at τ 0.5: without ASCL 65.1,
  without class-level ASE 72.7, θ = 0 63.2. The class-level Gaussians alone are neutral (seed 0:
  64.2 without ASCL vs 64.5 all off) and stay almost flat in training (σ 0.83–1.0, μ within
  0.06 of its start); what costs accuracy is Eq. 11–12's *placement*: T_loc lies on the inner
  20 % of each end, so ASCL pulls the features just inside a boundary towards the centre's and
  away from those just outside, on the finest pyramid level that also feeds the regression
  head. A projection head before the contrast (SimCLR style) did not help at τ 0.5 (64.3 vs 67.1).
* ``L_s`` is the sum of the two MSE terms (cls and loc), averaged over positive points.
"""
from __future__ import annotations

import inspect
import math

import torch
import torch.nn.functional as F
from torch import nn

from ...core.errors import ConfigError
from ..layers import Conv1d, MaskedConv1D, pack_levels, unpack_levels
from ..losses import Targets, offsets_to_segments
from .actionformer import ActionFormer


# ---------------------------------------------------------------------------- 3.2 ASE, class level
class ClassLevelSensitivity(nn.Module):
    """Per-class Gaussians over the normalised position d (Eq. 3–4).

    ``num_cls`` Gaussians for classification (0, 1 or 2), ``num_loc`` for localisation (0, 1, or 2:
    start and end); ``shared`` makes localisation use the classification Gaussians.
    """

    def __init__(self, num_classes: int, num_cls: int = 1, num_loc: int = 2, shared: bool = False,
                 learnable_cls: bool = True, learnable_loc: bool = True, sigma_min: float = 0.05,
                 sigma_max: float = 5.0):
        super().__init__()
        self.num_cls, self.num_loc, self.shared = num_cls, num_loc, shared
        self.sigma_min, self.sigma_max = sigma_min, sigma_max
        cls_mu = {0: [], 1: [0.0], 2: [-0.25, 0.25]}[num_cls]
        loc_mu = {0: [], 1: [0.0], 2: [-0.5, 0.5]}[num_loc]
        self._param("cls_mu", torch.tensor(cls_mu).repeat(num_classes, 1), learnable_cls)   # (K, n_cls)
        self._param("cls_sigma", torch.ones(num_classes, num_cls), learnable_cls)           # (K, n_cls)
        if not shared:
            self._param("loc_mu", torch.tensor(loc_mu).repeat(num_classes, 1), learnable_loc)   # (K, n_loc)
            self._param("loc_sigma", torch.ones(num_classes, num_loc), learnable_loc)           # (K, n_loc)

    def _param(self, name: str, value: torch.Tensor, learnable: bool) -> None:
        if learnable:
            self.register_parameter(name, nn.Parameter(value.reshape(value.shape[0], -1).float()))
        else:
            self.register_buffer(name, value.reshape(value.shape[0], -1).float())

    def _gaussians(self, d: torch.Tensor, labels: torch.Tensor, mu: torch.Tensor, sigma: torch.Tensor):
        """Each Gaussian of the point's class at its position: (N, n)."""
        m, s = mu[labels], sigma[labels].clamp(self.sigma_min, self.sigma_max)           # (N, n)
        return torch.exp(-(d[:, None] - m) ** 2 / (2 * s ** 2))

    def cls_parts(self, d: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return self._gaussians(d, labels, self.cls_mu, self.cls_sigma)                      # (N, n_cls)

    def loc_parts(self, d: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        if self.shared:
            return self.cls_parts(d, labels)
        return self._gaussians(d, labels, self.loc_mu, self.loc_sigma)                      # (N, n_loc)

    def p_cls(self, d, labels) -> torch.Tensor | None:
        """Eq. 3 (summed over Gaussians); None when there are none."""
        return self.cls_parts(d, labels).sum(1) if self.num_cls else None

    def p_loc(self, d, labels) -> torch.Tensor | None:
        """Eq. 4, p_sot + p_eot; None when there are none."""
        n = self.num_cls if self.shared else self.num_loc
        return self.loc_parts(d, labels).sum(1) if n else None


# ---------------------------------------------------------------------------- 3.2 ASE, instance level
class InstanceLevelEvaluator(nn.Module):
    """Φ: temporal conv (k 3) → ReLU → FC → sigmoid, shared over pyramid levels (Eq. 5).

    Returns (B, P); values at invalid points are unspecified (the losses read positives only). The
    levels go through in one pass, as in the heads (:func:`~tadkit.models.layers.pack_levels`).
    Training computes Φ at the positive points only (:func:`evaluate_at`, the same values).
    """

    def __init__(self, dim: int, hidden: int, kernel_size: int = 3):
        super().__init__()
        self.conv = MaskedConv1D(dim, hidden, kernel_size)
        self.fc = Conv1d(hidden, 1, 1)
        self.gap = kernel_size // 2

    def forward(self, feats: list[torch.Tensor], masks: list[torch.Tensor]) -> torch.Tensor:
        x, m = pack_levels(feats, masks, self.gap)                   # (B, C, P + gaps)
        # pyramid features are zero at invalid steps; the output is read at valid points only
        h, _ = self.conv(x, m, input_masked=True, mask_output=False)   # (B, hidden, P + gaps)
        q = torch.sigmoid(self.fc(F.relu(h)))                          # (B, 1, P + gaps)
        return torch.cat(unpack_levels(q, [f.shape[-1] for f in feats], self.gap), dim=2)[:, 0]   # (B, P)


def evaluate_at(evaluators: list[InstanceLevelEvaluator], feats: list[torch.Tensor], b_idx: torch.Tensor,
                p_idx: torch.Tensor) -> list[torch.Tensor]:
    """Several evaluators Φ of one structure at the points (b_idx, p_idx) only (batch item, index in the
    concatenated levels): each one's ``forward`` read there, (N,) each.

    The losses read Φ at the positive points alone, a few hundred of the thousands, so the temporal
    conv is computed there only: each point's ``k`` neighbouring steps of its own level (zero beyond
    the level's ends, as the conv's padding; pyramid features are zero at invalid steps) times the
    conv weight as one linear map, every evaluator's conv side by side, their FCs as one
    block-diagonal map. Same values and gradients as the full convolution read at those points.
    """
    conv0 = evaluators[0].conv.conv
    k = conv0.kernel_size[0]
    device = p_idx.device
    sizes = torch.tensor([f.shape[-1] for f in feats], device=device)
    ends = sizes.cumsum(0)
    level = torch.bucketize(p_idx, ends, right=True)                              # (N,) level of each point
    t = p_idx - (ends - sizes)[level]                                             # (N,) step in that level
    offsets = torch.arange(k, device=device) - k // 2
    windows, order = [], []
    for lvl, f in enumerate(feats):
        sel = (level == lvl).nonzero(as_tuple=True)[0]
        steps = t[sel, None] + offsets                                            # (n, k)
        inside = (steps >= 0) & (steps < f.shape[-1])
        win = f.transpose(1, 2)[b_idx[sel, None], steps.clamp(0, f.shape[-1] - 1)]   # (n, k, C)
        windows.append(win * inside[..., None].to(win.dtype))
        order.append(sel)
    window = torch.cat(windows).transpose(1, 2).flatten(1)                        # (N, C·k), channel-major
    weight = torch.cat([e.conv.conv.weight for e in evaluators]).flatten(1)       # (n·hidden, C·k)
    bias = torch.cat([e.conv.conv.bias for e in evaluators])
    h = F.relu(F.linear(window, weight, bias))                                    # (N, n·hidden)
    fc_weight = torch.block_diag(*(e.fc.weight[:, :, 0] for e in evaluators))     # (n, n·hidden)
    fc_bias = torch.cat([e.fc.bias for e in evaluators])
    q = torch.sigmoid(F.linear(h, fc_weight, fc_bias))                            # (N, n), points in level order
    q = q[torch.argsort(torch.cat(order))]                                        # back to the given order
    return list(q.unbind(1))


def _normalized_position(points: torch.Tensor, segments: torch.Tensor) -> torch.Tensor:
    """d(i): signed distance of each point to its segment's centre / length, in [−0.5, 0.5]."""
    centre = 0.5 * (segments[:, 0] + segments[:, 1])
    length = (segments[:, 1] - segments[:, 0]).clamp(min=1e-6)
    return ((points - centre) / length).clamp(-0.5, 0.5)


def _segment_iou(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    inter = (torch.minimum(a[:, 1], b[:, 1]) - torch.maximum(a[:, 0], b[:, 0])).clamp(min=0)
    union = (a[:, 1] - a[:, 0]) + (b[:, 1] - b[:, 0]) - inter
    return inter / union.clamp(min=1e-6)


# ---------------------------------------------------------------------------- 3.3 ASCL
def action_sensitive_contrastive_loss(anchors: torch.Tensor, anchor_labels: torch.Tensor,
                                      background: torch.Tensor, temperature: float = 0.07,
                                      class_negatives: bool = True) -> torch.Tensor:
    """Eq. 14 over a batch.

    anchors: (A, C) the f_cls and f_loc of every instance; anchor_labels: (A,) their classes;
    background: (G, C) every f_bg. For each anchor, positives are the other anchors of its class,
    negatives the anchors of other classes and all backgrounds (``class_negatives=False``: the
    backgrounds only, as in the released challenge code); sim = exp(cos / τ). Anchors with no
    positive are skipped; returns 0 when none remains.
    """
    a = F.normalize(anchors, dim=1)
    z = torch.cat([a, F.normalize(background, dim=1)], dim=0)                        # (A + G, C)
    logits = a @ z.T / temperature                                                    # (A, A + G)
    n_a = a.shape[0]
    same = anchor_labels[:, None] == anchor_labels[None, :]                          # (A, A)
    eye = torch.eye(n_a, dtype=torch.bool, device=a.device)
    pos = torch.cat([same & ~eye, torch.zeros(n_a, z.shape[0] - n_a, dtype=torch.bool, device=a.device)], 1)
    neg = torch.cat([~same & class_negatives, torch.ones(n_a, z.shape[0] - n_a, dtype=torch.bool, device=a.device)], 1)
    has_pos = pos.any(1)
    if not has_pos.any():
        return anchors.sum() * 0.0
    lse_pos = torch.logsumexp(logits.masked_fill(~pos, -math.inf), dim=1)
    lse_all = torch.logsumexp(logits.masked_fill(~(pos | neg), -math.inf), dim=1)
    return (lse_all - lse_pos)[has_pos].mean()


# ---------------------------------------------------------------------------- the detector
class ASL(ActionFormer):
    """ActionFormer + channel attention (θ) + ASE (class and instance level) + ASCL; see module docstring.

    ASL's own hyperparameters: ``ase_class``, ``ase_instance``, ``ascl``, ``num_cls_gaussians``,
    ``num_loc_gaussians``, ``shared_gaussians``, ``learnable_cls_gaussians``, ``learnable_loc_gaussians``,
    ``sigma_min``, ``sigma_max``, ``normalize_sensitivity``, ``evaluator_dim``, ``sensitivity_loss_weight``,
    ``ascl_weight`` (λ), ``ascl_delta`` (δ), ``ascl_temperature`` (τ), ``ascl_negatives`` (``all``: other
    classes and background, Eq. 14 | ``background``: the released code's), ``ascl_sampling`` (``sensitive``:
    Eq. 11–12 | ``center``); every ActionFormer hyperparameter too.
    """

    def __init__(self, num_classes: int, input_dim: int, max_seq_len: int = 2304, *,
                 channel_attention_theta: float = 0.2,
                 ase_class: bool = True, ase_instance: bool = True, ascl: bool = True,
                 num_cls_gaussians: int = 1, num_loc_gaussians: int = 2, shared_gaussians: bool = False,
                 learnable_cls_gaussians: bool = True, learnable_loc_gaussians: bool = True,
                 sigma_min: float = 0.05, sigma_max: float = 5.0, normalize_sensitivity: bool = True,
                 evaluator_dim: int = 256, sensitivity_loss_weight: float = 1.0,
                 ascl_weight: float = 0.3, ascl_delta: float = 0.2, ascl_temperature: float = 0.07,
                 ascl_negatives: str = "all", ascl_sampling: str = "sensitive", **actionformer_kwargs):
        super().__init__(num_classes, input_dim, max_seq_len, channel_attention_theta=channel_attention_theta,
                         **actionformer_kwargs)
        if num_cls_gaussians not in (0, 1, 2) or num_loc_gaussians not in (0, 1, 2):
            raise ConfigError(f"num_cls_gaussians / num_loc_gaussians must be 0, 1 or 2, got "
                              f"{num_cls_gaussians} / {num_loc_gaussians}", fix="use 0, 1 or 2 (Table 7)")
        if shared_gaussians and num_cls_gaussians != 1:
            raise ConfigError("shared_gaussians needs num_cls_gaussians: 1", fix="set num_cls_gaussians: 1")
        if not 0 < sigma_min <= sigma_max:
            raise ConfigError(f"need 0 < sigma_min <= sigma_max, got {sigma_min}, {sigma_max}")
        if ascl_negatives not in ("all", "background"):
            raise ConfigError(f"ascl_negatives must be 'all' or 'background', got {ascl_negatives!r}",
                              fix="all: other classes and background (Eq. 14); background: the released code's")
        self.ascl_negatives = ascl_negatives
        if ascl_sampling not in ("sensitive", "center"):
            raise ConfigError(f"ascl_sampling must be 'sensitive' or 'center', got {ascl_sampling!r}",
                              fix="sensitive: ranges around the Gaussians' peaks (Eq. 11-12); center: around the centre")
        self.ascl_sampling = ascl_sampling
        if not 0 < ascl_delta <= 1 or ascl_temperature <= 0 or ascl_weight < 0:
            raise ConfigError("need 0 < ascl_delta <= 1, ascl_temperature > 0 and ascl_weight >= 0")
        self.ase_class, self.ase_instance, self.ascl = ase_class, ase_instance, ascl
        self.normalize_sensitivity = normalize_sensitivity
        self.sensitivity_loss_weight = sensitivity_loss_weight
        self.ascl_weight, self.ascl_delta, self.ascl_temperature = ascl_weight, ascl_delta, ascl_temperature
        fpn_dim = actionformer_kwargs.get("fpn_dim", inspect.signature(ActionFormer).parameters["fpn_dim"].default)
        # modules exist only when used, so that everything off is exactly the baseline
        if ase_class:
            self.class_sensitivity = ClassLevelSensitivity(
                num_classes, num_cls_gaussians, num_loc_gaussians, shared_gaussians,
                learnable_cls_gaussians, learnable_loc_gaussians, sigma_min, sigma_max)
        if ase_instance:
            self.cls_evaluator = InstanceLevelEvaluator(fpn_dim, evaluator_dim)   # Φ_cls
            self.loc_evaluator = InstanceLevelEvaluator(fpn_dim, evaluator_dim)   # Φ_loc

    # ------------------------------------------------------------ 3.2 sensitivity of positive points
    def _positive_geometry(self, outputs: dict, targets: Targets, batch: dict):
        """Positive mask (B, P), their d (N,), labels (N,), gt segments (N, 2) and instance ids (N,)."""
        positive = outputs["valid"] & (targets.matched >= 0)                        # (B, P)
        b_idx, p_idx = positive.nonzero(as_tuple=True)
        matched = targets.matched[b_idx, p_idx]
        device = outputs["points"].device
        seg = torch.cat([s.to(device).float().reshape(-1, 2) for s in batch["segments"]])    # (M, 2)
        lab = torch.cat([lb.to(device).long().reshape(-1) for lb in batch["labels"]])       # (M,)
        first = torch.tensor([0] + [len(s) for s in batch["segments"]], device=device).cumsum(0)[:-1]
        inst = first[b_idx] + matched                                                # (N,) global instance id
        d = _normalized_position(outputs["points"][p_idx, 0], seg[inst])
        return positive, b_idx, p_idx, d, lab[inst], seg[inst], inst

    def _normalize(self, h: torch.Tensor, inst: torch.Tensor) -> torch.Tensor:
        """Scale h so that its mean over each instance's positive points is 1."""
        n = int(inst.max()) + 1 if len(inst) else 0
        total = torch.zeros(n, device=h.device, dtype=h.dtype).index_add_(0, inst, h)
        count = torch.zeros(n, device=h.device, dtype=h.dtype).index_add_(0, inst, torch.ones_like(h))
        return h * (count / total.clamp(min=1e-6))[inst]

    def compute_losses(self, outputs: dict, batch: dict) -> dict[str, torch.Tensor]:
        targets = self.assign(outputs, batch)
        positive, b_idx, p_idx, d, labels, gt_seg, inst = self._positive_geometry(outputs, targets, batch)
        norm = self.normalizer(positive.sum())
        losses = {}
        cls_w = loc_w = None
        if self.ase_class or self.ase_instance:
            h_cls = torch.zeros_like(d)
            h_loc = torch.zeros_like(d)
            if self.ase_class:                                                        # p·1[c̄], Eq. 3–4
                p_cls = self.class_sensitivity.p_cls(d, labels)
                p_loc = self.class_sensitivity.p_loc(d, labels)
                h_cls = h_cls + (p_cls if p_cls is not None else 1.0)
                h_loc = h_loc + (p_loc if p_loc is not None else 1.0)
            if self.ase_instance:                                                     # + q, Eq. 5 and 8
                q_cls, q_loc = evaluate_at([self.cls_evaluator, self.loc_evaluator], outputs["conv_feats"],
                                           b_idx, p_idx)
                h_cls = h_cls + q_cls.detach()
                h_loc = h_loc + q_loc.detach()
                with torch.no_grad():                                                 # quality, Eq. 6
                    quality_cls = outputs["cls_logits"][b_idx, p_idx, labels].sigmoid()
                    stride = outputs["points"][p_idx, 3:4]
                    t = outputs["points"][p_idx, 0:1]
                    pred = t + offsets_to_segments(outputs["offsets"][b_idx, p_idx]) * stride
                    quality_loc = _segment_iou(pred.float(), gt_seg)
                n_pos = max(len(d), 1)
                losses["sensitivity_loss"] = (F.mse_loss(q_cls, quality_cls, reduction="sum")
                                              + F.mse_loss(q_loc, quality_loc, reduction="sum")) / n_pos   # Eq. 7
            if self.normalize_sensitivity and len(d):
                h_cls, h_loc = self._normalize(h_cls, inst), self._normalize(h_loc, inst)
            cls_w = torch.ones_like(positive, dtype=h_cls.dtype)
            cls_w = cls_w.index_put((b_idx, p_idx), h_cls)                            # background keeps 1
            loc_w = torch.zeros_like(cls_w).index_put((b_idx, p_idx), h_loc)
        losses["cls_loss"] = self.classification_loss(outputs, targets, cls_w) / norm          # Eq. 9
        losses["reg_loss"] = self.regression_loss(outputs, targets, loc_w) / norm              # Eq. 10
        total = losses["cls_loss"] + self.reg_loss_weight * losses["reg_loss"]
        if "sensitivity_loss" in losses:
            total = total + self.sensitivity_loss_weight * losses["sensitivity_loss"]
        if self.ascl and self.ascl_weight > 0:
            losses["ascl_loss"] = self.contrastive_loss(outputs, batch)
            total = total + self.ascl_weight * losses["ascl_loss"]                              # Eq. 15
        losses["loss"] = total
        return losses

    # ------------------------------------------------------------ 3.3 ASCL
    def contrastive_loss(self, outputs: dict, batch: dict) -> torch.Tensor:
        """Eq. 11–14 on the finest pyramid level."""
        feats, masks = outputs["fpn_feats"][0], outputs["fpn_masks"][0]               # (B, C, T), (B, T)
        device = feats.device
        t = torch.arange(feats.shape[-1], device=device, dtype=torch.float32)         # (T,)
        anchors, anchor_labels, backgrounds = [], [], []
        for b in range(feats.shape[0]):
            seg = batch["segments"][b].to(device).float().reshape(-1, 2)              # (M, 2)
            if not len(seg):
                continue
            lab = batch["labels"][b].to(device).long().reshape(-1)
            valid = masks[b]                                                          # (T,)
            n_f = (seg[:, 1] - seg[:, 0]).clamp(min=1e-6)                             # (M,)
            reach = self.ascl_delta * n_f[:, None]
            inside = (t[None] >= seg[:, :1]) & (t[None] <= seg[:, 1:]) & valid[None]  # (M, T)
            nearest = ((0.5 * (seg[:, 0] + seg[:, 1])).round().clamp(0, feats.shape[-1] - 1)).long()
            inside[torch.arange(len(seg), device=device), nearest] |= ~inside.any(1)  # a step for very short gts
            d = _normalized_position(t[None].expand(len(seg), -1).reshape(-1),
                                     seg.repeat_interleave(len(t), 0)).reshape(len(seg), -1)   # (M, T)
            flat_lab = lab.repeat_interleave(len(t))
            cs = self.class_sensitivity if self.ase_class and self.ascl_sampling == "sensitive" else None
            if cs is not None and cs.num_cls:
                p_cls = cs.cls_parts(d.reshape(-1), flat_lab).reshape(len(seg), len(t), -1)   # (M, T, n)
            else:
                p_cls = torch.exp(-d ** 2 / 2)[..., None]          # centre-peaked, used only to place the range
            n_loc = 0 if cs is None else (cs.num_cls if cs.shared else cs.num_loc)
            p_loc = cs.loc_parts(d.reshape(-1), flat_lab).reshape(len(seg), len(t), -1) if n_loc else p_cls
            w_cls = self._sensitive_weights(p_cls, inside, t, reach, weighted=cs is not None and cs.num_cls > 0)
            w_loc = self._sensitive_weights(p_loc, inside, t, reach, weighted=n_loc > 0)
            near_start = (t[None] >= seg[:, :1] - reach) & (t[None] < seg[:, :1])
            near_end = (t[None] > seg[:, 1:]) & (t[None] <= seg[:, 1:] + reach)
            w_bg = ((near_start | near_end) & valid[None]).float()                   # Eq. 13
            x = feats[b].T                                                            # (T, C)
            anchors += [w_cls @ x / w_cls.sum(1, keepdim=True).clamp(min=1e-6),
                        w_loc @ x / w_loc.sum(1, keepdim=True).clamp(min=1e-6)]       # Eq. 12
            anchor_labels += [lab, lab]
            has_bg = w_bg.sum(1) > 0
            backgrounds.append((w_bg @ x / w_bg.sum(1, keepdim=True).clamp(min=1))[has_bg])
        if not anchors:
            return feats.sum() * 0.0
        return action_sensitive_contrastive_loss(torch.cat(anchors), torch.cat(anchor_labels),
                                                 torch.cat(backgrounds), self.ascl_temperature,
                                                 class_negatives=self.ascl_negatives == "all")

    @staticmethod
    def _sensitive_weights(parts: torch.Tensor, inside: torch.Tensor, t: torch.Tensor, reach: torch.Tensor,
                           weighted: bool) -> torch.Tensor:
        """Weights (M, T) of Eq. 12: around each Gaussian's most sensitive step (Eq. 11), ±δN_f, inside."""
        score = parts.masked_fill(~inside[..., None], -1.0)                           # (M, T, n)
        peak = t[score.argmax(dim=1)]                                                 # (M, n) a_cls / a_sot, a_eot
        near = ((t[None, :, None] - peak[:, None, :]).abs() <= reach[..., None]).any(-1) & inside   # (M, T)
        near |= (t[None] == peak[:, :1]) & inside                                     # at least the peak itself
        weight = parts.sum(-1) if weighted else torch.ones_like(near, dtype=parts.dtype)
        return weight * near


DETECTOR = ASL
