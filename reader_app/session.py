"""The reading session without Qt: which case is shown, its answers, and time spent on it."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Protocol

from reader_app.events import Event


class QuestionLike(Protocol):
    """What the session needs of a `studies.questions.Question`."""

    key: str
    letters: tuple[str, ...]


class StudyLike(Protocol):
    """What the session needs of a `studies.study.Study`."""

    questions: Sequence[QuestionLike]

    def case_path(self, case_id: str) -> Path: ...

    def log(self, message: str) -> None: ...


class StoreLike(Protocol):
    """What the session needs of a `studies.ratings.RatingStore`."""

    case_order: list[str]

    def answers(self, case_id: str) -> dict[str, str]: ...

    def record_answer(self, case_id: str, question_key: str, value: str,
                      seconds_on_case: float) -> None: ...

    def add_time(self, case_id: str, seconds: float) -> None: ...

    def seconds_on_case(self, case_id: str) -> float: ...

    def is_complete(self, case_id: str) -> bool: ...

    def first_unrated_index(self) -> int: ...

    def close(self) -> None: ...


class ReadingSession:
    """One reader working through a study, case by case, in the reader's own order.

    Views call the methods and listen to four events: `case_changed(index)` (also when the
    study is finished, with `index == case_count`), `answer_changed(key, value)`,
    `progress_changed(done, total)` and `case_unreadable(index)`. Time on a case accumulates
    only between `activate()` and `deactivate()`, which the window calls when it gains and
    loses focus.
    """

    def __init__(self, study: StudyLike, store: StoreLike,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.study = study
        self.store = store
        self.questions = tuple(study.questions)
        self.case_changed = Event()
        self.answer_changed = Event()
        self.progress_changed = Event()
        self.case_unreadable = Event()
        self._clock = clock
        self._case_ids = list(store.case_order)
        self._done = {case_id for case_id in self._case_ids if store.is_complete(case_id)}
        self._unreadable: set[str] = set()
        self._active_since: float | None = None
        self._closed = False
        self._index = min(store.first_unrated_index(), len(self._case_ids))
        self._answers = self._load_answers()

    # --- state -----------------------------------------------------------------------------

    @property
    def index(self) -> int:
        """The 0-based position of the current case; `case_count` once the study is finished."""
        return self._index

    @property
    def case_count(self) -> int:
        """How many cases this reader rates."""
        return len(self._case_ids)

    @property
    def finished(self) -> bool:
        """True once the reader has gone past the last case with every readable case rated."""
        return self._index >= len(self._case_ids)

    @property
    def answers(self) -> dict[str, str]:
        """Question key -> saved value for the current case (a copy)."""
        return dict(self._answers)

    @property
    def all_answered(self) -> bool:
        """Whether every question of the current case has an answer."""
        return all(q.key in self._answers for q in self.questions)

    @property
    def done_count(self) -> int:
        """How many cases have every question answered."""
        return len(self._done)

    @property
    def current_unreadable(self) -> bool:
        """Whether the current case's file could not be read."""
        return not self.finished and self._case_ids[self._index] in self._unreadable

    @property
    def can_go_next(self) -> bool:
        """Next is allowed once the case is fully answered, or when it could not be read."""
        return not self.finished and (self.all_answered or self.current_unreadable)

    @property
    def can_go_previous(self) -> bool:
        """Previous is allowed from every case but the first, and from the end of the study
        (back to the last case, to change an answer)."""
        return self._index > 0

    def case_path(self, index: int) -> Path:
        """The file of the case at `index` (for the loader; never shown to the reader)."""
        return self.study.case_path(self._case_ids[index])

    def seconds_on_current(self) -> float:
        """Seconds spent on the current case so far, the running active stretch included."""
        if self.finished:
            return 0.0
        running = 0.0 if self._active_since is None else self._clock() - self._active_since
        return self.store.seconds_on_case(self._case_ids[self._index]) + running

    # --- actions ---------------------------------------------------------------------------

    def answer(self, question_key: str, value: str) -> None:
        """Save one answer (an option letter) for the current case at once; replaces an earlier
        answer."""
        if self.finished:
            raise RuntimeError("the study is finished: there is no case to answer")
        if self.current_unreadable:
            raise RuntimeError("the current case could not be read and cannot be rated")
        question = next((q for q in self.questions if q.key == question_key), None)
        if question is None:
            raise ValueError(f"the study has no question {question_key!r}")
        if value not in question.letters:
            raise ValueError(f"{value!r} is not an option of question {question_key!r}")
        if self._answers.get(question_key) == value:
            return
        case_id = self._case_ids[self._index]
        self._flush_time()
        self.store.record_answer(case_id, question_key, value,
                                 self.store.seconds_on_case(case_id))
        self._answers[question_key] = value
        self.answer_changed.emit(question_key, value)
        if self.all_answered and case_id not in self._done:
            self._done.add(case_id)
            self.progress_changed.emit(self.done_count, self.case_count)

    def next(self) -> None:
        """Go to the following case; past the last one, to the first readable unrated case or
        to the end of the study."""
        if not self.can_go_next:
            raise RuntimeError("answer every question of this case before going on")
        target = self._index + 1
        if target >= len(self._case_ids):
            target = next((i for i, case_id in enumerate(self._case_ids)
                           if case_id not in self._done and case_id not in self._unreadable),
                          len(self._case_ids))
        self._move_to(target)

    def previous(self) -> None:
        """Go back one case (from the end of the study: to the last case) to review or change
        its answers."""
        if not self.can_go_previous:
            raise RuntimeError("there is no previous case")
        self._move_to(self._index - 1)

    def go_to(self, index: int) -> None:
        """Show the case at `index` (0-based), e.g. for a screenshot of a given case."""
        if not 0 <= index < len(self._case_ids):
            raise IndexError(f"case {index + 1} is outside 1..{len(self._case_ids)}")
        self._move_to(index)

    def mark_unreadable(self, index: int, detail: str) -> str:
        """Record that the case at `index` could not be read, so the reader may skip it.

        `detail` (file name and error) goes to the study's log; the returned sentence, which
        names only the case number, is what the reader may see.
        """
        path = self.case_path(index)
        reader = getattr(self.store, "reader", "") or "(preview)"
        try:
            self.study.log(f"reader {reader}: case {index + 1} ({path.name}) could not be read: "
                           f"{detail}")
        except OSError:
            pass  # a read-only study folder: the window prints the same details on stderr

        self._unreadable.add(self._case_ids[index])
        self.case_unreadable.emit(index)
        return f"Case {index + 1} could not be read."

    def activate(self) -> None:
        """The window gained focus: time on the current case starts counting."""
        if self._active_since is None and not self._closed:
            self._active_since = self._clock()

    def deactivate(self) -> None:
        """The window lost focus: time stops counting and what was counted is saved."""
        self._flush_time()
        self._active_since = None

    def close(self) -> None:
        """Save the running time and release the reader's database; safe to call twice."""
        if self._closed:
            return
        self.deactivate()
        self._closed = True
        self.store.close()

    # --- internals -------------------------------------------------------------------------

    def _load_answers(self) -> dict[str, str]:
        if self.finished:
            return {}
        return dict(self.store.answers(self._case_ids[self._index]))

    def _flush_time(self) -> None:
        """Add the running active stretch to the current case and restart the stretch."""
        if self._active_since is None or self.finished:
            return
        now = self._clock()
        elapsed = now - self._active_since
        self._active_since = now
        if elapsed > 0:
            self.store.add_time(self._case_ids[self._index], elapsed)

    def _move_to(self, index: int) -> None:
        self._flush_time()
        self._index = index
        self._answers = self._load_answers()
        if self._active_since is not None:
            self._active_since = self._clock()
        self.case_changed.emit(self._index)
