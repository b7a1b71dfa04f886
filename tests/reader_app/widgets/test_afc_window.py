"""The reading window of a paired (2AFC) study: two linked viewers, answering the side and the
confidence by keyboard, practice feedback, the review, and the layout at 1400 x 900."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import numpy as np
import pytest
from PySide6.QtCore import QPoint, QPointF, QRect, Qt
from PySide6.QtGui import QWheelEvent
from PySide6.QtWidgets import QApplication, QMessageBox

from reader_app import DEFAULT_SIZE
from reader_app.model.session import ReadingSession
from reader_app.model.windowing import Orientation
from reader_app.widgets.main_window import REVIEW_PAGE, ReaderWindow
from reader_app.widgets.pair_view import LINKED_TEXT, UNLINKED_TEXT, PairView
from reader_app.widgets.theme import apply_dark_theme
from studies.ratings import RatingStore
from studies.study import Study


def open_window(qtbot, folder: Path, reader: str = "ann") -> ReaderWindow:
    """A shown reading window over the paired study `folder`, its first pair on screen."""
    study = Study.open(folder)
    session = ReadingSession(study, RatingStore.open(study, reader))
    window = ReaderWindow(session, study.title, study.modality, study.viewer)
    qtbot.addWidget(window)
    window.show()
    qtbot.waitExposed(window)
    if not session.finished:
        qtbot.waitUntil(lambda: window.viewer.pair.has_volumes or session.current_unreadable)
    return window


def saved(folder: Path, reader: str = "ann") -> list[tuple[str, str, str]]:
    """(trial id, question, value) rows of the reader's database, practice and study."""
    with sqlite3.connect(folder / "ratings" / f"{reader}.sqlite") as conn:
        return sorted(conn.execute("SELECT case_id, question, value FROM answers UNION ALL "
                                   "SELECT case_id, question, value FROM practice_answers"))


def wheel(view, notches: int) -> None:
    """Turn the wheel over the current plane of one side's slice view."""
    viewport = view.graphics.viewport()
    centre = QPointF(viewport.width() / 2, viewport.height() / 2)
    QApplication.sendEvent(viewport, QWheelEvent(
        centre, viewport.mapToGlobal(centre), QPoint(0, 0), QPoint(0, 120 * notches),
        Qt.MouseButton.NoButton, Qt.KeyboardModifier.NoModifier, Qt.ScrollPhase.NoScrollPhase,
        False))


def slices(window: ReaderWindow) -> tuple[int, int]:
    pair = window.viewer.pair
    return pair.left.slice_index, pair.right.slice_index


def test_a_paired_study_shows_two_viewers_that_scroll_together(qtbot, pair_study_dir):
    """The wheel on either side, the arrow keys up and down and a side's slider move both
    sides; the left and right arrows step nothing."""
    window = open_window(qtbot, pair_study_dir)
    viewer = window.viewer
    assert isinstance(viewer, PairView) and window.panel.case_label.text() == "Practice 1 of 1"
    left, right = viewer.sides["left"], viewer.sides["right"]
    assert left.isVisible() and right.isVisible() and slices(window) == (4, 4)
    wheel(right, -2)  # towards the reader: the next slices
    assert slices(window) == (6, 6)
    assert left.slice_label.text() == right.slice_label.text() == "slice 7 / 8"
    wheel(left, 1)
    assert slices(window) == (5, 5)
    qtbot.keyClick(window, Qt.Key.Key_Up)
    assert slices(window) == (4, 4)
    left.slider.setValue(1)
    assert slices(window) == (1, 1) and right.slider.value() == 1
    qtbot.keyClick(window, Qt.Key.Key_V)
    assert viewer.pair.right.orientation is Orientation.CORONAL
    assert all(plane.isVisible() for plane in (left.planes[Orientation.CORONAL],
                                               right.planes[Orientation.CORONAL]))


def test_k_unlinks_the_sides_and_relinking_puts_the_right_where_the_left_is(qtbot,
                                                                           pair_study_dir):
    window = open_window(qtbot, pair_study_dir)
    viewer = window.viewer
    assert viewer.link_button.isChecked() and viewer.link_button.text() == LINKED_TEXT
    qtbot.keyClick(window, Qt.Key.Key_K)
    assert not viewer.pair.linked and viewer.link_button.text() == UNLINKED_TEXT
    wheel(viewer.sides["right"], -2)
    assert slices(window) == (4, 6)
    qtbot.keyClick(window, Qt.Key.Key_Down)  # the keys step the side moved last
    assert slices(window) == (4, 7)
    qtbot.keyClick(window, Qt.Key.Key_PageUp)
    assert slices(window) == (4, 2)
    wheel(viewer.sides["left"], 1)
    assert slices(window) == (3, 2) and viewer.pair.active_side == "left"
    viewer.link_button.click()  # the button does what K does
    assert viewer.pair.linked and slices(window) == (3, 3)
    assert window.session.answers == {}  # K answers nothing


