"""TAGS: proposal-free temporal action detection by global segmentation masks (Nag et al., ECCV 2022).

Read top to bottom like the paper (``papers/tags.txt``); the losses and the ground truth live in
:mod:`._tags_losses`.

* **3.1 Self-attentive multi-scale snippet embedding** (:class:`MultiScaleSnippetEmbedding`).
  For every scale s ∈ ``scales`` the snippet features F are pooled with stride s (masked max
  pooling, kernel s + 1, so snippet i of scale s sits at feature position i·s), and a pre-norm
  transformer block attends over the whole window: ``A = F̂ + MA(LN(F̂))`` with n_h heads
  (Eq. 1), ``E^s = A + FC(LN(A))``, the one-layer MLP with residual (Eq. 2).
* **3.2 Two branches.** :class:`ClassificationBranch`: a 1-D conv to K + 1 logits,
  ``P^s = softmax`` (Eq. 3). :class:`GlobalMaskBranch`: three 1-D conv layers whose last one has
  Tˢ output channels, ``M^s = sigmoid(H_b(E^s))`` (B, Tˢ, Tˢ), column t the full-window
  foreground mask predicted by snippet t (Eq. 4).
* **3.3 Training.** Ground truth per scale (:func:`~._tags_losses.global_mask_targets`): every
  snippet of an instance gets its class and that instance's mask, background elsewhere; a
  snippet inside several instances takes the shortest. Losses, summed over scales:
  ``L = L_c + L_m + L_pp + L_fc`` — Eq. 5 (focal on the softmax + class-balanced logistic on
  the sigmoid with the ⌈K/10⌉ hardest negatives), Eq. 6 (boundary IoU of the eroded
  boundary bands, normalised L2 when the boundaries do not overlap, plus λ2·Dice), Eq. 7–8
  (prediction promotion weighted by the best outer-inner contrast over Θ), Eq. 9
  (classification–mask consistency).
* **3.4 Inference.** Per scale the top-scoring (snippet, class) pairs of P; the snippet's mask
  binarised at every θ ∈ Θ; each foreground run is a candidate ``[q_s·s − s/2, q_e·s + s/2]``
  (feature units) scored ``class score × mean mask inside``; candidates of all scales together,
  exact duplicates merged (highest score). Soft-NMS, top-k and the optional fusion with external
  video-level scores (``test.video_scores``) are the shared post-processing.

Paper hyperparameters: n_h 4, scales {1, 2, 4} (Sec. 3.1; Table 5 and the THUMOS14 /
ActivityNet settings use {1, 2}), λ1 0.4, γ 2, α 10, |N| = K/10, λ2 0.4, erosion kernel 7,
ε = e⁻⁸, Θ = 0.1…0.9 step 0.05 (training and inference), δ 0.25, β 2, θ_m 0.5, θ_p 0.3,
top-k 40; Adam, 15 epochs, lr 1e-4 / batch 50 (ActivityNet, T = 800 or 100/200 in Table 5)
and lr 1e-5 / batch 25 (THUMOS14, T = 1024, windows).

Switches for the ablations: ``embedding`` (``transformer`` | ``cnn``: Table 4's 1-D CNN with
dilations 1, 3, 5, two layers each) with ``scales: [1]`` for the single-scale transformer
(Tables 4–5); ``mask_branch`` (``global`` | ``actionness``: one 1-D mask per window, Table 8 |
``none``: classification only, Table 6, decoded from ``1 − P(background)``); one flag per loss
term: ``focal_loss``, ``logistic_loss``, ``biou_loss``, ``dice_loss``, ``redundancy_loss``,
``consistency_loss``.

Departures from the paper (each a reading of a printed formula that cannot be used as printed):

* **Eq. 5** is printed without the minus signs of a log-likelihood; implemented as
  ``λ1(1 − p_y)^γ(−log p_y) + (1 − λ1)(−log r_y − α/|N| Σ_N log(1 − r_k))``.
* **Eq. 6** is printed as ``1 − (∩/∪ + ‖m − g‖/(c(∩ + ε)))``, which *rewards* a larger error
  and whose 1/(∩ + ε) would scale the loss by e⁸ and its gradient by e¹⁶. The text says the
  normalised L2 loss is used "in case of no boundary overlap"; implemented as
  ``1 − ∩/(∪ + ε) + [Φ(m > 0.5) ∩ Φ(g) = ∅]·‖m − g‖₂/c``. The Dice term is kept as printed,
  ``1 − mᵀg / Σ(m² + g²)`` (no factor 2; its minimum is 0.5).
* **Eq. 7** divides the outside sum by 2⌈δl⌉ even where the window ends first; we divide by the
  number of neighbour steps that exist.

Choices where the paper is silent:

* Φ(x) = x − erode(x) (the boundary band of Boundary IoU), erosion = min over the kernel along
  the mask axis; steps outside the window are ignored, so a window edge is no boundary.
  ∩ and ∪ are the soft products / probabilistic unions of the two bands. bIoU (+ L2) is
  averaged over the foreground snippets' masks; Dice is taken per video over the whole valid
  Tˢ×Tˢ map (background columns have empty targets, "inter-mask consistency") and averaged.
* Eq. 8: R(π[j*]) is a weight without gradient; ‖·‖₂ is the (unsquared) L2 norm over the
  valid steps; averaged over each instance's snippets, then over instances.
* Eq. 9: "argmax" takes each snippet's value at its best foreground class, "1DPool" is a mean
  over the valid mask positions of a column, topk returns the k largest values (k = 40, or the
  window length); E_p, E_m are 1×1 convs. L_c is averaged over valid snippets, L_fc over videos.
* Sine position encoding (feature-unit positions) is added to each scale's pooled features
  (``position_encoding``): attention and convs alone give no absolute position, which a mask
  over the whole window needs. An optional 1×1 input projection to ``embed_dim`` (``null``:
  attend on F itself, as the paper); heads of width C/n_h scaled by 1/√(C/n_h); the MLP's FC
  keeps the width and is followed by GELU; dropout 0.1 (the released code: 0.3); one block
  per scale (``num_layers``); every scale has its own blocks and heads (Table 5's parameter
  counts grow with the scales); scales are pooled in parallel from F. The mask branch is
  conv(k3)-ReLU-conv(k3)-ReLU-conv(k1) with ``mask_dim`` channels.
* Inference: the top ``inference_topk`` (snippet, class) pairs per scale; every foreground run
  of a thresholded mask is a candidate (``candidate_runs: containing`` keeps only the run
  that contains the snippet, a reading of Fig. 3(d): one segment per snippet mask and threshold; with
  ``all``, short high-valued fragments elsewhere in a mask win on the "class score × mean mask" score).
* ``mask_head: relative`` (not the paper's): the mask branch's last conv has
  2Tˢ − 1 channels indexed by the offset k − t of mask position k from snippet t, gathered into the
  same (B, Tˢ, Tˢ) map, so losses and inference are unchanged. With the paper's head (``conv``,
  channel k = absolute position k) a snippet must read where its action lies in the window from the
  position code alone; on small data (the synthetic benchmark: 60 videos, random crops) it did not
  learn this, every column of M stayed nearly the same low map (mean 0.2 on and off the
  ground truth), bIoU and Dice stayed flat and the runs were 1-2 snippet fragments (0.1 % average
  mAP). Relative offsets make the mask translation-equivariant, like the classification branch.
* ``redundancy_norm: length`` (configs/tags/custom.yaml; ``none``: Eq. 8 as printed): the L2 norm of
  Eq. 8 is divided by c = Σ g, the "normalised L2" of Eq. 6. Unnormalised, ‖m − g‖₂ of a T-step mask
  is dominated by its many background steps and outweighs every other mask term; on the synthetic
  benchmark (diagnostic, 6 short epochs) the Eq. 8 term alone kept masks low (0.3-0.4 on the ground
  truth) and their IoU with it at 0.25-0.3, against ~0.5 without it.
* ``mask_bce_weight`` (default 0, the paper; custom.yaml 1.0): adds the released code's class-balanced
  binary cross-entropy on the whole map (:func:`~._tags_losses.balanced_bce_loss`) to the paper's mask
  losses. bIoU of soft boundary bands and the whole-map Dice give the masks little per-step signal (bIoU
  stayed ~1 per scale through training); with the BCE the masks reach ~0.55-0.65 on the ground truth and
  ~0.25 off it, and thresholded runs cover the actions instead of 1-10 step fragments.
* ``mask_head: boundary`` (configs/tags/custom.yaml; not the paper's, :class:`BoundaryMaskBranch`): H_b
  predicts a foreground gate per snippet and a break cost per pair of neighbours, and the mask of snippet
  t is the gate times exp(−(sum of the break costs between t and k)): one interval around t whose ends
  are decided by the evidence at the boundaries. Measured on the synthetic benchmark (24 epochs, videos
  resized to 256 snippets, 2 stem convs): with the ``relative`` head the masks were smooth bumps centred
  on their snippet (validation mask IoU 0.30 at θ = 0.5) and "class score × mean mask" ranked the short
  runs at the top of each bump first (11.5 % average mAP; with ground-truth classes 10.1 %); the
  ``boundary`` head reached mask IoU 0.51 (0.92 on training videos) and 33.6 % (43.0 % with
  ground-truth classes); with also 2 attention blocks per scale and AdamW (weight decay 0.05), as in
  configs/tags/custom.yaml, 37.6 % resized and 35.4 % in windows of 512 steps (ActionFormer: 64.5 %). Without the mask BCE (the paper's mask losses only) the head gave 31.4 %.
* ``input_dropout`` (configs/tags/custom.yaml 0.3; default 0, the paper): dropout on the input features
  in training, against the overfitting that the boundary head showed (mask IoU 0.92 on training videos,
  0.51 on validation). Synthetic benchmark, windows of 512 steps, custom.yaml's other settings, seed 0:
  35.4 % → 39.5 % average mAP, 0.5 gave 36.1 %; seed 1: 32.3 % → 39.2 %, the gain mostly at tIoU 0.6–0.7
  (26.6 % and 19.5 % → 33.1 % and 27.0 %). ActionFormer on the same data: 64.5 % (seed 0), 71.4 % (seed 1).
* ``dropout: 0.3`` in the attention blocks (configs/tags/custom.yaml; the released code's value, the
  default 0.1): 39.5 → 41.5 % (seed 0), 39.2 → 39.9 % (seed 1). 40 epochs instead of 24 with it: 39.4 %
  (seed 0); the 1-D CNN embedding of Table 4 instead of attention (``embedding: cnn``): 38.6 % (seed 0).
  Diagnosis of the remaining gap (seed 0, 39.5 %): class-agnostic 48.3 %, with each detection relabelled by
  the ground truth it overlaps most 49.9 %, so the masks, not only the classes, fall short; among the 150
  top-scoring detections 44 lie on pure background (ActionFormer: 18) and 30 are fragments of an action.
* ``train`` in configs/tags/custom.yaml: 24 epochs, 2 warm-up, batch 4, lr 1e-3 (AdamW, weight decay 0.05) instead
  of 15 epochs, batch 8, lr 1e-4 (itself 10x the paper's THUMOS14 rate). Trained as a user runs it
  (``tadkit train configs/tags/custom.yaml`` at its shipped width 256, only the data paths and timing set) on the
  synthetic benchmark's single-label data (80 videos, noise 0.7): 29.3 % average mAP (tIoU 0.3:0.7) with the old
  schedule (105 optimiser steps), 54.6 / 48.2 % (seeds 0 / 1) with the new one, against 41.5 / 39.9 % at the
  benchmark's width 64. After the CPU speed work in the shared layers (float-level changes): 50.6 / 54.3 / 55.9 %
  (seeds 0 / 1 / 2, 53.6 % mean; ``tadkit synth DIR --videos 80 --noise-scale 0.7``, ``train.seed=S``). The
  official ActionFormer release in the benchmark (width 64): 62.5 / 63.5 / 69.7 %, so 81 / 86 / 80 % of it (82 % on
  the means); at its own width it was not run here (a CPU trains it in hours).
  Speed (Table 2's claim), 2 CPU threads on the same 60 training videos: ``custom.yaml`` 6.7 s per epoch, the
  baseline's ``configs/actionformer/custom.yaml`` 24.8 s; ``tadkit predict`` of the 20 test videos 2.7 s against
  4.7 s (start-up ~1.6 s included); at width 64 for both 4.3 against 3.6 s per epoch, 29 against 40 ms per video.
* Options measured without gain on the same benchmark (seed 0; off in configs/tags/custom.yaml):
  ``cls_pooling: mask`` (:class:`ClassificationBranch`: the classifier also sees the mean of the features
  over the snippet's own predicted mask) 34.5 % against 35.4 %; ``cls_layers: 2`` (ActionFormer's k3
  conv tower before a k3 classifier) 33.9 % and ``attention_window: 9`` (attention to |i − j| ≤ 9 steps
  of the scale only, ActionFormer's local window of 19) 36.7 %, both with ``input_dropout: 0.3``
  (39.5 % without them); the paper's scales {1, 2, 4} 30.5 % (without input dropout); with all of
  custom.yaml (41.5 %), the same trained model re-decoded with ``candidate_score: segment`` (each candidate's
  class probability averaged over its run instead of the seed snippet's, against background fragments that
  one confident snippet lifts) 33.0 %.
* ``data.fixed_length`` (activitynet.yaml): every video resized to T snippets by linear
  interpolation, the paper's Sec. 4 practice, so one window holds the whole video. With sliding
  windows an action cut by a window edge gives partial candidates as confident as the whole one, and
  an action longer than a window none: decoding the ground-truth masks and classes gave 94.0 % average
  mAP on the synthetic benchmark with windows of 256 steps, 99.8 % resized to 256. Trained with
  custom.yaml's other settings: resized to 256 37.6 %, windows of 512 steps 35.4 %, windows of 256
  30.5 %. configs/tags/custom.yaml keeps windows of 512 steps: resizing a long video with short actions
  (THUMOS14: minutes-long videos, seconds-long actions) to a few hundred snippets would shrink its
  actions below one snippet.
* Windows: the mask branch has one output channel per position, so the model works on windows
  of exactly ``max_seq_len`` steps (shorter ones are padded); longer videos are windowed by
  the engine, so memory is quadratic in the window and linear in the video.

Where the released code departs from the paper (METHODS.md) we follow the paper: all instances,
bIoU + Dice (by default; ``mask_bce_weight`` adds the released code's mask BCE, see above), standard Soft-NMS (the engine's), labels from the classification branch
(external video-level scores only through ``test.video_scores``).
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ...core.errors import ConfigError
from ...core.instances import Instances
from ..layers import ConvStack, MaskedConv1D, MaskedMaxPool1D, apply_mask, model_inputs, sine_position_encoding
from ._tags_losses import (PAPER_THRESHOLDS, balanced_bce_loss, binary_runs, boundary_iou_loss, classification_loss, consistency_loss,
                           dice_loss, global_mask_targets, prefix_sums, prediction_promotion_loss, range_sum)

EMBEDDINGS = ("transformer", "cnn")
MASK_BRANCHES = ("global", "actionness", "none")
CANDIDATE_RUNS = ("all", "containing")
CANDIDATE_SCORES = ("snippet", "segment")
CLS_POOLINGS = ("none", "mask")
MASK_HEADS = ("conv", "affinity", "relative", "boundary")
REDUNDANCY_NORMS = ("none", "length")
LOSS_TERMS = ("focal_loss", "logistic_loss", "biou_loss", "dice_loss", "redundancy_loss", "consistency_loss")


def _require(condition: bool, message: str, fix: str | None = None) -> None:
    if not condition:
        raise ConfigError(message, fix=fix)


# ---------------------------------------------------------------------------- 3.1 snippet embedding
class AttentionBlock(nn.Module):
    """Pre-norm multi-head self-attention over the window (Eq. 1) and a one-FC MLP with residual (Eq. 2)."""

    def __init__(self, dim: int, num_heads: int, dropout: float = 0.1, window: int | None = None):
        super().__init__()
        self.num_heads = num_heads
        self.window = window                      # option: attend only to steps |i − j| <= window
        self.norm1, self.norm2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.qkv = nn.Linear(dim, 3 * dim)        # W_Q, W_K, W_V of every head
        self.proj = nn.Linear(dim, dim)           # mixes the concatenated heads [A_1 … A_nh]
        self.fc = nn.Linear(dim, dim)             # the MLP's one FC layer
        self.dropout = dropout

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """x (B, T, C), mask (B, T) -> (B, T, C), zero at invalid steps."""
        B, T, C = x.shape
        q, k, v = self.qkv(self.norm1(x)).view(B, T, 3, self.num_heads, C // self.num_heads).permute(2, 0, 3, 1, 4)
        p = self.dropout if self.training else 0.0
        attn = mask[:, None, None, :]
        if self.window is not None:               # local band; the diagonal keeps padding rows defined
            offset = (torch.arange(T, device=x.device)[:, None] - torch.arange(T, device=x.device)[None, :]).abs()
            attn = (attn & (offset <= self.window)) | (offset == 0)
        a = F.scaled_dot_product_attention(q, k, v, attn_mask=attn, dropout_p=p)           # (B, H, T, D)
        x = x + F.dropout(self.proj(a.transpose(1, 2).reshape(B, T, C)), p, self.training)        # Eq. 1
        x = x + F.dropout(F.gelu(self.fc(self.norm2(x))), p, self.training)                        # Eq. 2
        return x * mask[..., None]


class DilatedConvBlock(nn.Module):
    """Table 4's 1-D CNN embedding: residual k3 convs with dilations 1, 1, 3, 3, 5, 5 (ReLU)."""

    def __init__(self, dim: int, dilations: Sequence[int] = (1, 1, 3, 3, 5, 5)):
        super().__init__()
        self.convs = nn.ModuleList(nn.Conv1d(dim, dim, 3, padding=d, dilation=d) for d in dilations)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """x (B, T, C), mask (B, T) -> (B, T, C)."""
        x = x.transpose(1, 2)                                                         # (B, C, T)
        for conv in self.convs:
            x = apply_mask(x + F.relu(conv(x)), mask)
        return x.transpose(1, 2)


