"""`mdiff-eval afc CSV [CSV ...] [--json] [--figure PNG [--force]]`: paired (2AFC) reading.

JSON (`--json`), one object:

    {"files": [CSV, ...], "study_id": str, "dataset": str,
     "n_trials": int,                                   # trials with an analysed answer
     "left_out": {"not_assessable": int, "practice": int, "unanswered": int},
     "readers": {READER: STATS}, "pooled": STATS,
     "agreement": {"pairs": [{"readers": [R1, R2], "n_shared": int,
                              "same_case": share, "kappa": float}],
                   "fleiss_kappa": float, "n_trials_all_readers": int},
     "figure": PNG or null}

    STATS = {"correct": {"value", "k", "n", "ci_low", "ci_high", "p_value"},       # Pc
             "dprime": {"value", "pc_used", "corrected"},
             "left_choices": {"value", "k", "n", "ci_low", "ci_high", "p_value"},  # side bias
             "auc_confidence": {"auc", "n_synthetic_left", "n_synthetic_right",
                                "roc": [[false-positive rate, true-positive rate], ...]}}

Shares are fractions; intervals are exact (Clopper-Pearson) 95%; p-values are two-sided exact
binomial tests against 0.5. A statistic that cannot be computed is null and its object has a
"reason".
"""

from __future__ import annotations

import argparse
from pathlib import Path

from diffusion_core.cli.common import EXIT_OK, add_csv_inputs, add_json_option, print_result

HELP = ("Paired (2AFC) reading from an unblinded export: proportion correct with an exact CI and "
        "binomial test, d', side bias, agreement on the chosen case, confidence-weighted AUC.")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of `mdiff-eval afc`."""
    add_csv_inputs(parser, "the CSV(s) written by `mdiff-study export STUDY --key KEY` of one "
                           "paired study (one row per reader and trial)")
    add_json_option(parser, "the text report")
    parser.add_argument("--figure", type=Path, metavar="PNG",
                        help="also draw proportion correct per reader (exact CI, chance line) "
                             "and the confidence-weighted ROC curves into this PNG file")
    parser.add_argument("--force", action="store_true",
                        help="replace the --figure file if it exists (never an input or a file "
                             "of a study)")


def run(args: argparse.Namespace) -> int:
    """Compute the paired-reading report, draw the figure if asked, and print the report."""
    # pandas, scipy, scikit-learn and matplotlib load here, so `mdiff-eval --help` is fast.
    from evaluation.afc import afc_from_exports, afc_text

    report = afc_from_exports(args.csv, figure=args.figure, force=args.force)
    print_result(args.json, report.to_json(), afc_text(report))
    return EXIT_OK
