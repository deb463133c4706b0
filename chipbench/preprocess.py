"""Deterministic preprocessing of uint8 NCHW images into float32 model input."""

from __future__ import annotations

import numpy as np

CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
"""Per-channel (R, G, B) mean used by the SimCLRv2 report's preprocessing."""
CIFAR10_STD = (0.2023, 0.1994, 0.2010)
"""Per-channel (R, G, B) std used by the SimCLRv2 report's preprocessing."""

_SCALE = np.float32(255.0)


def _check_uint8(images) -> np.ndarray:
    images = np.asarray(images)
    if images.dtype != np.uint8:
        raise TypeError(f"images must be uint8, got {images.dtype}")
    return images


def to_unit_float(images: np.ndarray) -> np.ndarray:
    """uint8 images -> float32 ``x / 255`` in [0, 1], same shape (NCHW stays NCHW)."""
    images = _check_uint8(images)
    return np.divide(images, _SCALE, dtype=np.float32)


def normalize(images: np.ndarray, mean=CIFAR10_MEAN, std=CIFAR10_STD) -> np.ndarray:
    """uint8 NCHW images -> float32 NCHW ``(x / 255 - mean[c]) / std[c]``, computed in float32."""
    images = _check_uint8(images)
    if images.ndim != 4:
        raise ValueError(f"images must be NCHW (4-D), got shape {images.shape}")
    mean = np.asarray(mean, dtype=np.float32).reshape(-1)
    std = np.asarray(std, dtype=np.float32).reshape(-1)
    channels = images.shape[1]
    if mean.shape != (channels,) or std.shape != (channels,):
        raise ValueError(f"mean and std need {channels} values (one per channel), got {mean.size} and {std.size}")
    if not np.all(std > 0):
        raise ValueError(f"std must be positive, got {std.tolist()}")
    out = to_unit_float(images)
    out -= mean[None, :, None, None]
    out /= std[None, :, None, None]
    return out
