"""What every mdiff command shares: subcommands, CSV inputs, `--json` output, and how a run ends.

The exit status rule of every command (README.md):

    0    done
    1    done, and the answer is "no" (`mdiff-study audit` found a leak); Python also exits 1 on a
         crash, with a traceback: that is a bug to report
    2    not done: a mistake in the command or its input, or a resource in use (a locked reader);
         one sentence on stderr says what was wrong and what to do
    130  interrupted (Ctrl-C), one line on stderr
    143  stopped by SIGTERM (`mdiff-train` after checkpointing the step it was on)
    141  its output was closed early (`... | head`): it stops quietly, as a shell reports a
         command ended by SIGPIPE (128 + 13)

Standard library only, so studies, evaluation and the Qt app may all import it without pulling in
torch or Qt.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from diffusion_core.runtime import THREADS_AUTO, apply_threads, retain_freed_memory

EXIT_OK = 0
EXIT_FAILED = 1       # the command ran but its outcome is a failure (e.g. an audit that fails)
EXIT_USAGE = 2        # a user mistake, as argparse uses it
EXIT_INTERRUPTED = 130  # 128 + SIGINT, what a shell reports for Ctrl-C
EXIT_CLOSED_PIPE = 141  # 128 + SIGPIPE, what a shell reports for `... | head`
EXIT_TERMINATED = 143  # 128 + SIGTERM: mdiff-train stopped by `kill`, its work checkpointed


class Subcommand(Protocol):
    """A module holding one subcommand: its help line, its options and what it runs."""

    HELP: str

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        """Add the subcommand's options to its parser."""

    def run(self, args: argparse.Namespace) -> int:
        """Call the library with the parsed options, print the result, return the exit status."""


@dataclass(frozen=True)
class Failure:
    """How one kind of error ends a command: the exit status and the sentence printed."""

    kinds: type[BaseException] | tuple[type[BaseException], ...]
    status: int = EXIT_USAGE
    sentence: Callable[[BaseException], str] = str


def os_error_sentence(err: BaseException) -> str:
    """An OSError as one sentence naming the file, for errors no library call turned into text."""
    filename = getattr(err, "filename", None)
    where = f" {filename}" if filename else ""
    reason = getattr(err, "strerror", None) or err
    return f"cannot access{where} ({reason}); check the path and its permissions."


def run_command(prog: str, action: Callable[[], int], failures: Sequence[Failure] = (), *,
                interrupted: str = "interrupted.", threads: int | str | None = None) -> int:
    """Run `action` and return its exit status; the first matching failure, or Ctrl-C, ends it.

    `threads` (a command's `--threads`): the CPU threads torch computes with, applied first.
    A closed output pipe ends it quietly (EXIT_CLOSED_PIPE). An error no failure matches is a bug
    and keeps its traceback.
    """
    retain_freed_memory()  # the networks' activations are reused, not re-faulted, each call
    try:
        if threads is not None:
            apply_threads(threads)
        status = action()
        # Piped output is block-buffered: flush here, so a reader that went away is noticed now
        # and not in the interpreter's last flush, which would print its own complaint.
        sys.stdout.flush()
        return status
    except BrokenPipeError:
        _silence_stdout()
        return EXIT_CLOSED_PIPE
    except KeyboardInterrupt:
        print(f"{prog}: {interrupted}", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as err:
        for failure in failures:
            if isinstance(err, failure.kinds):
                print(f"{prog}: {failure.sentence(err)}", file=sys.stderr)
                return failure.status
        raise


def _silence_stdout() -> None:
    """Point stdout at /dev/null, so what is still buffered for the closed pipe goes nowhere."""
    try:
        descriptor = sys.stdout.fileno()
    except (AttributeError, OSError, ValueError):
        return  # not a real file (e.g. captured in a test): nothing flushes it at exit
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, descriptor)
    finally:
        os.close(devnull)


def command_parser(prog: str, description: str, subcommands: Mapping[str, Subcommand], *,
                   threaded: Collection[str] = ()) -> argparse.ArgumentParser:
    """A parser with one subparser per subcommand; `args.run` is the chosen one's `run`.

    The subcommands named in `threaded` compute with torch and get `--threads`.
    """
    parser = argparse.ArgumentParser(prog=prog, description=description)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, command in subcommands.items():
        # argparse %-formats a subcommand's help (not its description): "95% CI" would break
        # `PROG --help`.
        child = sub.add_parser(name, help=command.HELP.replace("%", "%%"),
                               description=command.HELP)
        command.add_arguments(child)
        if name in threaded:
            add_threads_option(child)
        child.set_defaults(run=command.run)
    return parser


def add_csv_inputs(parser: argparse.ArgumentParser, help: str) -> None:
    """The positional `CSV [CSV ...]` of a command that reads one or more CSV files."""
    parser.add_argument("csv", nargs="+", type=Path, metavar="CSV", help=help)


def add_json_option(parser: argparse.ArgumentParser, instead_of: str) -> None:
    """The `--json` flag: one JSON object on stdout in place of the text output."""
    parser.add_argument("--json", action="store_true",
                        help=f"print one JSON object on stdout instead of {instead_of}")


def print_result(as_json: bool, data: object, text: str) -> None:
    """Print `data` as one JSON object (nothing else on stdout), or `text`."""
    # NaN is no JSON value: a statistic that cannot be computed is null with a reason instead.
    print(json.dumps(data, allow_nan=False) if as_json else text)


def positive_int(text: str) -> int:
    """argparse type of a positive integer."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def threads_value(text: str) -> int | str:
    """argparse type of `--threads`: a positive integer or 'auto'."""
    if text == THREADS_AUTO:
        return THREADS_AUTO
    try:
        return positive_int(text)
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(
            f"expected a positive integer or auto, got {text!r}") from None


def add_threads_option(parser: argparse.ArgumentParser, when: str = "") -> None:
    """The `--threads N|auto` option of a command that computes with torch; `when` prefixes its
    help (e.g. "with --model: ")."""
    parser.add_argument("--threads", type=threads_value, default=THREADS_AUTO, metavar="N|auto",
                        help=f"{when}CPU threads to compute with (default auto: the cores this "
                             f"process may use that other processes leave idle, at least 1; "
                             f"OMP_NUM_THREADS when set)")