def test_one_window_and_level_serves_both_sides(qtbot, pair_study_dir):
    """A drag on one side sets the window of both; Auto and Reset act on both."""
    window = open_window(qtbot, pair_study_dir)
    pair = window.viewer.pair
    start = pair.left.window
    assert pair.right.window == start
    pair.right.drag_window(40.0, -20.0, starting=True)
    assert pair.left.window == pair.right.window != start
    labels = [view.window_label.text() for view in window.viewer.sides.values()]
    assert labels[0] == labels[1] and labels[0].startswith("W ")
    qtbot.keyClick(window, Qt.Key.Key_R)
    assert pair.left.window == pair.right.window == start


def test_keys_answer_the_side_then_the_confidence_and_each_answer_is_saved(qtbot,
                                                                          pair_study_dir):
    """Left/Right pick the side whichever question is framed; the frame then moves to the
    confidence, which 1-4 answer; each key is saved at once; the picked side's header says so."""
    window = open_window(qtbot, pair_study_dir)
    questions = window.panel.questions
    assert questions.current == 0
    qtbot.keyClick(window, Qt.Key.Key_Left)
    assert saved(pair_study_dir) == [("P01", "synthetic_side", "L")]
    assert questions.current == 1 and slices(window) == (4, 4)
    assert "your pick" in window.viewer.headers["left"].text()
    qtbot.keyClick(window, Qt.Key.Key_3)
    assert saved(pair_study_dir) == [("P01", "confidence", "3"), ("P01", "synthetic_side", "L")]
    qtbot.keyClick(window, Qt.Key.Key_Right)  # changes the side, with the confidence framed
    assert ("P01", "synthetic_side", "R") in saved(pair_study_dir)
    assert "your pick" in window.viewer.headers["right"].text()
    assert "your pick" not in window.viewer.headers["left"].text()
    qtbot.keyClick(window, Qt.Key.Key_Return)
    trial_id = window.session.store.case_order[0]
    qtbot.waitUntil(lambda: window.panel.case_label.text() == "Pair 1 of 2")
    qtbot.waitUntil(lambda: window.viewer.pair.has_volumes)
    # Digits: 2 answers the framed side question (Right), then 2 the confidence.
    qtbot.keyClicks(window, "22")
    assert {(q, v) for t, q, v in saved(pair_study_dir) if t == trial_id} == {
        ("synthetic_side", "R"), ("confidence", "2")}


def test_practice_feedback_shows_the_synthetic_side_after_answering(qtbot, pair_study_dir):
    window = open_window(qtbot, pair_study_dir)
    panel = window.panel
    assert panel.practice_note.isVisible() and not panel.feedback.isVisible()
    qtbot.keyClick(window, Qt.Key.Key_Left)
    assert not panel.feedback.isVisible()
    qtbot.keyClick(window, Qt.Key.Key_2)
    assert panel.feedback.isVisible()
    assert panel.feedback.text() == ("The synthetic one was on the right.\n"
                                     "You picked the left one.")
    headers = window.viewer.headers
    assert headers["right"].text().endswith("synthetic")
    assert headers["left"].text().endswith("real")


def test_the_review_lists_the_pairs_and_reopening_resumes_at_the_first_unfinished(
        qtbot, pair_study_dir):
    window = open_window(qtbot, pair_study_dir)
    qtbot.keyClicks(window, "13")
    qtbot.keyClick(window, Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: window.viewer.pair.has_volumes)
    qtbot.keyClick(window, Qt.Key.Key_Right)
    qtbot.keyClick(window, Qt.Key.Key_O)
    assert window.pages.currentIndex() == REVIEW_PAGE
    cells = [[window.review.table.item(r, c).text() for c in range(3)]
             for r in range(window.review.table.rowCount())]
    assert cells == [["Practice 1", "Left", "3"], ["Pair 1", "Right", ""]]
    assert window.review.title.text() == "Your pairs so far"
    assert window.review.table.horizontalHeaderItem(0).text() == "Pair"
    qtbot.keyClick(window, Qt.Key.Key_O)
    window.close()
    again = open_window(qtbot, pair_study_dir)
    assert again.panel.case_label.text() == "Pair 1 of 2"
    assert again.session.answers == {"synthetic_side": "R"}
    assert again.panel.questions.current == 1  # the confidence is what is left


