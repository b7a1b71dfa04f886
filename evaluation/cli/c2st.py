"""`mdiff-eval c2st REAL SYNTHETIC`: can a classifier tell synthetic volumes from real ones?

What is trained, how folds keep a scan's augmented copies together, and how the AUC, its CI and
the p-value are computed is `evaluation.c2st`'s docstring; the features are
`evaluation.volume_features`'.

JSON (`--json`), one object:

    {"inputs": {"real": {"dir", "n_volumes", "n_groups"}, "synthetic": {...}},
     "values": CONVENTION, "shape": [D, H, W], "network_input": [d, h, w],
     "settings": {"folds", "seeds", "epochs", "device", "bootstrap", "permutations", "seed"},
     "cnn": {"auc", "ci_low", "ci_high", "p_value", "auc_per_seed", "folds"},
     "features": {... as "cnn", "features": [{"feature", "family", "auc", "real_median",
                                              "synthetic_median", "separates"}, ...]},
     "calibration": {"cnn", "features", "n_volumes": [A, B]} or null (under 4 real scans),
     "verdict": SENTENCE, "figure": PNG or null, "seconds": float}
"""

from __future__ import annotations

import argparse
from pathlib import Path

from diffusion_core.cli.common import EXIT_OK, add_json_option, positive_int, print_result
from diffusion_core.runtime import DEVICES

HELP = ("Classifier two-sample test: held-out ROC AUC (95% CI, p-value) of a small 3D CNN and of "
        "a feature classifier telling REAL from SYNTHETIC, beside the same test on real halves.")
# evaluation.c2st's defaults, repeated so that --help does not import torch.
DEFAULT_FOLDS, DEFAULT_SEEDS, DEFAULT_EPOCHS = 5, 3, 20


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of `mdiff-eval c2st`."""
    parser.add_argument("real", type=Path, metavar="REAL",
                        help="real volumes: a PREP_DIR (its manifest groups the augmented copies "
                             "of one scan), a folder of scans or a samples folder")
    parser.add_argument("synthetic", type=Path, metavar="SYNTHETIC",
                        help="synthetic volumes of the same shape, e.g. a samples folder")
    parser.add_argument("--folds", type=positive_int, default=DEFAULT_FOLDS, metavar="K",
                        help=f"cross-validation folds, at most the source scans of the smaller "
                             f"folder (default {DEFAULT_FOLDS})")
    parser.add_argument("--seeds", type=positive_int, default=DEFAULT_SEEDS, metavar="N",
                        help=f"repeats of the k-fold split, each with its own folds and "
                             f"initialisation (default {DEFAULT_SEEDS})")
    parser.add_argument("--epochs", type=positive_int, default=DEFAULT_EPOCHS, metavar="E",
                        help=f"training epochs of each network (default {DEFAULT_EPOCHS})")
    parser.add_argument("--seed", type=int, default=0, help="first seed (default 0)")
    parser.add_argument("--device", choices=DEVICES, default="auto",
                        help="where the networks train (default: CUDA when available)")
    parser.add_argument("--figure", type=Path, metavar="PNG",
                        help="draw the intensity histograms and the network's gradient maps")
    parser.add_argument("--force", action="store_true",
                        help="replace the --figure file if it exists")
    add_json_option(parser, "the text report")


def run(args: argparse.Namespace) -> int:
    """Run the test and print the report."""
    from evaluation.c2st import Settings, c2st_report, c2st_text

    settings = Settings(folds=args.folds, seeds=args.seeds, epochs=args.epochs, seed=args.seed)
    report = c2st_report(args.real, args.synthetic, settings=settings, device=args.device,
                         figure=args.figure, force=args.force)
    print_result(args.json, report, c2st_text(report))
    return EXIT_OK
