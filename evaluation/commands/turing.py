"""`mdiff-eval turing CSV [CSV ...] [--json]`: the visual Turing test of an unblinded export.

JSON (`--json`), one object:

    {"files": [CSV, ...],
     "datasets": {DATASET: {
         "n_cases": {"real": int, "synthetic": int},
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
import json
from pathlib import Path

from evaluation.cli import EvalError

HELP = ("Visual Turing test from an unblinded export (with the key): accuracy against chance, "
        "sensitivity, specificity, ROC AUC, and real vs synthetic realism.")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of `mdiff-eval turing`."""
    parser.add_argument("csv", nargs="+", type=Path, metavar="CSV",
                        help="ratings CSV(s) written by `mdiff-study export` with the key (they "
                             "need the `source` and `real_or_synthetic` columns)")
    parser.add_argument("--json", action="store_true",
                        help="print one JSON object on stdout instead of the text report")


def run(args: argparse.Namespace) -> int:
    """Compute the Turing test report and print it."""
    # pandas, scipy and scikit-learn load here, not at import, so `mdiff-eval --help` is fast.
    from evaluation.ratings_csv import RatingsCsvError, load_ratings
    from evaluation.turing import TURING_COLUMNS, turing_report

    try:
        ratings = load_ratings(args.csv, require=TURING_COLUMNS)
    except RatingsCsvError as err:
        raise EvalError(str(err)) from None
    report = turing_report(ratings)
    if args.json:
        print(json.dumps(report, allow_nan=False))
    else:
        print(format_report(report))
    return 0


def _share(stat: dict) -> str:
    if stat["value"] is None:
        return f"undefined ({stat['reason']})"
    return (f"{100 * stat['value']:.1f}% ({stat['k']}/{stat['n']}, 95% CI "
            f"{100 * stat['ci_low']:.1f}-{100 * stat['ci_high']:.1f}%)")


def _auc(stat: dict) -> str:
    return f"undefined ({stat['reason']})" if stat["auc"] is None else f"{stat['auc']:.2f}"


def _detection_lines(name: str, stats: dict) -> list[str]:
    accuracy = stats["accuracy"]
    p_text = "" if accuracy["p_value"] is None else f", binomial p = {accuracy['p_value']:.3g}"
    return [
        f"  {name}: accuracy {_share(accuracy)}{p_text} against 50%",
        f"    sensitivity (synthetic called synthetic) {_share(stats['sensitivity'])}",
        f"    specificity (real called real) {_share(stats['specificity'])}",
        f"    ROC AUC, realism as confidence: {_auc(stats['auc_realism'])}; "
        f"Turing confidence: {_auc(stats['auc_confidence'])}",
    ]


def format_report(report: dict) -> str:
    """The Turing test report as text."""
    from evaluation.ratings_csv import CATEGORY_TITLES, reader_label

    lines: list[str] = []
    for dataset, summary in report["datasets"].items():
        n = summary["n_cases"]
        lines.append(f"Dataset {dataset}: {n['real']} real and {n['synthetic']} synthetic cases")
        for reader, stats in summary["readers"].items():
            lines.extend(_detection_lines(reader_label(reader), stats))
        lines.extend(_detection_lines("All readers pooled", summary["pooled"]))
        lines.append("  Real vs synthetic scores (Mann-Whitney U, Holm-corrected):")
        for question, test in summary["realism"].items():
            title = CATEGORY_TITLES[question]
            if test["p_value"] is None:
                lines.append(f"    {title}: undefined ({test['reason']})")
            else:
                lines.append(f"    {title}: median real {test['median_real']:g} vs synthetic "
                             f"{test['median_synthetic']:g} (A=1 ... D=4), U = {test['u']:g}, "
                             f"p = {test['p_value']:.3g}, Holm p = {test['p_holm']:.3g}")
        lines.append("")
    return "\n".join(lines).rstrip("\n")
