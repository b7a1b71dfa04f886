"""`mdiff-eval`: the top-level parser and every subcommand's help."""

from __future__ import annotations

import pytest

from evaluation.cli.eval import SUBCOMMANDS, main


def test_top_level_help_lists_every_command(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert all(name in out for name in SUBCOMMANDS)
    assert "95% CI" in out  # a literal percent sign in a command's help stays as written


@pytest.mark.parametrize("command", sorted(SUBCOMMANDS))
def test_each_command_has_help(capsys, command):
    with pytest.raises(SystemExit) as exit_info:
        main([command, "--help"])
    assert exit_info.value.code == 0
    assert f"usage: mdiff-eval {command}" in capsys.readouterr().out


def test_no_command_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([])
    assert exit_info.value.code == 2
    assert "COMMAND" in capsys.readouterr().err


def test_command_line_defaults_are_the_libraries():
    """The new commands repeat their library's defaults so that --help imports no torch."""
    from evaluation import memorization, recon, sample_figure
    from evaluation.cli import figure as figure_cli
    from evaluation.cli import memorization as memorization_cli
    from evaluation.cli import recon as recon_cli

    assert recon_cli.SPLITS == recon.SPLITS
    assert (figure_cli.DEFAULT_VOLUMES, figure_cli.DEFAULT_SLICES) == (
        sample_figure.DEFAULT_VOLUMES, sample_figure.DEFAULT_SLICES)
    assert (memorization_cli.DEFAULT_GRID, memorization_cli.DEFAULT_MAX_SHIFT,
            memorization_cli.DEFAULT_COPIES, memorization_cli.DEFAULT_NOISE,
            memorization_cli.DEFAULT_PAIRS) == (
        memorization.DEFAULT_GRID, memorization.DEFAULT_MAX_SHIFT, memorization.DEFAULT_COPIES,
        memorization.DEFAULT_NOISE, memorization.DEFAULT_PAIRS)
