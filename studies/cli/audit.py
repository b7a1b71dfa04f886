"""`mdiff-study audit STUDY --key PATH [--json]`: every blinding check with PASS or FAIL."""

from __future__ import annotations

import argparse

from diffusion_core.cli.common import EXIT_FAILED, EXIT_OK, add_json_option, print_result

HELP = "check that nothing but the image tells real from synthetic"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of `mdiff-study audit`."""
    parser.add_argument("study")
    parser.add_argument("--key", required=True, metavar="PATH", help="the study's key CSV")
    add_json_option(parser, "the list of checks")


def run(args: argparse.Namespace) -> int:
    """Run every check and print them; exit status 1 when any fails."""
    from studies.audit import audit_folder, audit_report, audit_text

    results = audit_folder(args.study, args.key)
    print_result(args.json, audit_report(args.study, results), audit_text(results))
    return EXIT_OK if all(r.passed for r in results) else EXIT_FAILED
