"""The reading window over a real study: keyboard and mouse answering, saving, resuming,
blinding and unreadable cases."""

from __future__ import annotations

import gc
import sqlite3
import sys
from pathlib import Path

import numpy as np
import pytest
from PySide6.QtCore import QPoint, QPointF, Qt
from PySide6.QtGui import QWheelEvent
from PySide6.QtWidgets import (
    QAbstractButton,
    QApplication,
    QLabel,
    QMenu,
    QMessageBox,
    QPushButton,
    QWidget,
)

from diffusion_core.io import Volume, read_volume, write_nifti
from reader_app.model.opening import open_study_for_reading
from reader_app.model.session import FINAL_REFUSED, ReadingSession
from reader_app.model.windowing import Layout, Orientation
from reader_app.widgets.main_window import ReaderWindow
from reader_app.widgets.review_page import COMPLETE_TEXT
from studies.create import create_study
from studies.ratings import RatingStore
from studies.study import Study, StudyError


def open_window(qtbot, folder: Path, reader: str = "ann") -> ReaderWindow:
    """A shown reading window over `folder` for `reader`, with its current case on screen."""
    study = Study.open(folder)
    session = ReadingSession(study, RatingStore.open(study, reader))
    window = ReaderWindow(session, study.title, study.modality, study.viewer)
    qtbot.addWidget(window)
    window.show()
    qtbot.waitExposed(window)
    if not session.finished:
        qtbot.waitUntil(lambda: window.viewer.display.has_volume or session.current_unreadable)
    return window


def saved_rows(folder: Path, reader: str = "ann") -> list[tuple[str, str, str]]:
    """(case_id, question, value) rows of the reader's database, straight from sqlite."""
    with sqlite3.connect(folder / "ratings" / f"{reader}.sqlite") as conn:
        return sorted(conn.execute("SELECT case_id, question, value FROM answers"))


def checked_letters(window: ReaderWindow) -> list[str | None]:
    """The letter checked in each question group (None when unanswered)."""
    letters = []
    for group in window.panel.questions.groups:
        button = group.checkedButton()
        letters.append(None if button is None else button.property("letter"))
    return letters


def press(qtbot, window: ReaderWindow, *keys: Qt.Key) -> None:
    """Press keys on the window, as a reader does."""
    for key in keys:
        qtbot.keyClick(window, key)


def test_keys_and_wheel_move_the_slice(qtbot, study_dir):
    """Up/Down, PgUp/PgDn, Home/End and the wheel step through the 8 slices."""
    window = open_window(qtbot, study_dir)
    view = window.viewer
    assert view.display.slice_index == 4
    press(qtbot, window, Qt.Key.Key_Down)
    assert view.display.slice_index == 5 and view.slice_label.text() == "slice 6 / 8"
    press(qtbot, window, Qt.Key.Key_Up, Qt.Key.Key_Up)
    assert view.display.slice_index == 3
    press(qtbot, window, Qt.Key.Key_PageDown)
    assert view.display.slice_index == 7
    press(qtbot, window, Qt.Key.Key_Home)
    assert view.display.slice_index == 0
    press(qtbot, window, Qt.Key.Key_End)
    assert view.display.slice_index == 7
    viewport = view.graphics.viewport()
    centre = QPointF(viewport.width() / 2, viewport.height() / 2)
    QApplication.sendEvent(viewport, QWheelEvent(
        centre, viewport.mapToGlobal(centre), QPoint(0, 0), QPoint(0, 240),
        Qt.MouseButton.NoButton, Qt.KeyboardModifier.NoModifier, Qt.ScrollPhase.NoScrollPhase,
        False))
    assert view.display.slice_index == 5


def test_viewer_keys_presets_reset_and_plane(qtbot, study_dir):
    """F2 lung window, R back to soft tissue, V to the coronal plane."""
    window = open_window(qtbot, study_dir)
    press(qtbot, window, Qt.Key.Key_F2)
    assert window.viewer.display.window.width == 1500
    press(qtbot, window, Qt.Key.Key_R)
    assert window.viewer.display.window.width == 400
    press(qtbot, window, Qt.Key.Key_V)
    assert window.viewer.display.orientation.value == "coronal"


def test_the_layout_key_toggles_three_views_and_the_keys_step_the_current_one(qtbot, study_dir):
    """L shows axial, coronal and sagittal side by side (and answers nothing); the arrows step
    the current plane, V makes the next one current; L again is the single view."""
    window = open_window(qtbot, study_dir)
    view = window.viewer
    press(qtbot, window, Qt.Key.Key_L)
    assert view.display.layout is Layout.THREE
    assert all(plane.isVisible() for plane in view.planes.values())
    assert window.session.answers == {}
    press(qtbot, window, Qt.Key.Key_V, Qt.Key.Key_Down)
    assert view.display.orientation is Orientation.CORONAL
    assert view.display.cursor == (4, 13, 10)  # (8, 24, 20): the coronal slice moved on
    assert view.slice_label.text() == "slice 14 / 24"
    press(qtbot, window, Qt.Key.Key_L)
    assert view.display.layout is Layout.SINGLE
    assert [o for o, plane in view.planes.items() if plane.isVisible()] == [Orientation.CORONAL]
    assert "L one or three planes" in window.panel.help.text()


