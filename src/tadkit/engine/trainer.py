"""The training loop behind ``tadkit train``.

One run writes into ``output_dir``::

    config.yaml                   the resolved config
    checkpoints/epoch_XXX.pt      after every epoch; the newest train.keep_checkpoints (3; null: all) are kept
    checkpoints/last.pt           the newest epoch; --resume continues from it
    checkpoints/best.pt           the epoch with the best average mAP on data.test_subset
    log.csv                       one row per epoch (losses, lr, mAP when evaluated, time)
    predictions.json              data.test_subset predicted with the final weights (EMA when on)
    metrics.json                  tadkit eval's metrics of those predictions (when the subset has ground truth),
                                  plus segmentation_mAP with test.segmentation (:mod:`tadkit.engine.segmentation`)
    report.html                   the run on one self-contained page (:mod:`tadkit.report`, ``tadkit report``)

Every file is written to a temporary name and renamed. Exactness of ``--resume``: the
shuffling and the crops are functions of ``(seed, epoch)``, the learning rate a function of
the step, and the checkpoint restores model, optimiser, schedule, EMA, gradient scaler and
the RNG states of every process, so training N epochs equals training k, stopping, and
resuming N - k (same weights to float rounding).
"""
from __future__ import annotations

import contextlib
import gc
import math
import random
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
from torch.nn.parallel import DistributedDataParallel
from tqdm.auto import tqdm

from ..config import Config, save_config
from ..core.errors import ConfigError, TadkitError
from ..core.io import OutputLock, atomic_write_json, check_output_dir, remove_stale_temporaries
from . import builders
from .checkpoint import (check_compatible, copy_checkpoint, load_checkpoint, load_weights, rng_state,
                         save_checkpoint, set_rng_state)
from .distributed import DistContext, DistributedError, EpochBatchSampler, init_distributed
from .ema import ModelEMA
from .inference import detections_per_video, load_video_scores, predict_windows, results_dict, to_device
from .log import RunLog, logger
from .optim import WarmupSchedule, build_optimizer
from .segmentation import segmentation_metrics

__all__ = ["Trainer", "TrainResult", "train", "seed_everything", "evaluate_predictions"]

Callback = Callable[["Trainer", int], None]


@dataclass
class TrainResult:
    """What a run produced: paths, final metrics (``None`` without ground truth), best epoch."""

    output_dir: Path
    predictions: dict | None
    metrics: dict | None
    best: dict | None
    history: list[dict] = field(default_factory=list)


def cpu_amp_enabled(setting: bool | str) -> bool:
    """``train.cpu_amp``: true / false, or ``auto``: whether this CPU has bfloat16 matrix units (AMX or
    AVX512-BF16), on which bfloat16 autocast trains the full-size one-stage models about 2x faster than
    float32 (elsewhere bfloat16 is emulated, and slower)."""
    if setting == "auto":
        cpu = torch.cpu
        return bool(getattr(cpu, "_is_amx_tile_supported", lambda: False)()
                    or getattr(cpu, "_is_avx512_bf16_supported", lambda: False)())
    return bool(setting)


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (all devices)."""
    random.seed(seed)
    np.random.seed(seed % 2 ** 32)
    torch.manual_seed(seed)


def _rank_seed(seed: int, rank: int) -> int:
    """The seed of a process's training-time randomness (dropout), distinct per process."""
    return int(np.random.SeedSequence([seed, rank, 7]).generate_state(1)[0])


def has_ground_truth(ann, subset: str) -> bool:
    return any(len(v.labels) for v in ann.select(subset))


def evaluate_predictions(ann, results: dict, cfg: Config) -> dict:
    """``tadkit eval``'s metrics (:func:`tadkit.evaluation.api.evaluate_detection`) of a results dict."""
    from ..evaluation.api import Predictions, evaluate_detection
    return evaluate_detection(ann, Predictions.from_dict(results), subset=cfg.data.test_subset,
                              tiou=cfg.test.tiou, exclude_ignored=cfg.test.exclude_ignored)


def _config_diff(old: dict, new: dict, prefix: str = "") -> list[str]:
    keys = []
    for k in sorted(set(old) | set(new)):
        a, b = old.get(k), new.get(k)
        name = f"{prefix}{k}"
        if isinstance(a, dict) and isinstance(b, dict):
            keys += _config_diff(a, b, name + ".")
        elif a != b:
            keys.append(name)
    return keys


