"""Every device path of tadkit, run once at a tiny size and timed: a smoke test for a GPU machine.

    python benchmarks/gpu_check.py [--device cuda|cpu] [--out DIR] [--results JSON] [--nproc N] [--threads N]

On the chosen device (default ``cuda``), each check runs on its own, its failure caught and recorded,
so that one failure does not hide the others:

* ``synthetic features`` / ``synthetic videos``: the inputs (``tadkit.data.synthetic.make_synthetic``,
  ``tadkit.data.synthetic_video.make_synthetic_videos``);
* ``train <method>`` for asl, amnet, tags, sptad, pointtad and actionformer: ``tadkit.train`` from
  ``configs/<method>/custom.yaml`` at a tiny width, one epoch of a few steps under autocast (CUDA:
  ``train.amp=true`` in the configured ``train.amp_dtype``; CPU: ``train.cpu_amp=true``, bfloat16);
  the losses must be finite and the weights on the device. On CUDA also ``train actionformer
  float16``: float16 autocast and its gradient scaler;
* ``predict <method>``: ``tadkit.predict`` with that run's checkpoint on the device; every test video
  gets detections, and the top score of each is training's (same weights, same device);
* ``torchrun``: ``python -m torch.distributed.run --nproc_per_node N -m tadkit train`` in a subprocess
  (``--nproc``, default 1). tadkit forms a process group for two processes or more only (nccl on
  CUDA, gloo on the CPU), so one process checks the launcher's environment and device choice, not
  nccl: run ``--nproc 2`` on a machine with two GPUs for that;
* ``extract``: ``tadkit.extract`` of the synthetic videos at 64 x 64 with the Kinetics I3D weights
  when ``tadkit weights i3d`` has cached them (else random I3D weights, said in the note), with
  bfloat16 autocast on CUDA;
* ``detect``: a tiny ActionFormer trained on those features, then ``tadkit.detect`` on one video on
  the device (I3D in float32 there);
* ``e2e pointtad`` / ``e2e sptad``: one end-to-end training step from frames (``configs/pointtad/
  multithumos_e2e.yaml``, ``configs/sptad/thumos14_e2e.yaml`` two-stream with the videos as flow; a
  random I3D at width 0.125, gradient checkpointing on) under autocast, then their test predictions;
* ``detect e2e``: ``tadkit detect`` with the end-to-end PointTAD checkpoint (frames into the model).

Everything is written to a temporary folder (``--out DIR``: there, kept; it must be empty) and nothing
is downloaded. It prints ``check | passed | seconds | note`` (the note of a failure is the exception's
first line; the traceback goes to stderr) and writes the rows to ``benchmarks/results/gpu_check.json``
(``--results``). A ``--device cpu`` run writes a results file only when ``--results`` is given, so it
never replaces the GPU record. Exit status 1 when a check failed, 2 when CUDA is asked for and there is
no GPU. Every check is tiny, so the whole run is meant to take under 5 minutes on a GPU (start-up and
the torchrun subprocess included); on 2 CPU cores it takes one to two minutes.
``tests/test_gpu_check.py`` runs it with ``--device cpu`` so that it keeps working between GPU runs.
"""
from __future__ import annotations

import argparse
import contextlib
import io
import json
import math
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

import _results  # noqa: E402  # benchmarks/_results.py (the script's folder is on sys.path)

METHODS = ("asl", "amnet", "tags", "sptad", "pointtad", "actionformer")
# tiny widths, in the keys of benchmarks/synthetic_accuracy.py's SCALE / QUERY_SCALE; windows of 64 to
# 256 feature steps (the synthetic videos have 75 to 150)
TINY = {
    "asl": ["model.embed_dim=16", "model.fpn_dim=16", "model.head_dim=16", "model.evaluator_dim=8",
            "model.max_seq_len=256"],
    "amnet": ["model.embed_dim=16", "model.fpn_dim=16", "model.head_dim=16", "model.ame_dim=16",
              "model.max_seq_len=256"],
    "tags": ["model.embed_dim=16", "model.mask_dim=16", "model.max_seq_len=256"],
    "sptad": ["model.stage_dim=32", "model.hidden_dim=32", "model.ffn_dim=64", "model.dynamic_dim=8",
              "model.num_proposals=8", "model.num_stages=2", "model.roi_size=4", "model.max_seq_len=64",
              "data.train_window_overlap=0"],
    "pointtad": ["model.hidden_dim=32", "model.ffn_dim=64", "model.dynamic_dim=4", "model.num_queries=8",
                 "model.num_points=9", "model.num_layers=2", "model.max_seq_len=64", "data.train_window_overlap=0"],
    "actionformer": ["model.embed_dim=16", "model.fpn_dim=16", "model.head_dim=16", "model.max_seq_len=256"],
}
# a few steps of one epoch: batches of 2 over 6 training videos (SP-TAD, PointTAD: over their windows);
# evaluation once, after the epoch (it runs the inference path on the device too)
SCHEDULE = ["train.epochs=1", "train.warmup_epochs=0", "train.lr=1e-4", "train.eval_every=0",
            "train.progress=false", "train.num_workers=0"]
