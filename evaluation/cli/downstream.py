"""`mdiff-eval downstream`: does self-supervised pre-training on synthetic volumes help segment?

Pre-trains MONAI's SwinUNETR encoder on --pretrain (rotation, contrastive and inpainting
objectives, weighted 1:1:1), then fine-tunes the whole network on each fraction of --labelled,
with and without the pre-trained encoder (same seeds, schedule and augmentation), and scores the
--test cases by Dice and HD95. The run folder, its files and how it resumes are
`evaluation.downstream.run`'s docstring; the labelled folder's layout is
`evaluation.downstream.data`'s.

JSON (`--json`), one object:

    {"out", "unit": "subject" | "case", "network_input": [D, H, W],
     "inputs": {"pretrain", "labelled", "test", "labelled_cases", "test_cases",
                "labelled_subjects", "test_subjects"},
     "config": {"swin", "pretrain", "finetune", "sweep"},
     "summary": [{"fraction", "pretrained", "seeds", "n_train", "dice_mean", "dice_ci_low",
                  "dice_ci_high", "hd95_mean"}, ...],
     "results": [{"fraction", "pretrained", "seed", "n_train", "dice", "hd95", "seconds"}, ...],
     "figures": [PNG, ...], "seconds": float}
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

from diffusion_core.cli.common import EXIT_OK, add_json_option, positive_int, print_result
from diffusion_core.runtime import DEVICES

HELP = ("Downstream segmentation: pre-train SwinUNETR self-supervised on synthetic volumes, "
        "fine-tune it on fractions of a labelled set with and without that pre-training, and "
        "compare test Dice and HD95 (a CSV and the paper's Figures 4 and 5); rerun to resume.")
# evaluation.downstream.config's defaults, repeated so that --help does not import torch.
DEFAULT_FRACTIONS = "0.05,0.1,0.2,0.4,0.8,1.0"
DEFAULT_SEEDS, DEFAULT_PRETRAIN_STEPS, DEFAULT_FINETUNE_STEPS = 3, 300, 100
DEFAULT_FEATURE_SIZE, DEFAULT_BATCH = 12, 2
DEFAULT_PRETRAIN_LR, DEFAULT_FINETUNE_LR = 4e-4, 2e-4


def fractions_value(text: str) -> tuple[float, ...]:
    """argparse type of --fractions: comma-separated numbers in (0, 1]."""
    try:
        values = tuple(float(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected numbers separated by commas, got {text!r}") \
            from None
    if not values or any(not 0.0 < v <= 1.0 for v in values) or len(set(values)) < len(values):
        raise argparse.ArgumentTypeError(f"expected distinct fractions in (0, 1], got {text!r}")
    return values


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of `mdiff-eval downstream`."""
    parser.add_argument("--pretrain", type=Path, required=True, metavar="DIR",
                        help="unlabelled volumes to pre-train on: a samples folder (e.g. from "
                             "mdiff-sample), a PREP_DIR or a folder of scans, of one shape")
    parser.add_argument("--labelled", type=Path, required=True, metavar="DIR",
                        help="the labelled training set: DIR/images/ and DIR/masks/, scans "
                             "matched by file name; mask voxels above 0 are the foreground")
    parser.add_argument("--test", type=Path, required=True, metavar="DIR",
                        help="the test set, laid out as --labelled, of other subjects")
    parser.add_argument("--out", type=Path, required=True, metavar="RUN_DIR",
                        help="the run folder (new, or a run of the same options to continue)")
    parser.add_argument("--fractions", type=fractions_value, default=DEFAULT_FRACTIONS,
                        metavar="F,F,...",
                        help=f"shares of the labelled subjects (of the cases when the smallest "
                             f"share would keep no subject) to train on (default "
                             f"{DEFAULT_FRACTIONS})")
    parser.add_argument("--seeds", type=positive_int, default=DEFAULT_SEEDS, metavar="N",
                        help=f"seeds per fraction: each picks the subset and initialises both "
                             f"arms (default {DEFAULT_SEEDS})")
    parser.add_argument("--first-seed", type=int, default=0, metavar="S",
                        help="the first seed; also seeds the pre-training (default 0)")
    parser.add_argument("--pretrain-steps", type=positive_int, default=DEFAULT_PRETRAIN_STEPS,
                        metavar="N", help=f"pre-training steps (default {DEFAULT_PRETRAIN_STEPS})")
    parser.add_argument("--finetune-steps", type=positive_int, default=DEFAULT_FINETUNE_STEPS,
                        metavar="N",
                        help=f"fine-tuning steps of every cell (default {DEFAULT_FINETUNE_STEPS})")
    parser.add_argument("--batch-size", type=positive_int, default=DEFAULT_BATCH, metavar="B",
                        help=f"volumes per step in both stages; pre-training needs 2 or more "
                             f"(default {DEFAULT_BATCH})")
    parser.add_argument("--feature-size", type=positive_int, default=DEFAULT_FEATURE_SIZE,
                        metavar="F",
                        help=f"SwinUNETR's feature size, a multiple of 12 (default "
                             f"{DEFAULT_FEATURE_SIZE}; MONAI's default is 24, the paper's 48)")
    parser.add_argument("--pretrain-lr", type=float, default=DEFAULT_PRETRAIN_LR, metavar="LR",
                        help=f"pre-training learning rate, AdamW (default {DEFAULT_PRETRAIN_LR})")
    parser.add_argument("--finetune-lr", type=float, default=DEFAULT_FINETUNE_LR, metavar="LR",
                        help=f"fine-tuning learning rate, AdamW (default {DEFAULT_FINETUNE_LR})")
    parser.add_argument("--subject-pattern", metavar="REGEX",
                        help="a regular expression on a case's file name (without extension) "
                             "whose first group is its subject (default: the name without a "
                             "trailing _NNN or -NNN)")
    parser.add_argument("--device", choices=DEVICES, default="auto",
                        help="where the networks train (default: CUDA when available; bf16 "
                             "there)")
    add_json_option(parser, "the text table")


