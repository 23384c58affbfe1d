"""Training and inference speed of the ActionFormer baseline and ASL at the THUMOS14 configuration.

For every device (the CPU, and the GPU when one is present), model and sequence length T:

* **train it/s, ms/step**: one optimiser step on a batch of 2 videos of T random 2048-d features
  with 5 ground-truth segments each -- forward, backward, gradient clipping at 1.0 and AdamW
  (``tadkit.engine.optim.build_optimizer`` with the config's ``train`` section), as the trainer
  does it (EMA and the learning-rate schedule left out); on the GPU under the config's autocast
  (``train.amp``, ``--no-amp`` to turn it off);
* **infer videos/s**: ``model.predict`` on one video of T features (network and decoding; the
  NMS of :mod:`tadkit.postprocess` is not included);
* **train / infer peak MiB**: the memory a step needs above what the model, optimiser and inputs
  already hold. On the CPU each (model, T) runs in a fresh process (``multiprocessing`` spawn)
  and this is its peak resident set (``ru_maxrss``) minus its resident set just before the
  first prediction; inference runs before training, so its peak is read before training's.
  On the GPU it is ``torch.cuda.max_memory_allocated`` minus the memory allocated before.

Times are the median over the timed iterations; warm-up iterations (``--warmup``) are not timed.
Each measurement runs ``--iters`` timed iterations, or fewer (at least one) once ``--budget``
seconds are spent, so long sequences get fewer iterations.

The models are built as ``tadkit.build_detector(name, num_classes=20, input_dim=2048,
max_seq_len=2304, **params)`` with ``params`` from ``configs/<name>/thumos14.yaml``.

**Against the official ActionFormer release.** ``--official DIR`` (a checkout of
happyharrycn/actionformer_release; only its ``libs/modeling`` is imported -- its NMS extension is
not needed for training) also times the release's ``LocPointTransformer`` with its THUMOS14
(``configs/thumos_i3d.yaml``) settings on the same inputs, every model in its own process, their
steps interleaved (round-robin, one process stepping at a time, so that other work on the machine
slows all alike). tadkit's processes set the allocator as ``tadkit train`` does on the CPU
(``tadkit.cpu_fast_paths``: large freed blocks kept for reuse); the release's process keeps the C
library's defaults, as its training script runs (``--official-keep-freed-memory`` gives it the
same setting).
The release pads every training batch to ``max_seq_len``, which must be a multiple of
``2**5 * (19 // 2) * 2 = 576``; each length T is therefore run at T' = T rounded up to a multiple
of 576, by both codes (tadkit gets the same zero-padded features and masks; its one-stage detectors
cut the steps after the last valid one, to a multiple of 32, before the network, so they compute T
steps where the release computes T'). The ratio printed is official ms/step / tadkit ms/step (the
speed target: at least 2 on the CPU).

``--thumos-info FILE`` (THUMOS14's ``video_info.json``) adds the comparison on batches whose
lengths follow THUMOS14's training videos (frames / 4, capped at 2304, 90-100 % crops): the
release pads every training batch to ``max_seq_len``; tadkit pads to the batch's longest video.

tadkit's models train on the CPU as their ``configs/<name>/thumos14.yaml`` says (``train.cpu_amp: auto``:
bfloat16 autocast where the CPU has AMX / AVX512-BF16 units, float32 elsewhere), as ``tadkit train``
runs them; ``--cpu-amp`` / ``--no-cpu-amp`` force bfloat16 / float32. ``--official-cpu-amp`` runs the
release's model under bfloat16 autocast too; as released it trains in float32.

    python benchmarks/train_speed.py [--device auto|cpu|cuda] [--lengths 512,1024,2304,4096]
        [--models actionformer,asl] [--iters 5] [--warmup 1] [--budget 60] [--threads N]
        [--[no-]cpu-amp] [--official DIR [--official-cpu-amp] [--official-keep-freed-memory]
        [--thumos-info video_info.json] [--thumos-batches 8]]
        [--out RESULTS.json] [--results JSON]

Prints the tables and writes them to ``benchmarks/results/train_speed.json`` (``--results``; one row
per measurement, a row's ``table`` naming the table it is in); ``--out`` also writes every timed
iteration.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import math
import multiprocessing as mp
import os
import resource
import statistics
import sys
import time

import numpy as np
import torch

import _results  # benchmarks/_results.py (the script's folder is on sys.path)

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
sys.path.insert(0, os.path.join(ROOT, "src"))
import tadkit  # noqa: E402
from tadkit.cpu_fast_paths import cache_primitives, keep_freed_memory  # noqa: E402
from tadkit.engine.optim import build_optimizer  # noqa: E402
from tadkit.engine.trainer import cpu_amp_enabled  # noqa: E402

NUM_CLASSES, INPUT_DIM, MAX_SEQ_LEN = 20, 2048, 2304   # THUMOS14, two-stream I3D
TRAIN_BATCH, GT_PER_VIDEO = 2, 5
CLIP_GRAD = 1.0


# ---------------------------------------------------------------------------- inputs and models
def make_batch(batch_size: int, length: int, padded: int | None = None, seed: int = 0) -> dict:
    """Random features (B, C, padded) valid on the first ``length`` steps, and a few ground truths each."""
    padded = padded or length
    gen = torch.Generator().manual_seed(seed)
    feats = torch.zeros(batch_size, INPUT_DIM, padded)                                    # (B, C, T')
    feats[:, :, :length] = torch.randn(batch_size, INPUT_DIM, length, generator=gen)
    masks = torch.zeros(batch_size, padded, dtype=torch.bool)                             # (B, T')
    masks[:, :length] = True
    rng = np.random.default_rng(seed)
    segments, labels = [], []
    for _ in range(batch_size):
        dur = rng.uniform(8, min(128, length / 4), GT_PER_VIDEO)
        start = rng.uniform(0, length - dur)
        segments.append(torch.tensor(np.stack([start, start + dur], 1), dtype=torch.float32))   # (N, 2)
        labels.append(torch.tensor(rng.integers(0, NUM_CLASSES, GT_PER_VIDEO), dtype=torch.long))
    return {"feats": feats, "masks": masks, "segments": segments, "labels": labels}


def to_device(batch: dict, device: torch.device) -> dict:
    return {k: (v.to(device) if torch.is_tensor(v) else [x.to(device) for x in v]) for k, v in batch.items()}


def model_config(name: str):
    return tadkit.load_config(os.path.join(ROOT, "configs", name, "thumos14.yaml"))


def build_tadkit(name: str, device: torch.device):
    cfg = model_config(name)
    params = {k: v for k, v in cfg.model.params.items() if k != "max_seq_len"}
    model = tadkit.build_detector(name, num_classes=NUM_CLASSES, input_dim=INPUT_DIM, max_seq_len=MAX_SEQ_LEN,
                                  **params).to(device)
    return model, build_optimizer(model, cfg.train), cfg.train


OFFICIAL_WINDOW, OFFICIAL_LEVELS = 19, 6


def official_multiple() -> int:
    """The release's ``max_div_factor``: the coarsest level's stride times its attention chunk."""
    return 2 ** (OFFICIAL_LEVELS - 1) * (OFFICIAL_WINDOW // 2) * 2


def build_official(directory: str, max_seq_len: int, device: torch.device):
    """The release's LocPointTransformer with its THUMOS14 settings (configs/thumos_i3d.yaml + defaults)."""
    if directory not in sys.path:
        sys.path.insert(0, directory)
    from libs.modeling import make_meta_arch  # type: ignore  # the release's package
    cfg = dict(
        backbone_type="convTransformer", fpn_type="identity", backbone_arch=(2, 2, 5), scale_factor=2,
        input_dim=INPUT_DIM, max_seq_len=max_seq_len, max_buffer_len_factor=6.0, n_head=4,
        n_mha_win_size=OFFICIAL_WINDOW, embd_kernel_size=3, embd_dim=512, embd_with_ln=True, fpn_dim=512,
        fpn_with_ln=True, head_dim=512, head_num_layers=3, head_kernel_size=3, head_with_ln=True,
        regression_range=[(0, 4), (4, 8), (8, 16), (16, 32), (32, 64), (64, 10000)],
        use_abs_pe=False, use_rel_pe=False, num_classes=NUM_CLASSES,
        train_cfg=dict(center_sample="radius", center_sample_radius=1.5, loss_weight=1.0, cls_prior_prob=0.01,
                       init_loss_norm=100, clip_grad_l2norm=CLIP_GRAD, head_empty_cls=[], dropout=0.1,
                       droppath=0.1, label_smoothing=0.0),
        test_cfg=dict(pre_nms_thresh=0.001, pre_nms_topk=2000, iou_threshold=0.1, min_score=0.001,
                      max_seg_num=200, nms_method="soft", nms_sigma=0.5, duration_thresh=0.05,
                      multiclass_nms=False, ext_score_file=None, voting_thresh=0.7))
    try:
        model = make_meta_arch("LocPointTransformer", fpn_start_level=0, **cfg)
    except TypeError:  # releases before fpn_start_level
        model = make_meta_arch("LocPointTransformer", **cfg)
    return model.to(device)