SYNTH = dict(videos=8, classes=3, feature_dim=32, min_duration=10.0, max_duration=20.0, test_fraction=0.25, seed=0)
VIDEOS = dict(videos=4, classes=2, frames=64, fps=10.0, size=64, seed=3)   # 3 training, 1 testing
FRAMES = dict(short_side=64, crop=64)       # extraction: small frames
# end to end from frames: tinyised versions of the shipped configs (one step of a batch of 4 windows)
E2E = {
    "pointtad": ("configs/pointtad/multithumos_e2e.yaml",
                 ["model.max_seq_len=16", "model.hidden_dim=32", "model.num_queries=8", "model.num_points=9",
                  "model.num_layers=2", "model.num_heads=4", "model.ffn_dim=64", "model.dynamic_dim=8"]),
    "sptad": ("configs/sptad/thumos14_e2e.yaml",
              ["model.max_seq_len=64", "model.hidden_dim=32", "model.num_proposals=8", "model.num_stages=2",
               "model.attn_heads=4", "model.ffn_dim=64", "model.dynamic_dim=8", "model.roi_size=4",
               "data.train_subset=training"]),
}
E2E_COMMON = ["data.short_side=40", "data.crop_size=32", "model.backbone.width=0.125", "model.backbone.checkpoint=true",
              "train.batch_size=4", "train.warmup_epochs=0", "train.ema_decay=null"]


def first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    line = text.splitlines()[0] if text else ""
    return f"{type(exc).__name__}: {line}" if line else type(exc).__name__


class Runner:
    """Runs the checks one by one: each timed (the device synchronised), its failure caught."""

    def __init__(self, device: str, verbose: bool = False):
        self.device = device
        self.verbose = verbose
        self.rows: list[dict] = []
        self.ok: dict[str, bool] = {}

    def sync(self) -> None:
        if self.device == "cuda":
            import torch
            torch.cuda.synchronize()

    def run(self, name: str, fn, *, needs: tuple[str, ...] = (), in_process: bool = True) -> None:
        """Run ``fn`` (returning the note) unless a check it ``needs`` failed; ``in_process``: its
        GPU memory is this process's (``peak_gpu_mib``)."""
        import torch
        missing = [n for n in needs if not self.ok.get(n)]
        row = {"check": name, "passed": False, "seconds": 0.0, "note": ""}
        if missing:
            row["note"] = f"not run: {missing[0]} failed"
        else:
            if self.device == "cuda":
                with contextlib.suppress(Exception):     # a broken CUDA context fails the check itself
                    torch.cuda.reset_peak_memory_stats()
            out = io.StringIO()
            start = time.perf_counter()
            try:
                with contextlib.redirect_stdout(out):
                    note = fn()
                    self.sync()
                row.update(passed=True, note=note or "")
            except Exception as e:  # noqa: BLE001 - every failure is a row, the next check still runs
                row["note"] = first_line(e)
                print(f"--- {name} failed:", file=sys.stderr)
                traceback.print_exc(file=sys.stderr)
                if out.getvalue().strip():
                    print(f"--- {name} printed:\n{out.getvalue()[-4000:]}", file=sys.stderr)
            row["seconds"] = time.perf_counter() - start
            if self.device == "cuda" and in_process:
                with contextlib.suppress(Exception):
                    row["peak_gpu_mib"] = torch.cuda.max_memory_allocated() / 2 ** 20
            if self.verbose and out.getvalue().strip():
                print(out.getvalue(), file=sys.stderr)
        self.ok[name] = row["passed"]
        self.rows.append(row)
        print(f"{'ok  ' if row['passed'] else 'FAIL'} {name:28s} {row['seconds']:7.1f} s  {row['note']}", flush=True)


