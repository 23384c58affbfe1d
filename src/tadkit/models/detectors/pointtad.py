"""PointTAD (Tan, Zhao, Shi, Kang, Wang, NeurIPS 2022): multi-label detection with learnable query points.

Read top to bottom like the paper:

1. **Video features.** The paper trains I3D end to end; on pre-extracted features a 1×1 projection
   (``input_dim → hidden_dim``) stands in for the backbone (METHODS.md). There is no temporal encoder.
   :meth:`PointTAD.encode` gives ``(B, T, D)`` features and masks; :class:`PointTADDecoder` takes a
   feature sequence from any source, so a backbone can replace the projection.
2. **Learnable query points** (Sec. 3.2). ``N_q`` = 48 queries, each a query vector (learnable
   embedding) and ``N_s`` = 21 points (learnable, window-normalised, initialised at 0.5). Decoder
   layer ``l`` predicts offsets ``Δt`` and refines the points by Eq. (1)::

       t_j^{l+1} = t_j^l + Δt_j^l · s^l · 0.5,     s^l = max_j t_j^l − min_j t_j^l

   A **pseudo segment** is the min and max of the points (min-max, T1) or of a subset of them
   (partial min-max, T2, the default). The subset is, as in the released code, the first
   ``N_s − ⌈N_s/3⌉`` points (14 of 21); the others are free to gather context outside the action.
3. **Multi-level interactive module** (Sec. 3.3), in each of the L = 4 decoder layers:

   * point level, Eq. (2)-(3): around every point 4 sub-points at offsets ``o = Linear(q)`` (feature
     steps), features read there by 1-D linear interpolation and summed with weights
     ``w = softmax(Linear(q))``; the first 4 ("boundary") points and the others have separate
     offset/weight layers (released code); offset layers start with zero weights and biases 1, 2, 3, 4,
     weight layers at zero (Sec. 4.1);
   * inter-proposal: multi-head self-attention over the queries;
   * instance level, Eq. (4)-(9): dynamic frame mixing ``ReLU(LN(xᵀ M_f))`` with ``M_f = Linear(q)``
     (N_s × N_s) and dynamic channel mixing ``ReLU(LN(ReLU(LN(x M_c1)) M_c2))`` (D × 64, 64 × D), in
     parallel, concatenated, flattened, and projected to update the query (residual, LayerNorm), then
     an FFN (2048), as in the released layer;
   * heads: class = Linear+LN+ReLU → Linear(C + 1) (softmax, last = no action); points = 3 × (Linear+LN+ReLU)
     → Linear(N_s) offsets.
4. **Training** (Sec. 3.4). Each layer's pseudo segments are matched to the ground truth (Hungarian,
   Eq. 10: cost 10·(−p_c) + 5·L1 + 5·(−tIoU)) and trained with CE (no-action weight 0.1), L1 and
   1 − tIoU (Eq. 11) on every layer; a dense head (linear projection of the features, conv k3 → conv k1
   as released) gives per-frame scores ``S`` trained with BCE (Eq. 12). Eq. (13):
   ``L = λ_loc·(L1 + (1 − tIoU)) + λ_cls·(ce_weight·CE + λ_seg·dense)`` with λ_cls 10, λ_loc 5, λ_seg 1.
   Only actions entirely inside a training window are targets (``data.trunc_thresh: 1.0``, the configs).
5. **Inference.** One detection per query: the arg-max class (no action excluded) and its probability,
   the pseudo segment as its extent; no NMS (``test.nms: none``); windows are merged by the engine. The
   dense scores ``S`` (:meth:`PointTAD.frame_scores`) feed segmentation mAP through Eq. (14).

Coordinates: points live in window-normalised units ``u``; feature position = ``u · scale`` with
``scale = max(max_seq_len, valid length)`` per video, i.e. the training window length (the released code
normalises by its fixed window and pads short clips) unless a window is longer. L1 losses and costs use
``(centre, width) / scale`` (released code); tIoU is unit-free.

Ablation switches (Tables 2-3): ``representation`` (points | segment, 2a), ``point_init`` (constant |
uniform | normal, 2b), ``pseudo_segment`` (partial | minmax, 2c), ``num_points`` (2d), ``deformable``
(2e), ``mixing`` (parallel | frame | channel | frame_channel | channel_frame, 2f), ``offset_scale``
(action | window, 3b); β of Table 3a is ``test.segmentation_beta``.

Departures and choices where paper and code are silent or disagree:

* Eq. (1)'s span ``s`` is over **all** points (paper); the released code uses the pseudo segment's length:
  ``span="pseudo"``.
* λ_cls = 10 multiplies the set CE in the paper; the released code weighs it 1 (dense 10): ``ce_weight=0.1``
  reproduces the code, and the shipped configs use it (on synthetic multi-label data the literal weighting
  left localisation untrained for hundreds of steps). Charades' code dense weight 5 is ``lambda_seg=0.5``.
* The L1 term compares ``(centre, width)`` divided by the window (released code; the paper names no format).
* Under ``torchrun``, ``aux_loss=False`` leaves the intermediate class heads unused: set
  ``train.find_unused_parameters: true``.
* The released code re-initialises the offset layers' weights with Xavier after zeroing them; we keep
  the paper's zeros (``deform_zero_init=False`` gives Xavier).
* ``delta_zero_init`` (off by default: Xavier as released) starts the point offsets at zero, so the first
  refinements are the identity (Deformable DETR's practice); useful with ``point_init`` uniform / normal.
* Sub-points are clamped to the valid part of the window (the code clamps to the padded window), so
  padding is never read; a window's padding never changes the outputs of its valid steps.
* The dense ground truth marks feature step ``t`` for class ``c`` when ``start ≤ t ≤ end`` of an action of
  ``c`` inside the window (the code's ``int(start)..int(end)``, inclusive, differs by at most one step).
* Segment baseline (Table 2a): a learnable segment per query (initialised to the whole window), refined
  by Eq. (1) on its two ends; RoI align is one linearly interpolated sample at each of ``N_s`` bin centres.
* ``detections_per_query`` > 1 keeps the top classes of each query (the paper: 1).
* ``encoder_layers`` (0, the paper): residual masked k3 convs (LayerNorm, ReLU) after the projection. The
  paper's I3D, trained end to end, gives every feature its neighbours' context; pre-extracted features
  through a 1×1 projection have none, and the sub-points read single, noisy steps at the boundaries.

Departures in ``configs/pointtad/custom.yaml`` (the dataset configs keep the paper's settings), measured on the
synthetic multi-label benchmark (``benchmarks/synthetic_accuracy.py --multilabel --query-width``: windows of 256 steps, 80 videos,
noise 0.7, 24 epochs, width 64, seed 0), where detection-mAP (tIoU 0.1:0.9) went 9.3 → 21.9 → 33.0 → 47.8 %
with the three changes in turn (segmentation-mAP 45.1 → 66.1 → 73.2 → 74.1 %):

* ``cost_class: 2`` instead of Eq. (10)'s α_cls = 10. The class term ``−α_cls·p`` spans up to α_cls while
  the localisation terms of two candidate queries differ by a few units (5·L1 of window-normalised
  (centre, width) and 5·tIoU); with few classes the softmax saturates early, and at α_cls = 10 a query
  confident of the class wins the ground truth over one lying on it whenever its probability is 0.7 higher
  (centre 0.4 windows away, ``test_matching_cost_balance_by_hand``), so queries are pulled across the window and localisation hardly
  trains: on one batch of 8 training windows, 200 steps reach a matched tIoU of 0.53 at α_cls = 10 and 0.82
  at 2 (GIoU matching instead: 0.71; ``span: pseudo``: 0.50; uniform point init: 0.48).
* ``train.schedule: cosine`` instead of halving at fixed epochs, so that the rate decays within any
  ``train.epochs`` (fixed milestones beyond a short run leave the rate constant; the training loss then
  stalls and oscillates).
* ``test.nms: soft`` (Gaussian, at most 200 per video) instead of no NMS. One-to-one matching
  should make duplicates unnecessary, but a model trained briefly on a small set still places several
  queries on one action; on the same trained model Soft-NMS (σ 0.5) raised detection-mAP from 33.0 to 47.8 %.
  ``test.nms: none`` is the paper's inference.

Then, on the same benchmark (seed 0 unless said), four more, detection-mAP 47.8 → 53.8 % (segmentation 74.1 →
74.9 %); every number is the same trained model re-decoded, except the encoder's, which is trained:

* inference windows overlapping by half (``data.window_overlap: 0.5``; the paper: none), so an action cut by one
  window's edge lies whole in the next: 47.8 → 49.5 % on the trained model of the paper's architecture;
* ``detections_per_query: 2``: each query also proposes its second class (dense multi-label data has actions of
  two classes on nearly the same extent), 47.8 → 48.9 % alone, 50.4 % with the overlap;
* Soft-NMS σ 0.2 instead of 0.5 (stronger suppression of a query's near-duplicates), with the two above
  51.2 % (σ 0.1: 51.5 %, 0.3: 51.0 %);
* ``encoder_layers: 2``, trained: 51.2 → 53.8 % with the three above (tIoU 0.7: 22.1 → 36.1 %, 0.8: 7.9 →
  13.0 %; at tIoU 0.1 it loses 84.7 → 79.9 %); with the paper's inference 47.8 → 49.8 %. Seed 1 with all of
  ``custom.yaml``: 53.0 %, without the encoder 48.5 %. Four encoder layers gave 43.5 % and six decoder layers
  (with two encoder layers) 45.8 %, λ_loc 10 44.9 % (seed 0); rescoring each detection by the dense head's mean probability of
  its class over its extent lowered it (47.4 / 47.3 % at exponent 0.5, seeds 0 / 1). The official
  ActionFormer release on the same data: 63.6 / 66.3 % (seeds 0 / 1), so ``custom.yaml`` reaches 85 / 80 % of it.
  A sigmoid focal classifier instead of the softmax (``class_loss: focal``, class weight 2 and the focal matching
  cost as in Deformable DETR, prior 0.01; ``synthetic_accuracy.py`` run ``pointtad-focal``) gave 39.2 / 45.8 %
  (seeds 0 / 1): lower at every tIoU (0.5: 44.2 / 56.6 %), so the paper's softmax stays. Detaching the points
  between layers (``detach_points: true``, Sparse R-CNN's practice; the paper and the released code let the
  gradient run through every refinement) gave 19.7 / 25.3 %: the learnable initial points and early offsets
  then learn from the first layer's loss alone. Raising the no-action weight (``eos_coef`` 0.3) gave 38.3 % (mean
  of seeds 0 / 1).
* Run-to-run spread. The shared layers were later rewritten for speed (channel LayerNorm reduced over the channel
  axis, fewer masking passes); the losses and every gradient of a PointTAD step are the same before and after to
  1e-5 relative, yet ``custom.yaml`` then gave 49.0 / 45.4 % and, rerun, 51.5 / 47.0 % (seeds 0 / 1, one thread;
  segmentation 77.4 / 74.0 %). Seed 0 alone has given 53.8, 52.3, 51.5, 49.0 and 46.6 % under float-level changes
  (thread count, summation order), so one run says ±4 points; the negative results above that were measured at a
  single seed are within that spread unless they lie >8 points lower.
* Tried and dropped: a localisation-quality head (TadTR's actionness: a branch on the offset tower predicting each
  query's tIoU with the nearest action, BCE on every query, score = class probability × quality). Trained jointly
  it pulled localisation down (39.0 / 39.5 %; the oracle that rescores the same detections by their true tIoU fell
  from 62.4 to 52.7 %); on detached features 44.9 / 45.4 %, and the same models decoded without the quality
  factor 44.3 / 46.8 %, so the predicted quality did not rank better than the class probability. That oracle
  (every detection scored by its best same-class tIoU) gives 62.4 / 62.5 % on the ``custom.yaml`` models above:
  the detections hold the official release's accuracy, their scores do not rank them by it.
* Longer training, same benchmark schedule at 60 epochs (``--epochs 60``, after the CPU speed work, whose dropout
  draws other random numbers): 47.3 / 62.7 % (seeds 0 / 1; segmentation 72.7 / 83.3 %) against the official
  release at 60 epochs 70.7 / 71.4 %: 67 / 88 %, 77 % on the mean. The seeds now differ by 15 points.
  Retrained with ``dense_rescore``: 52.5 / 64.0 % (segmentation 74.3 / 82.0 %), 82 % of the release on the mean.
  Seed 0 dips mid-schedule: the rescored checkpoints of epochs 20 / 30 / 40 / 50 give 46.3 / 41.3 / 47.4 / 53.0 %
  (seed 1: 50.0 / 55.6 / 62.4 / 62.8 %).
* ``dense_rescore: 0.25`` (``custom.yaml``; the paper: off). Error analysis of the two 24-epoch ``custom.yaml`` models
  (benchmark schedule, seeds 0 / 1: 53.6 / 51.3 %): a same-class detection with tIoU >= 0.7 exists for 77 % of the
  ground truths (ActionFormer's baseline: 83 %), yet AP at 0.7 is 31 % against its 61 %. Without NMS several queries
  sit on one action with similar class probabilities, and the best-placed is often not the best-scored; up to 60 %
  recall at tIoU 0.7 the detections ranked above it include 390 placed at tIoU 0.3-0.7 (the baseline's: 52). The dense
  head knows where each class is present, so a detection's score is multiplied in by how well its extent fits that
  signal: ``score^(1−a) · q^a``, ``q`` = mean dense probability of its class inside the segment minus the mean over
  a quarter of its length either side (:func:`boundary_contrast`). Re-decoding the same models: 57.9 / 58.7 %
  (a 0.15: 57.7 / 58.3, 0.35: 57.4 / 58.9; band 0.5: 56.7 / 57.4, 0.1: 56.2 % at seed 0), gains at every tIoU from
  0.4 on (0.7: 31.4 → 41.9 %). With it, σ 0.2 stays best (0.3: 57.2 / 58.0, 0.5: 56.3 / 56.7 %) and boundary voting
  does not help (57.1 / 57.3 %). The mean *inside* alone, tried before, lowered the mAP: it does not penalise a
  segment that overruns the action.
* Also measured at 24 epochs and dropped: IoU-aware soft class targets (``class_target: iou``, the matched query's
  target is its class with probability tIoU, no action 1 − tIoU): 46.5 / 41.3 % against 53.6 / 51.3 %; moving the
  training windows at random each epoch (``data.train_window_jitter``): 49.0 % mean against 52.5 %.
* ``train.lr: 5e-4`` with 2 warm-up epochs in ``custom.yaml`` (the paper: 2e-4, none): at 60 epochs on the same
  benchmark (``synthetic_accuracy.py`` run ``pointtad-lr5e-4``, which is ``custom.yaml``'s schedule: batch 4, cosine,
  clip 0.1, EMA with warm-up) 61.3 / 63.5 % (seeds 0 / 1; segmentation 78.7 / 80.4 %) against 52.5 / 64.0 % at
  1e-3, 87 / 89 % of the official release's 70.7 / 71.4 % (88 % on the means); seed 2: 66.3 % (segmentation 81.0 %)
  against the release's 70.6 % (segmentation 84.3 %), so 63.7 against 70.9 % on three seeds, 90 %. The lower rate
  removes seed 0's mid-schedule dip. At width 128 (24 epochs, seed 0) 1e-3 still beat 2e-4 (50.3 against 48.8 %
  rescored). The shipped width of 512 (235 s an epoch on two CPU cores, ~110 s under ``train.cpu_amp``, 98 s with
  the fused optimiser update), 12 epochs in bfloat16, seed 0: 32.3 % against 19.5 / 24.3 % at width 64 (float32 /
  bfloat16, 12 epochs). ``custom.yaml`` as shipped with ``train.epochs=24 train.cpu_amp=true`` (``tadkit train``,
  seed 0): 62.9 % detection mAP (segmentation 81.0 %) against the official release's 63.6 % at 24 epochs, 99 %,
  and 89 % of the release's 70.7 % at 60 epochs. The same at 60 epochs (``train.epochs=60``, 98 s an epoch): 56.8 %,
  80 % of the release at 60 epochs. At the full width the longer schedule over-fits the 80 training videos where
  width 64 still gained, so ``custom.yaml`` trains 24 epochs (2.5x cheaper); raise ``train.epochs`` on a large
  dataset.
* The earlier schedule of ``custom.yaml`` (lr 2e-4, no warm-up, clip 0.1, 60 epochs) at width 64 on the same data
  (``tadkit train`` with data paths, timing and the three widths overridden): 37.5 / 37.6 % (seeds 0 / 1;
  segmentation 70.8 / 70.2 %), below the benchmark schedule (lr 1e-3, 2 warm-up epochs, batch 4). Whether
  the lower rate suits the full width of 512 (its published rate) was not measured here (hours a run on two
  CPU cores).
"""
from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ...core.errors import ConfigError
from ...core.instances import Instances
from ..layers import ConvStack, MaskedConv1D, apply_mask, model_inputs
from ..set_prediction import HungarianMatcher, SetCriterion

