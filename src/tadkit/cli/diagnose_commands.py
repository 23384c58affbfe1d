"""``tadkit diagnose``: DETAD's error analysis (a ``register(subparsers)`` and a ``run(args)``)."""
from __future__ import annotations

import sys
from pathlib import Path

from ..core.errors import TadkitError
from .output import add_evaluation_inputs


def _reg_diagnose(sub):
    p = sub.add_parser("diagnose", help="DETAD error analysis: false-positive profile, false negatives, sensitivity",
                       description="DETAD's diagnosis of a predictions file: the false-positive profile of the top "
                                   "1G..10G predictions and the average-mAP_N gain from removing each error type, "
                                   "the false-negative rate and the average-mAP_N per bin of coverage, length and "
                                   "number of instances. Writes OUT/diagnosis.json and the figures (PNG and SVG).")
    add_evaluation_inputs(p, "diagnose")
    p.add_argument("--out", required=True, help="output directory (diagnosis.json and the figures)")
    p.add_argument("--bins", default="auto", choices=("auto", "activitynet", "thumos14", "quantile"),
                   help="bins of the characteristics: DETAD's ActivityNet or THUMOS14 sets, the data's quantiles, "
                        "or auto (the first DETAD set that fits the data, else quantiles; default)")
    p.add_argument("--no-figures", action="store_true", help="write diagnosis.json only")


def _check_out(out: Path) -> None:
    """Refuse an output path that cannot become a directory, before anything is computed or written."""
    from ..core.io import check_output_dir
    check_output_dir(out, "--out")


def print_diagnosis(d: dict) -> None:
    """The false-positive profile, the gains and the per-bin figures as short tables, in percent."""
    print(f"subset {d['subset']!r}: {d['num_classes']} classes, {d['num_ground_truth']} ground truths, "
          f"{d['num_predictions']} predictions ({d['num_predictions_analyzed']} in the top {d['limit_factor']}G); "
          f"G = {d['G']}; average-mAP_N {100 * d['average_mAP_N']:.2f}")
    cols = ("true_positive", "double_detection", "wrong_label", "localization", "confusion", "background")
    short = ("TP", "double", "wrong", "loc", "conf", "bg")
    print("band   preds " + " ".join(f"{s:>7}" for s in short))
    for k, b in enumerate(d["false_positive_profile"]):
        if b is None:
            print(f"{k + 1:>2}G        0 " + " ".join(f"{'-':>7}" for _ in short))
            continue
        print(f"{b['band']:>3} {b['num_predictions']:>8} " + " ".join(f"{100 * b['fractions'][c]:7.2f}" for c in cols))
    g = d["removing_error_gain"]
    print("average-mAP_N gain from removing: " + ", ".join(f"{s} {100 * g[c]:+.2f}" for s, c in zip(short[1:], cols[1:])))
    for section, key, title in (("false_negative", "false_negative_rate", "false negatives"),
                                ("sensitivity", "average_mAP_N", "average-mAP_N")):
        for name in ("coverage", "length", "num_instances"):
            block = d[section][name]
            vals = ", ".join(f"{lab} {'n/a' if v is None else f'{100 * v:.1f}'}" for lab, v in block[key].items())
            print(f"{title} by {name} ({block['rule']} bins): {vals}")
    print("(percent; diagnosis.json holds fractions)")


def _run_diagnose(args):
    from ..core.io import atomic_write_json
    from ..evaluation.diagnosis import diagnose
    out = Path(args.out)
    _check_out(out)
    d = diagnose(args.gt, args.pred, subset=args.subset, tiou=args.tiou, bins=args.bins)
    figures = None
    if not args.no_figures:
        from ..evaluation.diagnosis_plots import render_figures
        figures = render_figures(d)                      # drawn in memory before the directory exists
    for w in d["warnings"]:
        print(f"tadkit diagnose: warning: {w}", file=sys.stderr)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    if figures is not None:
        from ..evaluation.diagnosis_plots import write_figures
        written = write_figures(figures, out)
    atomic_write_json(out / "diagnosis.json", d)
    print_diagnosis(d)
    print(f"diagnosis written to {out / 'diagnosis.json'}"
          + (f", figures to {out}/ ({len(written)} files)" if written else ""))
    return 0


DIAGNOSE_COMMANDS: dict = {"diagnose": (_reg_diagnose, _run_diagnose)}
