"""`mdiff-study create|status|export|audit|merge`: build and manage a blinded reader study.

Each subcommand module of this package has `HELP`, `add_arguments(parser)` and `run(args)`, which
calls one library function, and a `--json` option. Exit statuses follow the rule of
`diffusion_core.cli.common`: a user mistake is one sentence on stderr and status 2; an audit that
finds a leak exits 1.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from diffusion_core.cli.common import (
    Failure,
    Subcommand,
    command_parser,
    os_error_sentence,
    run_command,
)
from diffusion_core.outputs import OutputPathError
from studies.cli import audit, create, export, merge, status
from studies.study import StudyError

SUBCOMMANDS: dict[str, Subcommand] = {"create": create, "status": status, "export": export,
                                      "audit": audit, "merge": merge}
DESCRIPTION = "Build and manage a blinded reader study."


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of `mdiff-study`."""
    args = command_parser("mdiff-study", DESCRIPTION, SUBCOMMANDS).parse_args(argv)
    return run_command("mdiff-study", lambda: args.run(args),
                       [Failure((StudyError, OutputPathError)),
                        Failure(OSError, sentence=os_error_sentence)],
                       interrupted="interrupted by the user.")


if __name__ == "__main__":
    sys.exit(main())
