"""``tadkit fit``: a folder of videos and a label sheet to a trained detector, in one command.

Steps (:func:`fit`):

1. Validate before writing anything: the output folder, the sheet (:mod:`tadkit.data.label_sheet`),
   the videos it names (durations measured), the split by video, the method's config and the
   ``key=value`` overrides. Every problem of the sheet is reported at once, on one line
   (:class:`~tadkit.core.errors.DataError`, exit 2), unless ``drop_defects`` drops the defective
   rows (and videos left without rows).
2. ``RUN_DIR/annotations.json``: the sheet in tadkit's ActivityNet-style format, with each
   video's duration and fps.
3. ``RUN_DIR/features/``: I3D features of the sheet's videos (:func:`~tadkit.engine.extract.extract_features`;
   resumable, so a rerun with the same settings reuses them).
4. ``RUN_DIR/config.yaml``: ``configs/<method>/custom.yaml`` adapted to the data, then the
   overrides. Comments at its top say what was chosen and why:

   - ``model.max_seq_len``: the longest video in feature steps, rounded up to a multiple of
     the detector's downsampling (``scale_factor ** branch_layers``: every pyramid level then
     has an integer length; the one-stage models pad to it themselves);
   - ``model.branch_layers`` / ``regression_ranges`` (one-stage detectors, unless overridden): the
     config's stride-tied ranges cut to the levels the data uses (:func:`_choose_levels`: the
     longest training action's level plus one, no level under two steps of the longest video, at
     least two), the top range left open-ended; the action lengths and per-level counts are noted;
   - ``test.tiou``: ``thumos14`` (0.3:0.7) when actions are short relative to their videos (the
     median action covers less than :data:`SHORT_ACTION` of its video, as in THUMOS14),
     else ``activitynet`` (0.5:0.95, actions that fill much of the video);
   - ``data.fps`` / ``feature_stride`` / ``feature_window`` null: ``features/features.json``
     gives the timing.
5. Train (:func:`tadkit.train`: checkpoints, ``predictions.json``, ``metrics.json``, ``report.html``).
6. A summary: the average mAP, per-class AP, the classes with fewer than :data:`FEW_EXAMPLES`
   training instances, and the ``tadkit detect`` command for new videos.
"""
from __future__ import annotations

import json
import math
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

from ..core.errors import ConfigError, DataError

__all__ = ["fit", "FitResult", "method_config", "label_format", "SHORT_ACTION", "FEW_EXAMPLES", "LABEL_FORMAT"]

SHORT_ACTION = 0.1      # median action length / video length below this: thumos14 tIoUs, else activitynet
FEW_EXAMPLES = 3        # classes with fewer training instances are reported "too few to learn"
LABEL_FORMAT = "label_sheet.json"   # the sheet's column names and delimiter, for detections written back


def label_format(sheet) -> dict:
    """How detections are written back in the sheet's manner: its column names (video, start, end, label),
    its delimiter (a semicolon kept, a tab made a comma: the file is a .csv), whether videos carry a
    suffix, and whether times were written as clock times (hh:mm:ss.ms) rather than seconds."""
    from ..data.label_sheet import _video_suffixes
    cols = {k: sheet.columns.get(k, k) for k in ("video", "start", "end", "label")}
    delimiter = ";" if sheet.format in ("csv", "tsv") and sheet.delimiter == ";" else ","
    with_suffix = any(Path(r.video).suffix.lower() in _video_suffixes() for r in sheet.rows)
    clock = sum(":" in str(r.start_text) for r in sheet.rows) > len(sheet.rows) / 2
    return {"columns": cols, "delimiter": delimiter, "video_with_suffix": with_suffix, "clock_times": clock,
            "format": sheet.format}


@dataclass
class FitResult:
    run_dir: Path
    config: Path
    checkpoint: Path | None
    metrics: dict | None
    per_class_ap: dict[str, float] = field(default_factory=dict)
    too_few: dict[str, int] = field(default_factory=dict)
    subsets: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    detect_command: str = ""
    summary: str = ""


