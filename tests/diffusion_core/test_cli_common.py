"""diffusion_core.cli.common: how a command ends, subcommand parsers, `--json`, argument types."""

from __future__ import annotations

import argparse
import math
from types import SimpleNamespace

import pytest

from diffusion_core.cli.common import (
    EXIT_INTERRUPTED,
    Failure,
    add_csv_inputs,
    add_json_option,
    command_parser,
    os_error_sentence,
    positive_int,
    print_result,
    run_command,
)


class BadInput(Exception):
    """A stand-in for a library's user-mistake error."""


def _raise(err: BaseException):
    def action() -> int:
        raise err
    return action


def test_the_action_status_is_returned():
    assert run_command("prog", lambda: 3) == 3


def test_a_matching_failure_is_one_sentence_and_its_status(capsys):
    failures = [Failure(BadInput), Failure(OSError, 1, lambda err: f"cannot write ({err})")]
    assert run_command("mdiff-x", _raise(BadInput("the file a.csv is empty; export again.")),
                       failures) == 2
    assert capsys.readouterr().err == "mdiff-x: the file a.csv is empty; export again.\n"
    assert run_command("mdiff-x", _raise(PermissionError("denied")), failures) == 1
    assert capsys.readouterr().err == "mdiff-x: cannot write (denied)\n"


def test_the_first_matching_failure_wins(capsys):
    failures = [Failure(FileNotFoundError, 5, lambda err: "first"), Failure(OSError, 6)]
    assert run_command("p", _raise(FileNotFoundError("x")), failures) == 5
    assert capsys.readouterr().err == "p: first\n"


def test_an_unexpected_error_keeps_its_traceback():
    with pytest.raises(ZeroDivisionError):
        run_command("p", _raise(ZeroDivisionError()), [Failure(BadInput)])


def test_ctrl_c_is_one_line_and_130(capsys):
    assert run_command("p", _raise(KeyboardInterrupt()), interrupted="stopped; run again.") \
        == EXIT_INTERRUPTED == 130
    assert capsys.readouterr().err == "p: stopped; run again.\n"


def test_os_error_sentence_names_the_file():
    err = PermissionError(13, "Permission denied", "/data/study")
    assert os_error_sentence(err) == ("cannot access /data/study (Permission denied); check the "
                                      "path and its permissions.")
    assert os_error_sentence(OSError("disk gone")) == ("cannot access (disk gone); check the path "
                                                       "and its permissions.")


def _command(help_text: str, seen: list) -> SimpleNamespace:
    def add_arguments(parser: argparse.ArgumentParser) -> None:
        add_csv_inputs(parser, "ratings files")
        add_json_option(parser, "the table")

    def run(args: argparse.Namespace) -> int:
        seen.append(args)
        return 0

    return SimpleNamespace(HELP=help_text, add_arguments=add_arguments, run=run)


def test_command_parser_dispatches_to_the_chosen_subcommand(capsys):
    seen: list = []
    parser = command_parser("mdiff-x", "Does things.",
                            {"count": _command("counts with a 95% CI", seen),
                             "other": _command("something else", [])})
    args = parser.parse_args(["count", "a.csv", "b.csv", "--json"])
    assert args.run(args) == 0 and seen == [args]
    assert (args.command, [str(p) for p in args.csv], args.json) == ("count", ["a.csv", "b.csv"],
                                                                    True)
    with pytest.raises(SystemExit) as exit_info:
        parser.parse_args(["--help"])
    assert exit_info.value.code == 0 and "95% CI" in capsys.readouterr().out
    with pytest.raises(SystemExit) as exit_info:
        parser.parse_args([])
    assert exit_info.value.code == 2 and "COMMAND" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        parser.parse_args(["count"])  # at least one CSV
    assert "CSV" in capsys.readouterr().err


def test_print_result_prints_json_or_text(capsys):
    print_result(True, {"a": [1, None]}, "text")
    print_result(False, {"a": 1}, "the text")
    assert capsys.readouterr().out == '{"a": [1, null]}\nthe text\n'
    with pytest.raises(ValueError):
        print_result(True, {"a": math.nan}, "text")  # NaN is no JSON


def test_positive_int():
    assert positive_int("7") == 7
    for bad in ("0", "-2", "many", "1.5"):
        with pytest.raises(argparse.ArgumentTypeError, match="expected a positive integer"):
            positive_int(bad)
