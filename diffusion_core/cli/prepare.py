"""`mdiff-prepare`: run a preset's preprocessing over a folder of scans into a PREP_DIR."""

from __future__ import annotations

import argparse
import sys
from dataclasses import asdict

from diffusion_core.cli.common import (
    EXIT_OK,
    EXIT_USAGE,
    Failure,
    add_json_option,
    print_result,
    run_command,
)
from diffusion_core.prepared import PreparedError, prepare_folder
from diffusion_core.presets import PRESETS, PresetError, get_preset


def _parser() -> argparse.ArgumentParser:
    """The command's arguments."""
    parser = argparse.ArgumentParser(
        prog="mdiff-prepare",
        description="Preprocess a folder of scans (NIfTI, DICOM series, MRNet .npy) with a "
                    "preset's pipeline: one .npy per scan in [-1, 1] plus manifest.json. "
                    "Re-running skips the scans already done.",
    )
    parser.add_argument("--preset", required=True, metavar="NAME",
                        help=f"the pipeline: {', '.join(PRESETS)}")
    parser.add_argument("--data", required=True, metavar="RAW_DIR",
                        help="folder of scans (searched recursively)")
    parser.add_argument("--out", required=True, metavar="PREP_DIR",
                        help="output folder for the arrays and manifest.json")
    parser.add_argument("--masks", metavar="DIR",
                        help="duke only: breast-region masks, one per scan with the scan's file "
                             "name (without masks an automatic body mask is used)")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace a PREP_DIR made with another preset, pipeline version or "
                             "data folder")
    add_json_option(parser, "the summary line")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of mdiff-prepare; the exit status follows diffusion_core.cli.common's rule."""
    args = _parser().parse_args(argv)
    return run_command(
        "mdiff-prepare", lambda: _prepare(args),
        [Failure((PresetError, PreparedError)),
         Failure(OSError, sentence=lambda err: f"cannot write the output: {err}")],
        interrupted="interrupted; run the same command again to resume")


def _prepare(args: argparse.Namespace) -> int:
    """Prepare the folder and print the summary; a run that prepares nothing is not done (2)."""
    summary = prepare_folder(get_preset(args.preset), args.data, args.out,
                             masks_dir=args.masks, overwrite=args.overwrite)
    print_result(args.json, asdict(summary), summary.line())
    if summary.arrays == 0:
        print(f"mdiff-prepare: no scan in {args.data} could be prepared; the reasons are in "
              f"{args.out}/manifest.json", file=sys.stderr)
        return EXIT_USAGE
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
