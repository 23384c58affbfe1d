"""Distributed data-parallel plumbing: process group from ``torchrun``, batch sharding, gathering.

Launch with ``torchrun --nproc_per_node N -m tadkit train CFG``: the environment variables
``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR``, ``MASTER_PORT`` select the process;
the backend is ``nccl`` on GPU and ``gloo`` on CPU. ``train.batch_size`` is the **global** batch:
every optimiser step sees the same samples whatever the number of processes, each process
taking an equal slice of it, so N processes give the result of one (to float rounding) when the
model's loss is a mean over the batch.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from datetime import timedelta

import torch
import torch.distributed as tdist

from ..core.errors import ConfigError, TadkitError
from ..cpu_fast_paths import cache_primitives, keep_freed_memory

__all__ = ["DistContext", "DistributedError", "init_distributed", "EpochBatchSampler", "shard_indices"]

_FAILED = "tadkit/failed"       # the store key where the first process to fail says why
_PEER_LOST = ("connection reset", "connection closed", "broken pipe", "gloo", "nccl", "socket", "timed out",
              "timeout", "peer")


class DistributedError(TadkitError):
    """Another process of the run stopped; this one stops too."""


@dataclass
class DistContext:
    """Where this process stands: rank, world size, device; collective helpers that degrade to no-ops."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    owns_group: bool = False

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    def barrier(self) -> None:
        if self.distributed:
            tdist.barrier()

    def all_gather_object(self, obj) -> list:
        """``[obj of rank 0, obj of rank 1, ...]`` on every process."""
        if not self.distributed:
            return [obj]
        out = [None] * self.world_size
        tdist.all_gather_object(out, obj)
        return out

    def broadcast_object(self, obj):
        """Rank 0's ``obj`` on every process."""
        if not self.distributed:
            return obj
        box = [obj]
        tdist.broadcast_object_list(box, src=0)
        return box[0]

    def all_reduce_sum(self, t: torch.Tensor) -> torch.Tensor:
        if self.distributed:
            t = t.to(self.device)
            tdist.all_reduce(t, op=tdist.ReduceOp.SUM)
        return t

    def report_failure(self, message: str) -> None:
        """Tell the other processes why this one stops (the first report is kept)."""
        if not self.distributed:
            return
        try:
            store = tdist.distributed_c10d._get_default_store()
            store.compare_set(_FAILED, "", f"rank {self.rank}: {message}")
        except Exception:          # the store may be gone with the process that hosted it
            pass

    def stopped_elsewhere(self, error: BaseException, wait: float = 3.0) -> DistributedError | None:
        """The one-line error for this process when ``error`` comes from another process having stopped.

        Reads what the failed process reported (waiting up to ``wait`` seconds for it); a process killed
        without a word (``kill -9``, out of memory) is inferred from the collective's own error.
        """
        if not self.distributed:
            return None
        try:
            store = tdist.distributed_c10d._get_default_store()
            store.wait([_FAILED], timedelta(seconds=wait))
            said = store.get(_FAILED).decode()
        except Exception:
            said = ""
        fix = "read that process's output, then run again (training: with --resume)"
        if said and not said.startswith(f"rank {self.rank}:"):
            return DistributedError(f"stopped because another process failed: {said}", fix=fix)
        text = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        if any(k in text.lower() for k in _PEER_LOST):
            who = f"rank {1 - self.rank}" if self.world_size == 2 else "another process"
            return DistributedError(f"{who} of {self.world_size} stopped without a word (killed, or out of memory?); "
                                    f"rank {self.rank} stops too ({text[:160]})", fix=fix)
        return None

    def close(self) -> None:
        if self.owns_group and tdist.is_initialized():
            tdist.destroy_process_group()
            self.owns_group = False


