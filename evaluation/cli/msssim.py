"""`mdiff-eval msssim DIR [DIR ...]`: MS-SSIM diversity of folders of volumes, as in the paper.

`mdiff-eval msssim REAL DIFFUSION GAN` is the paper's comparison: the real scans, a diffusion
model's samples folder and the GAN baseline's, one row each with its 95% CI and what the folder
holds; `--figure PNG` draws those rows beside the paper's figures (`evaluation.diversity_figure`).

What is computed, with which data range, and how folders of different kinds are brought to one
value convention is `evaluation.diversity`'s docstring, as is each folder's distance from the
first folder (the reference: give the real scans first) and when a warning is printed.

JSON (`--json`), one object:

    {"results": [{"dir", "label", "n_volumes", "n_pairs", "mean", "std", "ci_low", "ci_high",
                  "distance": null (the first folder) or {"measure", "reference", "auc",
                              "ci_low", "ci_high", "note"}}, ...],
     "data_range": R, "protocol": "standard" | "paper", "warnings": [SENTENCE, ...],
     "figure": PNG or null}
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from diffusion_core.cli.common import EXIT_OK, add_json_option, positive_int, print_result
from diffusion_core.runtime import DEVICES
from evaluation.diversity import CPU_BATCH, CUDA_BATCH, DEFAULT_PAIRS

HELP = ("MS-SSIM diversity of folders of volumes: mean over random pairs with a 95% CI from a "
        "bootstrap over volumes, and each folder's distance from the first (the real scans); "
        "REAL DIFFUSION GAN gives the paper's comparison.")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of `mdiff-eval msssim`."""
    parser.add_argument("dirs", nargs="+", type=Path, metavar="DIR",
                        help="folder(s) of volumes of one shape each: samples folders (of a "
                             "diffusion model or a GAN), PREP_DIRs or folders of scans (NIfTI, "
                             ".npy or DICOM), real first (the others' distance is measured from "
                             "it), then synthetic, e.g. REAL DIFFUSION GAN; read in one "
                             "convention, the preset's [-1, 1] when any folder has a preset")
    parser.add_argument("--pairs", type=_pair_count, default=DEFAULT_PAIRS, metavar="N|all",
                        help=f"random distinct pairs per folder (default {DEFAULT_PAIRS}); 'all' "
                             "takes every pair")
    parser.add_argument("--seed", type=int, default=0,
                        help="seed of the pair sampling and the bootstrap (default 0)")
    parser.add_argument("--protocol", choices=("standard", "paper"), default="standard",
                        help="'standard': MS-SSIM of Wang et al. 2003 as MONAI computes it, on "
                             "values shifted to start at 0, short axes handled as documented in "
                             "evaluation.msssim (default); 'paper': the authors' own script on "
                             "values mapped to [-1, 1], only to compare with the paper's figures "
                             "(its values are not standard MS-SSIM)")
    parser.add_argument("--data-range", type=float, metavar="R",
                        help="value range of the volumes (default: maximum minus minimum over "
                             "every volume read in this run)")
    parser.add_argument("--batch-size", type=positive_int, metavar="B",
                        help=f"pairs computed together (default {CPU_BATCH} on the CPU, "
                             f"{CUDA_BATCH} on CUDA); the paper protocol runs one pair at a time")
    parser.add_argument("--device", choices=DEVICES, default="auto",
                        help="where the standard protocol runs (default: CUDA when available)")
    parser.add_argument("--figure", type=Path, metavar="PNG",
                        help="draw each folder's mean and 95%% CI beside the paper's three "
                             "figures (real, diffusion, WGAN-GP)")
    parser.add_argument("--force", action="store_true",
                        help="replace the --figure file if it exists")
    add_json_option(parser, "the table")


def run(args: argparse.Namespace) -> int:
    """Compute each folder's diversity and print the table or JSON (and draw --figure)."""
    # torch loads here, not at import, so `mdiff-eval --help` is fast.
    from evaluation.diversity import diversity_of_folders
    from evaluation.slice_panels import check_figure_path, save_png

    if args.figure is not None:
        check_figure_path(args.figure, force=args.force,
                          inputs=[("DIR", folder) for folder in args.dirs])
    diversity = diversity_of_folders(
        args.dirs, n_pairs=args.pairs, seed=args.seed, protocol=args.protocol,
        data_range=args.data_range, batch_size=args.batch_size, device=args.device,
        note=lambda message: print(f"note: {message}", file=sys.stderr))
    report, text = diversity.as_json(), diversity.text()
    report["figure"] = None
    if args.figure is not None:
        from evaluation.diversity_figure import draw_diversity

        save_png(draw_diversity(diversity), args.figure)
        report["figure"] = str(args.figure)
        text += f"\nfigure: {args.figure}"
    print_result(args.json, report, text)
    return EXIT_OK


def _pair_count(text: str) -> int | None:
    """argparse type of --pairs: a positive count, or 'all' (None)."""
    if text == "all":
        return None
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive number or 'all', got {text!r}") \
            from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive number or 'all', got {text!r}")
    return value
