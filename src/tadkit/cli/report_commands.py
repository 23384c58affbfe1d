"""``tadkit report``: a ``register(subparsers)`` and a ``run(args)``."""
from __future__ import annotations

from pathlib import Path

from ..core.errors import TadkitError


def _reg_report(sub):
    p = sub.add_parser("report", help="write one self-contained HTML page showing a run",
                       description="Write one HTML file, readable offline in any browser: the run's config, "
                                   "the metrics (mAP per tIoU, per-class AP, recall@k), precision-recall "
                                   "curves, the training curves of log.csv, the diagnosis figures when "
                                   "available, and a per-video timeline of ground truth against predictions. "
                                   "Either RUN_DIR (a `tadkit train` output folder; --gt and --pred replace "
                                   "its files) or --gt, --pred and --out. Prints the report's path last.")
    p.add_argument("run_dir", nargs="?", metavar="RUN_DIR", help="a training run's output folder")
    p.add_argument("--gt", help="annotation file (default: the run's data.annotations)")
    p.add_argument("--pred", help="predictions file (default: RUN_DIR/predictions.json)")
    p.add_argument("--subset", help="subset to evaluate (default: the run's data.test_subset, else the one "
                                    "holding the predicted videos)")
    p.add_argument("--tiou", help="thresholds as for tadkit eval: a comma list, start:stop:step or a preset "
                                  "(default: the run's test.tiou, else activitynet)")
    p.add_argument("--out", help="the HTML file (default RUN_DIR/report.html)")
    p.add_argument("--top", type=int, default=None,
                   help="detections drawn per video on the timeline at first (default 200; the page can change it)")


def _run_report(args):
    from ..report import DEFAULT_TOP_N, write_report
    if args.run_dir is None and (args.gt is None or args.pred is None or args.out is None):
        raise TadkitError("give a run folder, or --gt, --pred and --out",
                          fix="tadkit report RUN_DIR, or tadkit report --gt ANN.json --pred PRED.json "
                              "--out report.html")
    top = DEFAULT_TOP_N if args.top is None else args.top
    if top < 1:
        raise TadkitError(f"--top must be at least 1, got {top}", fix="pass e.g. --top 200")
    path = write_report(args.run_dir, gt=args.gt, pred=args.pred, subset=args.subset, tiou=args.tiou,
                        out=args.out, top_n=top)
    print(f"report written ({Path(path).stat().st_size / 1e6:.1f} MB); open it in a browser:")
    print(path)
    return 0


REPORT_COMMANDS: dict = {
    "report": (_reg_report, _run_report),
}