MIXINGS = ("parallel", "frame", "channel", "frame_channel", "channel_frame")
REPRESENTATIONS = ("points", "segment")
POINT_INITS = ("constant", "uniform", "normal")
PSEUDO_SEGMENTS = ("partial", "minmax")
OFFSET_SCALES = ("action", "window")
SPANS = ("points", "pseudo")
DENSE_HEADS = ("conv", "linear", "none")
CLASS_LOSSES = ("ce", "focal")   # softmax CE with a no-action class (paper) | sigmoid focal
CLASS_TARGETS = ("label", "iou")   # one-hot CE targets (paper) | soft targets by the matched tIoU


def _require(condition: bool, message: str, fix: str | None = None) -> None:
    if not condition:
        raise ConfigError(message, fix=fix)


def _choice(name: str, value, allowed) -> None:
    _require(value in allowed, f"unknown {name} {value!r}", f"use one of {', '.join(allowed)}")


# ---------------------------------------------------------------- numeric pieces
def default_local_points(num_points: int) -> int:
    """Points of the partial min-max subset: ``N_s − ⌈N_s / 3⌉`` (the released code's slice; 14 of 21), at least 1."""
    return max(1, num_points - math.ceil(num_points / 3))


def pseudo_segments(points: torch.Tensor, num_local: int | None = None) -> torch.Tensor:
    """Points (…, P) → pseudo segments (…, 2): min and max of the first ``num_local`` points (all: min-max)."""
    local = points if num_local is None else points[..., :num_local]
    return torch.stack((local.min(dim=-1).values, local.max(dim=-1).values), dim=-1)