def test_the_studys_viewer_defaults_choose_the_layout(qtbot, make_study, capfd):
    """`"layout": "three"` in study.json opens the three views; a value the app does not know
    is said on stderr and the single view opens."""
    window = open_window(qtbot, make_study("three", viewer={"layout": "three"}))
    assert window.viewer.display.layout is Layout.THREE
    assert all(plane.isVisible() for plane in window.viewer.planes.values())
    window = open_window(qtbot, make_study("odd", viewer={"layout": "grid"}))
    assert window.viewer.display.layout is Layout.SINGLE
    assert "layout 'grid' is not \"single\" or \"three\"; showing the single view" \
        in capfd.readouterr().err


def test_answering_by_keyboard_saves_three_rows_and_enables_next(qtbot, study_dir):
    """A, B, C answer the highlighted question and move on; each answer is a committed row;
    Next stays disabled until all three are answered."""
    window = open_window(qtbot, study_dir)
    case_id = window.session.store.case_order[0]
    assert window.panel.case_label.text() == "Case 1 of 3"
    assert not window.panel.next_button.isEnabled()
    press(qtbot, window, Qt.Key.Key_A)
    assert saved_rows(study_dir) == [(case_id, "realistic_appearance", "A")]
    assert window.panel.questions.current == 1
    press(qtbot, window, Qt.Key.Key_B, Qt.Key.Key_Return)
    assert not window.panel.next_button.isEnabled() and window.session.index == 0
    assert "every question" in window.panel.status.text()
    press(qtbot, window, Qt.Key.Key_C)
    assert saved_rows(study_dir) == sorted([(case_id, "realistic_appearance", "A"),
                                            (case_id, "slice_consistency", "B"),
                                            (case_id, "anatomical_correctness", "C")])
    assert checked_letters(window) == ["A", "B", "C"]
    assert window.panel.next_button.isEnabled() and window.panel.progress.value() == 1
    press(qtbot, window, Qt.Key.Key_Return)
    assert window.panel.case_label.text() == "Case 2 of 3" and checked_letters(window) == [None] * 3


def test_tab_moves_the_highlighted_question(qtbot, study_dir):
    """Tab and Shift+Tab choose which question the answer keys go to."""
    window = open_window(qtbot, study_dir)
    press(qtbot, window, Qt.Key.Key_Tab, Qt.Key.Key_Tab)
    assert window.panel.questions.current == 2
    press(qtbot, window, Qt.Key.Key_D)
    assert window.session.answers == {"anatomical_correctness": "D"}
    assert window.panel.questions.current == 0  # on to the first question still unanswered
    press(qtbot, window, Qt.Key.Key_Backtab)
    assert window.panel.questions.current == 2


def test_previous_then_change_an_answer_with_the_mouse(qtbot, study_dir):
    """P goes back with the saved answers shown; clicking another option replaces the answer."""
    window = open_window(qtbot, study_dir)
    first = window.session.store.case_order[0]
    press(qtbot, window, Qt.Key.Key_A, Qt.Key.Key_B, Qt.Key.Key_C, Qt.Key.Key_N)
    qtbot.waitUntil(lambda: window.viewer.display.has_volume)
    press(qtbot, window, Qt.Key.Key_P)
    assert window.panel.case_label.text() == "Case 1 of 3"
    assert checked_letters(window) == ["A", "B", "C"]
    option_d = [b for b in window.panel.questions.groups[1].buttons()
                if b.property("letter") == "D"]
    qtbot.mouseClick(option_d[0], Qt.MouseButton.LeftButton)
    assert (first, "slice_consistency", "D") in saved_rows(study_dir)
    assert checked_letters(window) == ["A", "D", "C"]


def test_close_and_reopen_resumes_at_the_first_unrated_case(qtbot, study_dir):
    """After case 1 and one answer of case 2, reopening shows case 2 with that answer."""
    window = open_window(qtbot, study_dir)
    press(qtbot, window, Qt.Key.Key_A, Qt.Key.Key_B, Qt.Key.Key_C, Qt.Key.Key_Return)
    press(qtbot, window, Qt.Key.Key_D)
    window.close()
    again = open_window(qtbot, study_dir)
    assert again.panel.case_label.text() == "Case 2 of 3"
    assert checked_letters(again) == ["D", None, None]
    assert again.panel.questions.current == 1  # the first unanswered question is highlighted
    assert again.panel.progress.value() == 1