# ---------------------------------------------------------------------------- measuring
def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def current_rss_mib() -> float:
    """Resident set now (Linux); elsewhere the peak so far, which only overstates the baseline."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2 ** 20
    except OSError:
        return peak_rss_mib()


def peak_rss_mib() -> float:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2 ** 20 if sys.platform == "darwin" else peak / 1024   # bytes on macOS, KiB on Linux


class PeakMemory:
    """Memory above a baseline: peak RSS on the CPU, ``max_memory_allocated`` on the GPU."""

    def __init__(self, device: torch.device):
        self.device = device
        self.reset()

    def reset(self) -> None:
        if self.device.type == "cuda":
            synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            self.base = torch.cuda.memory_allocated(self.device) / 2 ** 20
        else:
            self.base = current_rss_mib()

    def peak(self) -> float:
        if self.device.type == "cuda":
            synchronize(self.device)
            return torch.cuda.max_memory_allocated(self.device) / 2 ** 20 - self.base
        return peak_rss_mib() - self.base


def timed(fn, device: torch.device, warmup: int, iters: int, budget: float) -> list[float]:
    """Seconds of each timed call of ``fn``: ``warmup`` untimed calls, then up to ``iters`` (at least
    one) until ``budget`` seconds are spent."""
    for _ in range(warmup):
        fn()
    synchronize(device)
    times, start = [], time.perf_counter()
    while len(times) < iters and (not times or time.perf_counter() - start < budget):
        t0 = time.perf_counter()
        fn()
        synchronize(device)
        times.append(time.perf_counter() - t0)
    return times


def autocast(device: torch.device, train_cfg, amp: bool, cpu_amp: bool | None = False):
    """The trainer's autocast: the config's on the GPU (unless ``--no-amp``), bfloat16 on the CPU as the
    config's ``train.cpu_amp`` says (``cpu_amp=None``) or as ``--cpu-amp`` / ``--no-cpu-amp`` force."""
    if cpu_amp is None:
        cpu_amp = train_cfg is not None and cpu_amp_enabled(train_cfg.cpu_amp)
    if amp and device.type == "cuda" and train_cfg.amp:
        dtype = torch.bfloat16 if train_cfg.amp_dtype == "bfloat16" else torch.float16
        return torch.autocast(device_type="cuda", dtype=dtype)
    if cpu_amp and device.type == "cpu":
        return torch.autocast(device_type="cpu", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def train_step_fn(model, optimizer, batch, loss_key: str, cast):
    params = [p for p in model.parameters() if p.requires_grad]

    def step():
        optimizer.zero_grad(set_to_none=True)
        with cast():
            loss = model(batch)[loss_key]
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, CLIP_GRAD)
        optimizer.step()
    return step


