"""`mdiff-eval agreement CSV [CSV ...] [--json] [--figure PNG]`: the paper's reader statistics.

JSON (`--json`), one object:

    {"files": [CSV, ...],
     "figure": PNG or null,
     "datasets": {DATASET: {
         "cases": "synthetic" (export with the key: real cases left out) | "all",
         "n_cases": int, "readers": [READER, ...],
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
import json
from pathlib import Path

from evaluation.cli import EvalError

HELP = ("Reader agreement from exported ratings: the paper's 'C or better' counts, weighted "
        "Cohen's kappa, Fleiss' kappa, Krippendorff's alpha and Figure 2.")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of `mdiff-eval agreement`."""
    parser.add_argument("csv", nargs="+", type=Path, metavar="CSV",
                        help="ratings CSV(s) written by `mdiff-study export` (several studies, "
                             "datasets or sites may be given together)")
    parser.add_argument("--json", action="store_true",
                        help="print one JSON object on stdout instead of the text report")
    parser.add_argument("--figure", type=Path, metavar="PNG",
                        help="also draw the paper's Figure 2 (options A-D per reader and "
                             "question, one panel per dataset) into this PNG file")


def run(args: argparse.Namespace) -> int:
    """Compute the agreement report, print it, and draw the figure if asked."""
    # pandas, statsmodels and matplotlib load here, not at import, so `mdiff-eval --help` is fast.
    from evaluation.agreement import agreement_report
    from evaluation.ratings_csv import RatingsCsvError, load_ratings

    if args.figure is not None:
        _check_figure_path(args.figure)
    try:
        ratings = load_ratings(args.csv)
    except RatingsCsvError as err:
        raise EvalError(str(err)) from None
    report = agreement_report(ratings)
    report["figure"] = None
    if args.figure is not None:
        from evaluation.figures import save_figure2

        try:
            save_figure2(report, args.figure)
        except OSError as err:
            raise EvalError(f"cannot write the figure {args.figure} ({err.strerror or err}); "
                            "choose a writable path.") from None
        report["figure"] = str(args.figure)
    if args.json:
        print(json.dumps(report, allow_nan=False))
    else:
        print(format_report(report))
    return 0


def _check_figure_path(path: Path) -> None:
    """Refuse a figure path that cannot work before any statistics are computed."""
    if path.suffix.lower() != ".png":
        raise EvalError(f"the figure {path} must be a .png file; give a path ending in .png.")
    if not path.parent.is_dir():
        raise EvalError(f"the folder {path.parent} of the figure does not exist; create it first.")


def _kappa(stat: dict) -> str:
    if stat["kappa"] is None:
        return f"undefined ({stat['reason']})"
    if stat["ci_low"] is None:
        return f"{stat['kappa']:.2f} (no interval: {stat['reason']})"
    return f"{stat['kappa']:.2f} (95% CI {stat['ci_low']:.2f} to {stat['ci_high']:.2f})"


def _category_lines(title: str, stats: dict) -> list[str]:
    from evaluation.ratings_csv import reader_label

    lines = [f"  {title.capitalize()}, agreement:"]
    for pair in stats["pairs"]:
        first, second = pair["readers"]
        agree = pair["percent_agreement"]
        agree_text = (f"agreement {agree['percent']:.1f}%" if agree["percent"] is not None
                      else f"agreement undefined ({agree['reason']})")
        lines.append(f"    {reader_label(first)} and {reader_label(second)}: "
                     f"{pair['n_shared']} shared cases, {agree_text}")
        lines.append(f"      weighted kappa, linear: {_kappa(pair['kappa_linear'])}")
        lines.append(f"      weighted kappa, quadratic: {_kappa(pair['kappa_quadratic'])}")
    fleiss = stats["fleiss"]
    if fleiss["kappa"] is None:
        lines.append(f"    Fleiss' kappa: undefined ({fleiss['reason']})")
    else:
        everyone = "both" if fleiss["n_readers"] == 2 else f"all {fleiss['n_readers']}"
        lines.append(f"    Fleiss' kappa: {fleiss['kappa']:.2f} over the {fleiss['n_cases']} "
                     f"cases rated by {everyone} readers")
    alpha = stats["krippendorff"]
    if alpha["alpha"] is None:
        lines.append(f"    Krippendorff's alpha (ordinal): undefined ({alpha['reason']})")
    else:
        lines.append(f"    Krippendorff's alpha (ordinal): {alpha['alpha']:.2f} over "
                     f"{alpha['n_cases']} cases rated by two or more readers")
    return lines


def format_report(report: dict) -> str:
    """The agreement report as text, with the paper-style counts first in each dataset."""
    from evaluation.ratings_csv import CATEGORIES, CATEGORY_TITLES, reader_label

    lines: list[str] = []
    for dataset, summary in report["datasets"].items():
        if summary["cases"] == "synthetic":
            scope = f"{summary['n_cases']} synthetic cases (the export has the key; real left out)"
        else:
            scope = f"{summary['n_cases']} cases (no key: real and synthetic not told apart)"
        lines.append(f"Dataset {dataset}: {scope}; {len(summary['readers'])} readers")
        for category in CATEGORIES:
            for reader, count in summary["categories"][category]["counts"].items():
                lines.append(f"  {reader_label(reader)}, {CATEGORY_TITLES[category]}: C or "
                             f"better {count['c_or_better']}/{count['total']}")
        for category in CATEGORIES:
            lines.extend(_category_lines(CATEGORY_TITLES[category],
                                         summary["categories"][category]))
        lines.append("")
    if len(report["datasets"]) > 1:
        lines.append("All datasets:")
        for category in CATEGORIES:
            for reader, total in report["all_datasets"][category].items():
                parts = ", ".join(
                    f"{d} {s['categories'][category]['counts'][reader]['c_or_better']}/"
                    f"{s['categories'][category]['counts'][reader]['total']}"
                    for d, s in report["datasets"].items()
                    if reader in s["categories"][category]["counts"])
                lines.append(f"  {reader_label(reader)}, {CATEGORY_TITLES[category]}: C or "
                             f"better {total['c_or_better']}/{total['total']} ({parts})")
        lines.append("")
    if report["figure"]:
        lines.append(f"Figure 2 written to {report['figure']}")
    return "\n".join(lines).rstrip("\n")