def test_the_last_case_leads_to_the_closing_screen(qtbot, study_dir):
    """Finishing all cases shows the thank-you page; reopening shows it again."""
    window = open_window(qtbot, study_dir)
    for _ in range(3):
        qtbot.waitUntil(lambda: window.viewer.display.has_volume)
        press(qtbot, window, Qt.Key.Key_C, Qt.Key.Key_C, Qt.Key.Key_C, Qt.Key.Key_Return)
    assert window.pages.currentIndex() == 1
    assert any(label.text() == COMPLETE_TEXT for label in window.findChildren(QLabel))
    window.close()
    assert open_window(qtbot, study_dir).pages.currentIndex() == 1


def test_turing_questions_are_answered_with_numbers(qtbot, turing_study_dir):
    """In a Turing study, 1/2 answer real/synthetic (R resets the view) and 1-4 the confidence."""
    window = open_window(qtbot, turing_study_dir)
    press(qtbot, window, Qt.Key.Key_C, Qt.Key.Key_C, Qt.Key.Key_C, Qt.Key.Key_R)
    assert "real_or_synthetic" not in window.session.answers
    press(qtbot, window, Qt.Key.Key_2, Qt.Key.Key_3)
    answers = window.session.answers
    assert answers["real_or_synthetic"] == "S" and answers["confidence"] == "3"
    assert window.panel.next_button.isEnabled()


def visible_texts(window: QWidget) -> list[str]:
    """Every text a reader could see or hear: labels, buttons, titles, tooltips, names."""
    texts = []
    for widget in [window, *window.findChildren(QWidget)]:
        for getter in ("text", "toolTip", "windowTitle", "accessibleName", "accessibleDescription",
                       "statusTip", "whatsThis", "informativeText", "detailedText",
                       "placeholderText", "title", "format"):
            value = getattr(widget, getter, None)
            if callable(value):
                try:
                    texts.append(str(value()))
                except TypeError:
                    continue
    return texts


def test_no_widget_shows_a_case_id_or_file_name(qtbot, study_dir):
    """Walk every widget in several states: no case id, file name or folder appears anywhere."""
    study = Study.open(study_dir)
    secrets = [*study.case_ids, ".nii", "cases/", str(study_dir)]
    window = open_window(qtbot, study_dir)
    states = [visible_texts(window)]
    press(qtbot, window, Qt.Key.Key_A, Qt.Key.Key_B, Qt.Key.Key_C, Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: window.viewer.display.has_volume)
    press(qtbot, window, Qt.Key.Key_V)
    states.append(visible_texts(window))
    texts = [t for state in states for t in state]
    assert any("Case 2 of 3" in t for t in texts)  # the walk does see the labels
    for text in texts:
        for secret in secrets:
            assert secret not in text, f"{secret!r} shown in {text!r}"
    for button in window.findChildren(QAbstractButton):
        assert button.toolTip() == ""


def test_unreadable_case_names_the_case_number_only_and_logs_the_file(qtbot, study_dir, capfd):
    """A damaged file gives "Case 1 could not be read"; file and error go to log.txt and stderr;
    the reader can go on to the next case."""
    study = Study.open(study_dir)
    with RatingStore.open(study, "ann") as store:
        broken = study.case_path(store.case_order[0])
    broken.write_bytes(b"this is not a NIfTI file")
    window = open_window(qtbot, study_dir)
    qtbot.waitUntil(lambda: bool(window.findChildren(QMessageBox)))
    box = window.findChildren(QMessageBox)[0]
    assert box.text() == "Case 1 could not be read."
    for text in visible_texts(window):
        assert broken.name not in text and broken.stem.split(".")[0] not in text
    assert broken.name in (study_dir / "log.txt").read_text()
    assert broken.name in capfd.readouterr().err
    assert not window.panel.questions.isEnabled() and window.panel.next_button.isEnabled()
    box.close()
    press(qtbot, window, Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: window.viewer.display.has_volume)
    assert window.panel.case_label.text() == "Case 2 of 3" and window.panel.questions.isEnabled()


def open_active_window(qtbot, folder: Path, clock) -> tuple[ReaderWindow, ReadingSession]:
    """A shown, active reading window for reader ann whose session runs on `clock`."""
    study = Study.open(folder)
    session = ReadingSession(study, RatingStore.open(study, "ann"), clock=clock)
    window = ReaderWindow(session, study.title, study.modality, study.viewer)
    qtbot.addWidget(window)
    window.show()
    window.activateWindow()
    qtbot.waitUntil(window.isActiveWindow)
    return window, session


