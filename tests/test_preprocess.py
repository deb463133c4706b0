"""Tests for chipbench.preprocess."""

from __future__ import annotations

import numpy as np
import pytest

from chipbench import preprocess
from chipbench.preprocess import CIFAR10_MEAN, CIFAR10_STD, normalize, to_unit_float


def test_constants_are_the_simclrv2_values():
    assert CIFAR10_MEAN == (0.4914, 0.4822, 0.4465)
    assert CIFAR10_STD == (0.2023, 0.1994, 0.2010)


def test_to_unit_float_values():
    x = np.array([0, 1, 51, 128, 254, 255], np.uint8).reshape(1, 1, 2, 3)
    out = to_unit_float(x)
    assert out.dtype == np.float32 and out.shape == x.shape
    assert out.ravel().tolist() == [np.float32(v) / np.float32(255) for v in (0, 1, 51, 128, 254, 255)]
    assert out.min() == 0.0 and out.max() == 1.0
    assert np.isclose(out.ravel()[2], 0.2)


def test_to_unit_float_rejects_non_uint8():
    with pytest.raises(TypeError):
        to_unit_float(np.zeros((1, 3, 2, 2), np.float32))
    with pytest.raises(TypeError):
        to_unit_float(np.zeros((1, 3, 2, 2), np.int64))


def test_normalize_hand_computed():
    x = np.zeros((2, 3, 2, 2), np.uint8)
    x[0, 0] = 255  # R of image 0 all 255
    x[0, 1] = 0  # G of image 0 all 0
    x[0, 2] = 128  # B of image 0 all 128
    x[1, :, 0, 1] = 51  # one pixel of image 1, every channel
    out = normalize(x, CIFAR10_MEAN, CIFAR10_STD)
    assert out.dtype == np.float32 and out.shape == (2, 3, 2, 2) and out.flags.c_contiguous
    assert np.allclose(out[0, 0], (1.0 - 0.4914) / 0.2023, rtol=1e-6)  # 2.514088
    assert np.allclose(out[0, 1], (0.0 - 0.4822) / 0.1994, rtol=1e-6)  # -2.418255
    assert np.allclose(out[0, 2], (128 / 255 - 0.4465) / 0.2010, rtol=1e-5)  # 0.275924
    assert np.isclose(out[0, 0, 0, 0], 2.5140879, rtol=1e-6)
    assert np.isclose(out[0, 1, 1, 1], -2.4182548, rtol=1e-6)
    assert np.isclose(out[1, 0, 0, 1], (0.2 - 0.4914) / 0.2023, rtol=1e-6)
    assert np.isclose(out[1, 1, 0, 1], (0.2 - 0.4822) / 0.1994, rtol=1e-6)
    assert np.isclose(out[1, 2, 0, 1], (0.2 - 0.4465) / 0.2010, rtol=1e-6)
    assert np.isclose(out[1, 2, 1, 1], -0.4465 / 0.2010, rtol=1e-6)


def test_normalize_defaults_and_matches_float64_reference():
    x = np.random.default_rng(0).integers(0, 256, size=(4, 3, 32, 32), dtype=np.uint8)
    mean = np.array(CIFAR10_MEAN)[None, :, None, None]
    std = np.array(CIFAR10_STD)[None, :, None, None]
    ref = (x / 255.0 - mean) / std
    out = normalize(x)
    assert np.allclose(out, ref, atol=2e-6)
    assert np.array_equal(out, normalize(x, CIFAR10_MEAN, CIFAR10_STD))


def test_normalize_custom_and_does_not_modify_input():
    x = np.full((1, 2, 3, 3), 102, np.uint8)
    before = x.copy()
    out = normalize(x, mean=[0.5, 0.0], std=[0.5, 2.0])
    assert np.allclose(out[0, 0], (0.4 - 0.5) / 0.5)
    assert np.allclose(out[0, 1], 0.4 / 2.0)
    assert np.array_equal(x, before)
    # mean 0, std 1 is to_unit_float
    assert np.array_equal(normalize(x, [0, 0], [1, 1]), to_unit_float(x))


@pytest.mark.parametrize("images, mean, std, exc", [
    (np.zeros((1, 3, 2, 2), np.float32), CIFAR10_MEAN, CIFAR10_STD, TypeError),
    (np.zeros((3, 2, 2), np.uint8), CIFAR10_MEAN, CIFAR10_STD, ValueError),
    (np.zeros((1, 3, 2, 2), np.uint8), (0.5, 0.5), CIFAR10_STD, ValueError),
    (np.zeros((1, 1, 2, 2), np.uint8), CIFAR10_MEAN, CIFAR10_STD, ValueError),
    (np.zeros((1, 3, 2, 2), np.uint8), CIFAR10_MEAN, (0.2, 0.0, 0.2), ValueError),
])
def test_normalize_rejects_bad_arguments(images, mean, std, exc):
    with pytest.raises(exc):
        normalize(images, mean, std)


def test_module_exports():
    assert {"to_unit_float", "normalize", "CIFAR10_MEAN", "CIFAR10_STD"} <= set(dir(preprocess))
