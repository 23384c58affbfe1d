"""``tadkit report``: the data the page embeds, the command line, and the page itself in headless Chromium.

The browser tests need Debian's ``chromium`` (``apt-get update && apt-get install -y chromium``);
without it they fail, saying so. Chromium runs the page's script and gives back the DOM
(``--dump-dom``: the page writes what its timeline lists into ``#timeline-state`` and the
``#tl-list`` table, and its script errors into ``#js-errors``) or a screenshot.
"""
from __future__ import annotations

import json
import logging
import re
import shutil
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest

from tadkit.cli import main as cli_main
from tadkit.cli.report_commands import REPORT_COMMANDS
from tadkit.report import build_report_data, embed_json, pr_curve_points, render_html, write_report

CHROMIUM_INSTALL = "apt-get update && apt-get install -y chromium"
BIG_VIDEO, BIG_COUNT = "vid_big", 5000
CLASSES = ["jump", "run", "throw"]


# -- fixtures ----------------------------------------------------------------------------------
def _write_hand_run(root: Path) -> Path:
    """A run folder written by hand: annotations in ../data (named relatively by config.yaml),
    5,000 detections on one video, a few on the others, log.csv with losses and mAP."""
    rng = np.random.default_rng(0)
    db = {"train_a": {"subset": "training", "duration": 50.0,
                      "annotations": [{"segment": [2.0, 9.0], "label": c} for c in CLASSES]}}
    for i in range(4):
        vid = BIG_VIDEO if i == 0 else f"vid_{i}"
        anns = [{"segment": [float(s), float(s + rng.uniform(3, 12))], "label": CLASSES[(i + k) % 3]}
                for k, s in enumerate(rng.uniform(0, 80, size=3 + i))]
        db[vid] = {"subset": "validation", "duration": 100.0, "annotations": anns}
    (root / "data").mkdir(parents=True)
    (root / "data" / "annotations.json").write_text(json.dumps({"database": db}))

    results = {}
    starts = rng.uniform(0, 95, size=BIG_COUNT)
    scores = rng.permutation(BIG_COUNT) / BIG_COUNT + 1e-4          # distinct scores: one top-N order
    results[BIG_VIDEO] = [{"segment": [float(s), float(s + rng.uniform(0.5, 10))], "label": CLASSES[j % 3],
                           "score": float(sc)} for j, (s, sc) in enumerate(zip(starts, scores))]
    for i in (1, 2, 3):
        results[f"vid_{i}"] = [{"segment": a["segment"], "label": a["label"], "score": 0.9 - 0.1 * k}
                               for k, a in enumerate(db[f"vid_{i}"]["annotations"])]
    results["vid_1"].append({"segment": [1.0, 4.0], "label": "swim", "score": 0.95})   # a label without GT
    run = root / "run"
    run.mkdir()
    (run / "predictions.json").write_text(json.dumps({"results": results}))
    (run / "config.yaml").write_text(
        "data:\n  annotations: ../data/annotations.json\n  test_subset: validation\n"
        "model:\n  name: toy\ntrain:\n  epochs: 3\ntest:\n  tiou: thumos14\noutput_dir: run\n")
    (run / "log.csv").write_text("epoch,step,lr,loss,cls_loss,reg_loss,average_mAP,best_mAP,time_s\n"
                                 "1,10,0.001,2.5,1.5,1.0,,,1.0\n2,20,0.0008,1.7,1.0,0.7,0.31,0.31,1.0\n"
                                 "3,30,0.0002,1.2,0.7,0.5,0.42,0.42,1.0\n")
    return run


@pytest.fixture(scope="module")
def hand_run(tmp_path_factory) -> Path:
    run = _write_hand_run(tmp_path_factory.mktemp("report_hand"))
    write_report(run)
    return run


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory) -> Path:
    """A real (tiny) training run: the toy detector, 2 epochs on synthetic data; train writes report.html."""
    import torch

    from tadkit.engine.trainer import train
    from tests.engine._toy import build_toy, make_data, toy_config
    root = tmp_path_factory.mktemp("report_trained")
    make_data(root / "data")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        train(toy_config(root / "data", root / "run", train={"epochs": 2, "eval_every": 1}), build_model=build_toy)
    finally:
        torch.set_num_threads(threads)
    return root / "run"


