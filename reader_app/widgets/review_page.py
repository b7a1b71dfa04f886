"""The review list: the reader's own cases with their answers, read-only; a click opens a case.

It is also the end of the study. The window keeps the keyboard: it moves the selected row with
`move_selection` and opens it with `chosen_index`.
"""

from __future__ import annotations

from collections.abc import Sequence

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QColor
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from reader_app.model.keymap import PREVIOUS_CASE_KEY, REVIEW_KEY, QuestionLike
from reader_app.model.review import ReviewRow, format_seconds

COMPLETE_TEXT = "Study complete — thank you"
REVIEW_TITLE = "Your cases so far"  # "Your pairs so far" in a paired study
PRACTICE_ROW = QColor("#233249")  # practice rows stand apart from the study's
TABLE_STYLE = (
    "QTableWidget { background: #262626; gridline-color: #3a3a3a; font-size: 14px; }"
    "QTableWidget::item { padding: 0 10px; }"
    "QHeaderView::section { background: #2d2d2d; color: #e6e6e6; padding: 5px 10px;"
    " border: none; border-right: 1px solid #3a3a3a; border-bottom: 1px solid #3a3a3a; }")
ROW_HEIGHT = 30
COMMENT_CHARS = 80  # a longer comment is cut in its cell (the whole text is in its tooltip)


