"""Evaluation of prediction files against annotation files (what ``tadkit eval`` runs).

No torch here: the evaluation stands alone.
"""
from __future__ import annotations

import os
from collections import OrderedDict

import numpy as np

from ..core.errors import DataError
from ..core.io import read_json
from ..data.annotations import Annotations
from .detection import DetectionTable, average_precision, recall_at_k
from .segmentation import frame_average_precision, frame_labels, frame_times
from .tiou import parse_tiou


class Predictions:
    """Predictions in file order: parallel lists of video id, segment, label and score."""

    def __init__(self, videos, segments, labels, scores, path=None):
        self.videos = list(videos)
        self.segments = np.asarray(segments, dtype=np.float64).reshape(-1, 2)
        self.labels = list(labels)
        # np.asarray infers int64 for all-int scores and float64 otherwise, as pandas does
        # in the reference; the dtype decides how the reference's argsort breaks ties.
        self.scores = np.asarray(scores) if len(scores) else np.zeros(0)
        self.path = path

    def __len__(self):
        return len(self.videos)

    @classmethod
    def from_dict(cls, data, path=None) -> "Predictions":
        if isinstance(data, dict) and "results" in data:
            results = data["results"]
        elif isinstance(data, dict) and data and all(isinstance(v, list) for v in data.values()):
            results = data
        else:
            raise DataError('missing key "results"', path=path,
                            fix='write {"results": {video_id: [{"segment": [s, e], "label": name, "score": p}]}}')
        if not isinstance(results, dict):
            raise DataError('"results" must map video ids to lists of detections', path=path,
                            fix='write {"results": {video_id: [...]}}')
        vids, segs, labs, scores = [], [], [], []
        for vid, dets in results.items():
            if not isinstance(dets, list):
                raise DataError("detections must be a list", path=path, video=vid,
                                fix='write video_id: [{"segment": [s, e], "label": name, "score": p}, ...]')
            for i, d in enumerate(dets):
                try:
                    seg = d["segment"]
                    if not isinstance(seg, (list, tuple)) or len(seg) != 2:
                        raise ValueError
                    s, e = float(seg[0]), float(seg[1])
                    lab = d["label"]
                    sc = d["score"]
                    if isinstance(sc, bool) or not isinstance(sc, (int, float)):
                        sc = float(sc)
                    finite = np.isfinite(s) and np.isfinite(e) and np.isfinite(float(sc))
                except (KeyError, TypeError, ValueError, IndexError):
                    raise DataError(f"detection {i} is malformed: {str(d)[:80]}", path=path, video=vid,
                                    fix='each detection needs "segment": [s, e], "label" and a numeric "score"') from None
                except OverflowError:
                    finite = False                    # an integer too large for a float
                if not finite:
                    raise DataError(f"detection {i} has a non-finite number: {str(d)[:80]}", path=path, video=vid,
                                    fix="write finite seconds and scores")
                vids.append(str(vid))
                segs.append((s, e))
                labs.append(str(lab))
                scores.append(sc)
        return cls(vids, segs, labs, scores, path)

    @classmethod
    def load(cls, path) -> "Predictions":
        return cls.from_dict(read_json(path, "predictions file"), path=os.fspath(path))


def _as_annotations(gt) -> Annotations:
    if isinstance(gt, Annotations):
        return gt
    if isinstance(gt, dict):
        return Annotations.from_dict(gt)
    return Annotations.load(gt)


def _as_predictions(pred) -> Predictions:
    if isinstance(pred, Predictions):
        return pred
    if isinstance(pred, dict):
        return Predictions.from_dict(pred)
    return Predictions.load(pred)


def choose_subset(ann: Annotations, pred: Predictions, subset: str | None) -> tuple[str, str | None]:
    """The subset to evaluate: the given one, else the one holding most predicted videos."""
    if subset is not None:
        return ann.check_subset(subset), None
    subsets = ann.subsets
    if len(subsets) == 1:
        return subsets[0], None
    counts = OrderedDict((s, 0) for s in subsets)
    for vid in set(pred.videos):
        rid = ann.resolve(vid)
        if rid is not None:
            counts[ann.videos[rid].subset] += 1
    best = max(counts, key=counts.get)
    return best, (f"no --subset given: evaluating {best!r}, which holds {counts[best]} of the "
                  f"{len(set(pred.videos))} predicted videos (subsets: {subsets})")