def test_time_counts_only_while_the_window_is_active(qtbot, study_dir, clock):
    """The window tells the session when it is activated and deactivated."""
    window, session = open_active_window(qtbot, study_dir, clock)
    clock.advance(12)
    assert session.seconds_on_current() == pytest.approx(12)
    other = QWidget()
    qtbot.addWidget(other)
    other.show()
    other.activateWindow()
    qtbot.waitUntil(lambda: not window.isActiveWindow())
    clock.advance(100)
    assert session.seconds_on_current() == pytest.approx(12)


def test_a_study_made_by_create_study_displays_its_cases(qtbot, tmp_path, nifti_tools):
    """End to end with the studies package: the window shows the case file's canonical array."""
    case_volume, canonical_affine, spacing = nifti_tools
    for source in ("real", "synthetic"):
        for seed in range(2):
            volume = Volume(case_volume(seed + (10 if source == "real" else 0)), spacing,
                            canonical_affine(spacing), "CT")
            write_nifti(volume, tmp_path / source / f"scan{seed}.nii.gz")
    made = create_study(tmp_path / "made", real=tmp_path / "real",
                        synthetic=tmp_path / "synthetic", modality="CT", seed=0,
                        title="Made study")
    window = open_window(qtbot, made.folder)
    shown = window.viewer.display.volume
    expected = read_volume(window.session.case_path(0)).array
    np.testing.assert_array_equal(shown, expected)
    assert window.panel.case_label.text() == "Case 1 of 4"
    assert window.viewer.display.window.width == 400  # the study's soft-tissue window


def test_slice_steps_keep_python_reference_counts_balanced(qtbot, study_dir):
    """Hundreds of steps and window changes must not over-release None or True: PySide6 6.12
    did on Python 3.11, and the interpreter aborted in the middle of a study."""
    window = open_window(qtbot, study_dir)
    gc.collect()
    before = sys.getrefcount(None), sys.getrefcount(True)
    for _ in range(150):
        press(qtbot, window, Qt.Key.Key_Down, Qt.Key.Key_Up, Qt.Key.Key_F2, Qt.Key.Key_R)
        window.viewer.graphics.viewport().repaint()
    gc.collect()
    after = sys.getrefcount(None), sys.getrefcount(True)
    assert after[0] > before[0] - 100 and after[1] > before[1] - 100


def test_a_missing_case_file_is_a_case_that_could_not_be_read(qtbot, study_dir, capfd):
    """A deleted case file does not lock the reader out of the study: the other cases open, and
    reaching the missing one says "Case 2 could not be read"; its file name goes only to
    log.txt and stderr."""
    study = Study.open(study_dir)
    with RatingStore.open(study, "ann") as store:
        missing = study.case_path(store.case_order[1])
    missing.unlink()
    opened = open_study_for_reading(study_dir)
    assert missing.name in capfd.readouterr().err
    assert missing.name in (study_dir / "log.txt").read_text()
    session = ReadingSession(opened, RatingStore.open(opened, "ann"))
    window = ReaderWindow(session, opened.title, opened.modality, opened.viewer)
    qtbot.addWidget(window)
    window.show()
    qtbot.waitUntil(lambda: window.viewer.display.has_volume)
    press(qtbot, window, Qt.Key.Key_A, Qt.Key.Key_B, Qt.Key.Key_C, Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: bool(window.findChildren(QMessageBox)))
    assert window.findChildren(QMessageBox)[0].text() == "Case 2 could not be read."
    for text in visible_texts(window):
        assert missing.name.split(".")[0] not in text
    assert window.panel.next_button.isEnabled() and not window.panel.questions.isEnabled()


def test_a_study_with_a_broken_manifest_is_still_refused(study_dir):
    """Only missing case files are tolerated: a manifest that is not a study still fails."""
    (study_dir / "study.json").write_text("{}", encoding="utf-8")
    with pytest.raises(StudyError, match="study.json"):
        open_study_for_reading(study_dir)


def test_back_from_the_closing_screen_to_change_the_last_answer(qtbot, study_dir):
    """After Finish, P (or the button) returns to the last case with its answers, and a changed
    answer is saved; Next leads to the closing screen again."""
    window = open_window(qtbot, study_dir)
    last = window.session.store.case_order[-1]
    for _ in range(3):
        qtbot.waitUntil(lambda: window.viewer.display.has_volume)
        press(qtbot, window, Qt.Key.Key_B, Qt.Key.Key_B, Qt.Key.Key_B, Qt.Key.Key_Return)
    assert window.pages.currentIndex() == 1
    press(qtbot, window, Qt.Key.Key_P)
    assert window.pages.currentIndex() == 0 and window.panel.case_label.text() == "Case 3 of 3"
    qtbot.waitUntil(lambda: window.viewer.display.has_volume)
    assert checked_letters(window) == ["B", "B", "B"]
    press(qtbot, window, Qt.Key.Key_D)
    assert (last, "realistic_appearance", "D") in saved_rows(study_dir)
    press(qtbot, window, Qt.Key.Key_Return)
    assert window.pages.currentIndex() == 1
    back = next(b for b in window.findChildren(QPushButton) if "Back to the last" in b.text())
    qtbot.mouseClick(back, Qt.MouseButton.LeftButton)
    assert window.panel.case_label.text() == "Case 3 of 3"