def test_the_help_under_the_images_tells_the_pair_keys(qtbot, pair_study_dir):
    window = open_window(qtbot, pair_study_dir)
    text = window.panel.help.text()
    assert "← left · → right (or 1 2) · then confidence 1-4" in text
    assert "K links or unlinks them" in text and "O review your pairs" in text
    assert window.panel.next_button.text().startswith("Next pair")
    assert "of 2 pairs rated" in window.panel.progress.format()


@pytest.mark.parametrize("size", [DEFAULT_SIZE, (1280, 800)], ids=lambda s: f"{s[0]}x{s[1]}")
def test_both_images_and_every_question_fit_the_window(qtbot, make_pair_study, size):
    """At the default size and a small laptop's, CT (whose presets make the widest bar): the
    two sides share the width equally, each image area is large, the questions never scroll and
    the buttons and the help are in the window, with the practice banner showing too."""
    apply_dark_theme(QApplication.instance())
    window = open_window(qtbot, make_pair_study("ct", modality="CT"))
    window.resize(*size)
    qtbot.waitUntil(lambda: window.size().toTuple() == size)
    for key in (Qt.Key.Key_Right, Qt.Key.Key_4):
        qtbot.keyClick(window, key)
    assert window.panel.feedback.isVisible()
    QApplication.processEvents()
    areas = [view.planes_area for view in window.viewer.sides.values()]
    widths = [area.width() for area in areas]
    assert abs(widths[0] - widths[1]) <= 2 and min(widths) >= 340
    assert min(area.height() for area in areas) >= 500
    scroll = window.panel._scroll
    assert scroll.verticalScrollBar().maximum() == 0, "the questions scroll"
    for widget in (*window.viewer.preset_buttons, window.viewer.link_button, window.panel.help,
                   window.panel.next_button, window.panel.notes):
        rect = QRect(widget.mapTo(window, QPoint(0, 0)), widget.size())
        assert window.rect().contains(rect), widget


def test_linked_sides_zoom_and_pan_together_and_unlinked_alone(qtbot, pair_study_dir):
    window = open_window(qtbot, pair_study_dir)
    left, right = (window.viewer.sides[side].view_box for side in ("left", "right"))

    def same() -> bool:
        return np.allclose(left.viewRange(), right.viewRange())

    whole = left.viewRange()
    left.scaleBy((0.5, 0.5))
    assert same() and not np.allclose(left.viewRange(), whole)
    right.translateBy((2.0, 0.0))
    assert same()
    qtbot.keyClick(window, Qt.Key.Key_K)
    left.scaleBy((2.0, 2.0))
    assert not same()
    qtbot.keyClick(window, Qt.Key.Key_K)
    assert same()
    qtbot.keyClick(window, Qt.Key.Key_R)  # the whole image again, on both sides
    assert same() and np.allclose(left.viewRange(), whole)


def test_a_pair_with_a_damaged_member_names_the_pair_only_and_can_be_skipped(qtbot,
                                                                            pair_study_dir):
    """One unreadable member makes the pair unreadable: "Pair 1 could not be read" (no file
    name on screen), both names in log.txt; the side keys answer nothing and Next goes on."""
    study = Study.open(pair_study_dir)
    with RatingStore.open(study, "ann") as store:
        first = store.trial(store.case_order[0])
        for question, value in (("synthetic_side", "L"), ("confidence", "1")):
            store.record_answer("P01", question, value, 1.0)
    broken = study.case_path(first.right)
    broken.write_bytes(b"this is not a NIfTI file")
    window = open_window(qtbot, pair_study_dir)  # resumes at pair 1
    qtbot.waitUntil(lambda: bool(window.findChildren(QMessageBox)))
    box = window.findChildren(QMessageBox)[0]
    assert box.text() == "Pair 1 could not be read."
    log = (pair_study_dir / "log.txt").read_text()
    assert broken.name in log and study.case_path(first.left).name in log
    assert window.viewer.sides["left"]._message.text() == "This case could not be read."
    box.close()
    qtbot.keyClick(window, Qt.Key.Key_Left)
    assert window.session.answers == {}
    qtbot.keyClick(window, Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: window.viewer.pair.has_volumes)
    assert window.panel.case_label.text() == "Pair 2 of 2"
