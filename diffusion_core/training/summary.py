"""What a finished run's validation figures mean, in words, for the end of `mdiff-train`."""

from __future__ import annotations

import os

from diffusion_core import run_folder
from diffusion_core.data import PreparedDataset


def _held_out(prep_dir: str | os.PathLike) -> int:
    """How many arrays of the PREP_DIR its deterministic split holds out for validation."""
    return len(PreparedDataset(prep_dir, "val"))


def _vqgan_lines(row: dict, count: int) -> list[str]:
    return [
        f"validation: the {count} held-out volumes of the PREP_DIR (its val split, never "
        f"trained on), encoded, quantised and decoded at step {row['step']}:",
        f"  PSNR {row['val_psnr']:.2f} dB  peak signal-to-noise ratio on the [-1, 1] scale; "
        f"higher is better, +6 dB halves the RMS error",
        f"  SSIM {row['val_ssim']:.3f}     structural similarity; 1 is identical, it drops "
        f"with blur and lost texture first",
        f"  L1   {row['val_l1']:.4f}    mean absolute error per voxel on [-1, 1] "
        f"(val_loss: the lower, the better)",
        f"  codebook usage {100 * row['val_usage']:.0f}%  the share of codes the held-out "
        f"volumes use; a small share wastes the codebook",
        "  compare these between runs of one preset and data; they say how faithful the "
        "autoencoder is, which bounds what the DDPM trained on it can draw",
    ]


def _ddpm_lines(row: dict, count: int, prediction: str) -> list[str]:
    target = "velocity (v)" if prediction == "v_prediction" else "noise"
    return [
        f"validation: val_loss {row['val_loss']:.4f} at step {row['step']}, the mean absolute "
        f"(L1) error of the U-Net's {target} prediction on the latents of the {count} held-out "
        f"volumes, at fixed timesteps and noise:",
        "  lower is better and it is comparable between steps of this run; it does not "
        "measure how realistic samples are: draw some with mdiff-sample and look, or score "
        "them with mdiff-eval",
    ]


def _wgan_lines(row: dict, count: int) -> list[str]:
    return [
        f"validation: the critic's Wasserstein estimate {row['val_wasserstein']:.4g} at step "
        f"{row['step']}: its mean score on the {count} held-out volumes minus its mean score on "
        f"as many volumes from fixed latents:",
        "  it falls as the generator's volumes come closer to real ones, but the critic is "
        "trained along, so it tracks quality only roughly; it does not measure realism or "
        "diversity: draw volumes with mdiff-sample, then mdiff-eval msssim REAL DIFFUSION GAN",
    ]


def validation_summary(run_dir: str | os.PathLike, prep_dir: str | os.PathLike, row: dict,
                       weights: str = "best") -> str:
    """Lines that explain the last row's validation figures and say which step
    model.safetensors holds (`weights`: what `Trainer.run` was asked to keep)."""
    info = run_folder.read_run_info(run_dir)
    if "val_loss" not in row:
        return (f"no validation: the PREP_DIR holds no held-out volumes, so "
                f"model.safetensors holds the last step ({info.weights_step})")
    count = _held_out(prep_dir)
    if info.kind == "vqgan":
        lines = _vqgan_lines(row, count)
    elif info.kind == "wgan":
        lines = _wgan_lines(row, count)
    else:
        lines = _ddpm_lines(row, count, info.scheduler.prediction_type)
    if weights == "best":
        lines.append(f"model.safetensors holds step {info.weights_step}, the one with the "
                     f"lowest val_loss (--weights latest keeps the last step instead)")
    else:
        lines.append(f"model.safetensors holds the last step ({info.weights_step})")
    return "\n".join(lines)
