"""`mdiff-eval turing CSV [CSV ...] [--json]`: the visual Turing test of an unblinded export.

JSON (`--json`), one object:

    {"files": [CSV, ...],
     "datasets": {DATASET: {
         "n_cases": {"real": int, "synthetic": int},
         "left_out": {"not_assessable": int, "practice": int},  # rows no statistic uses
         "readers": {READER: DETECTION}, "pooled": DETECTION,
         "realism": {QUESTION: {"n_real", "n_synthetic", "median_real", "median_synthetic",
                                "u", "p_value", "p_holm"}}}}}

    DETECTION = {"accuracy": {"value", "k", "n", "ci_low", "ci_high", "p_value"},
                 "sensitivity": {"value", "k", "n", "ci_low", "ci_high"},   # synthetic called so
                 "specificity": {...same...},                               # real called real
                 "auc_realism": {"auc", "n_real", "n_synthetic"},
                 "auc_confidence": {"auc", "n_real", "n_synthetic"}}

Shares are fractions; intervals are exact 95%; `p_value` of accuracy is the two-sided binomial
test against 0.5; `p_holm` is Holm-corrected over the questions of one dataset. A statistic that
cannot be computed is null and its object has a "reason".
"""

from __future__ import annotations

import argparse

from diffusion_core.cli.common import EXIT_OK, add_csv_inputs, add_json_option, print_result

HELP = ("Visual Turing test from an unblinded export (with the key): accuracy against chance, "
        "sensitivity, specificity, ROC AUC, and real vs synthetic realism.")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of `mdiff-eval turing`."""
    add_csv_inputs(parser, "ratings CSV(s) written by `mdiff-study export` with the key (they "
                           "need the `source` and `real_or_synthetic` columns)")
    add_json_option(parser, "the text report")


def run(args: argparse.Namespace) -> int:
    """Compute the Turing test report and print it."""
    # pandas, scipy and scikit-learn load here, not at import, so `mdiff-eval --help` is fast.
    from evaluation.turing import turing_from_exports, turing_text

    report = turing_from_exports(args.csv)
    print_result(args.json, report.to_json(), turing_text(report))
    return EXIT_OK
