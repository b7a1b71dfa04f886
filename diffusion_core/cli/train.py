"""`mdiff-train`: train a preset's VQ-GAN (and, from the DDPM issue on, its latent DDPM)."""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace

from diffusion_core.checkpoints import CheckpointError
from diffusion_core.prepared import PreparedError
from diffusion_core.presets import PRESETS, PresetError, vqgan_settings


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--preset", required=True, metavar="NAME",
                        help=f"the model settings and pipeline: {', '.join(PRESETS)}")
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
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto",
                        help="where to train (default: auto, CUDA when available; bf16 on CUDA)")
    parser.add_argument("--resume", action="store_true",
                        help="continue RUN_DIR from its latest checkpoint, exactly")
    parser.add_argument("--seed", type=int, default=0, help="data order and initialisation")
    parser.add_argument("--log-every", type=int, default=10, metavar="N",
                        help="write a log.csv row every N steps (default 10)")
    parser.add_argument("--val-every", type=int, default=500, metavar="N",
                        help="validate and keep checkpoint_best every N steps (default 500)")
    parser.add_argument("--checkpoint-every", type=int, default=500, metavar="N",
                        help="write checkpoint_latest every N steps (default 500)")
    parser.add_argument("--json", action="store_true",
                        help="print the last logged row as JSON on stdout")


def _parser() -> argparse.ArgumentParser:
    """The command's arguments."""
    parser = argparse.ArgumentParser(
        prog="mdiff-train",
        description="Train the Medical Diffusion models on a PREP_DIR. Runs on the CPU or a GPU; "
                    "under torchrun every process trains on its share of each step.")
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
    return parser


def _train_vqgan(args: argparse.Namespace) -> dict:
    from diffusion_core.training.config import TrainerConfig
    from diffusion_core.training.vqgan import train_vqgan

    settings = vqgan_settings(args.preset)
    loss = settings.loss
    if args.gan_start is not None:
        loss = replace(loss, gan_start_step=args.gan_start)
    if args.gan_weighting is not None:
        loss = replace(loss, gan_weighting=args.gan_weighting)
    settings = replace(settings, loss=loss)
    trainer = TrainerConfig(steps=args.steps or settings.steps,
                            batch_size=args.batch_size or settings.batch_size,
                            learning_rate=args.lr or settings.learning_rate,
                            log_every=args.log_every, val_every=args.val_every,
                            checkpoint_every=args.checkpoint_every, seed=args.seed)
    return train_vqgan(args.preset, args.data, args.out, settings=settings, trainer=trainer,
                       device=args.device, resume=args.resume,
                       perceptual_weights=args.perceptual_weights)


def main(argv: list[str] | None = None) -> int:
    """Entry point of mdiff-train; returns the exit status (2 for a usage mistake)."""
    args = _parser().parse_args(argv)
    from diffusion_core.nn.perceptual import PerceptualWeightsError
    from diffusion_core.training.trainer import TrainingError

    try:
        last = _train_vqgan(args)
    except (PresetError, PreparedError, CheckpointError, PerceptualWeightsError,
            ValueError) as err:
        print(f"mdiff-train: {err}", file=sys.stderr)
        return 2
    except TrainingError as err:
        print(f"mdiff-train: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("mdiff-train: interrupted; run the same command with --resume to continue from "
              "the latest checkpoint", file=sys.stderr)
        return 130
    if args.json:
        print(json.dumps(last))
    else:
        shown = ", ".join(f"{k} {v:.4g}" for k, v in last.items()
                          if k.startswith("val_") or k in ("step", "loss"))
        print(f"trained {args.out}: {shown}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
