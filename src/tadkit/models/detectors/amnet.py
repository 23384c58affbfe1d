"""AMNet: Action-aware Masking Network with group-based attention (Kang et al., WACV 2023).

Read top to bottom like the paper (``papers/amnet.txt``); AMNet is the tadkit one-stage baseline
(:class:`~tadkit.models.detectors.actionformer.ActionFormer`) with three additions, each behind
a switch:

* **3.2 Action Masking Encoder** (``ame``, :class:`ActionMaskingEncoder`). ``AME(x) =
  Conv1d({σ(ε(Conv1d(x)))}×K)`` (Eq. 1) maps the input features F (B, C, T) to an action-aware
  mask of the same shape. In training it also encodes F_pos and F_neg, the snippets inside and
  outside the ground truth concatenated along time (done for every video at once by packing the
  chosen steps to the front, :func:`pack_snippets`), and the triplet loss (Eq. 2–3,
  :func:`triplet_loss`) takes the mask as anchor. The refined feature ``F̂ = F + F_mask`` (Eq. 4)
  is the detector's input.
* **3.3 Group Attention Module** (``gam``, :class:`GroupAttentionModule`). The pyramid of K
  levels halving in length with self-attention per level (Eq. 5–6) is the baseline's conv +
  transformer pyramid (each level's block has its own W_q, W_k, W_v). The first K/2 levels are
  concatenated along time into G_short, the rest into G_long (Eq. 7); multi-head cross-attention
  runs both ways with shared W_cq, W_ck, W_cv, then LayerNorm and MLP (Eq. 8); the two outputs
  are split back into per-level features.
* **3.3 Prediction heads** (Eq. 9–10): the baseline's class and boundary heads (Block = K×(Conv1d,
  LN, ReLU) then a predictor; boundaries ``ReLU(ω_B · x)``, one ω_B per level) and the
  :class:`MatchingScoreHead` (``matching_head``) of the same shape, ``m̂ = ω_M · x`` (one ω_M per
  level).
* **3.4 Losses** (Eq. 11–12): focal loss for classes, ``1 − tIoU`` for boundaries
  (``reg_loss: iou``), ``(tanh(m̂) − tIoU(B̂, B))²`` for the matching score, summed over positive
  points and divided by the baseline's positive-count normaliser;
  ``L = L_cls + λ1 (L_reg + L_mat) + λ2 L_trip``.
* **3.5 Inference** (Eq. 13–14): boundaries ``(t − d_s, t + d_e)``, confidence
  ``sigmoid(ŷ) · tanh(m̂)`` for every class; Soft-NMS in :mod:`tadkit.postprocess`.

Paper hyperparameters: λ1 = λ2 = 1 (``reg_loss_weight``, ``triplet_loss_weight``; Table 5);
confidence sigmoid·tanh (Table 4); L2 matching loss (Fig. 6); Soft-NMS; THUMOS14: I3D 16-frame
windows every 4 frames, AdamW, weight decay 0.05, lr 1e-4, cosine, batch 4, 45 epochs;
ActivityNet 1.3: I3D 16-frame windows every 16 frames, batch 16, lr 1e-3, 10 epochs, external
video-level classification scores multiplied in. Not given: K of the AME, the margin α, the
number of pyramid levels and of GAM heads, the head depth, the warm-up.

Switches for the ablations: ``ame``, ``gam``, ``matching_head`` (Table 2); ``confidence``
``sigmoid | sigmoid_sigmoid | sigmoid_tanh`` (Table 4); ``matching_loss`` ``l2 | l1 | bce``
(Fig. 6); ``reg_loss_weight`` λ1 and ``triplet_loss_weight`` λ2 (Table 5); ``two_phase``.
**Baseline equivalence:** with ``ame``, ``gam`` and ``matching_head`` off, AMNet built with the
same keyword arguments (and seed) as ActionFormer has the same parameters with the same values,
returns the same losses (``loss``, ``cls_loss``, ``reg_loss``) and the same predictions; the
only AMNet default that differs from ActionFormer's is ``reg_loss`` (``iou``, the paper's
``1 − tIoU``, against the baseline's ``diou``).

**Two-phase update (Sec. 3.4) within one ``loss.backward(); optimizer.step()``.** The paper
back-propagates L_trip into the AME first, then the detector losses. With ``two_phase`` (the
default) the gradients are routed instead of sequenced: the detector reads ``F + F_mask.detach()``,
so the detector losses never reach the AME, and L_trip depends on the AME alone (its inputs are
data), so it never reaches the detector. One backward of the total then leaves
``λ2 ∇L_trip`` on the AME parameters and ``∇(L_cls + λ1 (L_reg + L_mat))`` on all others; as the
two parameter sets are disjoint and AdamW updates each parameter from its own gradient, the one
optimiser step *is* the phase-1 step on the AME followed by the phase-2 step on the detector.
What differs from running the phases one after the other: phase 2 sees the mask of the weights
before the phase-1 step (one step stale, a difference of order lr), and the engine clips the
norm of both gradients together. ``two_phase: false`` is the joint update of Eq. 12 (the detector
losses train the AME too), which is also what a sequential update would give if phase 2 were
meant to update the AME again. Exact sequencing needs an engine hook (a model-declared list of
(loss, parameter group) phases, each with its own backward, clip and step).

Choices where the paper is silent or where the code departs (a reviewer can check each):

* **Distance of Eq. 2.** F_mask (T steps), F̂_pos (T_P) and F̂_neg (T_N) have different lengths,
  so Eq. 2 needs a reduction over time. ``triplet_distance: snippet`` (default): every positive
  snippet's mask F_mask[t] is an anchor; the positive and negative are the video's prototypes,
  the time-means of F̂_pos and F̂_neg; the loss is averaged over anchors. Not a per-snippet
  positive: F_pos is F with the background removed, so F̂_pos at a snippet equals F_mask there
  except within the AME's receptive field of a boundary, and d_pos would be zero almost
  everywhere. Not the pooled anchor either (``triplet_distance: pooled``, one triplet per video
  with the time-mean of F_mask as anchor, kept for comparison): away from boundaries that mean
  is the length-weighted mix ``(T_P p + T_N n) / T`` of the two prototypes, so with Eq. 2's raw
  distances ``d_pos − d_neg = (T_N² − T_P²) ‖p − n‖² / T²``, and where background dominates
  (T_N > T_P, the usual case) the loss is minimised by pulling p and n together, the opposite of
  its purpose; with normalised vectors it can only be met by making the positive embeddings
  about T_N / T_P times longer than the negative ones, and one triplet per video is a weak
  signal. Videos without positive or without negative snippets give no triplet.
* Vectors are L2-normalised before Eq. 2 (``triplet_normalize``), as in FaceNet, whose triplet
  loss the paper adopts: the hinge cannot then be met by scaling the mask up, which would also
  swamp F in Eq. 4. Margin α = 0.2 (FaceNet's; ``triplet_margin``). A snippet is positive when
  its centre (its index, in feature units) lies inside a ground truth, ends included.
* AME: K = 2 (``ame_layers``), kernel 3, LayerNorm and ReLU (the heads' ε and σ), hidden width
  ``ame_dim`` 512, masked convolutions (padding never leaks in); default initialisation.
* GAM: the pyramid and its per-level self-attention are the baseline's (local windows of
  ``window_size``; ``window_size: null`` gives Eq. 6's global attention). Eq. 8 has no residual
  path; without one every output step is a mixture of the *other* group's values and loses its
  own content, so both residuals of a transformer block are added, ``Y = G + MCA(…)``,
  ``out = Y + MLP(ε(Y))`` (keeping Eq. 8's MCA → ε → MLP order), with a LayerNorm before the
  projections (pre-LN, as the baseline's blocks) and the baseline's LayerScale + drop path
  (``path_dropout``). W_cq, W_ck, W_cv, the output projection, ε and the MLP are shared by both
  directions (Eq. 8 uses the same symbols). G_{S→L} (queries from G_short) is split back into
  the short group's levels, G_{L→S} into the long group's. No positional encoding by default (the
  paper names none); ``gam_position: true`` adds a sine encoding of each step's time in input steps
  (level l has stride 2^l) to the queries' and keys' inputs, so that a step can find the steps of
  the other group at its own time (DETR's practice; values stay free of it). The module
  sits between the pyramid and the neck. ``gam_split`` = K // 2 levels in G_short.
* Heads: the predictor ("FC" in Eq. 10) is the baseline's masked conv of ``head_kernel_size``
  for all three heads, so that switching AMNet off gives the baseline. One ω_B and one ω_M per
  pyramid level (the baseline's per-level scales), initialised to 1.
* L_mat's target tIoU(B̂, B) is detached (a target, not a path for the boundary head). With the
  sigmoid·sigmoid confidence the matching score is normalised by a sigmoid in training as well
  ("in the same manner as training", Sec. 3.5); the BCE loss uses a sigmoid (Fig. 6) and so
  cannot be combined with the sigmoid·tanh confidence. ``confidence: sigmoid`` trains the head
  (tanh, unless BCE) but does not use it at inference; with ``matching_head`` off the
  confidence is sigmoid(ŷ). tanh(m̂) < 0 gives a negative confidence, which the pre-NMS
  threshold drops.
* L_trip is a mean over anchors and is not divided by the positive-count normaliser.

Departures in ``configs/amnet/custom.yaml`` (thumos14.yaml and activitynet.yaml keep the paper's settings),
measured on the synthetic benchmark (``benchmarks/synthetic_accuracy.py``: 80 videos, noise 0.7, width 64,
24 epochs; average mAP at tIoU 0.3:0.7), seeds 0 / 1 / 2:

* ``two_phase: false`` and ``gam_position: true``: 71.2 / 70.7 / 73.1 % (mean 71.7 %). With the paper's
  two-phase update and GAM without position: 70.4 / 62.8 / 64.6 % (65.9 %); two phases with the GAM's
  position encoding: 73.8 / 62.8 / 66.7 % (67.8 %); all three modules off (the baseline): 67.2 / 69.9 / 70.2 %
  (69.1 %); the joint update alone (GAM without position), seed 1: 70.7 %, so on that seed the joint update is
  the whole gain; without GAM (two phases): 72.4 / 68.1 / 65.4 % (68.6 %); the official ActionFormer release's model
  and loss in the same loop: 62.5 / 63.5 / 69.7 % (65.2 %). With two phases the detector reads
  ``F + F_mask`` where F_mask (trained by the triplet loss alone, whose vectors are normalised) has no
  scale of its own: on a trained model its norm per step was 2.8 against 3.9 for F, a perturbation of the
  detector's input that the detector cannot shape; the joint update lets the detector losses train the AME
  as well. The GAM's cross-attention without any position cannot tell which steps of the other group lie
  at its own time.
* Each module switched off from ``custom.yaml``, seeds 0 / 1 (after a float-level change to the channel
  LayerNorm, which moved ``custom.yaml`` itself from 71.2 / 70.7 to 71.9 / 71.1 %): without the AME
  (``ame: false``) 67.0 / 73.3 %, without the GAM 70.4 / 69.8 %, without the matching-score head 74.3 / 70.1 %.
  Mean effects: AME +1.3, GAM +1.4, matching head −0.7 points, each within the seed spread (the AME alone
  moves −2.2 to +4.9), so only the three together are clearly above the baseline.
"""
from __future__ import annotations

