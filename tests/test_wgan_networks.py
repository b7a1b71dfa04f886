"""The GAN baseline's networks and settings: shapes per preset, the critic's per-volume norm."""

from __future__ import annotations

import pytest
import torch

from diffusion_core.nn.config import WGANConfig
from diffusion_core.nn.wgan import Critic, Generator
from diffusion_core.presets import PRESETS, wgan_settings
from diffusion_core.run_folder import RunInfo


@pytest.mark.parametrize("preset", ["tiny", "demo"])
def test_the_generator_makes_the_presets_shape_in_minus_one_to_one(preset):
    config = wgan_settings(preset).model
    torch.manual_seed(0)
    generator, critic = Generator(config).eval(), Critic(config)
    volumes = generator(generator.latents(2))
    assert volumes.shape == (2, 1, *PRESETS[preset].shape)
    assert volumes.min() >= -1 and volumes.max() <= 1 and volumes.std() > 0
    assert critic(volumes).shape == (2,)


def test_every_preset_has_a_gan_that_starts_at_four_voxels_a_side():
    for name, preset in PRESETS.items():
        config = wgan_settings(name).model
        assert config.shape == preset.shape and config.start_shape == (4, 4, 4), name


def test_the_anisotropic_demo_doubles_depth_only_in_the_last_stages():
    config = wgan_settings("demo").model  # (32, 64, 64): depth needs 3 doublings, H and W 4
    assert [config.generator_scales(s) for s in range(4)] == [
        (1, 2, 2), (2, 2, 2), (2, 2, 2), (2, 2, 2)]
    assert config.critic_final_shape() == (4, 4, 4)


def test_adni_is_kwons_network():
    config = wgan_settings("adni").model
    assert config.latent_dim == 1000 and config.generator_channels == (512, 256, 128, 64)
    assert config.critic_channels == (64, 128, 256, 512)
    # The linear layer alone: 1000 x (512 x 4^3) weights, 33 M.
    linear = config.latent_dim * config.generator_channels[0] * 4 ** 3
    assert linear == 32_768_000


def test_a_shape_the_stages_cannot_make_is_refused():
    with pytest.raises(ValueError, match="cannot make shape"):
        WGANConfig(shape=(18, 16, 16), generator_channels=(8, 4))
    with pytest.raises(ValueError, match="positive"):
        WGANConfig(shape=(8, 16, 16), generator_channels=(8, 0))


def test_the_critic_scores_each_volume_alone():
    # Layer norm, not batch norm: a volume's score does not depend on the others in the batch
    # (what the per-volume gradient penalty needs).
    torch.manual_seed(0)
    critic = Critic(wgan_settings("tiny").model)
    x = torch.rand(3, 1, 8, 16, 16) * 2 - 1
    together = critic(x)
    alone = torch.cat([critic(x[i:i + 1]) for i in range(3)])
    assert torch.allclose(together, alone, atol=1e-6)
    assert not any(isinstance(m, torch.nn.modules.batchnorm._BatchNorm)
                   for m in critic.modules())


def test_wrong_inputs_are_refused_in_one_sentence():
    config = wgan_settings("tiny").model
    with pytest.raises(ValueError, match=r"takes latents \(N, 16\)"):
        Generator(config)(torch.zeros(2, 15))
    with pytest.raises(ValueError, match=r"takes volumes \(N, 1, 8, 16, 16\)"):
        Critic(config)(torch.zeros(2, 1, 8, 16, 17))


def test_a_gan_run_record_round_trips_through_json(tmp_path):
    from diffusion_core.run_folder import DataRecord
    from diffusion_core.training.config import TrainerConfig

    settings = wgan_settings("tiny")
    info = RunInfo(kind="wgan", preset="tiny", data=DataRecord("/p", "h", 3, "c"),
                   trainer=TrainerConfig(steps=2, batch_size=2, learning_rate=1e-4),
                   wgan=settings.model, gan_loss=settings.loss)
    back = RunInfo.from_dict(info.to_dict())
    assert back == info and back.gan_loss.betas == (0.0, 0.9)
    assert back.gan_loss.critic_steps == 5 and back.gan_loss.penalty_weight == 10.0
    assert set(info.to_dict()) >= {"wgan", "gan_loss"} and "vqgan" not in info.to_dict()
