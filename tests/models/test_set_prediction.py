"""Hungarian matcher and set losses against brute force and independent (NumPy) computations."""
import itertools
import math

import numpy as np
import pytest
import torch

from tadkit.core.errors import ConfigError
from tadkit.models.set_prediction import (HungarianMatcher, SetCriterion, cw_to_se, num_targets, pairwise_giou,
                                          pairwise_iou, se_to_cw)


def np_iou(a, b):
    inter = max(0.0, min(a[1], b[1]) - max(a[0], b[0]))
    union = (a[1] - a[0]) + (b[1] - b[0]) - inter
    return inter / union


def np_giou(a, b):
    hull = max(a[1], b[1]) - min(a[0], b[0])
    inter = max(0.0, min(a[1], b[1]) - max(a[0], b[0]))
    union = (a[1] - a[0]) + (b[1] - b[0]) - inter
    return inter / union - (hull - union) / hull


def np_softmax(x):
    e = np.exp(x - x.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def np_cost(logits, segs, gt_segs, gt_labels, w, kind, fmt, iou_type, norm=1.0, alpha=0.25, gamma=2.0):
    """The matching cost written out element by element, independently of the module."""
    Q, N = len(segs), len(gt_segs)
    C = np.zeros((Q, N))
    for i in range(Q):
        for j in range(N):
            if kind == "softmax":
                cls = -np_softmax(logits[i])[gt_labels[j]]
            else:
                p = 1 / (1 + math.exp(-logits[i, gt_labels[j]]))
                cls = alpha * (1 - p) ** gamma * -math.log(p + 1e-8) - (1 - alpha) * p ** gamma * -math.log(1 - p + 1e-8)
            a, b = segs[i] / norm, gt_segs[j] / norm
            if fmt == "cw":
                a = np.array([(a[0] + a[1]) / 2, a[1] - a[0]])
                b = np.array([(b[0] + b[1]) / 2, b[1] - b[0]])
            l1 = abs(a[0] - b[0]) + abs(a[1] - b[1])
            ov = np_iou(segs[i], gt_segs[j]) if iou_type == "iou" else np_giou(segs[i], gt_segs[j])
            C[i, j] = w[0] * cls + w[1] * l1 + w[2] * (1 - ov)
    return C


def random_case(rng, Q, N, K, sigmoid=False):
    logits = rng.normal(size=(Q, K if sigmoid else K + 1)) * 2
    starts = rng.uniform(0, 50, size=Q)
    segs = np.stack([starts, starts + rng.uniform(0.5, 30, size=Q)], 1)
    gs = rng.uniform(0, 50, size=N)
    gt = np.stack([gs, gs + rng.uniform(0.5, 30, size=N)], 1)
    return logits, segs, gt, rng.integers(0, K, size=N)


@pytest.mark.parametrize("kind,fmt,iou_type", [("softmax", "se", "iou"), ("softmax", "cw", "giou"),
                                               ("focal", "cw", "iou"), ("focal", "se", "giou")])
def test_matcher_finds_the_brute_force_minimum(kind, fmt, iou_type):
    rng = np.random.default_rng(0)
    w = (2.0, 5.0, 3.0)
    matcher = HungarianMatcher(*w, class_cost=kind, l1_format=fmt, iou_type=iou_type)
    for trial in range(25):
        Q, N, K = int(rng.integers(1, 7)), int(rng.integers(0, 5)), 3
        cases = [random_case(rng, Q, N, K, sigmoid=kind == "focal") for _ in range(2)]
        norms = [10.0, 64.0]
        logits = torch.tensor(np.stack([c[0] for c in cases]), dtype=torch.float32)
        segs = torch.tensor(np.stack([c[1] for c in cases]), dtype=torch.float32)
        out = matcher(logits, segs, [torch.tensor(c[2], dtype=torch.float32) for c in cases],
                      [torch.tensor(c[3]) for c in cases], normalizer=torch.tensor(norms))
        for (lg, sg, gt, lab), norm, (qi, gi) in zip(cases, norms, out):
            assert qi.dtype == torch.long and gi.dtype == torch.long and len(qi) == len(gi) == min(Q, N)
            assert len(set(qi.tolist())) == len(qi) and len(set(gi.tolist())) == len(gi)
            C = np_cost(lg, sg, gt, lab, w, kind, fmt, iou_type, norm)
            if N == 0:
                continue
            if N <= Q:   # every gt gets a distinct query
                best = min(sum(C[p[j], j] for j in range(N)) for p in itertools.permutations(range(Q), N))
            else:        # every query gets a distinct gt
                best = min(sum(C[i, p[i]] for i in range(Q)) for p in itertools.permutations(range(N), Q))
            got = sum(C[i, j] for i, j in zip(qi.tolist(), gi.tolist()))
            assert got == pytest.approx(best, rel=1e-4, abs=1e-4), (trial, got, best)


def test_matcher_handles_videos_without_ground_truth_and_empty_batches():
    matcher = HungarianMatcher(1, 1, 1)
    logits, segs = torch.randn(3, 4, 3), torch.rand(3, 4, 2).sort(-1).values
    gts = [torch.zeros(0, 2), torch.tensor([[0.1, 0.5]]), torch.zeros(0, 2)]
    labs = [torch.zeros(0, dtype=torch.long), torch.tensor([1]), torch.zeros(0, dtype=torch.long)]
    out = matcher(logits, segs, gts, labs)
    assert [len(q) for q, _ in out] == [0, 1, 0]
    none = matcher(logits, segs, [gts[0]] * 3, [labs[0]] * 3)
    assert all(len(q) == 0 and len(g) == 0 for q, g in none)


def test_matcher_rejects_bad_settings():
    with pytest.raises(ConfigError, match="all matching costs are 0"):
        HungarianMatcher(0, 0, 0)
    with pytest.raises(ConfigError, match="class_cost"):
        HungarianMatcher(class_cost="sigmoid")
    with pytest.raises(ConfigError, match="l1_format"):
        HungarianMatcher(l1_format="xyxy")


def test_segment_helpers():
    se = torch.tensor([[1.0, 5.0], [2.0, 2.5]])
    assert torch.allclose(se_to_cw(se), torch.tensor([[3.0, 4.0], [2.25, 0.5]]))
    assert torch.allclose(cw_to_se(se_to_cw(se)), se)
    a = torch.tensor([[0.0, 2.0], [1.0, 4.0]])
    b = torch.tensor([[1.0, 3.0], [5.0, 6.0], [0.0, 2.0]])
    iou = np.array([[np_iou(x, y) for y in b.tolist()] for x in a.tolist()])
    giou = np.array([[np_giou(x, y) for y in b.tolist()] for x in a.tolist()])
    assert np.allclose(pairwise_iou(a, b).numpy(), iou, atol=1e-6)
    assert np.allclose(pairwise_giou(a, b).numpy(), giou, atol=1e-6)


class FixedMatcher:
    """A matcher returning given indices, to test the losses without the assignment."""

    def __init__(self, indices):
        self.indices = indices

    def __call__(self, *args, **kwargs):
        return [(torch.tensor(q), torch.tensor(g)) for q, g in self.indices]


def _two_video_case(seed: int):
    """K = 3 classes, Q = 4 queries, two videos (2 and 1 ground truths) with a fixed matching."""
    K, Q = 3, 4
    rng = np.random.default_rng(seed)
    logits = rng.normal(size=(2, Q, K + 1))
    segs = np.sort(rng.uniform(0, 20, size=(2, Q, 2)), -1)
    gts = [np.array([[2.0, 6.0], [10.0, 18.0]]), np.array([[4.0, 9.0]])]
    labs = [np.array([2, 0]), np.array([1])]
    indices = [([3, 0], [0, 1]), ([2], [0])]
    return K, Q, logits, segs, gts, labs, indices


def test_ce_l1_iou_losses_against_hand_computation():
    K, Q, logits, segs, gts, labs, indices = _two_video_case(seed=1)
    norms = np.array([20.0, 40.0])
    crit = SetCriterion(K, FixedMatcher(indices), eos_coef=0.1, l1_format="cw", iou_type="iou",
                        weight_class=2.0, weight_l1=5.0, weight_iou=3.0)
    out = crit([{"logits": torch.tensor(logits, dtype=torch.float32), "segments": torch.tensor(segs, dtype=torch.float32)}],
               [torch.tensor(g, dtype=torch.float32) for g in gts], [torch.tensor(l) for l in labs],
               normalizer=torch.tensor(norms))
    # cross-entropy: DETR's weighted mean with weight 0.1 on no-action targets
    num, den = 0.0, 0.0
    l1, iou = 0.0, 0.0
    for b in range(2):
        target = np.full(Q, K)
        for q, g in zip(*indices[b]):
            target[q] = labs[b][g]
            p = segs[b, q] / norms[b]
            t = gts[b][g] / norms[b]
            l1 += abs((p[0] + p[1]) / 2 - (t[0] + t[1]) / 2) + abs((p[1] - p[0]) - (t[1] - t[0]))
            iou += 1 - np_iou(segs[b, q], gts[b][g])
        for q in range(Q):
            wq = 0.1 if target[q] == K else 1.0
            num += wq * -np.log(np_softmax(logits[b, q])[target[q]])
            den += wq
    assert out["loss_ce"].item() == pytest.approx(num / den, rel=1e-5)
    assert out["loss_l1"].item() == pytest.approx(l1 / 3, rel=1e-5)
    assert out["loss_iou"].item() == pytest.approx(iou / 3, rel=1e-5)
    assert out["loss"].item() == pytest.approx(2 * num / den + 5 * l1 / 3 + 3 * iou / 3, rel=1e-5)


def test_iou_class_targets_against_hand_computation():
    """class_target="iou": a matched query's CE target is its class with probability IoU, no action 1 - IoU."""
    K, Q, logits, segs, gts, labs, indices = _two_video_case(seed=2)
    crit = SetCriterion(K, FixedMatcher(indices), eos_coef=0.1, class_target="iou")
    out = crit([{"logits": torch.tensor(logits, dtype=torch.float32), "segments": torch.tensor(segs, dtype=torch.float32)}],
               [torch.tensor(g, dtype=torch.float32) for g in gts], [torch.tensor(l) for l in labs])
    num, den = 0.0, 0.0
    for b in range(2):
        matched = dict(zip(*indices[b]))
        for q in range(Q):
            logp = np.log(np_softmax(logits[b, q]))
            if q in matched:
                g = matched[q]
                u = np_iou(segs[b, q], gts[b][g])
                assert 0 <= u <= 1
                num += -(u * logp[labs[b][g]] + 0.1 * (1 - u) * logp[K])
                den += u + 0.1 * (1 - u)
            else:
                num += -0.1 * logp[K]
                den += 0.1
    assert out["loss_ce"].item() == pytest.approx(num / den, rel=1e-5)
    # a perfectly placed query's target is its hard label: the same loss as class_target="label"
    perfect = segs.copy()
    for b in range(2):
        for q, g in zip(*indices[b]):
            perfect[b, q] = gts[b][g]
    layer = [{"logits": torch.tensor(logits, dtype=torch.float32), "segments": torch.tensor(perfect, dtype=torch.float32)}]
    args = ([torch.tensor(g, dtype=torch.float32) for g in gts], [torch.tensor(l) for l in labs])
    soft = SetCriterion(K, FixedMatcher(indices), class_target="iou")(layer, *args)["loss_ce"]
    hard = SetCriterion(K, FixedMatcher(indices))(layer, *args)["loss_ce"]
    assert soft.item() == pytest.approx(hard.item(), rel=1e-5)
    with pytest.raises(ConfigError):
        SetCriterion(K, FixedMatcher(indices), class_loss="focal", class_target="iou")


def test_focal_loss_and_giou_against_hand_computation():
    K, Q = 2, 3
    logits = np.array([[[0.5, -1.0], [2.0, 0.1], [-0.3, 0.7]]])
    segs = np.array([[[0.0, 4.0], [3.0, 5.0], [1.0, 9.0]]])
    gts, labs, indices = [np.array([[2.0, 6.0]])], [np.array([1])], [([2], [0])]
    crit = SetCriterion(K, FixedMatcher(indices), class_loss="focal", iou_type="giou", l1_format="se")
    out = crit([{"logits": torch.tensor(logits, dtype=torch.float32), "segments": torch.tensor(segs, dtype=torch.float32)}],
               [torch.tensor(gts[0], dtype=torch.float32)], [torch.tensor(labs[0])])
    total = 0.0
    for q in range(Q):
        for c in range(K):
            y = 1.0 if (q == 2 and c == 1) else 0.0
            p = 1 / (1 + math.exp(-logits[0, q, c]))
            pt = p * y + (1 - p) * (1 - y)
            at = 0.25 * y + 0.75 * (1 - y)
            total += -at * (1 - pt) ** 2 * math.log(pt)
    assert out["loss_ce"].item() == pytest.approx(total / 1, rel=1e-5)
    assert out["loss_l1"].item() == pytest.approx(abs(1 - 2) + abs(9 - 6), rel=1e-6)
    assert out["loss_iou"].item() == pytest.approx(1 - np_giou([1.0, 9.0], [2.0, 6.0]), rel=1e-6)


def test_aux_losses_are_the_sum_of_per_layer_losses_each_matched_separately():
    torch.manual_seed(0)
    K, B, Q = 3, 2, 5
    layers = [{"logits": torch.randn(B, Q, K + 1), "segments": (torch.rand(B, Q, 2) * 30).sort(-1).values}
              for _ in range(3)]
    gts = [torch.tensor([[2.0, 8.0], [10.0, 20.0]]), torch.tensor([[5.0, 6.0]])]
    labs = [torch.tensor([0, 2]), torch.tensor([1])]
    matcher = HungarianMatcher(2, 5, 2)
    crit = SetCriterion(K, matcher, weight_class=1.5, weight_l1=5, weight_iou=2)
    out = crit(layers, gts, labs, normalizer=30.0)
    assert set(out) == {"loss", *(f"loss_{k}{s}" for k in ("ce", "l1", "iou") for s in ("_0", "_1", ""))}
    total = 0.0
    for i, layer in enumerate(layers):
        alone = crit([layer], gts, labs, normalizer=30.0)      # a single layer is matched on its own
        suffix = "" if i == 2 else f"_{i}"
        for k in ("ce", "l1", "iou"):
            assert out[f"loss_{k}{suffix}"].item() == pytest.approx(alone[f"loss_{k}"].item(), rel=1e-6)
        total += alone["loss"].item()
    assert out["loss"].item() == pytest.approx(total, rel=1e-6)
    last_only = SetCriterion(K, matcher, weight_class=1.5, weight_l1=5, weight_iou=2, aux_loss=False)(
        layers, gts, labs, normalizer=30.0)
    assert set(last_only) == {"loss", "loss_ce", "loss_l1", "loss_iou"}
    assert last_only["loss"].item() == pytest.approx(crit([layers[-1]], gts, labs, normalizer=30.0)["loss"].item())


def test_losses_without_ground_truth_train_every_query_towards_no_action():
    K = 2
    logits = torch.zeros(1, 3, K + 1, requires_grad=True)
    segs = torch.tensor([[[0.0, 1.0], [1.0, 2.0], [2.0, 3.0]]], requires_grad=True)
    out = SetCriterion(K, HungarianMatcher(1, 1, 1))([{"logits": logits, "segments": segs}],
                                                     [torch.zeros(0, 2)], [torch.zeros(0, dtype=torch.long)])
    assert out["loss_ce"].item() == pytest.approx(math.log(3), rel=1e-6)
    assert out["loss_l1"].item() == 0 and out["loss_iou"].item() == 0
    out["loss"].backward()
    assert (logits.grad[..., -1] < 0).all()


def test_num_targets_without_distributed_is_the_batch_count_at_least_one():
    assert num_targets([torch.tensor([1, 2]), torch.tensor([0])], "cpu").item() == 3
    assert num_targets([torch.zeros(0)], "cpu").item() == 1