def refine_points(points: torch.Tensor, deltas: torch.Tensor, span: torch.Tensor | float) -> torch.Tensor:
    """Eq. (1): ``t + Δt · s · 0.5``; points, deltas (…, P), span (…,) or a number."""
    span = torch.as_tensor(span, dtype=points.dtype, device=points.device)
    return points + deltas * span[..., None] * 0.5 if span.ndim else points + deltas * span * 0.5


def interpolation_weights(positions: torch.Tensor, weights: torch.Tensor, valid_len: torch.Tensor,
                          length: int) -> torch.Tensor:
    """Sparse rows that read features by 1-D linear interpolation, Eq. (2) as a matrix.

    positions, weights (B, R, S): S sub-points per row at fractional feature positions, with weights;
    valid_len (B,): positions are clamped to ``[0, valid_len − 1]``. Returns W (B, R, length) with
    ``(W @ X)[b, r] = Σ_k weights[b, r, k] · X_b(clamp(positions[b, r, k]))``, X_b linearly interpolated.
    """
    B = positions.shape[0]
    hi = (valid_len.to(positions.dtype) - 1).clamp(min=0).view(B, 1, 1)  # (B, 1, 1)
    x = torch.minimum(positions.clamp(min=0), hi)  # (B, R, S)
    i0 = x.detach().floor()
    frac = x - i0  # (B, R, S)
    i1 = torch.minimum(i0 + 1, hi)
    W = positions.new_zeros(B, positions.shape[1], length)  # (B, R, T)
    W = W.scatter_add(2, i0.long(), weights * (1 - frac))
    return W.scatter_add(2, i1.long(), weights * frac)


