"""The keyboard scheme of the reader, without Qt: the one table of which key gives which command,
which key answers which option, and the help line. What a command does to the window is
`reader_app.widgets.commands`.

Keys that steer the viewer or the case (R reset, V plane, L layout, N/P next/previous, O review)
are never answer keys, so a reader who means to reset the view can never record an answer by
accident.

A paired (2AFC) study has its own table: there Left and Right answer "Which one is synthetic?"
(whichever question is framed) instead of stepping slices, and K links or unlinks the two sides.
Its digits answer the framed question as everywhere: 1/2 the side while that question is framed,
1-4 the confidence once the side is given (the frame moves on by itself), so a digit never means
two things at once.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from reader_app.model.windowing import AUTO_WINDOW_KEY, CT_PRESETS

PAGE_STEP = 5  # slices per PgUp/PgDn
RESET_KEY = "R"
PLANE_KEY = "V"
LAYOUT_KEY = "L"
NEXT_CASE_KEY = "N"
PREVIOUS_CASE_KEY = "P"
REVIEW_KEY = "O"  # "overview": R, the natural letter, resets the view
LINK_KEY = "K"  # "linK": L is the layout


class Command(enum.Enum):
    """What a key does in the reading window."""

    STEP_SLICES = "step slices"          # by the binding's amount (+ = forward)
    FIRST_SLICE = "first slice"
    LAST_SLICE = "last slice"
    WINDOW_PRESET = "CT window preset"   # preset number `amount` (1-based); CT only
    AUTO_WINDOW = "auto window"
    RESET_VIEW = "reset view"
    CYCLE_PLANE = "next plane"
    TOGGLE_LAYOUT = "one or three views"
    NEXT_CASE = "next case"
    PREVIOUS_CASE = "previous case"
    NEXT_QUESTION = "next question"
    PREVIOUS_QUESTION = "previous question"
    REVIEW = "review your cases"         # open the review list, or close it back to the case
    LEAVE_REVIEW = "back from the review"
    ANSWER_SIDE = "pick a side as synthetic"  # side `amount`: 0 left, 1 right (paired studies)
    TOGGLE_LINK = "link or unlink the sides"  # paired studies


@dataclass(frozen=True)
class Binding:
    """A key's command and, for the commands that take one, its amount."""

    command: Command
    amount: int = 0


# Key names are Qt's without the prefix (`Qt.Key.Key_PageUp` is "PageUp"); a key held with Ctrl
# or Alt does nothing here, and every key not in the table may answer a question.
KEY_BINDINGS: dict[str, Binding] = {
    "Up": Binding(Command.STEP_SLICES, -1),
    "Left": Binding(Command.STEP_SLICES, -1),
    "Down": Binding(Command.STEP_SLICES, 1),
    "Right": Binding(Command.STEP_SLICES, 1),
    "PageUp": Binding(Command.STEP_SLICES, -PAGE_STEP),
    "PageDown": Binding(Command.STEP_SLICES, PAGE_STEP),
    "Home": Binding(Command.FIRST_SLICE),
    "End": Binding(Command.LAST_SLICE),
    **{preset.key: Binding(Command.WINDOW_PRESET, number)
       for number, preset in enumerate(CT_PRESETS, start=1)},
    AUTO_WINDOW_KEY: Binding(Command.AUTO_WINDOW),
    RESET_KEY: Binding(Command.RESET_VIEW),
    PLANE_KEY: Binding(Command.CYCLE_PLANE),
    LAYOUT_KEY: Binding(Command.TOGGLE_LAYOUT),
    "Return": Binding(Command.NEXT_CASE),
    "Enter": Binding(Command.NEXT_CASE),
    NEXT_CASE_KEY: Binding(Command.NEXT_CASE),
    "Backspace": Binding(Command.PREVIOUS_CASE),
    PREVIOUS_CASE_KEY: Binding(Command.PREVIOUS_CASE),
    "Tab": Binding(Command.NEXT_QUESTION),
    "Backtab": Binding(Command.PREVIOUS_QUESTION),
    REVIEW_KEY: Binding(Command.REVIEW),
    "Escape": Binding(Command.LEAVE_REVIEW),
}
# A paired study's table: Left and Right pick the side (Up/Down, PgUp/PgDn, the wheel still step
# the slices), K links the sides.
PAIR_KEY_BINDINGS: dict[str, Binding] = {
    **KEY_BINDINGS,
    "Left": Binding(Command.ANSWER_SIDE, 0),
    "Right": Binding(Command.ANSWER_SIDE, 1),
    LINK_KEY: Binding(Command.TOGGLE_LINK),
}
RESERVED_LETTERS = frozenset(key for key in KEY_BINDINGS if len(key) == 1 and key.isalpha())


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


def help_text(modality: str, paired: bool = False) -> str:
    """The keys and mouse actions, one group a line, shown under the image; a paired study's
    say how the two sides move and are answered."""
    windows = (f"{CT_PRESETS[0].key}-{CT_PRESETS[-1].key} CT windows · {AUTO_WINDOW_KEY} auto"
               if modality == "CT" else f"{AUTO_WINDOW_KEY} auto window")
    if paired:
        return "\n".join([
            f"Slices: wheel · ↑ ↓ · PgUp PgDn (±{PAGE_STEP}) · Home End · {PLANE_KEY} plane",
            f"Sides: {LINK_KEY} links or unlinks them · linked, both move together",
            "Mouse: left drag window/level · right drag zoom · middle drag pan",
            f"Window: {windows} · {RESET_KEY} reset view · {LAYOUT_KEY} three planes",
            "Synthetic one: ← left · → right (or 1 2) · then confidence 1-4",
            f"Pair: Enter or {NEXT_CASE_KEY} next · Backspace or {PREVIOUS_CASE_KEY} previous · "
            f"{REVIEW_KEY} review your pairs",
            "Comment: click the box to type · Esc or a click on the image ends typing",
        ])
    return "\n".join([
        f"Slices: wheel · ↑ ↓ · PgUp PgDn (±{PAGE_STEP}) · Home End · {PLANE_KEY} plane",
        f"Views: {LAYOUT_KEY} one or three planes · in three, a click moves the others there",
        "Mouse: left drag window/level · right drag zoom · middle drag pan",
        f"Window: {windows} · {RESET_KEY} reset view",
        "Answer: the key beside an option, for the framed question · Tab next question",
        f"Case: Enter or {NEXT_CASE_KEY} next · Backspace or {PREVIOUS_CASE_KEY} previous · "
        f"{REVIEW_KEY} review your cases",
        "Comment: click the box to type · Esc or a click on the image ends typing",
    ])
