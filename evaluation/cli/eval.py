"""`mdiff-eval msssim|agreement|turing|afc|recon|figure|memorization|c2st|downstream`.

The evaluation commands: one subcommand per module of this package; each has `HELP`,
`add_arguments(parser)` and `run(args)`; its heavy libraries (torch, pandas, matplotlib) load in
`run`, so `--help` answers at once.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from diffusion_core.cli.common import Failure, Subcommand, command_parser, run_command
from diffusion_core.outputs import OutputPathError
from diffusion_core.runtime import DeviceError
from diffusion_core.sources import SourceError
from evaluation.cli import (
    afc,
    agreement,
    c2st,
    downstream,
    figure,
    memorization,
    msssim,
    recon,
    turing,
)
from evaluation.errors import EvalError

SUBCOMMANDS: dict[str, Subcommand] = {
    "msssim": msssim, "agreement": agreement, "turing": turing, "recon": recon, "figure": figure,
    "memorization": memorization, "c2st": c2st, "downstream": downstream, "afc": afc,
}
# the subcommands that compute with torch
THREADED = ("msssim", "recon", "memorization", "c2st", "downstream")
DESCRIPTION = "Evaluate synthetic volumes and reader studies as in the Medical Diffusion paper."


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of `mdiff-eval`; a user mistake is one sentence on stderr and exit status 2."""
    args = command_parser("mdiff-eval", DESCRIPTION, SUBCOMMANDS,
                          threaded=THREADED).parse_args(argv)
    return run_command(f"mdiff-eval {args.command}", lambda: args.run(args),
                       [Failure((EvalError, OutputPathError, SourceError, DeviceError))],
                       threads=getattr(args, "threads", None))


if __name__ == "__main__":
    sys.exit(main())
