"""Tiled decoding equals the whole-volume decode (halos and whole-volume GroupNorm statistics)."""

from __future__ import annotations

import pytest
import torch

from diffusion_core.nn.config import VQGANConfig
from diffusion_core.nn.vqgan import VQGAN


@pytest.mark.parametrize(("dims", "compression", "latent", "tiles"), [
    (3, (4, 4, 4), (2, 6, 5), (2, 3)),
    (3, (2, 4, 2), (3, 4, 7), (3, 2)),
    (2, (8, 8), (5, 4), (2, 2)),
])
def test_tiled_decode_matches_the_whole_volume(dims, compression, latent, tiles):
    torch.manual_seed(0)
    config = VQGANConfig(spatial_dims=dims, compression=compression, base_channels=8,
                         num_codes=16, embedding_dim=4, norm_groups=4)
    model = VQGAN(config).eval()
    # Perturb the norms' affine parameters so that a per-tile statistic would show.
    for module in model.decoder.modules():
        if isinstance(module, torch.nn.GroupNorm):
            module.weight.data.uniform_(0.5, 1.5)
            module.bias.data.uniform_(-0.5, 0.5)
    z = torch.randn(2, 4, *latent) * 3 + 1
    with torch.no_grad():
        whole = model.decode(z)
        tiled = model.decode(z, tiles=tiles)
    assert tiled.shape == whole.shape
    assert float((tiled - whole).abs().max()) < 1e-4


def test_naive_tiles_would_not_match():
    """The reference point: decoding tiles independently is visibly wrong (so the test can fail)."""
    torch.manual_seed(0)
    model = VQGAN(VQGANConfig(compression=(4, 4, 4), base_channels=8, num_codes=16,
                              embedding_dim=4, norm_groups=4)).eval()
    z = torch.randn(1, 4, 2, 6, 6)
    with torch.no_grad():
        whole = model.decode(z)
        left = model.decode(z[..., :3])
    assert float((left - whole[..., :12]).abs().max()) > 1e-3
