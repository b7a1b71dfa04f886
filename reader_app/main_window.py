"""The reader's main window: the slice view on the left, the case's questions on the right.

The window renders the `ReadingSession` and forwards input to it; it shows nothing that could
unblind a reader (no file names, case ids, headers or histograms).
"""

from __future__ import annotations

import sys
from concurrent.futures import Future

from PySide6.QtCore import QEvent, Qt, QTimer
from PySide6.QtGui import QKeyEvent
from PySide6.QtWidgets import (
    QFrame,
    QHBoxLayout,
    QLabel,
    QMainWindow,
    QMessageBox,
    QProgressBar,
    QPushButton,
    QScrollArea,
    QStackedWidget,
    QVBoxLayout,
    QWidget,
)

from reader_app import APP_TITLE
from reader_app.keymap import (
    FINISHED_COMMANDS,
    KEY_BINDINGS,
    Binding,
    Command,
    help_text,
    option_for_key,
)
from reader_app.loader import CaseCache, CaseImage, read_case
from reader_app.prefetch import prefetch_plan
from reader_app.questions_panel import QuestionsPanel
from reader_app.session import ReadingSession
from reader_app.viewer import SliceView
from reader_app.windowing import Layout, study_layout, study_percentiles, study_window
from studies.ratings import RatingStoreError

# `keymap.KEY_BINDINGS` by Qt key code.
_QT_BINDINGS: dict[int, Binding] = {getattr(Qt.Key, f"Key_{name}"): binding
                                     for name, binding in KEY_BINDINGS.items()}
