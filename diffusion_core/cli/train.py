"""`mdiff-train`: train a preset's VQ-GAN, its latent DDPM on a trained VQ-GAN, or the GAN
baseline (WGAN-GP) the paper compares with."""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from diffusion_core.cli.common import (
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_OK,
    Failure,
    add_json_option,
    add_threads_option,
    print_result,
    run_command,
)
from diffusion_core.prepared import PreparedError
from diffusion_core.preprocess import PREPARED_FLOOR
from diffusion_core.presets import (
    PRESETS,
    PresetError,
    ddpm_settings,
    preset_table,
    vqgan_settings,
    wgan_settings,
)
from diffusion_core.run_folder import RUN_NAME, CheckpointError, read_run_info
from diffusion_core.runtime import DEVICES

if TYPE_CHECKING:
    from diffusion_core.training.config import TrainerConfig


def _common(parser: argparse.ArgumentParser, weights: str = "best") -> None:
    parser.add_argument("--preset", required=True, metavar="NAME",
                        help=f"the model settings and pipeline: {', '.join(PRESETS)} (shapes, "
                             f"steps and seconds per step: mdiff-train --help, or mdiff-models "
                             f"presets)")
    parser.add_argument("--data", required=True, metavar="PREP_DIR",
                        help="a folder written by mdiff-prepare with the same preset")
    parser.add_argument("--out", required=True, metavar="RUN_DIR",
                        help="the run folder: run.json, model.safetensors, checkpoints, log.csv")
    parser.add_argument("--steps", type=int, metavar="N", help="total optimisation steps "
                        "(default: the preset's)")
    parser.add_argument("--batch-size", type=int, metavar="B", help="volumes per step and "
                        "process (default: the preset's)")
    parser.add_argument("--lr", type=float, metavar="RATE",
                        help="learning rate (default: the preset's)")
    parser.add_argument("--device", choices=DEVICES, default="auto",
                        help="where to train (default: auto, CUDA when available; bf16 on CUDA)")
    parser.add_argument("--resume", action="store_true",
                        help="continue RUN_DIR from its latest checkpoint, exactly")
    parser.add_argument("--new-data", action="store_true",
                        help="with --resume: continue on a PREP_DIR whose content differs from "
                             "the one the run was trained on (run.json keeps both records)")
    parser.add_argument("--seed", type=int, default=0, help="data order and initialisation")
    parser.add_argument("--log-every", type=int, default=10, metavar="N",
                        help="write a log.csv row every N steps, at once (default 10)")
    parser.add_argument("--val-every", type=int, default=500, metavar="N",
                        help="validate and keep checkpoint_best every N steps (default 500)")
    parser.add_argument("--checkpoint-every", type=int, default=500, metavar="N",
                        help="write checkpoint_latest every N steps (default 500)")
    parser.add_argument("--checkpoint-minutes", type=float, default=10.0, metavar="MIN",
                        help="also write it when MIN minutes have passed since the last one, so "
                             "a crash loses at most that much (default 10; 0: by steps only). "
                             "Ctrl-C or SIGTERM always finish the step under way and write one "
                             "(exit 130 or 143); --resume then continues exactly")
    parser.add_argument("--weights", choices=("best", "latest"), default=weights,
                        help=f"what model.safetensors holds at the end: the step with the lowest "
                             f"validation loss or the last step (default: {weights})")
    add_threads_option(parser)
    add_json_option(parser, "the summary line (the last logged row)")


