import pytest
import torch

from tadkit.models.losses import diou_loss_1d, giou_loss_1d, iou_loss_1d, offsets_to_segments


def scalar_losses(a, b):
    """IoU, GIoU and DIoU losses of two 1-D segments, written out in plain Python."""
    (s1, e1), (s2, e2) = a, b
    inter = max(0.0, min(e1, e2) - max(s1, s2))
    union = (e1 - s1) + (e2 - s2) - inter
    iou = inter / union
    hull = max(e1, e2) - min(s1, s2)
    giou = iou - (hull - union) / hull
    centre_dist = (s1 + e1) / 2 - (s2 + e2) / 2
    diou = iou - centre_dist ** 2 / hull ** 2
    return 1 - iou, 1 - giou, 1 - diou


def random_segments(n, seed):
    g = torch.Generator().manual_seed(seed)
    start = torch.rand(n, generator=g, dtype=torch.float64) * 10
    return torch.stack((start, start + 0.1 + torch.rand(n, generator=g, dtype=torch.float64) * 5), dim=1)


def test_iou_family_matches_scalar_implementation():
    pred, target = random_segments(200, 0), random_segments(200, 1)  # overlapping and disjoint pairs
    ref = torch.tensor([scalar_losses(a.tolist(), b.tolist()) for a, b in zip(pred, target)], dtype=torch.float64)
    for i, fn in enumerate((iou_loss_1d, giou_loss_1d, diou_loss_1d)):
        assert torch.allclose(fn(pred, target).double(), ref[:, i], atol=1e-5), fn.__name__
    disjoint = ref[:, 0] == 1
    assert disjoint.any() and (~disjoint).any()


def test_hand_worked_values():
    a, b = torch.tensor([[0.0, 4.0]]), torch.tensor([[2.0, 6.0]])
    assert torch.isclose(iou_loss_1d(a, b), torch.tensor(1 - 2 / 6))
    assert torch.isclose(diou_loss_1d(a, b), torch.tensor(1 - 2 / 6 + 4 / 36))
    far = torch.tensor([[10.0, 12.0]])
    assert torch.isclose(giou_loss_1d(a, far), torch.tensor(1 + 6 / 12))
    assert diou_loss_1d(a, a).item() == 0


def test_offsets_form_equals_segments_form():
    """Distance pairs from a shared point: the same loss as the segments they describe."""
    g = torch.Generator().manual_seed(2)
    point = torch.rand(50, 1, generator=g) * 20
    pred_d, gt_d = torch.rand(50, 2, generator=g) * 4, torch.rand(50, 2, generator=g) * 4 + 0.1
    to_abs = lambda d: torch.cat((point - d[:, :1], point + d[:, 1:]), dim=1)  # noqa: E731
    assert torch.allclose(diou_loss_1d(offsets_to_segments(pred_d), offsets_to_segments(gt_d)),
                          diou_loss_1d(to_abs(pred_d), to_abs(gt_d)), atol=1e-5)
    # ActionFormer's offset formulation of DIoU, written out independently
    lp, rp, lg, rg = pred_d[:, 0], pred_d[:, 1], gt_d[:, 0], gt_d[:, 1]
    inter = torch.minimum(lp, lg) + torch.minimum(rp, rg)
    union = lp + rp + lg + rg - inter
    hull = torch.maximum(lp, lg) + torch.maximum(rp, rg)
    rho = 0.5 * ((rp - lp) - (rg - lg))
    ref = 1 - inter / union + rho ** 2 / hull ** 2
    assert torch.allclose(diou_loss_1d(offsets_to_segments(pred_d), offsets_to_segments(gt_d)), ref, atol=1e-5)


@pytest.mark.parametrize("fn", [iou_loss_1d, giou_loss_1d, diou_loss_1d])
def test_losses_have_gradients_and_reduce(fn):
    pred = torch.tensor([[0.0, 3.0], [1.0, 2.0]], requires_grad=True)
    target = torch.tensor([[1.0, 4.0], [0.0, 5.0]])
    total = fn(pred, target, reduction="sum")
    total.backward()
    assert pred.grad.abs().sum() > 0
    assert torch.isclose(fn(pred, target, reduction="mean"), total / 2)
