"""Segmentation (frame) mAP in training runs: PointTAD's Eq. 14 fusion, against an explicit computation."""
from __future__ import annotations

import json
import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from tadkit.config import load_config
from tadkit.core.errors import ConfigError
from tadkit.core.instances import Instances
from tadkit.core.timing import FeatureTiming
from tadkit.data.annotations import Annotations
from tadkit.engine.inference import WindowResult, predict_windows
from tadkit.engine.segmentation import segmentation_metrics, stitch_frame_scores
from tadkit.engine.trainer import train

from ._toy import ToyDetector, toy_config

TIMING = FeatureTiming(fps=2.0, stride=1.0, window=0.0)     # feature i centred at i / 2 seconds


def _annotations():
    db = {"v1": {"subset": "validation", "duration": 10.0,
                 "annotations": [{"segment": [1.0, 4.0], "label": "a"}, {"segment": [3.0, 8.0], "label": "b"}]},
          "v2": {"subset": "validation", "duration": 6.0, "annotations": [{"segment": [0.5, 2.5], "label": "b"}]},
          "t1": {"subset": "training", "duration": 5.0, "annotations": [{"segment": [1.0, 2.0], "label": "a"},
                                                                        {"segment": [2.0, 3.0], "label": "b"}]}}
    return Annotations.from_dict({"database": db})


def _windows(rng):
    def w(i, vid, off, n, T, dur):
        return WindowResult(i, vid, float(off), T, dur, TIMING, Instances.empty(), rng.uniform(size=(n, 2)))
    return [w(0, "v1", 0, 12, 20, 10.0), w(1, "v1", 8, 12, 20, 10.0), w(2, "v2", 0, 12, 12, 6.0)]


DETS = {"v1": Instances([[1.2, 3.9], [3.5, 7.0], [0.0, 1.0]], [0, 1, 1], [0.8, 0.6, 0.005]),
        "v2": Instances([[0.4, 2.0]], [1], [0.9])}


def _explicit(windows, frames, beta=0.3, gamma=0.01, sigma=2.0, gain=5.0):
    """Eq. 14 and the frame AP written out with loops."""
    ann = _annotations()
    scores, labels = [], []
    for vid, T, dur in (("v1", 20, 10.0), ("v2", 12, 6.0)):
        S = np.zeros((T, 2))
        for t in range(T):
            covering = [w.frame_scores[t - int(w.offset)] for w in windows
                        if w.video_id == vid and w.offset <= t < w.offset + len(w.frame_scores)]
            S[t] = np.mean(covering, axis=0)
        Bx = np.zeros((T, 2))
        for (s, e), c, p in zip(DETS[vid].segments, DETS[vid].labels, DETS[vid].scores):
            if p <= gamma:
                continue
            a, b = int(s * 2 + 0.5), min(T, int(e * 2 + 0.5))     # seconds -> feature index, +0.5 cell shift
            for t in range(a, b):
                Bx[t, c] = max(Bx[t, c], p)
        D = np.zeros((T, 2))
        for t in range(T):
            for u in range(T):
                D[t] += gain * math.exp(-0.5 * ((t - u) / sigma) ** 2) / (sigma * math.sqrt(2 * math.pi)) * Bx[u]
        fused = beta * D + (1 - beta) * S
        v = ann.videos[vid]
        times = [i / 2 for i in range(T)] if frames is None else [j / frames * dur for j in range(frames)]
        for tm in times:
            idx = min(T - 1, max(0, int(round(tm * 2))))
            scores.append(fused[idx])
            row = np.zeros(2)
            for (s, e), lab in zip(v.segments, v.labels):
                if s <= tm <= e:
                    row["ab".index(lab)] = 1
            labels.append(row)
    scores, labels = np.array(scores), np.array(labels)
    aps = []
    for c in range(2):
        order = sorted(range(len(scores)), key=lambda i: -scores[i, c])
        hits, precisions = 0, []
        for rank, i in enumerate(order, 1):
            if labels[i, c]:
                hits += 1
                precisions.append(hits / rank)
        aps.append(np.mean(precisions))
    return aps