def run(args: argparse.Namespace) -> int:
    """Run or continue the experiment and print its table."""
    from diffusion_core.training.stopping import TrainingInterrupted
    from evaluation.downstream.config import (
        DownstreamConfig,
        FinetuneConfig,
        PretrainConfig,
        SweepConfig,
        SwinConfig,
    )
    from evaluation.downstream.data import DEFAULT_SUBJECT
    from evaluation.downstream.run import downstream_report, downstream_text
    from evaluation.errors import EvalError

    pattern = args.subject_pattern or DEFAULT_SUBJECT
    try:
        re.compile(pattern)
    except re.error as err:
        raise EvalError(f"--subject-pattern {pattern!r} is no regular expression ({err}).") \
            from None
    try:
        config = DownstreamConfig(
            swin=SwinConfig(feature_size=args.feature_size),
            pretrain=PretrainConfig(steps=args.pretrain_steps, batch_size=args.batch_size,
                                    learning_rate=args.pretrain_lr, seed=args.first_seed),
            finetune=FinetuneConfig(steps=args.finetune_steps, batch_size=args.batch_size,
                                    learning_rate=args.finetune_lr),
            sweep=SweepConfig(fractions=args.fractions, seeds=args.seeds,
                              first_seed=args.first_seed))
    except ValueError as err:
        raise EvalError(f"{err}.") from None
    try:
        report = downstream_report(args.pretrain, args.labelled, args.test, args.out, config,
                                   subject_pattern=pattern,
                                   device=args.device, progress=not args.json)
    except TrainingInterrupted as stop:
        print(f"mdiff-eval downstream: stopped after step {stop.step} of {stop.steps} in "
              f"{stop.run_dir}, checkpointed; run the same command again to continue (finished "
              f"cells are kept).", file=sys.stderr)
        return stop.exit_status
    print_result(args.json, report, downstream_text(report))
    return EXIT_OK