def dense_targets(segments: list[torch.Tensor], labels: list[torch.Tensor], length: int, num_classes: int,
                  device) -> torch.Tensor:
    """(B, T, C) 0/1: step t is positive for class c when ``start ≤ t ≤ end`` of an action of class c."""
    t = torch.arange(length, device=device, dtype=torch.float32)  # (T,)
    out = []
    for segs, labs in zip(segments, labels):
        segs = segs.to(device=device, dtype=torch.float32).reshape(-1, 2)
        inside = (segs[None, :, 0] <= t[:, None]) & (t[:, None] <= segs[None, :, 1])  # (T, N)
        onehot = F.one_hot(labs.to(device=device, dtype=torch.long).reshape(-1), num_classes).float()  # (N, C)
        out.append((inside.float() @ onehot).clamp(max=1.0))  # (T, C)
    return torch.stack(out)


def boundary_contrast(probs: torch.Tensor, masks: torch.Tensor, segments: torch.Tensor, labels: torch.Tensor,
                      band: float = 0.25, floor: float = 1e-3) -> torch.Tensor:
    """Localisation quality of detections from per-step class probabilities (``dense_rescore``).

    probs (B, T, C) in [0, 1], masks (B, T) prefix-valid, segments (B, N, 2) feature steps of the window,
    labels (B, N). For a detection ``[s, e]`` of class c over the valid length L: the steps
    ``[i, j) = [clip(⌊s⌋, 0, L−1), max(clip(⌈e⌉, 1, L), i+1))`` are inside, the ``w = max(1, round(band·(e−s)))``
    steps either side (within ``[0, L)``) are outside; the quality is
    ``clip(mean_inside p_c − mean_outside p_c, floor, 1)`` (mean outside 0 when no step is outside). (B, N).
    """
    B, T, C = probs.shape
    L = masks.sum(dim=1).long().clamp(min=1)[:, None]  # (B, 1)
    cs = F.pad(torch.cumsum(probs * masks[..., None].to(probs.dtype), dim=1), (0, 0, 1, 0))  # (B, T+1, C)
    s, e = segments[..., 0], segments[..., 1]  # (B, N)
    i = torch.minimum(s.floor().long().clamp(min=0), L - 1)
    j = torch.maximum(torch.minimum(e.ceil().long().clamp(min=1), L), i + 1)
    w = (band * (e - s)).round().long().clamp(min=1)
    lo, hi = (i - w).clamp(min=0), torch.minimum(j + w, L)

    def total(a, b):  # Σ p_c over [a, b), (B, N)
        return (cs.gather(1, b[..., None].expand(-1, -1, C)) - cs.gather(1, a[..., None].expand(-1, -1, C))
                ).gather(2, labels[..., None].long()).squeeze(-1)
    inside = total(i, j) / (j - i).to(probs.dtype)
    n_out = ((i - lo) + (hi - j)).to(probs.dtype)
    outside = (total(lo, i) + total(j, hi)) / n_out.clamp(min=1)
    return (inside - outside).clamp(floor, 1.0)


# ---------------------------------------------------------------- point level
class PointDeformation(nn.Module):
    """Point-level local deformation, Eq. (2)-(3): each point reads ``num_subpoints`` weighted sub-points.

    Offsets (feature steps) and softmax weights come from the query vector, one set for the first
    ``num_boundary_points`` points and one for the rest. ``deformable=False`` reads each point itself
    (Table 2e's direct interpolation).
    """

    def __init__(self, dim: int, num_points: int, num_subpoints: int = 4, num_boundary_points: int = 4,
                 deformable: bool = True, zero_init: bool = True):
        super().__init__()
        self.num_points = num_points
        self.deformable = deformable
        self.num_subpoints = num_subpoints if deformable else 1
        self.groups = [n for n in (min(num_boundary_points, num_points), num_points - min(num_boundary_points,
                                                                                            num_points)) if n > 0]
        if deformable:
            self.offsets = nn.ModuleList(nn.Linear(dim, num_subpoints) for _ in self.groups)
            self.weights = nn.ModuleList(nn.Linear(dim, num_subpoints) for _ in self.groups)
            for off, w in zip(self.offsets, self.weights):
                if zero_init:
                    nn.init.zeros_(off.weight)
                else:
                    nn.init.xavier_uniform_(off.weight)
                with torch.no_grad():
                    off.bias.copy_(torch.arange(1, num_subpoints + 1, dtype=torch.float32))
                nn.init.zeros_(w.weight)
                nn.init.zeros_(w.bias)

    def _per_point(self, layers: nn.ModuleList, query: torch.Tensor) -> torch.Tensor:
        """(B, Q, D) → (B, Q, N_s, S): each group's prediction repeated over its points."""
        return torch.cat([layer(query)[:, :, None, :].expand(-1, -1, n, -1) for layer, n in zip(layers, self.groups)],
                         dim=2)

    def forward(self, query: torch.Tensor, feats: torch.Tensor, positions: torch.Tensor,
                valid_len: torch.Tensor) -> torch.Tensor:
        """query (B, Q, D), feats (B, T, D), positions (B, Q, N_s) feature units → point features (B, Q, N_s, D)."""
        B, Q, Ns = positions.shape
        if self.deformable:
            sub = positions[..., None] + self._per_point(self.offsets, query).float()  # (B, Q, N_s, S)
            weights = self._per_point(self.weights, query).float().softmax(-1)  # (B, Q, N_s, S)
        else:
            sub = positions[..., None]  # (B, Q, N_s, 1)
            weights = torch.ones_like(sub)
        W = interpolation_weights(sub.flatten(1, 2), weights.flatten(1, 2), valid_len, feats.shape[1])  # (B, Q·N_s, T)
        return torch.bmm(W.to(feats.dtype), feats).view(B, Q, Ns, -1)  # (B, Q, N_s, D)