@pytest.mark.parametrize("frames", [None, 7])
def test_segmentation_metrics_match_an_explicit_computation(frames):
    windows = _windows(np.random.default_rng(0))
    cfg = SimpleNamespace(segmentation_beta=0.3, segmentation_gamma=0.01, segmentation_sigma=2.0,
                          segmentation_frames=frames)
    m = segmentation_metrics(_annotations(), DETS, windows, ["a", "b"], "validation", cfg)
    aps = _explicit(windows, frames)
    assert m["segmentation_per_class_AP"]["a"] == pytest.approx(aps[0], rel=1e-9)
    assert m["segmentation_per_class_AP"]["b"] == pytest.approx(aps[1], rel=1e-9)
    assert m["segmentation_mAP"] == pytest.approx(np.mean(aps), rel=1e-9)
    assert m["frames_per_video"] == ("all" if frames is None else frames)


def test_beta_one_uses_the_detections_only_and_no_frame_scores_means_zeros():
    rng = np.random.default_rng(1)
    with_dense = _windows(rng)
    without = [WindowResult(w.index, w.video_id, w.offset, w.num_features, w.duration, w.timing, w.instances)
               for w in with_dense]
    cfg = SimpleNamespace(segmentation_beta=1.0, segmentation_gamma=0.01, segmentation_sigma=2.0,
                          segmentation_frames=None)
    a = segmentation_metrics(_annotations(), DETS, with_dense, ["a", "b"], "validation", cfg)
    b = segmentation_metrics(_annotations(), DETS, without, ["a", "b"], "validation", cfg)
    assert a["segmentation_mAP"] == b["segmentation_mAP"]


def test_stitching_averages_overlapping_windows():
    out = stitch_frame_scores([(0, np.ones((4, 1))), (2, 3 * np.ones((4, 1))), (5, None)], 7, 1)
    assert out[:, 0].tolist() == [1, 1, 2, 2, 3, 3, 0]


class FramesToy(ToyDetector):
    """The toy detector with per-frame class scores, as PointTAD's dense head gives them."""

    @torch.no_grad()
    def frame_scores(self, batch):
        logits, _ = self.run(batch)                                          # (B, K, T)
        return [logits[b, :, m].T.sigmoid().double().numpy() for b, m in enumerate(batch["masks"])]


def test_training_with_test_segmentation_writes_segmentation_map(toy_data, tmp_path):
    built = []

    def build(cfg, info):
        built.append(FramesToy(info["num_classes"], info["input_dim"], info["max_seq_len"], **info["params"]))
        return built[-1]

    cfg = toy_config(toy_data, tmp_path / "run", train={"epochs": 1, "ema_decay": None},
                     test={"segmentation": True, "segmentation_beta": 0.5, "tiou": "multithumos"})
    result = train(cfg, build_model=build)
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert 0.0 <= metrics["segmentation_mAP"] <= 1.0 and metrics == result.metrics
    assert metrics["frames_per_video"] == "all" and len(metrics["mAP"]) == 9
    # the windows carry the model's frame scores: (valid steps, classes)
    from tadkit.engine import builders
    test_set = builders.build_dataset(cfg, "validation", training=False)
    windows = predict_windows(built[0], test_set, frames=True)
    assert all(w.frame_scores.shape == (test_set[i]["feats"].shape[1], test_set.num_classes)
               for i, w in enumerate(windows))
    assert all(w.frame_scores is None for w in predict_windows(built[0], test_set))
    # off by default: no segmentation keys
    plain = train(toy_config(toy_data, tmp_path / "plain", train={"epochs": 1, "ema_decay": None}),
                  build_model=build)
    assert "segmentation_mAP" not in plain.metrics


@pytest.mark.parametrize("key,value", [("segmentation_beta", 1.5), ("segmentation_sigma", 0.0),
                                       ("segmentation_frames", 0)])
def test_bad_segmentation_settings_are_config_errors(key, value):
    with pytest.raises(ConfigError, match=f"test.{key}"):
        load_config({"test": {key: value}})