def _predictions(run: Path) -> dict:
    return json.loads((run / "predictions.json").read_text())["results"]


def _expected_rows(dets: list[dict], min_score: float = 0.0, top: int = 200, label: str | None = None):
    """What the timeline must list: the detections of predictions.json with score >= min_score (and
    of ``label``), best first (ties in file order), the first ``top``."""
    keep = [d for d in dets if d["score"] >= min_score and (label is None or d["label"] == label)]
    keep = sorted(keep, key=lambda d: -d["score"])
    return [(d["label"], float(d["segment"][0]), float(d["segment"][1]), float(d["score"])) for d in keep[:top]], \
        len(keep)


# -- the embedded data ---------------------------------------------------------------------------
def _tiny_case():
    gt = {"database": {
        "v1": {"subset": "validation", "duration": 60.0, "annotations": [
            {"segment": [0.0, 10.0], "label": "A"}, {"segment": [20.0, 30.0], "label": "A"},
            {"segment": [5.0, 15.0], "label": "B"}]}}}
    pred = {"results": {"v1": [
        {"segment": [1.0, 10.0], "label": "A", "score": 0.8},      # tIoU 0.9 with A#1, which p1 takes first
        {"segment": [0.0, 10.0], "label": "A", "score": 0.9},      # tIoU 1.0 with A#1
        {"segment": [40.0, 50.0], "label": "A", "score": 0.6},     # overlaps nothing
        {"segment": [20.0, 29.0], "label": "A", "score": 0.7},     # tIoU 0.9 with A#2
        {"segment": [5.0, 15.0], "label": "B", "score": 0.5},      # tIoU 1.0 with B
        {"segment": [5.0, 15.0], "label": "Z", "score": 0.99},     # no ground truth of its class
    ]}}
    return gt, pred


def test_pr_curves_match_a_hand_computation():
    gt, pred = _tiny_case()
    data = build_report_data(gt=gt, pred=pred, tiou=[0.5, 0.95])
    pr = data["pr"]
    assert pr["classes"] == ["A", "B"] and pr["npos"] == [2, 1] and pr["num_predictions"] == [4, 1]
    a, b = 0, 1
    # tIoU 0.5, class A by score: 0.9 TP, 0.8 FP (its best ground truth is taken, the other is at tIoU 0),
    # 0.7 TP, 0.6 FP -> recall 1/2 1/2 1 1, precision 1 1/2 2/3 1/2; every point is a corner
    assert _same(pr["per_class"][0][a], [[0.5, 1.0], [0.5, 0.5], [1.0, 2 / 3], [1.0, 0.5]])
    # tIoU 0.95: 0.7 is no longer a hit -> recall 1/2 throughout, precision 1 1/2 1/3 1/4: corners first and last
    assert _same(pr["per_class"][1][a], [[0.5, 1.0], [0.5, 0.25]])
    assert pr["per_class"][0][b] == pr["per_class"][1][b] == [[1.0, 1.0]]
    # all classes pooled by score (Z left out): T F T F T over 3 ground truths
    assert _same(pr["overall"][0], [[1 / 3, 1.0], [1 / 3, 0.5], [2 / 3, 2 / 3], [2 / 3, 0.5], [1.0, 0.6]])
    # the interpolated AP of the corners is the evaluation's AP
    for t in range(2):
        for c, name in enumerate(pr["classes"]):
            assert _interpolated_ap(pr["per_class"][t][c]) == pytest.approx(data["metrics"]["per_class_AP"][name][t])
    assert data["metrics"]["per_class_AP"]["A"] == pytest.approx([0.5 * 1 + 0.5 * 2 / 3, 0.5])
    # the timeline's detections: best first, with their match at each threshold ("" = not evaluated)
    (video,) = data["videos"]
    labels = data["labels"]
    assert [(labels[d[2]], d[3], d[4]) for d in video["det"]] == [
        ("Z", 0.99, ""), ("A", 0.9, "11"), ("A", 0.8, "00"), ("A", 0.7, "10"), ("A", 0.6, "00"), ("B", 0.5, "11")]
    assert [labels[g[2]] for g in video["gt"]] == ["A", "A", "B"]


