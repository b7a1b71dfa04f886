"""The keyboard scheme of the reader, without Qt: which key answers which option, and the help line.

Keys that steer the viewer or the case (R reset, V plane, N/P next/previous) are never answer
keys, so a reader who means to reset the view can never record an answer by accident.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from reader_app.windowing import AUTO_WINDOW_KEY, CT_PRESETS

RESERVED_LETTERS = frozenset("RVNP")
PAGE_STEP = 5  # slices per PgUp/PgDn


class OptionLike(Protocol):
    """What the keymap needs of a `studies.questions.Option`."""

    letter: str
    text: str


class QuestionLike(Protocol):
    """What the keymap needs of a `studies.questions.Question`."""

    key: str
    options: Sequence[OptionLike]


def answer_keys(question: QuestionLike) -> tuple[str, ...]:
    """The key shown beside, and answering, each option of `question`, in display order.

    A question whose letters are single free letters (A-D) uses them; otherwise (R/S, where R
    resets the view, or 1-4) the options are numbered 1, 2, ... in order.
    """
    letters = [option.letter.upper() for option in question.options]
    if all(len(x) == 1 and x.isalpha() and x not in RESERVED_LETTERS for x in letters):
        return tuple(letters)
    return tuple(str(i) for i in range(1, len(letters) + 1))


def option_for_key(question: QuestionLike, key: str) -> str | None:
    """The letter of the option that `key` (a letter or digit typed) picks, or None.

    Besides the key shown beside each option, digits 1-9 always pick by position.
    """
    key = key.upper()
    letters = [option.letter for option in question.options]
    shown = answer_keys(question)
    if key in shown:
        return letters[shown.index(key)]
    if key.isdigit() and 1 <= int(key) <= len(letters):
        return letters[int(key) - 1]
    return None


def help_text(modality: str) -> str:
    """The keys and mouse actions, one group a line, shown under the questions."""
    windows = (f"F1-F{len(CT_PRESETS)} CT windows · {AUTO_WINDOW_KEY} auto"
               if modality == "CT" else f"{AUTO_WINDOW_KEY} auto window")
    return "\n".join([
        f"Slices: wheel · ↑ ↓ · PgUp PgDn (±{PAGE_STEP}) · Home End · V plane",
        "Mouse: left drag window/level · right drag zoom · middle drag pan",
        f"Window: {windows} · R reset view",
        "Answer: the key beside an option, for the framed question · Tab next question",
        "Case: Enter or N next · Backspace or P previous",
    ])
