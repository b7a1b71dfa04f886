"""The patch discriminator of the VQ-GAN, one class for the 2D slice and the 3D volume critic.

pix2pixHD's multi-layer PatchGAN (Wang et al., 2018), as the authors use it twice: on a random
slice (2D) and on the whole volume (3D), both with 64 filters, 3 layers and kernel 4.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from diffusion_core.nn.blocks import conv_class, group_norm

_BATCH_NORMS: dict[int, type[nn.Module]] = {2: nn.BatchNorm2d, 3: nn.BatchNorm3d}
NORMS: tuple[str, ...] = ("group", "batch")


def _norm(kind: str, spatial_dims: int, channels: int) -> nn.Module:
    """GroupNorm (up to 32 groups that divide `channels`) or the authors' BatchNorm."""
    if kind == "group":
        return group_norm(channels, 32)
    return _BATCH_NORMS[spatial_dims](channels)


class PatchDiscriminator(nn.Module):
    """pix2pixHD PatchGAN: real/fake logits per overlapping patch, plus features for matching.

    Layers: conv(stride 2) + LeakyReLU(0.2); then `num_layers - 1` blocks of conv(stride 2) +
    norm + LeakyReLU, doubling the channels up to 8 x `channels`; one conv(stride 1) + norm +
    LeakyReLU block (doubling once more, same cap); a final conv(stride 1) to one logit channel.
    Every conv has `kernel_size` and padding ceil((kernel_size - 1) / 2) (pix2pixHD's), and bias,
    so the parameter count matches the authors' BatchNorm network.

    Norm: "group" (default) or "batch". The authors used BatchNorm, but a 3D VQ-GAN trains with
    a batch of 1-2 volumes per GPU: batch statistics over two samples are noise, under DDP every
    replica normalises over its own few samples, and eval-mode running statistics differ from the
    training ones. GroupNorm normalises each sample alone, so the logits do not depend on the
    batch size, on how the batch is split across GPUs, or on whether real and fake are passed
    together or apart. "batch" stays for reproducing the authors' configuration.
    """

    def __init__(self, spatial_dims: int, in_channels: int = 1, channels: int = 64,
                 num_layers: int = 3, kernel_size: int = 4, norm: str = "group") -> None:
        super().__init__()
        if spatial_dims not in (2, 3):
            raise ValueError(f"spatial_dims must be 2 or 3, not {spatial_dims}")
        if norm not in NORMS:
            raise ValueError(f"norm must be one of {', '.join(NORMS)}, not {norm!r}")
        if min(in_channels, channels, num_layers, kernel_size) < 1:
            raise ValueError("in_channels, channels, num_layers and kernel_size must be >= 1, got "
                             f"{in_channels}, {channels}, {num_layers}, {kernel_size}")
        self.spatial_dims = spatial_dims
        self.in_channels = in_channels
        conv = conv_class(spatial_dims)
        padding = math.ceil((kernel_size - 1) / 2)
        cap = 8 * channels

        def block(c_in: int, c_out: int, stride: int, normed: bool) -> nn.Sequential:
            """conv [+ norm] + LeakyReLU(0.2)."""
            layers = [conv(c_in, c_out, kernel_size, stride=stride, padding=padding)]
            if normed:
                layers.append(_norm(norm, spatial_dims, c_out))
            layers.append(nn.LeakyReLU(0.2))
            return nn.Sequential(*layers)

        blocks = [block(in_channels, channels, stride=2, normed=False)]
        width = channels
        for _ in range(num_layers - 1):
            blocks.append(block(width, min(2 * width, cap), stride=2, normed=True))
            width = min(2 * width, cap)
        blocks.append(block(width, min(2 * width, cap), stride=1, normed=True))
        width = min(2 * width, cap)
        self.blocks = nn.ModuleList(blocks)
        self.to_logits = conv(width, 1, kernel_size, stride=1, padding=padding)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """x: (N, in_channels, *spatial) -> (logits (N, 1, *patches), features).

        features: the `num_layers + 1` block outputs (logits not included), for feature
        matching. With kernel 4 / padding 2, each stride-2 conv maps a side L to L // 2 + 1 and
        each stride-1 conv to L + 1: 2D 64x64 with 3 layers gives 33, 17, 9, 10 then 11x11 logits.
        """
        if x.ndim != self.spatial_dims + 2 or x.shape[1] != self.in_channels:
            raise ValueError(
                f"PatchDiscriminator({self.spatial_dims}D, {self.in_channels} channel(s)) expects "
                f"(N, {self.in_channels}, {', '.join('DHW'[-self.spatial_dims:])}), "
                f"got {tuple(x.shape)}")
        features = []
        for block in self.blocks:
            x = block(x)
            features.append(x)
        return self.to_logits(x), features