def test_right_click_on_the_image_opens_no_pyqtgraph_menu(qtbot, study_dir):
    """No context menu (pyqtgraph's view or export menus) appears on a right click."""
    window = open_window(qtbot, study_dir)
    viewport = window.viewer.graphics.viewport()
    qtbot.mouseClick(viewport, Qt.MouseButton.RightButton, pos=viewport.rect().center())
    QApplication.processEvents()
    assert not [menu for menu in QApplication.topLevelWidgets()
                if isinstance(menu, QMenu) and menu.isVisible()]


_OPENED: list[str] | None = None


def _record_open(event: str, args: tuple) -> None:
    """An audit hook: the paths opened while a test records them."""
    if _OPENED is not None and event == "open" and isinstance(args[0], str | bytes | Path):
        _OPENED.append(str(args[0]))


def test_the_key_is_never_read(qtbot, created_study):
    """Rating a whole study (open, every case, the closing screen) opens no file of the key."""
    global _OPENED
    sys.addaudithook(_record_open)  # audit hooks cannot be removed: it records only below
    _OPENED = []
    try:
        window = open_window(qtbot, created_study.folder)
        for _ in range(window.session.case_count):
            qtbot.waitUntil(lambda: window.viewer.display.has_volume)
            press(qtbot, window, Qt.Key.Key_C, Qt.Key.Key_C, Qt.Key.Key_C, Qt.Key.Key_Return)
        assert window.pages.currentIndex() == 1
        window.close()
        opened = list(_OPENED)
    finally:
        _OPENED = None
    assert any(path.endswith(".nii") for path in opened)  # the hook does see the reads
    key = created_study.key_path
    assert key.is_file()
    assert not [path for path in opened if Path(path).name.startswith(key.name)]


def test_going_back_to_an_unreadable_case_shows_no_other_image(qtbot, study_dir):
    """Previous onto a case found unreadable shows its message, never the last case's image."""
    study = Study.open(study_dir)
    with RatingStore.open(study, "ann") as store:
        study.case_path(store.case_order[0]).write_bytes(b"not a NIfTI file")
    window = open_window(qtbot, study_dir)
    qtbot.waitUntil(lambda: bool(window.findChildren(QMessageBox)))
    window.findChildren(QMessageBox)[0].close()
    press(qtbot, window, Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: window.viewer.display.has_volume)
    press(qtbot, window, Qt.Key.Key_P)
    qtbot.waitUntil(lambda: not window.viewer.display.has_volume
                    and window.viewer._message.isVisible())
    assert window.viewer._message.text() == "This case could not be read."
    assert window.viewer.image_item.image is None


def test_no_answer_before_the_case_is_on_screen(qtbot, study_dir):
    """While a case is still loading, the questions are disabled and answer keys save nothing."""
    import threading

    from reader_app.model.loader import CaseCache, read_case

    release = threading.Event()

    def slow_read(path):
        release.wait(10)
        return read_case(path)

    study = Study.open(study_dir)
    session = ReadingSession(study, RatingStore.open(study, "ann"))
    window = ReaderWindow(session, study.title, study.modality, study.viewer,
                          cache=CaseCache(slow_read))
    qtbot.addWidget(window)
    window.show()
    qtbot.waitExposed(window)
    assert not window.viewer.display.has_volume
    assert not window.panel.questions.isEnabled()
    qtbot.keyClick(window, Qt.Key.Key_A)
    assert session.answers == {}
    assert saved_rows(study_dir) == []
    release.set()
    qtbot.waitUntil(lambda: window.viewer.display.has_volume)
    assert window.panel.questions.isEnabled()
    qtbot.keyClick(window, Qt.Key.Key_A)
    assert len(saved_rows(study_dir)) == 1


def test_a_window_nobody_holds_is_freed_at_once_not_by_a_later_garbage_collection(qapp,
                                                                                  study_dir):
    """The suite's intermittent crash: a window with a notice open, once its last reference
    went, lived on in a reference cycle with its session until the cyclic garbage collector
    freed it, at whichever allocation set it off, including one in the middle of Qt delivering
    that window an event, or one in the loader thread. Without the cycle it goes at once."""
    import weakref

    study = Study.open(study_dir)
    with RatingStore.open(study, "ann") as store:
        study.case_path(store.case_order[0]).write_bytes(b"not a NIfTI file")
    gc.collect()
    gc.disable()
    try:
        session = ReadingSession(study, RatingStore.open(study, "ann"))
        window = ReaderWindow(session, study.title, study.modality, study.viewer)
        window.show()
        assert window.wait_for_case()
        QApplication.processEvents()  # the pending focus timer, which holds the window, fires
        assert window.findChildren(QMessageBox)  # the "could not be read" notice is open
        parts = [weakref.ref(part) for part in (window, window.viewer, window.viewer.display,
                                                window.panel.questions, session)]
        session.close()
        del window, session
        assert [part() for part in parts] == [None] * len(parts)
    finally:
        gc.enable()