def setup_process(spec: dict) -> torch.device:
    if spec["threads"]:
        torch.set_num_threads(spec["threads"])
    torch.manual_seed(0)
    return torch.device(spec["device"])


def run_case(spec: dict) -> dict:
    """One (device, model, T) in a fresh process: inference first, then training."""
    device = setup_process(spec)
    if device.type == "cpu":
        keep_freed_memory()   # as tadkit train / predict set it on the CPU
        cache_primitives()
    model, optimizer, train_cfg = build_tadkit(spec["model"], device)
    cast = lambda: autocast(device, train_cfg, spec["amp"], spec["cpu_amp"])  # noqa: E731
    train_batch = to_device(make_batch(TRAIN_BATCH, spec["length"]), device)
    infer_batch = to_device(make_batch(1, spec["length"], seed=1), device)
    memory = PeakMemory(device)

    model.eval()

    def infer():
        with cast():
            model.predict(infer_batch)
    infer_times = timed(infer, device, spec["warmup"], spec["iters"], spec["budget"])
    infer_peak = memory.peak()

    model.train()
    if device.type == "cuda":   # on the CPU the baseline stays the resident set before inference
        memory.reset()
    step = train_step_fn(model, optimizer, train_batch, "loss", cast)
    train_times = timed(step, device, spec["warmup"], spec["iters"], spec["budget"])
    return {**spec, "train_s": train_times, "infer_s": infer_times, "train_peak_mib": memory.peak(),
            "infer_peak_mib": infer_peak}


