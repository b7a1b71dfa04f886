"""`mdiff-study merge STUDY OTHER`: bring in the reader databases of a copy rated elsewhere."""

from __future__ import annotations

import argparse

from diffusion_core.cli.common import EXIT_OK, add_json_option, print_result

HELP = "bring in reader databases from a copy"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of `mdiff-study merge`."""
    parser.add_argument("study")
    parser.add_argument("other", help="a copy of the same study rated elsewhere")
    add_json_option(parser, "the summary line")


def run(args: argparse.Namespace) -> int:
    """Merge and say which readers came in."""
    from studies.merge import merge_studies

    result = merge_studies(args.study, args.other)
    added = ", ".join(result.added) or "none"
    same = ", ".join(result.identical) or "none"
    print_result(args.json, {"study": str(args.study), "added": list(result.added),
                             "identical": list(result.identical)},
                 f"Merged readers: {added}; already present with the same answers: {same}.")
    return EXIT_OK