import inspect

import torch
import torch.nn.functional as F
from torch import nn

from ...core.errors import ConfigError
from ...core.instances import Instances
from ..layers import (AffineDropPath, ConvStack, Dropout, LayerNorm, MaskedConv1D, Scale, add_branch, apply_mask,
                      local_attention, sine_position_encoding)
from ..losses import Targets, iou_loss_1d, offsets_to_segments
from .actionformer import ActionFormer

CONFIDENCES = ("sigmoid", "sigmoid_sigmoid", "sigmoid_tanh")
MATCHING_LOSSES = ("l2", "l1", "bce")
TRIPLET_DISTANCES = ("snippet", "pooled")


def _masked_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Time-mean of (B, C, T) over the valid steps of ``mask`` (B, T): (B, C)."""
    return apply_mask(x, mask).sum(-1) / mask.sum(-1, keepdim=True).clamp(min=1).to(x.dtype)


# ---------------------------------------------------------------------------- 3.2 Action Masking Encoder
class ActionMaskingEncoder(nn.Module):
    """``AME(x) = Conv1d({σ(ε(Conv1d(x)))}×K)`` (Eq. 1), masked; (B, C, T) → (B, C, T)."""

    def __init__(self, dim: int, hidden_dim: int = 512, num_layers: int = 2, kernel_size: int = 3):
        super().__init__()
        self.layers = ConvStack(dim, hidden_dim, num_layers, kernel_size, with_ln=True)  # {σ(ε(Conv1d))}×K
        self.out = MaskedConv1D(hidden_dim, dim, kernel_size)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return self.out(*self.layers(x, mask))[0]


def positive_snippets(segments: list[torch.Tensor], valid: torch.Tensor) -> torch.Tensor:
    """(B, T) bool: valid steps whose index lies inside a ground truth [start, end] (feature units)."""
    t = torch.arange(valid.shape[1], device=valid.device, dtype=torch.float32)
    rows = []
    for seg in segments:
        seg = seg.to(valid.device).float().reshape(-1, 2)                              # (N, 2)
        rows.append(((t[None] >= seg[:, :1]) & (t[None] <= seg[:, 1:])).any(0))       # (T,)
    return torch.stack(rows) & valid


def pack_snippets(x: torch.Tensor, select: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The selected steps of each row concatenated in temporal order: (B, C, T') and mask (B, T').

    F_pos and F_neg of Sec. 3.2 for a whole batch at once; T' is the largest count.
    """
    count = select.sum(1)                                                              # (B,)
    order = torch.sort((~select).to(torch.uint8), dim=1, stable=True).indices         # selected first
    width = max(int(count.max()), 1)
    order = order[:, :width]
    packed = x.gather(2, order[:, None, :].expand(-1, x.shape[1], -1))                 # (B, C, T')
    mask = torch.arange(width, device=x.device)[None] < count[:, None]                 # (B, T')
    return apply_mask(packed, mask), mask