def side_by_side_batch(spec: dict, i: int, official: bool):
    """Batch ``i`` of a side-by-side run: tadkit's padded batch, or the release's list of unpadded videos.

    ``spec["pairs"]`` (THUMOS14-like lengths): batch i holds two videos of those lengths, padded to the
    longer one, their ground truth scaled inside them. Otherwise every batch is the same: two videos
    of ``length`` steps zero-padded to ``padded``.
    """
    if spec.get("pairs"):
        la, lb = spec["pairs"][i]
        longest = max(la, lb)
        batch = make_batch(TRAIN_BATCH, longest, seed=i)
        for b, n in enumerate((la, lb)):   # video b is n steps long; its ground truth scaled inside it
            batch["masks"][b, n:] = False
            batch["feats"][b, :, n:] = 0.0
            batch["segments"][b] = batch["segments"][b] * (n / longest)
        lengths = (la, lb)
    else:
        batch = make_batch(TRAIN_BATCH, spec["length"], spec["padded"])
        lengths = (spec["length"],) * TRAIN_BATCH
    if official:   # the release pads to max_seq_len itself
        return [{"feats": batch["feats"][b, :, :n], "segments": batch["segments"][b], "labels": batch["labels"][b]}
                for b, n in enumerate(lengths)]
    return batch


def side_by_side_worker(conn, spec: dict, name: str) -> None:
    """One model ("official" or a tadkit model) in its own process: a timed training step per request.

    tadkit's workers set the allocator as ``tadkit train`` does on the CPU
    (:func:`tadkit.cpu_fast_paths.keep_freed_memory`); the release's keeps the C library's defaults,
    as its own training script runs, unless ``--official-keep-freed-memory``.
    """
    device = setup_process(spec)
    official = name == "official"
    if device.type == "cpu" and (not official or spec["official_keep_freed_memory"]):
        keep_freed_memory()
    if device.type == "cpu" and not official:
        cache_primitives()   # as tadkit train sets it (the release's single padded length needs no more)
    train_cfg = model_config("actionformer").train
    if official:
        model = build_official(spec["official"], spec.get("padded") or MAX_SEQ_LEN, device)
        optimizer = build_optimizer(model, train_cfg)
    else:
        model, optimizer, train_cfg = build_tadkit(name, device)
    cast = lambda: autocast(device, train_cfg, spec["amp"],  # noqa: E731
                            spec["official_cpu_amp"] if official else spec["cpu_amp"])
    model.train()
    cached = {}
    while (i := conn.recv()) is not None:
        key = i if spec.get("pairs") else 0
        if key not in cached:
            cached.clear()
            batch = side_by_side_batch(spec, key, official)
            cached[key] = batch if official else to_device(batch, device)
        step = train_step_fn(model, optimizer, cached[key], "final_loss" if official else "loss", cast)
        synchronize(device)
        t0 = time.perf_counter()
        step()
        synchronize(device)
        conn.send(time.perf_counter() - t0)


