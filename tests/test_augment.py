"""Tests for chipbench.augment (seeded SimCLR views in numpy)."""

from __future__ import annotations

import colorsys
import itertools
import math
import sys

import numpy as np
import pytest

from chipbench import augment
from chipbench.augment import simclr_views


def _random_images(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(n, 3, 32, 32), dtype=np.uint8)


def _smooth_images(n: int, seed: int = 0) -> np.ndarray:
    """Colourful, smooth images (closer to photos than noise)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:32, 0:32] / 31.0
    a = rng.uniform(0, 1, size=(n, 3, 1, 1))
    b = rng.uniform(-1, 1, size=(n, 3, 1, 1))
    c = rng.uniform(-1, 1, size=(n, 3, 1, 1))
    img = 255 * np.clip(a + 0.5 * b * yy + 0.5 * c * xx, 0, 1)
    return img.astype(np.uint8)


@pytest.fixture(scope="module")
def images() -> np.ndarray:
    return np.concatenate([_random_images(6, 1), _smooth_images(6, 2)])


@pytest.fixture(scope="module")
def views(images) -> np.ndarray:
    return simclr_views(images, seed=123)


# --------------------------------------------------------------------------- contract


def test_shape_dtype_range(images, views):
    assert views.shape == (2 * len(images), 3, 32, 32)
    assert views.dtype == np.float32 and views.flags.c_contiguous
    assert np.isfinite(views).all()
    assert views.min() >= 0.0 and views.max() <= 1.0
    # real float views, not the original's int8 cast (values 0 or 1 only)
    for view in views:
        assert len(np.unique(view)) > 50


def test_same_seed_is_byte_identical(images, views):
    again = simclr_views(images.copy(), seed=123)
    assert again.tobytes() == views.tobytes()


def test_other_seed_differs(images, views):
    other = simclr_views(images, seed=124)
    for k in range(len(views)):
        assert not np.array_equal(other[k], views[k])


def test_chunked_equals_whole(images, views):
    parts = [
        simclr_views(images[0:5], seed=123, start_index=0),
        simclr_views(images[5:6], seed=123, start_index=5),
        simclr_views(images[6:], seed=123, start_index=6),
    ]
    assert np.concatenate(parts).tobytes() == views.tobytes()
    single = simclr_views(images[9:10], seed=123, start_index=9)
    assert single.tobytes() == views[18:20].tobytes()
    # without start_index the chunk is treated as images 0.. and differs
    assert not np.array_equal(simclr_views(images[9:10], seed=123), views[18:20])


def test_views_follow_their_own_image(images, views):
    """Rows 2i and 2i+1 depend on image i only: changing another image leaves them."""
    changed = images.copy()
    changed[3] = 255 - changed[3]
    new = simclr_views(changed, seed=123)
    for k in range(len(images)):
        same = np.array_equal(new[2 * k:2 * k + 2], views[2 * k:2 * k + 2])
        assert same == (k != 3)


def test_views_differ_from_each_other_and_from_image(images, views):
    plain = images.astype(np.float32) / 255
    for k in range(len(images)):
        v0, v1 = views[2 * k], views[2 * k + 1]
        assert np.abs(v0 - v1).mean() > 0.01
        assert np.abs(v0 - plain[k]).mean() > 0.01
        assert np.abs(v1 - plain[k]).mean() > 0.01


def test_empty_input():
    out = simclr_views(np.zeros((0, 3, 32, 32), np.uint8), seed=0)
    assert out.shape == (0, 3, 32, 32) and out.dtype == np.float32


@pytest.mark.parametrize("bad", [
    np.zeros((2, 3, 32, 32), np.float32),
    np.zeros((2, 32, 32, 3), np.uint8),
    np.zeros((3, 32, 32), np.uint8),
    np.zeros((2, 1, 32, 32), np.uint8),
])
def test_rejects_bad_input(bad):
    with pytest.raises(ValueError):
        simclr_views(bad, seed=0)


def test_rejects_negative_seed_or_start():
    x = np.zeros((1, 3, 32, 32), np.uint8)
    with pytest.raises(ValueError):
        simclr_views(x, seed=-1)
    with pytest.raises(ValueError):
        simclr_views(x, seed=0, start_index=-1)


def test_progress_callable(images, monkeypatch):
    monkeypatch.setattr(augment, "CHUNK", 3)  # progress comes per chunk of images
    calls = []
    out = simclr_views(images[:7], seed=5, progress=lambda done, total: calls.append((done, total)))
    assert calls == [(3, 7), (6, 7), (7, 7)]
    monkeypatch.setattr(augment, "CHUNK", 256)
    assert out.tobytes() == simclr_views(images[:7], seed=5).tobytes()


def test_progress_true_without_tqdm(images, monkeypatch):
    monkeypatch.setitem(sys.modules, "tqdm", None)  # makes "import tqdm" fail
    out = simclr_views(images[:2], seed=5, progress=True)
    assert out.tobytes() == simclr_views(images[:2], seed=5).tobytes()


# --------------------------------------------------------------------------- statistics


@pytest.fixture(scope="module")
def gradient_views():
    """A gray image whose brightness rises from left to right, 600 times."""
    x = np.arange(32)
    img = np.broadcast_to((40 + 5 * x).astype(np.uint8), (3, 32, 32))
    batch = np.broadcast_to(img, (600, 3, 32, 32)).copy()
    return simclr_views(batch, seed=7)


def test_flip_probability(gradient_views):
    """Crop, jitter and blur keep the left-right order of a gray gradient (every crop
    is at least 8 px wide), so a view is flipped iff its left column is brighter."""
    left = gradient_views[:, :, :, 0].mean(axis=(1, 2))
    right = gradient_views[:, :, :, -1].mean(axis=(1, 2))
    assert np.all(left != right)
    flipped = (left > right).mean()
    assert abs(flipped - 0.5) < 0.05  # 1200 draws: sd 0.014


def test_grayscale_probability():
    views = simclr_views(_random_images(600, seed=11), seed=8)
    gray = np.all(views[:, 0] == views[:, 1], axis=(1, 2)) & np.all(views[:, 1] == views[:, 2], axis=(1, 2))
    assert abs(gray.mean() - 0.2) < 0.04  # 1200 draws: sd 0.012


def test_jitter_probability_and_random_order():
    """ColorJitter runs in 80 % of views, each op once, in all 24 orders, with factors in
    the recipe's ranges."""
    draws = augment.view_draws(500, seed=9)
    jittered = draws.jitter_order[:, 0] >= 0
    assert abs(jittered.mean() - 0.8) < 0.04  # 1000 draws: sd 0.013
    orders = draws.jitter_order[jittered]
    assert (np.sort(orders, axis=1) == np.arange(4)).all()
    assert {tuple(order) for order in orders} == set(itertools.permutations(range(4)))
    assert (draws.jitter_order[~jittered] == -1).all()
    factors = draws.jitter_factors[jittered]
    for op in range(3):  # brightness, contrast, saturation ~ U(0.2, 1.8)
        assert factors[:, op].min() >= 0.2 and factors[:, op].max() <= 1.8
        assert abs(factors[:, op].mean() - 1.0) < 0.05
    assert factors[:, 3].min() >= -0.2 and factors[:, 3].max() <= 0.2
    assert abs(factors[:, 3].mean()) < 0.02


