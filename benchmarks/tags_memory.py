"""TAGS cost: peak memory at growing window lengths, and time beside the ActionFormer baseline.

    .venv/bin/python benchmarks/tags_memory.py                      # full: T = 256 … 2048, timing
    .venv/bin/python benchmarks/tags_memory.py --lengths 256 512 --videos 8 --epochs 1   # quick

1. **Peak memory** of one training step (forward + backward, batch 1) and of one inference
   window, for TAGS and ActionFormer with ``max_seq_len = T``. TAGS predicts a Tˢ×Tˢ mask per
   scale, so its memory grows with T², ActionFormer's with T. On CUDA the number is
   ``torch.cuda.max_memory_allocated``; on the CPU each measurement runs in a fresh process and
   reports the growth of its peak resident set (``ru_maxrss``) during the step. The last row
   runs a video of 4·T steps through the engine's windowing (``predict_windows``) and shows that
   its peak is that of one window: long videos cost time, not memory.
2. **Time** on the same synthetic data (``tadkit.data.synthetic``): training seconds per epoch
   (Adam, the engine's dataset and collate) and inference seconds per video (windows + Soft-NMS),
   TAGS (``configs/tags/custom.yaml``) beside ActionFormer (``configs/actionformer/custom.yaml``),
   both at the small widths of the end-to-end check.

Prints two tables and writes them to ``benchmarks/results/tags_memory.json`` (``--results``);
``--json PATH`` also writes the numbers in the older layout (``device``, ``memory``, ``timing``).
"""
from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import resource
import sys
import tempfile
import time
from pathlib import Path

import torch

import _results  # benchmarks/_results.py (the script's folder is on sys.path)

ROOT = Path(__file__).resolve().parents[1]
INPUT_DIM, NUM_CLASSES = 2048, 20            # THUMOS14-like inputs for the memory table
SMALL = {"tags": ["model.embed_dim=64", "model.mask_dim=64", "model.max_seq_len=256"],
         "actionformer": ["model.embed_dim=64", "model.fpn_dim=64", "model.head_dim=64", "model.max_seq_len=1024"]}


def build(name: str, T: int):
    """The detector of ``configs/<name>/custom.yaml`` at window length T, THUMOS14-like sizes."""
    import tadkit
    from tadkit.models import build_detector
    cfg = tadkit.load_config(ROOT / f"configs/{name}/custom.yaml")
    params = {k: v for k, v in cfg.model.params.items() if k != "max_seq_len"}
    return build_detector(name, num_classes=NUM_CLASSES, input_dim=INPUT_DIM, max_seq_len=T, **params)


def batch_of(T: int, device, n_actions: int = 8):
    g = torch.Generator().manual_seed(0)
    starts = torch.linspace(0, T * 0.8, n_actions)
    segs = torch.stack([starts, starts + T / (2 * n_actions)], 1)
    return {"feats": torch.randn(1, INPUT_DIM, T, generator=g).to(device),
            "masks": torch.ones(1, T, dtype=torch.bool, device=device),
            "segments": [segs.to(device)], "labels": [torch.arange(n_actions).to(device) % NUM_CLASSES]}


def _step(name: str, T: int, mode: str, device: str) -> float:
    """MiB of peak memory one step adds (training: forward + backward; inference: predict)."""
    torch.manual_seed(0)
    torch.set_num_threads(1)
    model = build(name, T).to(device)
    batch = batch_of(T, device)
    model.train(mode == "train")
    base = _memory_base(device)
    if mode == "train":
        model(batch)["loss"].backward()
    else:
        model.predict(batch)
    return _peak_mib(device, base)


def _memory_base(device: str) -> int:
    """What :func:`_peak_mib` measures from: allocated bytes (CUDA, peak reset) or the peak RSS so far (KiB)."""
    if device == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        return torch.cuda.memory_allocated()
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def _peak_mib(device: str, base: int) -> float:
    """Peak memory above ``base`` in MiB (CUDA: max allocated; CPU: growth of the peak resident set)."""
    if device == "cuda":
        torch.cuda.synchronize()
        return (torch.cuda.max_memory_allocated() - base) / 2 ** 20
    return (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base) / 2 ** 10


def _windows(T: int, device: str, factor: int = 4) -> tuple[float, float]:
    """Peak MiB of predicting one window and a video of ``factor`` windows through the engine's windowing."""
    import numpy as np

    from tadkit.data.annotations import Annotations
    from tadkit.data.dataset import VideoDataset
    from tadkit.data.features import open_features
    from tadkit.engine.inference import predict_windows
    torch.set_num_threads(1)
    model = build("tags", T).to(device).eval()
    out = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "f").mkdir()
        db = {}
        for vid, n in (("one", T), ("long", factor * T)):
            np.save(root / "f" / f"{vid}.npy", np.random.default_rng(0).standard_normal((n, INPUT_DIM), dtype=np.float32))
            db[vid] = {"subset": "validation", "duration": n / 7.5, "annotations": [{"segment": [1, 2], "label": "a"}]}
        (root / "a.json").write_text(json.dumps({"database": db}))
        ann = Annotations.load(root / "a.json")
        for vid in ("one", "long"):
            ds = VideoDataset(ann, open_features(str(root / "f")), "validation", training=False, max_seq_len=T,
                              fps=30.0, feature_stride=4, feature_window=16, video_ids=[vid])
            base = _memory_base(device)
            predict_windows(model, ds)
            out.append(_peak_mib(device, base))
    return tuple(out)


