"""Rebuilding trained models from their run folders alone (run.json, weights beside it).

Torch is imported only by the functions that build a network, so checking a run folder (the
registry, `mdiff-study create`) stays light.
"""

from __future__ import annotations

import os
from pathlib import Path

from diffusion_core import run_files
from diffusion_core.run_files import CheckpointError


def read_run(run_dir: str | os.PathLike, kind: str) -> dict:
    """run.json of a finished or running `kind` run; CheckpointError otherwise."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise CheckpointError(f"{run_dir} is not a run folder (it does not exist); train one "
                              f"with mdiff-train {kind}")
    info = run_files.read_json(run_dir / run_files.RUN_NAME, f"{kind} run")
    if info.get("kind") != kind:
        raise CheckpointError(f"{run_dir} is a {info.get('kind')!r} run, not a {kind} run")
    return info


def load_vqgan(run_dir: str | os.PathLike, device: str = "cpu"):
    """The trained VQGAN of a run folder, in eval mode, with its run.json."""
    from diffusion_core.nn.config import VQGANConfig
    from diffusion_core.nn.vqgan import VQGAN

    run_dir = Path(run_dir)
    info = read_run(run_dir, "vqgan")
    try:
        config = VQGANConfig.from_dict(info["vqgan"])
    except (KeyError, TypeError, ValueError) as err:
        raise CheckpointError(f"{run_dir / run_files.RUN_NAME} has no usable VQ-GAN "
                              f"settings ({err})") from None
    from diffusion_core import checkpoints

    model = VQGAN(config)
    weights_path = run_dir / run_files.WEIGHTS_NAME
    checkpoints.load_into(model, checkpoints.load_weights(weights_path), weights_path)
    if not bool(model.codebook.initialised):
        raise CheckpointError(f"{weights_path} holds a codebook that was never trained")
    return model.to(device).eval(), info


def vqgan_fingerprint(run_dir: str | os.PathLike) -> dict:
    """What a DDPM run records of its VQ-GAN: the folder and the weights' content hash."""
    run_dir = Path(run_dir).resolve()
    read_run(run_dir, "vqgan")
    weights = run_dir / run_files.WEIGHTS_NAME
    if not weights.is_file():
        raise CheckpointError(f"{weights} is missing: the VQ-GAN run has not written weights")
    return {"path": str(run_dir), "hash": run_files.file_hash(weights)}


def verify_vqgan(recorded: dict, ddpm_dir: Path | None = None) -> Path:
    """The recorded VQ-GAN folder, after checking it still holds the weights it was trained on.

    A relative path (a bundled model, moved with its VQ-GAN) is relative to the DDPM run folder.
    """
    path = Path(recorded.get("path", ""))
    if not path.is_absolute() and ddpm_dir is not None:
        path = ddpm_dir / path
    weights = path / run_files.WEIGHTS_NAME
    if not weights.is_file():
        raise CheckpointError(f"the VQ-GAN this DDPM was trained with is missing ({weights}); "
                              f"restore that run folder, or retrain the DDPM on the VQ-GAN you "
                              f"have")
    if run_files.file_hash(weights) != recorded.get("hash"):
        raise CheckpointError(f"the VQ-GAN in {path} has changed since this DDPM was trained on "
                              f"it; its latents no longer match: retrain the DDPM, or restore "
                              f"the original VQ-GAN")
    return path


def load_ddpm(run_dir: str | os.PathLike, device: str = "cpu"):
    """The trained U-Net (EMA weights) of a DDPM run, its scheduler config and run.json.

    The VQ-GAN it was trained on is checked to still be there, unchanged.
    """
    from diffusion_core import checkpoints
    from diffusion_core.nn.config import UNetConfig
    from diffusion_core.nn.unet import UNet
    from diffusion_core.schedulers.config import SchedulerConfig

    run_dir = Path(run_dir)
    info = read_run(run_dir, "ddpm")
    verify_vqgan(info.get("vqgan", {}), run_dir)
    try:
        unet_config = UNetConfig.from_dict(info["unet"])
        scheduler_config = SchedulerConfig.from_dict(info["scheduler"])
        low, high = info["latent_range"]
        tuple(info["latent_shape"])
    except (KeyError, TypeError, ValueError) as err:
        raise CheckpointError(f"{run_dir / run_files.RUN_NAME} is not a complete DDPM run "
                              f"({err})") from None
    unet = UNet(unet_config)
    weights_path = run_dir / run_files.WEIGHTS_NAME
    checkpoints.load_into(unet, checkpoints.load_weights(weights_path), weights_path)
    return unet.to(device).eval(), scheduler_config, info
