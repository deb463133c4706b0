"""Tests for chipbench.dense_conv (small-map convolutions as one matrix multiply)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from chipbench import models
from chipbench.dense_conv import DenseSmallInputConv2d, densify_small_convolutions, tap_index


def test_tap_index_of_a_one_pixel_map_is_the_centre_tap():
    index, out_h, out_w, has_gaps = tap_index((3, 3), (1, 1), (1, 1), (1, 1))
    assert index.tolist() == [4] and (out_h, out_w) == (1, 1) and not has_gaps


def test_tap_index_of_a_two_by_two_map():
    """Input pixel (0, 0) reaches output (0, 0) through the centre tap 4, output (0, 1)
    through tap 3 (kernel column 0), output (1, 0) through tap 1 and (1, 1) through tap 0."""
    index, out_h, out_w, has_gaps = tap_index((3, 3), (2, 2), (1, 1), (1, 1))
    assert (out_h, out_w) == (2, 2) and not has_gaps
    assert index.reshape(4, 4)[0].tolist() == [4, 3, 1, 0]
    assert index.reshape(4, 4)[3].tolist() == [8, 7, 5, 4]


def test_tap_index_marks_pairs_no_tap_connects():
    """A 1x1 kernel with stride 2 on a 2x2 map reads only pixel (0, 0)."""
    index, out_h, out_w, has_gaps = tap_index((1, 1), (2, 2), (2, 2), (0, 0))
    assert (out_h, out_w) == (1, 1) and has_gaps
    assert index.tolist() == [0, 1, 1, 1]  # 1 = kh * kw: no tap


@pytest.mark.parametrize("channels,out_channels,size,stride,kernel,bias", [
    (16, 24, 1, 1, 3, False),  # layer4's 3x3 convolutions on 1x1 maps
    (16, 24, 2, 2, 3, False),  # layer4's first: 2x2 -> 1x1
    (16, 16, 2, 1, 3, True),  # layer3's 3x3 convolutions on 2x2 maps
    (8, 8, 3, 1, 5, False),  # 9 pixels < 25 taps
])
@pytest.mark.parametrize("channels_last", [False, True])
def test_dense_path_equals_the_convolution_forward_and_backward(
        channels, out_channels, size, stride, kernel, bias, channels_last):
    torch.manual_seed(0)
    conv = nn.Conv2d(channels, out_channels, kernel, stride, kernel // 2, bias=bias)
    x = torch.randn(5, channels, size, size)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    x_ref = x.clone().requires_grad_()
    reference = conv(x_ref)
    reference.square().sum().backward()
    grads_ref = [p.grad.clone() for p in conv.parameters()]
    conv.zero_grad()

    conv.__class__ = DenseSmallInputConv2d
    x_dense = x.clone().requires_grad_()
    dense = conv(x_dense)
    dense.square().sum().backward()
    assert dense.shape == reference.shape
    torch.testing.assert_close(dense, reference, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(x_dense.grad, x_ref.grad, rtol=1e-5, atol=1e-5)
    for grad_ref, param in zip(grads_ref, conv.parameters()):
        torch.testing.assert_close(param.grad, grad_ref, rtol=1e-4, atol=1e-4)
    if kernel == 3 and size == 1:  # only the centre tap meets data: the others get no gradient
        assert conv.weight.grad[:, :, 1, 1].abs().sum() > 0
        off_centre = conv.weight.grad.clone()
        off_centre[:, :, 1, 1] = 0
        assert off_centre.abs().max() == 0


def test_maps_as_large_as_the_kernel_run_the_convolution_itself():
    torch.manual_seed(1)
    conv = nn.Conv2d(4, 6, 3, 1, 1)
    x = torch.randn(2, 4, 3, 3)  # 9 pixels, 9 taps: the convolution is cheaper
    reference = conv(x)
    conv.__class__ = DenseSmallInputConv2d
    assert torch.equal(conv(x), reference)


def test_densify_keeps_the_weights_and_their_names():
    model = models.ResNetSimCLR()
    before = {name: t.clone() for name, t in model.state_dict().items()}
    assert densify_small_convolutions(model) == 20  # ResNet-18: stem, 16 in blocks, 3 shortcuts
    after = model.state_dict()
    assert list(after) == list(before)
    assert all(torch.equal(after[name], before[name]) for name in before)
    assert isinstance(model.backbone.layer4[1].conv2, DenseSmallInputConv2d)
    model.eval()
    x = torch.rand(3, 3, 32, 32)
    plain = models.ResNetSimCLR()
    plain.load_state_dict(after)
    plain.eval()
    torch.testing.assert_close(model(x), plain(x), rtol=1e-4, atol=1e-5)


def test_densify_leaves_grouped_and_dilated_convolutions_alone():
    model = nn.Sequential(nn.Conv2d(4, 4, 3, groups=2), nn.Conv2d(4, 4, 3, dilation=2),
                          nn.Conv2d(4, 4, 3, padding="same"), nn.Conv2d(4, 4, 3))
    assert densify_small_convolutions(model) == 1
    assert [type(m) for m in model] == [nn.Conv2d, nn.Conv2d, nn.Conv2d, DenseSmallInputConv2d]


def test_functional_reference_for_the_one_pixel_case():
    """On a 1x1 map a padded 3x3 convolution is the linear map of its centre tap."""
    torch.manual_seed(2)
    conv = DenseSmallInputConv2d(8, 5, 3, 1, 1, bias=False)
    x = torch.randn(4, 8, 1, 1)
    expected = F.linear(x.flatten(1), conv.weight[:, :, 1, 1]).reshape(4, 5, 1, 1)
    torch.testing.assert_close(conv(x), expected)