# --- the reading workstation: practice, comment and flag, review ------------------------------

def wait_shown(qtbot, window: ReaderWindow) -> None:
    """Until the current case is on screen."""
    qtbot.waitUntil(lambda: window.viewer.display.has_volume)


def all_visible_texts(window: ReaderWindow) -> str:
    """Every visible label's text, in one string."""
    return "\n".join(label.text() for label in window.findChildren(QLabel)
                     if label.isVisibleTo(window))


def test_practice_comes_first_with_its_truth_only_once_answered(qtbot, make_practice_study):
    """"Practice 1 of 2" opens the study; the banner with the truth is absent until the last
    question is answered, then shows it; study cases ("Case 1 of 4") never show one, and the
    progress bar never counts a practice case."""
    folder = make_practice_study()
    truth = Study.open(folder).practice
    window = open_window(qtbot, folder)
    panel = window.panel
    assert panel.case_label.text() == "Practice 1 of 2" and panel.practice_note.isVisible()
    assert panel.progress.maximum() == 4 and panel.progress.value() == 0
    press(qtbot, window, Qt.Key.Key_A, Qt.Key.Key_B)
    assert not panel.feedback.isVisible()
    assert "This practice case was" not in all_visible_texts(window)
    press(qtbot, window, Qt.Key.Key_C)
    assert panel.feedback.isVisible()
    assert panel.feedback.text() == f"This practice case was {truth['P01']}."
    assert panel.progress.value() == 0
    press(qtbot, window, Qt.Key.Key_Return)
    wait_shown(qtbot, window)
    assert panel.case_label.text() == "Practice 2 of 2" and not panel.feedback.isVisible()
    assert "This practice case was" not in all_visible_texts(window)
    press(qtbot, window, Qt.Key.Key_D, Qt.Key.Key_D, Qt.Key.Key_D)
    assert panel.feedback.text() == f"This practice case was {truth['P02']}."
    press(qtbot, window, Qt.Key.Key_Return)
    wait_shown(qtbot, window)
    assert panel.case_label.text() == "Case 1 of 4" and not panel.practice_note.isVisible()
    press(qtbot, window, Qt.Key.Key_B, Qt.Key.Key_B, Qt.Key.Key_B)
    assert panel.progress.value() == 1 and panel.next_button.isEnabled()
    assert not panel.feedback.isVisible()
    texts = all_visible_texts(window)
    assert "This practice case was" not in texts and "real" not in texts.replace(
        "realistic", "").replace("Realistic", "")
    window.close()
    again = open_window(qtbot, folder)
    assert again.panel.case_label.text() == "Case 2 of 4" and again.panel.progress.value() == 1


def test_typing_a_comment_answers_nothing_and_escape_gives_the_keys_back(qtbot, study_dir):
    """Letters typed in the comment box are text, not answers; Escape (or a click on the image)
    returns the keys to the window, where A answers again. Focus is read as the window's focus
    widget: an offscreen window on a loaded machine need not be the active one, and then no
    widget has focus."""
    window = open_window(qtbot, study_dir)
    box = window.panel.notes.comment
    qtbot.mouseClick(box.viewport(), Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: window.focusWidget() is box)
    qtbot.keyClicks(box, "a bc R N p")
    assert box.toPlainText() == "a bc R N p" and window.session.answers == {}
    assert window.viewer.display.window.width == 400 and window.session.index == 0
    qtbot.keyClick(box, Qt.Key.Key_Escape)
    assert window.focusWidget() is not box
    assert window.session.store.note(window.session.store.case_order[0]).comment == "a bc R N p"
    press(qtbot, window, Qt.Key.Key_A)
    assert window.session.answers == {"realistic_appearance": "A"}
    qtbot.mouseClick(box.viewport(), Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: window.focusWidget() is box)
    viewport = window.viewer.graphics.viewport()
    qtbot.mouseClick(viewport, Qt.MouseButton.LeftButton, pos=viewport.rect().center())
    assert window.focusWidget() is not box


