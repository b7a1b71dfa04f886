"""`mdiff-study export STUDY --out PATH [--force] [--key PATH] [--include-partial]
[--include-practice] [--accept-edits] [--format csv|imrmc] [--score realism|turing]`: all
ratings as one CSV, or iMRMC's input table."""

from __future__ import annotations

import argparse

from diffusion_core.cli.common import EXIT_OK, add_json_option, print_result

HELP = "all ratings as one CSV, or as iMRMC's input table"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of `mdiff-study export`."""
    parser.add_argument("study")
    parser.add_argument("--out", required=True,
                        help="the file to write (outside the study; never the key)")
    parser.add_argument("--force", action="store_true",
                        help="replace --out if it exists (never an input, a study's file or a "
                             "key)")
    parser.add_argument("--key", metavar="PATH",
                        help="add source and origin from the key (needed for --format imrmc); "
                             "in a paired study the synthetic side and whether each choice was "
                             "correct (needed for mdiff-eval afc)")
    parser.add_argument("--include-partial", action="store_true",
                        help="also write cases not fully answered yet")
    parser.add_argument("--include-practice", action="store_true",
                        help="also write the practice cases' answers, marked 1 in a `practice` "
                             "column (they are never ratings)")
    parser.add_argument("--accept-edits", action="store_true",
                        help="export reader databases whose answers were edited outside mdiff "
                             "(their history does not explain them) as they stand; the summary "
                             "counts the edited cases")
    parser.add_argument("--format", choices=("csv", "imrmc"), default="csv",
                        help="csv (default; one row per reader and case, or per reader and "
                             "trial in a paired study), or imrmc: the input table of FDA's iMRMC "
                             "and RJafroc (truth 1 = synthetic; name it .imrmc for RJafroc; "
                             "single-reading studies only)")
    parser.add_argument("--score", choices=("realism", "turing"),
                        help="with --format imrmc: the score, the Turing call and confidence on "
                             "a 1-8 scale (default when the study asks it) or 5 - the realism "
                             "answer")
    add_json_option(parser, "the summary line")


def run(args: argparse.Namespace) -> int:
    """Write the export and say how many rows it has."""
    from studies.export import export_study

    summary = export_study(args.study, args.out, key_path=args.key,
                           include_partial=args.include_partial,
                           include_practice=args.include_practice, export_format=args.format,
                           score=args.score, force=args.force,
                           accept_edits=args.accept_edits)
    if args.format == "imrmc":
        text = (f"Wrote the iMRMC table with {summary.rows} reader-case scores to {args.out} "
                f"({summary.not_assessable} ratings flagged not assessable left out).")
    else:
        text = f"Wrote {summary.rows} rating rows to {args.out}."
    if summary.edited:
        text += (f" {summary.edited} cases were edited outside mdiff and are exported as they "
                 f"stand (--accept-edits).")
    print_result(args.json, {args.format: str(args.out), "format": args.format,
                             "rows": summary.rows, "not_assessable": summary.not_assessable,
                             "with_key": args.key is not None, "edited": summary.edited}, text)
    return EXIT_OK
