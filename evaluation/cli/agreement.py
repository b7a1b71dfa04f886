"""`mdiff-eval agreement CSV [CSV ...] [--json] [--figure PNG [--force]]`: the paper's reader
statistics.

JSON (`--json`), one object:

    {"files": [CSV, ...],
     "figure": PNG or null,
     "datasets": {DATASET: {
         "cases": "synthetic" (export with the key: real cases left out) | "all",
         "n_cases": int, "readers": [READER, ...],
         "left_out": {"not_assessable": int, "practice": int},  # rows no statistic uses
         "categories": {QUESTION: {            # realistic_appearance, slice_consistency, ...
             "counts": {READER: {"c_or_better": int, "total": int,
                                 "options": {"A": int, "B": int, "C": int, "D": int}}},
             "pairs": [{"readers": [R1, R2], "n_shared": int,
                        "percent_agreement": {"percent", "n_cases"},
                        "kappa_linear": {"kappa", "ci_low", "ci_high", "n_cases"},
                        "kappa_quadratic": {...same...}}],
             "fleiss": {"kappa", "n_cases" (rated by all readers), "n_readers"},
             "krippendorff": {"alpha", "n_cases" (rated by two or more readers)}}}}},
     "all_datasets": {QUESTION: {READER: {"c_or_better": int, "total": int}}}}

A statistic that cannot be computed is null and its object has a "reason".
"""

from __future__ import annotations

import argparse
from pathlib import Path

from diffusion_core.cli.common import EXIT_OK, add_csv_inputs, add_json_option, print_result

HELP = ("Reader agreement from exported ratings: the paper's 'C or better' counts, weighted "
        "Cohen's kappa, Fleiss' kappa, Krippendorff's alpha and Figure 2.")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of `mdiff-eval agreement`."""
    add_csv_inputs(parser, "ratings CSV(s) written by `mdiff-study export` (several studies, "
                           "datasets or sites may be given together)")
    add_json_option(parser, "the text report")
    parser.add_argument("--figure", type=Path, metavar="PNG",
                        help="also draw the paper's Figure 2 (options A-D per reader and "
                             "question, one panel per dataset) into this PNG file")
    parser.add_argument("--force", action="store_true",
                        help="replace the --figure file if it exists (never an input or a file "
                             "of a study)")


def run(args: argparse.Namespace) -> int:
    """Compute the agreement report, draw the figure if asked, and print the report."""
    # pandas, statsmodels and matplotlib load here, not at import, so `mdiff-eval --help` is fast.
    from evaluation.agreement import agreement_from_exports, agreement_text

    report = agreement_from_exports(args.csv, figure=args.figure, force=args.force)
    print_result(args.json, report.to_json(), agreement_text(report))
    return EXIT_OK
