"""TAGS ground truth (Sec. 3.3), losses (Eq. 5–9) and the run decomposition shared with inference.

Shapes: a *mask* is a 1-D foreground map over the T positions of one scale; a batch of masks is
(N, T) with a (N, T) bool ``valid`` (True = a step of the video, not padding). A *map* is the
(B, T, T) stack of a video's masks, ``map[b, k, t]`` = foreground probability of position k
predicted by snippet t (column t is the mask of snippet t, as M in Eq. 4).

Everything is vectorised: runs of a binarised mask come from one ``nonzero`` over all masks and
thresholds at once, their sums from prefix sums; no Python loop over snippets, thresholds or runs.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

# the paper's defaults (Sec. 3.3, 4): Θ = 0.1 … 0.9 step 0.05
PAPER_THRESHOLDS = tuple(round(0.1 + 0.05 * i, 2) for i in range(17))


# ---------------------------------------------------------------------------- Sec. 3.3 ground truth
def global_mask_targets(segments: torch.Tensor, labels: torch.Tensor, length: int, scale: int,
                        num_valid: int, background: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per-snippet class and instance of one video at one scale, and each instance's mask.

    segments (N, 2) in feature units, labels (N,); snippet i of scale ``scale`` sits at feature
    position ``i·scale`` and belongs to an instance when ``start <= i·scale <= end``. An instance
    that contains no snippet position gets its nearest one (so every instance is a target).
    *Overlap rule*: a snippet inside several instances takes the shortest one (ties: the first
    listed), so a nested short action keeps its snippets; the longer one keeps the rest.

    Returns ``cls`` (T,) long (``background`` = K off every instance and at padding), ``owner``
    (T,) long (index of the snippet's instance, −1 for none) and ``inside`` (N, T) bool, the
    instance masks: the global mask of snippet t is ``inside[owner[t]]`` (zeros for background).
    """
    device = segments.device
    pos = torch.arange(length, device=device, dtype=torch.float32) * scale           # (T,)
    valid = torch.arange(length, device=device) < num_valid                            # (T,)
    seg = segments.reshape(-1, 2).float()
    inside = (pos[None] >= seg[:, :1]) & (pos[None] <= seg[:, 1:]) & valid[None]     # (N, T)
    if len(seg) and num_valid > 0:
        nearest = (0.5 * (seg[:, 0] + seg[:, 1]) / scale).round().clamp(0, num_valid - 1).long()
        empty = ~inside.any(1)
        inside[torch.arange(len(seg), device=device)[empty], nearest[empty]] = True
    seg_len = (seg[:, 1] - seg[:, 0])[:, None].expand(-1, length)                      # (N, T)
    cost = torch.where(inside, seg_len, torch.full_like(seg_len, math.inf))
    owner = torch.full((length,), -1, dtype=torch.long, device=device)
    cls = torch.full((length,), background, dtype=torch.long, device=device)
    if len(seg):
        best, arg = cost.min(0)                                                        # first minimum wins
        fg = torch.isfinite(best)
        owner = torch.where(fg, arg, owner)
        cls = torch.where(fg, labels.reshape(-1).to(device).long()[arg], cls)
    return cls, owner, inside


# ---------------------------------------------------------------------------- runs of binary masks
def binary_runs(binary: torch.Tensor, length: torch.Tensor):
    """Maximal runs of equal values in each row of ``binary`` (R, T) bool, within its first ``length`` steps.

    Returns ``row, start, end, value`` (each (U,)), ``end`` inclusive, sorted by row then start.
    """
    R, T = binary.shape
    pos = torch.arange(T, device=binary.device)
    starts = torch.ones_like(binary)
    starts[:, 1:] = binary[:, 1:] != binary[:, :-1]
    starts &= pos[None] < length[:, None]
    row, start = starts.nonzero(as_tuple=True)
    nxt_row, nxt_start = row.roll(-1), start.roll(-1)
    same = nxt_row == row
    if len(row):
        same[-1] = False
    end = torch.where(same, nxt_start - 1, length[row] - 1)
    return row, start, end, binary[row, start]


