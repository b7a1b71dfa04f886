"""`mdiff-eval memorization --train PREP_DIR --samples DIR [--holdout DIR]`: are samples copies?

The similarity, the calibration rule and the classes are `evaluation.memorization`'s docstring.

JSON (`--json`), one object:

    {"inputs": {"train": {"dir", "split", "n_volumes"}, "samples": {"dir", "n_volumes"},
                "holdout": {"dir", "split" (null for a folder), "n_volumes"} or null},
     "similarity": {"measure", "shape", "grid", "max_shift", "flip"},
     "calibration": {"rule", "copy_threshold", "novel_threshold",
                     "novel_from": "holdout" | "augmented copies only", "overlap": bool,
                     "augmented": {"n", "min", "q05", "median", "q95", "max", "noise",
                                   "max_shift_voxels", "seed", "source_found", "scores"},
                     "holdout": {"n", "min", "q05", "median", "q95", "max", "scores",
                                 "flagged_as_copy", "names"} or null,
                     "notes": [SENTENCE, ...]},
     "counts": {"copy", "close", "novel"}, "fractions": {"copy", "close", "novel"},
     "results": [{"file", "nearest", "score", "shift": [dz, dy, dx], "flipped", "class"}, ...],
     "figure": PNG or null, "seconds": float}
"""

from __future__ import annotations

import argparse
from pathlib import Path

from diffusion_core.cli.common import EXIT_OK, add_json_option, positive_int, print_result

HELP = ("Memorisation check: each sample's nearest training volume by normalised "
        "cross-correlation (small shifts, left-right mirror), classed copy / close / novel "
        "against thresholds calibrated on augmented copies and held-out volumes.")
# evaluation.memorization's defaults, repeated so that --help does not import torch.
DEFAULT_GRID, DEFAULT_MAX_SHIFT, DEFAULT_COPIES, DEFAULT_NOISE, DEFAULT_PAIRS = 16, 2, 200, 0.1, 6


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of `mdiff-eval memorization`."""
    parser.add_argument("--train", type=Path, required=True, metavar="PREP_DIR",
                        help="the PREP_DIR the model was trained on")
    parser.add_argument("--samples", type=Path, required=True, metavar="DIR",
                        help="the samples to check: a samples folder, a PREP_DIR or a folder of "
                             "scans, of the training volumes' shape")
    parser.add_argument("--holdout", type=Path, metavar="DIR",
                        help="real volumes the model never saw, to calibrate what 'novel' is; "
                             "the training PREP_DIR itself means its validation split (without "
                             "it, only augmented copies calibrate, and the report says so)")
    parser.add_argument("--train-split", choices=("train", "all"), default="train",
                        help="which arrays of --train the model trained on (default train: "
                             "mdiff-train's split)")
    parser.add_argument("--grid", type=positive_int, default=DEFAULT_GRID, metavar="N",
                        help=f"compare volumes pooled to at most N voxels per axis (default "
                             f"{DEFAULT_GRID})")
    parser.add_argument("--max-shift", type=int, default=DEFAULT_MAX_SHIFT, metavar="S",
                        help=f"allow shifts of up to S pooled voxels per axis (default "
                             f"{DEFAULT_MAX_SHIFT})")
    parser.add_argument("--copies", type=positive_int, default=DEFAULT_COPIES, metavar="N",
                        help=f"augmented copies of training volumes that calibrate the copy "
                             f"threshold (default {DEFAULT_COPIES}, at most one per volume)")
    parser.add_argument("--noise", type=float, default=DEFAULT_NOISE, metavar="F",
                        help=f"noise of the augmented copies, times each volume's standard "
                             f"deviation (default {DEFAULT_NOISE})")
    parser.add_argument("--seed", type=int, default=0,
                        help="seed of the augmented copies (default 0)")
    parser.add_argument("--figure", type=Path, metavar="PNG",
                        help="draw the score distributions and the closest pairs into this PNG")
    parser.add_argument("--force", action="store_true",
                        help="replace the --figure file if it exists (never an input or a file "
                             "of a study)")
    parser.add_argument("--pairs", type=positive_int, default=DEFAULT_PAIRS, metavar="N",
                        help=f"closest pairs in the figure (default {DEFAULT_PAIRS})")
    add_json_option(parser, "the text report")


def run(args: argparse.Namespace) -> int:
    """Run the check and print the report."""
    from evaluation.memorization import memorization_report, memorization_text

    report = memorization_report(
        args.train, args.samples, holdout=args.holdout, train_split=args.train_split,
        grid=args.grid, max_shift=args.max_shift, copies=args.copies, noise=args.noise,
        seed=args.seed, figure=args.figure, pairs=args.pairs, force=args.force)
    print_result(args.json, report, memorization_text(report))
    return EXIT_OK