def run_side_by_side(spec: dict) -> dict:
    """The release and tadkit's models, each in its own process, their steps interleaved round-robin
    (one process steps while the others wait, so load on the machine slows all alike).

    With ``spec["pairs"]``: one step of every model on each THUMOS14-like batch in turn, the first
    ``warmup`` batches untimed. Otherwise: ``warmup`` untimed steps each, then rounds on the same
    batch until ``iters`` rounds or the time budget.
    """
    ctx = mp.get_context("spawn")
    names = ["official"] + list(spec["models"])
    workers = {}
    for name in names:
        parent, child = ctx.Pipe()
        proc = ctx.Process(target=side_by_side_worker, args=(child, spec, name), daemon=True)
        proc.start()
        workers[name] = (proc, parent)

    def step(name: str, i: int) -> float:
        conn = workers[name][1]
        conn.send(i)
        return conn.recv()

    times = {name: [] for name in names}
    try:
        if spec.get("pairs"):
            for i in range(len(spec["pairs"])):
                for name in names[i % len(names):] + names[:i % len(names)]:   # rotate who goes first
                    t = step(name, i)
                    if i >= spec["warmup"]:
                        times[name].append(t)
        else:
            for name in names:
                for _ in range(spec["warmup"]):
                    step(name, 0)
            start, rounds = time.perf_counter(), 0
            while rounds < spec["iters"] and (rounds == 0 or time.perf_counter() - start < spec["budget"] * len(names)):
                for name in names[rounds % len(names):] + names[:rounds % len(names)]:
                    times[name].append(step(name, 0))
                rounds += 1
    finally:
        for proc, conn in workers.values():
            try:
                conn.send(None)
            except (BrokenPipeError, OSError):
                pass
            proc.join(timeout=30)
    return {**spec, "train_s": times}