def prefix_sums(x: torch.Tensor) -> torch.Tensor:
    """(R, T) -> (R, T + 1) with a leading zero: sum of x[r, a:b] = P[r, b] − P[r, a]."""
    return F.pad(x.cumsum(-1), (1, 0))


def range_sum(prefix: torch.Tensor, row: torch.Tensor, lo: torch.Tensor, hi: torch.Tensor) -> torch.Tensor:
    """Sum of x[row, lo:hi] from its prefix sums (``hi <= lo`` gives 0)."""
    hi = torch.maximum(hi, lo)
    return prefix[row, hi] - prefix[row, lo]


# ---------------------------------------------------------------------------- Eq. 5
def classification_loss(logits: torch.Tensor, target: torch.Tensor, *, lambda1: float = 0.4, gamma: float = 2.0,
                         alpha: float = 10.0, num_negatives: int = 1, focal: bool = True,
                         logistic: bool = True) -> torch.Tensor:
    """Eq. 5 per snippet: ``λ1·focal + (1 − λ1)·class-balanced logistic``; logits (N, K+1), target (N,).

    focal: ``−(1 − p_y)^γ log p_y`` with ``p = softmax``; logistic with ``r = sigmoid`` of the same
    logits: ``−log r_y − α / |N| Σ_{k∈N} log(1 − r_k)`` over the |N| hardest negatives (largest
    r_k, k ≠ y). (The printed equation omits the minus signs of a negative log-likelihood.)
    """
    loss = logits.new_zeros(logits.shape[0])
    if focal:
        logp_y = logits.float().log_softmax(-1).gather(1, target[:, None])[:, 0]
        loss = loss + lambda1 * (1 - logp_y.exp()) ** gamma * -logp_y
    if logistic:
        log_r = F.logsigmoid(logits.float())                                  # log r
        log_not_r = F.logsigmoid(-logits.float())                             # log (1 − r)
        pos = -log_r.gather(1, target[:, None])[:, 0]
        neg = (-log_not_r).scatter(1, target[:, None], -math.inf)            # y is no negative
        k = min(num_negatives, logits.shape[1] - 1)
        hard = neg.topk(k, dim=1).values.mean(1) if k > 0 else torch.zeros_like(pos)
        loss = loss + (1 - lambda1) * (pos + alpha * hard)
    return loss


# ---------------------------------------------------------------------------- Eq. 6
def erode(x: torch.Tensor, valid: torch.Tensor, kernel_size: int) -> torch.Tensor:
    """Differentiable morphological erosion (min over a window of ``kernel_size``) along the last axis.

    Steps outside ``valid`` (and beyond the ends) are ignored, so a mask cut by the window edge
    has no boundary there. x, valid: (..., T); invalid steps of the result are 0.
    """
    r = kernel_size // 2
    big = torch.finfo(x.dtype).max
    shape = x.shape
    x = x.masked_fill(~valid, big).reshape(-1, 1, shape[-1])
    x = F.pad(x, (r, r), value=big)
    out = -F.max_pool1d(-x, kernel_size, stride=1).reshape(shape)
    return out.masked_fill(~valid, 0.0)


def boundary(x: torch.Tensor, valid: torch.Tensor, kernel_size: int) -> torch.Tensor:
    """Φ(x) = x − erode(x): the band of width ``kernel_size // 2`` inside each foreground boundary."""
    return (x - erode(x, valid, kernel_size)) * valid


