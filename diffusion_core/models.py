"""Rebuilding trained models from their run folders alone (run.json, weights beside it).

The folder's layout and run.json are `run_folder`'s; torch is imported only by the functions
that build a network. Loading checks what run.json records against what the folder holds: the
weights' sha256 (`run_folder.verified_weights`), finite weights
(`checkpoints.load_weights`), and the preset against the shapes the networks make, so an edited
or mixed-up run.json is refused instead of sampling volumes of another shape under its name.
"""

from __future__ import annotations

import os
from pathlib import Path

from diffusion_core import run_folder
from diffusion_core.run_folder import CheckpointError, RunInfo


def load_vqgan(run_dir: str | os.PathLike, device: str = "cpu"):
    """The trained VQGAN of a run folder, in eval mode, with its RunInfo."""
    from diffusion_core import checkpoints
    from diffusion_core.nn.vqgan import VQGAN

    run_dir = Path(run_dir)
    info = run_folder.read_run_info(run_dir, "vqgan")
    _preset_shape(run_dir, info)  # a VQ-GAN takes any shape; a DDPM's checks its preset's
    model = VQGAN(info.vqgan)
    weights_path = run_folder.verified_weights(run_dir, info)
    checkpoints.load_into(model, checkpoints.load_weights(weights_path), weights_path)
    if not bool(model.codebook.initialised):
        raise CheckpointError(f"{weights_path} holds a codebook that was never trained")
    return model.to(device).eval(), info


def _size(shape) -> str:
    return "x".join(str(int(s)) for s in shape)


def _preset_shape(run_dir: Path, info: RunInfo) -> tuple[str, tuple[int, ...]]:
    """The preset run.json names and its volumes' (D, H, W); CheckpointError for an unknown one."""
    from diffusion_core.presets import PresetError, get_preset

    try:
        return info.preset, tuple(get_preset(info.preset).shape)
    except PresetError as err:
        raise CheckpointError(f"{run_dir / run_folder.RUN_NAME} names no preset mdiff knows "
                              f"({err})") from None


def load_ddpm(run_dir: str | os.PathLike, device: str = "cpu"):
    """The trained U-Net (EMA weights) of a DDPM run, its scheduler config and RunInfo.

    The VQ-GAN it was trained on is checked to still be there, unchanged.
    """
    from diffusion_core import checkpoints
    from diffusion_core.nn.unet import UNet

    run_dir = Path(run_dir)
    info = run_folder.read_run_info(run_dir, "ddpm")
    vqgan_dir = run_folder.verify_vqgan(info.vqgan_run, run_dir)
    _check_decoded_shape(run_dir, info, vqgan_dir)
    unet = UNet(info.unet)
    weights_path = run_folder.verified_weights(run_dir, info)
    checkpoints.load_into(unet, checkpoints.load_weights(weights_path), weights_path)
    return unet.to(device).eval(), info.scheduler, info


def _check_decoded_shape(run_dir: Path, info: RunInfo, vqgan_dir: Path) -> None:
    """Refuse a DDPM whose latents do not decode to its preset's volumes (or whose VQ-GAN is of
    another preset): its samples would be labelled with a preset they do not have."""
    preset, shape = _preset_shape(run_dir, info)
    vq_info = run_folder.read_run_info(vqgan_dir, "vqgan")
    if vq_info.preset != preset:
        raise CheckpointError(f"{run_dir / run_folder.RUN_NAME} names preset {preset!r} but its "
                              f"VQ-GAN {vqgan_dir} is of preset {vq_info.preset!r}; one "
                              f"of the two run.json files was edited: restore it")
    config, latent_shape = vq_info.vqgan, info.latent_shape
    spatial = latent_shape[1:]
    decoded = (tuple(s * c for s, c in zip(spatial, config.compression, strict=True))
               if len(spatial) == len(config.compression) else spatial)
    if decoded != shape or latent_shape[:1] != (config.embedding_dim,):
        raise CheckpointError(f"{run_dir / run_folder.RUN_NAME} names preset {preset!r}, whose "
                              f"volumes are {_size(shape)}, but its latents "
                              f"({_size(latent_shape)}) decode to {_size(decoded)}; the file was "
                              f"edited or belongs to another run: restore it")


def load_wgan(run_dir: str | os.PathLike, device: str = "cpu"):
    """The trained generator of a GAN baseline run, in eval mode, with its RunInfo."""
    from diffusion_core import checkpoints
    from diffusion_core.nn.wgan import Generator

    run_dir = Path(run_dir)
    info = run_folder.read_run_info(run_dir, "wgan")
    preset, shape = _preset_shape(run_dir, info)
    if info.wgan.shape != shape:
        raise CheckpointError(f"{run_dir / run_folder.RUN_NAME} names preset {preset!r}, whose "
                              f"volumes are {_size(shape)}, but its GAN makes "
                              f"{_size(info.wgan.shape)}; the file was edited or belongs to "
                              f"another run: restore it")
    generator = Generator(info.wgan)
    weights_path = run_folder.verified_weights(run_dir, info)
    checkpoints.load_into(generator, checkpoints.load_weights(weights_path), weights_path)
    return generator.to(device).eval(), info
