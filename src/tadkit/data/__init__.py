"""Data: annotations (ActivityNet-style, validated), converters, feature stores, windows,
``VideoDataset`` and synthetic data. Importing this package does not import torch; only
:mod:`tadkit.data.dataset` needs it."""
from .annotations import Annotations, VideoAnnotation, find_defects, read_class_list, sanitize
from .features import FeatureStore, open_features, resample_features
from .windows import crop_segments, random_crop, sliding_windows

__all__ = ["Annotations", "VideoAnnotation", "find_defects", "read_class_list", "sanitize", "FeatureStore",
           "open_features", "resample_features", "crop_segments", "random_crop", "sliding_windows",
           "VideoDataset", "collate"]


def __getattr__(name):
    if name in ("VideoDataset", "collate"):
        from . import dataset
        return getattr(dataset, name)
    raise AttributeError(name)
