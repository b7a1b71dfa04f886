"""The questions of a case as exclusive radio groups, answerable by mouse and keyboard."""

from __future__ import annotations

from collections.abc import Sequence

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QButtonGroup,
    QFrame,
    QGridLayout,
    QLabel,
    QRadioButton,
    QVBoxLayout,
    QWidget,
)

from reader_app.model.keymap import QuestionLike, answer_keys
from reader_app.widgets.blocking import signals_blocked

HIGHLIGHT = "QFrame#question[current=\"true\"] { border: 2px solid #4a90d9; border-radius: 6px; }"
PLAIN = "QFrame#question { border: 1px solid #3a3a3a; border-radius: 6px; }"
# The chosen option stands out by its text: Fusion's dark radio dot alone is easy to miss.
CHOSEN_OPTION = "border: none; color: #8cc4ff; font-weight: bold;"
OTHER_OPTION = "border: none;"
# A question whose every option text is this short ("real", "synthetic", "1".."4") lays its
# options out in one row, so that all the questions fit beside the image without scrolling.
ROW_OPTION_CHARS = 12
QUESTION_SPACING = 6


class _OptionLabel(QLabel):
    """The wrapped text of an option; a click on it picks the option like a click on its button."""

    def __init__(self, text: str, button: QRadioButton) -> None:
        super().__init__(text)
        self._button = button
        self.setWordWrap(True)

    def mousePressEvent(self, event) -> None:  # noqa: N802 (Qt naming)
        """Pick the option (only when its question is enabled)."""
        if self._button.isEnabled():
            self._button.click()


class QuestionsPanel(QWidget):
    """One framed group per question, each with its own QButtonGroup so the radios of different
    questions never uncheck each other. Emits `answered(question_key, letter)` on every pick.

    The highlighted ("current") question is the one the answer keys go to; `current_changed(frame)`
    gives its frame, so a scrolling parent can keep it in sight.
    """

    answered = Signal(str, str)
    current_changed = Signal(QWidget)

    def __init__(self, questions: Sequence[QuestionLike], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.questions = tuple(questions)
        self.groups: list[QButtonGroup] = []
        self._labels: dict[QRadioButton, QLabel] = {}
        self._frames: list[QFrame] = []
        self._current = 0
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(QUESTION_SPACING)
        for number, question in enumerate(self.questions, start=1):
            frame, group = self._question_frame(number, question)
            self._frames.append(frame)
            self.groups.append(group)
            layout.addWidget(frame)
        self.setStyleSheet(PLAIN + HIGHLIGHT)
        self.set_current(0)

    @property
    def current(self) -> int:
        """The index of the highlighted question."""
        return self._current

    def set_current(self, index: int) -> None:
        """Highlight question `index` (wrapping around)."""
        self._current = index % len(self.questions)
        for i, frame in enumerate(self._frames):
            frame.setProperty("current", "true" if i == self._current else "false")
            # A dynamic property only restyles after the style is re-applied.
            frame.style().unpolish(frame)
            frame.style().polish(frame)
        self.current_changed.emit(self._frames[self._current])

    def set_answers(self, answers: dict[str, str]) -> None:
        """Show saved answers (None/absent = unanswered) without emitting `answered`."""
        for question, group in zip(self.questions, self.groups, strict=True):
            letter = answers.get(question.key)
            with signals_blocked(group):
                # An exclusive group refuses to uncheck its checked button; lift that briefly.
                group.setExclusive(False)
                for button in group.buttons():
                    button.setChecked(button.property("letter") == letter)
                group.setExclusive(True)
            self._restyle(group)

    def first_unanswered(self, answers: dict[str, str], after: int = -1) -> int | None:
        """The index of the first unanswered question after `after` (wrapping), or None."""
        n = len(self.questions)
        for step in range(1, n + 1):
            i = (after + step) % n
            if self.questions[i].key not in answers:
                return i
        return None

    def _question_frame(self, number: int, question: QuestionLike) -> tuple[QFrame, QButtonGroup]:
        frame = QFrame()
        frame.setObjectName("question")
        grid = QGridLayout(frame)
        grid.setContentsMargins(10, 6, 10, 6)
        grid.setHorizontalSpacing(8)
        grid.setVerticalSpacing(2)
        in_row = all(len(option.text) <= ROW_OPTION_CHARS for option in question.options)
        title = QLabel(f"{number}. {question.title}")
        title.setWordWrap(True)
        title.setStyleSheet("font-weight: bold; border: none;")
        columns = 2 * len(question.options) if in_row else 2
        grid.addWidget(title, 0, 0, 1, columns + 1)
        group = QButtonGroup(frame)
        group.setExclusive(True)
        for i, (option, key) in enumerate(zip(question.options, answer_keys(question),
                                              strict=True)):
            button = QRadioButton(key)
            button.setProperty("letter", option.letter)
            # Keys reach the main window's handler instead of moving between radio buttons.
            button.setFocusPolicy(Qt.FocusPolicy.NoFocus)
            button.setAccessibleName(f"{question.title}: {option.text}")
            # Confidence options are just their number: the key alone says it.
            label = _OptionLabel("" if option.text == key else option.text, button)
            label.setStyleSheet(OTHER_OPTION)
            self._labels[button] = label
            group.addButton(button)
            row, column = (1, 2 * i) if in_row else (i + 1, 0)
            grid.addWidget(button, row, column, Qt.AlignmentFlag.AlignTop)
            grid.addWidget(label, row, column + 1)
        grid.setColumnStretch(columns if in_row else 1, 1)
        group.buttonClicked.connect(
            lambda button, key=question.key, group=group: self._on_clicked(key, group, button))
        return frame, group

    def _restyle(self, group: QButtonGroup) -> None:
        for button in group.buttons():
            self._labels[button].setStyleSheet(CHOSEN_OPTION if button.isChecked()
                                               else OTHER_OPTION)

    def _on_clicked(self, question_key: str, group: QButtonGroup, button: QRadioButton) -> None:
        self._restyle(group)
        self.answered.emit(question_key, button.property("letter"))