def test_comment_and_flag_survive_close_and_reopen_and_the_flag_enables_next(qtbot, study_dir):
    """The flag box makes Next available (the case is done) without an answer; the flag and the
    comment typed just before closing come back when the reader reopens the case."""
    window = open_window(qtbot, study_dir)
    first = window.session.store.case_order[0]
    assert not window.panel.next_button.isEnabled()
    qtbot.mouseClick(window.panel.notes.flag, Qt.MouseButton.LeftButton)
    assert window.panel.notes.flag.isChecked() and window.panel.next_button.isEnabled()
    assert window.panel.progress.value() == 1
    box = window.panel.notes.comment
    qtbot.mouseClick(box.viewport(), Qt.MouseButton.LeftButton)
    qtbot.keyClicks(box, "wrap-around artefact")
    window.close()  # within the typing pause: the close saves it
    with RatingStore.open(Study.open(study_dir), "ann") as store:
        assert store.note(first).comment == "wrap-around artefact"
        assert store.note(first).not_assessable and store.answers(first) == {}
    again = open_window(qtbot, study_dir)
    assert again.panel.case_label.text() == "Case 2 of 3"  # the flagged case is done
    press(qtbot, again, Qt.Key.Key_P)
    assert again.panel.notes.flag.isChecked()
    assert again.panel.notes.comment.toPlainText() == "wrap-around artefact"
    assert again.panel.next_button.isEnabled()


def test_a_pause_in_typing_saves_the_comment(qtbot, study_dir):
    """The comment is saved after a pause in typing, with the window still open."""
    window = open_window(qtbot, study_dir)
    first = window.session.store.case_order[0]
    box = window.panel.notes.comment
    qtbot.mouseClick(box.viewport(), Qt.MouseButton.LeftButton)
    qtbot.keyClicks(box, "faint")
    qtbot.waitUntil(lambda: window.session.store.note(first).comment == "faint", timeout=3000)
    # Saving does not take the box away from the reader (the window's focus widget: on a loaded
    # machine the offscreen window may not be the active one, and then nothing "has" focus).
    assert window.focusWidget() is box


