"""Methods and their ablations side by side on one synthetic dataset, at a width a CPU trains in minutes.

Every run starts from ``configs/<method>/custom.yaml`` (what a user starts from) with three kinds
of override: the data paths and timing of the synthetic set; a common small scale (``--width``
channels, windows of ``max_seq_len`` steps); and the training schedule of ``configs/asl/demo.yaml``
(``--epochs``, batch 4, lr 1e-3, 2 warm-up epochs, EMA with warm-up) for every method alike.
A variant adds its own switches (e.g. ``amnet-no-ame``: ``model.ame=false``). Each run trains,
predicts the validation subset and evaluates it (tIoU 0.3:0.7, THUMOS14's); the table prints
average mAP, mAP at 0.5, training seconds and inference seconds per video.

    python benchmarks/synthetic_accuracy.py [--runs actionformer,asl,...] [--videos 80] [--noise 0.7]
        [--epochs 24] [--width 64] [--seeds 0] [--threads N] [--out RESULTS.json] [--keep DIR]
    python benchmarks/synthetic_accuracy.py --list     # the known runs

The table also goes to ``benchmarks/results/synthetic_accuracy.json`` (``--results``), one row per run
and seed, written after each run: rows are keyed by run name, seed and the options that change the
result (``--videos``, ``--noise``, ``--epochs``, ``--width`` and the switches below, where not at their
defaults) and merged into the file, so rows of other runs, seeds or options stay. Each row keeps the
commit, start date and thread count of the command that produced it.

Options that leave the default behaviour alone:

* ``--multilabel``: multi-label data (``make_synthetic(multilabel=True)``: every class its own
  track, overlapping instances, MultiTHUMOS-like); every run is then evaluated at tIoU 0.1:0.9
  (``test.tiou=multithumos``) and also reports segmentation (frame) mAP (``test.segmentation=true``;
  a detector without a dense head is ranked by its spread detections alone).
* ``--query-width``: also scale the query-based detectors to ``--width`` (``QUERY_SCALE``: d = w,
  their FFN and dynamic widths in the ratios of their configs); without it they keep the widths of
  their ``custom.yaml`` (256 / 512), which a CPU trains an order of magnitude slower.
* ``--train-map``: also predict and evaluate the training subset (average mAP; overfitting shows).
* ``--own-schedule``: every run keeps its config's own training schedule (epochs, batch, learning rate,
  warm-up, EMA and ``train.cpu_amp``) instead of the common one; ``--epochs`` still overrides the epochs
  if given. The official release's model then trains with ``configs/actionformer/custom.yaml``'s
  schedule, which is its THUMOS14 one (batch 2, lr 1e-4, 5 + 30 epochs), in float32 as released. This is
  the comparison at full width (``--width 512``): the common schedule is tuned for 64 channels.

Synthetic data is easy to overfit and nothing like a benchmark: the numbers rank methods on
one controlled problem and show each switch's effect there; they say nothing about THUMOS14.
"""
from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import statistics
import sys
import tempfile
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
sys.path.insert(0, os.path.join(ROOT, "src"))

import _results  # noqa: E402  # benchmarks/_results.py (the script's folder is on sys.path)