def _same(points, expected) -> bool:
    """Curve points equal to the 6 decimals the report keeps."""
    a, b = np.asarray(points, dtype=float), np.asarray(expected, dtype=float)
    return a.shape == b.shape and np.allclose(a, b, atol=1e-6, rtol=0)


def _interpolated_ap(points):
    rec = [0.0] + [p[0] for p in points] + [1.0]
    prec = [0.0] + [p[1] for p in points] + [0.0]
    for i in range(len(prec) - 2, -1, -1):
        prec[i] = max(prec[i], prec[i + 1])
    return sum((rec[i] - rec[i - 1]) * prec[i] for i in range(1, len(rec)) if rec[i] != rec[i - 1])


def test_pr_curve_points_keep_the_corners_of_a_long_curve():
    rng = np.random.default_rng(1)
    tp = rng.random(500) < 0.3
    pts = np.array(pr_curve_points(tp, npos=200))
    full_rec = np.cumsum(tp) / 200
    full_prec = np.cumsum(tp) / np.arange(1, 501)
    assert len(pts) <= 2 * tp.sum() + 1
    assert _interpolated_ap(pts.tolist()) == pytest.approx(_interpolated_ap(np.c_[full_rec, full_prec].tolist()),
                                                           abs=1e-5)
    assert pr_curve_points([], 3) == [] and pr_curve_points([1, 0], 0) == []


def _script_json(page: str) -> str:
    m = re.search(r'<script type="application/json" id="report-data">(.*?)</script>', page, re.S)
    assert m, "no data script in the page"
    return m.group(1)


def test_embedded_json_round_trips_and_cannot_close_its_script_tag():
    gt, pred = _tiny_case()
    nasty = "</script><script>alert(1)</script><!-- & \u00e9\u2028"
    gt["database"]["v1"]["annotations"][2]["label"] = nasty
    pred["results"]["v1"][4]["label"] = nasty
    gt["database"][nasty] = {"subset": "validation", "duration": 5.0, "annotations": []}
    data = build_report_data(gt=gt, pred=pred, tiou="0.5")
    page = render_html(data)
    text = _script_json(page)
    assert "<" not in text and ">" not in text and "&" not in text
    assert json.loads(text) == data
    assert nasty in data["labels"] and any(v["id"] == nasty for v in data["videos"])
    assert page.count("</script>") == 3                       # the error recorder's, the data's, the page script's
    assert json.loads(embed_json({"x": "</script>"})) == {"x": "</script>"}


def test_hand_run_embeds_every_detection_best_first(hand_run):
    page = (hand_run / "report.html").read_text()
    data = json.loads(_script_json(page))
    assert data["top_n"] == 200 and data["source"]["subset"] == "validation"
    assert data["tiou"] == pytest.approx([0.3, 0.4, 0.5, 0.6, 0.7])          # the run's test.tiou
    big = next(v for v in data["videos"] if v["id"] == BIG_VIDEO)
    assert len(big["det"]) == BIG_COUNT
    scores = [d[3] for d in big["det"]]
    assert scores == sorted(scores, reverse=True)
    expected, _ = _expected_rows(_predictions(hand_run)[BIG_VIDEO], top=BIG_COUNT)
    assert [(data["labels"][d[2]], d[0], d[1], d[3]) for d in big["det"]] == expected
    # the metrics are the evaluation's
    from tadkit.evaluation.api import evaluate_files
    m = evaluate_files(hand_run.parent / "data" / "annotations.json", hand_run / "predictions.json",
                       subset="validation", tiou="thumos14")
    assert data["metrics"]["mAP"] == m["mAP"] and data["metrics"]["per_class_AP"] == m["per_class_AP"]
    assert data["log"]["values"]["average_mAP"] == [None, 0.31, 0.42]
    assert "swim" in data["labels"] and any("swim" in n for n in data["notes"])
    assert "test_subset: validation" in data["config_text"]


