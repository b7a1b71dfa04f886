"""`mdiff-prepare`: run a preset's preprocessing over a folder of scans into a PREP_DIR."""

from __future__ import annotations

import argparse
import sys
from dataclasses import asdict
from pathlib import Path

from diffusion_core.cli.common import (
    EXIT_OK,
    EXIT_USAGE,
    Failure,
    add_json_option,
    print_result,
    run_command,
)
from diffusion_core.outputs import OutputPathError, check_output
from diffusion_core.prepared import MANIFEST_NAME, PreparedError, prepare_folder
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
                        help="output folder for the arrays and manifest.json: new, empty or a "
                             "PREP_DIR to resume (never inside a study or --masks)")
    parser.add_argument("--masks", metavar="DIR",
                        help="duke only: breast-region masks, one per scan with the scan's file "
                             "name (without masks an automatic body mask is used)")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace a PREP_DIR made with another preset, pipeline version or "
                             "data folder, or write into a folder of other files")
    add_json_option(parser, "the summary line")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of mdiff-prepare; the exit status follows diffusion_core.cli.common's rule."""
    args = _parser().parse_args(argv)
    return run_command(
        "mdiff-prepare", lambda: _prepare(args),
        [Failure((PresetError, PreparedError, OutputPathError)),
         Failure(OSError, sentence=lambda err: f"cannot write the output: {err}")],
        interrupted="interrupted; run the same command again to resume")


def _prepare(args: argparse.Namespace) -> int:
    """Prepare the folder and print the summary; a run that prepares nothing is not done (2)."""
    _check_out(args)
    summary = prepare_folder(get_preset(args.preset), args.data, args.out,
                             masks_dir=args.masks, overwrite=args.overwrite)
    print_result(args.json, asdict(summary), summary.line())
    if summary.arrays == 0:
        print(f"mdiff-prepare: no scan in {args.data} could be prepared; the reasons are in "
              f"{args.out}/manifest.json", file=sys.stderr)
        return EXIT_USAGE
    return EXIT_OK


def _check_out(args: argparse.Namespace) -> None:
    """OutputPathError for a --out that is a file, lies in a study or --masks, or is a folder of
    other files (whose names the arrays could take) without --overwrite; `prepare_folder`
    refuses a --out inside --data itself."""
    out = check_output(args.out, inputs=[("--masks", args.masks)], kind="folder")
    if out.resolve().is_relative_to(Path(args.data).resolve()):
        return  # prepare_folder says so, in its words
    if args.overwrite or not out.is_dir() or (out / MANIFEST_NAME).exists():
        return
    if any(not entry.name.startswith(".") for entry in out.iterdir()):
        raise OutputPathError(f"--out {out} holds files but no {MANIFEST_NAME}, so it is no "
                              "PREP_DIR and its files could be written over; choose a new or "
                              "empty folder, or add --overwrite.")


if __name__ == "__main__":
    sys.exit(main())
