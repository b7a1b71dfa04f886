"""The command table: every key's command has one entry, and what it does on the reading page
and on the review list."""

from __future__ import annotations

from unittest.mock import MagicMock, call

from PySide6.QtCore import Qt

from reader_app.model.keymap import KEY_BINDINGS, Binding, Command
from reader_app.widgets.commands import COMMAND_TABLE, QT_BINDINGS, REVIEW_COMMANDS, run_command


def stand_in_window(finished: bool = False, chosen: int | None = None) -> MagicMock:
    """A window whose parts record the calls the table's actions make: the framed question is
    the third, the review lists four rows."""
    window = MagicMock()
    window.panel.questions.current = 2
    window.review.rows = [0, 1, 2, 3]
    window.review.chosen_index.return_value = chosen
    window.session.finished = finished
    return window


def made_calls(window: MagicMock) -> list:
    """The calls the actions made, without the stand-in's own set-up reads."""
    return [c for c in window.mock_calls if c[0] != "review.chosen_index"]


def test_every_command_has_a_reading_action_and_the_keys_map_to_qt_codes():
    """No command is missing from the table; each key of the keymap has its Qt code."""
    assert set(COMMAND_TABLE) == set(Command)
    assert QT_BINDINGS[Qt.Key.Key_PageDown] == KEY_BINDINGS["PageDown"]
    assert len(QT_BINDINGS) == len(KEY_BINDINGS)


def test_on_the_review_only_row_choice_opening_and_the_way_back_act():
    """On the review list (also the study's end) the slice keys choose a row, Enter opens it,
    P goes back, O and Escape close it; the viewer's and the questions' keys pass on."""
    assert REVIEW_COMMANDS == {Command.STEP_SLICES, Command.FIRST_SLICE, Command.LAST_SLICE,
                               Command.NEXT_CASE, Command.PREVIOUS_CASE, Command.REVIEW,
                               Command.LEAVE_REVIEW}
    window = stand_in_window()
    assert not run_command(window, Binding(Command.RESET_VIEW), on_review=True)
    assert made_calls(window) == []


def test_the_same_key_does_one_thing_on_each_page():
    """A command's action depends on the page: step slices or move the row, next case or open
    the chosen row; Escape does nothing on the reading page but is taken."""
    cases = [
        (Binding(Command.STEP_SLICES, -5), False, [call.viewer.display.step(-5)]),
        (Binding(Command.STEP_SLICES, -5), True, [call.review.move_selection(-5)]),
        (Binding(Command.LAST_SLICE), True, [call.review.select(3)]),
        (Binding(Command.WINDOW_PRESET, 2), False, [call.viewer.display.apply_preset(2)]),
        (Binding(Command.NEXT_QUESTION), False, [call.panel.questions.set_current(3)]),
        (Binding(Command.NEXT_CASE), False, [call.go_next()]),
        (Binding(Command.REVIEW), False, [call.show_review()]),
        (Binding(Command.REVIEW), True, [call.close_review()]),
        (Binding(Command.LEAVE_REVIEW), False, []),
        (Binding(Command.PREVIOUS_CASE), True, []),  # a review opened over a case
    ]
    for binding, on_review, expected in cases:
        window = stand_in_window()
        assert run_command(window, binding, on_review)
        assert made_calls(window) == expected, (binding, on_review)


def test_enter_opens_the_chosen_row_and_p_goes_back_from_the_end():
    """Enter on the review opens the selected row's case, and nothing without one; P on the
    study's end goes back to the last case."""
    window = stand_in_window(chosen=4)
    run_command(window, Binding(Command.NEXT_CASE), on_review=True)
    assert made_calls(window) == [call.open_case(4)]
    window = stand_in_window(chosen=None)
    run_command(window, Binding(Command.NEXT_CASE), on_review=True)
    assert made_calls(window) == []
    window = stand_in_window(finished=True)
    run_command(window, Binding(Command.PREVIOUS_CASE), on_review=True)
    assert made_calls(window) == [call.go_previous()]
