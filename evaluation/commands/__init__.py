"""Subcommands of `mdiff-eval`, one module each."""
