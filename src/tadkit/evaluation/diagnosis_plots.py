"""Figures of :func:`tadkit.evaluation.diagnosis.diagnose`, in the style of DETAD's.

Three figures, each as PNG and SVG:

- ``false_positive_analysis``: the false-positive profile (stacked bars of the error types in the
  bands 1G ... 10G) beside the average-mAP_N gain from removing each error type (DETAD's
  ``false_positive_analysis.py``);
- ``false_negative_analysis``: the false-negative rate per bin of coverage, length and number of
  instances (``false_negative_analysis.py``);
- ``sensitivity_analysis``: average-mAP_N per bin, with the overall value dashed, beside each
  characteristic's range relative to it (``sensitivity_analysis.py``).

matplotlib is imported only when a figure is drawn, and draws on the Agg canvas without touching
pyplot's global state. SVG output is deterministic (fixed id salt, no date).
"""
from __future__ import annotations

import io
import math
import os
from pathlib import Path

FIGURES = ("false_positive_analysis", "false_negative_analysis", "sensitivity_analysis")
ERROR_NAMES = ("True Positive", "Double Detection Err", "Wrong Label Err", "Localization Err",
               "Confusion Err", "Background Err")
ERROR_KEYS = ("true_positive", "double_detection", "wrong_label", "localization", "confusion", "background")
FP_COLORS = ("#33a02c", "#b2df8a", "#1f78b4", "#fb9a99", "#e31a1c", "#a6cee3")
CHAR_COLORS = ("#386cb0", "#f0027f", "#bf5b17")
CHAR_NAMES = {"coverage": "Coverage", "length": "Length", "num_instances": "# Instances"}
_RC = {"svg.hashsalt": "tadkit-diagnosis", "font.size": 11}


def _new_figure(size):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    fig = Figure(figsize=size)
    FigureCanvasAgg(fig)
    return fig


def _style(ax):
    ax.spines["top"].set_visible(False)
    ax.spines["right"].set_visible(False)
    ax.yaxis.grid(True, linestyle="dotted")
    ax.set_axisbelow(True)
    ax.yaxis.set_tick_params(direction="in", width=1.5)
    for side in ("bottom", "left"):
        ax.spines[side].set_linewidth(1.5)


def _fp_figure(d: dict):
    fig = _new_figure((11, 4.6))
    grid = fig.add_gridspec(1, 5, wspace=1.2, left=0.07, right=0.98, top=0.72, bottom=0.16)
    ax = fig.add_subplot(grid[0, :3])
    bands = [b for b in d["false_positive_profile"] if b is not None]
    x = list(range(len(bands)))
    bottom = [0.0] * len(bands)
    for key, name, color in zip(ERROR_KEYS, ERROR_NAMES, FP_COLORS):
        vals = [100 * b["fractions"][key] for b in bands]
        ax.bar(x, vals, 0.85, bottom=bottom, color=color, label=name, edgecolor="white", linewidth=0.3)
        bottom = [a + v for a, v in zip(bottom, vals)]
    ax.set_xticks(x, [b["band"] for b in bands])
    ax.set_yticks(range(0, 101, 10))
    ax.set_ylim(0, 100)
    ax.set_xlim(-0.75, max(len(bands), 1) - 0.25)
    ax.set_xlabel("Top Predictions")
    ax.set_ylabel("Error Breakdown (%)")
    ax.set_title("False Positive Profile", pad=6)
    if not bands:
        ax.text(0.5, 0.5, "no predictions", ha="center", va="center", transform=ax.transAxes)
    ax.legend(loc="lower left", bbox_to_anchor=(-0.1, 1.08), ncol=3, fontsize=9, edgecolor="k")
    _style(ax)

    ax2 = fig.add_subplot(grid[0, 3:])
    gains = d["removing_error_gain"]
    vals = [100 * gains[k] for k in ERROR_KEYS[1:]]
    bars = ax2.bar(range(5), vals, 0.8, color=FP_COLORS[1:])
    for bar, v in zip(bars, vals):
        ax2.text(bar.get_x() + bar.get_width() / 2, bar.get_height() + 0.1, f"{v:.1f}", ha="center",
                 va="bottom", fontsize=9)
    ax2.set_xticks(range(5), ["Double", "Wrong\nlabel", "Locali-\nzation", "Confu-\nsion", "Back-\nground"],
                   fontsize=8)
    top = max(vals + [0.0])
    ax2.set_ylim(min(0.0, min(vals + [0.0])), max(1.0, math.ceil(top * 1.15)))
    ax2.set_xlabel("Error Type")
    ax2.set_ylabel("Average-mAP$_N$\nImprovement (%)")
    ax2.set_title("Removing Error Impact", pad=6)
    _style(ax2)
    return fig


def _characteristic_bars(ax, section: dict, value_key: str, scale: float = 100.0):
    """Bars of every characteristic side by side, separated by dotted lines; returns (x, labels)."""
    xs, ticks, cur = [], [], 0
    names = [n for n in CHAR_NAMES if n in section]
    for i, name in enumerate(names):
        block = section[name]
        labels = block["labels"]
        values = block[value_key]
        x = list(range(cur, cur + len(labels)))
        for xi, lab in zip(x, labels):
            v = values[lab]
            if v is None:
                ax.text(xi, 1.0, "n/a", ha="center", va="bottom", fontsize=8, color="gray")
                continue
            ax.bar(xi, scale * v, 0.8, color=CHAR_COLORS[i % len(CHAR_COLORS)])
            ax.text(xi, scale * v + 1.0, f"{scale * v:.1f}", ha="center", va="bottom", fontsize=8)
        ax.text((x[0] + x[-1]) / 2, 104, CHAR_NAMES[name], ha="center", va="bottom", fontsize=11)
        if i < len(names) - 1:
            ax.axvline(x[-1] + 1, linewidth=1.2, color="gray", linestyle="dotted")
        xs += x
        ticks += labels
        cur = x[-1] + 2
    ax.set_xticks(xs, ticks)
    ax.set_xlim(-1, max(cur - 1, 1))
    ax.set_ylim(0, 112)
    return xs, ticks