class Trainer:
    """Trains one configuration; :meth:`run` does the whole job (see the module docstring).

    ``build_dataset`` / ``build_model`` default to :mod:`tadkit.engine.builders`; ``callbacks``
    are called as ``callback(trainer, epoch)`` on every process after each epoch's checkpoint
    (raising ``KeyboardInterrupt`` there stops a run as an interruption would).
    """

    def __init__(self, cfg: Config, *, dist: DistContext | None = None,
                 build_dataset: builders.DatasetBuilder | None = None,
                 build_model: builders.ModelBuilder | None = None, callbacks: Sequence[Callback] = (),
                 stream=None):
        if cfg.output_dir is None:
            raise ConfigError("output_dir is not set", path=cfg.source,
                              fix="set output_dir in the config or pass output_dir=DIR")
        self.cfg = cfg
        self.dist = dist or DistContext()
        self.build_dataset = build_dataset or builders.build_dataset
        self.build_model = build_model or builders.build_model
        self.callbacks = list(callbacks)
        self.stream = stream
        self.out = Path(cfg.output_dir)
        self.lock = OutputLock(self.out, "tadkit train")
        self.ckpt_dir = self.out / "checkpoints"
        t = cfg.train
        self.device = self.dist.device
        self.use_amp = bool(t.amp if self.device.type == "cuda" else
                            self.device.type == "cpu" and cpu_amp_enabled(t.cpu_amp))
        # the CPU autocasts to bfloat16 only (float16 there has no fast kernels and would need a scaler)
        self.amp_dtype = torch.bfloat16 if t.amp_dtype == "bfloat16" or self.device.type == "cpu" else torch.float16
        self.epoch = 0            # completed epochs
        self.global_step = 0
        self.best: dict | None = None
        self._last_eval: tuple[int, dict, dict | None] | None = None   # (epoch, results, metrics)

    # -- set-up ----------------------------------------------------------------------------------
    def _autocast(self):
        if self.use_amp:
            return torch.autocast(device_type=self.device.type, dtype=self.amp_dtype)
        return contextlib.nullcontext()

    def setup(self, resume: bool) -> None:
        cfg, t = self.cfg, self.cfg.train
        check_output_dir(self.out, "output_dir")
        if self.dist.is_main:           # one live run per folder; an existing folder is locked before any check
            self.lock.acquire(create=False)
        last = self.ckpt_dir / "last.pt"
        if not resume and last.exists():
            raise ConfigError("output_dir already holds the checkpoints of a run", path=self.out,
                              fix="pass --resume to continue it, or choose another output_dir")
        if resume and not last.exists():
            raise ConfigError("nothing to resume: no checkpoints/last.pt", path=self.out,
                              fix="run without --resume to start training")
        if t.deterministic:
            torch.use_deterministic_algorithms(True, warn_only=True)
            torch.backends.cudnn.benchmark = False
        seed_everything(t.seed)
        self.train_set = self.build_dataset(cfg, cfg.data.train_subset, training=True)
        self.info = builders.model_info(cfg, self.train_set)
        self.model = self.build_model(cfg, self.info).to(self.device)
        self.optimizer = build_optimizer(self.model, t)
        self.sampler = EpochBatchSampler(len(self.train_set), t.batch_size, rank=self.dist.rank,
                                         world_size=self.dist.world_size, seed=t.seed)
        self.schedule = WarmupSchedule(self.optimizer, t, len(self.sampler))
        self.ema = ModelEMA(self.model, t.ema_decay, t.ema_warmup) if t.ema_decay is not None else None
        self.scaler = torch.amp.GradScaler("cuda") if self.use_amp and self.amp_dtype == torch.float16 else None
        history = None
        if resume:
            history = self._restore(load_checkpoint(last))
        else:
            seed_everything(_rank_seed(t.seed, self.dist.rank))
        self.ddp = self.model
        if self.dist.distributed:
            self.ddp = DistributedDataParallel(self.model, find_unused_parameters=t.find_unused_parameters)
        self.annotations = builders.load_annotations(cfg, classes=self.info["classes"])
        self.can_evaluate = has_ground_truth(self.annotations, cfg.data.test_subset)
        # built now, so that a problem with the test data shows before hours of training
        self.test_set = self.build_dataset(cfg, cfg.data.test_subset, training=False, classes=self.info["classes"])
        self.video_scores = (load_video_scores(cfg.test.video_scores, self.info["classes"])
                             if cfg.test.video_scores else None)
        if self.dist.is_main:           # everything checked: the first write
            self.lock.acquire()
            remove_stale_temporaries(self.out)   # what a killed run was writing
        self.log = RunLog(self.out, enabled=self.dist.is_main, tensorboard=t.tensorboard, history=history,
                          stream=self.stream)
        if self.dist.is_main:
            save_config(cfg, self.out / "config.yaml")

    def _restore(self, ckpt: dict) -> list[dict]:
        check_compatible(ckpt, name=self.info["name"], num_classes=self.info["num_classes"],
                         input_dim=self.info["input_dim"])
        changed = [k for k in _config_diff(ckpt["config"], self.cfg.to_dict())
                   if k not in ("train.epochs", "output_dir")]
        if changed and self.dist.is_main:
            logger.warning("resuming with a config that differs from the checkpoint's in %s", ", ".join(changed))
        load_weights(self.model, ckpt["model"], ckpt["path"])
        self.optimizer.load_state_dict(ckpt["optimizer"])
        self.schedule.load_state_dict(ckpt["scheduler"])
        if self.ema is not None:
            if ckpt.get("ema") is not None:
                self.ema.load_state_dict(ckpt["ema"])
            else:
                self.ema = ModelEMA(self.model, self.cfg.train.ema_decay, self.cfg.train.ema_warmup)
        if self.scaler is not None and ckpt.get("scaler"):
            self.scaler.load_state_dict(ckpt["scaler"])
        self.epoch = int(ckpt["epoch"])
        self.global_step = int(ckpt["global_step"])
        self.best = ckpt.get("best")
        states = ckpt.get("rng") or []
        if len(states) == self.dist.world_size:
            set_rng_state(states[self.dist.rank])
        else:
            logger.warning("the checkpoint holds RNG states of %d processes, this run has %d; reseeding",
                           len(states), self.dist.world_size)
            seed_everything(_rank_seed(self.cfg.train.seed + self.epoch, self.dist.rank))
        if self.dist.is_main:
            logger.info("resuming %s after epoch %d", ckpt["path"], self.epoch)
        return list(ckpt.get("history") or [])

    # -- one epoch -------------------------------------------------------------------------------
    def train_epoch(self) -> dict:
        """One pass over the training set; returns the mean of each loss over steps and processes."""
        t = self.cfg.train
        epoch = self.epoch
        self.train_set.set_epoch(epoch)
        self.sampler.set_epoch(epoch)
        self.model.train()
        loader = torch.utils.data.DataLoader(
            self.train_set, batch_sampler=self.sampler, collate_fn=builders.get_collate(self.train_set),
            num_workers=t.num_workers, generator=torch.Generator().manual_seed(t.seed * 1009 + epoch),
            pin_memory=self.device.type == "cuda")
        params = [p for p in self.model.parameters() if p.requires_grad]
        sums: dict[str, torch.Tensor] = {}
        steps = 0
        bar = tqdm(loader, desc=f"epoch {epoch + 1}/{t.epochs}{self._run_eta()}", leave=False,
                   disable=None if (t.progress and self.dist.is_main) else True)
        for batch in bar:
            batch = to_device(batch, self.device)
            with self._autocast():
                losses = self.ddp(batch)
            loss = losses["loss"]
            self.optimizer.zero_grad(set_to_none=True)
            if self.scaler is not None:
                self.scaler.scale(loss).backward()
                self.scaler.unscale_(self.optimizer)
            else:
                loss.backward()
            max_norm = t.clip_grad if t.clip_grad else math.inf
            grad_norm = torch.nn.utils.clip_grad_norm_(params, max_norm)
            if self.scaler is not None:
                self.scaler.step(self.optimizer)
                self.scaler.update()
            else:
                if not torch.isfinite(grad_norm):
                    raise TadkitError(f"training diverged: the gradient is not finite at epoch {epoch + 1}, "
                                      f"step {self.global_step + 1}", path=self.out,
                                      fix="lower train.lr, keep train.clip_grad on, or check the features")
                self.optimizer.step()
            self.schedule.step()
            self.global_step += 1
            if self.ema is not None:
                self.ema.update(self.model, self.global_step - 1)
            for k, v in losses.items():
                v = v.detach().float()
                sums[k] = sums[k] + v if k in sums else v
            steps += 1
            if steps % 10 == 0 and bar.disable is False:
                bar.set_postfix(loss=f"{float(loss):.4f}")
        keys = sorted(sums, key=lambda k: (k != "loss", k))
        packed = torch.stack([sums[k] for k in keys] + [torch.tensor(float(steps), device=self.device)])
        packed = self.dist.all_reduce_sum(packed.to(self.device)).cpu()
        return {k: float(packed[i] / packed[-1]) for i, k in enumerate(keys)}

    # -- evaluation ------------------------------------------------------------------------------
    def eval_model(self) -> torch.nn.Module:
        """The weights used for evaluation and the final predictions: the EMA when on."""
        return self.ema.module if self.ema is not None else self.model

    def predict_test(self) -> tuple[dict | None, dict | None]:
        """Predict ``data.test_subset`` (all processes); results and metrics on the main process."""
        cfg = self.cfg
        windows = predict_windows(self.eval_model(), self.test_set, batch_size=cfg.test.batch_size,
                                  dist=self.dist, num_workers=cfg.train.num_workers,
                                  progress=cfg.train.progress, frames=cfg.test.segmentation)
        if not self.dist.is_main:
            return None, None
        dets = detections_per_video(windows, cfg.test, video_scores=self.video_scores,
                                    video_scores_path=cfg.test.video_scores)
        results = results_dict(dets, self.info["classes"])
        metrics = evaluate_predictions(self.annotations, results, cfg) if self.can_evaluate else None
        if metrics is not None and cfg.test.segmentation:
            metrics.update(segmentation_metrics(self.annotations, dets, windows, self.info["classes"],
                                                cfg.data.test_subset, cfg.test))
        return results, metrics

    # -- checkpoints -----------------------------------------------------------------------------
    def checkpoint_state(self) -> dict:
        """Everything a resume needs (collective: gathers every process's RNG state)."""
        rng = self.dist.all_gather_object(rng_state())
        return {
            "epoch": self.epoch, "global_step": self.global_step,
            "model": self.model.state_dict(),
            "ema": self.ema.state_dict() if self.ema is not None else None,
            "optimizer": self.optimizer.state_dict(), "scheduler": self.schedule.state_dict(),
            "scaler": self.scaler.state_dict() if self.scaler is not None else None,
            "rng": rng, "model_info": self.info, "config": self.cfg.to_dict(),
            "best": self.best, "history": self.log.history,
        }

    def save(self, is_best: bool) -> None:
        state = self.checkpoint_state()
        if not self.dist.is_main:
            return
        path = self.ckpt_dir / f"epoch_{self.epoch:03d}.pt"
        save_checkpoint(path, state)
        copy_checkpoint(path, self.ckpt_dir / "last.pt")
        if is_best:
            copy_checkpoint(path, self.ckpt_dir / "best.pt")
        keep = self.cfg.train.keep_checkpoints
        if keep is not None:
            olds = sorted(p for p in self.ckpt_dir.glob("epoch_*.pt") if re.fullmatch(r"epoch_\d+\.pt", p.name))
            for p in olds[:-keep]:
                p.unlink(missing_ok=True)

    # -- the whole run ---------------------------------------------------------------------------
    def _due(self, epoch: int) -> bool:
        every = self.cfg.train.eval_every
        return self.can_evaluate and (epoch == self.cfg.train.epochs or (every > 0 and epoch % every == 0))

    def _run_eta(self) -> str:
        """``, run ETA h:mm:ss`` from the epochs timed so far (evaluations included); empty before the first."""
        times = getattr(self, "_epoch_times", [])
        if not times:
            return ""
        left = sum(times) / len(times) * (self.cfg.train.epochs - self.epoch)
        return f", run ETA {format_seconds(left)}"

    def run(self, resume: bool = False) -> TrainResult:
        self.setup(resume)
        t = self.cfg.train
        self._epoch_times: list[float] = []
        if self.dist.is_main and not self.can_evaluate:
            logger.warning("subset %r has no ground truth: no evaluation during training, no best.pt, "
                           "no metrics.json", self.cfg.data.test_subset)
        try:
            while self.epoch < t.epochs:
                start = time.time()
                losses = self.train_epoch()
                self.epoch += 1
                row = {"epoch": self.epoch, "step": self.global_step,
                       "lr": self.cfg.train.lr * self.schedule.factor(max(0, self.global_step - 1)), **losses}
                is_best = False
                mAP = None
                if self._due(self.epoch):
                    results, metrics = self.predict_test()
                    self._last_eval = (self.epoch, results, metrics)      # on every process (collectives)
                    if self.dist.is_main:
                        mAP = metrics["average_mAP"]
                        is_best = self.best is None or mAP > self.best["average_mAP"]
                        if is_best:
                            self.best = {"epoch": self.epoch, "average_mAP": mAP}
                row.update({"average_mAP": mAP, "best_mAP": self.best["average_mAP"] if self.best else None,
                            "time_s": round(time.time() - start, 2)})
                if self.dist.is_main:
                    self.log.log(row)
                self.save(is_best)
                self.dist.barrier()
                self._epoch_times.append(time.time() - start)
                for cb in self.callbacks:
                    cb(self, self.epoch)
            return self.finish()
        finally:
            self.log.close()

    def finish(self) -> TrainResult:
        """Final predictions (reusing the last epoch's evaluation when there was one) and metrics."""
        if self._last_eval is not None and self._last_eval[0] == self.epoch:
            results, metrics = self._last_eval[1], self._last_eval[2]
        else:
            results, metrics = self.predict_test()
        if self.dist.is_main:
            atomic_write_json(self.out / "predictions.json", results)
            if metrics is not None:
                atomic_write_json(self.out / "metrics.json", metrics)
            self.write_report()
        self.dist.barrier()
        return TrainResult(self.out, results, metrics, self.best, list(self.log.history))

    def write_report(self) -> None:
        """``report.html`` of the finished run (main process); a failure only logs a warning."""
        try:
            from ..report import write_report
            write_report(self.out)
        except Exception as e:  # the report is a view of the run: it must never fail the training
            logger.warning("report.html not written: %s", e)