# ---------------------------------------------------------------------------- helpers
def plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def amp_overrides(device: str, dtype: str | None = None) -> list[str]:
    """Autocast on: the GPU's in the configured (or given) dtype, the CPU's bfloat16."""
    if device == "cuda":
        return ["train.amp=true"] + ([f"train.amp_dtype={dtype}"] if dtype else [])
    return ["train.cpu_amp=true"]


def finite_losses(history: list[dict]) -> float:
    """Every loss of every logged epoch finite; returns the last total loss."""
    if not history:
        raise AssertionError("no epoch logged")
    for row in history:
        for k, v in row.items():
            if "loss" in k and v is not None and not math.isfinite(float(v)):
                raise AssertionError(f"{k} is {v} at epoch {row.get('epoch')}")
    return float(history[-1]["loss"])


class Probe:
    """A training callback recording where the weights are and whether autocast is on."""

    def __init__(self):
        self.seen: dict = {}

    def __call__(self, trainer, epoch: int) -> None:
        self.seen = {"device": next(trainer.model.parameters()).device.type, "amp": trainer.use_amp,
                     "dtype": str(trainer.amp_dtype).replace("torch.", ""),
                     "scaler": trainer.scaler is not None}

    def check(self, device: str) -> dict:
        if self.seen.get("device") != device:
            raise AssertionError(f"the weights are on {self.seen.get('device')}, not {device}")
        if not self.seen.get("amp"):
            raise AssertionError("autocast is off")
        return self.seen


def train_run(config, overrides: list[str], device: str) -> tuple:
    """``tadkit.train`` with a probe; returns (result, probe facts, steps)."""
    from tadkit import api
    probe = Probe()
    cfg = api.load_config(config, overrides)
    result = api.train(cfg, callbacks=[probe])
    facts = probe.check(device)
    loss = finite_losses(result.history)
    steps = int(result.history[-1]["step"])
    return result, facts, steps, loss


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def random_i3d_weights(path: Path) -> Path:
    """A random-weight I3D written in the piergiaj/pytorch-i3d layout, which ``--weights`` reads."""
    import torch

    from tadkit.models.backbones.i3d import _units, build_i3d
    torch.manual_seed(0)
    sd = build_i3d(None, num_classes=400).state_dict()
    out = {}
    for ours, _, theirs in _units():
        p = ".".join(theirs)
        out[f"{p}.conv3d.weight"] = sd[f"{ours}.conv.weight"]
        for part in ("weight", "bias", "running_mean", "running_var", "num_batches_tracked"):
            out[f"{p}.bn.{part}"] = sd[f"{ours}.bn.{part}"]
    out["logits.conv3d.weight"] = sd["Logits.conv.weight"]
    out["logits.conv3d.bias"] = sd["Logits.conv.bias"]
    torch.save(out, path)
    return path