def test_diagnosis_missing_or_present(tmp_path, monkeypatch):
    gt, pred = _tiny_case()
    monkeypatch.setitem(sys.modules, "tadkit.evaluation.diagnosis", None)      # import fails: not built yet
    d = build_report_data(gt=gt, pred=pred)["diagnosis"]
    assert d["status"] == "unavailable" and d["message"].startswith("diagnosis not available")

    import types
    seen = {}
    fake = types.ModuleType("tadkit.evaluation.diagnosis")

    def diagnose(gt, pred, subset=None, tiou=0.5):
        seen.update(subset=subset, tiou=tiou)
        return {"ok": 1}
    fake.diagnose = diagnose
    plots = types.ModuleType("tadkit.evaluation.diagnosis_plots")
    plots.diagnosis_svgs = lambda diag: {"false positives": '<svg xmlns="http://www.w3.org/2000/svg"/>'}
    monkeypatch.setitem(sys.modules, "tadkit.evaluation.diagnosis", fake)
    monkeypatch.setitem(sys.modules, "tadkit.evaluation.diagnosis_plots", plots)
    d = build_report_data(gt=gt, pred=pred)["diagnosis"]
    assert d["status"] == "ok" and d["figures"]["false positives"].startswith("data:image/svg+xml;base64,")
    assert seen == {"subset": "validation", "tiou": 0.5}

    def broken(*a, **k):
        raise ValueError("boom")
    fake.diagnose = broken
    d = build_report_data(gt=gt, pred=pred)["diagnosis"]
    assert d["status"] == "failed" and "boom" in d["message"]


# -- the command line -------------------------------------------------------------------------------
def _cli(monkeypatch, capsys, *args):
    monkeypatch.setitem(cli_main.COMMANDS, "report", REPORT_COMMANDS["report"])
    code = cli_main.main(["report", *map(str, args)])
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_writes_the_report_and_prints_its_path_last(hand_run, tmp_path, monkeypatch, capsys):
    out_file = tmp_path / "sub" / "r.html"
    code, out, err = _cli(monkeypatch, capsys, hand_run, "--out", out_file, "--tiou", "0.5", "--top", "20")
    assert code == 0, err
    assert out.strip().splitlines()[-1] == str(out_file)
    data = json.loads(_script_json(out_file.read_text()))
    assert data["tiou"] == [0.5] and data["top_n"] == 20
    # without a run: --gt, --pred, --subset
    alone = tmp_path / "alone.html"
    code, out, err = _cli(monkeypatch, capsys, "--gt", hand_run.parent / "data" / "annotations.json",
                          "--pred", hand_run / "predictions.json", "--subset", "val", "--out", alone)
    assert code == 0, err
    assert out.strip().splitlines()[-1] == str(alone)
    data = json.loads(_script_json(alone.read_text()))
    assert data["config_text"] is None and data["log"] is None and data["source"]["subset"] == "validation"


def test_cli_bad_input_is_one_line_exit_2_and_writes_nothing(hand_run, tmp_path, monkeypatch, capsys):
    ann = hand_run.parent / "data" / "annotations.json"
    empty = tmp_path / "empty_run"
    empty.mkdir()
    (tmp_path / "bad.json").write_text('{"results": {"vid_1": [')
    out = tmp_path / "r.html"
    cases = [
        ((tmp_path / "missing",), "run folder not found"),
        ((empty,), "no predictions.json"),
        (("--gt", ann, "--pred", tmp_path / "bad.json", "--out", out), "invalid JSON"),
        ((hand_run, "--subset", "nope", "--out", out), "subset 'nope'"),
        (("--gt", ann, "--pred", hand_run / "predictions.json"), "--out"),
        ((hand_run, "--tiou", "2", "--out", out), "tIoU"),
    ]
    for args, message in cases:
        code, stdout, err = _cli(monkeypatch, capsys, *args)
        assert code == 2 and err.count("\n") == 1 and message in err and "Traceback" not in err, (args, err)
        assert not out.exists() and not (empty / "report.html").exists()


