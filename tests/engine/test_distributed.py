"""Data-parallel training: 2 CPU processes (gloo, torchrun's environment) == 1 process, same global batch."""
from __future__ import annotations

import os
import socket

import pytest
import torch
import torch.multiprocessing as mp

from tadkit.engine.distributed import EpochBatchSampler, shard_indices
from tadkit.engine.trainer import train

from ._toy import build_toy, predictions_close, state_close, toy_config


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(rank: int, world: int, port: int, cfg) -> None:
    """What torchrun does for each process: set the environment, run the same program."""
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world),
                      LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    train(cfg, build_model=build_toy)


def test_sampler_splits_the_global_batch():
    one = list(EpochBatchSampler(10, 4, seed=3))
    two = [list(EpochBatchSampler(10, 4, rank=r, world_size=2, seed=3)) for r in range(2)]
    assert len(one) == 2 and all(len(b) == 4 for b in one)             # incomplete last batch dropped
    assert [a + b for a, b in zip(*two)] == one                          # rank slices make up the batch
    s = EpochBatchSampler(10, 4, seed=3)
    s.set_epoch(1)
    assert list(s) != one                                                # a new order each epoch
    (small,) = list(EpochBatchSampler(3, 4))                             # smaller than a batch: wrapped
    assert len(small) == 4 and sorted(set(small)) == [0, 1, 2] and small[3] == small[0]
    assert shard_indices(5, 0, 2) + shard_indices(5, 1, 2) == list(range(5))


def test_two_processes_equal_one(toy_data, tmp_path):
    opts = {"train": {"epochs": 3, "batch_size": 2, "eval_every": 3}}
    single = train(toy_config(toy_data, tmp_path / "one", **opts), build_model=build_toy)
    cfg = toy_config(toy_data, tmp_path / "two", **opts)
    mp.spawn(_worker, args=(2, _free_port(), cfg), nprocs=2, join=True)

    a = torch.load(tmp_path / "one" / "checkpoints" / "last.pt", weights_only=True)
    b = torch.load(tmp_path / "two" / "checkpoints" / "last.pt", weights_only=True)
    assert a["global_step"] == b["global_step"] == 6
    assert len(b["rng"]) == 2                                            # one RNG state per process
    assert state_close(a["model"], b["model"], atol=1e-5)
    assert state_close(a["ema"], b["ema"], atol=1e-5)
    assert [r["loss"] for r in a["history"]] == pytest.approx([r["loss"] for r in b["history"]], abs=1e-5)
    import json
    two_preds = json.loads((tmp_path / "two" / "predictions.json").read_text())
    assert predictions_close(single.predictions, two_preds, atol=1e-4)


def test_torchrun_cli_two_cpu_processes(tmp_path):
    """``torchrun --nproc_per_node 2 -m tadkit train`` (gloo): one set of outputs, written by rank 0."""
    import json
    import subprocess
    import sys

    import yaml

    from ._toy import make_data
    from .test_end_to_end import TINY

    make_data(tmp_path / "data", videos=4)
    cfg = {"data": {"annotations": "data/annotations.json", "features": "data/features", "fps": 30.0,
                    "feature_stride": 4.0, "feature_window": 16.0},
           "model": TINY, "train": {"epochs": 2, "batch_size": 2, "warmup_epochs": 1, "eval_every": 1,
                                    "progress": False},
           "test": {"tiou": "thumos14"}, "output_dir": "run"}
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(cfg))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
                           "--master_port", str(_free_port()), "-m", "tadkit", "train", str(tmp_path / "c.yaml")],
                          capture_output=True, text=True, env=env, timeout=240, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.count("average_mAP") == 1                        # one table, from rank 0
    ckpt = torch.load(tmp_path / "run" / "checkpoints" / "last.pt", weights_only=True)
    assert len(ckpt["rng"]) == 2 and ckpt["epoch"] == 2
    assert json.loads((tmp_path / "run" / "metrics.json").read_text())["tiou"][0] == pytest.approx(0.3)
    assert len((tmp_path / "run" / "log.csv").read_text().splitlines()) == 3


