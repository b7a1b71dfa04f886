"""`mdiff-eval recon --models RUN [RUN ...] --data PREP_DIR`: VQ-GAN reconstruction quality.

The scores and the figure are `evaluation.recon`'s docstring.

JSON (`--json`), one object:

    {"data": PREP_DIR, "split": "val" | "train" | "all", "n_volumes": N,
     "data_range": 2.0, "psnr_cap_db": 100.0,
     "models": [{"run", "preset", "compression": [d, h, w], "latent_shape": [d, h, w],
                 "num_codes", "mean": {"psnr", "ssim", "ms_ssim"}, "std": {...same...},
                 "codebook": {"codes_used", "usage", "perplexity"},
                 "volumes": [{"name", "psnr", "ssim", "ms_ssim"}, ...]}, ...],
     "figure": PNG or null, "figure_volume": NAME or null, "figure_slices": [k, ...] or null}
"""

from __future__ import annotations

import argparse
from pathlib import Path

from diffusion_core.cli.common import EXIT_OK, add_json_option, print_result
from diffusion_core.runtime import DEVICES

HELP = ("Reconstruction quality of VQ-GANs on held-out volumes (the paper's latent-size study): "
        "PSNR, SSIM, MS-SSIM, codebook usage and a Figure 3 of original, reconstructions and "
        "differences.")
SPLITS = ("val", "train", "all")  # evaluation.recon.SPLITS, without importing torch for --help


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of `mdiff-eval recon`."""
    parser.add_argument("--models", nargs="+", type=Path, required=True, metavar="RUN",
                        help="VQ-GAN run folders written by mdiff-train vqgan (e.g. compression "
                             "4 and 8)")
    parser.add_argument("--data", type=Path, required=True, metavar="PREP_DIR",
                        help="a PREP_DIR of the models' preset (mdiff-prepare)")
    parser.add_argument("--split", choices=SPLITS, default="val",
                        help="which arrays of PREP_DIR to reconstruct (default val: the volumes "
                             "held out of training)")
    parser.add_argument("--figure", type=Path, metavar="PNG",
                        help="draw the original, each reconstruction and its difference map for "
                             "three slices of one volume into this PNG")
    parser.add_argument("--force", action="store_true",
                        help="replace the --figure file if it exists (never an input or a file "
                             "of a study)")
    parser.add_argument("--figure-volume", metavar="NAME",
                        help="the array of the split to draw (default: its first)")
    parser.add_argument("--volumes-out", type=Path, metavar="DIR",
                        help="also write every reconstruction as NIfTI into DIR/<run folder "
                             "name>/ (in the preset's intensities, like mdiff-sample's volumes: "
                             "mdiff-study create --synthetic takes the folder)")
    parser.add_argument("--device", choices=DEVICES, default="auto",
                        help="where the models run (default: CUDA when available)")
    add_json_option(parser, "the table")


def run(args: argparse.Namespace) -> int:
    """Reconstruct the split with each model, print the table or JSON."""
    # torch and matplotlib load here, not at import, so `mdiff-eval --help` is fast.
    from evaluation.recon import recon_report, recon_text

    report = recon_report(args.models, args.data, split=args.split, figure=args.figure,
                          figure_volume=args.figure_volume, device=args.device,
                          volumes_out=args.volumes_out, force=args.force)
    print_result(args.json, report, recon_text(report))
    return EXIT_OK