# Small-scale width overrides per method ({w} = --width); window lengths in feature steps.
SCALE = {
    "actionformer": ["model.embed_dim={w}", "model.fpn_dim={w}", "model.head_dim={w}", "model.max_seq_len=1024"],
    "asl": ["model.embed_dim={w}", "model.fpn_dim={w}", "model.head_dim={w}", "model.evaluator_dim={h}",
            "model.max_seq_len=1024"],
    "amnet": ["model.embed_dim={w}", "model.fpn_dim={w}", "model.head_dim={w}", "model.ame_dim={w}",
              "model.max_seq_len=1024"],
    "tags": ["model.embed_dim={w}", "model.mask_dim={w}"],   # custom.yaml's windows of 512 steps
    "official_actionformer": ["model.width={w}", "model.max_seq_len=1152"],   # a multiple of 576, see below
    "sptad": ["model.max_seq_len=256"],
}
# --query-width: the query-based detectors at width w, FFN and dynamic widths in their configs' ratios
# (SP-TAD 256 / 2048 / 64: {f8} = 8w, {d4} = w/4; PointTAD 512 / 2048 / 64: {f4} = 4w, {d8} = w/8).
QUERY_SCALE = {
    "sptad": ["model.stage_dim={w}", "model.hidden_dim={w}", "model.ffn_dim={f8}", "model.dynamic_dim={d4}"],
    "pointtad": ["model.hidden_dim={w}", "model.ffn_dim={f4}", "model.dynamic_dim={d8}"],
}
# Runs: name -> (method, extra overrides). Ablations switch one module off at a time.
RUNS = {
    "actionformer": ("actionformer", []),
    "asl": ("asl", []),
    "asl-no-ase-class": ("asl", ["model.ase_class=false"]),
    "asl-no-ase-instance": ("asl", ["model.ase_instance=false"]),
    "asl-no-ascl": ("asl", ["model.ascl=false"]),
    "asl-ascl-background": ("asl", ["model.ascl_negatives=background"]),
    "asl-cpu-amp": ("asl", ["train.cpu_amp=true"]),   # bfloat16 autocast in training on the CPU
    "asl-all-off": ("asl", ["model.ase_class=false", "model.ase_instance=false", "model.ascl=false",
                            "model.channel_attention_theta=0"]),
    "amnet": ("amnet", []),
    "amnet-no-ame": ("amnet", ["model.ame=false"]),
    "amnet-no-gam": ("amnet", ["model.gam=false"]),
    "amnet-no-matching": ("amnet", ["model.matching_head=false"]),
    "amnet-all-off": ("amnet", ["model.ame=false", "model.gam=false", "model.matching_head=false"]),
    "amnet-two-phase": ("amnet", ["model.two_phase=true"]),
    "amnet-paper": ("amnet", ["model.two_phase=true", "model.gam_position=false"]),
    "tags": ("tags", []),
    "tags-single-scale": ("tags", ["model.scales=[1]"]),
    "tags-cnn": ("tags", ["model.embedding=cnn"]),
    "tags-no-mask": ("tags", ["model.mask_branch=none"]),
    "tags-actionness": ("tags", ["model.mask_branch=actionness"]),
    "official-actionformer": ("official_actionformer", []),   # needs --official DIR
    "sptad": ("sptad", []),
    "pointtad": ("pointtad", []),
    "pointtad-eos03": ("pointtad", ["model.eos_coef=0.3"]),
    "pointtad-detach": ("pointtad", ["model.detach_points=true"]),
    "pointtad-lr2e-4": ("pointtad", ["train.lr=2e-4"]),   # custom.yaml's rate under the common schedule
    "pointtad-lr5e-4": ("pointtad", ["train.lr=5e-4"]),   # custom.yaml's own schedule (SCHEDULE sets 1e-3)
    "pointtad-jitter": ("pointtad", ["data.train_window_jitter=true"]),
    "pointtad-iou-target": ("pointtad", ["model.class_target=iou"]),
    "pointtad-focal": ("pointtad", ["model.class_loss=focal", "model.ce_weight=0.2"]),   # class weight 10 x 0.2 = 2
}
# float32 training: at these widths bfloat16 is slower on the CPU (the configs' cpu_amp: auto is for
# their full widths); the asl-cpu-amp run turns it on
SCHEDULE = ["train.batch_size=4", "train.lr=1e-3", "train.warmup_epochs=2", "train.ema_warmup=true",
            "train.eval_every=0", "train.progress=false", "test.tiou=thumos14", "train.cpu_amp=false"]
# --own-schedule: only what every run needs; the official model trains in float32, as released
OWN_SCHEDULE = ["train.eval_every=0", "train.progress=false", "test.tiou=thumos14"]
OFFICIAL_OWN = ["train.cpu_amp=false"]
# --multilabel: MultiTHUMOS' tIoU set and segmentation mAP, after SCHEDULE (so they win).
MULTILABEL_TEST = ["test.tiou=multithumos", "test.segmentation=true"]
# Set by main() from the flags (run_one reads them, so its signature stays that of the default mode).
OPTIONS = {"multilabel": False, "query_width": False, "train_map": False, "own_schedule": False}


