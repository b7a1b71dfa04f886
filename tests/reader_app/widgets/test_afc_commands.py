"""A paired study's keys: Left and Right pick the synthetic side, K links the sides, and no key
means two things."""

from __future__ import annotations

from unittest.mock import MagicMock, call

from PySide6.QtCore import Qt

from reader_app.model.keymap import (
    KEY_BINDINGS,
    PAIR_KEY_BINDINGS,
    Binding,
    Command,
    answer_keys,
    help_text,
)
from reader_app.widgets.commands import QT_PAIR_BINDINGS, run_command
from studies.questions import AFC_QUESTIONS


def test_the_pair_table_differs_from_the_single_one_only_by_the_side_and_link_keys():
    changed = {key for key in PAIR_KEY_BINDINGS if PAIR_KEY_BINDINGS[key] != KEY_BINDINGS.get(key)}
    assert changed == {"Left", "Right", "K"}
    assert QT_PAIR_BINDINGS[Qt.Key.Key_Left] == Binding(Command.ANSWER_SIDE, 0)
    assert QT_PAIR_BINDINGS[Qt.Key.Key_Right] == Binding(Command.ANSWER_SIDE, 1)
    assert QT_PAIR_BINDINGS[Qt.Key.Key_K] == Binding(Command.TOGGLE_LINK)
    assert QT_PAIR_BINDINGS[Qt.Key.Key_Down] == Binding(Command.STEP_SLICES, 1)
    assert "K" not in KEY_BINDINGS and "Left" not in help_text("MR")  # single studies as before


def test_the_pair_questions_are_answered_by_digits_that_no_command_takes():
    """The side is 1 or 2 (L is the layout key), the confidence 1-4; digits are no command."""
    side, confidence = AFC_QUESTIONS
    assert answer_keys(side) == ("1", "2") and answer_keys(confidence) == ("1", "2", "3", "4")
    assert not {"1", "2", "3", "4"} & set(PAIR_KEY_BINDINGS)


def test_left_and_right_answer_the_side_and_k_toggles_the_link_on_the_reading_page_only():
    window = MagicMock()
    assert run_command(window, Binding(Command.ANSWER_SIDE, 0), on_review=False)
    assert run_command(window, Binding(Command.ANSWER_SIDE, 1), on_review=False)
    assert run_command(window, Binding(Command.TOGGLE_LINK), on_review=False)
    assert window.mock_calls == [call.answer_from_key("synthetic_side", "L"),
                                 call.answer_from_key("synthetic_side", "R"),
                                 call.viewer.pair.toggle_link()]
    review = MagicMock()
    assert not run_command(review, Binding(Command.ANSWER_SIDE, 0), on_review=True)
    assert not run_command(review, Binding(Command.TOGGLE_LINK), on_review=True)
    assert review.mock_calls == []