def triplet_loss(anchor: torch.Tensor, positive: torch.Tensor, negative: torch.Tensor, margin: float,
                 normalize: bool = True) -> torch.Tensor:
    """Mean of ``[‖a − p‖² − ‖a − n‖² + α]_+`` (Eq. 2–3) over rows of (N, C); vectors L2-normalised first."""
    anchor, positive, negative = (v.float() for v in (anchor, positive, negative))
    if normalize:
        anchor, positive, negative = (F.normalize(v, dim=-1) for v in (anchor, positive, negative))
    d_pos = (anchor - positive).pow(2).sum(-1)                                         # Eq. 2
    d_neg = (anchor - negative).pow(2).sum(-1)
    return F.relu(d_pos - d_neg + margin).mean()                                       # Eq. 3


# ---------------------------------------------------------------------------- 3.3 Group Attention Module
class GroupAttentionModule(nn.Module):
    """Cross-attention between G_short (first ``split`` levels) and G_long (the rest), Eq. 7–8.

    ``forward(feats, masks)`` takes and returns the per-level features [(B, C, T_l)] (masks
    unchanged); see the module docstring for the residual paths and the normalisation.
    """

    def __init__(self, dim: int, num_heads: int, split: int, mlp_ratio: float = 4.0, attn_dropout: float = 0.0,
                 proj_dropout: float = 0.0, path_dropout: float = 0.0, position: bool = False):
        super().__init__()
        self.position = position
        if dim % num_heads:
            raise ConfigError(f"GAM: width {dim} is not divisible by num_heads={num_heads}")
        self.num_heads, self.split = num_heads, split
        self.norm_in = LayerNorm(dim)
        self.q_proj, self.k_proj, self.v_proj = (nn.Conv1d(dim, dim, 1) for _ in range(3))   # W_cq, W_ck, W_cv
        self.out_proj = nn.Conv1d(dim, dim, 1)
        self.attn_drop = Dropout(attn_dropout)
        self.norm = LayerNorm(dim)                                                        # ε of Eq. 8
        hidden = int(round(mlp_ratio * dim))
        self.mlp = nn.Sequential(nn.Conv1d(dim, hidden, 1), nn.GELU(), Dropout(proj_dropout),
                                 nn.Conv1d(hidden, dim, 1), Dropout(proj_dropout))
        self.drop_path_attn, self.drop_path_mlp = (                                       # the baseline's blocks'
            AffineDropPath(dim, path_dropout) if path_dropout > 0 else nn.Identity() for _ in range(2))

    def _heads(self, x: torch.Tensor) -> torch.Tensor:                                  # (B, C, T) -> (B, H, T, D)
        B, C, _ = x.shape
        return x.view(B, self.num_heads, C // self.num_heads, -1).transpose(2, 3)

    def cross(self, g: torch.Tensor, g_mask: torch.Tensor, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
              kv_mask: torch.Tensor) -> torch.Tensor:
        """``Y = G + MCA(K, V, Q)``, ``out = Y + MLP(ε(Y))`` for the group ``g`` whose queries are ``q``."""
        att = local_attention(self._heads(q), self._heads(k), self._heads(v), kv_mask, None, self.attn_drop)
        att = att.transpose(2, 3).reshape(g.shape)                                       # (B, C, T_q)
        y = apply_mask(add_branch(self.drop_path_attn, g, self.out_proj(att)), g_mask)
        return add_branch(self.drop_path_mlp, y, apply_mask(self.mlp(self.norm(y)), g_mask))

    def forward(self, feats: list[torch.Tensor], masks: list[torch.Tensor]):
        lengths = [x.shape[-1] for x in feats]
        s = self.split
        g_short, m_short = torch.cat(feats[:s], -1), torch.cat(masks[:s], 1)             # Eq. 7
        g_long, m_long = torch.cat(feats[s:], -1), torch.cat(masks[s:], 1)
        n_short, n_long = self.norm_in(g_short), self.norm_in(g_long)
        p_short, p_long = n_short, n_long                                                 # inputs of W_cq, W_ck
        if self.position:   # each step's time in input steps (level l has stride 2^l), on queries and keys
            pe = [sine_position_encoding(torch.arange(t, device=g_short.device) * 2 ** level, g_short.shape[1])
                  for level, t in enumerate(lengths)]
            p_short = n_short + torch.cat(pe[:s], -1).to(n_short.dtype)
            p_long = n_long + torch.cat(pe[s:], -1).to(n_long.dtype)
        q_s, k_s, v_s = self.q_proj(p_short), self.k_proj(p_short), self.v_proj(n_short)  # Eq. 8
        q_l, k_l, v_l = self.q_proj(p_long), self.k_proj(p_long), self.v_proj(n_long)
        s_to_l = self.cross(g_short, m_short, q_s, k_l, v_l, m_long)                       # G_{S→L}
        l_to_s = self.cross(g_long, m_long, q_l, k_s, v_s, m_short)                        # G_{L→S}
        out = list(s_to_l.split(lengths[:s], -1)) + list(l_to_s.split(lengths[s:], -1))
        return out, masks


# ---------------------------------------------------------------------------- 3.3 prediction heads
class MatchingScoreHead(nn.Module):
    """``m̂_i = FC(Block(F̂_i)) × ω_M`` (Eq. 9–10) with one ω_M per level; (B, P) over levels concatenated."""

    def __init__(self, in_channels: int, channels: int, num_levels: int, num_convs: int = 2, kernel_size: int = 3,
                 with_ln: bool = True):
        super().__init__()
        self.tower = ConvStack(in_channels, channels, num_convs, kernel_size, with_ln)    # Block, Eq. 9
        self.predictor = MaskedConv1D(channels if num_convs else in_channels, 1, kernel_size)
        self.scales = nn.ModuleList(Scale() for _ in range(num_levels))                   # ω_M

    def forward(self, feats: list[torch.Tensor], masks: list[torch.Tensor]) -> torch.Tensor:
        return torch.cat([scale(self.predictor(*self.tower(x, m))[0])[:, 0]
                          for scale, x, m in zip(self.scales, feats, masks)], dim=1)       # (B, P)


# ---------------------------------------------------------------------------- the detector
class AMNet(ActionFormer):
    """The baseline + AME + GAM + matching score head; see the module docstring.

    AMNet's own hyperparameters: ``ame``, ``ame_dim``, ``ame_layers`` (K of Eq. 1), ``ame_kernel_size``,
    ``triplet_margin`` (α), ``triplet_distance`` (``snippet`` | ``pooled``), ``triplet_normalize``,
    ``triplet_loss_weight`` (λ2), ``two_phase``, ``gam``, ``gam_split`` (levels in G_short, null = K // 2), ``gam_position``,
    ``matching_head``, ``confidence``, ``matching_loss``, ``reg_loss_weight`` (λ1, weighs L_reg + L_mat);
    every ActionFormer hyperparameter too (``reg_loss`` defaults to ``iou``).
    """

    def __init__(self, num_classes: int, input_dim: int, max_seq_len: int = 2304, *,
                 reg_loss: str = "iou", reg_loss_weight: float = 1.0,
                 ame: bool = True, ame_dim: int = 512, ame_layers: int = 2, ame_kernel_size: int = 3,
                 triplet_margin: float = 0.2, triplet_distance: str = "snippet", triplet_normalize: bool = True,
                 triplet_loss_weight: float = 1.0, two_phase: bool = True,
                 gam: bool = True, gam_split: int | None = None, gam_position: bool = False,
                 matching_head: bool = True, confidence: str = "sigmoid_tanh", matching_loss: str = "l2",
                 **actionformer_kwargs):
        super().__init__(num_classes, input_dim, max_seq_len, reg_loss=reg_loss, reg_loss_weight=reg_loss_weight,
                         **actionformer_kwargs)
        arg = {**{k: p.default for k, p in inspect.signature(ActionFormer).parameters.items()}, **actionformer_kwargs}
        num_levels = arg["branch_layers"] + 1
        split = num_levels // 2 if gam_split is None else gam_split
        for ok, message, fix in (
                (confidence in CONFIDENCES, f"unknown confidence {confidence!r}", f"use one of {CONFIDENCES}"),
                (matching_loss in MATCHING_LOSSES, f"unknown matching_loss {matching_loss!r}",
                 f"use one of {MATCHING_LOSSES}"),
                (triplet_distance in TRIPLET_DISTANCES, f"unknown triplet_distance {triplet_distance!r}",
                 f"use one of {TRIPLET_DISTANCES}"),
                (not (matching_loss == "bce" and confidence == "sigmoid_tanh"),
                 "matching_loss bce needs a sigmoid matching score (Fig. 6)",
                 "set confidence: sigmoid_sigmoid, or matching_loss: l2"),
                (ame_layers >= 1 and ame_dim >= 1, f"need ame_layers >= 1 and ame_dim >= 1, got {ame_layers}, "
                 f"{ame_dim}", None),
                (triplet_margin >= 0 and triplet_loss_weight >= 0,
                 "need triplet_margin >= 0 and triplet_loss_weight >= 0", None),
                (not gam or 1 <= split < num_levels, f"gam_split must be in [1, {num_levels - 1}], got {split}",
                 "leave gam_split null (K // 2) or set branch_layers >= 1")):
            if not ok:
                raise ConfigError(message, fix=fix)
        self.ame, self.gam, self.matching_head = ame, gam, matching_head
        self.two_phase = two_phase
        self.triplet_margin, self.triplet_distance = triplet_margin, triplet_distance
        self.triplet_normalize, self.triplet_loss_weight = triplet_normalize, triplet_loss_weight
        self.confidence, self.matching_loss = confidence, matching_loss
        # the matching score's normaliser, the same in training and inference (Sec. 3.5)
        self.matching_activation = torch.sigmoid if matching_loss == "bce" or confidence == "sigmoid_sigmoid" \
            else torch.tanh
        # modules exist only when used (and are built after the baseline's), so all off is the baseline
        if ame:
            self.action_masking_encoder = ActionMaskingEncoder(input_dim, ame_dim, ame_layers, ame_kernel_size)
        if gam:
            self.group_attention = GroupAttentionModule(arg["embed_dim"], arg["num_heads"], split, arg["mlp_ratio"],
                                                        arg["attn_dropout"], arg["proj_dropout"], arg["path_dropout"],
                                                        gam_position)
        if matching_head:
            self.matching_score_head = MatchingScoreHead(arg["fpn_dim"], arg["head_dim"], num_levels,
                                                         arg["head_num_convs"], arg["head_kernel_size"],
                                                         arg["head_with_ln"])

    # ------------------------------------------------------------ network
    def run(self, batch: dict) -> dict:
        """The baseline's outputs on F̂ (Eq. 4), plus ``matching`` (B, P) and the AME's input and mask."""
        extra = {}
        if self.ame:
            feats, masks = self.preprocess(batch)                                         # F (B, C, T)
            f_mask = self.action_masking_encoder(feats, masks)                            # Eq. 1
            refined = feats + (f_mask.detach() if self.two_phase else f_mask)             # Eq. 4
            batch = {**batch, "feats": refined, "masks": masks}
            extra = {"input_feats": feats, "input_masks": masks, "action_mask": f_mask}
        outputs = super().run(batch)
        if self.matching_head:
            outputs["matching"] = self.matching_score_head(outputs["fpn_feats"], outputs["fpn_masks"])  # Eq. 10
        return {**outputs, **extra}

    def encode(self, feats: torch.Tensor, masks: torch.Tensor) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """Pyramid with per-level self-attention (Eq. 5–6), then the group cross-attention (Eq. 7–8), then the neck."""
        fpn_feats, fpn_masks = self.backbone(feats, masks)
        if self.gam:
            fpn_feats, fpn_masks = self.group_attention(fpn_feats, fpn_masks)
        return self.neck(fpn_feats, fpn_masks)

    # ------------------------------------------------------------ 3.4 losses
    def compute_losses(self, outputs: dict, batch: dict) -> dict[str, torch.Tensor]:
        """``L = L_cls + λ1 (L_reg + L_mat) + λ2 L_trip`` (Eq. 12) with the parts that are switched on."""
        targets = self.assign(outputs, batch)
        norm = self.normalizer((outputs["valid"] & (targets.matched >= 0)).sum())
        losses = {"cls_loss": self.classification_loss(outputs, targets) / norm,
                  "reg_loss": self.regression_loss(outputs, targets) / norm}
        detection = losses["reg_loss"]
        if self.matching_head:
            losses["mat_loss"] = self.matching_score_loss(outputs, targets) / norm
            detection = detection + losses["mat_loss"]
        total = losses["cls_loss"] + self.reg_loss_weight * detection
        if self.ame:
            losses["trip_loss"] = self.mask_triplet_loss(outputs, batch)
            total = total + self.triplet_loss_weight * losses["trip_loss"]
        return {"loss": total, **losses}

    def matching_score_loss(self, outputs: dict, targets: Targets) -> torch.Tensor:
        """Eq. 11, summed over positive points: ``(φ(m̂) − tIoU(B̂, B))²`` (L1: ``|·|``; BCE on ``sigmoid(m̂)``)."""
        positive = outputs["valid"] & (targets.matched >= 0)
        m = outputs["matching"][positive]                                                 # (N,)
        with torch.no_grad():
            tiou = 1 - iou_loss_1d(offsets_to_segments(outputs["offsets"][positive]),
                                   offsets_to_segments(targets.reg[positive]))            # (N,)
        if self.matching_loss == "bce":
            return F.binary_cross_entropy_with_logits(m.float(), tiou, reduction="sum")
        diff = self.matching_activation(m.float()) - tiou
        return (diff.pow(2) if self.matching_loss == "l2" else diff.abs()).sum()

    def mask_triplet_loss(self, outputs: dict, batch: dict) -> torch.Tensor:
        """Eq. 1–3: F_pos and F_neg through the AME, the mask as anchor (distances: module docstring)."""
        x, valid, f_mask = outputs["input_feats"], outputs["input_masks"], outputs["action_mask"]
        pos = positive_snippets(batch["segments"], valid)                                 # (B, T)
        neg = valid & ~pos
        usable = pos.any(1) & neg.any(1)
        if not usable.any():
            return f_mask.sum() * 0.0
        packed, packed_mask = pack_snippets(torch.cat([x, x]), torch.cat([pos, neg]))      # F_pos; F_neg
        prototypes = _masked_mean(self.action_masking_encoder(packed, packed_mask), packed_mask)   # (2B, C)
        p, n = prototypes.chunk(2)                                                        # F̂_pos, F̂_neg pooled
        if self.triplet_distance == "snippet":
            b_idx, t_idx = (pos & usable[:, None]).nonzero(as_tuple=True)
            return triplet_loss(f_mask[b_idx, :, t_idx], p[b_idx], n[b_idx], self.triplet_margin,
                                self.triplet_normalize)
        anchor = _masked_mean(f_mask, valid)                                              # (B, C)
        return triplet_loss(anchor[usable], p[usable], n[usable], self.triplet_margin, self.triplet_normalize)

    # ------------------------------------------------------------ 3.5 inference
    @torch.no_grad()
    def decode(self, outputs: dict) -> list[Instances]:
        """The baseline's decoding (Eq. 13) ranked by ``sigmoid(ŷ) · φ(m̂)`` (Eq. 14) when the head is used."""
        if not self.matching_head or self.confidence == "sigmoid":
            return super().decode(outputs)
        confidence = (outputs["cls_logits"].double().sigmoid()
                      * self.matching_activation(outputs["matching"].double())[..., None])    # (B, P, K)
        # the baseline decodes sigmoid(cls_logits): hand it logit(confidence), exact in float64
        return super().decode({**outputs, "cls_logits": torch.logit(confidence.clamp(0, 1))})


DETECTOR = AMNet