def _one_view_by_hand(image: np.ndarray, draws: augment.ViewDraws, v: int) -> np.ndarray:
    """View ``v`` made one step at a time from the single-image operations."""
    view = augment.resized_crop(image.astype(np.float32) / np.float32(255.0), *draws.crops[v])
    if draws.flip[v]:
        view = view[:, :, ::-1]
    for op in draws.jitter_order[v]:
        if op >= 0:
            view = augment._JITTER_OPS[op](view, draws.jitter_factors[v, op])
    if draws.gray[v]:
        view = np.broadcast_to(augment.grayscale(view), view.shape)
    if draws.blur_sigma is not None:
        view = augment.gaussian_blur(view, draws.blur_sigma[v])
    return np.clip(view, 0.0, 1.0)


def test_batch_applies_each_views_own_draws_in_order():
    """The batched pipeline equals each view made on its own, op by op in its drawn order
    (bit for bit): the batch never mixes one view's choices into another's."""
    images = np.concatenate([_random_images(20, seed=4), _smooth_images(20, seed=5)])
    views = simclr_views(images, seed=21)
    draws = augment.view_draws(len(images), seed=21)
    assert len({tuple(order) for order in draws.jitter_order}) > 12  # many orders in one batch
    for v in range(len(views)):
        assert views[v].tobytes() == _one_view_by_hand(images[v // 2], draws, v).tobytes(), v


# --------------------------------------------------------------------------- crop


def test_crop_params_bounds_and_distribution():
    rng = np.random.default_rng(0)
    areas, ratios = [], []
    for _ in range(2000):
        top, left, h, w = augment.crop_params(rng, 32, 32)
        assert 1 <= h <= 32 and 1 <= w <= 32
        assert 0 <= top <= 32 - h and 0 <= left <= 32 - w
        areas.append(h * w / 1024)
        ratios.append(w / h)
    areas, ratios = np.array(areas), np.array(ratios)
    assert areas.min() >= 0.06 and areas.max() <= 1.0  # 0.08 up to rounding
    assert ratios.min() >= 0.6 and ratios.max() <= 1.6  # 3/4 .. 4/3 up to rounding
    assert 0.45 < areas.mean() < 0.6  # U(0.08, 1) has mean 0.54; big crops are rejected sometimes


def test_crop_params_fallback():
    rng = np.random.default_rng(0)
    # no attempt can fit: centre crop of the whole (square) image
    assert augment.crop_params(rng, 32, 32, scale=(2.0, 3.0)) == (0, 0, 32, 32)
    # too tall: full width, height from the smallest ratio, centred
    assert augment.crop_params(rng, 40, 20, scale=(2.0, 3.0)) == (6, 0, 27, 20)
    # too wide: full height, width from the largest ratio, centred
    assert augment.crop_params(rng, 20, 40, scale=(2.0, 3.0)) == (0, 6, 20, 27)


def test_resized_crop_identity_and_constant():
    img = np.random.default_rng(0).random((3, 32, 32), dtype=np.float32)
    assert np.array_equal(augment.resized_crop(img, 0, 0, 32, 32), img)
    const = np.full((3, 32, 32), 0.3, np.float32)
    assert np.array_equal(augment.resized_crop(const, 5, 3, 11, 17), const)


def test_resized_crop_bilinear_half_pixel():
    # horizontal ramp, value = column index, cropped to columns 4..7 and scaled 8x
    img = np.broadcast_to(np.arange(32, dtype=np.float32), (3, 32, 32)).copy()
    out = augment.resized_crop(img, 0, 4, 32, 4)
    # output column d samples source x = (d + 0.5) / 8 - 0.5, clamped to [0, 3], plus 4
    src = np.clip((np.arange(32) + 0.5) / 8 - 0.5, 0, 3) + 4
    assert np.allclose(out[0, 0], src, atol=1e-6)
    assert np.allclose(out, out[:, :1, :], atol=0)  # rows stay equal
    # 2x upscaling of a 16x16 crop: the 2nd output pixel is 0.75 * p0 + 0.25 * p1
    rng = np.random.default_rng(1)
    img = rng.random((3, 32, 32), dtype=np.float32)
    out = augment.resized_crop(img, 8, 8, 16, 16)
    assert np.isclose(out[1, 0, 0], img[1, 8, 8])
    assert np.isclose(out[1, 0, 1], 0.75 * img[1, 8, 8] + 0.25 * img[1, 8, 9], atol=1e-6)
    assert np.isclose(out[1, 1, 1], 0.75 * (0.75 * img[1, 8, 8] + 0.25 * img[1, 8, 9])
                      + 0.25 * (0.75 * img[1, 9, 8] + 0.25 * img[1, 9, 9]), atol=1e-6)
    assert np.isclose(out[2, 31, 31], img[2, 23, 23])


# --------------------------------------------------------------------------- colour


def test_grayscale_weights():
    img = np.zeros((3, 2, 2), np.float32)
    img[0, 0, 0] = 1
    img[1, 0, 1] = 1
    img[2, 1, 0] = 1
    img[:, 1, 1] = 1
    g = augment.grayscale(img)
    assert np.allclose(g, [[0.299, 0.587], [0.114, 1.0]], atol=1e-6)


def test_brightness_contrast_saturation():
    rng = np.random.default_rng(2)
    img = rng.random((3, 8, 8), dtype=np.float32)
    assert np.allclose(augment.adjust_brightness(img, 0.5), img * 0.5)
    assert np.array_equal(augment.adjust_brightness(img, 1.0), img)
    assert np.allclose(augment.adjust_brightness(img, 3.0), np.minimum(img * 3, 1))
    gray = augment.grayscale(img)
    assert np.allclose(augment.adjust_contrast(img, 0.0), gray.mean(), atol=1e-6)
    assert np.allclose(augment.adjust_contrast(img, 0.5), 0.5 * img + 0.5 * gray.mean(), atol=1e-6)
    assert np.allclose(augment.adjust_contrast(img, 1.8), np.clip(1.8 * img - 0.8 * gray.mean(), 0, 1), atol=1e-6)
    assert np.allclose(augment.adjust_saturation(img, 0.0), np.broadcast_to(gray, img.shape), atol=1e-6)
    assert np.allclose(augment.adjust_saturation(img, 1.5), np.clip(1.5 * img - 0.5 * gray, 0, 1), atol=1e-6)


def test_hue_matches_colorsys():
    rng = np.random.default_rng(3)
    img = rng.random((3, 16, 16), dtype=np.float32)
    img[:, 0, :4] = 0.5  # some gray pixels
    img[:, 1, 0] = (1.0, 0.2, 0.2)  # max shared by two channels below
    img[:, 1, 1] = (1.0, 1.0, 0.2)
    for shift in (-0.2, -0.05, 0.0, 0.13, 0.2):
        out = augment.adjust_hue(img, shift)
        expected = np.empty_like(img)
        for y in range(16):
            for x in range(16):
                h, s, v = colorsys.rgb_to_hsv(*img[:, y, x].astype(float))
                expected[:, y, x] = colorsys.hsv_to_rgb((h + shift) % 1.0, s, v)
        assert np.allclose(out, expected, atol=2e-6), shift
    assert np.array_equal(augment.adjust_hue(img, 0.1)[:, 0, :4], img[:, 0, :4])


def test_hue_rotates_primaries():
    red = np.zeros((3, 1, 1), np.float32)
    red[0] = 1
    assert np.allclose(augment.adjust_hue(red, 1 / 3)[:, 0, 0], [0, 1, 0], atol=1e-6)
    assert np.allclose(augment.adjust_hue(red, -1 / 3)[:, 0, 0], [0, 0, 1], atol=1e-6)


# --------------------------------------------------------------------------- blur


def test_blur_of_constant_is_constant():
    for value in (0.0, 0.1, 0.37, 1.0):
        img = np.full((3, 32, 32), value, np.float32)
        for sigma in (0.1, 0.7, 2.0):
            assert np.array_equal(augment.gaussian_blur(img, sigma), img)


def test_blur_matches_reflect_padded_convolution():
    rng = np.random.default_rng(4)
    img = rng.random((3, 32, 32), dtype=np.float32)
    sigma = 1.3
    k = np.exp(-np.arange(-1, 2) ** 2 / (2 * sigma ** 2))
    k /= k.sum()
    padded = np.pad(img.astype(np.float64), ((0, 0), (1, 1), (1, 1)), mode="reflect")
    expected = np.zeros((3, 32, 32))
    for dy in range(3):
        for dx in range(3):
            expected += k[dy] * k[dx] * padded[:, dy:dy + 32, dx:dx + 32]
    out = augment.gaussian_blur(img, sigma)
    assert out.dtype == np.float32
    assert np.allclose(out, expected, atol=1e-6)
    # a tiny sigma is (numerically) the identity
    assert np.allclose(augment.gaussian_blur(img, 0.1), img, atol=1e-12)
    assert math.isclose(k[0], k[2])


def test_constant_image_pipeline_stays_flat():
    """Crop, flip, blur keep a flat gray image flat; jitter only moves its level."""
    img = np.full((50, 3, 32, 32), 128, np.uint8)
    views = simclr_views(img, seed=1)
    flat = views.reshape(len(views), -1)
    assert np.all(flat.max(axis=1) - flat.min(axis=1) < 1e-6)
    assert len(np.unique(flat[:, 0])) > 10
