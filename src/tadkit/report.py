"""``tadkit report``: one self-contained HTML file showing a run (or a predictions file).

The page holds, with no network access needed (inline CSS, JavaScript and SVG):

- the run's ``config.yaml`` (collapsible);
- the metrics of the ActivityNet protocol: mAP per tIoU and averaged, per-class AP, recall@k;
- precision-recall curves per class and over all classes, at each tIoU of the evaluation,
  from the evaluation's own matching (:func:`tadkit.evaluation.detection.match_detections`);
- the training curves of ``log.csv`` (losses and average mAP per epoch);
- the diagnosis figures of :mod:`tadkit.evaluation.diagnosis`, when that module is installed;
- a per-video timeline of ground truth against predictions, filtered by class and score,
  drawing the ``top_n`` best detections (every detection is embedded; the page says how many
  it hides).

The data travel as JSON in a ``<script type="application/json">`` tag; the page's script
(``report_template.html``, vanilla JavaScript) draws everything from it.
"""
from __future__ import annotations

import base64
import csv
import datetime
import html
import json
import logging
import math
import os
from importlib import resources
from pathlib import Path

import numpy as np

from .core.errors import DataError, TadkitError
from .core.io import atomic_write_text, check_output_file

__all__ = ["write_report", "build_report_data", "render_html", "embed_json", "match_predictions",
           "pr_curve_points", "DEFAULT_TOP_N"]

logger = logging.getLogger("tadkit")

DEFAULT_TOP_N = 200          # detections drawn per video on the timeline (the page can change it)
RECALL_KS = (1, 5, 10, 50, 100)
_DATA_MARK = "__TADKIT_REPORT_DATA__"
_TITLE_MARK = "__TADKIT_REPORT_TITLE__"


# -- inputs ------------------------------------------------------------------------------------
def _read_run(run_dir: Path) -> dict:
    """config.yaml (text and parsed), predictions.json, log.csv and metrics.json of a run folder."""
    import yaml
    if not run_dir.is_dir():
        raise DataError("run folder not found", path=run_dir,
                        fix="pass the output_dir of a `tadkit train` run, or --gt and --pred")
    pred = run_dir / "predictions.json"
    config_text, config = None, {}
    if (run_dir / "config.yaml").is_file():
        try:
            config_text = (run_dir / "config.yaml").read_text(encoding="utf-8")
            config = yaml.safe_load(config_text) or {}
        except (yaml.YAMLError, UnicodeDecodeError) as e:
            raise DataError(f"config.yaml is not valid YAML: {' '.join(str(e).split())}",
                            path=run_dir / "config.yaml", fix="repair it or pass --gt") from None
        if not isinstance(config, dict):
            raise DataError("config.yaml does not hold a mapping", path=run_dir / "config.yaml",
                            fix="repair it or pass --gt")
    data, test = config.get("data") or {}, config.get("test") or {}
    ann = data.get("annotations") if isinstance(data, dict) else None
    if isinstance(ann, str) and not os.path.isabs(ann):
        ann = str(run_dir / ann)          # relative paths of a config file resolve against its folder
    return {"config_text": config_text, "pred": pred if pred.is_file() else None, "gt": ann,
            "subset": data.get("test_subset") if isinstance(data, dict) else None,
            "tiou": test.get("tiou") if isinstance(test, dict) else None,
            "log": run_dir / "log.csv" if (run_dir / "log.csv").is_file() else None,
            "metrics": run_dir / "metrics.json" if (run_dir / "metrics.json").is_file() else None}


def _read_log(path: Path | None) -> tuple[dict | None, str | None]:
    """``log.csv`` as ``{"columns": [...], "values": {column: [float or None per row]}}``."""
    if path is None:
        return None, None
    try:
        with open(path, newline="", encoding="utf-8") as f:
            rows = list(csv.DictReader(f))
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        return None, f"log.csv could not be read: {e}"
    if not rows:
        return None, None
    columns = [c for c in rows[0] if c is not None]

    def number(text):
        try:
            x = float(text)
        except (TypeError, ValueError):
            return None
        return x if math.isfinite(x) else None

    return {"columns": columns, "values": {c: [number(r.get(c)) for r in rows] for c in columns}}, None


