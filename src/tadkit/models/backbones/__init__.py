"""Video backbones that turn frames into clip features (I3D)."""
from __future__ import annotations

from .i3d import (ENDPOINT_CHANNELS, ENDPOINT_STRIDES, ENDPOINTS, InceptionI3d, build_i3d, i3d_features,
                  load_i3d_weights)

__all__ = ["InceptionI3d", "ENDPOINTS", "ENDPOINT_CHANNELS", "ENDPOINT_STRIDES", "load_i3d_weights", "build_i3d",
           "i3d_features"]
