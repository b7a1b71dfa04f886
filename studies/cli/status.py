"""`mdiff-study status STUDY [--json]`: readers, cases done and time spent."""

from __future__ import annotations

import argparse

from diffusion_core.cli.common import EXIT_OK, add_json_option, print_result

HELP = "readers, cases done and time spent"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of `mdiff-study status`."""
    parser.add_argument("study")
    add_json_option(parser, "the table")


def run(args: argparse.Namespace) -> int:
    """Print every reader's progress."""
    from studies.status import status_report, status_text
    from studies.study import Study

    report = status_report(Study.open(args.study))
    print_result(args.json, report, status_text(report))
    return EXIT_OK
