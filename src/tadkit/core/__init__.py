"""Core types shared by every layer: errors, instances, timing, segment IoU."""
from .errors import CheckpointError, ConfigError, DataError, TadkitError
from .instances import Instances
from .io import atomic_path, atomic_write_json, atomic_write_text, read_json
from .segments import segment_iou, segment_iou_matched
from .timing import FeatureTiming

__all__ = ["TadkitError", "DataError", "ConfigError", "CheckpointError", "Instances", "FeatureTiming",
           "segment_iou", "segment_iou_matched", "atomic_path", "atomic_write_json", "atomic_write_text",
           "read_json"]