def method_config(method: str) -> Path:
    """``configs/<method>/custom.yaml`` as shipped (:func:`tadkit.config.configs_dir`)."""
    from ..config import configs_dir
    root = configs_dir()
    p = root / method / "custom.yaml"
    if not p.is_file():
        known = sorted(d.name for d in root.iterdir() if (d / "custom.yaml").is_file()) if root.is_dir() else []
        raise ConfigError(f"no config for method {method!r}", path=p,
                          fix=f"use one of {', '.join(known)}" if known else "reinstall tadkit (its configs are missing)")
    return p


def _round_up(n: int, multiple: int) -> int:
    return max(multiple, int(math.ceil(n / multiple)) * multiple)


def _seq_multiple(params: dict) -> tuple[int, str]:
    """The multiple ``max_seq_len`` is rounded to, and why."""
    scale, branch = params.get("scale_factor"), params.get("branch_layers")
    if isinstance(scale, int) and isinstance(branch, int) and scale >= 1 and branch >= 0:
        return scale ** branch, f"a multiple of scale_factor**branch_layers = {scale}**{branch}"
    return 32, "a multiple of 32"


def _dropped_note(before, after, n_problems: int) -> str:
    """What ``--drop-defects`` left out: the sheet's line numbers and the videos."""
    kept = {r.line for r in after.rows}
    lines = sorted(r.line for r in before.rows if r.line not in kept)
    videos = [v for v in before.videos if v not in set(after.videos)]
    shown = ", ".join(map(str, lines[:20])) + (f" and {len(lines) - 20} more" if len(lines) > 20 else "")
    text = (f"--drop-defects: {n_problems} problem{'s' if n_problems > 1 else ''} in the label sheet; "
            f"left out {len(lines)} row{'s' if len(lines) != 1 else ''}" + (f" (line{'s' if len(lines) > 1 else ''} "
                                                                          f"{shown})" if lines else ""))
    if videos:
        text += f" and {len(videos)} video{'s' if len(videos) > 1 else ''} ({', '.join(videos[:10])}" + (
            f" and {len(videos) - 10} more)" if len(videos) > 10 else ")")
    return text


def _choose_levels(params: dict, action_steps: list[float], longest: int) -> tuple[dict, str] | None:
    """Fewer pyramid levels when the top ones would be idle: the level of the longest training action
    plus one level of headroom, and no level coarser than half the longest video (so every level has at
    least two steps); at least two levels. Returns the new ``branch_layers`` / ``regression_ranges`` and
    why, or None when the method has no regression ranges or nothing changes. The ranges keep the config's
    values (tied to each level's stride); the new top level stays open-ended."""
    ranges, branch = params.get("regression_ranges"), params.get("branch_layers")
    scale = params.get("scale_factor", 2)
    if not ranges or not isinstance(branch, int) or len(ranges) != branch + 1 or not action_steps:
        return None
    scale = scale if isinstance(scale, int) and scale >= 2 else 2
    k0 = len(ranges)
    counts = [0] * k0
    for n in action_steps:
        counts[next((i for i, (lo, hi) in enumerate(ranges) if lo <= n < hi), k0 - 1)] += 1
    top_action = max(i for i, c in enumerate(counts) if c)
    by_video = 1 + max(0, int(math.floor(math.log(max(longest, 1) / 2, scale) + 1e-9)))
    k = max(2, min(k0, top_action + 2, by_video))
    split = params.get("gam_split")              # AMNet: levels in G_short; G_long needs one more
    if isinstance(split, int) and split >= 1:
        k = max(k, split + 1)
    lengths = sorted(action_steps)
    seen = (f"training actions last {lengths[0]:.1f}-{lengths[-1]:.1f} feature steps (median "
            f"{statistics.median(lengths):.1f}); per level of {ranges}: {counts}")
    if k >= k0:
        return None
    new = [list(r) for r in ranges[:k]]
    new[-1][1] = ranges[-1][1]
    cut = {"branch_layers": k - 1, "regression_ranges": new}
    window = params.get("window_size")
    if isinstance(window, (list, tuple)) and len(window) == k0:   # one attention window per level
        cut["window_size"] = list(window[:k])
    reasons = []
    if k == top_action + 2:
        reasons.append("the longest action's level and one above")
    if k == by_video:
        reasons.append(f"a level of stride {scale ** k} would have under 2 steps of the longest video ({longest})")
    return (cut, f"{k} pyramid levels of {k0} ({'; '.join(reasons) or 'at least two'}): {seen}")