def boundary_iou_loss(m: torch.Tensor, g: torch.Tensor, valid: torch.Tensor, kernel_size: int = 7,
                      eps: float = math.exp(-8)) -> torch.Tensor:
    """Eq. 6, boundary part, per mask: ``1 − ∩/∪ + [no boundary overlap]·‖m − g‖₂ / c``.

    m, g, valid: (N, T); ``∩ = Σ Φ(m)Φ(g)``, ``∪ = Σ Φ(m) + Φ(g) − Φ(m)Φ(g)`` (soft set operations
    on the eroded boundary bands); c = Σ g (the ground-truth mask length). "No boundary overlap"
    is judged on the binarised prediction: Φ(m > 0.5) does not meet Φ(g). Returns (N,).
    """
    v = valid.to(m.dtype)
    m, g = m * v, g.to(m.dtype) * v
    bm, bg = boundary(m, valid, kernel_size), boundary(g, valid, kernel_size)
    inter = (bm * bg).sum(-1)
    union = (bm + bg - bm * bg).sum(-1)
    iou = inter / (union + eps)
    with torch.no_grad():
        hard = boundary((m > 0.5).to(m.dtype), valid, kernel_size)
        no_overlap = (hard * bg).sum(-1) == 0
    l2 = torch.linalg.vector_norm(m - g, dim=-1) / g.sum(-1).clamp(min=1.0)
    return 1 - iou + no_overlap.to(m.dtype) * l2