# -- matching and precision-recall -------------------------------------------------------------
def match_predictions(ann, pred, subset: str, thresholds) -> dict:
    """True-positive flags of every prediction at every threshold, as ``tadkit eval`` matches them.

    The tables are built exactly as :func:`tadkit.evaluation.api.evaluate_detection` builds
    them (classes in order of first appearance in the subset's ground truth, predicted
    videos resolved with a ``v_`` prefix on either side, labels without ground truth left
    out), then :func:`tadkit.evaluation.detection.match_detections` matches them.

    Returns ``classes``, ``npos`` (ground truths per class), ``flags`` of shape
    ``(len(thresholds), len(pred))`` (1 true positive, 0 false positive, -1 not evaluated)
    and ``class_orders`` (per class, indices into ``pred`` in the evaluation's score order).
    """
    from .evaluation.detection import DetectionTable, match_detections
    thresholds = np.asarray(thresholds, dtype=np.float64)
    class_index: dict[str, int] = {}
    video_index: dict[str, int] = {}
    gv, gs, gl = [], [], []
    for v in ann.select(subset):
        video_index.setdefault(v.video_id, len(video_index))
        for seg, lab in zip(v.segments, v.labels):
            class_index.setdefault(lab, len(class_index))
            gv.append(video_index[v.video_id])
            gs.append(seg)
            gl.append(class_index[lab])
    keep, pv, pl = [], [], []
    for i, (vid, lab) in enumerate(zip(pred.videos, pred.labels)):
        if lab not in class_index:
            continue
        rid = ann.resolve(vid)
        keep.append(i)
        pv.append(video_index.setdefault(rid if rid is not None else vid, len(video_index)))
        pl.append(class_index[lab])
    keep = np.array(keep, dtype=np.int64)
    C = len(class_index)
    gt = DetectionTable(np.array(gv, dtype=np.int64), np.array(gs, dtype=np.float64).reshape(-1, 2),
                        np.array(gl, dtype=np.int64))
    table = DetectionTable(np.array(pv, dtype=np.int64), pred.segments[keep], np.array(pl, dtype=np.int64),
                           pred.scores[keep])
    tp, class_orders, _ = match_detections(gt, table, thresholds, C)
    flags = np.full((len(thresholds), len(pred)), -1, dtype=np.int8)
    order = keep[np.concatenate(class_orders)] if C else np.zeros(0, dtype=np.int64)
    flags[:, order] = tp
    return {"classes": list(class_index), "npos": np.bincount(gt.label, minlength=C) if C else np.zeros(0, int),
            "flags": flags, "class_orders": [keep[o] for o in class_orders]}


def pr_curve_points(tp, npos: int) -> list[list[float]]:
    """The corners of a precision-recall curve: ``[[recall, precision], ...]``.

    ``tp`` holds the true-positive flags of predictions in decreasing score order. Kept:
    every true positive (where precision peaks), the prediction just before each true
    positive (where it bottoms out) and the last prediction; the curve through these points
    is the full curve, and the all-point interpolated AP computed from them is the AP.
    """
    tp = np.asarray(tp, dtype=np.float64)
    if len(tp) == 0 or npos <= 0:
        return []
    tp_cum = np.cumsum(tp)
    rank = np.arange(1, len(tp) + 1)
    recall, precision = tp_cum / npos, tp_cum / rank
    hit = tp > 0
    keep = hit.copy()
    keep[:-1] |= hit[1:]
    keep[-1] = True
    return [[round(float(r), 6), round(float(p), 6)] for r, p in zip(recall[keep], precision[keep])]


