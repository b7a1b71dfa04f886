"""The reading session without Qt: which case is shown, its answers, comment and flag, the
practice block's feedback, and time spent on each case.

The reader goes through the study's practice cases first, then the study cases in the reader's
own order: one list of positions, practice first. Practice cases are labelled apart ("Practice 1
of 2") and never counted in the study's progress ("Case 1 of 20").

In a paired (2AFC) study a position holds a trial, two volumes side by side, and the session
treats its trial id as it treats a case id elsewhere: answers, comment, flag and time belong to
the trial, and its two files come from the store's `trial` (the sides as this reader sees them).
The reader calls a trial a pair ("Pair 3 of 20").
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from reader_app.model.events import Event
from reader_app.model.study_like import PAIRED_DESIGN, StoreLike, StudyLike
from studies.questions import AFC_QUESTIONS, TURING_QUESTIONS
from studies.ratings import AnswersFinalError, CaseNote, TruthNotShownError

TURING_CALL = TURING_QUESTIONS[0]  # "Real or synthetic?": the feedback repeats the reader's call
SIDE_CALL = AFC_QUESTIONS[0]  # "Which one is synthetic?", a paired study's call

# The one sentence a reader sees when a change is refused because the study's answers are final.
FINAL_REFUSED = "The answers of this case are final in this study; your earlier answer is kept."


class ReadingSession:
    """One reader working through a study: its practice cases, then its cases in the reader's
    own order.

    Positions (`index`) run over the practice cases first, then the study cases. Views call the
    methods and listen to six events: `case_changed(index)` (also when the study is finished,
    with `index == position_count`), `answer_changed(key, value)`, `note_changed()` (the flag
    or the saved comment), `progress_changed(done, total)` (study cases only),
    `case_unreadable(index)` and `answer_refused(sentence)` (a change the study's final answers
    do not allow; the earlier answer stays). Time on a case accumulates only between
    `activate()` and `deactivate()`, which the window calls when it gains and loses focus.
    """

    def __init__(self, study: StudyLike, store: StoreLike,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.study = study
        self.store = store
        self.questions = tuple(study.questions)
        self.paired = study.design == PAIRED_DESIGN
        self.unit = "pair" if self.paired else "case"  # what the reader calls a position
        self.case_changed = Event()
        self.answer_changed = Event()
        self.note_changed = Event()
        self.progress_changed = Event()
        self.case_unreadable = Event()
        self.answer_refused = Event()
        self._clock = clock
        self._practice_ids = list(store.practice_order)
        self._case_ids = self._practice_ids + list(store.case_order)
        self._positions = {case_id: i for i, case_id in enumerate(self._case_ids)}
        self._done = {case_id for case_id in self._case_ids if store.is_done(case_id)}
        self._unreadable: set[str] = set()
        self._active_since: float | None = None
        self._closed = False
        self._index = next((i for i, case_id in enumerate(self._case_ids)
                            if case_id not in self._done), len(self._case_ids))
        self._answers, self._note = self._load()
        self._draft: str | None = None  # the comment as typed, until saved

    # --- state -----------------------------------------------------------------------------

    @property
    def index(self) -> int:
        """The 0-based position of the current case (practice cases first); `position_count`
        once the study is finished."""
        return self._index

    @property
    def position_count(self) -> int:
        """How many cases the reader goes through: the practice cases and the study's."""
        return len(self._case_ids)

    @property
    def practice_count(self) -> int:
        """How many practice cases come before the study's cases."""
        return len(self._practice_ids)

    @property
    def case_count(self) -> int:
        """How many study cases this reader rates (practice cases not counted)."""
        return len(self._case_ids) - len(self._practice_ids)

    @property
    def finished(self) -> bool:
        """True once the reader has gone past the last case with every readable case done."""
        return self._index >= len(self._case_ids)

    def is_practice(self, index: int) -> bool:
        """Whether the position `index` holds a practice case."""
        return 0 <= index < len(self._practice_ids)

    def short_label(self, index: int) -> str:
        """What the reader calls the case at `index`: "Practice 2" or "Case 5" ("Pair 5" in a
        paired study; study cases numbered from 1 after the practice block)."""
        if self.is_practice(index):
            return f"Practice {index + 1}"
        return f"{self.unit.capitalize()} {index - len(self._practice_ids) + 1}"

    def label(self, index: int) -> str:
        """The title of the case at `index`: "Practice 1 of 2" or "Case 1 of 20"."""
        total = len(self._practice_ids) if self.is_practice(index) else self.case_count
        return f"{self.short_label(index)} of {total}"

    def position_of(self, case_id: str) -> int:
        """The position of a case or practice case in this session."""
        return self._positions[case_id]

    def study_case_position(self, number: int) -> int:
        """The position of study case `number` (1-based, in the reader's order)."""
        if not 1 <= number <= self.case_count:
            raise IndexError(f"case {number} is outside 1..{self.case_count}")
        return len(self._practice_ids) + number - 1

    @property
    def answers(self) -> dict[str, str]:
        """Question key -> saved value for the current case (a copy)."""
        return dict(self._answers)

    @property
    def note(self) -> CaseNote:
        """The current case's comment (as typed, saved or not) and its "not assessable" flag."""
        comment = self._note.comment if self._draft is None else self._draft
        return CaseNote(comment, self._note.not_assessable)

    @property
    def all_answered(self) -> bool:
        """Whether every question of the current case has an answer."""
        return all(q.key in self._answers for q in self.questions)

    @property
    def current_done(self) -> bool:
        """Whether the current case is done: every question answered, or flagged not
        assessable."""
        return self.all_answered or self._note.not_assessable

    @property
    def current_is_practice(self) -> bool:
        """Whether the current case is a practice case."""
        return self.is_practice(self._index)

    @property
    def can_change(self) -> bool:
        """Whether the current case's answers and flag may change (False once a done case's
        answers are final in this study); comments always may."""
        return not self.finished and (self.study.answers_editable or not self.current_done)

    @property
    def practice_truth(self) -> str | None:
        """The truth of the current practice case once the store shows it ("real" or
        "synthetic"; in a paired study the synthetic member's side, "left" or "right"): once
        every question is answered, or once flagged where the study says so. Asking shows it:
        the store records the moment, and marks later answers. None before, and always None for
        a study case, which has no truth here."""
        if self.finished or not self.current_is_practice or not self.current_done:
            return None
        try:
            return self.store.practice_truth(self._case_ids[self._index])
        except TruthNotShownError:
            return None  # flagged without every answer, in a study that keeps the truth then

    @property
    def practice_feedback(self) -> str | None:
        """`practice_truth` in words ("This practice case was real.", "The synthetic one was on
        the left."), then on a line of its own the reader's call where the study asks it."""
        truth = self.practice_truth
        if truth is None:
            return None
        if self.paired:
            side = self._answers.get(SIDE_CALL.key)
            said = ("" if side is None
                    else f"\nYou picked the {SIDE_CALL.option(side).text.lower()} one.")
            return f"The synthetic one was on the {truth}.{said}"
        call = self._answers.get(TURING_CALL.key)
        said = "" if call is None else f"\nYou answered {TURING_CALL.option(call).text}."
        return f"This practice case was {truth}.{said}"

    @property
    def done_count(self) -> int:
        """How many study cases are done (practice cases never count)."""
        return len(self._done.difference(self._practice_ids))

    @property
    def current_unreadable(self) -> bool:
        """Whether the current case's file could not be read."""
        return not self.finished and self._case_ids[self._index] in self._unreadable

    @property
    def can_go_next(self) -> bool:
        """Next is allowed once the case is done, or when it could not be read."""
        return not self.finished and (self.current_done or self.current_unreadable)

    @property
    def can_go_previous(self) -> bool:
        """Previous is allowed from every case but the first, and from the end of the study
        (back to the last case, to change an answer)."""
        return self._index > 0

    @property
    def all_done(self) -> bool:
        """Whether every readable case, practice and study, is done."""
        return all(case_id in self._done or case_id in self._unreadable
                   for case_id in self._case_ids)

    def case_path(self, index: int) -> Path:
        """The file of the case at `index` of a single-reading study (a paired trial has two:
        `case_paths`)."""
        (path,) = self.case_paths(index)
        return path

    def case_paths(self, index: int) -> tuple[Path, ...]:
        """The files shown at `index`, for the loader (never shown to the reader): the case's,
        or a paired trial's left and right members as this reader sees them."""
        case_id = self._case_ids[index]
        if not self.paired:
            return (self.study.case_path(case_id),)
        trial = self.store.trial(case_id)
        return (self.study.case_path(trial.left), self.study.case_path(trial.right))

    def seconds_on_current(self) -> float:
        """Seconds spent on the current case so far, the running active stretch included."""
        if self.finished:
            return 0.0
        running = 0.0 if self._active_since is None else self._clock() - self._active_since
        return self.store.seconds_on_case(self._case_ids[self._index]) + running

    # --- actions ---------------------------------------------------------------------------

    def answer(self, question_key: str, value: str) -> None:
        """Save one answer (an option letter) for the current case at once; replaces an earlier
        answer, unless the study's answers are final (then `answer_refused` is emitted)."""
        self._check_case_open()
        question = next((q for q in self.questions if q.key == question_key), None)
        if question is None:
            raise ValueError(f"the study has no question {question_key!r}")
        if value not in question.letters:
            raise ValueError(f"{value!r} is not an option of question {question_key!r}")
        if self._answers.get(question_key) == value:
            return
        case_id = self._case_ids[self._index]
        self._flush_time()
        try:
            self.store.record_answer(case_id, question_key, value,
                                     self.store.seconds_on_case(case_id))
        except AnswersFinalError:
            self.answer_refused.emit(FINAL_REFUSED)
            return
        self._answers[question_key] = value
        self.answer_changed.emit(question_key, value)
        self._update_done(case_id)

    def set_not_assessable(self, flagged: bool) -> None:
        """Flag the current case "image cannot be assessed" (it is then done) or take the flag
        back; saved at once, or refused like an answer when the study's answers are final."""
        self._check_case_open()
        if self._note.not_assessable == flagged:
            return
        case_id = self._case_ids[self._index]
        self._flush_time()
        try:
            self.store.set_not_assessable(case_id, flagged)
        except AnswersFinalError:
            self.answer_refused.emit(FINAL_REFUSED)
            return
        self._note = CaseNote(self._note.comment, flagged)
        self.note_changed.emit()
        self._update_done(case_id)

    def edit_comment(self, text: str) -> None:
        """Keep the comment as the reader types it; `save_comment` (or leaving the case, or
        closing) stores it."""
        self._check_case_open()
        self._draft = text

    def save_comment(self) -> None:
        """Store the typed comment if it changed; comments may always change."""
        if self._draft is None or self.finished:
            return
        draft, self._draft = self._draft, None
        if draft == self._note.comment:
            return
        self._flush_time()
        try:
            self.store.set_comment(self._case_ids[self._index], draft)
        except BaseException:
            self._draft = draft  # not saved: keep it for the next try
            raise
        self._note = CaseNote(draft, self._note.not_assessable)
        self.note_changed.emit()

    def next(self) -> None:
        """Go to the following case; past the last one, to the first readable case not done or
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
        """Show the case at position `index` (0-based, practice cases first), e.g. from the
        review list."""
        if not 0 <= index < len(self._case_ids):
            raise IndexError(f"case {index + 1} is outside 1..{len(self._case_ids)}")
        self._move_to(index)

    def mark_unreadable(self, index: int, detail: str) -> str:
        """Record that the case at `index` could not be read, so the reader may skip it.

        `detail` (file name and error) goes to the study's log; the returned sentence, which
        names only the case's number, is what the reader may see.
        """
        names = ", ".join(path.name for path in self.case_paths(index))
        reader = getattr(self.store, "reader", "") or "(preview)"
        try:
            self.study.log(f"reader {reader}: {self.short_label(index).lower()} ({names}) "
                           f"could not be read: {detail}")
        except OSError:
            pass  # a read-only study folder: the window prints the same details on stderr

        self._unreadable.add(self._case_ids[index])
        self.case_unreadable.emit(index)
        return f"{self.short_label(index)} could not be read."

    def activate(self) -> None:
        """The window gained focus: time on the current case starts counting."""
        if self._active_since is None and not self._closed:
            self._active_since = self._clock()

    def deactivate(self) -> None:
        """The window lost focus: time stops counting and what was counted is saved."""
        self._flush_time()
        self._active_since = None

    def close(self) -> None:
        """Save the typed comment and the running time and release the reader's database; safe
        to call twice."""
        if self._closed:
            return
        try:
            self.save_comment()
            self.deactivate()
        finally:
            self._closed = True
            self.store.close()

    # --- internals -------------------------------------------------------------------------

    def _check_case_open(self) -> None:
        """RuntimeError when there is no case to answer (finished, or the file unreadable)."""
        if self.finished:
            raise RuntimeError("the study is finished: there is no case to answer")
        if self.current_unreadable:
            raise RuntimeError("the current case could not be read and cannot be rated")

    def _update_done(self, case_id: str) -> None:
        """Follow the current case into or out of the done set; progress counts study cases."""
        done = self.current_done
        if done == (case_id in self._done):
            return
        if done:
            self._done.add(case_id)
        else:
            self._done.discard(case_id)
        if case_id not in self._practice_ids:
            self.progress_changed.emit(self.done_count, self.case_count)

    def _load(self) -> tuple[dict[str, str], CaseNote]:
        if self.finished:
            return {}, CaseNote()
        case_id = self._case_ids[self._index]
        return dict(self.store.answers(case_id)), self.store.note(case_id)

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
        self.save_comment()
        self._flush_time()
        self._index = index
        self._answers, self._note = self._load()
        if self._active_since is not None:
            self._active_since = self._clock()
        self.case_changed.emit(self._index)