def _fn_figure(d: dict):
    fig = _new_figure((10, 3.8))
    ax = fig.add_axes((0.08, 0.12, 0.9, 0.78))
    _characteristic_bars(ax, d["false_negative"], "false_negative_rate")
    ax.set_ylabel("False Negative (%)")
    ax.xaxis.set_tick_params(width=0)
    _style(ax)
    return fig


def _sensitivity_figure(d: dict):
    fig = _new_figure((14, 5))
    grid = fig.add_gridspec(1, 3, wspace=0.3, left=0.06, right=0.98, top=0.9, bottom=0.2)
    ax = fig.add_subplot(grid[0, :2])
    sens = d["sensitivity"]
    base = 100 * sens["base_average_mAP_N"]
    xs, _ = _characteristic_bars(ax, sens, "average_mAP_N")
    if xs:
        ax.plot([xs[0] - 1, xs[-1] + 1], [base, base], "--", color="k", linewidth=1.2)
        ax.text(xs[-1] + 0.5, base + 1.5, f"{base:.2f}", ha="right", fontsize=9)
    ax.set_ylabel("Average-mAP$_N$ (%)")
    ax.xaxis.set_tick_params(width=0)
    _style(ax)

    ax2 = fig.add_subplot(grid[0, 2])
    names = [n for n in CHAR_NAMES if n in sens]
    lows, highs = [], []
    for i, name in enumerate(names):
        vals = [v for v in sens[name]["average_mAP_N"].values() if v is not None]
        if not vals or base <= 0:
            continue
        lo, hi = 100 * min(vals) / base, 100 * max(vals) / base
        lows.append(lo)
        highs.append(hi)
        ax2.plot([i, i], [lo, hi], linestyle="-", marker="_", mew=4, markersize=22, lw=6,
                 color=CHAR_COLORS[i % len(CHAR_COLORS)])
        ax2.text(i + 0.12, lo, f"{lo:.1f}", fontsize=9, va="center")
        ax2.text(i + 0.12, hi, f"{hi:.1f}", fontsize=9, va="center")
    ax2.axhline(1.0, linestyle="--", color="k", linewidth=1.2, zorder=0)
    ax2.set_xticks(range(len(names)), [CHAR_NAMES[n] for n in names], rotation=90)
    ax2.set_xlim(-0.7, len(names) - 0.3)
    if lows:
        ax2.set_ylim(min(lows + [1.0]) * 0.8, max(highs + [1.0]) * 1.2)
    else:
        ax2.text(0.5, 0.5, "n/a (average-mAP$_N$ is 0)", ha="center", va="center", transform=ax2.transAxes)
    ax2.set_ylabel("Average-mAP$_N$\nRelative Change")
    ax2.yaxis.grid(True, linestyle="dotted")
    ax2.xaxis.grid(True, linestyle="dotted")
    ax2.set_axisbelow(True)
    return fig


_BUILDERS = {"false_positive_analysis": _fp_figure, "false_negative_analysis": _fn_figure,
             "sensitivity_analysis": _sensitivity_figure}


def _render(diagnosis: dict, fmt: str) -> dict[str, bytes]:
    import matplotlib
    out = {}
    with matplotlib.rc_context(_RC):
        for name in FIGURES:
            fig = _BUILDERS[name](diagnosis)
            buf = io.BytesIO()
            meta = {"Date": None} if fmt == "svg" else {"Software": None}
            fig.savefig(buf, format=fmt, dpi=120, bbox_inches="tight", metadata=meta)
            out[name] = buf.getvalue()
    return out


def render_figures(diagnosis: dict, formats=("png", "svg")) -> dict[str, bytes]:
    """Every figure drawn in memory: file name (``NAME.png``, ``NAME.svg``) -> bytes."""
    out = {}
    for fmt in formats:
        for name, data in _render(diagnosis, fmt).items():
            out[f"{name}.{fmt}"] = data
    return out


def write_figures(rendered: dict[str, bytes], out_dir) -> list[Path]:
    """Write :func:`render_figures`' output into ``out_dir``, each file atomically; returns the paths."""
    from ..core.io import atomic_path
    out_dir = Path(out_dir)
    paths = []
    for fname, data in rendered.items():
        path = out_dir / fname
        with atomic_path(path) as tmp:
            with open(tmp, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
        paths.append(path)
    return paths


def diagnosis_svgs(diagnosis: dict) -> dict[str, str]:
    """Figure name -> SVG text of each figure (for embedding in an HTML report)."""
    return {name: data.decode("utf-8") for name, data in _render(diagnosis, "svg").items()}


def plot_diagnosis(diagnosis: dict, out_dir) -> list[Path]:
    """Write every figure into ``out_dir`` as ``NAME.png`` and ``NAME.svg``; returns the paths written.

    All figures are drawn in memory first; each file is then written atomically.
    """
    return write_figures(render_figures(diagnosis), out_dir)
