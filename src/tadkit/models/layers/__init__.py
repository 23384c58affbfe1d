"""Shared one-stage blocks: masked convs, local-window transformer, pyramid backbone, necks, points, heads.

Tensors are (B, C, T) and travel with a (B, T) bool mask (True = valid step); every block
returns the mask of its output and keeps invalid steps at zero.
"""
from .attention import (AffineDropPath, ChannelAttention, Dropout, LocalMaskedMHCA, TransformerBlock, add_branch,
                        dropout, local_attention, sine_position_encoding)
from .backbone import ConvTransformerBackbone, per_level
from .conv import (Conv1d, ConvNormAct, conv1d, ConvStack, LayerNorm, MaskedConv1D, MaskedMaxPool1D, Scale, apply_mask,
                   conv_inputs, downsample_mask, is_channels_last, model_inputs, prefers_channels_last,
                   to_channels_last)
from .heads import ClassificationHead, RegressionHead, pack_levels, unpack_levels
from .neck import NECKS, FPNNeck, IdentityNeck, build_neck
from .points import PointGenerator, parse_regression_ranges

__all__ = [
    "MaskedConv1D", "MaskedMaxPool1D", "LayerNorm", "Scale", "ConvNormAct", "ConvStack", "apply_mask",
    "conv_inputs", "Conv1d", "conv1d", "is_channels_last", "prefers_channels_last", "to_channels_last",
    "downsample_mask", "model_inputs",
    "local_attention", "ChannelAttention", "LocalMaskedMHCA", "TransformerBlock", "AffineDropPath", "add_branch",
    "Dropout", "dropout",
    "sine_position_encoding",
    "ConvTransformerBackbone", "per_level",
    "IdentityNeck", "FPNNeck", "build_neck", "NECKS",
    "PointGenerator", "parse_regression_ranges",
    "ClassificationHead", "RegressionHead", "pack_levels", "unpack_levels",
]
