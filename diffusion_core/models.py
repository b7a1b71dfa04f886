"""Rebuilding trained models from their run folders alone (run.json, weights beside it).

Torch is imported only by the functions that build a network, so checking a run folder (the
registry, `mdiff-study create`) stays light. Loading checks what run.json records against what
the folder holds: the weights' sha256 (`run_files.verified_weights`), finite weights
(`checkpoints.load_weights`), and the preset against the shapes the networks make, so an edited
or mixed-up run.json is refused instead of sampling volumes of another shape under its name.
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

    _preset_shape(run_dir, info)  # a VQ-GAN takes any shape; a DDPM's checks its preset's
    model = VQGAN(config)
    weights_path = run_files.verified_weights(run_dir, info)
    checkpoints.load_into(model, checkpoints.load_weights(weights_path), weights_path)
    if not bool(model.codebook.initialised):
        raise CheckpointError(f"{weights_path} holds a codebook that was never trained")
    return model.to(device).eval(), info


def _size(shape) -> str:
    return "x".join(str(int(s)) for s in shape)


def _preset_shape(run_dir: Path, info: dict) -> tuple[str, tuple[int, ...]]:
    """The preset run.json names and its volumes' (D, H, W); CheckpointError for an unknown one."""
    from diffusion_core.presets import PresetError, get_preset

    name = info.get("preset")
    try:
        return str(name), tuple(get_preset(str(name)).shape)
    except PresetError as err:
        raise CheckpointError(f"{run_dir / run_files.RUN_NAME} names no preset mdiff knows "
                              f"({err})") from None


def vqgan_fingerprint(run_dir: str | os.PathLike) -> dict:
    """What a DDPM run records of its VQ-GAN: the folder and the weights' content hash."""
    run_dir = Path(run_dir).resolve()
    info = read_run(run_dir, "vqgan")
    weights = run_files.verified_weights(run_dir, info)
    return {"path": str(run_dir),
            "hash": info.get(run_files.WEIGHTS_HASH) or run_files.file_hash(weights)}


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
    recorded = info.get("vqgan")
    vqgan_dir = verify_vqgan(recorded if isinstance(recorded, dict) else {}, run_dir)
    try:
        unet_config = UNetConfig.from_dict(info["unet"])
        scheduler_config = SchedulerConfig.from_dict(info["scheduler"])
        low, high = info["latent_range"]
        latent_shape = tuple(int(s) for s in info["latent_shape"])
    except (KeyError, TypeError, ValueError) as err:
        raise CheckpointError(f"{run_dir / run_files.RUN_NAME} is not a complete DDPM run "
                              f"({err})") from None
    _check_decoded_shape(run_dir, info, latent_shape, vqgan_dir)
    unet = UNet(unet_config)
    weights_path = run_files.verified_weights(run_dir, info)
    checkpoints.load_into(unet, checkpoints.load_weights(weights_path), weights_path)
    return unet.to(device).eval(), scheduler_config, info


def _check_decoded_shape(run_dir: Path, info: dict, latent_shape: tuple[int, ...],
                         vqgan_dir: Path) -> None:
    """Refuse a DDPM whose latents do not decode to its preset's volumes (or whose VQ-GAN is of
    another preset): its samples would be labelled with a preset they do not have."""
    from diffusion_core.nn.config import VQGANConfig

    preset, shape = _preset_shape(run_dir, info)
    vq_info = read_run(vqgan_dir, "vqgan")
    if vq_info.get("preset") != preset:
        raise CheckpointError(f"{run_dir / run_files.RUN_NAME} names preset {preset!r} but its "
                              f"VQ-GAN {vqgan_dir} is of preset {vq_info.get('preset')!r}; one "
                              f"of the two run.json files was edited: restore it")
    try:
        config = VQGANConfig.from_dict(vq_info["vqgan"])
    except (KeyError, TypeError, ValueError) as err:
        raise CheckpointError(f"{vqgan_dir / run_files.RUN_NAME} has no usable VQ-GAN "
                              f"settings ({err})") from None
    spatial = latent_shape[1:]
    decoded = (tuple(s * c for s, c in zip(spatial, config.compression, strict=True))
               if len(spatial) == len(config.compression) else spatial)
    if decoded != shape or latent_shape[:1] != (config.embedding_dim,):
        raise CheckpointError(f"{run_dir / run_files.RUN_NAME} names preset {preset!r}, whose "
                              f"volumes are {_size(shape)}, but its latents "
                              f"({_size(latent_shape)}) decode to {_size(decoded)}; the file was "
                              f"edited or belongs to another run: restore it")