def resolve_device(pref: str = "auto", local_rank: int = 0, option: str = "train.device") -> torch.device:
    """``auto`` (the GPU of this process when there is one), ``cpu`` or ``cuda``; ``option`` names
    the setting in the error when ``cuda`` is asked for without a GPU."""
    if pref not in ("auto", "cpu", "cuda"):
        raise ConfigError(f"{option} must be auto, cpu or cuda, got {pref!r}", fix=f"set {option} to one of those")
    if pref == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"{option} is cuda but no GPU is visible", fix=f"set {option} to cpu or auto")
    if pref in ("auto", "cuda") and torch.cuda.is_available():
        torch.cuda.set_device(local_rank % torch.cuda.device_count())
        return torch.device("cuda", local_rank % torch.cuda.device_count())
    keep_freed_memory()   # large CPU tensors reused, not mapped afresh each step (tadkit.cpu_fast_paths)
    cache_primitives()    # compiled kernels of every sequence length kept
    return torch.device("cpu")


def init_distributed(device_pref: str = "auto") -> DistContext:
    """Join (or create, under ``torchrun``) the default process group; a single process otherwise."""
    if tdist.is_available() and tdist.is_initialized():
        rank, world = tdist.get_rank(), tdist.get_world_size()
        local = int(os.environ.get("LOCAL_RANK", rank))
        device = resolve_device(device_pref, local)
        if tdist.get_backend() == "gloo" and device.type == "cuda" and world > 1:
            device = torch.device("cpu")  # an existing gloo group: stay on the CPU
        return DistContext(rank, world, local, device, owns_group=False)
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistContext(device=resolve_device(device_pref, 0))
    rank = int(os.environ["RANK"])
    local = int(os.environ.get("LOCAL_RANK", rank))
    device = resolve_device(device_pref, local)
    backend = "nccl" if device.type == "cuda" else "gloo"
    kwargs = {"device_id": device} if backend == "nccl" else {}
    # a generous timeout: the main process evaluates alone while the others wait at the next collective
    tdist.init_process_group(backend=backend, rank=rank, world_size=world, timeout=timedelta(minutes=60), **kwargs)
    return DistContext(rank, world, local, device, owns_group=True)


class EpochBatchSampler:
    """Batches of dataset indices: a seeded permutation per epoch, cut into global batches,
    each process taking its slice.

    The permutation depends on ``(seed, epoch)`` only, so it is the same on every process and
    after a resume. An incomplete last batch is dropped (as ActionFormer does), except when the
    dataset is smaller than one batch: then the single batch is filled by wrapping around.
    """

    def __init__(self, num_items: int, batch_size: int, *, rank: int = 0, world_size: int = 1, seed: int = 0,
                 shuffle: bool = True):
        if batch_size % world_size:
            raise ConfigError(f"train.batch_size {batch_size} does not split over {world_size} processes",
                              fix=f"use a multiple of {world_size}")
        if num_items < 1:
            raise ConfigError("the training set is empty", fix="check data.train_subset and the features")
        self.num_items, self.batch_size = num_items, batch_size
        self.rank, self.world_size, self.seed, self.shuffle = rank, world_size, seed, shuffle
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return max(1, self.num_items // self.batch_size)

    def __iter__(self):
        if self.shuffle:
            g = torch.Generator().manual_seed(self.seed * 100003 + self.epoch)
            order = torch.randperm(self.num_items, generator=g).tolist()
        else:
            order = list(range(self.num_items))
        if self.num_items < self.batch_size:
            order = [order[i % self.num_items] for i in range(self.batch_size)]
        local = self.batch_size // self.world_size
        for b in range(len(self)):
            batch = order[b * self.batch_size:(b + 1) * self.batch_size]
            yield batch[self.rank * local:(self.rank + 1) * local]


def shard_indices(n: int, rank: int, world_size: int) -> list[int]:
    """Contiguous, nearly equal share of ``range(n)`` for one process (inference)."""
    lo = n * rank // world_size
    hi = n * (rank + 1) // world_size
    return list(range(lo, hi))
