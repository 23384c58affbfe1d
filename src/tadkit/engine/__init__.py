"""Engine: training loop, optimiser and schedule, EMA, checkpoints, distributed, logging, inference.

``train(cfg)`` runs ``tadkit train``; ``predict(cfg, checkpoint)`` runs ``tadkit predict``.
See :mod:`tadkit.engine.trainer` for what a run writes.
"""
from .checkpoint import load_checkpoint, save_checkpoint
from .distributed import DistContext, EpochBatchSampler, init_distributed
from .ema import ModelEMA
from .inference import detections_per_video, predict_windows, results_dict
from .optim import WarmupSchedule, build_optimizer, lr_factor, parameter_groups
from .predictor import predict
from .trainer import Trainer, TrainResult, train

__all__ = ["train", "predict", "Trainer", "TrainResult", "build_optimizer", "parameter_groups", "lr_factor",
           "WarmupSchedule", "ModelEMA", "save_checkpoint", "load_checkpoint", "DistContext", "init_distributed",
           "EpochBatchSampler", "predict_windows", "detections_per_video", "results_dict"]
