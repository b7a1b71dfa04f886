"""`mdiff-eval`: the paper's evaluation, one subcommand per module in `evaluation.commands`."""

from __future__ import annotations

import argparse
import importlib
import sys

# subcommand -> module in evaluation.commands; each module has `HELP`, `add_arguments(parser)`
# and `run(args) -> int`. Modules are imported lazily so `--help` stays fast.
COMMANDS: dict[str, str] = {
    "msssim": "evaluation.commands.msssim",
    "agreement": "evaluation.commands.agreement",
    "turing": "evaluation.commands.turing",
}


class EvalError(Exception):
    """A user mistake: printed as one sentence on stderr, exit status 2."""


def build_parser() -> argparse.ArgumentParser:
    """The `mdiff-eval` parser with every registered subcommand."""
    parser = argparse.ArgumentParser(
        prog="mdiff-eval",
        description="Evaluate synthetic volumes and reader studies as in the Medical Diffusion"
        " paper.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, module_name in COMMANDS.items():
        module = importlib.import_module(module_name)
        # argparse %-formats a subcommand's help (not its description): "95% CI" would break
        # `mdiff-eval --help`.
        p = sub.add_parser(name, help=module.HELP.replace("%", "%%"), description=module.HELP)
        module.add_arguments(p)
        p.set_defaults(_run=module.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of `mdiff-eval`."""
    args = build_parser().parse_args(argv)
    try:
        return int(args._run(args) or 0)
    except EvalError as err:
        print(f"mdiff-eval {args.command}: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("mdiff-eval: interrupted.", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