# -- training writes the report ------------------------------------------------------------------------
def test_training_writes_the_report(trained_run):
    data = json.loads(_script_json((trained_run / "report.html").read_text()))
    assert data["metrics"]["average_mAP"] == pytest.approx(
        json.loads((trained_run / "metrics.json").read_text())["average_mAP"])
    assert [e for e in data["log"]["values"]["epoch"]] == [1.0, 2.0]


def test_a_failing_report_does_not_fail_the_training(tmp_path, monkeypatch):
    import tadkit.report
    from tadkit.engine.trainer import train
    from tests.engine._toy import build_toy, make_data, toy_config

    def broken(*a, **k):
        raise RuntimeError("no report today")
    monkeypatch.setattr(tadkit.report, "write_report", broken)
    records = []
    handler = logging.Handler()
    handler.emit = records.append
    logging.getLogger("tadkit").addHandler(handler)
    try:
        make_data(tmp_path / "data", videos=4)
        result = train(toy_config(tmp_path / "data", tmp_path / "run", train={"epochs": 1}), build_model=build_toy)
    finally:
        logging.getLogger("tadkit").removeHandler(handler)
    assert result.predictions is not None and (tmp_path / "run" / "predictions.json").exists()
    assert not (tmp_path / "run" / "report.html").exists()
    assert any("report.html not written" in r.getMessage() and "no report today" in r.getMessage() for r in records)


# -- in the browser ---------------------------------------------------------------------------------------
def _chromium() -> str:
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    if exe is None:
        pytest.fail(f"the report's browser tests need headless Chromium; install it with `{CHROMIUM_INSTALL}`",
                    pytrace=False)
    return exe


