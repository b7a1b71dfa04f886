"""What each key's command does in the reading window: one table, from a `keymap.Command` to its
action on the reading page and, for the commands that act there, on the review list.

`keymap.KEY_BINDINGS` says which key gives which command; this table says what the command does
to the window's widgets, so a key's whole path is two table lookups and no if/elif ladder.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from PySide6.QtCore import Qt

from reader_app.model.keymap import KEY_BINDINGS, PAIR_KEY_BINDINGS, Binding, Command
from reader_app.model.session import SIDE_CALL

if TYPE_CHECKING:
    from reader_app.widgets.main_window import ReaderWindow

# An action gets the window and the binding's amount (slices to step, the preset's number).
Action = Callable[["ReaderWindow", int], None]


def _by_qt_code(bindings: dict[str, Binding]) -> dict[int, Binding]:
    return {getattr(Qt.Key, f"Key_{name}"): binding for name, binding in bindings.items()}


# `keymap.KEY_BINDINGS` and `keymap.PAIR_KEY_BINDINGS` (a paired study's) by Qt key code.
QT_BINDINGS: dict[int, Binding] = _by_qt_code(KEY_BINDINGS)
QT_PAIR_BINDINGS: dict[int, Binding] = _by_qt_code(PAIR_KEY_BINDINGS)


@dataclass(frozen=True)
class CommandActions:
    """A command's action on the reading page and on the review list; `review` None means
    the key does nothing there and passes on to Qt."""

    reading: Action
    review: Action | None = None


def _nothing(_window: ReaderWindow, _amount: int) -> None:
    """Escape on the reading page: taken, so that it reaches nothing else."""


def _open_chosen(window: ReaderWindow, _amount: int) -> None:
    """Enter on the review list: open the selected row's case, if a row is selected."""
    chosen = window.review.chosen_index()
    if chosen is not None:
        window.open_case(chosen)


def _back_from_the_end(window: ReaderWindow, _amount: int) -> None:
    """P on the study's end goes back to the last case; on a review opened over a case it does
    nothing (O or Escape go back there)."""
    if window.session.finished:
        window.go_previous()


def _pick_side(window: ReaderWindow, amount: int) -> None:
    """Left or Right in a paired study: that side is the synthetic one, whichever question is
    framed."""
    window.answer_from_key(SIDE_CALL.key, SIDE_CALL.letters[amount])


def _move_question(window: ReaderWindow, amount: int) -> None:
    questions = window.panel.questions
    questions.set_current(questions.current + amount)


# On the review list (which is also the end of the study) only the commands with a review action
# act: the slice keys choose a row, Enter (or N) opens its case, P goes back to the last case,
# O or Escape back to the case.
COMMAND_TABLE: dict[Command, CommandActions] = {
    Command.STEP_SLICES: CommandActions(lambda w, n: w.viewer.display.step(n),
                                        lambda w, n: w.review.move_selection(n)),
    Command.FIRST_SLICE: CommandActions(lambda w, _: w.viewer.display.first_slice(),
                                        lambda w, _: w.review.select(0)),
    Command.LAST_SLICE: CommandActions(lambda w, _: w.viewer.display.last_slice(),
                                       lambda w, _: w.review.select(len(w.review.rows) - 1)),
    Command.WINDOW_PRESET: CommandActions(lambda w, n: w.viewer.display.apply_preset(n)),
    Command.AUTO_WINDOW: CommandActions(lambda w, _: w.viewer.display.auto_window()),
    Command.RESET_VIEW: CommandActions(lambda w, _: w.viewer.reset()),
    Command.CYCLE_PLANE: CommandActions(lambda w, _: w.viewer.display.cycle_orientation()),
    Command.TOGGLE_LAYOUT: CommandActions(lambda w, _: w.viewer.display.toggle_layout()),
    Command.NEXT_CASE: CommandActions(lambda w, _: w.go_next(), _open_chosen),
    Command.PREVIOUS_CASE: CommandActions(lambda w, _: w.go_previous(), _back_from_the_end),
    Command.NEXT_QUESTION: CommandActions(lambda w, _: _move_question(w, 1)),
    Command.PREVIOUS_QUESTION: CommandActions(lambda w, _: _move_question(w, -1)),
    Command.REVIEW: CommandActions(lambda w, _: w.show_review(), lambda w, _: w.close_review()),
    Command.LEAVE_REVIEW: CommandActions(_nothing, lambda w, _: w.close_review()),
    Command.ANSWER_SIDE: CommandActions(_pick_side),
    Command.TOGGLE_LINK: CommandActions(lambda w, _: w.viewer.pair.toggle_link()),
}
REVIEW_COMMANDS = frozenset(command for command, actions in COMMAND_TABLE.items()
                            if actions.review is not None)


def run_command(window: ReaderWindow, binding: Binding, on_review: bool) -> bool:
    """Carry out `binding`'s command on the page shown; False when it does nothing there."""
    actions = COMMAND_TABLE[binding.command]
    action = actions.review if on_review else actions.reading
    if action is None:
        return False
    action(window, binding.amount)
    return True
