"""The case's "image cannot be assessed" flag and its free-text comment, under the questions."""

from __future__ import annotations

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtGui import QFocusEvent, QKeyEvent, QTextCursor
from PySide6.QtWidgets import QCheckBox, QPlainTextEdit, QVBoxLayout, QWidget

from reader_app.widgets.blocking import signals_blocked
from studies.ratings import MAX_COMMENT_LENGTH, CaseNote

FLAG_TEXT = "Image cannot be assessed"
COMMENT_SETTLE_MS = 800  # a pause in typing this long saves the comment
COMMENT_HEIGHT = 48  # two lines; a longer comment scrolls


class CommentBox(QPlainTextEdit):
    """A comment editor that takes the keyboard only when clicked, and gives it back on Escape
    (and Tab, which would otherwise type a tab): the reading keys are letters, and a reader must
    never answer a question by typing a word."""

    left = Signal()  # Escape or Tab: the window takes the keys back
    focus_lost = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setFocusPolicy(Qt.FocusPolicy.ClickFocus)
        self.setPlaceholderText("Comment (optional)")
        self.setFixedHeight(COMMENT_HEIGHT)

    def keyPressEvent(self, event: QKeyEvent) -> None:  # noqa: N802 (Qt naming)
        """Escape and Tab leave the box; every other key types."""
        if event.key() in (Qt.Key.Key_Escape, Qt.Key.Key_Tab, Qt.Key.Key_Backtab):
            self.left.emit()
            return
        super().keyPressEvent(event)

    def focusOutEvent(self, event: QFocusEvent) -> None:  # noqa: N802 (Qt naming)
        """Leaving the box saves what was typed (through `focus_lost`)."""
        super().focusOutEvent(event)
        self.focus_lost.emit()


class NotesPanel(QWidget):
    """The flag and the comment of the current case.

    Emits `flag_changed(flagged)` on a click of the box, `comment_edited(text)` on every edit
    and `comment_settled()` once the reader pauses typing or leaves the box (save then);
    `comment_left()` when Escape or Tab gives the keys back to the window.
    """

    flag_changed = Signal(bool)
    comment_edited = Signal(str)
    comment_settled = Signal()
    comment_left = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.flag = QCheckBox(FLAG_TEXT)
        # Keys stay with the window (Space would otherwise toggle the box).
        self.flag.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self.comment = CommentBox()
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(6)
        # Only as wide as its text: a click beside the text does not toggle it.
        layout.addWidget(self.flag, 0, Qt.AlignmentFlag.AlignLeft)
        layout.addWidget(self.comment)
        self._settle = QTimer(self)
        self._settle.setSingleShot(True)
        self._settle.setInterval(COMMENT_SETTLE_MS)
        self._settle.timeout.connect(self.comment_settled)
        self.flag.clicked.connect(self.flag_changed)
        self.comment.textChanged.connect(self._on_text_changed)
        self.comment.focus_lost.connect(self._settle_now)
        # Escape and Tab save at once, then hand the keys back (the focus-out that follows finds
        # nothing left to save; a window that is not the active one gets no focus-out at all).
        self.comment.left.connect(self._settle_now)
        self.comment.left.connect(self.comment_left)

    def set_note(self, note: CaseNote) -> None:
        """Show a case's saved flag and comment without emitting anything."""
        self._settle.stop()
        with signals_blocked(self.flag):
            self.flag.setChecked(note.not_assessable)
        if self.comment.toPlainText() != note.comment:
            with signals_blocked(self.comment):
                self.comment.setPlainText(note.comment)

    def set_enabled(self, flag: bool, comment: bool) -> None:
        """Enable the flag and the comment box apart (a final answer keeps its flag, not its
        comment)."""
        self.flag.setEnabled(flag)
        self.comment.setEnabled(comment)

    def _on_text_changed(self) -> None:
        text = self.comment.toPlainText()
        if len(text) > MAX_COMMENT_LENGTH:
            with signals_blocked(self.comment):
                self.comment.setPlainText(text[:MAX_COMMENT_LENGTH])
                self.comment.moveCursor(QTextCursor.MoveOperation.End)
            text = text[:MAX_COMMENT_LENGTH]
        self.comment_edited.emit(text)
        self._settle.start()

    def _settle_now(self) -> None:
        if self._settle.isActive():
            self._settle.stop()
            self.comment_settled.emit()