def _choose_tiou(ann: dict) -> tuple[str, str]:
    ratios = [(a["segment"][1] - a["segment"][0]) / v["duration"]
              for v in ann["database"].values() if v["duration"] > 0 for a in v["annotations"]]
    if not ratios:
        return "activitynet", "no actions to measure"
    med = statistics.median(ratios)
    preset = "thumos14" if med < SHORT_ACTION else "activitynet"
    return preset, (f"the median action covers {med:.1%} of its video "
                    f"({'<' if med < SHORT_ACTION else '>='} {SHORT_ACTION:.0%})")


def fit(video_dir, labels, out, *, method: str = "asl", val_fraction: float = 0.2, seed: int = 0,
        drop_defects: bool = False, overrides: Iterable[str] = (), weights=None, short_side: int | None = 256,
        crop: int | None = 224, progress: bool = True, extract_model=None, feature_cache=None,
        echo=print) -> FitResult:
    """Label sheet + videos -> annotations, features, config, trained detector (see the module docstring).

    ``feature_cache``: the folder of :class:`~tadkit.engine.feature_cache.FeatureCache` (None: the default,
    ``$TADKIT_HOME/features``; False: none). Under ``torchrun`` the extraction and the training are shared
    between the processes and rank 0 writes the files.
    """
    overrides = list(overrides)
    ctx = _join_processes()
    try:
        return _fit(ctx, video_dir, labels, out, method=method, val_fraction=val_fraction, seed=seed,
                    drop_defects=drop_defects, overrides=overrides, weights=weights, short_side=short_side,
                    crop=crop, progress=progress, extract_model=extract_model, feature_cache=feature_cache,
                    echo=echo)
    finally:
        ctx.close()


def _join_processes():
    """The process group under ``torchrun`` (extraction and training share it), else one process."""
    import os

    from .distributed import DistContext, init_distributed
    return init_distributed() if int(os.environ.get("WORLD_SIZE", "1")) > 1 else DistContext()