# ---------------------------------------------------------------------------- the checks
class Checks:
    def __init__(self, work: Path, device: str, nproc: int):
        self.work, self.device, self.nproc = work, device, nproc
        self.features = work / "features_data"
        self.videos = work / "video_data"
        self.timing: dict = {}
        self.runs: dict[str, Path] = {}
        self.weights: Path | None = None
        self.weights_note = ""

    # -- inputs
    def synthetic_features(self) -> str:
        from tadkit.data.synthetic import make_synthetic
        meta = make_synthetic(self.features, **SYNTH)
        self.timing = {k: meta[k] for k in ("fps", "feature_stride", "feature_window")}
        return f"{SYNTH['videos']} videos, {SYNTH['classes']} classes, {SYNTH['feature_dim']}-d"

    def synthetic_videos(self) -> str:
        from tadkit.data.synthetic_video import make_synthetic_videos
        make_synthetic_videos(self.videos, **VIDEOS)
        return f"{VIDEOS['videos']} videos of {VIDEOS['frames']} frames, {VIDEOS['size']} x {VIDEOS['size']}"

    def test_video(self) -> Path:
        """A video of the synthetic videos' test subset."""
        db = json.loads((self.videos / "annotations.json").read_text())["database"]
        return self.videos / "videos" / f"{sorted(v for v in db if db[v]['subset'] == 'testing')[-1]}.mp4"

    def feature_overrides(self, method: str, out: Path) -> list[str]:
        return ([f"data.annotations={self.features / 'annotations.json'}",
                 f"data.features={self.features / 'features'}"]
                + [f"data.{k}={v}" for k, v in self.timing.items()] + TINY[method] + SCHEDULE
                + ["train.batch_size=2", f"train.device={self.device}", f"output_dir={out}"])

    # -- 1. training of each detector
    def train(self, method: str, dtype: str | None = None) -> str:
        out = self.work / "runs" / (method + (f"_{dtype}" if dtype else ""))
        overrides = self.feature_overrides(method, out) + amp_overrides(self.device, dtype)
        _, facts, steps, loss = train_run(ROOT / "configs" / method / "custom.yaml", overrides, self.device)
        if dtype is None:
            self.runs[method] = out
        return (f"{plural(steps, 'step')}, loss {loss:.3g}, {facts['dtype']} autocast"
                + (", gradient scaler" if facts["scaler"] else ""))

    # -- 2. predict with its checkpoint
    def predict(self, method: str) -> str:
        from tadkit import api
        run = self.runs[method]
        cfg = api.load_config(run / "config.yaml")
        if cfg.train.device != self.device:
            raise AssertionError(f"the run's config has train.device={cfg.train.device}")
        got = api.predict(cfg, run / "checkpoints" / "last.pt", out=self.work / f"predict_{method}.json",
                          progress=False)["results"]
        ref = json.loads((run / "predictions.json").read_text())["results"]
        if set(got) != set(ref):
            raise AssertionError(f"predicted videos {sorted(got)}, training predicted {sorted(ref)}")
        for v in got:                        # a few steps may leave a video below test.min_score: as training
            if bool(got[v]) != bool(ref[v]):
                raise AssertionError(f"{v}: {len(got[v])} detections, training predicted {len(ref[v])}")
            if got[v] and abs(max(d["score"] for d in got[v]) - max(d["score"] for d in ref[v])) > 1e-3:
                raise AssertionError(f"{v}: the top score differs from training's by more than 1e-3")
        return f"{len(got)} videos, {sum(map(len, got.values()))} detections, top scores as training's"

    # -- 3. torchrun
    def torchrun(self) -> str:
        import torch

        from tadkit import api
        from tadkit.config import save_config
        out = self.work / "runs" / "torchrun"
        overrides = self.feature_overrides("actionformer", out) + amp_overrides(self.device)
        config = self.work / "torchrun.yaml"
        save_config(api.load_config(ROOT / "configs" / "actionformer" / "custom.yaml", overrides), config)
        env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": os.pathsep.join(
            [str(ROOT / "src")] + ([os.environ["PYTHONPATH"]] if os.environ.get("PYTHONPATH") else []))}
        cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(self.nproc),
               "--master_addr", "127.0.0.1", "--master_port", str(free_port()), "-m", "tadkit", "train", str(config)]
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=self.work, timeout=300)
        if proc.returncode != 0:
            lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
            print(proc.stderr[-4000:], file=sys.stderr)
            raise RuntimeError(f"torchrun exited with {proc.returncode}: {lines[-1] if lines else ''}")
        ckpt = torch.load(out / "checkpoints" / "last.pt", map_location="cpu", weights_only=True)
        if len(ckpt["rng"]) != self.nproc:
            raise AssertionError(f"the checkpoint holds {len(ckpt['rng'])} RNG states, not {self.nproc}")
        loss = finite_losses(ckpt["history"])
        if self.nproc == 1:
            group = "1 process, so no process group" + (" (nccl: --nproc 2 on 2 GPUs)" if self.device == "cuda" else "")
        else:
            group = f"{self.nproc} processes, {'nccl' if self.device == 'cuda' else 'gloo'}"
        return f"{group}, {ckpt['global_step']} steps, loss {loss:.3g}"

    # -- 4. extract
    def extract(self) -> str:
        import numpy as np

        from tadkit import api
        from tadkit.engine.weights import cached_weights
        self.weights = cached_weights("i3d")
        if self.weights is None:
            self.weights = random_i3d_weights(self.work / "i3d_random.pt")
            self.weights_note = "I3D weights not cached (tadkit weights i3d): random weights"
        else:
            self.weights_note = "Kinetics-400 I3D"
        amp = self.device == "cuda"
        result = api.extract(self.videos / "videos", self.weights, self.work / "i3d_features", device=self.device,
                             amp=amp, progress=False, **FRAMES)
        if len(result.extracted) != VIDEOS["videos"]:
            raise AssertionError(f"{len(result.extracted)} of {VIDEOS['videos']} videos extracted")
        for vid in result.extracted:
            x = np.load(self.work / "i3d_features" / f"{vid}.npy")
            if x.shape != (VIDEOS["frames"] // 4, 1024) or not np.isfinite(x).all():
                raise AssertionError(f"{vid}: features of shape {x.shape}, finite: {bool(np.isfinite(x).all())}")
        return (f"{len(result.extracted)} videos, {result.frames} frames, {self.weights_note}"
                + (", bfloat16 autocast" if amp else ""))

    # -- 5. detect with a checkpoint trained on those features
    def detect(self) -> str:
        from tadkit import api
        out = self.work / "runs" / "on_i3d_features"
        overrides = [f"data.annotations={self.videos / 'annotations.json'}",
                     f"data.features={self.work / 'i3d_features'}",
                     "data.test_subset=testing", "model.max_seq_len=16", "model.embed_dim=32", "model.fpn_dim=32",
                     "model.head_dim=32", "model.branch_layers=2", "model.window_size=5",
                     "model.regression_ranges=[[0,4],[4,8],[8,10000]]", "test.tiou=thumos14", *SCHEDULE,
                     "train.batch_size=1", f"train.device={self.device}", f"output_dir={out}",
                     *amp_overrides(self.device)]
        _, _, steps, _ = train_run(ROOT / "configs" / "actionformer" / "custom.yaml", overrides, self.device)
        video = self.test_video()
        res = api.detect(out / "config.yaml", out / "checkpoints" / "last.pt", video, weights=self.weights,
                         out=self.work / "detect.json", device=self.device, progress=False)["results"]
        if list(res) != [video.stem]:
            raise AssertionError(f"detections: {res}")
        return f"trained {plural(steps, 'step')} on the features; {plural(len(res[video.stem]), 'detection')}"

    # -- 6. end to end from frames
    def e2e(self, method: str) -> str:
        config, tiny = E2E[method]
        out = self.work / "runs" / f"e2e_{method}"
        overrides = ([f"data.annotations={self.videos / 'annotations.json'}", f"data.videos={self.videos / 'videos'}"]
                     + ([f"data.flow_videos={self.videos / 'videos'}"] if method == "sptad" else [])
                     + tiny + E2E_COMMON + SCHEDULE + [f"train.device={self.device}", f"output_dir={out}"]
                     + amp_overrides(self.device))
        result, facts, steps, loss = train_run(ROOT / config, overrides, self.device)
        self.runs[f"e2e {method}"] = out
        if not result.predictions or not result.predictions.get("results"):
            raise AssertionError("no test predictions")
        streams = "two-stream" if method == "sptad" else "RGB"
        return f"{plural(steps, 'step')}, loss {loss:.3g}, {facts['dtype']} autocast, {streams}, I3D width 0.125"

    def detect_e2e(self) -> str:
        from tadkit import api
        run = self.runs["e2e pointtad"]
        video = self.test_video()
        res = api.detect(run / "config.yaml", run / "checkpoints" / "last.pt", video, out=self.work / "detect_e2e.json",
                         device=self.device, progress=False)["results"]
        if list(res) != [video.stem]:
            raise AssertionError(f"detections: {res}")
        return plural(len(res[video.stem]), "detection")


def run_all(work: Path, device: str, nproc: int, verbose: bool) -> list[dict]:
    runner = Runner(device, verbose)
    checks = Checks(work, device, nproc)
    run = runner.run
    run("synthetic features", checks.synthetic_features)
    run("synthetic videos", checks.synthetic_videos)
    for method in METHODS:
        run(f"train {method}", lambda m=method: checks.train(m), needs=("synthetic features",))
    if device == "cuda":
        run("train actionformer float16", lambda: checks.train("actionformer", "float16"),
            needs=("synthetic features",))
    for method in METHODS:
        run(f"predict {method}", lambda m=method: checks.predict(m), needs=(f"train {method}",))
    run("torchrun", checks.torchrun, needs=("synthetic features",), in_process=False)
    run("extract", checks.extract, needs=("synthetic videos",))
    run("detect", checks.detect, needs=("extract",))
    for method in E2E:
        run(f"e2e {method}", lambda m=method: checks.e2e(m), needs=("synthetic videos",))
    run("detect e2e", checks.detect_e2e, needs=("e2e pointtad",))
    return runner.rows


def print_table(rows: list[dict]) -> None:
    head = ["check", "passed", "seconds", "note"]
    cells = [[r["check"], "yes" if r["passed"] else "NO", f"{r['seconds']:.1f}", r["note"]] for r in rows]
    widths = [max(len(h), *(len(c[i]) for c in cells)) for i, h in enumerate(head)]
    print()
    print(" | ".join(h.ljust(w) for h, w in zip(head, widths)).rstrip())
    print("-+-".join("-" * w for w in widths))
    for c in cells:
        print(" | ".join(x.ljust(w) for x, w in zip(c, widths)).rstrip())


def results_path(device: str, given: Path | None) -> Path | None:
    """``--results``, else the GPU record for a CUDA run; a CPU run writes nothing unless asked."""
    if given is not None:
        return given
    return _results.RESULTS_DIR / "gpu_check.json" if device == "cuda" else None


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", choices=("cuda", "cpu"), default="cuda", help="where to run (default cuda)")
    ap.add_argument("--out", type=Path, help="work here and keep it (an empty or new folder; default: a temporary one)")
    ap.add_argument("--results", type=Path, metavar="JSON",
                    help="write the results here (default benchmarks/results/gpu_check.json with --device cuda; "
                         "with --device cpu nothing is written unless this is given)")
    ap.add_argument("--nproc", type=int, default=1, help="processes of the torchrun check (default 1)")
    ap.add_argument("--threads", type=int, help="torch CPU threads (default: torch's)")
    ap.add_argument("--verbose", action="store_true", help="also show what the checks print (on stderr)")
    args = ap.parse_args(argv)
    if args.nproc < 1:
        ap.error("--nproc must be at least 1")
    if args.out is not None and args.out.exists() and (not args.out.is_dir() or any(args.out.iterdir())):
        ap.error(f"--out {args.out} must be an empty folder or a new path")
    import torch
    if args.device == "cuda" and not torch.cuda.is_available():
        print("gpu_check: --device cuda but no GPU is visible (torch.cuda.is_available() is False); "
              "run with --device cpu to check the CPU paths", file=sys.stderr)
        return 2
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.device == "cuda" and args.nproc > torch.cuda.device_count():
        ap.error(f"--nproc {args.nproc} needs as many GPUs; {torch.cuda.device_count()} visible "
                 "(nccl refuses two processes on one GPU)")
    results = results_path(args.device, args.results)
    device_name = torch.cuda.get_device_name(0) if args.device == "cuda" else "cpu"
    print(f"tadkit GPU check on {device_name} (torch {torch.__version__}, {torch.get_num_threads()} CPU threads)",
          flush=True)

    start = time.perf_counter()
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        rows = run_all(args.out.resolve(), args.device, args.nproc, args.verbose)
    else:
        work = Path(tempfile.mkdtemp(prefix="tadkit_gpu_check_"))
        try:
            rows = run_all(work, args.device, args.nproc, args.verbose)
        finally:
            shutil.rmtree(work, ignore_errors=True)
    total = time.perf_counter() - start
    print_table(rows)
    failed = [r["check"] for r in rows if not r["passed"]]
    print(f"\n{len(rows) - len(failed)} of {len(rows)} checks passed in {total:.0f} s"
          + (f"; failed: {', '.join(failed)}" if failed else ""))
    if results is not None:
        amp = "autocast (train.amp, train.amp_dtype)" if args.device == "cuda" else "bfloat16 autocast (train.cpu_amp)"
        _results.save("gpu_check", rows, results, threads=torch.get_num_threads(), device=device_name,
                      columns=["check", "passed", "seconds", "note"]
                      + (["peak_gpu_mib"] if args.device == "cuda" else []),
                      setting=f"every device path once at a tiny size on {args.device}: a few training steps of each "
                              f"detector under {amp}, predict, torchrun ({args.nproc} process"
                              f"{'es' if args.nproc > 1 else ''}), extract, detect, end-to-end training; "
                              f"{len(rows) - len(failed)} of {len(rows)} passed in {total:.0f} s",
                      argv=argv)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
