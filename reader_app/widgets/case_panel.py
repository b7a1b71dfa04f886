"""The column beside the image: the case's number and the progress, the practice note and its
truth once answered, the questions (scrolling only when the window is too small for them), the
flag and comment, a status line (shown only when it has something to say), Previous and Next; and
the keys' help, which the window shows under the image.

The column is laid out so that every question of a Table 1 + visual Turing study fits without
scrolling at 1280 x 800 and larger (`tests/reader_app/widgets/test_fit.py`).

It renders the `ReadingSession` it is shown and carries no state of its own; the window
connects its signals (an answer clicked, the flag, the comment, the buttons) to the session.
"""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QFrame,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QScrollArea,
    QVBoxLayout,
    QWidget,
)

from reader_app.model.keymap import help_text
from reader_app.model.session import ReadingSession
from reader_app.widgets.notes_panel import NotesPanel
from reader_app.widgets.questions_panel import QuestionsPanel

PANEL_WIDTH = 460
PAIR_PANEL_WIDTH = 380  # a paired study's two short questions leave the two images more room
PRACTICE_TEXT = "Not part of the study: its truth is shown once you answer."
FINAL_TEXT = "Your answers to this case are final in this study; they can no longer change."
UNREADABLE_STATUS = "This case could not be read; press Next to go on."
NEXT_TEXT, FINISH_TEXT = "Next case (Enter)  ▶", "Finish (Enter)  ▶"
NEXT_PAIR_TEXT = "Next pair (Enter)  ▶"
# Neutral blue, not green: the banner tells the truth, not whether the reader was right.
FEEDBACK_STYLE = ("background: #1c3148; color: #d8e9ff; border: 1px solid #4a90d9; "
                  "border-radius: 6px; padding: 8px; font-size: 15px; font-weight: bold;")


HELP_STYLE = "color: #8a8a8a; font-size: 11px;"
HELP_COLUMNS = 2
SPACING = 8


def _label(text: str, style: str) -> QLabel:
    label = QLabel(text)
    label.setWordWrap(True)
    label.setStyleSheet(style)
    return label


class StatusLabel(QLabel):
    """A status line that takes no room while it is empty."""

    def __init__(self, style: str) -> None:
        super().__init__()
        self.setWordWrap(True)
        self.setStyleSheet(style)
        self.setVisible(False)

    def setText(self, text: str) -> None:  # noqa: N802 (Qt naming)
        """Show `text`, or hide the line when it is empty."""
        super().setText(text)
        self.setVisible(bool(text))


class KeysHelp(QWidget):
    """The keys and mouse actions in small grey text, one group a cell, in two columns: wide and
    low, for the strip under the image."""

    def __init__(self, modality: str, paired: bool = False, parent: QWidget | None = None
                 ) -> None:
        super().__init__(parent)
        grid = QGridLayout(self)
        grid.setContentsMargins(4, 2, 4, 0)
        grid.setHorizontalSpacing(16)
        grid.setVerticalSpacing(1)
        self.lines = help_text(modality, paired).splitlines()
        for i, line in enumerate(self.lines):
            grid.addWidget(_label(line, HELP_STYLE), i // HELP_COLUMNS, i % HELP_COLUMNS)
        for column in range(HELP_COLUMNS):
            grid.setColumnStretch(column, 1)

    def text(self) -> str:
        """The help, one group a line."""
        return "\n".join(self.lines)


class CasePanel(QWidget):
    """The reading page's side column over one `ReadingSession`."""

    def __init__(self, session: ReadingSession, modality: str,
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setFixedWidth(PAIR_PANEL_WIDTH if session.paired else PANEL_WIDTH)
        self.questions = QuestionsPanel(session.questions)
        self.notes = NotesPanel()
        self.case_label = QLabel()
        self.case_label.setStyleSheet("font-size: 20px; font-weight: bold;")
        self.practice_note = _label(PRACTICE_TEXT, "color: #8cc4ff;")
        self.feedback = _label("", FEEDBACK_STYLE)
        self.final_note = _label(FINAL_TEXT, "color: #b0b0b0;")
        self.progress = QProgressBar()
        self.progress.setRange(0, session.case_count)
        self.progress.setFormat(f"%v of {session.case_count} {session.unit}s rated")
        self._next_text = NEXT_PAIR_TEXT if session.paired else NEXT_TEXT
        self.status = StatusLabel("color: #c8a040;")
        self.previous_button = QPushButton("◀  Previous (P)")
        self.next_button = QPushButton(self._next_text)
        for button in (self.previous_button, self.next_button):
            button.setFocusPolicy(Qt.FocusPolicy.NoFocus)
            button.setMinimumHeight(36)
        # Shown by the window under the image, where a wide strip costs the image little height.
        self.help = KeysHelp(modality, session.paired)
        self._scroll = self._questions_scroll()
        # The framed question, the one the keys answer, is always scrolled into sight.
        self.questions.current_changed.connect(self._keep_in_sight)
        self._lay_out()

    def _questions_scroll(self) -> QScrollArea:
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
        return scroll

    def _lay_out(self) -> None:
        side = QVBoxLayout(self)
        side.setContentsMargins(12, 4, 4, 4)
        side.setSpacing(SPACING)
        header = QHBoxLayout()
        header.setSpacing(12)
        header.addWidget(self.case_label)
        header.addWidget(self.progress, 1)
        side.addLayout(header)
        side.addWidget(self.practice_note)
        # The feedback and the final note stay in sight above the questions, which may scroll.
        side.addWidget(self.feedback)
        side.addWidget(self.final_note)
        side.addWidget(self._scroll, 1)
        side.addWidget(self.notes)  # in sight, like Next, however many questions scroll above
        side.addWidget(self.status)
        buttons = QHBoxLayout()
        buttons.addWidget(self.previous_button)
        buttons.addWidget(self.next_button, 1)
        side.addLayout(buttons)

    def _keep_in_sight(self, frame: QWidget) -> None:
        self._scroll.ensureWidgetVisible(frame, 0, 4)

    def show_case(self, session: ReadingSession) -> None:
        """A new case: its number, the practice note, its saved answers with the first
        unanswered question framed, its flag and comment; the status line cleared."""
        self.case_label.setText(session.label(session.index))
        self.practice_note.setVisible(session.current_is_practice)
        answers = session.answers
        self.questions.set_answers(answers)
        self.questions.set_current(self.questions.first_unanswered(answers) or 0)
        self.notes.set_note(session.note)
        self.status.setText("")

    def show_controls(self, session: ReadingSession, on_screen: bool) -> None:
        """Which controls act now: answers only once the case is on screen (`on_screen`:
        displayed and readable) and not final; Next only when the case is done."""
        self.previous_button.setEnabled(session.can_go_previous)
        self.next_button.setEnabled(session.can_go_next)
        last = not session.finished and session.index == session.position_count - 1
        self.next_button.setText(FINISH_TEXT if last else self._next_text)
        final = on_screen and not session.can_change
        self.questions.setEnabled(on_screen and not final)
        self.notes.set_enabled(flag=on_screen and not final, comment=on_screen)
        self.final_note.setVisible(final)
        feedback = session.practice_feedback
        self.feedback.setText(feedback or "")
        self.feedback.setVisible(feedback is not None)
        # Once the truth shows, the note that promised it gives the banner its room.
        self.practice_note.setVisible(session.current_is_practice and feedback is None)
        if session.current_unreadable:
            self.status.setText(UNREADABLE_STATUS)