def _fit(ctx, video_dir, labels, out, *, method, val_fraction, seed, drop_defects, overrides, weights, short_side,
         crop, progress, extract_model, feature_cache, echo) -> FitResult:
    from .. import api
    from ..core.io import atomic_write_json, atomic_write_text, check_output_dir, read_json
    from ..data.label_sheet import (_video_id, apply_problems, check_against_videos, match_videos,
                                    read_label_sheet, split_by_video, to_annotations, video_durations)
    from ..data.video import probe_video
    from .extract import _settings, extract_features
    from .feature_cache import FeatureCache, backbone_identity, default_root

    main = ctx.is_main
    # -- 1. validate: nothing is written before this passes ------------------------------------
    run = check_output_dir(out, "--out")
    if (run / "predictions.json").exists() and (run / "checkpoints" / "last.pt").exists():
        raise ConfigError("--out already holds a finished run", path=run,
                          fix="choose another --out (a run folder whose training did not finish is resumed, "
                              "its features reused)")
    resume = (run / "checkpoints" / "last.pt").exists()   # stopped during training: go on from its last epoch
    base = method_config(method)
    cfg0 = api.load_config(base, overrides)          # bad keys / values fail now, not after extraction
    sheet = read_label_sheet(labels)
    durations, _ = video_durations(sheet, video_dir)
    problems = check_against_videos(sheet, video_dir, durations=durations)
    original = sheet
    sheet = apply_problems(sheet, problems, drop_defects=drop_defects)
    notes: list[str] = []
    if problems:
        notes.append(_dropped_note(original, sheet, len(problems)))
    if not sheet.labels:
        raise DataError("the label sheet has no labelled action left", path=labels,
                        fix="label at least one action (a class needs examples to be learnt)")
    subsets = split_by_video(sheet, val_fraction=val_fraction, seed=seed)
    if "training" not in subsets.values():
        raise DataError("no training video: every video is in the validation or test subset", path=labels,
                        fix="lower --val-fraction or put videos in the training subset")
    files, _ = match_videos(sheet, video_dir)
    ann = to_annotations(sheet, subsets, durations)
    for v, f in files.items():
        try:
            ann["database"][_video_id(v)]["fps"] = float(probe_video(f).fps)
        except DataError:
            pass
    ids = {_video_id(v): f.stem for v, f in files.items()}       # annotation id -> feature file id
    for i, stem in ids.items():
        if i != stem:
            raise DataError(f"video {i!r} is the file {stem!r} under another name", path=labels,
                            fix="write the file name (a.mp4) or its stem (a) in the video column")
    test_subset = "validation" if "validation" in subsets.values() else (
        "testing" if "testing" in subsets.values() else "training")
    if test_subset != "validation":
        notes.append(f"no validation video: evaluated on the {test_subset} subset")
    if weights is None and extract_model is None:
        from .weights import default_weights
        weights = default_weights("i3d")             # not fetched yet: one line naming `tadkit weights i3d`
    extraction = {"endpoint": "Mixed_5c", "fps": None, "stride": 4, "window": 16, "short_side": short_side,
                  "crop": crop}                      # extract_features' settings, which also key the cache
    cache = None
    if feature_cache is not False:
        cache = FeatureCache(feature_cache or default_root(), _settings(**extraction),
                             backbone_identity(weights, extract_model))

    # -- 2. annotations --------------------------------------------------------------------------
    if main:
        run.mkdir(parents=True, exist_ok=True)
        atomic_write_json(run / "annotations.json", ann)
        atomic_write_json(run / LABEL_FORMAT, label_format(sheet))    # how `tadkit detect --run` writes its CSV

    # -- 3. features (resumable; from the cache when extracted before) ---------------------------
    feat_dir = run / "features"
    wanted = {f.stem: f for f in files.values()}       # feature id -> video file
    cached = cache.fetch(wanted, feat_dir) if cache is not None and main else []
    ctx.barrier()
    res = extract_features(video_dir, weights, feat_dir, videos=sorted(ids.values()), progress=progress,
                           model=extract_model, **extraction)
    if cached:
        notes.append(f"took the features of {len(cached)} videos from the feature cache ({cache.dir})")
    resumed = len(res.skipped) - len(cached)
    if resumed > 0:
        notes.append(f"reused the features of {resumed} videos already in {feat_dir}")
    if cache is not None and main:
        cache.store(wanted, feat_dir)
    meta = read_json(feat_dir / "features.json", "features.json")
    longest = max(int(meta["videos"][i]["num_features"]) for i in ids.values())

    # -- 4. config -------------------------------------------------------------------------------
    params = dict(cfg0.model.params)                 # the user's architecture sets the multiple
    level_keys = ("model.branch_layers=", "model.regression_ranges=", "model.scale_factor=")
    levels = None
    if not any(o.startswith(level_keys) for o in overrides):
        steps = []                                   # training actions in feature steps
        for i, v in ann["database"].items():
            if v["subset"] == "training" and v["duration"] > 0:
                rate = int(meta["videos"][ids[i]]["num_features"]) / float(v["duration"])
                steps += [(a["segment"][1] - a["segment"][0]) * rate for a in v["annotations"]]
        levels = _choose_levels(params, steps, longest)
    level_opts = []
    if levels is not None:
        params.update(levels[0])
        level_opts = [f"model.{k}={json.dumps(v)}" for k, v in levels[0].items()]
    multiple, why = _seq_multiple(params)
    seq = _round_up(longest, multiple)
    tiou, tiou_why = _choose_tiou(ann)
    chosen = [f"data.annotations={run / 'annotations.json'}", f"data.features={feat_dir}",
              f"data.test_subset={test_subset}", "data.fps=null", "data.feature_stride=null",
              "data.feature_window=null", *level_opts, f"model.max_seq_len={seq}", f"test.tiou={tiou}",
              f"output_dir={run}"]
    keep_note = []
    if not any(o.startswith("train.keep_checkpoints=") for o in overrides):
        chosen.append("train.keep_checkpoints=1")
        keep_note = ["train.keep_checkpoints 1: of the epoch checkpoints only the newest is kept, besides "
                     "last.pt and best.pt (a full-size checkpoint takes about 300 MB)"]
    cfg = api.load_config(base, chosen + overrides)
    n_train = sum(s == "training" for s in subsets.values())
    n_val = sum(s == test_subset for s in subsets.values()) if test_subset != "training" else 0
    comments = [
        f"tadkit fit: {method} on {len(ids)} videos of {labels} ({n_train} training, {n_val} {test_subset}; "
        f"split by video, seed {seed})",
        f"from {base}",
        f"max_seq_len {seq}: the longest video has {longest} feature steps ({why})",
        f"test.tiou {tiou}: {tiou_why}",
        *([f"branch_layers / regression_ranges: {levels[1]}"] if levels is not None else []),
        "data.fps, feature_stride, feature_window null: features/features.json gives the timing",
        *keep_note,
        *notes,
    ]
    if overrides:
        comments.append("then the overrides: " + " ".join(overrides))
        if any(o.startswith("model.max_seq_len=") for o in overrides):
            comments.append("(model.max_seq_len was overridden)")
        if any(o.startswith("test.tiou=") for o in overrides):
            comments.append("(test.tiou was overridden)")
    header = "".join(f"# {c}\n" for c in comments)
    cfg_path = run / "config.yaml"
    if main:
        atomic_write_text(cfg_path, header + cfg.to_yaml())

    # -- 5. train --------------------------------------------------------------------------------
    if resume:
        notes.append(f"resumed the training stopped in {run} (checkpoints/last.pt)")
    result = api.train(cfg, resume=resume)
    if main:
        atomic_write_text(cfg_path, header + cfg.to_yaml())      # the trainer writes its own, without comments

    # -- 6. summary ------------------------------------------------------------------------------
    ckpt = run / "checkpoints" / "best.pt"
    if not ckpt.exists():
        ckpt = run / "checkpoints" / "last.pt"
    metrics = result.metrics
    if metrics is None and (run / "metrics.json").exists():
        metrics = read_json(run / "metrics.json", "metrics.json")
    per_class = {}
    if metrics:
        per_class = {c: float(sum(v) / len(v)) for c, v in metrics.get("per_class_AP", {}).items() if v}
    counts = {c: 0 for c in ann["classes"]}
    for v in ann["database"].values():
        if v["subset"] == "training":
            for a in v["annotations"]:
                counts[a["label"]] += 1
    too_few = {c: n for c, n in counts.items() if n < FEW_EXAMPLES}
    detect = f"tadkit detect VIDEO... --run {run}"
    lines = [f"tadkit fit: trained {cfg.model.name} in {run}"]
    lines += [f"  note: {n}" for n in notes]
    if metrics:
        lines.append(f"average mAP ({test_subset}, tIoU {tiou}) of the final weights: "
                     f"{metrics.get('average_mAP', float('nan')):.4f} (metrics.json, predictions.json)")
        if result.best and ckpt.name == "best.pt":
            lines.append(f"best epoch {result.best['epoch']}: {result.best['average_mAP']:.4f} "
                         f"(checkpoints/best.pt, which tadkit detect --run uses; chosen on the {test_subset} "
                         "videos, so this figure is optimistic)")
        lines.append("per-class AP (averaged over tIoUs):")
        lines += [f"  {c:<24} {ap:.4f}" + (f"   ({counts.get(c, 0)} training examples: too few to learn)"
                                           if c in too_few else "") for c, ap in per_class.items()]
    else:
        lines.append(f"no metrics: the {test_subset} subset has no ground truth")
    if too_few:
        lines.append("too few to learn (< %d training examples): %s" % (
            FEW_EXAMPLES, ", ".join(f"{c} ({n})" for c, n in too_few.items())))
    if (run / "report.html").exists():
        lines.append(f"the run on one page: {run / 'report.html'}")
    lines.append(f"to detect actions in new videos:\n  {detect}")
    summary = "\n".join(lines)
    if echo is not None and main:
        echo(summary)
    return FitResult(run, cfg_path, ckpt if ckpt.exists() else None, metrics, per_class, too_few, subsets, notes,
                     detect, summary)
