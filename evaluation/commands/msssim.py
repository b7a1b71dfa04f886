"""`mdiff-eval msssim DIR [DIR ...]`: MS-SSIM diversity of folders of volumes, as in the paper.

For each folder: the mean 3D MS-SSIM over N random distinct unordered pairs of its volumes (lower
means more diverse), the standard deviation over pairs, and a 95% confidence interval from a
bootstrap over volumes (see `evaluation.volume_pairs`). One data range serves the whole run: given
with `--data-range`, or the maximum minus the minimum over every volume read, never per pair; the
standard protocol also shifts values by that minimum so they start at 0, as SSIM assumes.

JSON (`--json`), one object:

    {"results": [{"dir", "n_volumes", "n_pairs", "mean", "std", "ci_low", "ci_high"}, ...],
     "data_range": R, "protocol": "standard" | "paper"}
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from evaluation.cli import EvalError

if TYPE_CHECKING:
    from evaluation.volume_pairs import DiversityResult

HELP = ("MS-SSIM diversity of folders of volumes: mean over random pairs with a 95% CI from a "
        "bootstrap over volumes.")
DEFAULT_PAIRS = 1000
CPU_BATCH, CUDA_BATCH = 1, 16  # pairs per batch; one at a time was fastest on the CPU


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of `mdiff-eval msssim`."""
    parser.add_argument("dirs", nargs="+", type=Path, metavar="DIR",
                        help="folder(s) of volumes of one shape each (NIfTI, .npy or DICOM), "
                             "e.g. real and synthetic")
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
    parser.add_argument("--batch-size", type=_positive_int, metavar="B",
                        help=f"pairs computed together (default {CPU_BATCH} on the CPU, "
                             f"{CUDA_BATCH} on CUDA); the paper protocol runs one pair at a time")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto",
                        help="where the standard protocol runs (default: CUDA when available)")
    parser.add_argument("--json", action="store_true",
                        help="print one JSON object on stdout instead of the table")


def run(args: argparse.Namespace) -> int:
    """Load the folders, compute each one's diversity and print the table or JSON."""
    import numpy as np

    from evaluation.volume_pairs import (
        VolumeFolderError,
        folder_diversity,
        is_pair_count_short,
        load_volume_folder,
        n_distinct_pairs,
        value_bounds,
    )

    if args.data_range is not None and not args.data_range > 0:
        raise EvalError(f"--data-range must be positive, got {args.data_range}.")
    device = _resolve_device(args.device) if args.protocol == "standard" else "cpu"
    batch_size = args.batch_size or (CUDA_BATCH if device == "cuda" else CPU_BATCH)
    try:
        folders = [load_volume_folder(d) for d in args.dirs]
    except VolumeFolderError as err:
        raise EvalError(str(err)) from None

    low, high = value_bounds(folders)
    if args.data_range is not None:
        data_range, range_origin = args.data_range, "given"
    else:
        data_range = high - low
        range_origin = f"maximum - minimum of the volumes read: {low:g} to {high:g}"
        if not data_range > 0:
            raise EvalError(f"every volume read holds the single value {low:g}, so the data range "
                            "is 0; pass --data-range.")

    rngs = [np.random.default_rng(s) for s in np.random.SeedSequence(args.seed).spawn(len(folders))]
    results = []
    for folder, rng in zip(folders, rngs, strict=True):
        if is_pair_count_short(folder.n_volumes, args.pairs):
            print(f"note: {folder.folder} has {folder.n_volumes} volumes, so only "
                  f"{n_distinct_pairs(folder.n_volumes)} distinct pairs; using all of them "
                  f"instead of {args.pairs}.", file=sys.stderr)
        try:
            results.append(folder_diversity(
                folder, n_pairs=args.pairs, rng=rng, protocol=args.protocol,
                data_range=data_range, low=low, batch_size=batch_size, device=device))
        except VolumeFolderError as err:
            raise EvalError(str(err)) from None

    if args.json:
        print(json.dumps({
            "results": [{"dir": str(r.folder), "n_volumes": r.n_volumes, "n_pairs": r.n_pairs,
                         "mean": r.mean, "std": r.std, "ci_low": r.ci_low, "ci_high": r.ci_high}
                        for r in results],
            "data_range": data_range,
            "protocol": args.protocol,
        }))
    else:
        print(_table(results, data_range, range_origin, args.protocol))
    return 0


def _table(
    results: list[DiversityResult], data_range: float, range_origin: str, protocol: str
) -> str:
    """The text report: one header line, then one row per folder."""
    lines = [f"MS-SSIM diversity, {protocol} protocol, data range {data_range:g} ({range_origin})",
             f"{'folder':<40} {'volumes':>7} {'pairs':>7} {'mean':>8} {'std':>8}  95% CI"]
    for r in results:
        lines.append(f"{str(r.folder):<40} {r.n_volumes:>7} {r.n_pairs:>7} {r.mean:>8.4f} "
                     f"{r.std:>8.4f}  [{r.ci_low:.4f}, {r.ci_high:.4f}]")
    return "\n".join(lines)


def _resolve_device(choice: str) -> str:
    """'auto' -> CUDA when available, else the CPU; 'cuda' must be available."""
    import torch

    if choice == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if choice == "cuda" and not torch.cuda.is_available():
        raise EvalError("--device cuda was asked but no CUDA device is available here; use "
                        "--device cpu or auto.")
    return choice


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


def _positive_int(text: str) -> int:
    """argparse type of a positive integer."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value
