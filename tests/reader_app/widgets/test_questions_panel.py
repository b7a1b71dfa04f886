"""The questions panel: Table 1 wording, exclusive groups per question, clicks on text."""

from __future__ import annotations

import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QLabel

from reader_app.widgets.questions_panel import QuestionsPanel
from studies.questions import TABLE1_QUESTIONS, TURING_QUESTIONS


@pytest.fixture
def panel(qtbot):
    """A shown panel with the Table 1 and Turing questions, recording what it emits."""
    widget = QuestionsPanel(TABLE1_QUESTIONS + TURING_QUESTIONS)
    qtbot.addWidget(widget)
    widget.show()
    widget.emitted = []
    widget.answered.connect(lambda key, letter: widget.emitted.append((key, letter)))
    return widget


def test_the_papers_wording_is_shown_word_for_word(panel):
    """Every Table 1 title and option text appears as a label."""
    texts = {label.text() for label in panel.findChildren(QLabel)}
    assert "1. Realistic image appearance" in texts
    assert "Majority of slices (>10) is consistent" in texts
    assert ("Anatomical region recognizable, but major parts of the images exhibit anatomical "
            "incorrectness") in texts


def test_each_question_is_its_own_exclusive_group(qtbot, panel):
    """Answering question 2 leaves question 1's answer checked; a second pick replaces the
    first within one question."""
    def button(question: int, letter: str):
        return next(b for b in panel.groups[question].buttons()
                    if b.property("letter") == letter)

    qtbot.mouseClick(button(0, "B"), Qt.MouseButton.LeftButton)
    qtbot.mouseClick(button(1, "D"), Qt.MouseButton.LeftButton)
    qtbot.mouseClick(button(0, "C"), Qt.MouseButton.LeftButton)
    assert panel.groups[0].checkedButton() is button(0, "C")
    assert panel.groups[1].checkedButton() is button(1, "D")
    assert panel.emitted == [("realistic_appearance", "B"), ("slice_consistency", "D"),
                             ("realistic_appearance", "C")]


def test_clicking_an_options_text_picks_it(qtbot, panel):
    """The long option texts are clickable like their radio buttons."""
    label = next(lb for lb in panel.findChildren(QLabel) if lb.text() == "synthetic")
    qtbot.mouseClick(label, Qt.MouseButton.LeftButton)
    assert panel.emitted == [("real_or_synthetic", "S")]


def test_showing_saved_answers_emits_nothing_and_can_clear(panel):
    """set_answers mirrors the model without echoing back; absent keys are unchecked."""
    panel.set_answers({"slice_consistency": "A", "confidence": "4"})
    assert panel.groups[1].checkedButton().property("letter") == "A"
    assert panel.groups[4].checkedButton().property("letter") == "4"
    panel.set_answers({})
    assert all(group.checkedButton() is None for group in panel.groups)
    assert panel.emitted == []


def test_first_unanswered_wraps_around(panel):
    """The highlight moves to the next open question, wrapping past the last one."""
    answers = {"realistic_appearance": "A", "confidence": "2"}
    assert panel.first_unanswered(answers, after=3) == 1
    assert panel.first_unanswered({q.key: "A" for q in panel.questions}) is None
    panel.set_current(7)
    assert panel.current == 2