def _child(queue, fn, args):
    try:
        queue.put(fn(*args))
    except Exception as exc:                       # report, do not hang the parent
        queue.put(f"error: {exc}")


def isolated(fn, *args):
    """Run ``fn(*args)`` in a fresh process (CPU peaks are per process) and return its result."""
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=_child, args=(queue, fn, args))
    proc.start()
    result = queue.get()
    proc.join()
    return result


def memory_table(lengths, device: str) -> list[dict]:
    rows = []
    for T in lengths:
        row = {"T": T}
        for name in ("tags", "actionformer"):
            for mode in ("train", "infer"):
                row[f"{name}_{mode}_MiB"] = isolated(_step, name, T, mode, device)
        row["tags_one_window_MiB"], row["tags_4_windows_MiB"] = isolated(_windows, T, device)
        rows.append(row)
        print_row(row, first=T == lengths[0])
    return rows


def print_row(row: dict, first: bool) -> None:
    cols = list(row)
    if first:
        print(" ".join(f"{c:>20}" for c in cols))
    print(" ".join(f"{row[c]:>20.1f}" if isinstance(row[c], float) else f"{row[c]!s:>20}" for c in cols), flush=True)


# ---------------------------------------------------------------------------- timing
def timing(videos: int, epochs: int, device: str) -> list[dict]:
    import tadkit
    from tadkit.data.synthetic import make_synthetic
    from tadkit.engine import builders
    from tadkit.engine.inference import detections_per_video, predict_windows
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        make_synthetic(tmp, videos=videos, seed=1)
        data = [f"data.annotations={tmp}/annotations.json", f"data.features={tmp}/features", "data.fps=30",
                "data.feature_stride=4", "data.feature_window=16"]
        for name in ("tags", "actionformer"):
            cfg = tadkit.load_config(ROOT / f"configs/{name}/custom.yaml", overrides=data + SMALL[name])
            train_set = builders.build_dataset(cfg, cfg.data.train_subset, training=True)
            test_set = builders.build_dataset(cfg, cfg.data.test_subset, training=False)
            torch.manual_seed(0)
            model = builders.build_model(cfg, builders.model_info(cfg, train_set)).to(device).train()
            opt = torch.optim.Adam(model.parameters(), lr=1e-4)
            loader = torch.utils.data.DataLoader(train_set, batch_size=4, shuffle=True,
                                                 collate_fn=builders.get_collate(train_set))
            from tadkit.engine.inference import to_device
            seconds = []
            for epoch in range(epochs + 1):                  # epoch 0 warms up (allocator, caches)
                train_set.set_epoch(epoch)
                start = time.perf_counter()
                for batch in loader:
                    loss = model(to_device(batch, device))["loss"]
                    opt.zero_grad()
                    loss.backward()
                    opt.step()
                if device == "cuda":
                    torch.cuda.synchronize()
                seconds.append(time.perf_counter() - start)
            start = time.perf_counter()
            windows = predict_windows(model, test_set)
            detections_per_video(windows, cfg.test)
            infer = (time.perf_counter() - start) / len(test_set.video_ids)
            row = {"model": name, "max_seq_len": cfg.model.params["max_seq_len"],
                   "params_M": sum(p.numel() for p in model.parameters()) / 1e6,
                   "train_s_per_epoch": sum(seconds[1:]) / epochs, "infer_s_per_video": infer}
            rows.append(row)
            print_row(row, first=name == "tags")
    return rows


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--lengths", type=int, nargs="+", default=[256, 512, 1024, 2048])
    ap.add_argument("--videos", type=int, default=24, help="synthetic videos for the timing table")
    ap.add_argument("--epochs", type=int, default=2, help="timed training epochs (after one warm-up epoch)")
    ap.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    ap.add_argument("--skip-timing", action="store_true")
    ap.add_argument("--json", type=Path, default=None)
    _results.add_results_argument(ap, "tags_memory")
    args = ap.parse_args(argv)
    device = ("cuda" if torch.cuda.is_available() else "cpu") if args.device == "auto" else args.device
    print(f"# peak memory (MiB) of one step, batch 1, {INPUT_DIM}-d inputs, device {device}")
    out = {"device": device, "memory": memory_table(args.lengths, device)}
    if not args.skip_timing:
        print(f"\n# time on synthetic data ({args.videos} videos), device {device}, "
              f"{torch.get_num_threads()} threads")
        out["timing"] = timing(args.videos, args.epochs, device)
    if args.json:
        args.json.write_text(json.dumps(out, indent=1))
    memory = "peak memory (MiB), one step, batch 1"
    rows = ([{"table": memory, **r} for r in out["memory"]]
            + [{"table": "time on synthetic data", **r} for r in out.get("timing", [])])
    dev = torch.cuda.get_device_name() if device == "cuda" else "cpu"
    _results.save("tags_memory", rows, args.results, threads=torch.get_num_threads(), device=dev, argv=argv,
                  setting=f"memory: {INPUT_DIM}-d inputs, {NUM_CLASSES} classes, each step in a fresh process with "
                          "1 thread" + ("" if args.skip_timing else f"; time: {args.videos} synthetic videos, "
                                        f"{args.epochs} timed epochs after one warm-up"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
