"""SP-TAD (Wu et al., 2021): temporal action detection with sparse proposals.

Read top to bottom like the paper (``papers/sp-tad.txt``; no code was released, so every choice
the paper leaves open follows Sparse R-CNN, its sibling for images, and is listed below):

* **3.1.1 Input levels.** The paper takes the last three stages of a two-stream I3D (temporal
  strides 2, 4, 8; RGB and flow concatenated per level). On pre-extracted features
  (``pyramid_input: features``, the default) :class:`FeatureStages` makes the three levels
  from the feature sequence by a chain of three strided masked convs (k3, stride 2, LayerNorm,
  ReLU), so level l has stride 2, 4, 8 feature steps. With ``pyramid_input: backbone`` the batch
  brings the three backbone maps itself (``feats`` = a list of three ``(B, C_l, ceil(T / s_l))``
  tensors, widths ``backbone_dims``, ``masks`` ``(B, T)`` at clip resolution): the end-to-end mode.
* **3.1.2 Temporal feature pyramid** (:class:`TemporalFeaturePyramid`). 1-D convs (k1) take
  every level to ``hidden_dim`` (256) channels, coarser levels are added to finer ones top-down
  (nearest upsampling), a k3 conv smooths each sum, and a max-pool of stride 2 on the coarsest
  output adds a fourth level: strides 2, 4, 8, 16 (coarsest T/16). Table 5's ablations:
  ``pyramid: single`` (only the stride-8 level, "Single Level") and ``pyramid: high`` (the
  four-level pyramid built on the stride-8 level alone by two more strided convs: strides 8,
  16, 32, 64, "High Level TFP"); ``pyramid: inter`` is the paper's model.
* **3.1.3 Action detection head** (:class:`ActionDetectionHead`, stacked ``num_stages`` times,
  Table 6). N learnable proposal segments (normalised centre and width) and N proposal features.
  In each stage: multi-head self-attention over the proposal features; each segment
  ``[t_s, t_e]`` is expanded to ``[t_s − t_l/η, t_e + t_l/η]`` (η = 5) and pooled by 1-D RoI
  align (:func:`roi_align_1d`, linear interpolation, vectorised over proposals and levels) to a
  ``(roi_size, d)`` SoI feature from the level of Eq. 1 (:func:`pyramid_level`); the
  :class:`SparseInteraction` module turns the proposal feature into a ``d × d_h`` and a
  ``d_h × d`` matrix and multiplies the SoI feature by them in turn; a two-layer FFN; then a
  linear classifier (sigmoid) and a 3-layer regression MLP predict class scores and segment
  deltas. Each stage's segments (detached) and features initialise the next (iterative
  refinement); every stage is supervised (auxiliary losses, ``aux_loss``).
* **3.1.4 Action classification head** (:class:`ActionClassificationHead`). The three input
  levels are average-pooled over their valid steps, concatenated, and a linear layer with
  sigmoid predicts which classes occur in the clip (BCE against the classes of the clip's
  ground truth). At inference each proposal's class probability is multiplied by the clip's
  (``action_rescore``; Table 7 is ``action_head: false``).
* **3.2.1 Losses** (Eq. 2-3). Hungarian matching (:mod:`tadkit.models.set_prediction`), then
  ``λ_cls·focal + λ_L1·L1 + λ_giou·(1 − GIoU)`` on the normalised (start, end) of matched pairs,
  normalised by the number of ground truths, on every stage, plus ``λ_act·BCE`` of the action
  classification head.
* **3.2.2 Inference.** The last stage's N × K (proposal, class) scores; the ``inference_topk``
  best pairs of the window (Sparse R-CNN's rule: one candidate per pair, so a proposal may be
  kept for several classes) become Instances in feature units of the window. Soft-NMS across
  the overlapping windows is the shared post-processing (``test.nms: soft``).

Paper hyperparameters: N = 50 proposals (THUMOS14) / 100 (ActivityNet), d = 256, η = 5, four
stacked heads, windows of 256 frames at 10 fps (25.6 s) with stride 30 (training) and 128
(inference) on THUMOS14, 768 frames per video on ActivityNet; AdamW, weight decay 1e-4,
batch 16, lr 1e-4 for 12 epochs then 1e-5 for 4 (``configs/sptad/``).

Where the paper is silent (Sparse R-CNN's values unless said otherwise):

* Loss and matching-cost weights λ_cls = 2, λ_L1 = 5, λ_giou = 2 (Sparse R-CNN: the paper
  lists the λ's but gives no values), focal α = 0.25, γ = 2, classifier bias prior 0.01;
  λ_act = 1. The matching costs use the loss weights.
* Widths: d_h = 64 (``dynamic_dim``), 8 attention heads, FFN 2048, dropout 0, SoI resolution
  T' = 16 (``roi_size``) with 2 linear-interpolation samples per bin; the sparse-interaction
  output is flattened and projected to d, each matrix product followed by LayerNorm + ReLU;
  post-norm residual blocks; separate parameters per stage.
* Segments are ``(centre, width)`` normalised by the window's valid length T_b (feature index
  x ↦ (x + 0.5) / T_b, so [0, 1] is the window's extent); targets are clipped to it. A stage
  predicts deltas ``c' = c + (Δc / 2)·w``, ``w' = w·exp(Δw)`` (Sparse R-CNN's weights 2, 1 and
  exp clamp); the last regression layer starts at zero, so stage 1 starts at the proposals.
* Initial proposals, "any size, placed randomly": centres U(0, 1), widths U(0.05, 1)
  (``proposal_init: random``); ``whole`` puts every proposal on the whole window (Sparse
  R-CNN's image-sized boxes).
* Eq. 1 uses the length t of the (unexpanded) proposal, T = the window's valid length, l₀ the
  index of the coarsest level, floor, clamped to the levels that exist.
* RoI align follows torchvision's RoIAlign: level step j is centred at feature position j·s_l;
  sample positions within one step outside the valid steps take the border value, farther ones
  are zero; the pooled segment is detached (gradients reach segments only through the deltas).
* The action classification head pools the three input levels (also under the Table 5
  ablations); its BCE is the mean over clips and classes.
* Inference keeps the ``inference_topk`` (100) best (proposal, class) pairs of a window;
  segments are clipped to the window.
* ``pyramid: single`` keeps the k1 and k3 convs of the pyramid on its one level (so the head
  reads d channels in every variant); ``pyramid: high`` makes its two coarser inputs with the
  same strided conv stages as :class:`FeatureStages`.
* On pre-extracted features the windows are set in feature steps (``configs/sptad``): THUMOS14's
  25.6 s clips are 192 steps of 30 fps features every 4 frames, the strides of 3 s and 12.8 s
  overlaps of 1 − 22.5/192 and 0.5; ActivityNet videos are resampled to 768 steps.
* The learnable proposal segments are weight-decayed like other matrices (as in Sparse R-CNN);
  list ``proposal_segments`` in ``train.no_decay`` to exempt them.

Departure in ``configs/sptad/custom.yaml`` (the dataset configs keep the paper's setting):

* ``action_rescore: false``: the action classification head is still trained (its BCE shapes the
  input levels) but its clip probabilities do not multiply the proposal scores. On pre-extracted
  features the head is one linear layer on pooled window features, far weaker than the paper's
  end-to-end I3D video classifier, and it overfits: on the synthetic benchmark (80 videos, noise
  0.7, 24 epochs, width 64) its validation probability was 0.51 for classes present in a window
  and 0.23 for absent ones (training: 0.83 / 0.07), and the same trained model scored 55.9 %
  average mAP with rescoring and 66.5 % without. ``model.action_rescore=true`` is the paper's
  inference (Table 7).

Not implemented: the I3D backbone itself and its end-to-end training (``pyramid_input:
backbone`` takes the three maps a backbone produced), and the image-level augmentations.

Masks are prefix masks (valid steps first, as :func:`tadkit.data.dataset.collate` pads): a
window's length is its number of valid steps, and padding changes nothing for the valid ones.
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ...core.errors import ConfigError
from ...core.instances import Instances
from ..layers import LayerNorm, MaskedConv1D, MaskedMaxPool1D, apply_mask, model_inputs
from ..set_prediction import HungarianMatcher, SetCriterion, cw_to_se

PYRAMIDS = ("inter", "single", "high")
PYRAMID_INPUTS = ("features", "backbone")
PROPOSAL_INITS = ("random", "whole")
#: two-stream I3D (RGB + flow concatenated): Mixed_3c, Mixed_4f, Mixed_5c (strides 2, 4, 8)
I3D_TWO_STREAM_DIMS = (960, 1664, 2048)
#: Sparse R-CNN's bound on the width delta, log(100000 / 16)
DELTA_CLAMP = math.log(100000.0 / 16)


def _require(condition: bool, message: str, fix: str | None = None) -> None:
    if not condition:
        raise ConfigError(message, fix=fix)


# ============================================================================ Sec. 3.1.1-3.1.2
class FeatureStages(nn.Module):
    """Three input levels from a feature sequence: a chain of strided masked convs (strides 2, 4, 8).

    Each stage is conv(k, stride 2) → LayerNorm → ReLU; ``num_stages`` stages give levels of
    strides 2, 4, …, 2^num_stages. Stage j's step i is centred at feature position i·2^(j+1).
    """

    def __init__(self, input_dim: int, dim: int, num_stages: int = 3, kernel_size: int = 3):
        super().__init__()
        self.convs = nn.ModuleList(MaskedConv1D(input_dim if j == 0 else dim, dim, kernel_size, stride=2, bias=False)
                                   for j in range(num_stages))
        self.norms = nn.ModuleList(LayerNorm(dim) for _ in range(num_stages))

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        feats, masks = [], []
        for conv, norm in zip(self.convs, self.norms):
            x, mask = conv(x, mask)  # (B, dim, ceil(T / 2^(j+1)))
            x = apply_mask(F.relu(norm(x)), mask)
            feats.append(x)
            masks.append(mask)
        return feats, masks


class TemporalFeaturePyramid(nn.Module):
    """Sec. 3.1.2: k1 convs to ``dim``, top-down addition, k3 smoothing, plus ``extra_levels``
    max-pooled levels (stride 2 each) on the coarsest output. Masks travel with every level."""

    def __init__(self, in_channels: Sequence[int], dim: int = 256, extra_levels: int = 1, top_down: bool = True):
        super().__init__()
        self.top_down = top_down
        self.laterals = nn.ModuleList(MaskedConv1D(c, dim, 1) for c in in_channels)
        self.outputs = nn.ModuleList(MaskedConv1D(dim, dim, 3) for _ in in_channels)
        self.pools = nn.ModuleList(MaskedMaxPool1D(2) for _ in range(extra_levels))

    def forward(self, feats: list[torch.Tensor], masks: list[torch.Tensor]) -> tuple[list[torch.Tensor],
                                                                                        list[torch.Tensor]]:
        lat = [conv(x, m)[0] for conv, x, m in zip(self.laterals, feats, masks)]  # (B, d, T_l) each
        if self.top_down:
            for level in range(len(lat) - 1, 0, -1):
                finer = lat[level - 1]
                up = lat[level].repeat_interleave(2, dim=-1)[..., : finer.shape[-1]]  # (B, d, T_{l-1}) nearest
                lat[level - 1] = finer + apply_mask(up, masks[level - 1])
        out = [conv(x, m)[0] for conv, x, m in zip(self.outputs, lat, masks)]
        out_masks = list(masks)
        for pool in self.pools:
            x, m = pool(out[-1], out_masks[-1])  # (B, d, T_top / 2)
            out.append(x)
            out_masks.append(m)
        return out, out_masks


# ============================================================================ Sec. 3.1.3 pieces
def pyramid_level(widths: torch.Tensor, num_levels: int) -> torch.Tensor:
    """Eq. 1: ``l = ⌊l₀ + log₂(t / T)⌋`` clamped to ``[0, num_levels − 1]``, with l₀ = num_levels − 1.

    ``widths`` are proposal lengths relative to the window (t / T), any shape; returns long.
    """
    l0 = num_levels - 1
    level = torch.floor(l0 + torch.log2(widths.clamp(min=1e-6)))
    return level.clamp(0, l0).long()


def roi_align_1d(feats: Sequence[torch.Tensor], valid: torch.Tensor, rois: torch.Tensor, levels: torch.Tensor,
                 output_size: int, sampling_ratio: int = 2) -> torch.Tensor:
    """1-D RoI align from a pyramid, each RoI from its own level, in one gather.

    feats: L tensors (B, C, T_l); valid: (B, L) number of valid (prefix) steps of each level;
    rois: (B, N, 2) ``[start, end]`` in step coordinates of the RoI's level (step j at position j);
    levels: (B, N) long. Bin k of ``output_size`` averages ``sampling_ratio`` points
    ``start + (k + (i + ½)/S)·(end − start)/P``, each linearly interpolated between its two
    neighbouring steps; as in torchvision's RoIAlign a point in ``[−1, 0)`` or
    ``(n − 1, n]`` (n valid steps) takes the border value and one farther out is zero.
    Returns (B, N, output_size, C).
    """
    B, N, _ = rois.shape
    C = feats[0].shape[1]
    P, S = output_size, sampling_ratio
    starts = torch.tensor([0] + [f.shape[-1] for f in feats], device=rois.device).cumsum(0)[:-1]  # (L,)
    flat = torch.cat(list(feats), dim=-1).transpose(1, 2)  # (B, ΣT_l, C)
    frac = (torch.arange(P, device=rois.device, dtype=rois.dtype)[:, None]
            + (torch.arange(S, device=rois.device, dtype=rois.dtype)[None, :] + 0.5) / S) / P  # (P, S)
    lo, length = rois[..., 0], rois[..., 1] - rois[..., 0]  # (B, N)
    u = lo[..., None, None] + frac * length[..., None, None]  # (B, N, P, S)
    n = valid.gather(1, levels).to(u.dtype)[..., None, None]  # (B, N, 1, 1)
    inside = ((u >= -1) & (u <= n)).to(flat.dtype)
    u = torch.minimum(u.clamp(min=0), n - 1)
    i0 = u.floor()
    w1 = (u - i0).to(flat.dtype)
    i0 = i0.long()
    i1 = torch.minimum(i0 + 1, (n - 1).long())
    base = starts[levels][..., None, None]  # (B, N, 1, 1)

    def take(idx: torch.Tensor) -> torch.Tensor:
        idx = (base + idx).reshape(B, -1, 1).expand(-1, -1, C)  # (B, N·P·S, C)
        return flat.gather(1, idx).view(B, N, P, S, C)

    value = (take(i0) * (1 - w1)[..., None] + take(i1) * w1[..., None]) * inside[..., None]  # (B, N, P, S, C)
    return value.mean(dim=3)  # (B, N, P, C)


class SparseInteraction(nn.Module):
    """Sparse interaction module (Fig. 3): the proposal feature p_k gives a ``d × d_h`` and a
    ``d_h × d`` matrix; the SoI feature f_k (T' × d) is multiplied by them in turn (each product
    followed by LayerNorm and ReLU), flattened and projected to d (Sparse R-CNN's DynamicConv)."""

    def __init__(self, dim: int = 256, dynamic_dim: int = 64, roi_size: int = 16):
        super().__init__()
        self.dim, self.dynamic_dim = dim, dynamic_dim
        self.dynamic_layer = nn.Linear(dim, 2 * dim * dynamic_dim)
        self.norm1 = nn.LayerNorm(dynamic_dim)
        self.norm2 = nn.LayerNorm(dim)
        self.out_layer = nn.Linear(dim * roi_size, dim)
        self.norm3 = nn.LayerNorm(dim)

    def parameters_of(self, pro_features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The two dynamic matrices of each proposal: (…, d, d_h) and (…, d_h, d)."""
        d, dh = self.dim, self.dynamic_dim
        params = self.dynamic_layer(pro_features)  # (B, N, 2·d·d_h)
        w1 = params[..., : d * dh].reshape(*pro_features.shape[:-1], d, dh)
        w2 = params[..., d * dh:].reshape(*pro_features.shape[:-1], dh, d)
        return w1, w2

    def forward(self, pro_features: torch.Tensor, roi_features: torch.Tensor) -> torch.Tensor:
        """pro_features (B, N, d), roi_features (B, N, T', d) → segment features (B, N, d)."""
        w1, w2 = self.parameters_of(pro_features)
        x = F.relu(self.norm1(roi_features @ w1))  # (B, N, T', d_h)
        x = F.relu(self.norm2(x @ w2))  # (B, N, T', d)
        return F.relu(self.norm3(self.out_layer(x.flatten(2))))  # (B, N, d)


def apply_deltas(segments: torch.Tensor, deltas: torch.Tensor, weights: tuple[float, float] = (2.0, 1.0)) -> torch.Tensor:
    """Sparse R-CNN's box update in 1-D: ``c' = c + (Δc / w_c)·w``, ``w' = w·exp(min(Δw / w_w, clamp))``."""
    c, w = segments.unbind(-1)
    dc, dw = deltas[..., 0] / weights[0], (deltas[..., 1] / weights[1]).clamp(max=DELTA_CLAMP)
    return torch.stack((c + dc * w, w * torch.exp(dw)), dim=-1)


class ActionDetectionHead(nn.Module):
    """One stage of Sec. 3.1.3: MSA → RoI align (Eq. 1) → sparse interaction → FFN → class / deltas."""

    def __init__(self, num_classes: int, dim: int = 256, attn_heads: int = 8, ffn_dim: int = 2048,
                 dropout: float = 0.0, dynamic_dim: int = 64, roi_size: int = 16, roi_sampling: int = 2,
                 eta: float = 5.0, cls_prior_prob: float = 0.01, delta_weights: tuple[float, float] = (2.0, 1.0)):
        super().__init__()
        self.roi_size, self.roi_sampling, self.eta = roi_size, roi_sampling, eta
        self.delta_weights = tuple(delta_weights)
        self.self_attn = nn.MultiheadAttention(dim, attn_heads, dropout=dropout, batch_first=True)
        self.norm1 = nn.LayerNorm(dim)
        self.interaction = SparseInteraction(dim, dynamic_dim, roi_size)
        self.norm2 = nn.LayerNorm(dim)
        self.ffn = nn.Sequential(nn.Linear(dim, ffn_dim), nn.ReLU(inplace=True), nn.Dropout(dropout),
                                 nn.Linear(ffn_dim, dim))
        self.norm3 = nn.LayerNorm(dim)
        self.dropout = nn.Dropout(dropout)
        self.cls_branch = nn.Linear(dim, num_classes)
        self.reg_branch = nn.Sequential(nn.Linear(dim, dim), nn.ReLU(inplace=True), nn.Linear(dim, dim),
                                        nn.ReLU(inplace=True), nn.Linear(dim, 2))
        for p in self.parameters():
            if p.dim() > 1:
                nn.init.xavier_uniform_(p)
        nn.init.constant_(self.cls_branch.bias, -math.log((1 - cls_prior_prob) / cls_prior_prob))
        nn.init.zeros_(self.reg_branch[-1].weight)
        nn.init.zeros_(self.reg_branch[-1].bias)

    def soi_features(self, pyramid: list[torch.Tensor], valid: torch.Tensor, strides: Sequence[int],
                     segments: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """SoI features (B, N, T', d) of the expanded segments, each from its Eq. 1 level.

        segments (B, N, 2) normalised (centre, width); lengths (B,) valid window lengths (feature steps).
        """
        segments = segments.detach()
        levels = pyramid_level(segments[..., 1], len(pyramid))  # (B, N)
        bounds = cw_to_se(segments)  # (B, N, 2), normalised
        pad = segments[..., 1:] / self.eta
        bounds = torch.cat((bounds[..., :1] - pad, bounds[..., 1:] + pad), dim=-1)  # [t_s − t_l/η, t_e + t_l/η]
        x = bounds * lengths[:, None, None] - 0.5  # (B, N, 2) feature positions
        step = torch.as_tensor(list(strides), dtype=x.dtype, device=x.device)[levels]  # (B, N)
        rois = x / step[..., None]  # (B, N, 2) in level steps
        return roi_align_1d(pyramid, valid, rois, levels, self.roi_size, self.roi_sampling)  # (B, N, T', d)

    def forward(self, pyramid: list[torch.Tensor], valid: torch.Tensor, strides: Sequence[int],
                lengths: torch.Tensor, segments: torch.Tensor, pro_features: torch.Tensor):
        """Returns class logits (B, N, K), refined segments (B, N, 2) and the new proposal features (B, N, d)."""
        roi = self.soi_features(pyramid, valid, strides, segments, lengths)  # (B, N, T', d)
        x = self.norm1(pro_features + self.dropout(self.self_attn(pro_features, pro_features, pro_features,
                                                                  need_weights=False)[0]))  # (B, N, d)
        x = self.norm2(x + self.dropout(self.interaction(x, roi)))
        x = self.norm3(x + self.dropout(self.ffn(x)))
        logits = self.cls_branch(x)  # (B, N, K)
        new_segments = apply_deltas(segments, self.reg_branch(x), self.delta_weights)  # (B, N, 2)
        return logits, new_segments, x


class ActionClassificationHead(nn.Module):
    """Sec. 3.1.4: masked average pooling of each input level, concatenated, one linear layer (sigmoid outside)."""

    def __init__(self, in_channels: Sequence[int], num_classes: int):
        super().__init__()
        self.fc = nn.Linear(sum(in_channels), num_classes)

    def forward(self, feats: list[torch.Tensor], masks: list[torch.Tensor]) -> torch.Tensor:
        pooled = [(apply_mask(x, m).sum(-1) / m.sum(-1, keepdim=True).clamp(min=1).to(x.dtype))
                  for x, m in zip(feats, masks)]  # each (B, C_l)
        return self.fc(torch.cat(pooled, dim=-1))  # (B, K) logits


# ============================================================================ the detector
class SPTAD(nn.Module):
    """SP-TAD detector; see the module docstring. Hyperparameters only in the constructor.

    Pyramid (Sec. 3.1.1-3.1.2, Table 5): ``pyramid`` (``inter`` | ``single`` | ``high``),
    ``pyramid_input`` (``features``: levels from the feature sequence by strided convs of width
    ``stage_dim``; ``backbone``: the batch brings three maps of widths ``backbone_dims``),
    ``hidden_dim`` (d). Detection head (Sec. 3.1.3, Table 6): ``num_proposals``,
    ``proposal_init``, ``num_stages`` (stacked heads), ``attn_heads``, ``ffn_dim``, ``dropout``,
    ``dynamic_dim`` (d_h), ``roi_size`` (T'), ``roi_sampling``, ``eta``, ``cls_prior_prob``,
    ``delta_weights``. Action classification head (Sec. 3.1.4, Table 7): ``action_head``,
    ``action_rescore``. Losses (Eq. 2-3): ``cls_weight``, ``l1_weight``, ``giou_weight``,
    ``act_weight``, ``focal_alpha``, ``focal_gamma``, ``aux_loss``. Inference:
    ``inference_topk``. ``max_seq_len`` is the training window; any length works at inference.
    """

    END_TO_END = True   # model.backbone: trained from frames (tadkit.models.video_detector)

    def __init__(self, num_classes: int, input_dim: int, max_seq_len: int = 192, *,
                 # Sec. 3.1.1-3.1.2: input levels and temporal feature pyramid
                 pyramid: str = "inter", pyramid_input: str = "features", stage_dim: int = 256,
                 backbone_dims: Sequence[int] = I3D_TWO_STREAM_DIMS, hidden_dim: int = 256,
                 # Sec. 3.1.3: action detection head
                 num_proposals: int = 50, proposal_init: str = "random", num_stages: int = 4, attn_heads: int = 8,
                 ffn_dim: int = 2048, dropout: float = 0.0, dynamic_dim: int = 64, roi_size: int = 16,
                 roi_sampling: int = 2, eta: float = 5.0, cls_prior_prob: float = 0.01,
                 delta_weights: Sequence[float] = (2.0, 1.0),
                 # Sec. 3.1.4: action classification head
                 action_head: bool = True, action_rescore: bool = True,
                 # Sec. 3.2.1: losses and matching costs
                 cls_weight: float = 2.0, l1_weight: float = 5.0, giou_weight: float = 2.0, act_weight: float = 1.0,
                 focal_alpha: float = 0.25, focal_gamma: float = 2.0, aux_loss: bool = True,
                 # Sec. 3.2.2: inference
                 inference_topk: int = 100):
        super().__init__()
        _require(num_classes >= 1, f"num_classes must be >= 1, got {num_classes}")
        _require(max_seq_len >= 1, f"max_seq_len must be >= 1, got {max_seq_len}", "set model.max_seq_len")
        _require(pyramid in PYRAMIDS, f"model.pyramid must be one of {', '.join(PYRAMIDS)}, got {pyramid!r}",
                 "set model.pyramid to inter (the paper), single or high (Table 5)")
        _require(pyramid_input in PYRAMID_INPUTS,
                 f"model.pyramid_input must be one of {', '.join(PYRAMID_INPUTS)}, got {pyramid_input!r}",
                 "use features (pre-extracted features) or backbone (three backbone maps in the batch)")
        _require(proposal_init in PROPOSAL_INITS,
                 f"model.proposal_init must be one of {', '.join(PROPOSAL_INITS)}, got {proposal_init!r}",
                 "set model.proposal_init to random or whole")
        _require(pyramid_input == "backbone" or input_dim >= 1, f"input_dim must be >= 1, got {input_dim}")
        dims = list(backbone_dims) if isinstance(backbone_dims, Sequence) else []
        _require(len(dims) == 3 and all(isinstance(c, int) and c >= 1 for c in dims),
                 f"model.backbone_dims must be three positive channel widths, got {backbone_dims!r}",
                 "e.g. [960, 1664, 2048] for two-stream I3D")
        for key, value in (("stage_dim", stage_dim), ("hidden_dim", hidden_dim), ("num_proposals", num_proposals),
                           ("num_stages", num_stages), ("attn_heads", attn_heads), ("ffn_dim", ffn_dim),
                           ("dynamic_dim", dynamic_dim), ("roi_size", roi_size), ("roi_sampling", roi_sampling),
                           ("inference_topk", inference_topk)):
            _require(isinstance(value, int) and value >= 1, f"model.{key} must be an integer >= 1, got {value!r}",
                     f"set model.{key} to a positive integer")
        _require(hidden_dim % attn_heads == 0, f"model.hidden_dim ({hidden_dim}) must be divisible by "
                 f"model.attn_heads ({attn_heads})", "change one of them")
        _require(eta > 0, f"model.eta must be > 0, got {eta}", "the paper uses 5")
        _require(0 <= dropout < 1, f"model.dropout must be in [0, 1), got {dropout}", "e.g. 0.0")
        _require(0 < cls_prior_prob < 1, f"model.cls_prior_prob must be in (0, 1), got {cls_prior_prob}", "e.g. 0.01")
        _require(len(delta_weights) == 2 and all(w > 0 for w in delta_weights),
                 f"model.delta_weights must be two positive numbers, got {delta_weights!r}", "e.g. [2.0, 1.0]")
        for key, value in (("cls_weight", cls_weight), ("l1_weight", l1_weight), ("giou_weight", giou_weight),
                           ("act_weight", act_weight), ("focal_gamma", focal_gamma)):
            _require(value >= 0, f"model.{key} must be >= 0, got {value}", f"set model.{key} to a non-negative number")
        _require(action_head or not action_rescore, "model.action_rescore needs model.action_head",
                 "set model.action_rescore=false or model.action_head=true")
        self.num_classes, self.input_dim, self.max_seq_len = num_classes, input_dim, max_seq_len
        self.pyramid, self.pyramid_input = pyramid, pyramid_input
        self.num_proposals, self.num_stages = num_proposals, num_stages

        # Sec. 3.1.1: three input levels (strides 2, 4, 8)
        if pyramid_input == "features":
            self.stages = FeatureStages(input_dim, stage_dim, 3)
            level_dims = [stage_dim] * 3
        else:
            self.stages = None
            level_dims = dims
        self.level_dims = level_dims
        # Sec. 3.1.2 and Table 5
        if pyramid == "inter":
            self.high_stages = None
            self.tfp = TemporalFeaturePyramid(level_dims, hidden_dim, extra_levels=1)
            self.strides = (2, 4, 8, 16)
        elif pyramid == "high":
            self.high_stages = FeatureStages(level_dims[-1], hidden_dim, 2)  # strides 16, 32 from the stride-8 level
            self.tfp = TemporalFeaturePyramid([level_dims[-1], hidden_dim, hidden_dim], hidden_dim, extra_levels=1)
            self.strides = (8, 16, 32, 64)
        else:  # single
            self.high_stages = None
            self.tfp = TemporalFeaturePyramid(level_dims[-1:], hidden_dim, extra_levels=0)
            self.strides = (8,)
        self.pad_multiple = max(self.strides)

        # Sec. 3.1.3: learnable proposals and stacked detection heads
        if proposal_init == "random":
            init = torch.stack((torch.rand(num_proposals), 0.05 + 0.95 * torch.rand(num_proposals)), dim=-1)
        else:
            init = torch.tensor([[0.5, 1.0]]).repeat(num_proposals, 1)
        self.proposal_segments = nn.Parameter(init)  # (N, 2) normalised (centre, width)
        self.proposal_features = nn.Parameter(torch.randn(num_proposals, hidden_dim) * hidden_dim ** -0.5)  # (N, d)
        self.heads = nn.ModuleList(
            ActionDetectionHead(num_classes, hidden_dim, attn_heads, ffn_dim, dropout, dynamic_dim, roi_size,
                                roi_sampling, eta, cls_prior_prob, tuple(float(w) for w in delta_weights))
            for _ in range(num_stages))

        # Sec. 3.1.4
        self.action_rescore = bool(action_rescore)
        self.action_head = ActionClassificationHead(level_dims, num_classes) if action_head else None

        # Sec. 3.2.1
        self.cls_weight, self.l1_weight, self.giou_weight, self.act_weight = cls_weight, l1_weight, giou_weight, act_weight
        self.focal_alpha, self.focal_gamma = focal_alpha, focal_gamma
        self.aux_loss = bool(aux_loss)
        matcher = HungarianMatcher(cls_weight, l1_weight, giou_weight, class_cost="focal", l1_format="se",
                                   iou_type="giou", focal_alpha=focal_alpha, focal_gamma=focal_gamma)
        self.criterion = SetCriterion(num_classes, matcher, class_loss="focal", focal_alpha=focal_alpha,
                                      focal_gamma=focal_gamma, l1_format="se", iou_type="giou",
                                      weight_class=cls_weight, weight_l1=l1_weight, weight_iou=giou_weight,
                                      aux_loss=aux_loss)
        self.inference_topk = inference_topk

    # ---------------------------------------------------------------- Sec. 3.1.1-3.1.2
    @property
    def device(self) -> torch.device:
        return self.proposal_features.device

    def preprocess(self, batch: dict) -> tuple[list[torch.Tensor], list[torch.Tensor], torch.Tensor]:
        """The three input levels [(B, C_l, T_l)] with masks [(B, T_l)], and the valid lengths (B,) of the clips."""
        masks = batch["masks"].to(device=self.device, dtype=torch.bool)  # (B, T)
        pad = -masks.shape[1] % self.pad_multiple
        masks = F.pad(masks, (0, pad), value=False)  # (B, T')
        lengths = masks.sum(1).to(torch.float32)  # (B,)
        feats = batch["feats"]
        if self.pyramid_input == "features":
            x, masks = model_inputs(batch, self.input_dim, self.device, masks.shape[1],
                                    fix="set the model's input_dim to the feature width, or "
                                        "model.pyramid_input=backbone for three backbone maps")  # (B, C, T')
            levels, level_masks = self.stages(x, masks)
        else:
            if not isinstance(feats, (list, tuple)) or len(feats) != 3:
                raise ConfigError("model.pyramid_input=backbone expects batch['feats'] to be a list of three "
                                  "backbone maps (B, C_l, T / s_l), s_l = 2, 4, 8",
                                  fix="pass the backbone's three stages, or set model.pyramid_input=features")
            levels, level_masks = [], []
            for x, s, c in zip(feats, (2, 4, 8), self.level_dims):
                m = masks[:, ::s]  # (B, T' / s)
                if x.ndim != 3 or x.shape[1] != c or x.shape[2] > m.shape[1]:
                    raise ConfigError(f"backbone map of shape {tuple(x.shape)} does not fit stride {s} of a clip "
                                      f"of {batch['masks'].shape[1]} steps with {c} channels",
                                      fix="set model.backbone_dims to the backbone's stage widths")
                x = F.pad(x.to(device=self.device, dtype=torch.float32), (0, m.shape[1] - x.shape[2]))
                levels.append(apply_mask(x, m))
                level_masks.append(m)
        return levels, level_masks, lengths

    def encode(self, levels: list[torch.Tensor], masks: list[torch.Tensor]) -> tuple[list[torch.Tensor],
                                                                                     list[torch.Tensor]]:
        """The pyramid [(B, d, T_l)] with masks, one level per entry of ``self.strides``."""
        if self.pyramid == "inter":
            return self.tfp(levels, masks)
        if self.pyramid == "single":
            return self.tfp(levels[-1:], masks[-1:])
        high, high_masks = self.high_stages(levels[-1], masks[-1])
        return self.tfp([levels[-1], *high], [masks[-1], *high_masks])

    # ---------------------------------------------------------------- Sec. 3.1.3-3.1.4
    def run(self, batch: dict) -> dict:
        """Network outputs: per stage ``logits`` [(B, N, K)] and ``segments`` [(B, N, 2)], ``action_logits``
        (B, K) or None, ``lengths`` (B,), and the pyramid with its masks."""
        levels, level_masks, lengths = self.preprocess(batch)
        pyramid, pyramid_masks = self.encode(levels, level_masks)
        valid = torch.stack([m.sum(1) for m in pyramid_masks], dim=1)  # (B, L) valid steps per level
        B = lengths.shape[0]
        centre, width = self.proposal_segments.unbind(-1)
        segments = torch.stack((centre, width.clamp(min=1e-3)), dim=-1)[None].expand(B, -1, -1)  # (B, N, 2)
        features = self.proposal_features[None].expand(B, -1, -1)  # (B, N, d)
        all_logits, all_segments = [], []
        for head in self.heads:  # iterative refinement
            logits, segments, features = head(pyramid, valid, self.strides, lengths, segments, features)
            all_logits.append(logits)
            all_segments.append(segments)
            segments = segments.detach()
        action_logits = self.action_head(levels, level_masks) if self.action_head is not None else None
        return {"logits": all_logits, "segments": all_segments, "action_logits": action_logits,
                "lengths": lengths, "pyramid": pyramid, "pyramid_masks": pyramid_masks}

    def forward(self, batch: dict) -> dict[str, torch.Tensor]:
        """Named losses of a training batch; ``loss`` is the total to minimise (Eq. 2)."""
        return self.compute_losses(self.run(batch), batch)

    # ---------------------------------------------------------------- Sec. 3.2.1
    def targets(self, outputs: dict, batch: dict) -> list[dict]:
        """Per clip: ``labels`` (M,) and ``segments`` (M, 2) normalised (start, end), clipped to the window."""
        out = []
        for b, (segs, labels) in enumerate(zip(batch["segments"], batch["labels"])):
            length = outputs["lengths"][b]
            segs = segs.to(device=self.device, dtype=torch.float32).reshape(-1, 2)
            bounds = ((segs + 0.5) / length).clamp(0.0, 1.0)  # (M, 2)
            out.append({"labels": labels.to(device=self.device, dtype=torch.long).reshape(-1), "segments": bounds})
        return out

    def action_loss(self, outputs: dict, targets: list[dict]) -> torch.Tensor:
        """BCE of the clip-level class probabilities against the classes present in each clip."""
        logits = outputs["action_logits"].float()  # (B, K)
        target = torch.zeros_like(logits)  # (B, K) multi-hot
        for b, t in enumerate(targets):
            target[b, t["labels"]] = 1.0
        return F.binary_cross_entropy_with_logits(logits, target, reduction="mean")

    def compute_losses(self, outputs: dict, batch: dict) -> dict[str, torch.Tensor]:
        """Eq. 2: the set prediction loss of every stage (Hungarian matching on each, Eq. 3 normalised by the
        number of ground truths) plus ``act_weight`` · the action classification loss.

        Names: ``loss_ce`` (focal), ``loss_l1``, ``loss_iou`` (1 − GIoU) of the last stage, ``_i`` for
        stage i < last, ``loss_act``; ``loss`` the weighted total.
        """
        targets = self.targets(outputs, batch)
        layers = [{"logits": logits, "segments": cw_to_se(segments)}  # normalised (start, end)
                  for logits, segments in zip(outputs["logits"], outputs["segments"])]
        losses = self.criterion(layers, [t["segments"] for t in targets], [t["labels"] for t in targets])
        if outputs["action_logits"] is not None:
            losses["loss_act"] = self.action_loss(outputs, targets)
            losses["loss"] = losses["loss"] + self.act_weight * losses["loss_act"]
        return losses

    # ---------------------------------------------------------------- Sec. 3.2.2
    @torch.no_grad()
    def predict(self, batch: dict) -> list[Instances]:
        """The ``inference_topk`` best (proposal, class) pairs per window, feature units of the window (no NMS)."""
        return self.decode(self.run(batch))

    @torch.no_grad()
    def decode(self, outputs: dict) -> list[Instances]:
        probs = outputs["logits"][-1].float().sigmoid()  # (B, N, K)
        if self.action_rescore and outputs["action_logits"] is not None:
            probs = probs * outputs["action_logits"].float().sigmoid()[:, None, :]
        lengths = outputs["lengths"]  # (B,)
        bounds = cw_to_se(outputs["segments"][-1].float()) * lengths[:, None, None] - 0.5  # (B, N, 2)
        lo = torch.full_like(bounds, -0.5)
        bounds = torch.minimum(torch.maximum(bounds, lo), (lengths - 0.5)[:, None, None])  # clipped to the window
        B, N, K = probs.shape
        k = min(self.inference_topk, N * K)
        scores, idx = probs.flatten(1).topk(k, dim=1)  # (B, k)
        proposal, label = idx // K, idx % K
        segs = bounds.gather(1, proposal[..., None].expand(-1, -1, 2))  # (B, k, 2)
        results = []
        for b in range(B):
            keep = segs[b, :, 1] > segs[b, :, 0]
            results.append(Instances(segs[b][keep].double().cpu().numpy(), label[b][keep].cpu().numpy(),
                                     scores[b][keep].double().cpu().numpy()).sorted_by_score())
        return results


DETECTOR = SPTAD
