"""`mdiff-study create --out STUDY [--synthetic DIR] [--real DIR] ...`: build a blinded study."""

from __future__ import annotations

import argparse
import sys

from diffusion_core.cli.common import EXIT_OK, add_json_option, add_threads_option, print_result
from diffusion_core.modality import MODALITIES
from diffusion_core.runtime import DEVICES, apply_threads

HELP = "build a blinded study from volume folders or a trained model"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of `mdiff-study create`."""
    parser.add_argument("--out", required=True, help="the new study folder (must not exist)")
    parser.add_argument("--synthetic", metavar="DIR",
                        help="folder of synthetic volumes, or a samples folder of mdiff-sample "
                             "(its samples.json gives the key's model and seed columns)")
    parser.add_argument("--model", metavar="NAME|RUN_DIR",
                        help="sample the --n synthetic cases from this model (mdiff-models, e.g. "
                             "demo or duke) instead of --synthetic")
    parser.add_argument("--sampler", choices=("ddpm", "ddim", "dpm"), default="dpm",
                        help="with --model: the sampler (default dpm, DPM-Solver++)")
    parser.add_argument("--steps", type=int, metavar="K",
                        help="with --model: sampling steps (default 20 for dpm, 50 for ddim, "
                             "all for ddpm)")
    parser.add_argument("--device", choices=DEVICES, default="auto",
                        help="with --model: where to sample")
    add_threads_option(parser, when="with --model: ")
    parser.add_argument("--real", metavar="DIR", help="folder of real volumes")
    parser.add_argument("--n", type=int, metavar="N",
                        help="synthetic cases to pick at random (default: all)")
    parser.add_argument("--n-real", type=int, metavar="M",
                        help="real cases to pick at random (default: all; 0 for none)")
    parser.add_argument("--preset", metavar="NAME",
                        help="bring every volume through this preset's pipeline")
    parser.add_argument("--modality", choices=MODALITIES,
                        help="CT or MR, when neither the preset nor the files say")
    parser.add_argument("--turing", action="store_true",
                        help="also ask 'Real or synthetic?' with a confidence 1-4")
    parser.add_argument("--design", choices=("single", "2afc"), default="single",
                        help="single: one volume at a time, rated on Table 1 (default); 2afc: "
                             "paired trials of a real and a synthetic volume side by side, the "
                             "reader picks the synthetic one (then a confidence 1-4)")
    parser.add_argument("--pairs", type=int, metavar="N",
                        help="with --design 2afc: the number of trials (with --model, --n "
                             "defaults to N)")
    parser.add_argument("--reuse", action="store_true",
                        help="with --design 2afc: let a case appear in several trials (never "
                             "twice with the same partner), when the folders hold fewer than N "
                             "of each")
    parser.add_argument("--match", action="store_true",
                        help="with --design 2afc: pair each synthetic case with the most "
                             "similar real one by foreground fraction and intensity histogram "
                             "(drawing every real volume, or --n-real, to choose from)")
    parser.add_argument("--practice", type=int, metavar="K",
                        help="a practice block of K cases shown first, with their truth after "
                             "each answer: drawn from --real/--synthetic (never study cases, "
                             "real and synthetic as evenly as possible), or from the practice "
                             "folders when given (default there: all of them); with --design "
                             "2afc, K practice trials of a real and a synthetic volume each")
    parser.add_argument("--practice-real", metavar="DIR",
                        help="real volumes for the practice block, apart from the study's")
    parser.add_argument("--practice-synthetic", metavar="DIR",
                        help="synthetic volumes for the practice block, apart from the study's")
    parser.add_argument("--answers-final", action="store_true",
                        help="readers cannot change a case's answers once it is done (default: "
                             "they can; every change is kept with its time)")
    parser.add_argument("--key", metavar="PATH",
                        help="where to write the key CSV (default: STUDY.key.csv beside it)")
    parser.add_argument("--seed", type=int, help="seed for picking inputs and image values")
    parser.add_argument("--title", help="the study's title shown to readers")
    parser.add_argument("--dataset", help="data set name for the export (default: the preset, "
                                          "else the title, else the study folder's name)")
    add_json_option(parser, "the summary line")


def run(args: argparse.Namespace) -> int:
    """Build the study and say where it and its key are; notes (skipped inputs) on stderr."""
    if args.model is not None:
        apply_threads(args.threads)  # before the sampling loads torch
    # The preprocessing (scipy) and progress bar load here, so `mdiff-study --help` is fast.
    from tqdm import tqdm

    from studies.create import create_study, create_study_from_model
    from studies.study import StudyError

    options = dict(real=args.real, n_real=args.n_real, preset=args.preset, turing=args.turing,
                   key=args.key, title=args.title, dataset=args.dataset,
                   modality=args.modality, practice=args.practice,
                   practice_real=args.practice_real, practice_synthetic=args.practice_synthetic,
                   answers_editable=not args.answers_final, progress=True,
                   design=args.design, pairs=args.pairs, reuse=args.reuse, match=args.match,
                   note=lambda text: tqdm.write(f"mdiff-study create: {text}", file=sys.stderr))
    if args.model is not None:
        if args.design == "2afc" and args.n is None and args.pairs:
            args.n = args.pairs
        if args.synthetic is not None or not args.n:
            raise StudyError("--model samples the synthetic cases: give --n N and leave out "
                             "--synthetic.")
        steps = args.steps or {"dpm": 20, "ddim": 50}.get(args.sampler)
        made = create_study_from_model(args.out, model=args.model, n=args.n,
                                       sampler=args.sampler, steps=steps, device=args.device,
                                       seed=args.seed, **options)
    else:
        made = create_study(args.out, synthetic=args.synthetic, n=args.n, seed=args.seed,
                            **options)
    report = {"study": str(made.folder), "key": str(made.key_path), "study_id": made.study_id,
              "dataset": made.dataset, "n_cases": made.n_synthetic + made.n_real,
              "n_synthetic": made.n_synthetic, "n_real": made.n_real,
              "n_practice": made.n_practice, "notes": list(made.notes),
              "samples": str(made.samples) if made.samples else None}
    if made.design == "2afc":
        report.update(design="2afc", n_trials=made.n_trials)
    practice = f" and {made.n_practice} practice {'trials' if made.n_trials else 'cases'}" \
        if made.n_practice else ""
    trials = f"{made.n_trials} paired trials of " if made.n_trials else ""
    print_result(args.json, report,
                 f"Created study {made.folder} with {trials}{report['n_cases']} cases "
                 f"({made.n_synthetic} synthetic, {made.n_real} real){practice}; key: "
                 f"{made.key_path} (keep it away from the readers).")
    return EXIT_OK
