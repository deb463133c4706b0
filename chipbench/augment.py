"""Seeded SimCLR augmentation of CIFAR-10 images, in numpy (no torchvision).

:func:`simclr_views` reproduces the sthalles/SimCLR view pipeline used by the Ascend
report: for each image, two independent views made by

1. ``RandomResizedCrop(32, scale=(0.08, 1.0), ratio=(3/4, 4/3))``, bilinear: up to 10
   attempts to draw an area fraction and a log-uniform aspect ratio that fit, then the
   centre-crop fallback, exactly like torchvision's ``get_params``.  Bilinear sampling
   uses half-pixel centres and clamps at the crop's edges (PIL/torch
   ``align_corners=False``; a crop of at most 32 px is only ever enlarged, so antialiasing
   plays no part);
2. ``RandomHorizontalFlip(p=0.5)``;
3. ``RandomApply([ColorJitter(0.8, 0.8, 0.8, 0.2)], p=0.8)``: factors brightness,
   contrast, saturation ~ U(0.2, 1.8) and hue ~ U(-0.2, 0.2), the four operations in a
   random order; brightness multiplies, contrast blends with the mean of the grayscale
   image, saturation blends with the grayscale image, hue rotates the HSV hue (value and
   saturation kept); the result is clamped to [0, 1] after every operation;
4. ``RandomGrayscale(p=0.2)`` with ``0.299 R + 0.587 G + 0.114 B`` copied to 3 channels;
5. sthalles' ``GaussianBlur``: kernel 3, sigma ~ U(0.1, 2.0), reflect padding, separable;
6. ``ToTensor``: float32 in [0, 1], CHW, **no** mean/std normalisation.

Differences from the original, on purpose:

* Everything is computed in float32; the PIL pipeline rounds to uint8 between the
  operations (and sthalles' blur truncates when it converts back to PIL).  Results
  therefore differ from the PIL pipeline by about one grey level, not in distribution.
* It is **seeded**: image ``i`` draws all its random numbers from its own generator
  ``np.random.default_rng([seed, i])`` (view 0 first, then view 1), so the result is
  reproducible and does not depend on how the images are split into chunks.  The
  original was unseeded (its accuracy figure cannot be reproduced exactly) and a later
  revision cast the float views to int8, which turns every pixel into 0 or 1 and destroys
  the input; neither defect is copied.  The random numbers come from numpy, not torch, so
  individual views are not the ones torchvision would draw for any seed.

:func:`simclrv2_views` makes the milder views of the SimCLRv2 (leftthomas) recipe the same
way, normalised with the model's mean and std.
"""

from __future__ import annotations

import math
from typing import Callable

import numpy as np

SIZE = 32
SCALE = (0.08, 1.0)
RATIO = (3.0 / 4.0, 4.0 / 3.0)
FLIP_P = 0.5
JITTER_P = 0.8
BRIGHTNESS = CONTRAST = SATURATION = (0.2, 1.8)  # 1 -/+ 0.8
HUE = (-0.2, 0.2)
GRAYSCALE_P = 0.2
BLUR_SIGMA = (0.1, 2.0)

_LUMA = (np.float32(0.299), np.float32(0.587), np.float32(0.114))
_ONE = np.float32(1.0)
_ZERO = np.float32(0.0)


def crop_params(rng: np.random.Generator, height: int, width: int,
                scale=SCALE, ratio=RATIO) -> tuple[int, int, int, int]:
    """torchvision ``RandomResizedCrop.get_params``: returns ``(top, left, h, w)``."""
    area = height * width
    log_lo, log_hi = math.log(ratio[0]), math.log(ratio[1])
    for _ in range(10):
        target_area = area * rng.uniform(scale[0], scale[1])
        aspect = math.exp(rng.uniform(log_lo, log_hi))
        w = int(round(math.sqrt(target_area * aspect)))
        h = int(round(math.sqrt(target_area / aspect)))
        if 0 < w <= width and 0 < h <= height:
            top = int(rng.integers(0, height - h + 1))
            left = int(rng.integers(0, width - w + 1))
            return top, left, h, w
    in_ratio = width / height
    if in_ratio < min(ratio):
        w = width
        h = int(round(w / min(ratio)))
    elif in_ratio > max(ratio):
        h = height
        w = int(round(h * max(ratio)))
    else:
        w, h = width, height
    return (height - h) // 2, (width - w) // 2, h, w