def _parser() -> argparse.ArgumentParser:
    """The command's arguments."""
    parser = argparse.ArgumentParser(
        prog="mdiff-train",
        description="Train the Medical Diffusion models on a PREP_DIR. Runs on the CPU or a GPU; "
                    "under torchrun every process trains on its share of each step.",
        epilog=f"presets (the paper's height x width x depth; our arrays are (D, H, W)):\n\n"
               f"{preset_table()}",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="model", required=True, metavar="MODEL")
    vq = sub.add_parser("vqgan", help="the 3D VQ-GAN autoencoder",
                        description="Train a preset's 3D VQ-GAN (encoder, EMA codebook, "
                                    "decoder; L1, perceptual and patch-GAN losses).")
    _common(vq)
    vq.add_argument("--perceptual-weights", metavar="PATH",
                    help="VGG16 weights (a state dict in torchvision's key layout, .pth or "
                         ".safetensors); without it the perceptual loss is off")
    vq.add_argument("--gan-start", type=int, metavar="STEP",
                    help="step at which the discriminators start (default: the preset's)")
    vq.add_argument("--gan-weighting", choices=("adaptive", "fixed"),
                    help="adaptive: balance the GAN gradient against reconstruction (default); "
                         "fixed: the authors' constant weight")
    vq.add_argument("--init", metavar="VQGAN_RUN",
                    help="start from this VQ-GAN run's weights (a new run, new optimiser)")
    vq.add_argument("--freeze-encoder", action="store_true",
                    help="with --init: keep its encoder and codebook (the latent space) fixed "
                         "and train the decoder only")
    vq.add_argument("--floor-margin", type=float, metavar="M",
                    help="learn the background (voxels at the data's floor, -1) at least M "
                         "below the floor and clamp decoded volumes there, so background is "
                         "exact floor as in the scans (default: the preset's; the paper: off)")
    dd = sub.add_parser("ddpm", help="the latent DDPM (on a trained VQ-GAN's latents)",
                        description="Train a preset's latent DDPM: the VQ-GAN encodes every "
                                    "volume once (cached in RUN_DIR/latents), then the in-plane "
                                    "U-Net learns to denoise the normalised latents.")
    _common(dd)
    dd.add_argument("--vqgan", required=True, metavar="VQGAN_RUN",
                    help="the run folder of a trained VQ-GAN of the same preset")
    dd.add_argument("--prediction", choices=("epsilon", "v"),
                    help="what the U-Net predicts: the noise (epsilon, the authors') or the "
                         "velocity (v); default: what the preset was made for (v for demo, "
                         "epsilon for the paper's presets and tiny), or the run's own with "
                         "--resume")
    _wgan_parser(sub)
    return parser


def _wgan_parser(sub) -> None:
    """The `wgan` subcommand's arguments."""
    wg = sub.add_parser("wgan", help="the GAN baseline (3D WGAN-GP, after Kwon et al.)",
                        description="Train a preset's 3D WGAN-GP, the baseline the paper's "
                                    "diversity comparison uses: a generator from noise to "
                                    "volumes and a layer-normed critic with a per-volume "
                                    "gradient penalty. One step is --critic-steps critic "
                                    "updates (each on its own --batch-size real volumes), then "
                                    "--generator-steps generator updates. log.csv holds the "
                                    "critic's Wasserstein estimate and the penalty.")
    _common(wg, weights="latest")
    wg.add_argument("--critic-steps", type=int, metavar="N",
                    help="critic updates per step (default 5, the WGAN-GP paper's)")
    wg.add_argument("--generator-steps", type=int, metavar="N",
                    help="generator updates per step (default 1; Kwon et al.'s code: 5, with 1 "
                         "critic step)")
    wg.add_argument("--penalty-weight", type=float, metavar="LAMBDA",
                    help="gradient penalty weight (default 10)")
    wg.add_argument("--betas", type=float, nargs=2, metavar=("B1", "B2"),
                    help="Adam's betas for both networks (default 0.0 0.9, the WGAN-GP paper's; "
                         "the learning rate is --lr, default 1e-4)")


def _trainer_config(args: argparse.Namespace, settings) -> TrainerConfig:
    from diffusion_core.training.config import TrainerConfig

    return TrainerConfig(steps=args.steps or settings.steps,
                         batch_size=args.batch_size or settings.batch_size,
                         learning_rate=args.lr or settings.learning_rate,
                         log_every=args.log_every, val_every=args.val_every,
                         checkpoint_every=args.checkpoint_every, seed=args.seed,
                         checkpoint_minutes=args.checkpoint_minutes)


def _train_ddpm(args: argparse.Namespace) -> dict:
    from diffusion_core.training.ddpm import train_ddpm

    settings = ddpm_settings(args.preset)
    kind = _prediction(args)
    if kind is not None:
        settings = replace(settings, scheduler=replace(settings.scheduler, prediction_type=kind))
    return train_ddpm(args.preset, args.data, args.vqgan, args.out, settings=settings,
                      trainer=_trainer_config(args, settings), device=args.device,
                      resume=args.resume, weights=args.weights, new_data=args.new_data)


