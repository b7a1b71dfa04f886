"""The reader's main window: the slice view on the left (in a paired study the pair view, two
linked slice views side by side), the case's questions, flag and comment on the right; the review
list (also the end of the study) on a page of its own.

The window renders the `ReadingSession` and forwards input to it; it shows nothing that could
unblind a reader (no file names, case ids, headers or histograms). The only truth it ever shows
is a practice case's, once that case is done.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from concurrent.futures import Future

from PySide6.QtCore import QEvent, Qt, QTimer
from PySide6.QtGui import QKeyEvent
from PySide6.QtWidgets import (
    QHBoxLayout,
    QMainWindow,
    QMessageBox,
    QStackedWidget,
    QVBoxLayout,
    QWidget,
)

from reader_app import APP_TITLE, DEFAULT_SIZE
from reader_app.model.events import Event
from reader_app.model.keymap import option_for_key
from reader_app.model.loader import CaseCache, CaseImage, read_case
from reader_app.model.prefetch import prefetch_plan
from reader_app.model.review import review_rows
from reader_app.model.session import SIDE_CALL, ReadingSession
from reader_app.model.windowing import Layout, study_layout, study_percentiles, study_window
from reader_app.widgets.case_panel import CasePanel
from reader_app.widgets.commands import QT_BINDINGS, QT_PAIR_BINDINGS, run_command
from reader_app.widgets.pair_view import PairView
from reader_app.widgets.review_page import ReviewPage
from reader_app.widgets.slice_view import SliceView
from studies.ratings import RatingStoreError
from studies.trials import LETTER_SIDES

LOAD_POLL_MS = 10
UNREADABLE_TEXT = "This case could not be read."
READING_PAGE, REVIEW_PAGE = 0, 1
# Failures of the ratings database that must reach the reader instead of crashing the app.
SAVE_ERRORS = (RatingStoreError, OSError)


def _layout_or_single(viewer_defaults: dict) -> Layout:
    """The study's layout; a value the app does not know is reported on stderr, for the study's
    administrator, and the reader gets the single view rather than no study at all."""
    try:
        return study_layout(viewer_defaults)
    except ValueError as err:
        print(f"mdiff-reader: {err}; showing the single view.", file=sys.stderr)
        return Layout.SINGLE


class ReaderWindow(QMainWindow):
    """The blinded reading window over one `ReadingSession`."""

    def __init__(self, session: ReadingSession, title: str, modality: str,
                 viewer_defaults: dict | None = None, cache: CaseCache | None = None) -> None:
        super().__init__()
        self.session = session
        viewer_defaults = viewer_defaults or {}
        percentiles = study_percentiles(viewer_defaults)
        self.cache = cache or CaseCache(lambda path: read_case(path, percentiles))
        self._closed = False
        self._shown: Future | None = None  # the loaded case on screen
        self._reviewing = False  # the review list is open over a case (not the study's end)
        self.setWindowTitle(f"{APP_TITLE} — {title}")
        self.resize(*DEFAULT_SIZE)
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        # Qt deletes the window after close, in the event loop: never the garbage collector,
        # which could tear pyqtgraph's items down in an order that crashes.
        self.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)

        # A paired study shows its trials' two members side by side, with its own keys.
        viewer_type = PairView if session.paired else SliceView
        self.viewer = viewer_type(modality, study_window(viewer_defaults),
                                  _layout_or_single(viewer_defaults))
        self._bindings = QT_PAIR_BINDINGS if session.paired else QT_BINDINGS
        self.panel = CasePanel(session, modality)
        self.review = ReviewPage(session.questions, unit=session.unit)
        reading = QWidget()
        layout = QHBoxLayout(reading)
        layout.setContentsMargins(8, 8, 8, 8)
        image_column = QVBoxLayout()
        image_column.setSpacing(4)
        image_column.addWidget(self.viewer, 1)
        image_column.addWidget(self.panel.help)
        layout.addLayout(image_column, 1)
        layout.addWidget(self.panel)
        self.pages = QStackedWidget()
        self.pages.addWidget(reading)
        self.pages.addWidget(self.review)
        self.setCentralWidget(self.pages)
        # The loader thread never touches Qt: the GUI thread polls a pending read every few ms,
        # so every Qt call stays on one thread and a read finishing late cannot race a close.
        self._pending: tuple[int, Future] | None = None
        self._poll = QTimer(self)
        self._poll.setInterval(LOAD_POLL_MS)
        self._poll.timeout.connect(self._check_pending)
        self._connect_panels()
        for signal, slot in self._session_slots():
            signal.connect(slot)
        self._on_progress(session.done_count, session.case_count)
        self._on_case_changed(session.index)

    def _connect_panels(self) -> None:
        panel, review = self.panel, self.review
        panel.questions.answered.connect(self._on_clicked_answer)
        panel.notes.flag_changed.connect(self.set_not_assessable)
        panel.notes.comment_edited.connect(self._on_comment_edited)
        panel.notes.comment_settled.connect(self.save_comment)
        panel.notes.comment_left.connect(self.setFocus)
        panel.previous_button.clicked.connect(self.go_previous)
        panel.next_button.clicked.connect(self.go_next)
        review.row_chosen.connect(self.open_case)
        review.back_to_case.connect(self.close_review)
        review.back_to_last.connect(self.go_previous)
        review.close_requested.connect(self.close)

    def _session_slots(self) -> list[tuple[Event, Callable]]:
        """The session's events and the window's handlers, connected at the start and
        disconnected at close."""
        session = self.session
        return [(session.case_changed, self._on_case_changed),
                (session.answer_changed, self._on_answer_changed),
                (session.progress_changed, self._on_progress),
                (session.case_unreadable, self._on_case_unreadable),
                (session.note_changed, self._on_note_changed),
                (session.answer_refused, self._on_answer_refused)]

    # --- actions ---------------------------------------------------------------------------

    def answer(self, question_key: str, letter: str) -> None:
        """Save an answer through the session, telling the reader if it cannot be saved."""
        try:
            self.session.answer(question_key, letter)
        except SAVE_ERRORS as err:
            # Keep the panel showing what is really saved, not the click that failed.
            self.panel.questions.set_answers(self.session.answers)
            self._tell_not_saved("answer", err)

    def set_not_assessable(self, flagged: bool) -> None:
        """Flag the case "image cannot be assessed" (or take the flag back) through the
        session."""
        try:
            self.session.set_not_assessable(flagged)
        except SAVE_ERRORS as err:
            self.panel.notes.set_note(self.session.note)
            self._tell_not_saved("flag", err)

    def save_comment(self) -> bool:
        """Store the typed comment now; False (the reader told) when it could not be saved."""
        try:
            self.session.save_comment()
        except SAVE_ERRORS as err:
            self._tell_not_saved("comment", err)
            return False
        return True

    def go_next(self) -> None:
        """Next case, when this one is done (or could not be read)."""
        if self.session.can_go_next:
            if self.save_comment():
                self.session.next()
        elif not self.session.finished:
            self.panel.status.setText("Answer every question (or tick \"Image cannot be "
                                      f"assessed\") before going to the next {self.session.unit}.")

    def go_previous(self) -> None:
        """Back one case."""
        if self.session.can_go_previous and self.save_comment():
            self.session.previous()

    def open_case(self, index: int) -> None:
        """Show the case at session position `index` (a row chosen in the review)."""
        if self.save_comment():
            self._reviewing = False
            self.session.go_to(index)

    def show_review(self) -> None:
        """The review list of the reader's own cases, read-only, until a case is chosen or the
        reader goes back; time on the current case stops meanwhile."""
        if not self.save_comment():
            return
        session = self.session
        self._reviewing = not session.finished
        session.deactivate()
        self.review.show_rows(review_rows(session), finished=session.finished,
                              complete=session.all_done,
                              answers_final=not session.study.answers_editable)
        self.pages.setCurrentIndex(REVIEW_PAGE)
        self.setFocus()

    def close_review(self) -> None:
        """Back from the review to the case the reader was on."""
        if self._reviewing:
            self._reviewing = False
            self.pages.setCurrentIndex(READING_PAGE)
            self._resume_time()
            self.setFocus()

    def _resume_time(self) -> None:
        if self.isActiveWindow():
            self.session.activate()

    def _tell_not_saved(self, what: str, err: Exception) -> None:
        QMessageBox.critical(self, APP_TITLE, f"Your {what} could not be saved ({err}). "
                             "Please tell the study's administrator.")

    def wait_for_case(self, timeout_s: float = 30.0) -> bool:
        """Block until the current case is displayed (or failed); for screenshots and tests."""
        if self.session.finished or self._shown is not None or self.session.current_unreadable:
            return True
        future = self.cache.request_all(self.session.case_paths(self.session.index))
        try:
            future.exception(timeout=timeout_s)
        except TimeoutError:
            return False
        self._on_case_loaded(self.session.index, future)
        return True

    # --- keyboard --------------------------------------------------------------------------

    def event(self, event: QEvent) -> bool:
        """Tab and Shift+Tab move between questions instead of moving the keyboard focus."""
        if event.type() == QEvent.Type.KeyPress and event.key() in (Qt.Key.Key_Tab,
                                                                    Qt.Key.Key_Backtab):
            self.keyPressEvent(event)
            return True
        return super().event(event)

    def keyPressEvent(self, event: QKeyEvent) -> None:  # noqa: N802 (Qt naming)
        """The reading keys: `keymap.KEY_BINDINGS` carried out by `commands.COMMAND_TABLE`;
        the other keys answer the framed question."""
        if not self._handle_key(event):
            super().keyPressEvent(event)

    def _handle_key(self, event: QKeyEvent) -> bool:
        """Carry out a key; False when it does nothing here (held with Ctrl or Alt, a key the
        review list does not use, or no answer)."""
        modifiers = Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.AltModifier
        if event.modifiers() & modifiers:
            return False
        binding = self._bindings.get(event.key())
        on_review = self.pages.currentIndex() == REVIEW_PAGE
        if binding is None:
            return not on_review and self._answer_by_key(event.text())
        return run_command(self, binding, on_review)

    def _case_on_screen(self) -> bool:
        """Whether the current case is displayed and readable (answers count only then)."""
        return self._shown is not None and not self.session.current_unreadable

    def _answer_by_key(self, text: str) -> bool:
        if len(text) != 1 or not self._case_on_screen():
            return False
        questions = self.panel.questions
        question = questions.questions[questions.current]
        letter = option_for_key(question, text)
        if letter is None:
            return False
        self.answer_from_key(question.key, letter)
        return True

    def answer_from_key(self, question_key: str, letter: str) -> None:
        """A key's answer, once the case is on screen; the frame moves to the next unanswered
        question."""
        # A final case's panel is disabled, but its key still reaches the session, which says
        # in one sentence why nothing changes.
        if self._case_on_screen():
            self._on_clicked_answer(question_key, letter)

    # --- session events --------------------------------------------------------------------

    def _on_clicked_answer(self, question_key: str, letter: str) -> None:
        self.answer(question_key, letter)
        index = [q.key for q in self.panel.questions.questions].index(question_key)
        self._highlight_next_unanswered(index)

    def _highlight_next_unanswered(self, after: int) -> None:
        following = self.panel.questions.first_unanswered(self.session.answers, after)
        if following is not None:
            self.panel.questions.set_current(following)

    def _on_answer_changed(self, _key: str, _value: str) -> None:
        self.panel.questions.set_answers(self.session.answers)
        self.panel.status.setText("")
        self._update_controls()

    def _on_note_changed(self) -> None:
        self.panel.notes.set_note(self.session.note)
        self.panel.status.setText("")
        self._update_controls()

    def _on_answer_refused(self, sentence: str) -> None:
        self.panel.questions.set_answers(self.session.answers)
        self.panel.notes.set_note(self.session.note)
        self.panel.status.setText(sentence)

    def _on_comment_edited(self, text: str) -> None:
        if not self.session.finished and not self.session.current_unreadable:
            self.session.edit_comment(text)

    def _on_case_unreadable(self, _index: int) -> None:
        self._update_controls()

    def _on_progress(self, done: int, _total: int) -> None:
        self.panel.progress.setValue(done)

    def _on_case_changed(self, index: int) -> None:
        session = self.session
        if session.finished:
            self.cache.retain(path for i in prefetch_plan(index, session.position_count).keep
                              for path in session.case_paths(i))
            self.show_review()
            return
        self.pages.setCurrentIndex(READING_PAGE)
        self._resume_time()  # back from the review or the study's end: time counts again
        self.panel.show_case(session)
        if self.panel.notes.comment.hasFocus():
            self.setFocus()  # a new case starts with the reading keys
        self._update_controls()
        self._show_case(index)

    def _update_controls(self) -> None:
        session = self.session
        self.panel.show_controls(session, self._case_on_screen())
        if session.paired:
            side = session.answers.get(SIDE_CALL.key)
            self.viewer.show_answer(LETTER_SIDES.get(side), session.practice_truth)

    # --- loading ---------------------------------------------------------------------------

    def _show_case(self, index: int) -> None:
        """Display the case at `index`, from the cache when preloaded, and read ahead as
        `prefetch.prefetch_plan` says."""
        session = self.session
        plan = prefetch_plan(index, session.position_count)
        self.cache.retain(path for i in plan.keep for path in session.case_paths(i))
        future = self.cache.request_all(session.case_paths(index))
        for following in plan.preload:
            self.cache.request_all(session.case_paths(following))
        self._shown = None
        if future.done():
            self._pending = None
            self._on_case_loaded(index, future)
        else:
            self.viewer.clear("Loading…")
            self._pending = (index, future)
            self._poll.start()
        self._update_controls()

    def _check_pending(self) -> None:
        if self._pending is None:
            self._poll.stop()
            return
        index, future = self._pending
        if future.done():
            self._poll.stop()
            self._pending = None
            if not future.cancelled():
                self._on_case_loaded(index, future)

    def _on_case_loaded(self, index: int, future: Future) -> None:
        if (self._closed or index != self.session.index or self.session.finished
                or future is self._shown):
            return  # the reader has moved on meanwhile, or this case is on screen already
        error = future.exception()
        if error is None:
            images: tuple[CaseImage, ...] = future.result()
            self._shown = future
            self.viewer.show_images(images)
            self._update_controls()
            return
        if self.session.current_unreadable:
            # Back on a case already found unreadable: say so again, without another dialog.
            self.viewer.clear(UNREADABLE_TEXT)
            return
        names = ", ".join(path.name for path in self.session.case_paths(index))
        detail = f"{type(error).__name__}: {error}"
        print(f"mdiff-reader: {self.session.unit} {index + 1} ({names}) could not be read: "
              f"{detail}", file=sys.stderr)
        message = self.session.mark_unreadable(index, detail)
        self.viewer.clear(UNREADABLE_TEXT)
        box = QMessageBox(QMessageBox.Icon.Warning, APP_TITLE, message,
                          QMessageBox.StandardButton.Ok, self)
        # Non-blocking, so the reader (and a test) can carry on while it is open.
        box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        box.open()

    # --- window life -----------------------------------------------------------------------

    def changeEvent(self, event: QEvent) -> None:  # noqa: N802 (Qt naming)
        """Time on a case counts only while this window is the active one."""
        if event.type() == QEvent.Type.ActivationChange:
            if self.isActiveWindow():
                if self.pages.currentIndex() == READING_PAGE:
                    self.session.activate()
            else:
                self.session.deactivate()
        super().changeEvent(event)

    def showEvent(self, event) -> None:  # noqa: N802 (Qt naming)
        """Take the keyboard focus so the reading keys work at once."""
        super().showEvent(event)
        # With the window as context the timer dies with it: no call into a deleted window.
        QTimer.singleShot(0, self, self.setFocus)

    def closeEvent(self, event) -> None:  # noqa: N802 (Qt naming)
        """Save the time on the current case, release the reader's database and stop listening
        to the session."""
        if not self._closed:
            self._closed = True
            self._poll.stop()
            self.cache.shutdown()
            self.save_comment()  # tells the reader when it cannot be saved
            try:
                self.session.close()
            except SAVE_ERRORS:
                pass  # the comment's failure was told just above; the database is released
            for signal, slot in self._session_slots():
                signal.disconnect(slot)
        super().closeEvent(event)
