"""The self-supervised model of Tang et al. 2022 around MONAI's SwinUNETR encoder (network only).

`SSLModel` holds the `swinViT` encoder of a MONAI `SwinUNETR` (the very module fine-tuning
loads, so its weights transfer key for key) and three heads on the encoder's last stage
(16 x feature_size channels at 1/32 of the input size):

- rotation: Linear(C, 4) on the first token of the last stage;
- contrastive: Linear(C, 512) on the second token;
- inpainting: five blocks of (3^3 conv, InstanceNorm, LeakyReLU, trilinear x2 upsampling)
  halving the channels down to feature_size, then a 1^3 conv to one channel: the whole input.

The last stage must hold at least two tokens: at least one axis of 64 voxels or more.
Losses are `evaluation.downstream.ssl_losses`'.
"""

from __future__ import annotations

import torch
from torch import nn

from evaluation.downstream.config import SwinConfig

UPSAMPLINGS = 5  # the encoder's last stage is at 1/32 of the input


def build_swin_unetr(config: SwinConfig) -> nn.Module:
    """MONAI's SwinUNETR for one-channel 3D input, as both pre-training and fine-tuning use it."""
    from monai.networks.nets import SwinUNETR

    return SwinUNETR(in_channels=1, out_channels=config.out_channels,
                     feature_size=config.feature_size, spatial_dims=3)


def _up_block(channels_in: int, channels_out: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv3d(channels_in, channels_out, 3, padding=1),
                         nn.InstanceNorm3d(channels_out), nn.LeakyReLU(),
                         nn.Upsample(scale_factor=2, mode="trilinear", align_corners=False))


class SSLModel(nn.Module):
    """A SwinUNETR encoder with rotation, contrastive and inpainting heads (module docstring)."""

    def __init__(self, config: SwinConfig, contrastive_dim: int = 512) -> None:
        super().__init__()
        self.encoder = build_swin_unetr(config).swinViT
        channels = config.encoder_channels
        self.rotation_head = nn.Linear(channels, 4)
        self.contrastive_head = nn.Linear(channels, contrastive_dim)
        widths = [max(channels // 2 ** i, config.feature_size) for i in range(UPSAMPLINGS + 1)]
        self.inpainting_head = nn.Sequential(
            *[_up_block(widths[i], widths[i + 1]) for i in range(UPSAMPLINGS)],
            nn.Conv3d(widths[-1], 1, 1))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """x: (N, 1, D, H, W) -> rotation logits (N, 4), embeddings (N, 512), (N, 1, D, H, W)."""
        last = self.encoder(x.contiguous(), True)[-1]  # (N, C, D/32, H/32, W/32)
        tokens = last.flatten(2).transpose(1, 2)  # (N, L, C)
        if tokens.shape[1] < 2:
            raise ValueError(f"an input of {tuple(x.shape[2:])} leaves one token at the "
                             f"encoder's last stage; pre-training needs an axis of 64 or more")
        return (self.rotation_head(tokens[:, 0]), self.contrastive_head(tokens[:, 1]),
                self.inpainting_head(last))
