import math

import pytest
import torch

from tadkit.core.errors import ConfigError
from tadkit.models.losses import sigmoid_focal_loss


def focal_scalar(x, y, alpha=0.25, gamma=2.0):
    """Hand formula on one element: -alpha_t (1 - p_t)^gamma log(p_t)."""
    p = 1 / (1 + math.exp(-x))
    p_t = p if y == 1 else 1 - p
    a_t = alpha if y == 1 else 1 - alpha
    return -a_t * (1 - p_t) ** gamma * math.log(p_t)


def test_focal_loss_matches_hand_formula():
    torch.manual_seed(0)
    logits = torch.randn(6, 3, dtype=torch.float64) * 3
    targets = (torch.rand(6, 3) > 0.6).double()
    loss = sigmoid_focal_loss(logits, targets)
    ref = torch.tensor([[focal_scalar(float(x), int(y)) for x, y in zip(rx, ry)]
                        for rx, ry in zip(logits, targets)], dtype=loss.dtype)
    assert torch.allclose(loss, ref, atol=1e-6)
    assert torch.isclose(sigmoid_focal_loss(logits, targets, reduction="sum"), ref.sum().float(), atol=1e-5)
    assert torch.isclose(sigmoid_focal_loss(logits, targets, reduction="mean"), ref.mean().float(), atol=1e-6)


def test_focal_loss_parameters_and_weights():
    x, y = torch.tensor([1.5, -0.5]), torch.tensor([1.0, 0.0])
    assert torch.allclose(sigmoid_focal_loss(x, y, alpha=0.6, gamma=0.0),
                          torch.tensor([focal_scalar(1.5, 1, 0.6, 0.0), focal_scalar(-0.5, 0, 0.6, 0.0)]))
    no_alpha = sigmoid_focal_loss(x, y, alpha=-1)
    assert torch.allclose(no_alpha, torch.tensor([focal_scalar(1.5, 1, 0.5), focal_scalar(-0.5, 0, 0.5)]) * 2)
    weighted = sigmoid_focal_loss(x, y, weight=torch.tensor([2.0, 0.0]), reduction="sum")
    assert torch.isclose(weighted, 2 * sigmoid_focal_loss(x, y)[0])


def test_focal_loss_down_weights_easy_examples():
    easy, hard = sigmoid_focal_loss(torch.tensor([4.0, -1.0]), torch.tensor([1.0, 1.0]))
    bce = torch.nn.functional.binary_cross_entropy_with_logits(torch.tensor([4.0, -1.0]), torch.ones(2),
                                                               reduction="none")
    assert easy / hard < 0.01 * bce[0] / bce[1]


def test_reductions():
    empty = sigmoid_focal_loss(torch.zeros(0, requires_grad=True), torch.zeros(0), reduction="mean")
    assert empty.item() == 0 and empty.requires_grad
    with pytest.raises(ConfigError, match="reduction"):
        sigmoid_focal_loss(torch.zeros(2), torch.zeros(2), reduction="avg")