def evaluate_detection(ann: Annotations, pred: Predictions, subset: str | None = None, tiou="activitynet",
                       recall_ks=(1, 5, 10, 50, 100), exclude_ignored: bool = False) -> dict:
    """Detection mAP of the ActivityNet protocol, with recall@k and warnings.

    ``exclude_ignored`` removes predictions lying mostly (more than half their length)
    inside a video's ignore regions, such as THUMOS14's Ambiguous segments.
    """
    tiou = parse_tiou(tiou)
    warnings: list[str] = []
    subset, note = choose_subset(ann, pred, subset)
    if note:
        warnings.append(note)
    videos = ann.select(subset)
    # Ground truth in database order; classes in order of first appearance (the reference's activity index).
    class_index: dict[str, int] = {}
    video_index: dict[str, int] = {}
    gv, gs, gl = [], [], []
    for v in videos:
        video_index.setdefault(v.video_id, len(video_index))
        for seg, lab in zip(v.segments, v.labels):
            class_index.setdefault(lab, len(class_index))
            gv.append(video_index[v.video_id])
            gs.append(seg)
            gl.append(class_index[lab])
    if not gv:
        raise DataError(f"subset {subset!r} has no ground-truth instances", path=ann.path,
                        fix=f"evaluate a subset with annotations; the subsets are {ann.subsets}")
    gt = DetectionTable(np.array(gv, dtype=np.int64), np.array(gs).reshape(-1, 2), np.array(gl, dtype=np.int64))

    # Predictions in file order; ids matched allowing a `v_` prefix on either side.
    keep, pv, pl = [], [], []
    unknown_videos, other_subset, unknown_labels = set(), set(), {}
    for i, (vid, lab) in enumerate(zip(pred.videos, pred.labels)):
        rid = ann.resolve(vid)
        if rid is None:
            unknown_videos.add(vid)
            rid = vid
        elif ann.videos[rid].subset != subset:
            other_subset.add(rid)
        if lab not in class_index:
            unknown_labels[lab] = unknown_labels.get(lab, 0) + 1
            continue
        keep.append(i)
        pv.append(video_index.setdefault(rid, len(video_index)))
        pl.append(class_index[lab])
    keep = np.array(keep, dtype=np.int64)
    if len(pred) and len(unknown_videos) == len(set(pred.videos)):
        raise DataError(f"none of the {len(unknown_videos)} predicted videos is in the annotation file "
                        f"(e.g. {sorted(unknown_videos)[:3]})", path=pred.path,
                        fix=f"check that {ann.path or 'the annotations'} and the predictions belong together")
    if unknown_videos:
        warnings.append(f"{len(unknown_videos)} predicted videos are not in the annotations "
                        f"(e.g. {sorted(unknown_videos)[:3]}); their predictions count as false positives")
    if other_subset:
        warnings.append(f"{len(other_subset)} predicted videos belong to another subset than {subset!r}; "
                        "their predictions count as false positives, as in the ActivityNet protocol")
    if unknown_labels:
        n = sum(unknown_labels.values())
        warnings.append(f"{n} predictions have labels without ground truth in {subset!r} "
                        f"(e.g. {sorted(unknown_labels)[:3]}); they cannot change any class's AP and are left out")
    segs = pred.segments[keep]
    scores = pred.scores[keep]
    pv = np.array(pv, dtype=np.int64)
    pl = np.array(pl, dtype=np.int64)
    if exclude_ignored:
        drop = np.zeros(len(keep), dtype=bool)
        inv_video = {i: v for v, i in video_index.items()}
        for j in range(len(keep)):
            v = ann.videos.get(inv_video[pv[j]])
            if v is not None and len(v.ignore):
                s, e = segs[j]
                inter = (np.minimum(e, v.ignore[:, 1]) - np.maximum(s, v.ignore[:, 0])).clip(0).sum()
                drop[j] = e > s and inter > 0.5 * (e - s)
        if drop.any():
            warnings.append(f"{int(drop.sum())} predictions lie mostly inside ignore regions and were removed")
        segs, scores, pv, pl = segs[~drop], scores[~drop], pv[~drop], pl[~drop]
    table = DetectionTable(pv, segs, pl, scores)
    C = len(class_index)
    ap = average_precision(gt, table, tiou, C)                       # (n_thr, C)
    mAP = ap.mean(axis=1)
    labels = list(class_index)
    ks = [k for k in recall_ks]
    rec = recall_at_k(gt, table, tiou, ks) if ks else np.zeros((0, len(tiou)))
    no_pred = [lab for c, lab in enumerate(labels) if not np.any(pl == c)]
    if no_pred:
        warnings.append(f"{len(no_pred)} classes have ground truth but no predictions (AP 0): {no_pred[:5]}")
    return {
        "subset": subset,
        "tiou": [float(t) for t in tiou],
        "mAP": [float(x) for x in mAP],
        "average_mAP": float(mAP.mean()),
        "per_class_AP": {lab: [float(x) for x in ap[:, c]] for c, lab in enumerate(labels)},
        "recall": {f"R@{k}": [float(x) for x in rec[i]] for i, k in enumerate(ks)},
        "num_videos": len(videos),
        "num_ground_truth": int(len(gt)),
        "num_predictions": int(len(table)),
        "warnings": warnings,
    }