def _prediction(args: argparse.Namespace) -> str | None:
    """The scheduler's prediction type --prediction asks for; with --resume and no
    --prediction, the resumed run's own; None: the preset's."""
    if args.prediction is not None:
        return "epsilon" if args.prediction == "epsilon" else "v_prediction"
    if args.resume and (Path(args.out) / RUN_NAME).is_file():
        info = read_run_info(args.out)
        if info.kind == "ddpm":
            return info.scheduler.prediction_type
    return None


def _train_vqgan(args: argparse.Namespace) -> dict:
    from diffusion_core.training.vqgan import train_vqgan

    settings = vqgan_settings(args.preset)
    loss = settings.loss
    if args.gan_start is not None:
        loss = replace(loss, gan_start_step=args.gan_start)
    if args.gan_weighting is not None:
        loss = replace(loss, gan_weighting=args.gan_weighting)
    model = settings.model
    if args.floor_margin is not None:
        # The prepared data's floor is -1 for every preset (MR min-max, CT window clip).
        loss = replace(loss, floor_margin=args.floor_margin)
        model = replace(model, output_floor=PREPARED_FLOOR)
    settings = replace(settings, model=model, loss=loss)
    return train_vqgan(args.preset, args.data, args.out, settings=settings,
                       trainer=_trainer_config(args, settings), weights=args.weights,
                       device=args.device, resume=args.resume,
                       perceptual_weights=args.perceptual_weights, init=args.init,
                       freeze_encoder=args.freeze_encoder, new_data=args.new_data)


def _train_wgan(args: argparse.Namespace) -> dict:
    from diffusion_core.training.wgan import train_wgan

    settings = wgan_settings(args.preset)
    changes = {name: value for name, value in (
        ("critic_steps", args.critic_steps), ("generator_steps", args.generator_steps),
        ("penalty_weight", args.penalty_weight),
        ("betas", None if args.betas is None else tuple(args.betas))) if value is not None}
    settings = replace(settings, loss=replace(settings.loss, **changes))
    return train_wgan(args.preset, args.data, args.out, settings=settings,
                      trainer=_trainer_config(args, settings), device=args.device,
                      resume=args.resume, weights=args.weights, new_data=args.new_data)


TRAINERS = {"vqgan": _train_vqgan, "ddpm": _train_ddpm, "wgan": _train_wgan}


def _run(args: argparse.Namespace) -> int:
    from diffusion_core.training.stopping import TrainingInterrupted, interrupted_sentence
    from diffusion_core.training.summary import validation_summary

    try:
        last = TRAINERS[args.model](args)
    except TrainingInterrupted as stop:
        print(f"mdiff-train: {stop}", file=sys.stderr)
        return stop.exit_status
    except KeyboardInterrupt:  # before the loop began, or a second Ctrl-C: say what is kept
        print(f"mdiff-train: {interrupted_sentence(args.out)}", file=sys.stderr)
        return EXIT_INTERRUPTED
    shown = ", ".join(f"{k} {v:.4g}" for k, v in last.items()
                      if k.startswith("val_") or k in ("step", "loss"))
    print_result(args.json, last, f"trained {args.out}: {shown}")
    if not args.json:
        print(validation_summary(args.out, args.data, last, args.weights))
    return EXIT_OK


def main(argv: list[str] | None = None) -> int:
    """Entry point of mdiff-train: 2 for a usage mistake, 1 when training itself fails."""
    args = _parser().parse_args(argv)
    from diffusion_core.nn.perceptual import PerceptualWeightsError
    from diffusion_core.training.trainer import TrainingError

    usage = (PresetError, PreparedError, CheckpointError, PerceptualWeightsError, ValueError)
    return run_command("mdiff-train", lambda: _run(args),
                       [Failure(usage), Failure(TrainingError, EXIT_FAILED)],
                       interrupted="interrupted before training began", threads=args.threads)


if __name__ == "__main__":
    sys.exit(main())