def _pr_curves(match: dict, scores: np.ndarray, thresholds) -> dict:
    """Per class and overall (all classes pooled by score), at each threshold."""
    flags, npos = match["flags"], match["npos"]
    evaluated = np.nonzero(flags[0] >= 0)[0] if len(flags) else np.zeros(0, dtype=np.int64)
    pooled = evaluated[np.argsort(-scores[evaluated].astype(np.float64), kind="stable")]
    out = {"tiou": [float(t) for t in thresholds], "classes": match["classes"],
           "npos": [int(n) for n in npos], "num_predictions": [int(len(o)) for o in match["class_orders"]],
           "per_class": [], "overall": []}
    for t in range(len(thresholds)):
        out["per_class"].append([pr_curve_points(flags[t, order], int(n))
                                 for order, n in zip(match["class_orders"], npos)])
        out["overall"].append(pr_curve_points(flags[t, pooled], int(npos.sum())))
    return out


def _default_threshold(thresholds) -> int:
    """The index of 0.5 when the thresholds hold it, else of the middle one."""
    close = [i for i, t in enumerate(thresholds) if abs(t - 0.5) < 1e-9]
    return close[0] if close else (len(thresholds) - 1) // 2


# -- the timeline's data -----------------------------------------------------------------------
def _videos(ann, pred, subset: str, flags: np.ndarray | None, labels: list[str]) -> list[dict]:
    """The subset's videos (annotation order), then other predicted videos; detections by score.

    A detection is ``[start, end, label index, score, flags]``, ``flags`` a string with one
    character per threshold (``1`` true positive, ``0`` false positive; empty when the
    detection was not evaluated).
    """
    label_index = {lab: i for i, lab in enumerate(labels)}
    by_video: dict[str, list[int]] = {}
    for i, vid in enumerate(pred.videos):
        rid = ann.resolve(vid)
        by_video.setdefault(rid if rid is not None else vid, []).append(i)
    chars = None
    if flags is not None and flags.size:
        bits = np.ascontiguousarray((flags.T == 1).astype(np.uint8) + ord("0"))      # (P, n_thr) of '0'/'1'
        rows = bits.view(f"S{flags.shape[0]}").ravel()
        chars = [r.decode("ascii") if evaluated else "" for r, evaluated in zip(rows, flags[0] >= 0)]
    ids = [v.video_id for v in ann.select(subset)]
    seen = set(ids)
    ids += [vid for vid in by_video if vid not in seen]
    segments, scores = pred.segments.tolist(), pred.scores.tolist()
    sort_key = -pred.scores.astype(np.float64)
    label_of = [label_index[lab] for lab in pred.labels]
    out = []
    for vid in ids:
        v = ann.videos.get(vid)
        idx = np.array(by_video.get(vid, []), dtype=np.int64)
        idx = idx[np.argsort(sort_key[idx], kind="stable")].tolist()
        dets = [[segments[i][0], segments[i][1], label_of[i], scores[i], chars[i] if chars is not None else ""]
                for i in idx]
        gt = [] if v is None else [[float(s), float(e), label_index[lab]] for (s, e), lab in zip(v.segments, v.labels)]
        ends = [d[1] for d in dets] + [g[1] for g in gt]
        duration = float(v.duration) if v is not None and 0 < v.duration < math.inf else max(ends + [1.0])
        out.append({"id": vid, "subset": v.subset if v is not None else None, "duration": duration,
                    "gt": gt, "det": dets})
    return out


# -- diagnosis ---------------------------------------------------------------------------------
def _svg_data_uri(svg: str) -> str:
    return "data:image/svg+xml;base64," + base64.b64encode(svg.encode("utf-8")).decode("ascii")