def format_seconds(seconds: float) -> str:
    """``h:mm:ss`` (``m:ss`` under an hour)."""
    s = int(round(max(0.0, seconds)))
    h, rest = divmod(s, 3600)
    m, sec = divmod(rest, 60)
    return f"{h}:{m:02d}:{sec:02d}" if h else f"{m}:{sec:02d}"


def train(cfg: Config, *, resume: bool = False, build_dataset: builders.DatasetBuilder | None = None,
          build_model: builders.ModelBuilder | None = None, callbacks: Sequence[Callback] = (),
          stream=None) -> TrainResult:
    """Train ``cfg`` (joining the ``torchrun`` process group when launched by it); see :class:`Trainer`."""
    dist = init_distributed(cfg.train.device)
    trainer = None
    try:
        trainer = Trainer(cfg, dist=dist, build_dataset=build_dataset, build_model=build_model,
                          callbacks=callbacks, stream=stream)
        return trainer.run(resume=resume)
    except TadkitError as e:            # this process's own one-line error: the others are told why they stop
        if not isinstance(e, DistributedError):
            dist.report_failure(e.one_line())
        raise
    except Exception as e:              # a collective broken by another process's end, or this one's bug
        elsewhere = dist.stopped_elsewhere(e)
        if elsewhere is not None:
            raise elsewhere from None
        dist.report_failure(f"internal error: {type(e).__name__}: {str(e).strip()[:200]}")
        raise
    finally:
        # the DistributedDataParallel wrapper holds the process group: freed (reference cycles
        # included) before the group is destroyed, so no gloo thread outlives it into interpreter exit
        if trainer is not None:
            trainer.lock.release()
        trainer = None
        if dist.distributed:
            gc.collect()
        dist.close()