def _browse(page: Path, tmp_path: Path, fragment: str = "", screenshot: Path | None = None):
    """Open ``page`` in headless Chromium: the DOM after the script ran (or a screenshot), and stderr."""
    url = page.resolve().as_uri() + (f"#{fragment}" if fragment else "")
    cmd = [_chromium(), "--headless=new", "--disable-gpu", "--no-sandbox", "--no-first-run",
           f"--user-data-dir={tmp_path / 'chromium-profile'}", "--virtual-time-budget=5000",
           "--enable-logging=stderr", "--v=0"]
    if screenshot:
        cmd += [f"--screenshot={screenshot}", "--window-size=1280,900", "--hide-scrollbars"]
    else:
        cmd += ["--dump-dom"]
    p = subprocess.run(cmd + [url], capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr[-3000:]
    console = [ln for ln in p.stderr.splitlines() if ":CONSOLE" in ln or "Uncaught" in ln]
    assert not console, f"the page wrote to the console: {console}"
    return p.stdout


class _Dom(HTMLParser):
    """What the tests read from the dumped DOM: attributes by id, texts by id, the timeline's rows."""

    def __init__(self, text: str):
        super().__init__()
        self.attrs_by_id, self.text_by_id, self.rows, self.body = {}, {}, [], {}
        self.det_bars = 0
        self._open: list[str | None] = []
        self._in_list = False
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "body":
            self.body = a
        if "id" in a:
            self.attrs_by_id[a["id"]] = a
            self.text_by_id.setdefault(a["id"], "")
        if tag == "table" and a.get("id") == "tl-list":
            self._in_list = True
        if tag == "rect" and a.get("class") == "det":
            self.det_bars += 1
        if tag == "tr" and self._in_list and "data-k" in a:
            self.rows.append(a)
        if tag not in ("br", "img", "input", "meta", "link", "rect", "line", "circle", "path"):
            self._open.append(a.get("id"))

    def handle_endtag(self, tag):
        if tag == "table":
            self._in_list = False
        if tag not in ("br", "img", "input", "meta", "link", "rect", "line", "circle", "path") and self._open:
            self._open.pop()

    def handle_data(self, data):
        for i in self._open:
            if i is not None:
                self.text_by_id[i] += data


def _dom(page: Path, tmp_path: Path, fragment: str = "") -> _Dom:
    dom = _Dom(_browse(page, tmp_path, fragment))
    assert dom.body.get("data-ready") == "1", "the page's script did not finish"
    assert dom.attrs_by_id["js-errors"].get("data-count") == "0", dom.text_by_id.get("js-errors")
    return dom


def _listed(dom: _Dom):
    return [(r["data-label"], float(r["data-start"]), float(r["data-end"]), float(r["data-score"]))
            for r in dom.rows]


def test_browser_timeline_lists_the_run_predictions(trained_run, tmp_path):
    preds = _predictions(trained_run)
    video = sorted(preds)[-1]
    dom = _dom(trained_run / "report.html", tmp_path, f"video={video}&min_score=0.3&top=25&detection=2")
    state = dom.attrs_by_id["timeline-state"]
    expected, passing = _expected_rows(preds[video], min_score=0.3, top=25)
    assert state["data-video"] == video and state["data-passing"] == str(passing)
    assert _listed(dom) == expected and int(state["data-shown"]) == len(expected)
    # a chosen detection's numbers (as a click shows them)
    label, start, end, score = expected[1]
    assert dom.attrs_by_id["tl-detail"]["data-k"] == "1"
    detail = dom.text_by_id["tl-detail"]
    assert f"label{label}" in detail and f"score{score:.4f}" in detail and f"start{start:.3f} s" in detail
    gts = [a["segment"] for a in json.loads((trained_run.parent / "data" / "annotations.json").read_text())
           ["database"][video]["annotations"] if a["label"] == label]
    ious = [max(0.0, min(end, e) - max(start, s)) / (max(end, e) - min(start, s)) for s, e in gts]
    best = f"{max(ious):.3f}" if ious else "none in this video"
    assert f"best tIoU with a ground truth of its class{best}" in detail
    assert "average-map" in dom.attrs_by_id and "Precision-recall" in dom.text_by_id["sec-pr"]


def test_browser_5000_detections_draws_the_top_n_and_says_how_many_are_hidden(hand_run, tmp_path):
    dets = _predictions(hand_run)[BIG_VIDEO]
    dom = _dom(hand_run / "report.html", tmp_path, f"video={BIG_VIDEO}")
    state = dom.attrs_by_id["timeline-state"]
    expected, passing = _expected_rows(dets, top=200)
    assert (state["data-total"], state["data-shown"], state["data-hidden"]) == ("5000", "200", "4800")
    assert _listed(dom) == expected
    assert "4,800 hidden" in dom.text_by_id["tl-status"]
    assert dom.det_bars == 200                                                # bars drawn on the timeline
    # the score filter, the top N and the class filter, through the address
    dom = _dom(hand_run / "report.html", tmp_path, f"video={BIG_VIDEO}&min_score=0.5&top=50&class=run")
    expected, passing = _expected_rows(dets, min_score=0.5, top=50, label="run")
    state = dom.attrs_by_id["timeline-state"]
    assert _listed(dom) == expected and state["data-hidden"] == str(passing - 50)
    assert f"{passing - 50:,} hidden" in dom.text_by_id["tl-status"]
    # the diagnosis section says what it has
    assert dom.text_by_id["diagnosis"].strip()


def test_browser_screenshot_is_not_blank(hand_run, tmp_path):
    from matplotlib.image import imread
    shot = tmp_path / "shot.png"
    _browse(hand_run / "report.html", tmp_path, f"video={BIG_VIDEO}", screenshot=shot)
    img = imread(shot)
    assert img.shape[:2] == (900, 1280)
    pixels = img[..., :3].reshape(-1, 3)
    assert len(np.unique(pixels, axis=0)) > 20                               # not one colour
    assert (pixels.min(axis=1) < 0.9).mean() > 0.02                           # some ink on the white page


def test_browser_subset_without_ground_truth(tmp_path):
    gt, pred = _tiny_case()
    gt["database"]["v1"]["annotations"] = []
    page = write_report(gt=gt, pred=pred, out=tmp_path / "r.html")
    data = json.loads(_script_json(page.read_text()))
    assert data["metrics"] is None and data["pr"] is None and any("no ground truth" in n for n in data["notes"])
    dom = _dom(page, tmp_path, "video=v1&top=4")
    expected, _ = _expected_rows(pred["results"]["v1"], top=4)
    assert _listed(dom) == expected and dom.attrs_by_id["timeline-state"]["data-hidden"] == "2"
    assert "no ground truth" in dom.text_by_id["metrics"]
