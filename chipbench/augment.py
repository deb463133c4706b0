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
from dataclasses import dataclass
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


def _axis_weights(start, length, out: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Source indices ``lo``, ``hi`` and weight ``frac`` (float32) to resample pixels
    ``start .. start+length-1`` of one axis to ``out`` pixels, half-pixel centres,
    clamped to the crop; ``start`` and ``length`` are (n,) arrays, the results (n, out)."""
    start = np.asarray(start, dtype=np.intp)[:, None]
    length = np.asarray(length, dtype=np.intp)[:, None]
    src = (np.arange(out, dtype=np.float64) + 0.5) * (length / out) - 0.5
    src = np.clip(src, 0.0, length - 1)
    lo = np.floor(src).astype(np.intp)
    hi = np.minimum(lo + 1, length - 1)
    frac = (src - lo).astype(np.float32)
    return lo + start, hi + start, frac


def _lerp_along(img: np.ndarray, lo: np.ndarray, hi: np.ndarray, frac: np.ndarray,
                axis: int) -> np.ndarray:
    """``a + frac * (b - a)`` with ``a``, ``b`` each image's pixels ``lo``, ``hi`` along
    ``axis`` (2: rows, 3: columns) of a batch (N, C, H, W); ``lo``, ``hi``, ``frac`` are
    (N, out)."""
    moved = np.moveaxis(img, axis, 1)
    n, length = moved.shape[:2]
    # one take of whole pixel rows (or columns) from a flat copy: far faster than a
    # four-dimensional fancy index
    flat = np.ascontiguousarray(moved).reshape(n * length, -1)
    first = (np.arange(n) * length)[:, None]
    a = flat[first + lo]
    b = flat[first + hi]
    out = a + frac[..., None] * (b - a)
    return np.moveaxis(out.reshape((n, lo.shape[1]) + moved.shape[2:]), 1, axis)


def resized_crop(img: np.ndarray, top, left, h, w, size: int = SIZE) -> np.ndarray:
    """Bilinear resize of ``img[..., top:top+h, left:left+w]`` to ``size``x``size``.

    ``img`` is float32 CHW, or a batch (N, C, H, W) with ``top``, ``left``, ``h``, ``w``
    scalars or one per image. Written as ``a + t * (b - a)`` so a constant region stays
    exactly constant.
    """
    batch = img.reshape((-1,) + img.shape[-3:])
    n = batch.shape[0]
    y0, y1, fy = _axis_weights(np.broadcast_to(top, n), np.broadcast_to(h, n), size)
    x0, x1, fx = _axis_weights(np.broadcast_to(left, n), np.broadcast_to(w, n), size)
    out = _lerp_along(_lerp_along(batch, y0, y1, fy, axis=2), x0, x1, fx, axis=3)
    return out.reshape(img.shape[:-2] + (size, size))


def _per_image(values, img: np.ndarray) -> np.ndarray:
    """A scalar, or one value per image of the batch ``img``, as float32 that broadcasts
    against ``img`` (..., C, H, W)."""
    values = np.asarray(values, dtype=np.float32)
    return values.reshape(values.shape + (1,) * (img.ndim - values.ndim))


def grayscale(img: np.ndarray) -> np.ndarray:
    """Luma ``0.299 R + 0.587 G + 0.114 B`` of float32 (..., 3, H, W) images: (..., H, W)."""
    return _LUMA[0] * img[..., 0, :, :] + _LUMA[1] * img[..., 1, :, :] + _LUMA[2] * img[..., 2, :, :]


def _blend(img: np.ndarray, other, factor) -> np.ndarray:
    f = _per_image(factor, img)
    out = f * img + (_ONE - f) * other
    return np.clip(out, _ZERO, _ONE, out=out)


def adjust_brightness(img: np.ndarray, factor) -> np.ndarray:
    out = img * _per_image(factor, img)
    return np.clip(out, _ZERO, _ONE, out=out)


def adjust_contrast(img: np.ndarray, factor) -> np.ndarray:
    gray = grayscale(img)
    # one contiguous run per image, so the sum is the same whatever the batch holds
    mean = gray.reshape(gray.shape[:-2] + (-1,)).mean(axis=-1, dtype=np.float32)
    return _blend(img, mean[..., None, None, None], factor)


def adjust_saturation(img: np.ndarray, factor) -> np.ndarray:
    return _blend(img, grayscale(img)[..., None, :, :], factor)


def adjust_hue(img: np.ndarray, shift) -> np.ndarray:
    """Rotate the HSV hue of float32 RGB images (..., 3, H, W) in [0, 1] by ``shift`` turns
    (a scalar or one per image).

    Value (max channel) and saturation are kept, so each pixel keeps its max and min
    channel values; gray pixels are unchanged.
    """
    r, g, b = img[..., 0, :, :], img[..., 1, :, :], img[..., 2, :, :]
    vmax = np.maximum(np.maximum(r, g), b)
    vmin = np.minimum(np.minimum(r, g), b)
    delta = vmax - vmin
    safe = np.where(delta > 0, delta, _ONE)
    # hue in sixths of a turn, in [0, 6)
    hue = np.where(vmax == r, (g - b) / safe,
                   np.where(vmax == g, (b - r) / safe + np.float32(2.0), (r - g) / safe + np.float32(4.0)))
    sixths = (6.0 * np.asarray(shift, dtype=np.float64)).astype(np.float32)
    hue = np.mod(hue + sixths.reshape(sixths.shape + (1, 1)), np.float32(6.0))
    # channel n (R: 5, G: 3, B: 1) = vmax - delta * clip(min(k, 4 - k), 0, 1), k = (n + hue) mod 6
    k = np.mod(np.array([5.0, 3.0, 1.0], dtype=np.float32)[:, None, None] + hue[..., None, :, :],
               np.float32(6.0))
    ramp = np.clip(np.minimum(k, np.float32(4.0) - k), _ZERO, _ONE)
    out = vmax[..., None, :, :] - delta[..., None, :, :] * ramp
    return np.clip(out, _ZERO, _ONE, out=out)


def gaussian_blur(img: np.ndarray, sigma) -> np.ndarray:
    """3-tap Gaussian blur of float32 (..., C, H, W) images, reflect padding, separable;
    ``sigma`` a scalar or one per image.

    Each pass computes ``x + a * (left + right - 2 x)`` with ``a`` the normalised side
    weight, which equals the weighted sum and keeps a constant image exactly constant.
    """
    side = np.exp(-1.0 / (2.0 * np.square(np.asarray(sigma, dtype=np.float64))))
    a = _per_image(side / (1.0 + 2.0 * side), img)
    two = np.float32(2.0)
    p = np.concatenate([img[..., 1:2, :], img, img[..., -2:-1, :]], axis=-2)  # along H
    out = img + a * (p[..., :-2, :] + p[..., 2:, :] - two * img)
    p = np.concatenate([out[..., 1:2], out, out[..., -2:-1]], axis=-1)  # along W
    return out + a * (p[..., :-2] + p[..., 2:] - two * out)


_JITTER_OPS = (adjust_brightness, adjust_contrast, adjust_saturation, adjust_hue)


@dataclass(frozen=True)
class ViewDraws:
    """The random choices of a batch of views, one row per view."""

    crops: np.ndarray  #: (V, 4) int: top, left, height, width
    flip: np.ndarray  #: (V,) bool
    jitter_order: np.ndarray  #: (V, 4) int: the jitter ops in the order applied; -1: no jitter
    jitter_factors: np.ndarray  #: (V, 4): brightness, contrast, saturation, hue shift
    gray: np.ndarray  #: (V,) bool
    blur_sigma: np.ndarray | None  #: (V,), or None for views without blur


def view_draws(n_images: int, seed: int, *, start_index: int = 0,
               jitter=(BRIGHTNESS, CONTRAST, SATURATION, HUE), blur: bool = True) -> ViewDraws:
    """The choices of two views per image: image ``k`` draws from its own generator
    ``np.random.default_rng([seed, start_index + k])``, view 0 first.

    Draw order per view: crop (area, log-ratio per attempt, then top, left), flip,
    jitter-applied, [order, brightness, contrast, saturation, hue if applied], grayscale,
    blur sigma (when ``blur``).
    """
    rows = []
    for k in range(n_images):
        rng = np.random.default_rng([seed, start_index + k])
        for _ in range(2):
            crop = crop_params(rng, SIZE, SIZE)
            flip = rng.random() < FLIP_P
            order, factors = (-1,) * 4, (0.0,) * 4
            if rng.random() < JITTER_P:
                order = tuple(rng.permutation(4))
                factors = tuple(rng.uniform(*bounds) for bounds in jitter)
            gray = rng.random() < GRAYSCALE_P
            sigma = rng.uniform(*BLUR_SIGMA) if blur else 0.0
            rows.append((crop, flip, order, factors, gray, sigma))
    crops, flips, orders, factors, grays, sigmas = zip(*rows) if rows else ((),) * 6
    return ViewDraws(
        crops=np.array(crops, dtype=np.intp).reshape(-1, 4),
        flip=np.array(flips, dtype=bool),
        jitter_order=np.array(orders, dtype=np.intp).reshape(-1, 4),
        jitter_factors=np.array(factors, dtype=np.float64).reshape(-1, 4),
        gray=np.array(grays, dtype=bool),
        blur_sigma=np.array(sigmas, dtype=np.float64) if blur else None,
    )


def apply_draws(images: np.ndarray, draws: ViewDraws) -> np.ndarray:
    """Views ``2k`` and ``2k + 1`` of uint8 ``images[k]`` as float32 in [0, 1], made with
    ``draws``: crop, flip, colour jitter in each view's order, grayscale, blur, clamp."""
    views = resized_crop(np.repeat(images, 2, axis=0).astype(np.float32) / np.float32(255.0),
                         *draws.crops.T)
    views = np.where(draws.flip[:, None, None, None], views[..., ::-1], views)
    for position in range(4):
        for op, adjust in enumerate(_JITTER_OPS):
            chosen = np.flatnonzero(draws.jitter_order[:, position] == op)
            if chosen.size:
                views[chosen] = adjust(views[chosen], draws.jitter_factors[chosen, op])
    views = np.where(draws.gray[:, None, None, None], grayscale(views)[:, None], views)
    if draws.blur_sigma is not None:
        views = gaussian_blur(views, draws.blur_sigma)
    return np.clip(views, _ZERO, _ONE, out=views)


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
    return (lambda done: bar.update(done - bar.n)), bar.close


def _check_images(images, seed: int, start_index: int) -> np.ndarray:
    images = np.asarray(images)
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[1:] != (3, SIZE, SIZE):
        raise ValueError(f"images must be uint8 of shape (N, 3, {SIZE}, {SIZE}), got {images.dtype} {images.shape}")
    if int(seed) < 0 or int(start_index) < 0:
        raise ValueError("seed and start_index must be non-negative")
    return images


#: Images augmented at once: large enough for numpy to vectorise well, small enough to stay
#: in cache-friendly memory and to report progress.
CHUNK = 256


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
    called after each chunk of :data:`CHUNK` images.
    """
    images = _check_images(images, seed, start_index)
    n = images.shape[0]
    out = np.empty((2 * n, 3, SIZE, SIZE), dtype=np.float32)
    update, close = _progress_callback(progress, n)
    try:
        for first in range(0, n, CHUNK):
            chunk = images[first:first + CHUNK]
            draws = view_draws(len(chunk), int(seed), start_index=int(start_index) + first)
            out[2 * first:2 * (first + len(chunk))] = apply_draws(chunk, draws)
            if update is not None:
                update(first + len(chunk))
    finally:
        if close is not None:
            close()
    return out


# ------------------------------------------------------------------------------ SimCLRv2

#: Views of the SimCLRv2 (leftthomas) recipe: ColorJitter(0.4, 0.4, 0.4, 0.1) with p = 0.8.
#: Ranges of brightness, contrast, saturation and hue, as for :func:`simclr_views`.
V2_JITTER = ((0.6, 1.4), (0.6, 1.4), (0.6, 1.4), (-0.1, 0.1))


def simclrv2_views(images: np.ndarray, seed: int, mean, std, *, start_index: int = 0) -> np.ndarray:
    """Two views per image for SimCLRv2 stage 1 (no blur, milder jitter), normalised:
    float32 (2N, 3, 32, 32).

    Rows ``2k`` and ``2k + 1`` are the views of ``images[k]``, drawn from
    ``np.random.default_rng([seed, start_index + k])`` (like :func:`simclr_views`).
    """
    images = _check_images(images, seed, start_index)
    mean = np.asarray(mean, dtype=np.float32).reshape(3, 1, 1)
    std = np.asarray(std, dtype=np.float32).reshape(3, 1, 1)
    draws = view_draws(len(images), int(seed), start_index=int(start_index), jitter=V2_JITTER,
                       blur=False)
    return (apply_draws(images, draws) - mean) / std
