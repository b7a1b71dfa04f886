"""The keyboard scheme: which key answers which option."""

from __future__ import annotations

from reader_app.model.keymap import (
    KEY_BINDINGS,
    PAGE_STEP,
    RESERVED_LETTERS,
    REVIEW_KEY,
    Binding,
    Command,
    answer_keys,
    help_text,
    option_for_key,
)
from reader_app.model.windowing import AUTO_WINDOW_KEY, CT_PRESETS
from studies.questions import TABLE1_QUESTIONS, TURING_QUESTIONS


def test_table1_questions_are_answered_with_their_letters_or_positions():
    """A-D pick options A-D; digits pick by position too."""
    question = TABLE1_QUESTIONS[0]
    assert answer_keys(question) == ("A", "B", "C", "D")
    assert option_for_key(question, "c") == "C"
    assert option_for_key(question, "4") == "D"
    assert option_for_key(question, "E") is None and option_for_key(question, "5") is None


def test_real_or_synthetic_is_numbered_because_r_resets_the_view():
    """R resets the view, so the real/synthetic options are keyed 1 and 2, never R."""
    real_or_synthetic, confidence = TURING_QUESTIONS
    assert answer_keys(real_or_synthetic) == ("1", "2")
    assert option_for_key(real_or_synthetic, "1") == "R"
    assert option_for_key(real_or_synthetic, "2") == "S"
    assert option_for_key(real_or_synthetic, "R") is None
    assert answer_keys(confidence) == ("1", "2", "3", "4")
    assert option_for_key(confidence, "3") == "3"


def test_no_answer_key_is_a_viewer_or_navigation_key():
    """Reserved keys (R, V, L, N, P, O) never answer any question of any study."""
    for question in TABLE1_QUESTIONS + TURING_QUESTIONS:
        assert not set(answer_keys(question)) & RESERVED_LETTERS


def test_help_line_names_the_ct_presets_only_for_ct():
    """MR studies have no HU presets to advertise."""
    assert "F1-F4" in help_text("CT") and "F1-F4" not in help_text("MR")


def test_the_key_table_binds_the_ct_presets_and_the_case_keys():
    """F1-F4 are the CT presets in their table order, F5 the auto window; the reserved
    letters are exactly the letters the table binds."""
    for number, preset in enumerate(CT_PRESETS, start=1):
        assert KEY_BINDINGS[preset.key] == Binding(Command.WINDOW_PRESET, number)
    assert KEY_BINDINGS[AUTO_WINDOW_KEY] == Binding(Command.AUTO_WINDOW)
    assert KEY_BINDINGS["PageDown"] == Binding(Command.STEP_SLICES, PAGE_STEP)
    assert KEY_BINDINGS["R"].command is Command.RESET_VIEW
    assert {KEY_BINDINGS[k].command for k in ("Return", "Enter", "N")} == {Command.NEXT_CASE}
    assert KEY_BINDINGS["L"].command is Command.TOGGLE_LAYOUT
    assert RESERVED_LETTERS == frozenset("RVLNPO")


def test_the_review_key_is_in_the_one_table_and_the_help():
    """O opens the review from any case, Escape leaves it; the help names O and how to leave
    the comment box."""
    assert REVIEW_KEY == "O" and KEY_BINDINGS["O"] == Binding(Command.REVIEW)
    assert KEY_BINDINGS["Escape"] == Binding(Command.LEAVE_REVIEW)
    for modality in ("CT", "MR"):
        text = help_text(modality)
        assert "O review your cases" in text and "Esc or a click on the image ends typing" in text
