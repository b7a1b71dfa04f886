"""The GAN baseline's networks: a 3D WGAN-GP generator and critic (after Kwon et al., 2019).

Generator: a latent vector -> linear -> `generator_channels[0]` x 4^3 (Kwon et al.'s 512 x 4^3
for a 64^3 brain) -> BatchNorm + ReLU -> stages of (nearest-neighbour upsampling, 3^3 conv), each
halving the width as the config says, the last one to a single channel -> tanh, so volumes come
out in the prepared data's [-1, 1]. An axis that needs fewer doublings than there are stages
(the short depth axis of an anisotropic preset such as `demo`, 32 x 64 x 64) is doubled only in
the last stages (`WGANConfig.generator_scales`).

Critic: strided 4^3 convs (stride 2 on every axis still above 4 voxels, else a 3-wide stride-1
kernel on that axis) with LeakyReLU 0.2, then one conv over the whole last feature map: one
score per volume, no sigmoid. Normalisation: layer norm (`GroupNorm` with one group: each
volume's features normalised over channels and space together, with a learnt per-channel scale
and shift) after every conv but the first, as Gulrajani et al. (2017) advise for WGAN-GP. Their
gradient penalty constrains the critic's gradient per volume; batch norm would make each score
depend on the other volumes in the batch, so that gradient would not be the critic's alone (Kwon
et al.'s public code uses batch norm here). Layer norm also keeps the scores independent of the
batch size and of how a batch is split across GPUs, and lets real, fake and interpolated volumes
go through the critic in one call.
"""

from __future__ import annotations

import torch
from torch import nn

from diffusion_core.nn.config import WGANConfig


def _stage_kernel(strides: tuple[int, ...]) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """Per-axis kernel and padding of a critic conv: 4 / 1 where it strides, 3 / 1 elsewhere."""
    return tuple(4 if s == 2 else 3 for s in strides), tuple(1 for _ in strides)


class Generator(nn.Module):
    """Latent vectors (N, latent_dim) -> volumes (N, 1, D, H, W) in [-1, 1]."""

    def __init__(self, config: WGANConfig) -> None:
        super().__init__()
        self.config = config
        widths = config.generator_channels
        self.start_shape = config.start_shape
        start_voxels = self.start_shape[0] * self.start_shape[1] * self.start_shape[2]
        self.project = nn.Linear(config.latent_dim, widths[0] * start_voxels)
        self.project_norm = nn.BatchNorm3d(widths[0])
        stages = []
        for stage, width in enumerate(widths):
            out = widths[stage + 1] if stage + 1 < len(widths) else 1
            last = stage + 1 == len(widths)
            layers: list[nn.Module] = [
                nn.Upsample(scale_factor=config.generator_scales(stage), mode="nearest"),
                nn.Conv3d(width, out, 3, padding=1, bias=last)]
            if not last:  # a bias before batch norm is cancelled by it
                layers += [nn.BatchNorm3d(out), nn.ReLU()]
            stages.append(nn.Sequential(*layers))
        self.stages = nn.Sequential(*stages)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """z: (N, latent_dim) -> (N, 1, D, H, W) in [-1, 1]."""
        if z.ndim != 2 or z.shape[1] != self.config.latent_dim:
            raise ValueError(f"the generator takes latents (N, {self.config.latent_dim}), "
                             f"got {tuple(z.shape)}")
        h = self.project(z).view(z.shape[0], self.config.generator_channels[0],
                                 *self.start_shape)
        h = torch.relu(self.project_norm(h))
        return torch.tanh(self.stages(h))

    def latents(self, n: int, generator: torch.Generator | None = None,
                device: torch.device | str = "cpu") -> torch.Tensor:
        """n latent vectors drawn from the standard normal prior."""
        return torch.randn(n, self.config.latent_dim, generator=generator, device=device)


class Critic(nn.Module):
    """Volumes (N, 1, D, H, W) -> Wasserstein critic scores (N,)."""

    def __init__(self, config: WGANConfig) -> None:
        super().__init__()
        self.config = config
        layers: list[nn.Module] = []
        width = 1
        for layer, out in enumerate(config.critic_channels):
            kernel, padding = _stage_kernel(config.critic_strides(layer))
            layers.append(nn.Conv3d(width, out, kernel, stride=config.critic_strides(layer),
                                    padding=padding))
            if layer > 0:
                layers.append(nn.GroupNorm(1, out))  # layer norm over (C, D, H, W)
            layers.append(nn.LeakyReLU(0.2))
            width = out
        self.features = nn.Sequential(*layers)
        self.score = nn.Conv3d(width, 1, config.critic_final_shape())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (N, 1, D, H, W) of the config's shape -> (N,) scores."""
        if x.ndim != 5 or x.shape[1] != 1 or tuple(x.shape[2:]) != self.config.shape:
            sizes = ", ".join(map(str, self.config.shape))
            raise ValueError(f"the critic takes volumes (N, 1, {sizes}), got {tuple(x.shape)}")
        return self.score(self.features(x)).flatten(1).mean(1)