def thumos_pairs(video_info: str, n: int, seed: int = 0) -> list[tuple[int, int]]:
    """``n`` pairs of training-crop lengths (features) from THUMOS14's validation videos (its training set):
    frames / 4 capped at 2304, then a random 90-100 % crop, as the ActionFormer recipe trains."""
    with open(video_info) as f:
        info = json.load(f)
    lengths = [min(MAX_SEQ_LEN, int(v["num_frame"] // 4)) for v in info.values() if v.get("subset") == "validation"]
    if len(lengths) < 2:
        raise SystemExit(f"{video_info}: needs THUMOS14 video_info.json entries with subset 'validation' and num_frame")
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        a, b = rng.choice(lengths, 2, replace=False)
        out.append((max(int(a * rng.uniform(0.9, 1.0)), 8), max(int(b * rng.uniform(0.9, 1.0)), 8)))
    return out


def in_fresh_process(fn, spec: dict) -> dict:
    with mp.get_context("spawn").Pool(1) as pool:
        return pool.apply(fn, (spec,))


# ---------------------------------------------------------------------------- report
def print_table(head: list[str], rows: list[list[str]]) -> None:
    if not rows:
        return
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(head)]
    print(" | ".join(h.ljust(w) for h, w in zip(head, widths)))
    print("-+-".join("-" * w for w in widths))
    for r in rows:
        print(" | ".join(c.ljust(w) for c, w in zip(r, widths)))
    print(flush=True)


def ms(times: list[float]) -> float:
    return 1000 * statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"],
                    help="auto: the CPU, and the GPU when one is present")
    ap.add_argument("--lengths", default="512,1024,2304,4096",
                    help="comma-separated sequence lengths ('none' with --thumos-info: only that comparison)")
    ap.add_argument("--models", default="actionformer,asl", help="comma-separated tadkit models")
    ap.add_argument("--iters", type=int, default=5, help="timed iterations per measurement (default 5)")
    ap.add_argument("--warmup", type=int, default=1, help="untimed iterations first (default 1)")
    ap.add_argument("--budget", type=float, default=60.0,
                    help="seconds per measurement after which no further iteration starts (default 60)")
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    ap.add_argument("--no-amp", dest="amp", action="store_false", help="no autocast on the GPU")
    ap.add_argument("--cpu-amp", action=argparse.BooleanOptionalAction, default=None,
                    help="bfloat16 autocast for tadkit's models on the CPU, or not (default: as the configs' "
                         "train.cpu_amp says; their 'auto' is on where the CPU has AMX / AVX512-BF16)")
    ap.add_argument("--official-cpu-amp", action="store_true",
                    help="the same for the official release's model (as released it trains in float32)")
    ap.add_argument("--official-keep-freed-memory", action="store_true",
                    help="the release's process also gets tadkit's allocator setting (tadkit.cpu_fast_paths)")
    ap.add_argument("--official", metavar="DIR", help="checkout of the official ActionFormer release to compare with")
    ap.add_argument("--thumos-info", metavar="JSON", help="with --official: also compare on batches whose lengths "
                    "follow THUMOS14's videos (its video_info.json, e.g. ../shared/data/thumos14/video_info.json)")
    ap.add_argument("--thumos-batches", type=int, default=8, help="batches for --thumos-info (default 8)")
    ap.add_argument("--out", metavar="JSON", help="also write every measurement here")
    _results.add_results_argument(ap, "train_speed")
    args = ap.parse_args()
    try:
        lengths = [] if args.lengths == "none" and args.thumos_info else \
            [int(x) for x in args.lengths.split(",") if x.strip()]
    except ValueError:
        ap.error(f"--lengths must be comma-separated integers, got {args.lengths!r}")
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    unknown = [m for m in models if not os.path.exists(os.path.join(ROOT, "configs", m, "thumos14.yaml"))]
    if unknown or not models or not (lengths or args.thumos_info) or min(lengths, default=1) < 1 or args.iters < 1 or args.warmup < 0:
        ap.error(f"need models with a configs/<model>/thumos14.yaml (not {', '.join(unknown) or 'none'}), "
                 "positive lengths, --iters >= 1 and --warmup >= 0")
    if args.official and not os.path.isdir(os.path.join(args.official, "libs", "modeling")):
        ap.error(f"--official {args.official}: no libs/modeling there (a checkout of actionformer_release)")
    if args.device == "cuda" and not torch.cuda.is_available():
        ap.error("--device cuda: no GPU is visible to torch")
    devices = ["cpu"] + (["cuda"] if args.device == "auto" and torch.cuda.is_available() else [])
    devices = [args.device] if args.device != "auto" else devices
    common = {"iters": args.iters, "warmup": args.warmup, "budget": args.budget, "threads": args.threads,
              "amp": args.amp, "cpu_amp": args.cpu_amp, "official_cpu_amp": args.official_cpu_amp,
              "official_keep_freed_memory": args.official_keep_freed_memory}
    tadkit_cast = {True: "bfloat16", False: "off"}.get(args.cpu_amp) or ", ".join(
        f"{m} {'bfloat16' if cpu_amp_enabled(model_config(m).train.cpu_amp) else 'off'} (config)" for m in models)
    print(f"torch {torch.__version__}, threads {args.threads or torch.get_num_threads()}, CPU autocast: "
          f"tadkit {tadkit_cast}, official {'bfloat16' if args.official_cpu_amp else 'off'}, "
          f"batch {TRAIN_BATCH} (train) / 1 (infer), median of up to {args.iters} timed iterations "
          f"after {args.warmup} warm-up\n", flush=True)

    results, comparisons, records = [], [], []
    main_table, official_table = "tadkit", "against the official release (T padded to a multiple of 576)"
    for device in devices:
        rows = []
        for name in models:
            for length in lengths:
                r = in_fresh_process(run_case, {**common, "device": device, "model": name, "length": length})
                results.append(r)
                t, i = ms(r["train_s"]), ms(r["infer_s"])
                rows.append([device, name, str(length), f"{1000 / t:.3g}", f"{t:.0f}", str(len(r["train_s"])),
                             f"{1000 / i:.3g}", f"{r['train_peak_mib']:.0f}", f"{r['infer_peak_mib']:.0f}"])
                print(" ".join(rows[-1]), flush=True)
                records.append({"table": main_table, "device": device, "model": name, "T": length,
                                "train_it_per_s": 1000 / t, "ms_per_step": t, "n_iters": len(r["train_s"]),
                                "infer_videos_per_s": 1000 / i, "train_peak_MiB": r["train_peak_mib"],
                                "infer_peak_MiB": r["infer_peak_mib"]})
        print()
        print_table(["device", "model", "T", "train it/s", "ms/step", "n", "infer videos/s", "peak MiB (train)",
                     "peak MiB (infer)"], rows)

        if args.official:
            rows = []
            for length in lengths:
                padded = math.ceil(length / official_multiple()) * official_multiple()
                r = run_side_by_side({**common, "device": device, "length": length, "padded": padded,
                                       "models": models, "official": os.path.abspath(args.official)})
                comparisons.append(r)
                off = ms(r["train_s"]["official"])
                row = [device, str(length), str(padded), str(len(r["train_s"]["official"])), f"{off:.0f}"]
                record = {"table": official_table, "device": device, "T": length, "T_padded": padded,
                          "n_iters": len(r["train_s"]["official"]), "official_ms_per_step": off}
                for name in models:
                    row += [f"{ms(r['train_s'][name]):.0f}", f"{off / ms(r['train_s'][name]):.2f}"]
                    record[f"{name}_ms_per_step"] = ms(r["train_s"][name])
                    record[f"official_over_{name}_x"] = off / ms(r["train_s"][name])
                rows.append(row)
                records.append(record)
                print(" ".join(row), flush=True)
            print()
            head = ["device", "T", "T' (padded)", "n", "official ms/step"]
            for name in models:
                head += [f"{name} ms/step", f"official/{name}"]
            print_table(head, rows)
            if args.thumos_info:
                pairs = thumos_pairs(args.thumos_info, args.thumos_batches + args.warmup)
                r = run_side_by_side({**common, "device": device, "pairs": pairs,
                                       "models": models, "official": os.path.abspath(args.official)})
                comparisons.append(r)
                off = statistics.mean(r["train_s"]["official"])
                row = [device, f"{statistics.mean(max(p) for p in pairs[args.warmup:]):.0f}",
                       str(len(r["train_s"]["official"])), f"{1000 * off:.0f}"]
                record = {"table": "THUMOS14-like batches (the release pads each to 2304, tadkit to the longest "
                                   "video)", "device": device,
                          "mean_batch_max_T": statistics.mean(max(p) for p in pairs[args.warmup:]),
                          "batches": len(r["train_s"]["official"]), "official_ms_per_step": 1000 * off}
                for name in models:
                    mean = statistics.mean(r["train_s"][name])
                    row += [f"{1000 * mean:.0f}", f"{off / mean:.2f}"]
                    record[f"{name}_ms_per_step"] = 1000 * mean
                    record[f"official_over_{name}_x"] = off / mean
                records.append(record)
                print()
                head = ["device", "mean batch max T", "batches", "official ms/step"]
                for name in models:
                    head += [f"{name} ms/step", f"official/{name}"]
                print("THUMOS14-like batches (the release pads each to 2304, tadkit to the batch's longest video):")
                print_table(head, [row])
    if args.out:
        with open(args.out, "w") as f:
            json.dump({"cases": results, "official": comparisons}, f, indent=1)
    threads = args.threads or torch.get_num_threads()
    _results.save("train_speed", records, args.results, threads=threads,
                  device=", ".join(torch.cuda.get_device_name() if d == "cuda" else d for d in devices),
                  setting=f"batch {TRAIN_BATCH} (train) / 1 (infer), median of up to {args.iters} timed iterations "
                          f"after {args.warmup} warm-up, {args.budget:g} s budget per measurement; CPU autocast: "
                          f"tadkit {tadkit_cast}, official {'bfloat16' if args.official_cpu_amp else 'off'}")


if __name__ == "__main__":
    main()