class ReviewPage(QWidget):
    """The review: a title, what the reader may do, the table and the way back.

    Emits `row_chosen(index)` (a session position) when a row is clicked; `back_to_case` and
    `back_to_last` for the two ways back, `close_requested` for Close.
    """

    row_chosen = Signal(int)
    back_to_case = Signal()
    back_to_last = Signal()
    close_requested = Signal()

    def __init__(self, questions: Sequence[QuestionLike], parent: QWidget | None = None,
                 unit: str = "case") -> None:
        super().__init__(parent)
        self.questions = tuple(questions)
        self.unit = unit  # what the reader calls a row: "case", or "pair" in a paired study
        self._rows: list[ReviewRow] = []
        self.title = QLabel(REVIEW_TITLE.replace("case", unit))
        self.title.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.title.setStyleSheet("font-size: 26px; font-weight: bold;")
        self.note = QLabel()
        self.note.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.note.setWordWrap(True)
        self.note.setStyleSheet("font-size: 15px; color: #b0b0b0;")
        self.table = self._make_table()
        self.legend = QLabel("   ".join(
            [f"Q{number} {question.title}" for number, question
             in enumerate(self.questions, start=1)]
            + [f"Shaded rows: practice {unit}s, not part of the study"]))
        self.legend.setWordWrap(True)
        self.legend.setStyleSheet("color: #8a8a8a;")
        self.empty = QLabel(f"No {unit} has an answer yet.")
        self.empty.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.empty.setStyleSheet("font-size: 15px; color: #b0b0b0;")
        self.back_case_button = QPushButton(f"◀  Back to the {unit} ({REVIEW_KEY})")
        self.back_last_button = QPushButton(f"◀  Back to the last {unit} ({PREVIOUS_CASE_KEY})")
        self.close_button = QPushButton("Close")
        buttons = QHBoxLayout()
        buttons.addStretch(1)
        for button, signal in ((self.back_case_button, self.back_to_case),
                               (self.back_last_button, self.back_to_last),
                               (self.close_button, self.close_requested)):
            button.setFocusPolicy(Qt.FocusPolicy.NoFocus)
            button.setMinimumHeight(36)
            button.clicked.connect(signal)
            buttons.addWidget(button)
        buttons.addStretch(1)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(40, 24, 40, 24)
        layout.setSpacing(12)
        layout.addWidget(self.title)
        layout.addWidget(self.note)
        layout.addWidget(self.table, 1)
        layout.addWidget(self.empty, 1)
        layout.addWidget(self.legend)
        layout.addLayout(buttons)

    @property
    def rows(self) -> list[ReviewRow]:
        """The rows shown."""
        return list(self._rows)

    def show_rows(self, rows: Sequence[ReviewRow], *, finished: bool, complete: bool,
                  answers_final: bool) -> None:
        """Show `rows`; `finished` is the end of the study (the way back is to the last case),
        `complete` every case done, `answers_final` the study's answers cannot change."""
        self._rows = list(rows)
        self.title.setText(COMPLETE_TEXT if complete else REVIEW_TITLE.replace("case", self.unit))
        said = ["All your answers are saved." if complete else "Your answers are saved as "
                "you give them."]
        unit = self.unit
        said.append(f"Click a {unit} to look at it again." if finished else
                    f"Click a {unit} to go to it; {REVIEW_KEY} or Esc goes back to the {unit}.")
        if answers_final:
            said.append(f"In this study a done {unit}'s answers are final: they can be looked at, "
                        "not changed.")
        self.note.setText(" ".join(said))
        self.back_case_button.setVisible(not finished)
        self.back_last_button.setVisible(finished)
        self.close_button.setVisible(finished)
        self.table.setVisible(bool(self._rows))
        self.empty.setVisible(not self._rows)
        self._fill()

    def move_selection(self, amount: int) -> None:
        """Select the row `amount` rows below (above, when negative) the selected one."""
        if not self._rows:
            return
        current = self.table.currentRow()
        start = (-1 if amount > 0 else len(self._rows)) if current < 0 else current
        self.select(start + amount)

    def select(self, row: int) -> None:
        """Select row `row` (clamped to the table)."""
        if self._rows:
            self.table.selectRow(max(0, min(row, len(self._rows) - 1)))

    def chosen_index(self) -> int | None:
        """The session position of the selected row; None when no row is selected."""
        row = self.table.currentRow()
        return self._rows[row].index if 0 <= row < len(self._rows) and \
            self.table.selectionModel().hasSelection() else None

    def _make_table(self) -> QTableWidget:
        headers = [self.unit.capitalize(), *(f"Q{n}" for n in range(1, len(self.questions) + 1)),
                   "Not assessable", "Changed", "Time", "Comment"]
        table = QTableWidget(0, len(headers))
        table.setHorizontalHeaderLabels(headers)
        for column, question in enumerate(self.questions, start=1):
            table.horizontalHeaderItem(column).setToolTip(question.title)
        table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        table.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        table.verticalHeader().setVisible(False)
        table.verticalHeader().setDefaultSectionSize(ROW_HEIGHT)
        table.setStyleSheet(TABLE_STYLE)
        table.setWordWrap(False)
        header = table.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(len(headers) - 1, QHeaderView.ResizeMode.Stretch)
        header.setMinimumSectionSize(56)
        table.cellClicked.connect(lambda row, _column: self._choose(row))
        return table

    def _fill(self) -> None:
        table = self.table
        table.clearSelection()
        table.setRowCount(len(self._rows))
        for r, row in enumerate(self._rows):
            comment = " ".join(row.comment.split())
            if len(comment) > COMMENT_CHARS:
                comment = comment[:COMMENT_CHARS - 1] + "…"
            cells = [row.label, *row.answers, "yes" if row.not_assessable else "",
                     "yes" if row.changed else "", format_seconds(row.seconds), comment]
            for column, text in enumerate(cells):
                item = QTableWidgetItem(text)
                if column and column <= len(self.questions) + 3:
                    item.setTextAlignment(Qt.AlignmentFlag.AlignCenter)
                if row.practice:
                    item.setBackground(PRACTICE_ROW)
                table.setItem(r, column, item)
            if row.comment:
                table.item(r, len(cells) - 1).setToolTip(row.comment)
        table.setCurrentCell(-1, -1)

    def _choose(self, row: int) -> None:
        if 0 <= row < len(self._rows):
            self.row_chosen.emit(self._rows[row].index)