# ---------------------------------------------------------------------------- the official release
OFFICIAL_DIR = None   # --official: a checkout of happyharrycn/actionformer_release


class OfficialActionFormer:
    """The official release's ``LocPointTransformer`` (model and loss, its THUMOS14 settings at a chosen
    width) behind tadkit's detector contract, so that it trains in the same loop on the same batches.

    Training calls the release's own forward (its preprocessing pads to ``max_seq_len``, which must be
    a multiple of 2**5 * 19 // 2 * 2 = 576). The measurement copy of the release has no inference, and
    its NMS is a C++ extension; prediction therefore runs the release's backbone, neck and heads and
    decodes their outputs with tadkit's ActionFormer decoding (threshold 0.001, top 2,000 per level,
    segments shorter than 0.05 steps dropped: the release's test settings), then tadkit's Soft-NMS.
    """

    @staticmethod
    def make(num_classes: int, input_dim: int, max_seq_len: int, width: int = 512):
        import torch
        from torch import nn

        from tadkit.models.detectors.actionformer import ActionFormer
        sys.path.insert(0, OFFICIAL_DIR)
        from libs.modeling import make_meta_arch  # type: ignore
        cfg = dict(
            backbone_type="convTransformer", fpn_type="identity", backbone_arch=(2, 2, 5), scale_factor=2,
            input_dim=input_dim, max_seq_len=max_seq_len, max_buffer_len_factor=6.0, n_head=4,
            n_mha_win_size=19, embd_kernel_size=3, embd_dim=width, embd_with_ln=True, fpn_dim=width,
            fpn_with_ln=True, head_dim=width, head_num_layers=3, head_kernel_size=3, head_with_ln=True,
            regression_range=[(0, 4), (4, 8), (8, 16), (16, 32), (32, 64), (64, 10000)],
            use_abs_pe=False, use_rel_pe=False, num_classes=num_classes,
            train_cfg=dict(center_sample="radius", center_sample_radius=1.5, loss_weight=1.0, cls_prior_prob=0.01,
                           init_loss_norm=100, clip_grad_l2norm=1.0, head_empty_cls=[], dropout=0.0,
                           droppath=0.1, label_smoothing=0.0),
            test_cfg=dict(pre_nms_thresh=0.001, pre_nms_topk=2000, iou_threshold=0.1, min_score=0.001,
                          max_seg_num=200, nms_method="soft", nms_sigma=0.5, duration_thresh=0.05,
                          multiclass_nms=False, ext_score_file=None, voting_thresh=0.7))

        class Adapter(nn.Module):
            decode = ActionFormer.decode

            def __init__(self):
                super().__init__()
                try:
                    self.net = make_meta_arch("LocPointTransformer", fpn_start_level=0, **cfg)
                except TypeError:   # releases before fpn_start_level
                    self.net = make_meta_arch("LocPointTransformer", **cfg)
                self.num_classes, self.pre_nms_topk, self.pre_nms_thresh, self.duration_thresh = \
                    num_classes, 2000, 0.001, 0.05

            def forward(self, batch):
                lengths = batch["masks"].sum(1).tolist()
                videos = [{"feats": batch["feats"][b, :, :n], "segments": batch["segments"][b].float(),
                           "labels": batch["labels"][b]} for b, n in enumerate(lengths)]
                out = self.net(videos)
                return {"loss": out["final_loss"], "cls_loss": out["cls_loss"], "reg_loss": out["reg_loss"]}

            @torch.no_grad()
            def predict(self, batch):
                net, feats, masks = self.net, batch["feats"], batch["masks"]
                pad = -feats.shape[2] % net.max_div_factor
                feats = torch.nn.functional.pad(feats * masks[:, None], (0, pad))       # (B, C, T')
                masks = torch.nn.functional.pad(masks, (0, pad), value=False)[:, None]  # (B, 1, T')
                fpn_feats, fpn_masks = net.neck(*net.backbone(feats, masks))
                cls = torch.cat([x.permute(0, 2, 1) for x in net.cls_head(fpn_feats, fpn_masks)], 1)  # (B, P, K)
                off = torch.cat([x.permute(0, 2, 1) for x in net.reg_head(fpn_feats, fpn_masks)], 1)  # (B, P, 2)
                fpn_masks = [m.squeeze(1) for m in fpn_masks]
                points = torch.cat([torch.stack([torch.arange(m.shape[1]) * 2.0 ** l, torch.zeros(m.shape[1]),
                                                 torch.zeros(m.shape[1]), torch.full((m.shape[1],), 2.0 ** l)], 1)
                                    for l, m in enumerate(fpn_masks)])                   # (P, 4): t, -, -, stride
                return self.decode({"points": points, "cls_logits": cls, "offsets": off, "fpn_masks": fpn_masks,
                                    "valid": torch.cat(fpn_masks, 1)})

        return Adapter()