def _axis_weights(start: int, length: int, out: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Source indices ``lo``, ``hi`` and weight ``frac`` (float32) to resample pixels
    ``start .. start+length-1`` of one axis to ``out`` pixels, half-pixel centres,
    clamped to the crop."""
    src = (np.arange(out, dtype=np.float64) + 0.5) * (length / out) - 0.5
    src = np.clip(src, 0.0, length - 1)
    lo = np.floor(src).astype(np.intp)
    hi = np.minimum(lo + 1, length - 1)
    frac = (src - lo).astype(np.float32)
    return lo + start, hi + start, frac


def resized_crop(img: np.ndarray, top: int, left: int, h: int, w: int, size: int = SIZE) -> np.ndarray:
    """Bilinear resize of ``img[:, top:top+h, left:left+w]`` (float32 CHW) to ``size``x``size``.

    Written as ``a + t * (b - a)`` so a constant region stays exactly constant.
    """
    y0, y1, fy = _axis_weights(top, h, size)
    x0, x1, fx = _axis_weights(left, w, size)
    a = img[:, y0, :]
    rows = a + fy[:, None] * (img[:, y1, :] - a)  # (C, size, W)
    a = rows[:, :, x0]
    return a + fx * (rows[:, :, x1] - a)


def grayscale(img: np.ndarray) -> np.ndarray:
    """Luma ``0.299 R + 0.587 G + 0.114 B`` of a float32 CHW image, shape (H, W)."""
    return _LUMA[0] * img[0] + _LUMA[1] * img[1] + _LUMA[2] * img[2]


def _blend(img: np.ndarray, other, factor: float) -> np.ndarray:
    f = np.float32(factor)
    out = f * img + (_ONE - f) * other
    return np.clip(out, _ZERO, _ONE, out=out)


def adjust_brightness(img: np.ndarray, factor: float) -> np.ndarray:
    out = img * np.float32(factor)
    return np.clip(out, _ZERO, _ONE, out=out)


def adjust_contrast(img: np.ndarray, factor: float) -> np.ndarray:
    return _blend(img, np.float32(grayscale(img).mean(dtype=np.float32)), factor)


def adjust_saturation(img: np.ndarray, factor: float) -> np.ndarray:
    return _blend(img, grayscale(img)[None], factor)


def adjust_hue(img: np.ndarray, shift: float) -> np.ndarray:
    """Rotate the HSV hue of a float32 CHW RGB image in [0, 1] by ``shift`` turns.

    Value (max channel) and saturation are kept, so each pixel keeps its max and min
    channel values; gray pixels are unchanged.
    """
    r, g, b = img[0], img[1], img[2]
    vmax = np.maximum(np.maximum(r, g), b)
    vmin = np.minimum(np.minimum(r, g), b)
    delta = vmax - vmin
    safe = np.where(delta > 0, delta, _ONE)
    # hue in sixths of a turn, in [0, 6)
    hue = np.where(vmax == r, (g - b) / safe,
                   np.where(vmax == g, (b - r) / safe + np.float32(2.0), (r - g) / safe + np.float32(4.0)))
    hue = np.mod(hue + np.float32(6.0 * shift), np.float32(6.0))
    # channel n (R: 5, G: 3, B: 1) = vmax - delta * clip(min(k, 4 - k), 0, 1), k = (n + hue) mod 6
    k = np.mod(np.array([5.0, 3.0, 1.0], dtype=np.float32)[:, None, None] + hue, np.float32(6.0))
    ramp = np.clip(np.minimum(k, np.float32(4.0) - k), _ZERO, _ONE)
    out = vmax - delta * ramp
    return np.clip(out, _ZERO, _ONE, out=out)


def gaussian_blur(img: np.ndarray, sigma: float) -> np.ndarray:
    """3-tap Gaussian blur of a float32 CHW image, reflect padding, separable.

    Each pass computes ``x + a * (left + right - 2 x)`` with ``a`` the normalised side
    weight, which equals the weighted sum and keeps a constant image exactly constant.
    """
    side = math.exp(-1.0 / (2.0 * sigma * sigma))
    a = np.float32(side / (1.0 + 2.0 * side))
    two = np.float32(2.0)
    # along H
    p = np.concatenate([img[:, 1:2], img, img[:, -2:-1]], axis=1)
    out = img + a * (p[:, :-2] + p[:, 2:] - two * img)
    # along W
    p = np.concatenate([out[:, :, 1:2], out, out[:, :, -2:-1]], axis=2)
    out = out + a * (p[:, :, :-2] + p[:, :, 2:] - two * out)
    return out


_JITTER_OPS = (adjust_brightness, adjust_contrast, adjust_saturation, adjust_hue)


def _crop_flip_jitter(img: np.ndarray, rng: np.random.Generator, jitter) -> np.ndarray:
    """Random resized crop, flip and (with JITTER_P) colour jitter with the ranges ``jitter``
    (brightness, contrast, saturation, hue) in a random order: the start of every view."""
    _, height, width = img.shape
    top, left, h, w = crop_params(rng, height, width)
    view = resized_crop(img, top, left, h, w)
    if rng.random() < FLIP_P:
        view = view[:, :, ::-1]
    if rng.random() < JITTER_P:
        order = rng.permutation(4)
        factors = tuple(rng.uniform(*bounds) for bounds in jitter)
        for op in order:
            view = _JITTER_OPS[op](view, factors[op])
    return view


def one_view(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One SimCLR view of a float32 CHW image in [0, 1], drawing from ``rng``.

    Draw order: crop (area, log-ratio per attempt, then top, left), flip, jitter-applied,
    [order, brightness, contrast, saturation, hue if applied], grayscale, blur sigma.
    """
    view = _crop_flip_jitter(img, rng, (BRIGHTNESS, CONTRAST, SATURATION, HUE))
    if rng.random() < GRAYSCALE_P:
        view = np.broadcast_to(grayscale(view), view.shape)
    view = gaussian_blur(view, rng.uniform(*BLUR_SIGMA))
    return np.clip(view, _ZERO, _ONE, out=view)


def _progress_callback(progress, total: int):
    """Return ``(update(done), close())`` for ``progress``: None/False (nothing), True
    (tqdm when installed, otherwise nothing) or a callable ``progress(done, total)``."""
    if progress is None or progress is False:
        return None, None
    if callable(progress):
        return (lambda done: progress(done, total)), None
    try:
        from tqdm import tqdm  # optional
    except Exception:
        return None, None
    bar = tqdm(total=total, unit="img", desc="SimCLR views")
    return (lambda done: bar.update(1)), bar.close


def simclr_views(images: np.ndarray, seed: int, *, start_index: int = 0,
                 progress: bool | Callable[[int, int], object] | None = None) -> np.ndarray:
    """Two seeded SimCLR views per image.

    ``images``: uint8 (N, 3, 32, 32).  Returns float32 (2N, 3, 32, 32) in [0, 1]; rows
    ``2k`` and ``2k + 1`` are the views of ``images[k]``, which is image number
    ``start_index + k`` of the whole set and uses the generator
    ``np.random.default_rng([seed, start_index + k])``.  So augmenting images
    ``i0..i1`` alone with ``start_index=i0`` gives exactly rows ``2*i0 .. 2*i1+1`` of
    augmenting the whole set.

    ``progress``: None (default) for no reporting, True for a tqdm bar when tqdm is
    installed (silently nothing otherwise), or a callable ``progress(done, total)``
    called after each image.
    """
    images = np.asarray(images)
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[1:] != (3, SIZE, SIZE):
        raise ValueError(f"images must be uint8 of shape (N, 3, {SIZE}, {SIZE}), got {images.dtype} {images.shape}")
    seed = int(seed)
    start_index = int(start_index)
    if seed < 0 or start_index < 0:
        raise ValueError("seed and start_index must be non-negative")
    n = images.shape[0]
    out = np.empty((2 * n, 3, SIZE, SIZE), dtype=np.float32)
    update, close = _progress_callback(progress, n)
    scale = np.float32(255.0)
    try:
        for k in range(n):
            rng = np.random.default_rng([seed, start_index + k])
            img = images[k].astype(np.float32) / scale
            out[2 * k] = one_view(img, rng)
            out[2 * k + 1] = one_view(img, rng)
            if update is not None:
                update(k + 1)
    finally:
        if close is not None:
            close()
    return out


# ------------------------------------------------------------------------------ SimCLRv2

#: Views of the SimCLRv2 (leftthomas) recipe: ColorJitter(0.4, 0.4, 0.4, 0.1) with p = 0.8.
#: Ranges of brightness, contrast, saturation and hue, as for `one_view`.
V2_JITTER = ((0.6, 1.4), (0.6, 1.4), (0.6, 1.4), (-0.1, 0.1))


def _v2_view(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One leftthomas-style view of a float32 CHW image in [0, 1] (no blur, milder jitter)."""
    view = _crop_flip_jitter(img, rng, V2_JITTER)
    if rng.random() < GRAYSCALE_P:
        view = np.broadcast_to(grayscale(view), view.shape)
    return np.clip(view, np.float32(0.0), np.float32(1.0))


def simclrv2_views(images: np.ndarray, seed: int, mean, std, *, start_index: int = 0) -> np.ndarray:
    """Two views per image for SimCLRv2 stage 1, normalised: float32 (2N, 3, 32, 32).

    Rows ``2k`` and ``2k + 1`` are the views of ``images[k]``, drawn from
    ``np.random.default_rng([seed, start_index + k])`` (like :func:`simclr_views`).
    """
    images = np.asarray(images)
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[1:] != (3, 32, 32):
        raise ValueError(f"images must be uint8 (N, 3, 32, 32), got {images.dtype} {images.shape}")
    mean = np.asarray(mean, dtype=np.float32).reshape(3, 1, 1)
    std = np.asarray(std, dtype=np.float32).reshape(3, 1, 1)
    out = np.empty((2 * len(images), 3, 32, 32), dtype=np.float32)
    for k, image in enumerate(images):
        rng = np.random.default_rng([int(seed), int(start_index) + k])
        img = image.astype(np.float32) / np.float32(255.0)
        out[2 * k] = (_v2_view(img, rng) - mean) / std
        out[2 * k + 1] = (_v2_view(img, rng) - mean) / std
    return out
