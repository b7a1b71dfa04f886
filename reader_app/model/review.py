"""The review list without Qt: one row per case the reader has given anything for, in the order
the cases are shown (practice first), with the answers, flag, comment, time and changes."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from reader_app.model.keymap import QuestionLike, answer_keys
from reader_app.model.session import ReadingSession
from studies.ratings import NOT_ASSESSABLE

SHORT_OPTION = 12  # an option text this short is shown as it is ("real"); longer ones by key


@dataclass(frozen=True)
class ReviewRow:
    """What the review shows of one case; `index` is its position, for the jump."""

    index: int
    label: str            # "Practice 1", "Case 3": never an id
    practice: bool
    answers: tuple[str, ...]  # per question, as the reader saw the option; "" when unanswered
    not_assessable: bool
    comment: str
    seconds: float
    changed: bool         # an answer or the flag was given more than once


def answer_text(question: QuestionLike, letter: str | None) -> str:
    """An answer as the review shows it: a short option's text ("real", "3"), else the key
    beside the option in the questions panel ("A")."""
    if letter is None:
        return ""
    letters = [option.letter for option in question.options]
    option = question.options[letters.index(letter)]
    if len(option.text) <= SHORT_OPTION:
        return option.text
    return answer_keys(question)[letters.index(letter)]


def format_seconds(seconds: float) -> str:
    """A time on a case for the reader: "42 s", "3 min 05 s"."""
    whole = int(round(seconds))
    if whole < 60:
        return f"{whole} s"
    return f"{whole // 60} min {whole % 60:02d} s"


def review_rows(session: ReadingSession) -> list[ReviewRow]:
    """The reader's own cases with anything given (an answer, comment or flag), as the store
    holds them (the window saves the typed comment and the running time first)."""
    store = session.store
    items = {q.key for q in session.questions} | {NOT_ASSESSABLE}
    rows = []
    for record in store.review_list(include_practice=True):
        index = session.position_of(record.case_id)
        given = Counter(change.item for change in store.history(record.case_id))
        rows.append(ReviewRow(
            index=index, label=session.short_label(index), practice=record.practice,
            answers=tuple(answer_text(q, record.answers.get(q.key)) for q in session.questions),
            not_assessable=record.note.not_assessable, comment=record.note.comment,
            seconds=record.seconds_on_case,
            changed=any(given[item] > 1 for item in items)))
    return rows