def test_the_review_key_lists_every_answered_case_and_a_row_opens_it(qtbot, make_practice_study):
    """O shows the reader's own cases (practice marked) with answers, flag, comment and time;
    a click on a row opens that case; Escape goes back to the case the reader was on."""
    window = open_window(qtbot, make_practice_study())
    press(qtbot, window, Qt.Key.Key_A, Qt.Key.Key_B, Qt.Key.Key_C, Qt.Key.Key_Return)
    wait_shown(qtbot, window)
    qtbot.mouseClick(window.panel.notes.flag, Qt.MouseButton.LeftButton)
    press(qtbot, window, Qt.Key.Key_Return)
    wait_shown(qtbot, window)
    press(qtbot, window, Qt.Key.Key_D, Qt.Key.Key_C, Qt.Key.Key_B, Qt.Key.Key_Return)
    wait_shown(qtbot, window)
    press(qtbot, window, Qt.Key.Key_A)  # case 2: one answer so far
    press(qtbot, window, Qt.Key.Key_O)
    review = window.review
    assert window.pages.currentIndex() == 1 and review.title.text() == "Your cases so far"
    table = review.table
    cells = [[table.item(r, c).text() for c in range(table.columnCount())]
             for r in range(table.rowCount())]
    assert [row[:6] for row in cells] == [
        ["Practice 1", "A", "B", "C", "", ""], ["Practice 2", "", "", "", "yes", ""],
        ["Case 1", "D", "C", "B", "", ""], ["Case 2", "A", "", "", "", ""]]
    assert all(row[6].endswith(" s") for row in cells)
    assert table.item(0, 0).background().color() != table.item(2, 0).background().color()
    press(qtbot, window, Qt.Key.Key_Escape)
    assert window.pages.currentIndex() == 0 and window.panel.case_label.text() == "Case 2 of 4"
    press(qtbot, window, Qt.Key.Key_O)
    rect = table.visualItemRect(table.item(1, 0))
    qtbot.mouseClick(table.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
    assert window.pages.currentIndex() == 0 and window.panel.case_label.text() == "Practice 2 of 2"
    assert window.panel.notes.flag.isChecked()
    press(qtbot, window, Qt.Key.Key_O, Qt.Key.Key_End, Qt.Key.Key_Up, Qt.Key.Key_Return)
    assert window.panel.case_label.text() == "Case 1 of 4"
    wait_shown(qtbot, window)
    assert checked_letters(window) == ["D", "C", "B"]


def test_the_end_of_the_study_is_the_review_and_a_change_keeps_its_history(qtbot, study_dir):
    """After the last case the review lists every case under the closing title; a case opened
    from it and changed is stored with both answers in its history, and the review marks it."""
    window = open_window(qtbot, study_dir)
    for _ in range(3):
        wait_shown(qtbot, window)
        press(qtbot, window, Qt.Key.Key_B, Qt.Key.Key_B, Qt.Key.Key_B, Qt.Key.Key_Return)
    review = window.review
    assert window.pages.currentIndex() == 1 and review.title.text() == COMPLETE_TEXT
    assert review.table.rowCount() == 3 and review.close_button.isVisible()
    assert [review.table.item(r, 0).text() for r in range(3)] == ["Case 1", "Case 2", "Case 3"]
    press(qtbot, window, Qt.Key.Key_Down, Qt.Key.Key_Down, Qt.Key.Key_Return)
    assert window.panel.case_label.text() == "Case 2 of 3"
    wait_shown(qtbot, window)
    second = window.session.store.case_order[1]
    press(qtbot, window, Qt.Key.Key_D)
    history = [c for c in window.session.store.history(second) if c.item ==
               "realistic_appearance"]
    assert [c.value for c in history] == ["B", "D"] and history[0].changed_at
    assert window.session.store.answers(second)["realistic_appearance"] == "D"
    press(qtbot, window, Qt.Key.Key_O)
    changed = [review.table.item(r, review.table.columnCount() - 3).text() for r in range(3)]
    assert changed == ["", "yes", ""]


def test_final_answers_are_read_only_and_a_change_is_refused_in_one_sentence(
        qtbot, make_practice_study):
    """With `answers_editable: false`, a done case comes back with its controls disabled and a
    note saying why; an answer key changes nothing and says so in one sentence."""
    folder = make_practice_study(answers_editable=False)
    window = open_window(qtbot, folder)
    press(qtbot, window, Qt.Key.Key_A, Qt.Key.Key_B)
    assert window.panel.questions.isEnabled() and not window.panel.final_note.isVisible()
    press(qtbot, window, Qt.Key.Key_C)
    assert not window.panel.questions.isEnabled() and not window.panel.notes.flag.isEnabled()
    assert window.panel.final_note.isVisible() and window.panel.notes.comment.isEnabled()
    press(qtbot, window, Qt.Key.Key_Return)
    wait_shown(qtbot, window)
    press(qtbot, window, Qt.Key.Key_P)
    wait_shown(qtbot, window)
    assert window.panel.final_note.isVisible() and checked_letters(window) == ["A", "B", "C"]
    press(qtbot, window, Qt.Key.Key_Tab, Qt.Key.Key_D)
    assert window.panel.status.text() == FINAL_REFUSED
    assert checked_letters(window) == ["A", "B", "C"]
    assert window.session.store.answers("P01") == {"realistic_appearance": "A",
                                                    "slice_consistency": "B",
                                                    "anatomical_correctness": "C"}
    assert len(window.session.store.history("P01")) == 3
    press(qtbot, window, Qt.Key.Key_O)
    assert "final" in window.review.note.text()


def test_the_review_and_the_practice_banner_show_no_case_id(qtbot, make_practice_study):
    """The review's cells and tooltips, and every widget text, name cases only by number."""
    folder = make_practice_study()
    study = Study.open(folder)
    secrets = [*study.case_ids, *study.practice_ids, ".nii", str(folder)]
    window = open_window(qtbot, folder)
    texts: list[str] = []
    for _ in range(3):
        wait_shown(qtbot, window)
        press(qtbot, window, Qt.Key.Key_A, Qt.Key.Key_B, Qt.Key.Key_C)
        texts += visible_texts(window)
        press(qtbot, window, Qt.Key.Key_Return)
    press(qtbot, window, Qt.Key.Key_O)
    table = window.review.table
    texts += visible_texts(window)
    texts += [table.item(r, c).text() + table.item(r, c).toolTip()
              for r in range(table.rowCount()) for c in range(table.columnCount())]
    assert table.rowCount() == 3 and any("Practice 1" in t for t in texts)
    for text in texts:
        for secret in secrets:
            assert secret not in text, f"{secret!r} shown in {text!r}"


def test_time_stops_on_the_review_and_counts_again_back_on_a_case(qtbot, study_dir, clock):
    """The review is not reading: time on the case pauses while it is open, and runs again on
    the way back to a case, from the O key and from the study's end alike."""
    window, session = open_active_window(qtbot, study_dir, clock)
    wait_shown(qtbot, window)
    clock.advance(5)
    press(qtbot, window, Qt.Key.Key_O)
    clock.advance(100)
    press(qtbot, window, Qt.Key.Key_Escape)
    clock.advance(2)
    assert session.seconds_on_current() == pytest.approx(7)
    for _ in range(3):
        wait_shown(qtbot, window)
        press(qtbot, window, Qt.Key.Key_A, Qt.Key.Key_A, Qt.Key.Key_A, Qt.Key.Key_Return)
    assert window.pages.currentIndex() == 1
    clock.advance(50)
    press(qtbot, window, Qt.Key.Key_P)
    clock.advance(3)
    assert session.seconds_on_current() == pytest.approx(3)
