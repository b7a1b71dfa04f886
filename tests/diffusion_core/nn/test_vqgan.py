"""VQGAN: shapes for every compression in 2D and 3D, the encode contract, the paper's four sizes."""

from __future__ import annotations

import pytest
import torch

from diffusion_core.nn.config import VQGANConfig
from diffusion_core.nn.vqgan import VQGAN
from diffusion_core.presets import vqgan_settings

CASES = [
    # (spatial_dims, compression, input spatial shape)
    (2, (2, 2), (16, 16)),
    (2, (4, 2), (16, 8)),
    (2, (8, 8), (16, 16)),
    (3, (2, 2, 2), (8, 8, 8)),
    (3, (4, 4, 4), (8, 16, 16)),
    (3, (8, 8, 8), (8, 16, 16)),
    (3, (2, 4, 4), (8, 16, 16)),  # anisotropic: depth 2, in-plane 4
    (3, (1, 8, 4), (4, 16, 8)),
]


@pytest.mark.parametrize(("dims", "compression", "shape"), CASES)
def test_shapes_for_every_compression(dims, compression, shape):
    config = VQGANConfig(spatial_dims=dims, compression=compression, base_channels=4,
                         num_codes=16, embedding_dim=3, norm_groups=2)
    model = VQGAN(config)
    x = torch.randn(2, 1, *shape)
    latent = tuple(s // c for s, c in zip(shape, compression, strict=True))
    z = model.encode(x)
    assert z.shape == (2, 3, *latent)
    assert config.latent_shape(shape) == (3, *latent)
    z_q = model.quantize(z)
    assert z_q.shape == z.shape
    assert model.decode(z_q).shape == x.shape
    out = model(x)
    assert out.reconstruction.shape == x.shape
    assert out.quantized.indices.shape == (2, *latent)


def test_quantize_returns_codebook_vectors_and_range_bounds_them():
    torch.manual_seed(0)
    model = VQGAN(VQGANConfig(spatial_dims=2, compression=(2, 2), base_channels=4,
                              num_codes=8, embedding_dim=2, norm_groups=2))
    model(torch.randn(1, 1, 8, 8))  # training mode: data-dependent init
    z_q = model.quantize(model.encode(torch.randn(1, 1, 8, 8)))
    codes = model.codebook.embedding
    vectors = z_q.permute(0, 2, 3, 1).reshape(-1, 2)
    assert all(any(torch.equal(v, c) for c in codes) for v in vectors)
    low, high = model.codebook.range()
    assert low == float(codes.min()) and high == float(codes.max())


def test_bad_input_is_refused_with_a_sentence():
    model = VQGAN(VQGANConfig(compression=(4, 4, 4), base_channels=4, num_codes=8,
                              norm_groups=2))
    with pytest.raises(ValueError, match="divisible"):
        model.encode(torch.randn(1, 1, 6, 16, 16))
    with pytest.raises(ValueError, match="expected"):
        model.encode(torch.randn(1, 16, 16))
    with pytest.raises(ValueError, match="1, 2, 4 or 8"):
        VQGANConfig(compression=(3, 4, 4))
    with pytest.raises(ValueError, match="needs 3 factors"):
        VQGANConfig(compression=(4, 4))


def test_config_json_round_trip_and_unknown_keys():
    config = VQGANConfig(compression=(2, 4, 4), num_codes=128)
    assert VQGANConfig.from_dict(config.to_dict()) == config
    with pytest.raises(ValueError, match="unknown"):
        VQGANConfig.from_dict({**config.to_dict(), "attention": True})


def _conv(c_in: int, c_out: int, kernel: int, dims: int = 3) -> int:
    return c_in * c_out * kernel ** dims + c_out


def _norm(c: int) -> int:
    return 2 * c


def _resblock(c: int) -> int:
    return 2 * (_norm(c) + _conv(c, c, 3))


def _expected_parameters(base: int, levels: int, dim: int, codes: int) -> tuple[int, int]:
    """(trainable, buffer) counts written from the architecture description, independently."""
    enc = _conv(1, base, 3)
    dec = _conv(dim, base * 2 ** levels, 3)
    for level in range(levels):
        c_in, c_out = base * 2 ** level, base * 2 ** (level + 1)
        enc += _conv(c_in, c_out, 4) + _resblock(c_out)  # all axes downsample: kernel 4
        dec += 2 * _resblock(c_out) + _conv(c_out, c_in, 4)
    top = base * 2 ** levels
    enc += _norm(top) + _conv(top, dim, 1)
    dec += _norm(base) + _conv(base, 1, 3)
    buffers = codes * dim * 2 + codes + 1  # embedding, ema_sum, ema_count, initialised
    return enc + dec, buffers


@pytest.mark.parametrize(("preset", "shape", "latent"), [
    ("mrnet", (32, 256, 256), (8, 8, 64, 64)),
    ("adni", (64, 64, 64), (8, 32, 32, 32)),
    ("duke", (32, 256, 256), (8, 8, 64, 64)),
    ("lidc", (128, 128, 128), (8, 32, 32, 32)),
])
def test_the_papers_four_sizes_on_the_meta_device(preset, shape, latent):
    config = vqgan_settings(preset).model
    with torch.device("meta"):
        model = VQGAN(config)
        z = model.encoder(torch.empty(1, 1, *shape))
        x = model.decoder(torch.empty(1, *latent))
    assert tuple(z.shape[1:]) == latent == config.latent_shape(shape)
    assert tuple(x.shape) == (1, 1, *shape)
    levels = {"adni": 1}.get(preset, 2)
    trainable, buffers = _expected_parameters(16, levels, 8, 16384)
    assert sum(p.numel() for p in model.parameters()) == trainable
    assert sum(b.numel() for b in model.buffers()) == buffers
