"""Every question of a Table 1 + visual Turing study fits beside the image without scrolling, at
the window's default size and at a small laptop's, with the practice truth's banner showing."""

from __future__ import annotations

import pytest
from PySide6.QtCore import QPoint, QRect
from PySide6.QtWidgets import QWidget

from reader_app import DEFAULT_SIZE
from reader_app.model.opening import open_study_for_reading
from reader_app.model.session import ReadingSession
from reader_app.widgets.main_window import ReaderWindow
from reader_app.widgets.theme import apply_dark_theme
from studies.ratings import RatingStore

SIZES = [DEFAULT_SIZE, (1280, 800)]


def _window(qtbot, folder, size: tuple[int, int]) -> ReaderWindow:
    from PySide6.QtWidgets import QApplication

    apply_dark_theme(QApplication.instance())  # the app's own fonts and margins
    study = open_study_for_reading(folder)
    window = ReaderWindow(ReadingSession(study, RatingStore.open(study, "ann")), study.title,
                          study.modality, study.viewer)
    qtbot.addWidget(window)
    window.resize(*size)
    window.show()
    qtbot.waitExposed(window)
    qtbot.waitUntil(lambda: window.viewer.display.has_volume)
    return window


def _in_window(window: ReaderWindow, widget: QWidget) -> QRect:
    """`widget`'s rectangle in the window's coordinates."""
    return QRect(widget.mapTo(window, QPoint(0, 0)), widget.size())


def _assert_all_in_sight(window: ReaderWindow) -> None:
    panel = window.panel
    scroll = panel._scroll
    assert scroll.verticalScrollBar().maximum() == 0, "the questions scroll"
    viewport = QRect(scroll.viewport().mapTo(window, QPoint(0, 0)), scroll.viewport().size())
    frames = panel.questions._frames
    assert len(frames) == 5
    for frame in frames:
        assert viewport.contains(_in_window(window, frame)), frame.findChild(QWidget)
    for widget in (panel.notes, panel.next_button, panel.previous_button, panel.help):
        assert window.rect().contains(_in_window(window, widget)), widget


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_every_question_fits_without_scrolling(qtbot, make_practice_study, size):
    window = _window(qtbot, make_practice_study(turing=True), size)
    assert window.size().toTuple() == size
    assert window.panel.practice_note.isVisible()
    _assert_all_in_sight(window)
    # Answered: the truth's banner takes the practice note's place, and everything still fits.
    for question in window.session.questions:
        window.answer(question.key, question.options[0].letter)
    assert window.panel.feedback.isVisible() and not window.panel.practice_note.isVisible()
    _assert_all_in_sight(window)
    # A study case after the practice block.
    window.session.go_to(window.session.study_case_position(1))
    qtbot.waitUntil(lambda: window.viewer.display.has_volume)
    assert not window.panel.feedback.isVisible()
    _assert_all_in_sight(window)


def test_short_options_share_one_row_and_long_ones_have_a_row_each(qtbot, make_practice_study):
    window = _window(qtbot, make_practice_study(turing=True), DEFAULT_SIZE)
    questions = window.panel.questions
    rows = [{button.y() for button in group.buttons()} for group in questions.groups]
    assert [len(r) for r in rows] == [4, 4, 4, 1, 1]  # Table 1; real/synthetic; confidence