def register_official(directory: str) -> None:
    """Make ``model.name: official_actionformer`` buildable by tadkit's registry (this process only)."""
    import types

    import tadkit.models as models
    global OFFICIAL_DIR
    OFFICIAL_DIR = os.path.abspath(directory)

    class Official:   # the registry reads the constructor's signature
        def __new__(cls, num_classes, input_dim, max_seq_len, width=512):
            return OfficialActionFormer.make(num_classes, input_dim, max_seq_len, width)

        def __init__(self, num_classes, input_dim, max_seq_len, width=512):
            pass
    module = types.ModuleType("tadkit.models.detectors.official_actionformer")
    module.DETECTOR = Official
    sys.modules[module.__name__] = module
    names = models.available_detectors
    models.available_detectors = lambda: sorted(names() + ["official_actionformer"])


def run_one(name: str, data: str, out: str, epochs: int | None, width: int, seed: int, timing: dict) -> dict:
    from tadkit import api
    method, extra = RUNS[name]
    schedule = ((OWN_SCHEDULE + (OFFICIAL_OWN if method == "official_actionformer" else []))
                if OPTIONS["own_schedule"] else SCHEDULE + [f"train.epochs={epochs or 24}"])
    overrides = ([f"data.annotations={data}/annotations.json", f"data.features={data}/features"]
                 + [f"data.{k}={v}" for k, v in timing.items()]
                 + [o.format(w=width, h=max(width // 2, 8)) for o in SCALE.get(method, [])]
                 + (_query_scale(method, width) if OPTIONS["query_width"] else [])
                 + schedule + (MULTILABEL_TEST if OPTIONS["multilabel"] else [])
                 + ([f"train.epochs={epochs}"] if epochs else [])
                 + [f"train.seed={seed}", f"output_dir={out}"] + extra)
    source = os.path.join(ROOT, "configs", method, "custom.yaml")
    if method == "official_actionformer":   # the actionformer config's data/train/test, the release's model
        import yaml
        with open(os.path.join(ROOT, "configs", "actionformer", "custom.yaml")) as f:
            source = {**yaml.safe_load(f), "model": {"name": "official_actionformer"}}
    cfg = api.load_config(source, overrides)
    t0 = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()):
        result = api.train(cfg)
    train_s = time.perf_counter() - t0
    ckpt = os.path.join(out, "checkpoints", "last.pt")
    t0 = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()):
        preds = api.predict(cfg, ckpt)
    results = preds.get("results", preds) if isinstance(preds, dict) else preds
    infer_s = (time.perf_counter() - t0) / max(len(results), 1)
    m = result.metrics
    row = {"run": name, "seed": seed, "average_mAP": m["average_mAP"], "mAP": m["mAP"], "tiou": m["tiou"],
           "train_s": train_s, "infer_s_per_video": infer_s}
    if "segmentation_mAP" in m:
        row["segmentation_mAP"] = m["segmentation_mAP"]
    if OPTIONS["train_map"]:
        with contextlib.redirect_stdout(io.StringIO()):
            train_preds = api.predict(cfg, ckpt, subset=cfg.data.train_subset)
            tm = api.evaluate(cfg.data.annotations, train_preds, subset=cfg.data.train_subset, tiou=cfg.test.tiou)
        row["train_average_mAP"] = tm["average_mAP"]
    return row


def _query_scale(method: str, width: int) -> list[str]:
    return [o.format(w=width, f8=8 * width, f4=4 * width, d4=max(width // 4, 4), d8=max(width // 8, 4))
            for o in QUERY_SCALE.get(method, [])]


# the options that change a run's numbers, in the results file's row key when not at their defaults
RESULT_OPTIONS = ("videos", "noise", "epochs", "width", "multilabel", "query_width", "train_map", "own_schedule")
RESULT_COLUMNS = ("run", "seed", "options", "average_mAP_pct", "mAP_at_0.5_pct", "segmentation_mAP_pct",
                  "train_average_mAP_pct", "train_s", "infer_ms_per_video", "threads", "commit", "date")


def result_options(ap: argparse.ArgumentParser, args: argparse.Namespace) -> str:
    """The options of ``RESULT_OPTIONS`` not at their defaults, as command-line flags ("" for none)."""
    out = []
    for dest in RESULT_OPTIONS:
        value = getattr(args, dest)
        if value == ap.get_default(dest):
            continue
        flag = "--" + dest.replace("_", "-")
        out.append(flag if value is True else f"{flag} {value}")
    return " ".join(out)


def save_results(path, per_seed: list[dict], options: str, threads: int) -> None:
    """Merge ``per_seed`` into the results file: a row replaces the one of the same run, seed and options."""
    meta = _results.metadata_for("synthetic_accuracy", threads=threads)
    new = []
    for r in per_seed:
        at5 = r["mAP"][r["tiou"].index(0.5)] if 0.5 in r["tiou"] else None
        row = {"run": r["run"], "seed": r["seed"], "options": options, "average_mAP_pct": 100 * r["average_mAP"],
               "mAP_at_0.5_pct": None if at5 is None else 100 * at5, "train_s": r["train_s"],
               "infer_ms_per_video": 1000 * r["infer_s_per_video"], "threads": threads,
               "commit": meta["commit"], "date": meta["date"]}
        if "segmentation_mAP" in r:
            row["segmentation_mAP_pct"] = 100 * r["segmentation_mAP"]
        if "train_average_mAP" in r:
            row["train_average_mAP_pct"] = 100 * r["train_average_mAP"]
        new.append(row)

    def key(row):
        return row["run"], row["seed"], row.get("options", "")
    replaced = {key(r) for r in new}
    old = (_results.load(path) or {}).get("rows", [])
    order = {name: i for i, name in enumerate(RUNS)}
    rows = sorted([r for r in old if key(r) not in replaced] + new,
                  key=lambda r: (r.get("options", ""), order.get(r["run"], len(order)), r["run"], r["seed"]))
    present = set().union(*rows)
    _results.save("synthetic_accuracy", rows, path, threads=threads,
                  columns=[c for c in RESULT_COLUMNS if c in present],
                  setting="average mAP (%) over the evaluation's tIoU thresholds, mAP at tIoU 0.5 (%), training "
                          "seconds, inference ms per video; rows merged across commands, keyed by run, seed and "
                          "options, each with its own commit, date and threads")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", default="actionformer,asl,amnet,tags", help="comma-separated run names (--list)")
    ap.add_argument("--list", action="store_true", help="print the known runs and exit")
    ap.add_argument("--videos", type=int, default=80)
    ap.add_argument("--noise", type=float, default=0.7, help="synthetic noise scale (1 = tadkit synth's default)")
    ap.add_argument("--epochs", type=int, default=None, help="default 24 (with --own-schedule: each config's)")
    ap.add_argument("--width", type=int, default=64)
    ap.add_argument("--seeds", default="0", help="comma-separated training seeds (the data is fixed)")
    ap.add_argument("--official", metavar="DIR", help="checkout of the official ActionFormer release "
                    "(for the run official-actionformer)")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--out", metavar="JSON", help="also write the results here")
    ap.add_argument("--multilabel", action="store_true", help="multi-label data; tIoU 0.1:0.9 and segmentation mAP")
    ap.add_argument("--query-width", action="store_true", help="scale sptad / pointtad to --width as well")
    ap.add_argument("--train-map", action="store_true", help="also report average mAP on the training videos")
    ap.add_argument("--own-schedule", action="store_true", help="each config's own training schedule")
    ap.add_argument("--keep", metavar="DIR", help="keep the data and runs here (default: a temporary folder)")
    _results.add_results_argument(ap, "synthetic_accuracy")
    args = ap.parse_args()
    if args.list:
        for name, (method, extra) in RUNS.items():
            print(f"{name:22s} {method:13s} {' '.join(extra)}")
        return
    runs = [r.strip() for r in args.runs.split(",") if r.strip()]
    unknown = [r for r in runs if r not in RUNS]
    if unknown:
        ap.error(f"unknown runs {unknown}; --list shows the known ones")
    if "official-actionformer" in runs:
        if not args.official or not os.path.isdir(os.path.join(args.official, "libs", "modeling")):
            ap.error("official-actionformer needs --official DIR, a checkout with libs/modeling")
        register_official(args.official)
    missing = sorted({RUNS[r][0] for r in runs if RUNS[r][0] != "official_actionformer" and not os.path.exists(os.path.join(ROOT, "configs", RUNS[r][0],
                                                                                   "custom.yaml"))})
    if missing:
        ap.error(f"no configs/<method>/custom.yaml for {missing}")
    import torch
    if args.threads:
        torch.set_num_threads(args.threads)
    from tadkit.data.synthetic import make_synthetic

    work = args.keep or tempfile.mkdtemp(prefix="tadkit_acc_")
    data = os.path.join(work, "data")
    OPTIONS.update(multilabel=args.multilabel, query_width=args.query_width, train_map=args.train_map,
                   own_schedule=args.own_schedule)
    meta = make_synthetic(data, videos=args.videos, seed=0, noise_scale=args.noise, multilabel=args.multilabel)
    timing = {"fps": meta["fps"], "feature_stride": meta["feature_stride"], "feature_window": meta["feature_window"]}
    seeds = [int(s) for s in args.seeds.split(",")]
    print(f"{args.videos} {'multi-label ' if args.multilabel else ''}synthetic videos (noise {args.noise}), "
          f"{args.epochs or ('own' if args.own_schedule else 24)} epochs, width {args.width}{' (query detectors too)' if args.query_width else ''}, "
          f"seeds {seeds}, torch threads {torch.get_num_threads()}\n", flush=True)
    rows, results = [], []
    for name in runs:
        per_seed = [run_one(name, data, os.path.join(work, f"{name}_s{s}"), args.epochs, args.width, s, timing)
                    for s in seeds]
        results += per_seed
        avg = [r["average_mAP"] for r in per_seed]
        at5 = [r["mAP"][r["tiou"].index(0.5)] if 0.5 in r["tiou"] else float("nan") for r in per_seed]
        spread = f" ± {statistics.stdev(avg) * 100:.1f}" if len(avg) > 1 else ""
        rows.append([name, f"{100 * statistics.mean(avg):.1f}{spread}", f"{100 * statistics.mean(at5):.1f}"]
                    + ([f"{100 * statistics.mean(r['segmentation_mAP'] for r in per_seed):.1f}"]
                       if args.multilabel else [])
                    + ([f"{100 * statistics.mean(r['train_average_mAP'] for r in per_seed):.1f}"]
                       if args.train_map else [])
                    + [f"{statistics.mean(r['train_s'] for r in per_seed):.0f}",
                       f"{1000 * statistics.mean(r['infer_s_per_video'] for r in per_seed):.0f}"])
        print("  ".join(rows[-1]), flush=True)
        save_results(args.results, per_seed, result_options(ap, args), torch.get_num_threads())
    head = (["run", "avg mAP 0.1:0.9 (%)" if args.multilabel else "avg mAP 0.3:0.7 (%)", "mAP@0.5 (%)"]
            + (["seg mAP (%)"] if args.multilabel else []) + (["train-set avg mAP (%)"] if args.train_map else [])
            + ["train s", "infer ms/video"])
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(head)]
    print()
    print(" | ".join(h.ljust(w) for h, w in zip(head, widths)))
    print("-+-".join("-" * w for w in widths))
    for r in rows:
        print(" | ".join(c.ljust(w) for c, w in zip(r, widths)))
    if args.out:
        with open(args.out, "w") as f:
            json.dump(results, f, indent=1)


if __name__ == "__main__":
    main()
