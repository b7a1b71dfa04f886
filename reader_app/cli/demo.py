"""`mdiff-demo [--out DIR] [--design single|2afc]`: the bundled demo study (held-out real +
synthetic brains)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from diffusion_core.cli.common import (
    Failure,
    add_threads_option,
    os_error_sentence,
    run_command,
)
from diffusion_core.registry import Registry, RegistryError
from diffusion_core.run_folder import CheckpointError
from diffusion_core.runtime import DEVICES
from diffusion_core.samples import SamplesError
from reader_app.demo import DEFAULT_CASES, DEMO_MODEL
from studies.study import StudyError


def build_parser() -> argparse.ArgumentParser:
    """The `mdiff-demo` argument parser."""
    parser = argparse.ArgumentParser(
        prog="mdiff-demo",
        description="Sample brain MRI volumes from the bundled demo model, mix them with real "
                    "held-out scans into a blinded study (key beside it) that opens with two "
                    "practice cases (one real, one synthetic, their truth shown once "
                    "answered), and open it in the reader app. Without a display, write a "
                    "screenshot instead. Runs on the CPU in about a minute; running it again "
                    "reuses what it made.")
    parser.add_argument("--out", default="mdiff-demo", metavar="DIR",
                        help="where the samples, the study and its key go (default: ./mdiff-demo)")
    parser.add_argument("--n", type=int, default=DEFAULT_CASES,
                        help="synthetic study cases, and as many real ones, besides the two "
                        f"practice cases (1 to {DEFAULT_CASES}; default {DEFAULT_CASES}); with "
                        "--design 2afc, the number of trials")
    parser.add_argument("--design", choices=("single", "2afc"), default="single",
                        help="single: one volume at a time (default); 2afc: N paired trials of a "
                             "held-out scan and a sample side by side, the reader picks the "
                             "synthetic one, after one practice trial (in DIR/study-2afc)")
    parser.add_argument("--reader", default="Demo reader", metavar="NAME",
                        help="the reader name the app opens the study as")
    parser.add_argument("--device", choices=DEVICES, default="auto")
    add_threads_option(parser)
    return parser


def _warn_if_shadowed(name: str) -> None:
    """Say on stderr that a user's model of the bundled model's name is ignored (the bundled
    name always means the bundled model); a damaged models.json is no concern of the demo."""
    try:
        note = Registry().ignored().get(name)
    except RegistryError:
        return
    if note:
        print(f"mdiff-demo: warning: {note}.", file=sys.stderr)


def _run(args: argparse.Namespace) -> int:
    from reader_app.demo import build_demo, first_trial, has_display, synthetic_case
    from reader_app.launch import LaunchError, ReaderRequest, run_reader

    out = Path(args.out)
    _warn_if_shadowed(DEMO_MODEL)
    demo = build_demo(out, n=args.n, device=args.device, design=args.design)
    print(f"mdiff-demo: study {demo.study} (key: {demo.key}; samples: {demo.samples})")
    screenshot = None if has_display() else out / "screenshot.png"
    shown = None
    if screenshot is not None and args.design == "2afc":
        screenshot = out / "screenshot-2afc.png"
        shown = first_trial(demo)
        print(f"mdiff-demo: no display, so the app was rendered to {screenshot} instead of "
              f"opened, showing trial {shown}; on a desktop open the study with: "
              f"mdiff-reader {demo.study}")
    elif screenshot is not None:
        shown = synthetic_case(demo)
        print(f"mdiff-demo: no display, so the app was rendered to {screenshot} instead of "
              f"opened, showing a synthetic case (study case {shown} in the key); on a desktop "
              f"open the study with: mdiff-reader {demo.study}")
    try:
        return run_reader(ReaderRequest(study=demo.study, reader=args.reader,
                                        screenshot=screenshot, case_id=shown))
    except LaunchError as err:
        print(f"mdiff-demo: {err}", file=sys.stderr)
        return err.status


def main(argv: list[str] | None = None) -> int:
    """Entry point of `mdiff-demo`."""
    args = build_parser().parse_args(argv)
    return run_command("mdiff-demo", lambda: _run(args),
                       [Failure((RegistryError, CheckpointError, SamplesError, StudyError)),
                        Failure(OSError, sentence=os_error_sentence)],
                       interrupted="interrupted; run it again to continue.",
                       threads=args.threads)


if __name__ == "__main__":
    sys.exit(main())