def evaluate_segmentation(ann: Annotations, pred: Predictions, subset: str, frames_per_video: int = 25,
                          classes: list[str] | None = None) -> dict:
    """Charades-style frame mAP from detections: a frame's class score is the highest score
    of the detections of that class covering it (0 where none does)."""
    subset = ann.check_subset(subset)
    videos = ann.select(subset)
    classes = classes or sorted({lab for v in videos for lab in v.labels})
    cidx = {c: i for i, c in enumerate(classes)}
    by_video: dict[str, list[int]] = {}
    for i, vid in enumerate(pred.videos):
        rid = ann.resolve(vid)
        if rid is not None:
            by_video.setdefault(rid, []).append(i)
    all_scores, all_labels = [], []
    for v in videos:
        t = frame_times(v.duration, frames_per_video)
        lab = np.array([cidx[x] for x in v.labels], dtype=np.int64)
        all_labels.append(frame_labels(v.segments, lab, t, len(classes)))
        sc = np.zeros((len(t), len(classes)))
        idx = [i for i in by_video.get(v.video_id, []) if pred.labels[i] in cidx]
        if idx:
            idx = np.array(idx)
            seg = pred.segments[idx]
            pc = np.array([cidx[pred.labels[i]] for i in idx])
            cover = (seg[None, :, 0] <= t[:, None]) & (t[:, None] <= seg[None, :, 1])         # (F, N)
            contrib = np.where(cover, pred.scores[idx][None, :].astype(np.float64), 0.0)
            np.maximum.at(sc, (np.repeat(np.arange(len(t)), len(idx)), np.tile(pc, len(t))), contrib.ravel())
        all_scores.append(sc)
    ap = frame_average_precision(np.concatenate(all_scores), np.concatenate(all_labels))
    valid = ~np.isnan(ap)
    return {"segmentation_mAP": float(ap[valid].mean()) if valid.any() else float("nan"),
            "segmentation_per_class_AP": {c: (None if np.isnan(a) else float(a)) for c, a in zip(classes, ap)},
            "frames_per_video": frames_per_video}


def evaluate_files(gt, pred, subset=None, tiou="activitynet", segmentation: bool = False,
                   frames_per_video: int = 25, recall_ks=(1, 5, 10, 50, 100), exclude_ignored: bool = False) -> dict:
    ann = _as_annotations(gt)
    preds = _as_predictions(pred)
    metrics = evaluate_detection(ann, preds, subset=subset, tiou=tiou, recall_ks=recall_ks,
                                 exclude_ignored=exclude_ignored)
    if segmentation:
        metrics.update(evaluate_segmentation(ann, preds, metrics["subset"], frames_per_video))
    return metrics