DEFAULT_SIZE = (1400, 900)
LOAD_POLL_MS = 10
PANEL_WIDTH = 460
COMPLETE_TEXT = "Study complete — thank you"
UNREADABLE_TEXT = "This case could not be read."
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
        self.setWindowTitle(f"{APP_TITLE} — {title}")
        self.resize(*DEFAULT_SIZE)
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        # Qt deletes the window after close, in the event loop: never the garbage collector,
        # which could tear pyqtgraph's items down in an order that crashes.
        self.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)

        self.viewer = SliceView(modality, study_window(viewer_defaults),
                                _layout_or_single(viewer_defaults))
        self.questions = QuestionsPanel(session.questions)
        self.case_label = QLabel()
        self.case_label.setStyleSheet("font-size: 20px; font-weight: bold;")
        self.progress = QProgressBar()
        self.progress.setRange(0, session.case_count)
        self.progress.setFormat(f"%v of {session.case_count} cases rated")
        self.status = QLabel()
        self.status.setWordWrap(True)
        self.status.setStyleSheet("color: #c8a040;")
        self.previous_button = QPushButton("◀  Previous (P)")
        self.next_button = QPushButton("Next case (Enter)  ▶")
        for button in (self.previous_button, self.next_button):
            button.setFocusPolicy(Qt.FocusPolicy.NoFocus)
            button.setMinimumHeight(36)
        self.help = QLabel(help_text(modality))
        self.help.setWordWrap(True)
        self.help.setStyleSheet("color: #8a8a8a; font-size: 11px;")

        self.pages = QStackedWidget()
        self.pages.addWidget(self._reading_page())
        self.pages.addWidget(self._complete_page())
        self.setCentralWidget(self.pages)

        self.questions.answered.connect(self._on_clicked_answer)
        self.previous_button.clicked.connect(self.go_previous)
        self.next_button.clicked.connect(self.go_next)
        # The loader thread never touches Qt: the GUI thread polls a pending read every few ms,
        # so every Qt call stays on one thread and a read finishing late cannot race a close.
        self._pending: tuple[int, Future] | None = None
        self._poll = QTimer(self)
        self._poll.setInterval(LOAD_POLL_MS)
        self._poll.timeout.connect(self._check_pending)
        session.case_changed.connect(self._on_case_changed)
        session.answer_changed.connect(self._on_answer_changed)
        session.progress_changed.connect(self._on_progress)
        session.case_unreadable.connect(self._on_case_unreadable)
        self._on_progress(session.done_count, session.case_count)
        self._on_case_changed(session.index)

    # --- layout ----------------------------------------------------------------------------

    def _reading_page(self) -> QWidget:
        panel = QWidget()
        panel.setFixedWidth(PANEL_WIDTH)
        side = QVBoxLayout(panel)
        side.setContentsMargins(12, 4, 4, 4)
        side.setSpacing(10)
        side.addWidget(self.case_label)
        side.addWidget(self.progress)
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QFrame.Shape.NoFrame)
        scroll.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        holder = QWidget()
        holder_layout = QVBoxLayout(holder)
        holder_layout.setContentsMargins(0, 0, 6, 0)
        holder_layout.addWidget(self.questions)
        holder_layout.addStretch(1)
        scroll.setWidget(holder)
        side.addWidget(scroll, 1)
        side.addWidget(self.status)
        buttons = QHBoxLayout()
        buttons.addWidget(self.previous_button)
        buttons.addWidget(self.next_button, 1)
        side.addLayout(buttons)
        side.addWidget(self.help)

        page = QWidget()
        layout = QHBoxLayout(page)
        layout.setContentsMargins(8, 8, 8, 8)
        layout.addWidget(self.viewer, 1)
        layout.addWidget(panel)
        return page

    def _complete_page(self) -> QWidget:
        page = QWidget()
        layout = QVBoxLayout(page)
        layout.addStretch(1)
        title = QLabel(COMPLETE_TEXT)
        title.setAlignment(Qt.AlignmentFlag.AlignCenter)
        title.setStyleSheet("font-size: 30px; font-weight: bold;")
        note = QLabel("All your answers are saved. You can close this window.")
        note.setAlignment(Qt.AlignmentFlag.AlignCenter)
        note.setStyleSheet("font-size: 16px; color: #b0b0b0;")
        # A reader who pressed Finish too soon can still change an answer of the last case.
        back = QPushButton("◀  Back to the last case (P)")
        close = QPushButton("Close")
        for button in (back, close):
            button.setFocusPolicy(Qt.FocusPolicy.NoFocus)
            button.setMinimumHeight(36)
        back.clicked.connect(self.go_previous)
        close.clicked.connect(self.close)
        buttons = QHBoxLayout()
        buttons.addStretch(1)
        buttons.addWidget(back)
        buttons.addWidget(close)
        buttons.addStretch(1)
        layout.addWidget(title)
        layout.addWidget(note)
        layout.addSpacing(20)
        layout.addLayout(buttons)
        layout.addStretch(1)
        return page

    # --- actions ---------------------------------------------------------------------------

    def answer(self, question_key: str, letter: str) -> None:
        """Save an answer through the session, telling the reader if it cannot be saved."""
        try:
            self.session.answer(question_key, letter)
        except SAVE_ERRORS as err:
            # Keep the panel showing what is really saved, not the click that failed.
            self.questions.set_answers(self.session.answers)
            QMessageBox.critical(self, APP_TITLE, f"Your answer could not be saved ({err}). "
                                 "Please tell the study's administrator.")

    def go_next(self) -> None:
        """Next case, when every question is answered (or the case could not be read)."""
        if self.session.can_go_next:
            self.session.next()
        elif not self.session.finished:
            self.status.setText("Answer every question before going to the next case.")

    def go_previous(self) -> None:
        """Back one case."""
        if self.session.can_go_previous:
            self.session.previous()

    def wait_for_case(self, timeout_s: float = 30.0) -> bool:
        """Block until the current case is displayed (or failed); for screenshots and tests."""
        if self.session.finished or self._shown is not None or self.session.current_unreadable:
            return True
        future = self.cache.request(self.session.case_path(self.session.index))
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
        """The reading keys; see `keymap.help_text`."""
        if not self._handle_key(event):
            super().keyPressEvent(event)

    def _handle_key(self, event: QKeyEvent) -> bool:
        modifiers = Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.AltModifier
        if event.modifiers() & modifiers:
            return False
        binding = _QT_BINDINGS.get(event.key())
        if self.session.finished:
            if binding is None or binding.command not in FINISHED_COMMANDS:
                return False
        elif binding is None:
            return self._answer_by_key(event.text())
        self._run(binding)
        return True

    def _run(self, binding: Binding) -> None:
        """Carry out a key's command (see `keymap.KEY_BINDINGS`)."""
        display = self.viewer.display
        command = binding.command
        if command is Command.STEP_SLICES:
            display.step(binding.amount)
        elif command is Command.FIRST_SLICE:
            display.first_slice()
        elif command is Command.LAST_SLICE:
            display.last_slice()
        elif command is Command.WINDOW_PRESET:
            display.apply_preset(binding.amount)
        elif command is Command.AUTO_WINDOW:
            display.auto_window()
        elif command is Command.RESET_VIEW:
            self.viewer.reset()
        elif command is Command.CYCLE_PLANE:
            display.cycle_orientation()
        elif command is Command.TOGGLE_LAYOUT:
            display.toggle_layout()
        elif command is Command.NEXT_CASE:
            self.go_next()
        elif command is Command.PREVIOUS_CASE:
            self.go_previous()
        elif command is Command.NEXT_QUESTION:
            self.questions.set_current(self.questions.current + 1)
        elif command is Command.PREVIOUS_QUESTION:
            self.questions.set_current(self.questions.current - 1)

    def _answer_by_key(self, text: str) -> bool:
        if len(text) != 1 or not self.questions.isEnabled():
            return False
        question = self.questions.questions[self.questions.current]
        letter = option_for_key(question, text)
        if letter is None:
            return False
        self.answer(question.key, letter)
        self._highlight_next_unanswered(self.questions.current)
        return True

    # --- session events --------------------------------------------------------------------

    def _on_clicked_answer(self, question_key: str, letter: str) -> None:
        self.answer(question_key, letter)
        index = [q.key for q in self.questions.questions].index(question_key)
        self._highlight_next_unanswered(index)

    def _highlight_next_unanswered(self, after: int) -> None:
        following = self.questions.first_unanswered(self.session.answers, after)
        if following is not None:
            self.questions.set_current(following)

    def _on_answer_changed(self, _key: str, _value: str) -> None:
        self.questions.set_answers(self.session.answers)
        self._update_controls()

    def _on_case_unreadable(self, _index: int) -> None:
        self._update_controls()

    def _on_progress(self, done: int, _total: int) -> None:
        self.progress.setValue(done)

    def _on_case_changed(self, index: int) -> None:
        if self.session.finished:
            self.pages.setCurrentIndex(1)
            self.cache.retain(self.session.case_path(i)
                              for i in prefetch_plan(index, self.session.case_count).keep)
            return
        self.pages.setCurrentIndex(0)
        self.case_label.setText(f"Case {index + 1} of {self.session.case_count}")
        answers = self.session.answers
        self.questions.set_answers(answers)
        self.questions.set_current(self.questions.first_unanswered(answers) or 0)
        self._update_controls()
        self._show_case(index)

    def _update_controls(self) -> None:
        session = self.session
        self.previous_button.setEnabled(session.can_go_previous)
        self.next_button.setEnabled(session.can_go_next)
        last = not session.finished and session.index == session.case_count - 1
        self.next_button.setText("Finish (Enter)  ▶" if last else "Next case (Enter)  ▶")
        # Answers only once the case is on screen: nobody rates an image they have not seen.
        self.questions.setEnabled(self._shown is not None and not session.current_unreadable)
        self.status.setText("This case could not be read; press Next to go on."
                            if session.current_unreadable else "")

    # --- loading ---------------------------------------------------------------------------

    def _show_case(self, index: int) -> None:
        """Display the case at `index`, from the cache when preloaded, and read ahead as
        `prefetch.prefetch_plan` says."""
        session = self.session
        plan = prefetch_plan(index, session.case_count)
        self.cache.retain(session.case_path(i) for i in plan.keep)
        future = self.cache.request(session.case_path(index))
        for following in plan.preload:
            self.cache.request(session.case_path(following))
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
            image: CaseImage = future.result()
            self._shown = future
            self.viewer.set_volume(image.array, image.spacing, image.auto_window)
            self._update_controls()
            return
        if self.session.current_unreadable:
            # Back on a case already found unreadable: say so again, without another dialog.
            self.viewer.clear(UNREADABLE_TEXT)
            return
        path = self.session.case_path(index)
        detail = f"{type(error).__name__}: {error}"
        print(f"mdiff-reader: case {index + 1} ({path.name}) could not be read: {detail}",
              file=sys.stderr)
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
            self.session.close()
            session = self.session
            session.case_changed.disconnect(self._on_case_changed)
            session.answer_changed.disconnect(self._on_answer_changed)
            session.progress_changed.disconnect(self._on_progress)
            session.case_unreadable.disconnect(self._on_case_unreadable)
        super().closeEvent(event)