def _diagnosis(gt, pred, subset: str, tiou: float) -> dict:
    """The diagnosis figures as SVG data URIs, or why there are none."""
    try:
        from .evaluation.diagnosis import diagnose
        from .evaluation.diagnosis_plots import diagnosis_svgs
    except ImportError as e:
        return {"status": "unavailable", "message": f"diagnosis not available ({e})", "figures": {}}
    try:
        svgs = diagnosis_svgs(diagnose(gt, pred, subset=subset, tiou=tiou))
        figures = {str(name): _svg_data_uri(svg) for name, svg in svgs.items()}
    except Exception as e:  # a failing diagnosis must not cost the rest of the report
        logger.warning("report: the diagnosis failed, the report shows the rest: %s", e)
        return {"status": "failed", "message": f"diagnosis failed: {e}", "figures": {}}
    return {"status": "ok", "message": None, "figures": figures}


# -- assembling --------------------------------------------------------------------------------
def _clean(obj):
    """JSON-ready: numpy scalars as Python numbers, NaN and infinities as null."""
    if isinstance(obj, dict):
        return {str(k): _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return _clean(obj.tolist())
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def _resolve_inputs(run_dir, gt, pred, subset, tiou) -> tuple[dict | None, object, object, object, object]:
    """The run folder's files (``None`` without a run), and gt, pred, subset and tiou with the
    run's defaults filled in."""
    if run_dir is None:
        if gt is None or pred is None:
            raise TadkitError("a report needs a run folder, or both annotations and predictions",
                              fix="pass RUN_DIR, or --gt ANN.json --pred PRED.json --out FILE")
        return None, gt, pred, subset, tiou
    run = _read_run(Path(run_dir))
    pred = pred if pred is not None else run["pred"]
    if pred is None:
        raise DataError("the run folder holds no predictions.json", path=run_dir,
                        fix="let `tadkit train` finish, or pass --pred")
    gt = gt if gt is not None else run["gt"]
    if gt is None:
        raise DataError("config.yaml names no annotation file (data.annotations)", path=run_dir,
                        fix="pass the annotations with --gt")
    return (run, gt, pred, subset if subset is not None else run["subset"],
            tiou if tiou is not None else run["tiou"])


def _label_list(ann, preds) -> list[str]:
    """The annotation's classes, then labels only the ground truth or only the predictions use."""
    labels = list(ann.classes)
    labels += [lab for lab in dict.fromkeys(lab for v in ann.videos.values() for lab in v.labels)
               if lab not in set(labels)]
    return labels + sorted(set(preds.labels) - set(labels))


def _title(run_dir, pred) -> str:
    if run_dir is not None:
        return f"tadkit report: {Path(run_dir).resolve().name}"
    if isinstance(pred, (str, os.PathLike)):
        return f"tadkit report: {Path(pred).stem}"
    return "tadkit report"


def build_report_data(run_dir=None, *, gt=None, pred=None, subset=None, tiou=None,
                      top_n: int = DEFAULT_TOP_N) -> dict:
    """Everything the page shows, as one JSON-ready dict (see :func:`write_report`)."""
    from .evaluation.api import _as_annotations, _as_predictions, choose_subset, evaluate_detection
    from .evaluation.tiou import parse_tiou

    if top_n < 1:
        raise TadkitError(f"top_n must be at least 1, got {top_n}", fix="pass e.g. 200")
    run, gt, pred, subset, tiou = _resolve_inputs(run_dir, gt, pred, subset, tiou)
    ann = _as_annotations(gt)
    preds = _as_predictions(pred)
    thresholds = parse_tiou(tiou)
    notes: list[str] = []
    if subset is not None:
        subset = ann.check_subset(subset)
    else:
        subset, note = choose_subset(ann, preds, None)
        notes += [note] if note else []

    metrics = pr = flags = None
    if any(len(v.labels) for v in ann.select(subset)):
        metrics = evaluate_detection(ann, preds, subset=subset, tiou=thresholds, recall_ks=RECALL_KS)
        notes += metrics.pop("warnings")
        if run is not None and run["metrics"] is not None:      # what only the run's metrics.json knows
            try:
                saved = json.loads(run["metrics"].read_text(encoding="utf-8"))
                if isinstance(saved, dict) and "segmentation_mAP" in saved:
                    metrics["segmentation_mAP"] = saved["segmentation_mAP"]
            except (OSError, ValueError):
                notes.append("metrics.json could not be read; the metrics shown are recomputed")
        match = match_predictions(ann, preds, subset, thresholds)
        flags = match["flags"]
        pr = _pr_curves(match, preds.scores, thresholds)
    else:
        notes.append(f"subset {subset!r} has no ground truth: no metrics, the timeline shows the predictions")

    log, log_note = _read_log(run["log"] if run else None)
    notes += [log_note] if log_note else []
    labels = _label_list(ann, preds)
    default_t = _default_threshold(thresholds)
    data = _clean({
        "title": _title(run_dir, pred),
        "generated": datetime.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M:%S %Z").strip(),
        "source": {"run_dir": os.fspath(run_dir) if run_dir is not None else None,
                   "annotations": os.fspath(gt) if isinstance(gt, (str, os.PathLike)) else None,
                   "predictions": os.fspath(pred) if isinstance(pred, (str, os.PathLike)) else None,
                   "subset": subset, "num_predictions": len(preds)},
        "config_text": run["config_text"] if run else None,
        "tiou": [float(t) for t in thresholds],
        "default_tiou": default_t,
        "labels": labels,
        "metrics": metrics,
        "pr": pr,
        "log": log,
        "diagnosis": _diagnosis(ann, preds, subset, float(thresholds[default_t])),
        "top_n": int(top_n),
        "notes": notes,
    })
    data["videos"] = _videos(ann, preds, subset, flags, labels)     # plain Python numbers, all finite already
    return data


# -- the page ----------------------------------------------------------------------------------
def embed_json(obj) -> str:
    """JSON text safe inside ``<script type="application/json">``: no ``<`` (so no ``</script>``
    or ``<!--``), ``>`` or ``&`` appears literally; ``JSON.parse`` reads the escapes back."""
    text = json.dumps(obj, ensure_ascii=True, allow_nan=False, separators=(",", ":"))
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def render_html(data: dict) -> str:
    template = resources.files("tadkit").joinpath("report_template.html").read_text(encoding="utf-8")
    page = template.replace(_TITLE_MARK, html.escape(data.get("title", "tadkit report")))
    return page.replace(_DATA_MARK, embed_json(data))


def write_report(run_dir=None, *, gt=None, pred=None, subset=None, tiou=None, out=None,
                 top_n: int = DEFAULT_TOP_N) -> Path:
    """Write one self-contained HTML report and return its path.

    Parameters
    ----------
    run_dir : a ``tadkit train`` output folder: its ``predictions.json``, ``config.yaml``
        (which names the annotations, the test subset and the tIoU thresholds) and ``log.csv``.
    gt, pred : annotations and predictions (paths or dicts); they replace the run's, or stand
        alone without ``run_dir``.
    subset : the subset to evaluate (default: the run's ``data.test_subset``, else the one
        holding most predicted videos).
    tiou : thresholds as ``tadkit eval --tiou`` reads them (default: the run's ``test.tiou``,
        else ``activitynet``).
    out : the HTML file (default ``RUN_DIR/report.html``; required without ``run_dir``).
    top_n : detections drawn per video on the timeline at first (the page can change it).

    Bad input raises :class:`tadkit.TadkitError` before anything is written; the file is
    written atomically.
    """
    if out is None:
        if run_dir is None:
            raise TadkitError("no output file given", fix="pass --out report.html")
        out = Path(run_dir) / "report.html"
    out = check_output_file(out, "the report file")
    data = build_report_data(run_dir, gt=gt, pred=pred, subset=subset, tiou=tiou, top_n=top_n)
    atomic_write_text(out, render_html(data))
    return out
