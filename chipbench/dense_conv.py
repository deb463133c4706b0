"""Convolutions on tiny feature maps as one matrix multiply, for training on a CPU.

SimCLR's ResNet-18 keeps the ImageNet stem on 32x32 images, so its last stages see 2x2 and
1x1 feature maps. A 3x3 convolution with padding 1 on a 1x1 map uses one of its nine taps (the
other eight meet padding), yet oneDNN computes all nine, forward and backward: on 2 cores its
backward pass took ~5x its forward pass there (benchmarks/train_step.py).

For such a map the convolution is exactly a linear map from the H*W*C input values to the
Ho*Wo*O outputs, whose matrix holds the kernel's taps at the (input pixel, output pixel)
pairs they connect and zeros elsewhere. It has fewer entries than the convolution's nominal
multiply-adds per image whenever H*W < kh*kw, which is the rule used here. The result is the
same convolution, summed in another order: training stays deterministic for a given thread
count, and the weights, their names and the exported ONNX graph (built from a fresh model) do
not change.
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["DenseSmallInputConv2d", "densify_small_convolutions", "tap_index"]


def tap_index(kernel: tuple[int, int], size: tuple[int, int], stride: tuple[int, int],
              padding: tuple[int, int]) -> tuple[torch.Tensor, int, int, bool]:
    """For every (input pixel, output pixel) pair, in row-major order of both, the kernel tap
    (``ky * kw + kx``) that connects them, or ``kh * kw`` when none does; plus the output's
    height and width and whether some pair has no tap. At most a few dozen pairs reach the
    dense path, so this is cheap enough to redo every call (and torch.compile traces it)."""
    (kh, kw), (h, w), (sy, sx), (py, px) = kernel, size, stride, padding
    out_h, out_w = (h + 2 * py - kh) // sy + 1, (w + 2 * px - kw) // sx + 1
    taps = []
    for iy in range(h):
        for ix in range(w):
            for oy in range(out_h):
                for ox in range(out_w):
                    ky, kx = iy - oy * sy + py, ix - ox * sx + px
                    taps.append(ky * kw + kx if 0 <= ky < kh and 0 <= kx < kw else kh * kw)
    index = torch.tensor(taps, dtype=torch.long)
    return index, out_h, out_w, bool((index == kh * kw).any())


class DenseSmallInputConv2d(nn.Conv2d):
    """``nn.Conv2d`` that computes as one matrix multiply when its input map has fewer pixels
    than its kernel has taps (plain groups-1, dilation-1, zero-padded convolutions only)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, channels, h, w = x.shape
        kh, kw = self.kernel_size
        if h * w >= kh * kw:
            return super().forward(x)
        index, out_h, out_w, has_gaps = tap_index(self.kernel_size, (h, w), self.stride,
                                                  self.padding)
        out_channels = self.out_channels
        # taps[k] is the (C, O) matrix of kernel tap k; a gap reads an appended zero matrix
        taps = self.weight.permute(2, 3, 1, 0).reshape(kh * kw, channels, out_channels)
        if has_gaps:
            taps = torch.cat([taps, taps.new_zeros(1, channels, out_channels)])
        matrix = (taps.index_select(0, index.to(x.device))
                  .reshape(h * w, out_h * out_w, channels, out_channels)
                  .transpose(1, 2)
                  .reshape(h * w * channels, out_h * out_w * out_channels))
        # (N, H, W, C) order: free for a channels_last input, and the output comes out
        # channels_last too
        y = x.permute(0, 2, 3, 1).reshape(batch, h * w * channels) @ matrix
        y = y.reshape(batch, out_h, out_w, out_channels).permute(0, 3, 1, 2)
        if self.bias is not None:
            y = y + self.bias.view(1, -1, 1, 1)
        return y


def densify_small_convolutions(model: nn.Module) -> int:
    """Make every plain ``nn.Conv2d`` of ``model`` a :class:`DenseSmallInputConv2d` in place
    (same parameters, buffers and names); returns how many were changed."""
    changed = 0
    for module in model.modules():
        if (type(module) is nn.Conv2d and module.groups == 1 and module.dilation == (1, 1)
                and module.padding_mode == "zeros" and not isinstance(module.padding, str)):
            module.__class__ = DenseSmallInputConv2d
            changed += 1
    return changed
