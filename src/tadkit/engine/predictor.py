"""``tadkit predict``: a checkpoint applied to a subset (or chosen videos) of a config's data."""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

from ..config import Config
from ..core.errors import CheckpointError
from ..core.io import atomic_write_json, check_output_file
from . import builders
from .checkpoint import check_compatible, checkpoint_weights, load_checkpoint, load_weights
from .distributed import init_distributed
from .inference import detections_per_video, load_video_scores, predict_windows, results_dict

__all__ = ["predict"]


def _check_classes(cfg: Config, classes: list[str], path) -> None:
    """The config's classes (``data.classes``, else the training subset's labels) must be the
    checkpoint's; a config whose annotations name no class at all takes the checkpoint's."""
    mine = builders.load_annotations(cfg).classes
    if not mine or mine == classes:
        return
    if len(mine) != len(classes):
        raise CheckpointError(f"checkpoint was trained for {len(classes)} classes but the config's data has "
                              f"{len(mine)}", path=path,
                              fix="pass the config the checkpoint was trained with (OUTPUT_DIR/config.yaml)")
    diff = next(i for i, (a, b) in enumerate(zip(mine, classes)) if a != b)
    raise CheckpointError(f"checkpoint classes differ from the config's: class {diff} is {classes[diff]!r} in the "
                          f"checkpoint, {mine[diff]!r} in the config", path=path,
                          fix="set data.classes to the training class list (OUTPUT_DIR/config.yaml)")


def predict(cfg: Config, checkpoint, *, features=None, subset: str | None = None,
            videos: Sequence[str] | None = None, out=None, weights: str = "auto",
            build_dataset: builders.DatasetBuilder | None = None,
            build_model: builders.ModelBuilder | None = None, progress: bool | None = None) -> dict:
    """Predict with a trained checkpoint; returns (and writes to ``out``) an ActivityNet results dict.

    Parameters
    ----------
    cfg : the run's config (``OUTPUT_DIR/config.yaml`` is the safest choice).
    checkpoint : a ``.pt`` written by ``tadkit train``.
    features : feature directory (or list) replacing ``data.features``.
    subset : subset to predict (default ``data.test_subset``); ``videos`` picks videos instead.
    weights : ``"auto"`` (the EMA weights when the checkpoint has them, as training evaluates),
        ``"ema"`` or ``"model"`` (the raw weights).
    """
    if out is not None:
        check_output_file(out, "--out")
    build_dataset = build_dataset or builders.build_dataset
    build_model = build_model or builders.build_model
    ckpt = load_checkpoint(checkpoint)
    check_compatible(ckpt, name=cfg.model.name)
    classes = list(ckpt["model_info"]["classes"])
    _check_classes(cfg, classes, ckpt["path"])
    if videos:
        dataset = build_dataset(cfg, subset, training=False, classes=classes, features=features,
                                video_ids=list(videos))
    else:
        dataset = build_dataset(cfg, subset or cfg.data.test_subset, training=False, classes=classes,
                                features=features)
    check_compatible(ckpt, name=cfg.model.name, num_classes=dataset.num_classes, input_dim=dataset.input_dim)
    state = checkpoint_weights(ckpt, weights)
    dist = init_distributed(cfg.train.device)
    try:
        model = build_model(cfg, builders.model_info(cfg, dataset))
        load_weights(model, state, ckpt["path"])
        model.to(dist.device)
        windows = predict_windows(model, dataset, batch_size=cfg.test.batch_size, dist=dist,
                                  num_workers=cfg.train.num_workers,
                                  progress=cfg.train.progress if progress is None else progress)
        results = None
        if dist.is_main:
            scores = load_video_scores(cfg.test.video_scores, classes) if cfg.test.video_scores else None
            dets = detections_per_video(windows, cfg.test, video_scores=scores,
                                        video_scores_path=cfg.test.video_scores)
            results = results_dict(dets, classes)
            if out is not None:
                atomic_write_json(Path(out), results)
        dist.barrier()
        return results
    finally:
        dist.close()
