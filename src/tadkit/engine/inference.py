"""Inference: windows through the detector, merged per video, post-processed, in seconds.

Per window ``model.predict`` gives candidates in feature units relative to the window start;
per video they go through::

    merge_windows([(offset, inst), ...], duration=num_features)   # video feature units
    -> to_seconds(inst, timing, duration)                          # seconds, clipped to the video
    -> postprocess_videos(... test.* settings ...)                 # min score, top-k, (Soft-)NMS, max dets
    -> optional fusion with video-level class scores (test.video_scores)

Under ``torchrun`` every process runs a contiguous share of the windows and the shares are
gathered (in dataset order) before merging.
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from ..core.errors import DataError
from ..core.instances import Instances
from ..core.io import read_json
from ..core.timing import FeatureTiming
from ..postprocess import (fuse_proposals_with_video_scores, merge_windows, postprocess_videos,
                           rescore_with_video_scores, to_seconds)
from .builders import get_collate
from .distributed import DistContext, shard_indices

__all__ = ["WindowResult", "predict_windows", "detections_per_video", "results_dict", "load_video_scores",
           "to_device"]


@dataclass
class WindowResult:
    """One window's candidates (feature units, relative to ``offset``) and its video's timing."""

    index: int
    video_id: str
    offset: float
    num_features: int
    duration: float
    timing: FeatureTiming
    instances: Instances
    frame_scores: np.ndarray | None = None  # (valid steps, C) per-frame class scores, when asked for and offered


def to_device(obj, device: torch.device):
    """Tensors (also inside dicts, lists, tuples) moved to ``device``; everything else unchanged."""
    if isinstance(obj, torch.Tensor):
        return obj.to(device, non_blocking=True)
    if isinstance(obj, dict):
        return {k: to_device(v, device) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(to_device(v, device) for v in obj)
    return obj


@torch.no_grad()
def predict_windows(model: nn.Module, dataset, *, batch_size: int = 1, dist: DistContext | None = None,
                    num_workers: int = 0, progress: bool = False, autocast=None,
                    frames: bool = False) -> list[WindowResult]:
    """Every window of ``dataset`` through ``model.predict``; all processes get all results, in order.

    ``frames``: also keep the model's per-frame class scores (``model.frame_scores(batch)``, a list of
    (valid steps, C) arrays, or None) for segmentation mAP; models without the method give None.
    """
    dist = dist or DistContext()
    was_training = model.training
    model.eval()
    device = dist.device
    mine = shard_indices(len(dataset), dist.rank, dist.world_size)
    subset = torch.utils.data.Subset(dataset, mine)
    loader = torch.utils.data.DataLoader(subset, batch_size=batch_size, shuffle=False,
                                         collate_fn=get_collate(dataset), num_workers=num_workers)
    out: list[WindowResult] = []
    cursor = 0
    bar = tqdm(loader, desc="predict", leave=False, disable=None if (progress and dist.is_main) else True)
    for batch in bar:
        batch = to_device(batch, device)
        with (autocast or contextlib.nullcontext)():
            results = model.predict(batch)
            frame_fn = getattr(model, "frame_scores", None) if frames else None
            dense = frame_fn(batch) if frame_fn is not None else None
        if len(results) != len(batch["video_ids"]):
            raise RuntimeError(f"{type(model).__name__}.predict returned {len(results)} results for a batch of "
                               f"{len(batch['video_ids'])}")
        for b, inst in enumerate(results):
            out.append(WindowResult(mine[cursor], batch["video_ids"][b], float(batch["offsets"][b]),
                                    int(batch["num_features"][b]), float(batch["durations"][b]),
                                    batch["timings"][b], inst, None if dense is None else dense[b]))
            cursor += 1
    model.train(was_training)
    if dist.distributed:
        out = [r for part in dist.all_gather_object(out) for r in part]
        out.sort(key=lambda r: r.index)
    return out


def load_video_scores(path, classes: list[str]) -> dict[str, np.ndarray]:
    """Video-level class scores for fusion, as ``{video_id: (K,) scores in our class order}``.

    Accepted layouts: ``{video: [K scores]}``, ``{video: {class name: score}}``, either of them
    under ``"results"``, with an optional ``"class"`` (or ``"classes"``) list naming the columns
    of the score lists (the CUHK ActivityNet classifier file).
    """
    raw = read_json(path, "video-level score file")
    if not isinstance(raw, dict):
        raise DataError("a video-level score file must hold a JSON object", path=path,
                        fix='write {"results": {video_id: [scores]}, "class": [names]}')
    columns = raw.get("class", raw.get("classes"))
    table = raw.get("results", raw)
    if not isinstance(table, dict):
        raise DataError('"results" must map video ids to scores', path=path, fix="write {video_id: [scores]}")
    index = {c: i for i, c in enumerate(classes)}
    out = {}
    for vid, scores in table.items():
        if vid in ("class", "classes"):
            continue
        v = np.zeros(len(classes))
        if isinstance(scores, dict):
            for name, s in scores.items():
                if name in index:
                    v[index[name]] = float(s)
        elif isinstance(scores, list):
            names = columns if isinstance(columns, list) else classes
            if len(scores) != len(names):
                raise DataError(f"{len(scores)} scores for {len(names)} classes", path=path, video=vid,
                                fix="give one score per class (and a \"class\" list naming them)")
            for name, s in zip(names, scores):
                if name in index:
                    v[index[name]] = float(s)
        else:
            raise DataError(f"scores must be a list or a mapping, got {type(scores).__name__}", path=path,
                            video=vid, fix="write [scores] or {class: score}")
        out[str(vid)] = v
    return out


def _lookup(scores: dict[str, np.ndarray], vid: str):
    if vid in scores:
        return scores[vid]
    alt = vid[2:] if vid.startswith("v_") else "v_" + vid
    return scores.get(alt)


def detections_per_video(windows: list[WindowResult], test_cfg, *, video_scores: dict | None = None,
                         video_scores_path=None) -> dict[str, Instances]:
    """Merge windows per video, map to seconds, post-process (and fuse): ``{video_id: Instances}`` in seconds."""
    per_video: dict[str, list[WindowResult]] = {}
    for r in windows:
        per_video.setdefault(r.video_id, []).append(r)
    candidates = {}
    for vid, parts in per_video.items():
        first = parts[0]
        merged = merge_windows([(p.offset, p.instances) for p in parts], duration=first.num_features)
        candidates[vid] = to_seconds(merged, first.timing, first.duration)
    dets = postprocess_videos(candidates, method=test_cfg.nms, pre_topk=test_cfg.pre_topk,
                              min_score=test_cfg.min_score, max_detections=test_cfg.max_detections,
                              sigma=test_cfg.sigma, iou_threshold=test_cfg.iou_threshold,
                              soft_method=test_cfg.soft_method, class_agnostic=test_cfg.class_agnostic,
                              voting_threshold=test_cfg.voting_threshold)
    if video_scores is None:
        return dets
    fused = {}
    for vid, inst in dets.items():
        v = _lookup(video_scores, vid)
        if v is None:
            raise DataError("no video-level scores for this video", path=video_scores_path, video=vid,
                            fix="add it to the score file or unset test.video_scores")
        if test_cfg.fusion == "proposals":
            out = fuse_proposals_with_video_scores(inst, v, topk=test_cfg.fusion_topk or 2,
                                                   alpha=test_cfg.fusion_alpha, video=vid)
        else:
            out = rescore_with_video_scores(inst, v, alpha=test_cfg.fusion_alpha, topk=test_cfg.fusion_topk,
                                            video=vid)
        fused[vid] = out if test_cfg.max_detections is None else out[: test_cfg.max_detections]
    return fused


def results_dict(dets: dict[str, Instances], classes: list[str]) -> dict:
    """ActivityNet results JSON: seconds, class names, each video's detections sorted by score."""
    results = {}
    for vid, inst in dets.items():
        inst = inst.sorted_by_score()
        results[vid] = [{"segment": [float(s), float(e)], "label": classes[int(c)], "score": float(p)}
                        for (s, e), c, p in zip(inst.segments, inst.labels, inst.scores)]
    return {"version": "tadkit", "results": results, "external_data": {}}