def dice_loss(m: torch.Tensor, g: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Eq. 6, λ2 part, per map: ``1 − Σ m·g / Σ (m² + g²)`` over the valid entries (the paper's form,
    without the usual factor 2: its minimum is 0.5). m, g, valid: (B, ...); returns (B,)."""
    v = valid.to(m.dtype)
    m, g = (m * v).flatten(1), (g.to(m.dtype) * v).flatten(1)
    return 1 - (m * g).sum(1) / (m.pow(2) + g.pow(2)).sum(1).clamp(min=1e-6)


def balanced_bce_loss(m: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    """The released code's mask loss (not in the paper): binary cross-entropy with the positive and
    negative entries weighted ``0.5·r`` and ``0.5·r / (r − 1)``, r = (n + 10) / (n_pos + 10), averaged."""
    g = g.to(m.dtype)
    ratio = (g.numel() + 10) / (g.sum() + 10)
    weight = torch.where(g > 0, 0.5 * ratio, 0.5 * ratio / (ratio - 1).clamp(min=1e-6))
    return (weight * F.binary_cross_entropy(m.clamp(1e-6, 1 - 1e-6), g, reduction="none")).mean()


# ---------------------------------------------------------------------------- Eq. 7–8
def outer_inner_contrast(m: torch.Tensor, length: torch.Tensor, thresholds: torch.Tensor,
                         delta: float = 0.25) -> torch.Tensor:
    """Eq. 7: the score R(π[j]) of mask m (N, T) binarised at each θ_j (J,), over its first ``length`` steps.

    π[j] is every run (foreground and background) of ``m > θ_j``; a run scores the mean of u inside
    minus the mean of u over ⌈δ·l⌉ steps before and after it (u = m on a foreground run, 1 − m on a
    background run); R is the mean over the runs. Neighbour steps outside the video are not counted
    (the mean is over those that exist; a run with none has outside 0). Returns (N, J).
    """
    N, T = m.shape
    J = len(thresholds)
    binary = (m[:, None, :] > thresholds[None, :, None]).reshape(N * J, T)
    lengths = length.repeat_interleave(J)
    row, s, e, z = binary_runs(binary, lengths)
    mask_row = row // J
    P = prefix_sums(m.double())                                                       # (N, T + 1)
    l = (e - s + 1).double()
    w = torch.ceil(delta * l).long()
    zf = z.double()
    inside_m = range_sum(P, mask_row, s, e + 1) / l
    inside = zf * inside_m + (1 - zf) * (1 - inside_m)
    lo_left = (s - w).clamp(min=0)
    hi_right = torch.minimum(e + 1 + w, lengths[row])
    n_out = (s - lo_left + hi_right - (e + 1)).double()
    m_out = range_sum(P, mask_row, lo_left, s) + range_sum(P, mask_row, e + 1, hi_right)
    u_out = zf * m_out + (1 - zf) * (n_out - m_out)
    outside = torch.where(n_out > 0, u_out / n_out.clamp(min=1), torch.zeros_like(u_out))
    total = torch.zeros(N * J, dtype=torch.float64, device=m.device).index_add_(0, row, inside - outside)
    count = torch.zeros(N * J, dtype=torch.float64, device=m.device).index_add_(0, row, torch.ones_like(l))
    return (total / count.clamp(min=1)).reshape(N, J).to(m.dtype)


def prediction_promotion_loss(m: torch.Tensor, g: torch.Tensor, valid: torch.Tensor, thresholds: torch.Tensor,
                              delta: float = 0.25, beta: float = 2.0, chunk_elements: int = 1 << 22,
                              normalize: bool = False) -> torch.Tensor:
    """Eq. 8 per mask: ``(1 − R(π[j*]))^β ‖m − g‖₂`` with j* = argmax_j R(π[j]) (Eq. 7).

    ``normalize``: divide the L2 norm by c = Σ g (at least 1), the "normalised L2" of Eq. 6
    (option ``redundancy_norm: length``; the printed Eq. 8 has no normaliser).

    The quality weight is computed without gradient (thresholding has none); masks are scored in
    chunks of at most ``chunk_elements`` (mask × threshold × step) so memory stays bounded.
    m, g, valid: (N, T) with valid a prefix of each row. Returns (N,).
    """
    length = valid.sum(-1)
    with torch.no_grad():
        step = max(1, chunk_elements // max(1, len(thresholds) * m.shape[1]))
        best = torch.cat([outer_inner_contrast(m[i:i + step].detach(), length[i:i + step], thresholds, delta)
                          .max(1).values for i in range(0, m.shape[0], step)]) if len(m) else m.new_zeros(0)
    v = valid.to(m.dtype)
    l2 = torch.linalg.vector_norm((m - g.to(m.dtype)) * v, dim=-1)
    if normalize:
        l2 = l2 / (g.to(m.dtype) * v).sum(-1).clamp(min=1.0)
    return (1 - best) ** beta * l2


# ---------------------------------------------------------------------------- Eq. 9
def consistency_loss(probs: torch.Tensor, e_p: torch.Tensor, masks: torch.Tensor, e_m: torch.Tensor,
                     valid: torch.Tensor, theta_p: float = 0.3, theta_m: float = 0.5, topk: int = 40) -> torch.Tensor:
    """Eq. 9 per video: ``1 − cos(F̂_clf, F̂_mask)``.

    probs, e_p: (B, K+1, T) — P and the embedding mapped to its shape; masks, e_m: (B, T, T) — M and
    the embedding mapped to its shape (T_k = 1 for an actionness map); valid (B, T) a prefix. ``F̂_clf`` = the top-k over snippets of
    ``(η(P − θ_p)·E_p)[:K]`` taken at each snippet's argmax class; ``F̂_mask`` = the top-k over
    snippets of ``σ(mean-pool_k(E_m·η(M − θ_m)))`` (pooling over the mask positions k of each
    column). k = min(topk, valid steps). Gradients reach E through E_p and E_m (η has none). Returns (B,).
    """
    fg = (probs >= theta_p).to(e_p.dtype) * e_p                                       # (B, K+1, T)
    score_clf = fg[:, :-1].max(1).values                                               # (B, T) value at argmax
    if masks.shape[1] == 1:                                                             # actionness: one row
        vk, n_k = valid[:, None, :], torch.ones_like(valid[:, :1], dtype=e_m.dtype)
    else:
        vk, n_k = valid[:, :, None] & valid[:, None, :], valid.sum(1, keepdim=True).clamp(min=1).to(e_m.dtype)
    binm = ((masks >= theta_m) & vk).to(e_m.dtype)                                      # (B, T_k, T_t)
    pooled = (e_m * binm).sum(1) / n_k                                                  # (B, T_t)
    score_mask = pooled.sigmoid()
    out = []
    for b in range(probs.shape[0]):                                                    # k differs per video
        n = int(valid[b].sum())
        k = min(topk, n)
        if k == 0:
            out.append(probs.new_zeros(()))
            continue
        f_clf = score_clf[b, :n].topk(k).values
        f_mask = score_mask[b, :n].topk(k).values
        out.append(1 - F.cosine_similarity(f_clf, f_mask, dim=0, eps=1e-8))
    return torch.stack(out)
