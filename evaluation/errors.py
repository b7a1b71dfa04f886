"""The error of a request the evaluation cannot answer: `mdiff-eval` prints it as one sentence."""

from __future__ import annotations


class EvalError(Exception):
    """A user mistake (a bad file, folder or option); the message is one sentence naming it."""
