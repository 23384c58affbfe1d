"""Shared post-processing: window merging, (Soft-)NMS, score fusion, dense <-> sparse conversion.

Pipeline after ``Detector.predict`` (feature units, per window)::

    merge_windows -> to_seconds -> postprocess_detections (min score, pre-top-k, batched NMS,
    max detections, optional segment voting) -> optional fusion with video-level class scores

``postprocess_videos`` does the middle step for many videos in one batched pass. Bad settings
raise :class:`tadkit.core.ConfigError`, bad inputs :class:`tadkit.core.DataError`.

numpy only; no torch import in this layer.
"""
from .dense import class_duration_stats, dense_to_sparse, fuse_sparse_dense, gaussian_kernel, sparse_to_dense
from .fusion import fuse_proposals_with_video_scores, rescore_with_video_scores, top_classes
from .merge import merge_windows, to_seconds
from .nms import (NMS_METHODS, SOFT_METHODS, batched_nms, nms, postprocess_detections, postprocess_videos,
                  segment_voting, soft_nms)

__all__ = [
    "nms", "soft_nms", "batched_nms", "postprocess_detections", "postprocess_videos", "segment_voting",
    "NMS_METHODS", "SOFT_METHODS",
    "merge_windows", "to_seconds",
    "fuse_proposals_with_video_scores", "rescore_with_video_scores", "top_classes",
    "sparse_to_dense", "fuse_sparse_dense", "dense_to_sparse", "class_duration_stats", "gaussian_kernel",
]
