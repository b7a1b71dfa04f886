"""`mdiff-eval memorization --train PREP_DIR --samples DIR [--holdout DIR]`: are samples copies?

The similarity (a coarse search, then local alignment at the fine grid), the calibration rule,
the check's power and the classes are `evaluation.copy_search`'s docstring.

JSON (`--json`), one object:

    {"inputs": {"train": {"dir", "split", "n_volumes"}, "samples": {"dir", "n_volumes"},
                "holdout": {"dir", "split" (null for a folder), "n_volumes"} or null},
     "similarity": {"measure", "shape", "grid", "fine_grid", "max_shift", "candidates",
                    "flip"},
     "calibration": {"rule", "copy_threshold", "novel_threshold",
                     "novel_from": "holdout" | "augmented copies only",
                     "off_distribution_threshold": float or null, "power": AUC or null,
                     "power_needed": 0.95, "powered": bool, "overlap": bool,
                     "augmented": {"n", "min", "q05", "median", "q95", "max", "noise", "blur",
                                   "max_shift_voxels", "seed", "source_found", "scores"},
                     "holdout": {"n", "min", "q05", "median", "q95", "max", "scores",
                                 "flagged_as_copy", "names"} or null,
                     "notes": [SENTENCE, ...]},
     "counts": {CLASS: n}, "fractions": {CLASS: f} for CLASS in copy, close, novel,
               off-distribution, cannot tell,
     "results": [{"file", "nearest", "score", "shift": [dz, dy, dx] (fine voxels), "flipped",
                  "class"}, ...],
     "figure": PNG or null, "seconds": float}
"""

from __future__ import annotations

import argparse
from pathlib import Path

from diffusion_core.cli.common import EXIT_OK, add_json_option, positive_int, print_result

HELP = ("Memorisation check: each sample's nearest training volume by normalised "
        "cross-correlation, aligned at full resolution, classed copy / close / novel / "
        "off-distribution against thresholds calibrated on augmented copies and held-out "
        "volumes; copies are called only when the check's measured power is at least 0.95.")
# evaluation.memorization's defaults, repeated so that --help does not import torch.
DEFAULT_GRID, DEFAULT_MAX_SHIFT, DEFAULT_COPIES, DEFAULT_NOISE, DEFAULT_PAIRS = 16, 2, 200, 0.1, 6
DEFAULT_FINE_GRID, DEFAULT_CANDIDATES, DEFAULT_BLUR = 64, 3, 1.0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of `mdiff-eval memorization`."""
    parser.add_argument("--train", type=Path, required=True, metavar="PREP_DIR",
                        help="the PREP_DIR the model was trained on")
    parser.add_argument("--samples", type=Path, required=True, metavar="DIR",
                        help="the samples to check: a samples folder, a PREP_DIR or a folder of "
                             "scans, of the training volumes' shape")
    parser.add_argument("--holdout", type=Path, metavar="DIR",
                        help="real volumes of subjects the model never saw: they measure the "
                             "check's power and calibrate 'novel' and 'off-distribution'; the "
                             "training PREP_DIR itself means its validation split (without it "
                             "the check calls no copies: it cannot tell)")
    parser.add_argument("--train-split", choices=("train", "all"), default="train",
                        help="which arrays of --train the model trained on (default train: "
                             "mdiff-train's split)")
    parser.add_argument("--grid", type=positive_int, default=DEFAULT_GRID, metavar="N",
                        help=f"compare volumes pooled to at most N voxels per axis (default "
                             f"{DEFAULT_GRID})")
    parser.add_argument("--fine-grid", type=positive_int, default=DEFAULT_FINE_GRID,
                        metavar="N",
                        help=f"align and score the best candidates pooled to at most N voxels "
                             f"per axis (default {DEFAULT_FINE_GRID}: full resolution at 64^3)")
    parser.add_argument("--candidates", type=positive_int, default=DEFAULT_CANDIDATES,
                        metavar="K",
                        help=f"training volumes per sample compared again at the fine grid "
                             f"(default {DEFAULT_CANDIDATES})")
    parser.add_argument("--max-shift", type=int, default=DEFAULT_MAX_SHIFT, metavar="S",
                        help=f"allow shifts of up to S pooled voxels per axis (default "
                             f"{DEFAULT_MAX_SHIFT})")
    parser.add_argument("--copies", type=positive_int, default=DEFAULT_COPIES, metavar="N",
                        help=f"augmented copies of training volumes that calibrate the copy "
                             f"threshold (default {DEFAULT_COPIES}, at most one per volume)")
    parser.add_argument("--noise", type=float, default=DEFAULT_NOISE, metavar="F",
                        help=f"noise of the augmented copies, times each volume's standard "
                             f"deviation (default {DEFAULT_NOISE})")
    parser.add_argument("--blur", type=float, default=DEFAULT_BLUR, metavar="S",
                        help=f"largest Gaussian blur (sigma, voxels) of the augmented copies, "
                             f"as a decoder softens a copy (default {DEFAULT_BLUR})")
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
    from evaluation.memorization import CheckOptions, memorization_report, memorization_text

    options = CheckOptions(train_split=args.train_split, grid=args.grid,
                           fine_grid=args.fine_grid, max_shift=args.max_shift,
                           candidates=args.candidates, copies=args.copies, noise=args.noise,
                           blur=args.blur, seed=args.seed)
    report = memorization_report(args.train, args.samples, holdout=args.holdout,
                                 options=options, figure=args.figure, pairs=args.pairs,
                                 force=args.force)
    print_result(args.json, report, memorization_text(report))
    return EXIT_OK
