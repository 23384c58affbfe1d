"""A tiny stand-in detector and config helpers, so the engine is tested on its own.

``ToyDetector`` follows the detector contract (``forward(batch) -> {"loss", ...}``,
``predict(batch) -> list[Instances]``) with a loss that is a plain mean over batch items, so
data-parallel training over N processes equals one process with the same global batch.
It has a LayerNorm, biases, a learnable ``scale`` and optional dropout, which exercise the
optimiser's no-decay rules and the RNG restore on resume.
"""
from __future__ import annotations

import copy

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from tadkit.config import load_config
from tadkit.core.instances import Instances
from tadkit.data.synthetic import make_synthetic

TOY_DEFAULTS = {"max_seq_len": 64, "hidden": 8, "dropout": 0.0, "topk": 50}


def toy_defaults(name: str) -> dict:
    """``defaults_fn`` for :func:`tadkit.config.load_config`: the toy model's keys."""
    if name != "toy":
        from tadkit.config import model_defaults
        return model_defaults(name)
    return dict(TOY_DEFAULTS)


class ToyDetector(nn.Module):
    def __init__(self, num_classes: int, input_dim: int, max_seq_len: int = 64, hidden: int = 8,
                 dropout: float = 0.0, topk: int = 50):
        super().__init__()
        self.num_classes, self.topk = num_classes, topk
        self.proj = nn.Conv1d(input_dim, hidden, 3, padding=1)
        self.norm = nn.LayerNorm(hidden)
        self.drop = nn.Dropout(dropout)
        self.cls = nn.Conv1d(hidden, num_classes, 1)
        self.reg = nn.Conv1d(hidden, 2, 1)
        self.scale = nn.Parameter(torch.ones(1))

    def run(self, batch):
        x = batch["feats"].float()                                           # (B, C, T)
        h = F.relu(self.proj(x))                                             # (B, H, T)
        h = self.drop(self.norm(h.transpose(1, 2)).transpose(1, 2))          # (B, H, T)
        return self.cls(h), self.scale * self.reg(h)                         # (B, K, T), (B, 2, T)

    def forward(self, batch):
        logits, reg = self.run(batch)
        masks = batch["masks"]                                               # (B, T)
        t = torch.arange(masks.shape[1], dtype=torch.float32, device=masks.device)
        cls_losses, reg_losses = [], []
        for b in range(len(masks)):
            segs, labels = batch["segments"][b].float(), batch["labels"][b]
            inside = (t[None, :] >= segs[:, :1]) & (t[None, :] <= segs[:, 1:])   # (N, T)
            target = torch.zeros_like(logits[b])                                # (K, T)
            for k in range(self.num_classes):
                target[k] = inside[labels == k].any(dim=0).float()
            valid = masks[b]
            cls_losses.append(F.binary_cross_entropy_with_logits(logits[b][:, valid], target[:, valid]))
            pos = inside.any(dim=0) & valid
            if pos.any():
                first = inside.float().argmax(dim=0)                            # (T,) some segment covering t
                dist = torch.stack([t - segs[first, 0], segs[first, 1] - t])    # (2, T)
                reg_losses.append(F.l1_loss(reg[b][:, pos], torch.log1p(dist[:, pos])))
            else:
                reg_losses.append(reg[b].sum() * 0.0)
        cls_loss = torch.stack(cls_losses).mean()
        reg_loss = torch.stack(reg_losses).mean()
        return {"loss": cls_loss + reg_loss, "cls_loss": cls_loss, "reg_loss": reg_loss}

    @torch.no_grad()
    def predict(self, batch):
        logits, reg = self.run(batch)
        out = []
        for b in range(len(logits)):
            n = int(batch["masks"][b].sum())
            p = logits[b, :, :n].sigmoid()                                      # (K, T)
            d = torch.expm1(reg[b, :, :n].clamp(min=0))                         # (2, T)
            score, idx = p.flatten().topk(min(self.topk, p.numel()))
            k, t = idx // n, idx % n
            segs = torch.stack([t - d[0, t], t + d[1, t]], dim=1)               # (N, 2)
            out.append(Instances(segs.double().numpy(), k.numpy(), score.double().numpy()))
        return out


def build_toy(cfg, info) -> nn.Module:
    """``build_model`` for the trainer: the toy detector with the sizes of ``info``."""
    return ToyDetector(info["num_classes"], info["input_dim"], info["max_seq_len"], **info["params"])


def make_data(root, videos: int = 6, seed: int = 0) -> dict:
    """A small synthetic dataset (short videos, 8-d features); returns its meta."""
    return make_synthetic(root, videos=videos, classes=3, seed=seed, feature_dim=8, min_duration=20.0,
                          max_duration=40.0, test_fraction=0.34)


def toy_config(data_dir, out_dir, **sections):
    """A validated config for the toy model on ``data_dir``; ``sections`` update data/train/test/model."""
    tree = {
        "data": {"annotations": str(data_dir / "annotations.json"), "features": str(data_dir / "features"),
                 "fps": 30.0, "feature_stride": 4.0, "feature_window": 16.0},
        "model": {"name": "toy"},
        "train": {"epochs": 4, "batch_size": 2, "lr": 1e-2, "warmup_epochs": 1, "eval_every": 2,
                  "ema_decay": 0.9, "progress": False},
        "test": {"tiou": "thumos14"},
        "output_dir": str(out_dir),
    }
    for name, values in sections.items():
        tree[name] = {**tree.get(name, {}), **values} if isinstance(values, dict) else values
    return load_config(copy.deepcopy(tree), defaults_fn=toy_defaults)


def state_close(a: dict, b: dict, atol: float = 1e-6) -> bool:
    return a.keys() == b.keys() and all(np.allclose(a[k].float().numpy(), b[k].float().numpy(), atol=atol)
                                        for k in a)


def predictions_close(a: dict, b: dict, atol: float = 1e-5) -> bool:
    """Two ActivityNet results dicts with the same videos, labels and (to ``atol``) segments and scores."""
    ra, rb = a["results"], b["results"]
    if ra.keys() != rb.keys():
        return False
    for vid in ra:
        da, db = ra[vid], rb[vid]
        if len(da) != len(db) or [d["label"] for d in da] != [d["label"] for d in db]:
            return False
        if not np.allclose([d["segment"] for d in da], [d["segment"] for d in db], atol=atol):
            return False
        if not np.allclose([d["score"] for d in da], [d["score"] for d in db], atol=atol):
            return False
    return True
