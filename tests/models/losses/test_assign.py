import math

import torch

from tadkit.models.layers import PointGenerator
from tadkit.models.losses import assign_batch, assign_targets


def nested_loop_reference(points, segments, labels, num_classes, radius):
    """Point by point, ground truth by ground truth, as the rule reads."""
    P = len(points)
    cls = torch.zeros(P, num_classes, dtype=torch.float64)
    reg = torch.zeros(P, 2, dtype=torch.float64)
    matched = torch.full((P,), -1)
    for p, (t, lo, hi, s) in enumerate(points.tolist()):
        best = None
        for g, (a, b) in enumerate(segments.tolist()):
            if radius is None:
                inside = a < t < b
            else:
                c = (a + b) / 2
                inside = max(c - radius * s, a) < t < min(c + radius * s, b)
            farthest = max(t - a, b - t)
            if inside and lo <= farthest <= hi and (best is None or b - a < best[1]):
                best = (g, b - a)
        if best is not None:
            g = best[0]
            a, b = segments[g].tolist()
            matched[p] = g
            cls[p, labels[g]] = 1
            reg[p] = torch.tensor([(t - a) / s, (b - t) / s])
    return cls, reg, matched


def test_assignment_matches_nested_loops_on_random_cases():
    gen = PointGenerator([1, 2, 4, 8], [(0, 4), (4, 8), (8, 16), (16, math.inf)])
    points = gen([64, 32, 16, 8]).double()
    g = torch.Generator().manual_seed(0)
    positives = 0
    for case in range(25):
        n = int(torch.randint(0, 7, (1,), generator=g))
        start = torch.rand(n, generator=g, dtype=torch.float64) * 60 - 2
        segments = torch.stack((start, start + 0.5 + torch.rand(n, generator=g, dtype=torch.float64) * 40), 1)
        labels = torch.randint(0, 4, (n,), generator=g)
        radius = None if case % 5 == 4 else 1.5
        got = assign_targets(points, segments, labels, 4, radius)
        cls, reg, matched = nested_loop_reference(points, segments, labels, 4, radius)
        assert torch.equal(got.matched, matched)
        assert torch.equal(got.cls, cls)
        assert torch.allclose(got.reg, reg)
        positives += int((matched >= 0).sum())
    assert positives > 50  # the cases exercise the positive branch


def test_hand_worked_assignment():
    points = PointGenerator([1, 2], [(0, 3), (3, math.inf)])([8, 4])  # t = 0..7 (s 1), 0,2,4,6 (s 2)
    segments = torch.tensor([[1.0, 7.0], [2.0, 5.0]])
    labels = torch.tensor([0, 2])
    got = assign_targets(points, segments, labels, 3, center_sample_radius=1.5)
    # level 0, long action [1, 7] (centre 4, region (2.5, 5.5)): t = 3,4,5 farthest 4,3,4 -> only t=4 in [0, 3];
    # short action [2, 5] (centre 3.5, region (2, 5)): t = 3 (far 2), 4 (far 2); shortest wins at t = 4.
    # level 1, [1, 7] region (1, 7) ∩ centre ± 3: t = 2,4,6 far 5,3,5 in [3, inf); [2, 5]: t = 4 far 2 (out of range)
    assert got.matched.tolist() == [-1, -1, -1, 1, 1, -1, -1, -1] + [-1, 0, 0, 0]
    assert got.cls[3].tolist() == [0, 0, 1] and got.cls[9].tolist() == [1, 0, 0]
    assert got.reg[3].tolist() == [1.0, 2.0] and got.reg[9].tolist() == [0.5, 2.5]
    assert (got.cls[got.matched < 0] == 0).all() and (got.reg[got.matched < 0] == 0).all()


def test_empty_ground_truth_and_batching():
    points = PointGenerator([1, 2], [(0, 3), (3, math.inf)])([8, 4])
    empty = assign_targets(points, torch.zeros(0, 2), torch.zeros(0, dtype=torch.long), 3)
    assert empty.cls.shape == (12, 3) and empty.cls.sum() == 0 and (empty.matched == -1).all()
    batch = assign_batch(points, [torch.zeros(0, 2), torch.tensor([[2.0, 5.0]])],
                         [torch.zeros(0, dtype=torch.long), torch.tensor([1])], 3)
    assert batch.cls.shape == (2, 12, 3) and batch.reg.shape == (2, 12, 2) and batch.matched.shape == (2, 12)
    assert batch.cls[0].sum() == 0 and batch.cls[1].sum() > 0
