"""Losses and label assignment of the one-stage detectors: focal loss, 1-D IoU/GIoU/DIoU, centre sampling."""
from .assign import Targets, assign_batch, assign_targets
from .focal import sigmoid_focal_loss
from .iou import IOU_LOSSES, diou_loss_1d, giou_loss_1d, iou_loss_1d, offsets_to_segments
from .reduction import REDUCTIONS, reduce_loss

__all__ = [
    "sigmoid_focal_loss", "iou_loss_1d", "giou_loss_1d", "diou_loss_1d", "offsets_to_segments", "IOU_LOSSES",
    "assign_targets", "assign_batch", "Targets", "reduce_loss", "REDUCTIONS",
]
