"""`mdiff-study audit STUDY --key PATH [--json]`: a table of every feature with AUC and p-value,
and for each failure what it measures, what typically causes it and where to read more."""

from __future__ import annotations

import argparse

from diffusion_core.cli.common import EXIT_FAILED, EXIT_OK, add_json_option, print_result

HELP = "test that nothing but the image tells real from synthetic"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of `mdiff-study audit`."""
    parser.add_argument("study")
    parser.add_argument("--key", required=True, metavar="PATH", help="the study's key CSV")
    add_json_option(parser, "the table")


def run(args: argparse.Namespace) -> int:
    """Audit the study and print the table with advice on each failure; exit status 1 when
    anything separates."""
    from studies.audit import audit_folder, audit_report, audit_text

    audit = audit_folder(args.study, args.key)
    print_result(args.json, audit_report(audit), audit_text(audit))
    return EXIT_OK if audit.passed else EXIT_FAILED
