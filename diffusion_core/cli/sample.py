"""`mdiff-sample`: synthetic volumes from a named model, a DDPM run or a GAN run, as NIfTI +
samples.json."""

from __future__ import annotations

import argparse
import sys

from diffusion_core.cli.common import (
    EXIT_OK,
    Failure,
    add_json_option,
    add_threads_option,
    os_error_sentence,
    positive_int,
    print_result,
    run_command,
)
from diffusion_core.registry import RegistryError
from diffusion_core.run_folder import CheckpointError
from diffusion_core.runtime import DEVICES
from diffusion_core.samples import SamplesError


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mdiff-sample",
        description="Sample synthetic volumes from a trained model: NIfTI files in the preset's "
                    "intensities (HU for CT) plus samples.json with every file's seed. Running "
                    "the same command again resumes an interrupted folder; under torchrun each "
                    "process samples its share of the seeds. A GAN baseline (mdiff-train wgan) "
                    "makes each volume in one pass: --sampler, --steps and --eta are for "
                    "diffusion models only.")
    parser.add_argument("--model", required=True, metavar="NAME|RUN_DIR",
                        help="a model registered with mdiff-models (e.g. demo, demo-gan, duke), "
                             "a DDPM run folder or a GAN run folder")
    parser.add_argument("--n", type=positive_int, required=True, help="number of volumes")
    parser.add_argument("--out", required=True, metavar="DIR", help="the samples folder")
    parser.add_argument("--sampler", choices=("ddpm", "ddim", "dpm"),
                        help="dpm: DPM-Solver++ 2M (default, 20 steps); ddim; ddpm: the paper's "
                             "ancestral sampler over all training steps")
    parser.add_argument("--steps", type=positive_int,
                        help="sampling steps (default: 20 for dpm, 50 for ddim, or all the model "
                             "allows if fewer; all for ddpm)")
    parser.add_argument("--eta", type=float, help="DDIM's eta (default 0: deterministic)")
    parser.add_argument("--seed", type=int, default=0,
                        help="seed of the first volume; volume i gets seed + i - 1 (seeds run "
                             "from 0 to 2^63 - 1)")
    parser.add_argument("--batch-size", type=positive_int, default=4,
                        help="volumes sampled at once (does not change any volume)")
    parser.add_argument("--device", choices=DEVICES, default="auto")
    add_threads_option(parser)
    add_json_option(parser, "the summary line")
    return parser


def _run(args: argparse.Namespace) -> int:
    from diffusion_core.sampling import resolve_model, sample_folder

    given = [f"--{name}" for name in ("sampler", "steps", "eta")
             if getattr(args, name) is not None]
    if given and resolve_model(args.model).kind == "wgan":
        raise ValueError(f"{args.model} is a GAN, which makes each volume in one pass: leave out "
                         f"{', '.join(given)}: they set a diffusion model's sampler")
    summary = sample_folder(args.model, args.n, args.out, sampler=args.sampler or "dpm",
                            steps=args.steps, eta=args.eta or 0.0, seed=args.seed,
                            batch_size=args.batch_size, device=args.device)
    print_result(args.json, summary, f"sampled {summary['written']} volumes into {args.out} "
                 f"({summary['kept']} already there), {summary['seconds_per_volume']:.2f} s "
                 f"per volume")
    return EXIT_OK


def main(argv: list[str] | None = None) -> int:
    """Entry point of mdiff-sample."""
    args = _parser().parse_args(argv)
    return run_command("mdiff-sample", lambda: _run(args),
                       [Failure((RegistryError, CheckpointError, SamplesError, ValueError)),
                        Failure(OSError, sentence=os_error_sentence)],
                       interrupted="interrupted; run the same command again to resume",
                       threads=args.threads)


if __name__ == "__main__":
    sys.exit(main())
