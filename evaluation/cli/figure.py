"""`mdiff-eval figure DIR --out PNG [--force]`: neighbouring slices of several volumes (the
paper's Figure 1).

What is drawn, and how it is windowed, is `evaluation.sample_figure`'s docstring.

JSON (`--json`), one object:

    {"figure": PNG, "dir": DIR, "kind": "samples" | "prepared" | "scans", "preset": NAME or null,
     "modality": "CT" | "MR" | null, "volumes": [NAME, ...], "n_available": N,
     "slices": [k, ...] (0-based depth indices), "plane": "axial" | "sagittal",
     "edges": {"top", "bottom", "left", "right"} (orientation letters) or null,
     "windows": [{"low", "high", "rule"}, ...] (one per volume)}
"""

from __future__ import annotations

import argparse
from pathlib import Path

from diffusion_core.cli.common import EXIT_OK, add_json_option, positive_int, print_result
from diffusion_core.modality import CT_WINDOWS

HELP = ("A grid of neighbouring slices of several volumes (like the paper's Figure 1), windowed "
        "as the reader app does, with the orientation labelled.")
DEFAULT_VOLUMES = 4  # evaluation.sample_figure's defaults, without importing matplotlib
DEFAULT_SLICES = 5


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of `mdiff-eval figure`."""
    parser.add_argument("dir", type=Path, metavar="DIR",
                        help="a samples folder (mdiff-sample), a PREP_DIR or a folder of scans")
    parser.add_argument("--out", type=Path, required=True, metavar="PNG",
                        help="the PNG file to write")
    parser.add_argument("--force", action="store_true",
                        help="replace the --out file if it exists (never an input or a file "
                             "of a study)")
    parser.add_argument("--volumes", type=positive_int, default=DEFAULT_VOLUMES, metavar="N",
                        help=f"how many volumes, one row each, the first of DIR (default "
                             f"{DEFAULT_VOLUMES})")
    parser.add_argument("--slices", type=positive_int, default=DEFAULT_SLICES, metavar="K",
                        help=f"how many neighbouring slices around the middle, one column each "
                             f"(default {DEFAULT_SLICES})")
    parser.add_argument("--ct-window", choices=tuple(CT_WINDOWS), default="soft tissue",
                        help="the HU window of CT volumes (default soft tissue, as the reader "
                             "app opens CT); MR volumes use their 0.5-99.5th percentiles")
    add_json_option(parser, "a summary")


def run(args: argparse.Namespace) -> int:
    """Draw the grid and print what it shows."""
    from evaluation.sample_figure import slice_figure, slice_figure_text

    report = slice_figure(args.dir, args.out, n_volumes=args.volumes, n_slices=args.slices,
                          ct_name=args.ct_window, force=args.force)
    print_result(args.json, report.to_json(), slice_figure_text(report))
    return EXIT_OK