class SnippetEmbedding(nn.Module):
    """One temporal scale s of Sec. 3.1: pool F with stride s, add position encoding, then the blocks."""

    def __init__(self, dim: int, num_heads: int, scale: int, embedding: str = "transformer", num_layers: int = 1,
                 dropout: float = 0.1, position_scale: float = 0.1, attention_window: int | None = None):
        super().__init__()
        self.scale = scale
        self.pool = MaskedMaxPool1D(scale)                                            # P(θ): kernel s+1, stride s
        self.position_encoding = position_scale > 0
        if self.position_encoding:                                                    # learnable gain of the encoding
            self.position_gain = nn.Parameter(torch.tensor(float(position_scale)))
        if embedding == "cnn":
            self.blocks = nn.ModuleList([DilatedConvBlock(dim)])
        else:
            self.blocks = nn.ModuleList(AttentionBlock(dim, num_heads, dropout, attention_window)
                                        for _ in range(num_layers))

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x (B, C, T), mask (B, T) -> E^s (B, C, Tˢ), mask (B, Tˢ)."""
        x, mask = self.pool(x, mask)                                                  # (B, C, Tˢ)
        if self.position_encoding:
            pos = torch.arange(x.shape[-1], device=x.device) * self.scale
            x = apply_mask(x + self.position_gain * sine_position_encoding(pos, x.shape[1]).to(x.dtype), mask)
        h = x.transpose(1, 2)                                                         # (B, Tˢ, C)
        for block in self.blocks:
            h = block(h, mask)
        return h.transpose(1, 2), mask


class MultiScaleSnippetEmbedding(nn.Module):
    """Eq. 1–2 at every scale: an optional 1×1 projection of F, then one :class:`SnippetEmbedding` per scale."""

    def __init__(self, input_dim: int, dim: int | None, num_heads: int, scales: Sequence[int],
                 embedding: str = "transformer", num_layers: int = 1, dropout: float = 0.1,
                 position_scale: float = 0.1, stem_layers: int = 0, attention_window: int | None = None):
        super().__init__()
        self.dim = input_dim if dim is None else dim
        self.input_proj = None if dim is None else nn.Conv1d(input_dim, dim, 1)
        self.stem = ConvStack(self.dim, self.dim, stem_layers, 3) if stem_layers else None
        self.scales = nn.ModuleList(SnippetEmbedding(self.dim, num_heads, s, embedding, num_layers, dropout,
                                                     position_scale, attention_window) for s in scales)

    def forward(self, feats: torch.Tensor, mask: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """feats (B, C_in, T), mask (B, T) -> [(E^s (B, C, Tˢ), mask (B, Tˢ))] per scale."""
        x = feats if self.input_proj is None else apply_mask(self.input_proj(feats), mask)
        if self.stem is not None:
            x = x + self.stem(x, mask)[0]
        return [emb(x, mask) for emb in self.scales]


# ---------------------------------------------------------------------------- 3.2 two branches
class ClassificationBranch(nn.Module):
    """H_c of Eq. 3: a 1-D conv (kernel 1) to K + 1 logits; softmax gives P, sigmoid gives r (Eq. 5).

    Options (not the paper's): ``layers`` masked k3 conv–LN–ReLU layers before a k3 predictor (ActionFormer's
    head tower); ``pooling: mask`` also feeds the classifier, at snippet t, the mean of the tower's features
    over t's own predicted mask, ``Σ_k M[k, t]·h(k) / Σ_k M[k, t]`` (weights without gradient), so a snippet
    is classified from its whole instance, start and end phases included, not from its neighbourhood alone.
    """

    def __init__(self, dim: int, num_classes: int, layers: int = 0, pooling: str = "none"):
        super().__init__()
        self.tower = ConvStack(dim, dim, layers, 3) if layers else None
        self.pooling = pooling
        width = 2 * dim if pooling == "mask" else dim
        self.conv = MaskedConv1D(width, num_classes + 1, 3 if layers else 1)

    def forward(self, e: torch.Tensor, mask: torch.Tensor, maps: torch.Tensor | None = None) -> torch.Tensor:
        """e (B, C, Tˢ), mask (B, Tˢ), maps (B, Tˢ_k, Tˢ_t) mask probabilities (``pooling: mask``) -> (B, K+1, Tˢ)."""
        h = e if self.tower is None else self.tower(e, mask)[0]
        if self.pooling == "mask":
            w = maps.detach() * mask[:, :, None].to(maps.dtype)                           # (B, Tˢ_k, Tˢ_t)
            pooled = torch.bmm(h, w) / w.sum(1, keepdim=True).clamp(min=1e-6)              # (B, C, Tˢ_t)
            h = torch.cat([h, apply_mask(pooled, mask)], 1)
        return self.conv(h, mask)[0]                                                  # (B, K+1, Tˢ)


class MaskBranchLayers(nn.Module):
    """H_b's first two layers, conv(k3)–ReLU–conv(k3)–ReLU, shared by every mask head; subclasses add the output."""

    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.conv1 = MaskedConv1D(dim, hidden, 3)
        self.conv2 = MaskedConv1D(hidden, hidden, 3)

    def layers(self, e: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """e (B, C, Tˢ) -> h (B, hidden, Tˢ)."""
        h = F.relu(self.conv1(e, mask)[0])
        return F.relu(self.conv2(h, mask)[0])


class AffinityMaskBranch(MaskBranchLayers):
    """Option ``mask_head: affinity`` (not the paper's): the same two conv layers, then
    ``M[k, t] = sigmoid(key(k)·query(t) / √d + b)`` — snippet t's mask compares t with every position k."""

    def __init__(self, dim: int, hidden: int):
        super().__init__(dim, hidden)
        self.query = nn.Conv1d(hidden, hidden, 1)
        self.key = nn.Conv1d(hidden, hidden, 1)
        self.bias = nn.Parameter(torch.zeros(()))

    def forward(self, e: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        h = self.layers(e, mask)                                                      # (B, d, Tˢ)
        q, k = self.query(h), self.key(h)
        return torch.einsum("bdk,bdt->bkt", k, q) / math.sqrt(q.shape[1]) + self.bias  # (B, Tˢ_k, Tˢ_t)


class RelativeMaskBranch(MaskBranchLayers):
    """Option ``mask_head: relative`` (not the paper's): H_b's layers with 2Tˢ − 1 output channels that index
    the offset k − t of a mask position from its snippet, gathered into the (B, Tˢ_k, Tˢ_t) map.

    Channel d of snippet t is the mask at position t + d − (Tˢ − 1): a snippet only has to find its own
    action's boundaries relative to itself (translation-equivariant, as the classification branch),
    not their absolute positions in the window, which the paper's head must read from the position code.
    """

    def __init__(self, dim: int, hidden: int, length: int):
        super().__init__(dim, hidden)
        self.length = length
        self.out = nn.Conv1d(hidden, 2 * length - 1, 1)

    def forward(self, e: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        rel = self.out(self.layers(e, mask))                                                             # (B, 2Tˢ−1, Tˢ_t)
        T = self.length
        k, t = torch.arange(T, device=e.device)[:, None], torch.arange(T, device=e.device)[None, :]
        index = (k - t + T - 1).expand(rel.shape[0], -1, -1)                          # (B, Tˢ_k, Tˢ_t)
        return rel.gather(1, index)


class BoundaryMaskBranch(MaskBranchLayers):
    """Option ``mask_head: boundary`` (not the paper's): H_b's two conv layers predict, per snippet, a
    foreground gate a(t) and, per link between neighbours j and j + 1, a break cost
    b(j) = softplus(u(j) + v(j + 1)) ≥ 0; the mask of snippet t is

        M[k, t] = sigmoid(a(t)) · exp(−|S(k) − S(t)|),   S(k) = Σ_{j<k} b(j)   (S(0) = 0),

    the probability that t is foreground and that no boundary lies between t and k. Every column is
    one interval around its own snippet (a single action instance per mask, Sec. 3.2) whose ends are
    found from the evidence *at* the boundaries, not read from t's embedding alone. Returns logits
    (B, Tˢ_k, Tˢ_t) whose sigmoid is M, so losses and inference are unchanged.
    """

    def __init__(self, dim: int, hidden: int, init_cost: float = 0.05):
        super().__init__(dim, hidden)
        self.out = nn.Conv1d(hidden, 3, 1)                                            # a, u, v
        with torch.no_grad():                                                         # wide masks at the start
            self.out.bias.copy_(torch.tensor([0.0, 0.5, 0.5]) * math.log(math.expm1(init_cost)))

    def forward(self, e: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        a, u, v = self.out(self.layers(e, mask)).unbind(1)                                               # (B, Tˢ) each
        cost = F.softplus(u[:, :-1] + v[:, 1:])                                       # b(j), (B, Tˢ − 1)
        s = F.pad(cost.cumsum(-1), (1, 0))                                            # S(k), (B, Tˢ)
        log_m = F.logsigmoid(a)[:, None, :] - (s[:, :, None] - s[:, None, :]).abs()   # log M[k, t]
        log_m = log_m.clamp(max=-1e-6)
        return log_m - torch.log(-torch.expm1(log_m))                                 # logit of M


class GlobalMaskBranch(MaskBranchLayers):
    """H_b of Eq. 4: conv(k3)–ReLU–conv(k3)–ReLU–conv(k1) to ``out_len`` channels (Tˢ, or 1 for actionness).

    Returns logits (B, out_len, Tˢ): entry [b, k, t] is position k of the mask of snippet t.
    """

    def __init__(self, dim: int, hidden: int, out_len: int):
        super().__init__(dim, hidden)
        self.out = nn.Conv1d(hidden, out_len, 1)

    def forward(self, e: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return self.out(self.layers(e, mask))


# ---------------------------------------------------------------------------- 3.4 candidates
def mask_candidates(masks: torch.Tensor, length: int, thresholds: torch.Tensor, snippets: torch.Tensor | None = None):
    """Foreground runs of each mask (n, T) binarised at every θ, within its first ``length`` steps.

    Returns ``row`` (index of the mask), ``start``, ``end`` (inclusive, scale units) and the mean
    mask value inside each run. With ``snippets`` (n,) only the run containing that snippet is kept.
    """
    n, T = masks.shape
    J = len(thresholds)
    binary = (masks[:, None, :] > thresholds[None, :, None]).reshape(n * J, T)
    lengths = torch.full((n * J,), length, dtype=torch.long, device=masks.device)
    row, start, end, value = binary_runs(binary, lengths)
    keep = value
    if snippets is not None:
        t = snippets[row // J]
        keep = keep & (start <= t) & (t <= end)
    row, start, end = row[keep] // J, start[keep], end[keep]
    mean = range_sum(prefix_sums(masks.double()), row, start, end + 1) / (end - start + 1).double()
    return row, start, end, mean.to(masks.dtype)


# ---------------------------------------------------------------------------- the detector
class TAGS(nn.Module):
    """TAGS detector; see the module docstring. Hyperparameters only in the constructor.

    Embedding: ``embed_dim`` (null = attend on the input features), ``num_heads``, ``scales``,
    ``embedding`` (transformer | cnn), ``num_layers``, ``dropout``, ``position_encoding``, ``attention_window``.
    Heads: ``mask_branch`` (global | actionness | none), ``mask_head`` (conv | affinity | relative | boundary), ``mask_dim``, ``cls_layers``, ``cls_pooling`` (none | mask), ``input_dropout``. Losses: the six flags of
    ``LOSS_TERMS``, ``lambda1``, ``focal_gamma``, ``negative_weight`` (α), ``negative_ratio``
    (|N| = max(1, ⌈ratio·K⌉)), ``lambda2``, ``erosion_kernel``, ``biou_eps``, ``thresholds`` (Θ),
    ``redundancy_delta`` (δ), ``redundancy_beta`` (β), ``consistency_theta_m``,
    ``consistency_theta_p``, ``consistency_topk``, ``redundancy_norm`` (none | length), ``mask_bce_weight``. Inference: ``inference_topk``, ``candidate_runs``, ``candidate_score``.
    ``max_seq_len`` is the window length Tˢ=¹ of every mask.
    """

    def __init__(self, num_classes: int, input_dim: int, max_seq_len: int = 1024, *,
                 # 3.1 embedding
                 embed_dim: int | None = None, num_heads: int = 4, scales: Sequence[int] = (1, 2, 4),
                 embedding: str = "transformer", num_layers: int = 1, dropout: float = 0.1,
                 position_scale: float = 0.1, stem_layers: int = 0, attention_window: int | None = None,
                 # 3.2 branches
                 mask_branch: str = "global", mask_head: str = "conv", mask_dim: int = 256,
                 cls_layers: int = 0, cls_pooling: str = "none", input_dropout: float = 0.0,
                 # 3.3 losses
                 focal_loss: bool = True, logistic_loss: bool = True, biou_loss: bool = True, dice_loss: bool = True,
                 redundancy_loss: bool = True, consistency_loss: bool = True,
                 lambda1: float = 0.4, focal_gamma: float = 2.0, negative_weight: float = 10.0,
                 negative_ratio: float = 0.1, lambda2: float = 0.4, erosion_kernel: int = 7,
                 biou_eps: float = math.exp(-8), thresholds: Sequence[float] = PAPER_THRESHOLDS,
                 redundancy_delta: float = 0.25, redundancy_beta: float = 2.0,
                 consistency_theta_m: float = 0.5, consistency_theta_p: float = 0.3, consistency_topk: int = 40,
                 mask_bce_weight: float = 0.0, redundancy_norm: str = "none",
                 # 3.4 inference
                 inference_topk: int = 100, candidate_runs: str = "all", candidate_score: str = "snippet"):
        super().__init__()
        scales = [int(s) for s in scales]
        _require(num_classes >= 1, f"num_classes must be >= 1, got {num_classes}")
        _require(input_dim >= 1, f"input_dim must be >= 1, got {input_dim}")
        _require(max_seq_len >= 1, f"max_seq_len must be >= 1, got {max_seq_len}")
        _require(len(scales) > 0 and all(s >= 1 for s in scales) and len(set(scales)) == len(scales),
                 f"scales must be distinct positive integers, got {scales}", "e.g. scales: [1, 2]")
        _require(embedding in EMBEDDINGS, f"unknown embedding {embedding!r}", f"use one of {', '.join(EMBEDDINGS)}")
        _require(mask_branch in MASK_BRANCHES, f"unknown mask_branch {mask_branch!r}",
                 f"use one of {', '.join(MASK_BRANCHES)}")
        _require(mask_head in MASK_HEADS, f"unknown mask_head {mask_head!r}", f"use one of {', '.join(MASK_HEADS)}")
        _require(position_scale >= 0 and stem_layers >= 0, "position_scale and stem_layers must be >= 0")
        _require(candidate_runs in CANDIDATE_RUNS, f"unknown candidate_runs {candidate_runs!r}",
                 f"use one of {', '.join(CANDIDATE_RUNS)}")
        _require(candidate_score in CANDIDATE_SCORES, f"unknown candidate_score {candidate_score!r}",
                 f"use one of {', '.join(CANDIDATE_SCORES)}")
        _require(redundancy_norm in REDUNDANCY_NORMS, f"unknown redundancy_norm {redundancy_norm!r}",
                 f"use one of {', '.join(REDUNDANCY_NORMS)}")
        _require(attention_window is None or attention_window >= 1, f"attention_window must be >= 1 or null, got {attention_window}")
        _require(0 <= input_dropout < 1, f"input_dropout must lie in [0, 1), got {input_dropout}")
        _require(cls_layers >= 0, f"cls_layers must be >= 0, got {cls_layers}")
        _require(cls_pooling in CLS_POOLINGS, f"unknown cls_pooling {cls_pooling!r}", f"use one of {', '.join(CLS_POOLINGS)}")
        _require(cls_pooling == "none" or mask_branch == "global", "cls_pooling: mask needs mask_branch: global",
                 "set model.cls_pooling=none")
        _require(mask_bce_weight >= 0, f"mask_bce_weight must be >= 0, got {mask_bce_weight}")
        dim = input_dim if embed_dim is None else embed_dim
        _require(dim >= 1 and dim % num_heads == 0, f"embedding width {dim} is not divisible by num_heads={num_heads}")
        _require(num_layers >= 1, f"num_layers must be >= 1, got {num_layers}")
        _require(erosion_kernel >= 1 and erosion_kernel % 2 == 1, f"erosion_kernel must be odd, got {erosion_kernel}")
        _require(len(thresholds) > 0 and all(0 < t < 1 for t in thresholds), "thresholds must lie in (0, 1)")
        _require(0 <= lambda1 <= 1 and lambda2 >= 0, "need 0 <= lambda1 <= 1 and lambda2 >= 0")
        _require(inference_topk >= 1 and consistency_topk >= 1, "inference_topk and consistency_topk must be >= 1")
        self.num_classes, self.input_dim, self.max_seq_len = num_classes, input_dim, max_seq_len
        self.scales = scales
        self.input_dropout = input_dropout
        self.lengths = [len(range(0, max_seq_len, s)) for s in scales]                # Tˢ

        # 3.1, 3.2: one embedding and two branches per scale
        self.embedding = MultiScaleSnippetEmbedding(input_dim, embed_dim, num_heads, scales, embedding, num_layers,
                                                    dropout, position_scale, stem_layers, attention_window)
        self.cls_branches = nn.ModuleList(ClassificationBranch(dim, num_classes, cls_layers, cls_pooling) for _ in scales)
        self.mask_branch = mask_branch
        mask_len = [1 if mask_branch == "actionness" else n for n in self.lengths]
        if mask_branch != "none":
            self.mask_branches = nn.ModuleList(
                AffinityMaskBranch(dim, mask_dim) if mask_head == "affinity" and mask_branch == "global"
                else RelativeMaskBranch(dim, mask_dim, n) if mask_head == "relative" and mask_branch == "global"
                else BoundaryMaskBranch(dim, mask_dim) if mask_head == "boundary" and mask_branch == "global"
                else GlobalMaskBranch(dim, mask_dim, n) for n in mask_len)

        # 3.3 losses
        self.terms = {name: bool(on) for name, on in zip(LOSS_TERMS, (focal_loss, logistic_loss, biou_loss, dice_loss,
                                                                      redundancy_loss, consistency_loss))}
        if mask_branch == "none":
            for name in ("biou_loss", "dice_loss", "redundancy_loss", "consistency_loss"):
                self.terms[name] = False
        if self.terms["consistency_loss"]:                                            # E_p and E_m of Eq. 9
            self.consistency_p = nn.ModuleList(nn.Conv1d(dim, num_classes + 1, 1) for _ in scales)
            self.consistency_m = nn.ModuleList(nn.Conv1d(dim, n, 1) for n in mask_len)
        self.lambda1, self.focal_gamma = lambda1, focal_gamma
        self.negative_weight = negative_weight
        self.num_negatives = max(1, math.ceil(negative_ratio * num_classes))
        self.lambda2, self.erosion_kernel, self.biou_eps = lambda2, erosion_kernel, biou_eps
        self.register_buffer("thresholds", torch.tensor([float(t) for t in thresholds]), persistent=False)
        self.redundancy_delta, self.redundancy_beta = redundancy_delta, redundancy_beta
        self.consistency_theta_m, self.consistency_theta_p = consistency_theta_m, consistency_theta_p
        self.consistency_topk = consistency_topk
        self.mask_bce_weight = mask_bce_weight
        self.redundancy_norm = redundancy_norm

        # 3.4 inference
        self.inference_topk = inference_topk
        self.candidate_runs = candidate_runs
        self.candidate_score = candidate_score

    # ---------------------------------------------------------------- 3.1–3.2 network
    def preprocess(self, batch: dict) -> tuple[torch.Tensor, torch.Tensor]:
        """Features (B, C, T) and masks (B, T) on the model's device, padded to the window ``max_seq_len``."""
        steps = batch["feats"].shape[-1]
        if steps > self.max_seq_len:
            raise ConfigError(f"a window of {steps} steps is longer than max_seq_len={self.max_seq_len}: "
                              "TAGS predicts one mask position per window step",
                              fix="window the video (the engine does) or raise model.max_seq_len")
        return model_inputs(batch, self.input_dim, self.thresholds.device, self.max_seq_len)

    def run(self, batch: dict) -> list[dict]:
        """Per scale: ``embedding`` (B, C, Tˢ), ``valid`` (B, Tˢ), ``cls_logits`` (B, K+1, Tˢ), ``masks``
        (B, Tˢ or 1, Tˢ) probabilities (absent with ``mask_branch: none``)."""
        outputs = []
        feats, masks = self.preprocess(batch)
        if self.training and self.input_dropout > 0:                                  # feature dropout (training)
            feats = F.dropout(feats, self.input_dropout, True)
        for i, (e, valid) in enumerate(self.embedding(feats, masks)):
            out = {"scale": self.scales[i], "embedding": e, "valid": valid}
            if self.mask_branch != "none":
                out["masks"] = torch.sigmoid(self.mask_branches[i](e, valid))             # Eq. 4
            out["cls_logits"] = self.cls_branches[i](e, valid, out.get("masks"))          # Eq. 3 (logits)
            outputs.append(out)
        return outputs

    def forward(self, batch: dict) -> dict[str, torch.Tensor]:
        """Named losses of a training batch, each summed over the scales; ``loss`` is their total."""
        outputs = self.run(batch)
        losses: dict[str, torch.Tensor] = {}
        for i, out in enumerate(outputs):
            for name, value in self.scale_losses(i, out, batch).items():
                losses[name] = losses.get(name, 0.0) + value
        losses["loss"] = sum(losses.values())
        return losses

    # ---------------------------------------------------------------- 3.3 training
    def targets(self, out: dict, batch: dict) -> dict:
        """Ground truth of one scale (Sec. 3.3): ``cls`` (B, Tˢ), ``instance`` (B, Tˢ) batch-wide instance id
        (−1 = background), ``inside`` (M, Tˢ) instance masks, ``union`` (B, Tˢ) actionness."""
        valid, s = out["valid"], out["scale"]
        B, T = valid.shape
        device = valid.device
        cls, inst, inside, union = [], [], [], []
        first = 0
        for b in range(B):
            c, owner, ins = global_mask_targets(batch["segments"][b].to(device), batch["labels"][b].to(device), T, s,
                                                int(valid[b].sum()), self.num_classes)
            cls.append(c)
            inst.append(torch.where(owner >= 0, owner + first, owner))
            inside.append(ins)
            union.append(ins.any(0))
            first += len(ins)
        return {"cls": torch.stack(cls), "instance": torch.stack(inst), "union": torch.stack(union),
                "inside": torch.cat(inside) if first else torch.zeros(0, T, dtype=torch.bool, device=device)}

    def scale_losses(self, i: int, out: dict, batch: dict) -> dict[str, torch.Tensor]:
        """Eq. 5–9 at one scale."""
        tg = self.targets(out, batch)
        valid = out["valid"]
        logits = out["cls_logits"].transpose(1, 2)[valid]                                 # (n, K+1)
        losses = {}
        if self.terms["focal_loss"] or self.terms["logistic_loss"]:
            losses["cls_loss"] = classification_loss(                                     # Eq. 5
                logits, tg["cls"][valid], lambda1=self.lambda1, gamma=self.focal_gamma, alpha=self.negative_weight,
                num_negatives=self.num_negatives, focal=self.terms["focal_loss"],
                logistic=self.terms["logistic_loss"]).mean()
        if self.mask_branch == "none":
            return losses
        maps = out["masks"]                                                               # (B, Tˢ or 1, Tˢ)
        b_idx, t_idx = (valid & (tg["instance"] >= 0)).nonzero(as_tuple=True)             # foreground snippets
        inst = tg["instance"][b_idx, t_idx]
        if self.mask_branch == "actionness":
            m_fg, g_fg = maps[b_idx, 0], tg["union"][b_idx]                               # (N, Tˢ)
            g_map, v_map = tg["union"][:, None, :], valid[:, None, :]
        else:
            m_fg, g_fg = maps[b_idx, :, t_idx], tg["inside"][inst]                        # (N, Tˢ)
            gid = tg["instance"].clamp(min=0)
            g_map = (tg["inside"][gid] & (tg["instance"] >= 0)[..., None]).transpose(1, 2) if len(tg["inside"]) \
                else torch.zeros_like(maps, dtype=torch.bool)                               # (B, Tˢ_k, Tˢ_t)
            v_map = valid[:, :, None] & valid[:, None, :]
        v_fg = valid[b_idx]
        zero = maps.sum() * 0.0
        if self.terms["biou_loss"]:                                                       # Eq. 6, bIoU + L2
            losses["biou_loss"] = boundary_iou_loss(m_fg, g_fg, v_fg, self.erosion_kernel, self.biou_eps).mean() \
                if len(inst) else zero
        if self.terms["dice_loss"]:                                                       # Eq. 6, λ2·Dice
            has_fg = g_map.flatten(1).any(1)
            losses["dice_loss"] = self.lambda2 * dice_loss(maps.expand_as(g_map)[has_fg], g_map[has_fg],
                                                           v_map.expand_as(g_map)[has_fg]).mean() \
                if has_fg.any() else zero
        if self.mask_bce_weight > 0:                                                      # the released code's
            v_all = v_map.expand_as(g_map)
            losses["mask_bce_loss"] = self.mask_bce_weight * balanced_bce_loss(maps.expand_as(g_map)[v_all],
                                                                               g_map[v_all])
        if self.terms["redundancy_loss"]:                                                 # Eq. 7–8
            if len(inst):
                per_mask = prediction_promotion_loss(m_fg, g_fg, v_fg, self.thresholds, self.redundancy_delta,
                                                     self.redundancy_beta,
                                                     normalize=self.redundancy_norm == "length")
                ids, slot = inst.unique(return_inverse=True)
                total = per_mask.new_zeros(len(ids)).index_add(0, slot, per_mask)
                count = per_mask.new_zeros(len(ids)).index_add(0, slot, torch.ones_like(per_mask))
                losses["redundancy_loss"] = (total / count).mean()
            else:
                losses["redundancy_loss"] = zero
        if self.terms["consistency_loss"]:                                                # Eq. 9
            e = out["embedding"]
            losses["consistency_loss"] = consistency_loss(
                out["cls_logits"].softmax(1), self.consistency_p[i](e), maps, self.consistency_m[i](e), valid,
                self.consistency_theta_p, self.consistency_theta_m, self.consistency_topk).mean()
        return losses

    # ---------------------------------------------------------------- 3.4 inference
    @torch.no_grad()
    def predict(self, batch: dict) -> list[Instances]:
        """Candidate detections per window, in feature units relative to the window start (no NMS)."""
        return self.decode(self.run(batch))

    @torch.no_grad()
    def decode(self, outputs: list[dict]) -> list[Instances]:
        """Top (snippet, class) pairs → their masks thresholded at every θ → runs → scored segments."""
        B = outputs[0]["valid"].shape[0]
        parts: list[list[torch.Tensor]] = [[] for _ in range(B)]
        for out in outputs:
            s, valid = out["scale"], out["valid"]
            probs = out["cls_logits"].float().softmax(1)                                   # (B, K+1, Tˢ)
            if self.mask_branch == "none":                                               # actionness from P
                maps = (1 - probs[:, -1:, :]).expand(-1, probs.shape[-1], -1)
            else:
                maps = out["masks"].float().expand(-1, probs.shape[-1], -1)             # (B, Tˢ_k, Tˢ_t)
            for b in range(B):
                n = int(valid[b].sum())
                if n == 0:
                    continue
                scores = probs[b, :-1, :n]                                               # (K, n)
                top, idx = scores.flatten().topk(min(self.inference_topk, scores.numel()))
                label, t = idx // n, idx % n
                cols = maps[b, :n, t].T                                                 # (k, n) masks of those snippets
                row, start, end, mean = mask_candidates(
                    cols, n, self.thresholds, t if self.candidate_runs == "containing" else None)
                seg = torch.stack([start * s - s / 2, end * s + s / 2], 1).double()     # feature units
                if self.candidate_score == "segment":   # the class probability averaged over the run
                    cls = range_sum(prefix_sums(scores[label].double()), row, start, end + 1) / (end - start + 1)
                else:                                   # the seed snippet's probability (the paper)
                    cls = top[row].double()
                parts[b].append(torch.cat([seg, label[row, None].double(), (cls * mean)[:, None].double()], 1))
        results = []
        for b in range(B):
            cand = torch.cat(parts[b]) if parts[b] else torch.zeros(0, 4, dtype=torch.float64)
            if len(cand):                                                                # merge exact duplicates
                keys, inverse = cand[:, :3].unique(dim=0, return_inverse=True)
                best = cand.new_zeros(len(keys)).scatter_reduce(0, inverse, cand[:, 3], "amax", include_self=False)
                cand = torch.cat([keys, best[:, None]], 1)
            cand = cand.cpu().numpy()
            results.append(Instances(cand[:, :2], cand[:, 2].astype("int64"), cand[:, 3]).sorted_by_score())
        return results


DETECTOR = TAGS