# ---------------------------------------------------------------- instance level
class AdaptiveMixing(nn.Module):
    """Instance-level dynamic mixing, Eq. (4)-(9); ``mode`` picks Table 2f's variant.

    frame: ``x_f = ReLU(LN_Ns(xᵀ M_f))``; channel: ``x_c = ReLU(LN_D(ReLU(LN_d(x M_c1)) M_c2))``; parallel
    concatenates ``x_fᵀ`` and ``x_c`` on channels; ``frame_channel`` / ``channel_frame`` cascade them.
    The result is flattened and projected to D (Linear, LN, ReLU).
    """

    def __init__(self, dim: int, num_points: int, dynamic_dim: int = 64, mode: str = "parallel"):
        super().__init__()
        self.dim, self.num_points, self.dynamic_dim, self.mode = dim, num_points, dynamic_dim, mode
        self.use_frame = mode != "channel"
        self.use_channel = mode != "frame"
        if self.use_frame:
            self.frame_params = nn.Linear(dim, num_points * num_points)  # M_f, Eq. (4)
            self.frame_norm = nn.LayerNorm(num_points)
        if self.use_channel:
            self.channel_params = nn.Linear(dim, 2 * dim * dynamic_dim)  # M_c1, M_c2, Eq. (5)-(6)
            self.channel_norm1 = nn.LayerNorm(dynamic_dim)
            self.channel_norm2 = nn.LayerNorm(dim)
        width = 2 if mode == "parallel" else 1
        self.out = nn.Linear(width * num_points * dim, dim)
        self.out_norm = nn.LayerNorm(dim)

    def frame_mix(self, query: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """Eq. (7) on x (B, Q, N_s, D); returns ``x_fᵀ`` (B, Q, N_s, D)."""
        Ns = self.num_points
        M = self.frame_params(query).view(*query.shape[:2], Ns, Ns)  # (B, Q, N_s, N_s)
        mixed = torch.matmul(x.transpose(-1, -2), M)  # (B, Q, D, N_s)
        return F.relu(self.frame_norm(mixed)).transpose(-1, -2)  # (B, Q, N_s, D)

    def channel_mix(self, query: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """Eq. (8) on x (B, Q, N_s, D) → (B, Q, N_s, D)."""
        D, d = self.dim, self.dynamic_dim
        params = self.channel_params(query)  # (B, Q, 2·D·d)
        M1 = params[..., :D * d].view(*query.shape[:2], D, d)  # (B, Q, D, d)
        M2 = params[..., D * d:].view(*query.shape[:2], d, D)  # (B, Q, d, D)
        h = F.relu(self.channel_norm1(torch.matmul(x, M1)))  # (B, Q, N_s, d)
        return F.relu(self.channel_norm2(torch.matmul(h, M2)))  # (B, Q, N_s, D)

    def forward(self, query: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """query (B, Q, D), point features x (B, Q, N_s, D) → update (B, Q, D)."""
        if self.mode == "parallel":
            mixed = torch.cat((self.channel_mix(query, x), self.frame_mix(query, x)), dim=-1)  # (B, Q, N_s, 2D)
        elif self.mode == "frame":
            mixed = self.frame_mix(query, x)
        elif self.mode == "channel":
            mixed = self.channel_mix(query, x)
        elif self.mode == "frame_channel":
            mixed = self.channel_mix(query, self.frame_mix(query, x))
        else:  # channel_frame
            mixed = self.frame_mix(query, self.channel_mix(query, x))
        return F.relu(self.out_norm(self.out(mixed.flatten(2))))  # (B, Q, D)


def _mlp(dim: int, num_layers: int) -> nn.Sequential:
    """``num_layers`` × (Linear without bias, LayerNorm, ReLU): the released heads' towers."""
    layers = []
    for _ in range(num_layers):
        layers += [nn.Linear(dim, dim, bias=False), nn.LayerNorm(dim), nn.ReLU(inplace=True)]
    return nn.Sequential(*layers)


class PointTADLayer(nn.Module):
    """One decoder layer: point deformation, query self-attention, adaptive mixing, FFN, class / offset heads."""

    def __init__(self, dim: int, num_classes: int, num_points: int, num_deltas: int, num_heads: int = 8,
                 ffn_dim: int = 2048, dropout: float = 0.1, dynamic_dim: int = 64, num_subpoints: int = 4,
                 num_boundary_points: int = 4, deformable: bool = True, mixing: str = "parallel",
                 deform_zero_init: bool = True, cls_layers: int = 1, reg_layers: int = 3, no_action: bool = True):
        super().__init__()
        self.deformation = PointDeformation(dim, num_points, num_subpoints, num_boundary_points, deformable,
                                            deform_zero_init)
        self.self_attn = nn.MultiheadAttention(dim, num_heads, dropout=dropout, batch_first=True)
        self.mixing = AdaptiveMixing(dim, num_points, dynamic_dim, mixing)
        self.ffn = nn.Sequential(nn.Linear(dim, ffn_dim), nn.ReLU(inplace=True), nn.Dropout(dropout),
                                 nn.Linear(ffn_dim, dim))
        self.norm1, self.norm2, self.norm3 = nn.LayerNorm(dim), nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.drop1, self.drop2, self.drop3 = nn.Dropout(dropout), nn.Dropout(dropout), nn.Dropout(dropout)
        self.cls_tower, self.reg_tower = _mlp(dim, cls_layers), _mlp(dim, reg_layers)
        self.cls_pred = nn.Linear(dim, num_classes + int(no_action))   # + the no-action class of the softmax
        self.delta_pred = nn.Linear(dim, num_deltas)

    def forward(self, query: torch.Tensor, feats: torch.Tensor, positions: torch.Tensor, valid_len: torch.Tensor):
        """query (B, Q, D), feats (B, T, D), positions (B, Q, N_s) → query (B, Q, D), logits (B, Q, C+1), deltas."""
        point_feats = self.deformation(query, feats, positions, valid_len)  # (B, Q, N_s, D)
        query = self.norm1(query + self.drop1(self.self_attn(query, query, query, need_weights=False)[0]))
        query = self.norm2(query + self.drop2(self.mixing(query, point_feats)))
        query = self.norm3(query + self.drop3(self.ffn(query)))  # (B, Q, D)
        return query, self.cls_pred(self.cls_tower(query)), self.delta_pred(self.reg_tower(query))


# ---------------------------------------------------------------- decoder
class PointTADDecoder(nn.Module):
    """Learnable queries and points refined over ``num_layers`` layers on a feature sequence (B, T, D).

    ``window_size`` is the training window length: points are normalised by
    ``max(window_size, valid length)`` per video. Returns one dict per layer with ``logits`` (B, Q, C+1),
    ``points`` (B, Q, P, window-normalised), ``segments`` (B, Q, 2, feature units) and ``scale`` (B,).
    """

    def __init__(self, num_classes: int, dim: int, window_size: int, *, num_queries: int = 48,
                 num_points: int = 21, num_layers: int = 4, num_heads: int = 8, ffn_dim: int = 2048,
                 dropout: float = 0.1, dynamic_dim: int = 64, num_subpoints: int = 4, num_boundary_points: int = 4,
                 deformable: bool = True, mixing: str = "parallel", representation: str = "points",
                 point_init: str = "constant", pseudo_segment: str = "partial", num_local_points: int | None = None,
                 offset_scale: str = "action", span: str = "points", deform_zero_init: bool = True,
                 delta_zero_init: bool = False, class_loss: str = "ce", detach_points: bool = False):
        super().__init__()
        self.window_size = window_size
        self.detach_points = detach_points
        self.representation = representation
        self.num_points = num_points
        self.offset_scale, self.span = offset_scale, span
        state = num_points if representation == "points" else 2  # values a query carries
        if representation == "segment" or pseudo_segment == "minmax":
            self.num_local = None
        else:
            self.num_local = num_local_points if num_local_points is not None else default_local_points(num_points)
        self.query_embed = nn.Embedding(num_queries, dim)  # query vectors q
        self.query_points = nn.Parameter(torch.empty(num_queries, state))  # (Q, P) window-normalised
        with torch.no_grad():
            if representation == "segment":
                self.query_points.copy_(torch.tensor([0.0, 1.0]).expand(num_queries, 2))
            elif point_init == "constant":
                self.query_points.fill_(0.5)
            elif point_init == "uniform":
                self.query_points.uniform_(0.0, 1.0)
            else:
                self.query_points.normal_(0.5, 0.3)
        self.layers = nn.ModuleList(
            PointTADLayer(dim, num_classes, num_points, state, num_heads, ffn_dim, dropout, dynamic_dim,
                          num_subpoints, num_boundary_points, deformable, mixing, deform_zero_init,
                          no_action=class_loss == "ce")
            for _ in range(num_layers))
        skip = ("deformation.offsets", "deformation.weights")
        for name, p in self.layers.named_parameters():  # Xavier as released, except the paper's point inits
            if p.dim() > 1 and not any(s in name for s in skip):
                nn.init.xavier_uniform_(p)
        if class_loss == "focal":  # sigmoid classifiers start at a prior of 0.01 (Deformable DETR)
            for layer in self.layers:
                nn.init.constant_(layer.cls_pred.bias, -math.log(99.0))
        if delta_zero_init:  # the first refinements are then the identity (Deformable DETR's box-refinement init)
            for layer in self.layers:
                nn.init.zeros_(layer.delta_pred.weight)
                nn.init.zeros_(layer.delta_pred.bias)

    def pseudo_segments(self, state: torch.Tensor) -> torch.Tensor:
        """(B, Q, P) → (B, Q, 2): partial min-max / min-max (points) or the ordered ends (segment)."""
        return pseudo_segments(state, self.num_local)

    def sampling_positions(self, state: torch.Tensor) -> torch.Tensor:
        """Window-normalised sampling positions (B, Q, N_s): the points, or the segment's bin centres."""
        if self.representation == "points":
            return state
        seg = pseudo_segments(state)  # (B, Q, 2)
        bins = (torch.arange(self.num_points, device=state.device, dtype=state.dtype) + 0.5) / self.num_points
        return seg[..., :1] + (seg[..., 1:] - seg[..., :1]) * bins  # (B, Q, N_s)

    def refine(self, state: torch.Tensor, deltas: torch.Tensor) -> torch.Tensor:
        """Eq. (1) with the span of the points (or of the pseudo segment, or 1 for ``offset_scale=window``)."""
        if self.offset_scale == "window":
            return refine_points(state, deltas, 1.0)
        if self.span == "pseudo" and self.representation == "points":
            seg = self.pseudo_segments(state)
        else:
            seg = pseudo_segments(state)
        return refine_points(state, deltas.to(state.dtype), seg[..., 1] - seg[..., 0])

    def forward(self, feats: torch.Tensor, masks: torch.Tensor) -> list[dict]:
        """feats (B, T, D) zero at invalid steps, masks (B, T) prefix-valid → per-layer outputs."""
        B = feats.shape[0]
        valid_len = masks.sum(dim=1)  # (B,)
        scale = valid_len.float().clamp(min=self.window_size)  # (B,) feature steps per unit
        query = self.query_embed.weight[None].expand(B, -1, -1)  # (B, Q, D)
        state = self.query_points[None].expand(B, -1, -1).float()  # (B, Q, P)
        outputs = []
        for layer in self.layers:
            positions = self.sampling_positions(state) * scale[:, None, None]  # (B, Q, N_s) feature units
            query, logits, deltas = layer(query, feats, positions, valid_len)
            state = self.refine(state, deltas.float())
            segments = self.pseudo_segments(state) * scale[:, None, None]  # (B, Q, 2) feature units
            outputs.append({"logits": logits, "points": state, "segments": segments, "scale": scale})
            if self.detach_points:  # the next layer refines these points without moving them (Sparse R-CNN)
                state = state.detach()
        return outputs


# ---------------------------------------------------------------- detector
class PointTAD(nn.Module):
    """PointTAD detector; see the module docstring. Hyperparameters only in the constructor.

    Features: ``hidden_dim`` (512), ``encoder_layers`` (0). Queries: ``num_queries`` (48), ``num_points`` (21; 15 on Charades),
    ``representation``, ``point_init``, ``pseudo_segment``, ``num_local_points`` (None: N_s − ⌈N_s/3⌉),
    ``offset_scale``, ``span``. Decoder: ``num_layers`` (4), ``num_heads`` (8), ``ffn_dim`` (2048),
    ``dropout`` (0.1), ``dynamic_dim`` (64), ``num_subpoints`` (4), ``num_boundary_points`` (4),
    ``deformable``, ``deform_zero_init``, ``delta_zero_init`` (False: Xavier as released), ``mixing``,
    ``detach_points`` (False). Training: matching costs ``cost_class`` (10),
    ``cost_l1`` (5), ``cost_iou`` (5); ``eos_coef`` (0.1); ``lambda_cls`` (10), ``lambda_loc`` (5),
    ``lambda_seg`` (1), ``ce_weight`` (1; 0.1 = released code), ``l1_loss``, ``iou_loss`` (``iou`` | ``giou``
    | ``none``), ``aux_loss``, ``class_loss`` (``ce`` | ``focal``), ``class_target`` (``label`` | ``iou``),
    ``dense_head`` (``conv`` | ``linear`` | ``none``), ``dense_dropout`` (0.5).
    Inference: ``detections_per_query`` (1), ``dense_rescore`` (0: off), ``dense_rescore_band`` (0.25).
    ``max_seq_len`` is the training window (64 steps).
    """

    END_TO_END = True   # model.backbone: trained from frames (tadkit.models.video_detector)

    def __init__(self, num_classes: int, input_dim: int, max_seq_len: int = 64, *,
                 # 1. video features
                 hidden_dim: int = 512, encoder_layers: int = 0,
                 # 2. queries and points
                 num_queries: int = 48, num_points: int = 21, representation: str = "points",
                 point_init: str = "constant", pseudo_segment: str = "partial", num_local_points: int | None = None,
                 offset_scale: str = "action", span: str = "points",
                 # 3. decoder
                 num_layers: int = 4, num_heads: int = 8, ffn_dim: int = 2048, dropout: float = 0.1,
                 dynamic_dim: int = 64, num_subpoints: int = 4, num_boundary_points: int = 4,
                 deformable: bool = True, deform_zero_init: bool = True, delta_zero_init: bool = False,
                 mixing: str = "parallel", detach_points: bool = False,
                 # 4. training
                 cost_class: float = 10.0, cost_l1: float = 5.0, cost_iou: float = 5.0, eos_coef: float = 0.1,
                 lambda_cls: float = 10.0, lambda_loc: float = 5.0, lambda_seg: float = 1.0, ce_weight: float = 1.0,
                 l1_loss: bool = True, iou_loss: str = "iou", aux_loss: bool = True, class_loss: str = "ce",
                 class_target: str = "label", dense_head: str = "conv", dense_dropout: float = 0.5,
                 # 5. inference
                 detections_per_query: int = 1, dense_rescore: float = 0.0, dense_rescore_band: float = 0.25):
        super().__init__()
        _require(num_classes >= 1, f"num_classes must be >= 1, got {num_classes}")
        _require(input_dim >= 1, f"input_dim must be >= 1, got {input_dim}")
        _require(max_seq_len >= 1, f"max_seq_len must be >= 1, got {max_seq_len}", "set model.max_seq_len")
        for name, value in (("hidden_dim", hidden_dim), ("num_queries", num_queries), ("num_points", num_points),
                            ("num_layers", num_layers), ("num_heads", num_heads), ("ffn_dim", ffn_dim),
                            ("dynamic_dim", dynamic_dim), ("num_subpoints", num_subpoints),
                            ("detections_per_query", detections_per_query)):
            _require(isinstance(value, int) and value >= 1, f"{name} must be an integer >= 1, got {value!r}",
                     f"set model.{name}")
        _require(hidden_dim % num_heads == 0, f"hidden_dim {hidden_dim} is not divisible by num_heads {num_heads}",
                 "pick num_heads dividing hidden_dim")
        _require(isinstance(encoder_layers, int) and encoder_layers >= 0,
                 f"encoder_layers must be an integer >= 0, got {encoder_layers!r}", "set model.encoder_layers")
        _require(num_boundary_points >= 0, f"num_boundary_points must be >= 0, got {num_boundary_points}")
        _require(detections_per_query <= num_classes,
                 f"detections_per_query {detections_per_query} exceeds the {num_classes} classes",
                 "set model.detections_per_query <= number of classes")
        _choice("representation", representation, REPRESENTATIONS)
        _choice("point_init", point_init, POINT_INITS)
        _choice("pseudo_segment", pseudo_segment, PSEUDO_SEGMENTS)
        _choice("offset_scale", offset_scale, OFFSET_SCALES)
        _choice("span", span, SPANS)
        _choice("mixing", mixing, MIXINGS)
        _choice("iou_loss", iou_loss, ("iou", "giou", "none"))
        _choice("class_loss", class_loss, CLASS_LOSSES)
        _choice("class_target", class_target, CLASS_TARGETS)   # with class_loss ce only: SetCriterion checks
        _choice("dense_head", dense_head, DENSE_HEADS)
        if num_local_points is not None:
            _require(isinstance(num_local_points, int) and 1 <= num_local_points <= num_points,
                     f"num_local_points must be in [1, num_points={num_points}] or null, got {num_local_points!r}",
                     "set model.num_local_points")
        for name, value in (("cost_class", cost_class), ("cost_l1", cost_l1), ("cost_iou", cost_iou),
                            ("eos_coef", eos_coef), ("lambda_cls", lambda_cls), ("lambda_loc", lambda_loc),
                            ("lambda_seg", lambda_seg), ("ce_weight", ce_weight)):
            _require(value >= 0, f"{name} must be >= 0, got {value}", f"set model.{name}")
        _require(0 <= dropout < 1 and 0 <= dense_dropout < 1, "dropout and dense_dropout must lie in [0, 1)")
        _require(0 <= dense_rescore <= 1, f"dense_rescore must lie in [0, 1], got {dense_rescore}",
                 "set model.dense_rescore (0: off)")
        _require(dense_rescore_band > 0, f"dense_rescore_band must be > 0, got {dense_rescore_band}",
                 "set model.dense_rescore_band, e.g. 0.25")
        _require(dense_rescore == 0 or dense_head != "none", "dense_rescore needs the dense head",
                 "set model.dense_head: conv, or model.dense_rescore: 0")
        self.num_classes = num_classes
        self.input_dim = input_dim
        self.max_seq_len = max_seq_len
        self.detections_per_query = detections_per_query
        self.dense_rescore, self.dense_rescore_band = float(dense_rescore), float(dense_rescore_band)
        self.class_loss = class_loss

        # 1. video features: a 1×1 projection of pre-extracted features
        self.input_proj = nn.Linear(input_dim, hidden_dim)
        # optional temporal encoder (not the paper's): residual masked k3 convs over the projected features
        self.encoder = ConvStack(hidden_dim, hidden_dim, encoder_layers, 3, with_ln=True) if encoder_layers else None

        # 2-3. queries, points and the decoder
        self.decoder = PointTADDecoder(
            num_classes, hidden_dim, max_seq_len, num_queries=num_queries, num_points=num_points,
            num_layers=num_layers, num_heads=num_heads, ffn_dim=ffn_dim, dropout=dropout, dynamic_dim=dynamic_dim,
            num_subpoints=num_subpoints, num_boundary_points=num_boundary_points, deformable=deformable,
            mixing=mixing, representation=representation, point_init=point_init, pseudo_segment=pseudo_segment,
            num_local_points=num_local_points, offset_scale=offset_scale, span=span,
            deform_zero_init=deform_zero_init, delta_zero_init=delta_zero_init, class_loss=class_loss,
            detach_points=detach_points)

        # dense per-frame head S (Eq. 12): a linear map of the features (conv k3 → dropout → conv k1 as released)
        self.dense_head_kind = dense_head
        if dense_head == "conv":
            self.dense_conv1 = MaskedConv1D(hidden_dim, max(1, hidden_dim // 2), 3)
            self.dense_drop = nn.Dropout(dense_dropout)
            self.dense_conv2 = MaskedConv1D(max(1, hidden_dim // 2), num_classes, 1)
        elif dense_head == "linear":
            self.dense_conv2 = MaskedConv1D(hidden_dim, num_classes, 1)

        # 4. training: Hungarian matching on (centre, width) / window and tIoU, set losses on every layer
        # class_loss "ce": softmax over C + no action (paper), matched on −p; "focal": sigmoid per class,
        # matched on the focal cost (Deformable DETR's), unmatched queries all-zero targets
        matcher = HungarianMatcher(cost_class, cost_l1, cost_iou,
                                   class_cost="softmax" if class_loss == "ce" else "focal", l1_format="cw",
                                   iou_type="giou" if iou_loss == "giou" else "iou")
        self.criterion = SetCriterion(num_classes, matcher, class_loss=class_loss, eos_coef=eos_coef, l1_format="cw",
                                      iou_type="giou" if iou_loss == "giou" else "iou",
                                      weight_class=lambda_cls * ce_weight, weight_l1=lambda_loc if l1_loss else 0.0,
                                      weight_iou=0.0 if iou_loss == "none" else lambda_loc, aux_loss=aux_loss,
                                      class_target=class_target)
        self.dense_weight = lambda_cls * lambda_seg if dense_head != "none" else 0.0

    # ---------------------------------------------------------------- 1. features
    def preprocess(self, batch: dict) -> tuple[torch.Tensor, torch.Tensor]:
        """Features (B, C, T) and masks (B, T) on the model's device; invalid steps zeroed."""
        return model_inputs(batch, self.input_dim, self.input_proj.weight.device)

    def encode(self, batch: dict) -> tuple[torch.Tensor, torch.Tensor]:
        """Video features X (B, T, D), zero at invalid steps, and masks (B, T)."""
        feats, masks = self.preprocess(batch)
        x = self.input_proj(feats.transpose(1, 2))  # (B, T, D)
        if self.encoder is not None:
            h = apply_mask(x.transpose(1, 2), masks)  # (B, D, T)
            x = x + self.encoder(h, masks)[0].transpose(1, 2)
        return x * masks[..., None].to(x.dtype), masks

    def dense_logits(self, x: torch.Tensor, masks: torch.Tensor) -> torch.Tensor | None:
        """Per-frame class logits S (B, T, C) from X (B, T, D); None without a dense head."""
        if self.dense_head_kind == "none":
            return None
        h = x.transpose(1, 2)  # (B, D, T)
        if self.dense_head_kind == "conv":
            h, _ = self.dense_conv1(h, masks)
            h = self.dense_drop(h)
        h, _ = self.dense_conv2(h, masks)  # (B, C, T)
        return h.transpose(1, 2)

    def run(self, batch: dict) -> dict:
        """All outputs: ``layers`` (per decoder layer, see :class:`PointTADDecoder`), ``dense`` (B, T, C), ``masks``."""
        x, masks = self.encode(batch)
        return {"layers": self.decoder(x, masks), "dense": self.dense_logits(x, masks), "masks": masks}

    # ---------------------------------------------------------------- 4. training
    def forward(self, batch: dict) -> dict[str, torch.Tensor]:
        """Named losses of a training batch; ``loss`` is the total to minimise (Eq. 13)."""
        return self.compute_losses(self.run(batch), batch)

    def compute_losses(self, outputs: dict, batch: dict) -> dict[str, torch.Tensor]:
        layers = outputs["layers"]
        losses = self.criterion(layers, batch["segments"], batch["labels"], normalizer=layers[-1]["scale"])
        if outputs["dense"] is not None:
            masks = outputs["masks"]
            target = dense_targets(batch["segments"], batch["labels"], masks.shape[1], self.num_classes,
                                   masks.device)  # (B, T, C)
            dense = F.binary_cross_entropy_with_logits(outputs["dense"].float()[masks], target[masks])
            losses["loss_dense"] = dense
            losses["loss"] = losses["loss"] + self.dense_weight * dense
        return losses

    # ---------------------------------------------------------------- 5. inference
    @torch.no_grad()
    def predict(self, batch: dict) -> list[Instances]:
        """One detection per query (and class with ``detections_per_query``), feature units in the window."""
        outputs = self.run(batch)
        last = outputs["layers"][-1]
        logits = last["logits"].float()
        probs = (logits.softmax(-1)[..., :self.num_classes] if self.class_loss == "ce"
                 else logits.sigmoid())  # (B, Q, C)
        scores, labels = probs.topk(self.detections_per_query, dim=-1)  # (B, Q, k)
        valid_len = outputs["masks"].sum(dim=1).float()  # (B,)
        segments = torch.minimum(last["segments"].clamp(min=0), valid_len[:, None, None])  # (B, Q, 2)
        segments = segments[:, :, None, :].expand(-1, -1, self.detections_per_query, -1)  # (B, Q, k, 2)
        if self.dense_rescore > 0:
            quality = boundary_contrast(outputs["dense"].float().sigmoid(), outputs["masks"], segments.flatten(1, 2),
                                        labels.flatten(1), self.dense_rescore_band).view_as(scores)
            a = self.dense_rescore
            scores = scores.clamp(min=1e-12) ** (1 - a) * quality ** a  # (B, Q, k)
        return [Instances(segments[b].reshape(-1, 2).double().cpu().numpy(), labels[b].reshape(-1).cpu().numpy(),
                          scores[b].reshape(-1).double().cpu().numpy()).sorted_by_score()
                for b in range(probs.shape[0])]

    @torch.no_grad()
    def frame_scores(self, batch: dict) -> list[np.ndarray] | None:
        """Dense head probabilities per window, (valid steps, C) each; None without a dense head."""
        if self.dense_head_kind == "none":
            return None
        x, masks = self.encode(batch)
        probs = self.dense_logits(x, masks).float().sigmoid()  # (B, T, C)
        return [probs[b, masks[b]].double().cpu().numpy() for b in range(probs.shape[0])]


DETECTOR = PointTAD
