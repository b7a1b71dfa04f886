"""The keyboard scheme: which key answers which option."""

from __future__ import annotations

from reader_app.keymap import RESERVED_LETTERS, answer_keys, help_text, option_for_key
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
    """Reserved keys (R, V, N, P) never answer any question of any study."""
    for question in TABLE1_QUESTIONS + TURING_QUESTIONS:
        assert not set(answer_keys(question)) & RESERVED_LETTERS


def test_help_line_names_the_ct_presets_only_for_ct():
    """MR studies have no HU presets to advertise."""
    assert "F1-F4" in help_text("CT") and "F1-F4" not in help_text("MR")