def _normalizer_worker(rank: int, world: int, port: int, out: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world),
                      LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    torch.distributed.init_process_group("gloo")
    from tadkit.models import build_detector
    model = build_detector("actionformer", num_classes=2, input_dim=8, max_seq_len=32, embed_dim=8, fpn_dim=8,
                           head_dim=8, num_heads=2).train()
    local = [(3, 9), (5, 0)][rank]                      # this process's positives in two steps
    got = [float(model.normalizer(torch.tensor(n))) for n in local]
    torch.save({"got": got, "buffer": float(model.loss_normalizer)}, f"{out}/rank{rank}.pt")
    torch.distributed.destroy_process_group()


def test_loss_normaliser_follows_the_global_batch(tmp_path):
    """Each process divides its summed loss by EMA(global positives) / N, so the gradient average over N
    processes is the one process's gradient of the global batch, from the first step on."""
    mp.spawn(_normalizer_worker, args=(2, _free_port(), str(tmp_path)), nprocs=2, join=True)
    r0, r1 = (torch.load(tmp_path / f"rank{r}.pt") for r in range(2))
    ema = 100.0                                          # init_loss_norm, momentum 0.9, by hand
    expected = []
    for total in (3 + 5, 9 + 0):
        ema = 0.9 * ema + 0.1 * total
        expected.append(ema / 2)
    assert r0["got"] == pytest.approx(expected) and r1["got"] == pytest.approx(expected)
    assert r0["buffer"] == r1["buffer"] == pytest.approx(ema)
    # summed losses S_r over the ranks' halves: mean_r S_r / got == (S_0 + S_1) / ema_single
    s0, s1 = 2.5, 4.0
    assert (s0 / r0["got"][-1] + s1 / r1["got"][-1]) / 2 == pytest.approx((s0 + s1) / ema)


def _faulty_worker(rank: int, world: int, port: int, cfg, how: str, out: str) -> None:
    """Rank 1 fails at its third training step (killed, or a user error); rank 0 records how it ended."""
    import json
    import time

    from tadkit.core.errors import DataError, TadkitError
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world),
                      LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    steps = {"n": 0}

    def build(cfg, info):
        model = build_toy(cfg, info)
        real = model.forward

        def forward(batch):
            steps["n"] += 1
            if rank == 1 and steps["n"] == 3:
                if how == "kill":
                    os.kill(os.getpid(), 9)
                raise DataError("features of video 'v7' hold NaN", path="/data/v7.npy", fix="re-extract it")
            return real(batch)
        model.forward = forward
        return model

    start = time.time()
    try:
        train(cfg, build_model=build)
        outcome = {"ok": True}
    except TadkitError as e:
        outcome = {"error": e.one_line(), "type": type(e).__name__}
    outcome["seconds"] = time.time() - start
    with open(f"{out}/rank{rank}.json", "w") as f:
        json.dump(outcome, f)


@pytest.mark.parametrize("how", ["kill", "error"])
def test_when_one_process_dies_the_other_stops_with_one_line_naming_it(toy_data, tmp_path, how):
    import json
    import time
    cfg = toy_config(toy_data, tmp_path / "run", train={"epochs": 3, "batch_size": 2, "eval_every": 0})
    ctx = mp.get_context("spawn")
    port = _free_port()
    procs = [ctx.Process(target=_faulty_worker, args=(r, 2, port, cfg, how, str(tmp_path))) for r in range(2)]
    start = time.time()
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
    assert all(p.exitcode is not None for p in procs), "a process hung"
    assert time.time() - start < 120
    rank0 = json.loads((tmp_path / "rank0.json").read_text())
    assert rank0["type"] == "DistributedError" and "\n" not in rank0["error"] and rank0["seconds"] < 60
    if how == "kill":
        assert procs[1].exitcode == -9
        assert "rank 1 of 2 stopped without a word" in rank0["error"]
    else:
        rank1 = json.loads((tmp_path / "rank1.json").read_text())
        assert rank1["type"] == "DataError"
        assert "another process failed: rank 1: /data/v7.npy" in rank0["error"] and "NaN" in rank0["error"]
