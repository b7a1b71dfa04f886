"""`mdiff-study export STUDY --out CSV [--key PATH] [--include-partial]`: all ratings as one CSV."""

from __future__ import annotations

import argparse

from diffusion_core.cli.common import EXIT_OK, add_json_option, print_result

HELP = "all ratings as one CSV"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of `mdiff-study export`."""
    parser.add_argument("study")
    parser.add_argument("--out", required=True, help="the CSV to write")
    parser.add_argument("--key", metavar="PATH", help="add source and origin from the key")
    parser.add_argument("--include-partial", action="store_true",
                        help="also write cases not fully answered yet")
    add_json_option(parser, "the summary line")


def run(args: argparse.Namespace) -> int:
    """Write the export and say how many rows it has."""
    from studies.export import export_study

    rows = export_study(args.study, args.out, key_path=args.key,
                        include_partial=args.include_partial)
    print_result(args.json, {"csv": str(args.out), "rows": rows, "with_key": args.key is not None},
                 f"Wrote {rows} rating rows to {args.out}.")
    return EXIT_OK
