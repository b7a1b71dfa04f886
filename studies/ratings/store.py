"""A reader's ratings database, opened for writing and locked for this process: the reader app's.

Every answer is committed the moment it is given (`schema.connect`), so a crash or SIGKILL of the
app loses nothing already committed. A second process for the same reader is refused
(`ReaderLock`). A database is checked as it opens (`snapshot.read_all`): one edited outside
mdiff is refused, and an older schema version is brought to the current one.

When the study's `answers_editable` is false, a done case's answers and flag are final
(`can_change`); comments can always change. A practice case's truth is shown once every question
is answered; flagged without every answer, only when study.json's `practice_truth_when_flagged` is
true.

In a paired (2AFC) study every case id here is a trial id: `case_order` is the reader's trials,
`trial` gives a trial's members as this reader sees them (layout A or its mirror, recorded when
the database is made: the one fewer of the other readers see, so readers alternate), and a
practice trial's truth is the side, "left" or "right", where this reader saw its synthetic
member.
"""

from __future__ import annotations

import math
import sqlite3
from pathlib import Path
from typing import Literal

from studies.questions import Question
from studies.ratings import done, schema
from studies.ratings.errors import AnswersFinalError, RatingStoreError, TruthNotShownError
from studies.ratings.lock import ReaderLock
from studies.ratings.readers import (
    database_path,
    existing_reader,
    order_seed,
    shuffled_case_order,
    validate_reader,
)
from studies.ratings.records import (
    COMMENT,
    MAX_COMMENT_LENGTH,
    NOT_ASSESSABLE,
    AnswerChange,
    CaseNote,
    CaseRecord,
)
from studies.ratings.schema import database_errors
from studies.ratings.snapshot import other_layouts, read_all, read_mirrored, refuse_edited
from studies.study import Study, StudyError, utc_now
from studies.trials import Trial, mirror_side, reader_mirrored


class RatingStore:
    """A reader's ratings database, opened for writing and locked for this process."""

    def __init__(self, study: Study, reader: str, path: Path, conn: sqlite3.Connection,
                 lock: ReaderLock, case_order: list[str]) -> None:
        self.study = study
        self.reader = reader
        self.path = path
        self.case_order = case_order
        self._conn: sqlite3.Connection | None = conn
        self._lock = lock
        self._questions: dict[str, Question] = {q.key: q for q in study.questions}
        with database_errors(path):
            # The practice cases whose truth was shown: their later answers are marked.
            self._truth_shown = {row[0] for row in conn.execute("SELECT case_id FROM truth_shown")}
            # In a paired study: whether this reader sees every trial's sides swapped.
            self.mirrored: bool = bool(read_mirrored(conn))

    @classmethod
    def open(cls, study: Study, reader: str) -> RatingStore:
        """Open (creating if needed) the reader's database and take the reader's lock.

        An existing reader matched by `existing_reader` is opened under its own name.
        """
        lock = ReaderLock(study, validate_reader(reader))
        try:
            reader = existing_reader(study, reader) or validate_reader(reader)
            path = database_path(study, reader)
            conn = schema.connect(path)
        except BaseException:
            lock.release()
            raise
        try:
            with database_errors(path):
                order = _create_or_load(conn, path, study, reader)
        except BaseException:
            conn.close()
            lock.release()
            raise
        return cls(study, reader, path, conn, lock, order)

    def __enter__(self) -> RatingStore:
        """The store itself; leaving the block closes it."""
        return self

    def __exit__(self, *exc_info: object) -> None:
        """Close the store (and release the lock)."""
        self.close()

    def close(self) -> None:
        """Close the database and release the reader's lock."""
        if self._conn is not None:
            self._conn.close()
            self._conn = None
        self._lock.release()

    @property
    def conn(self) -> sqlite3.Connection:
        """The open connection; RatingStoreError after close()."""
        if self._conn is None:
            raise RatingStoreError(f"The ratings of reader '{self.reader}' were closed; open "
                                   "them again.")
        return self._conn

    @property
    def practice_order(self) -> list[str]:
        """The practice case ids, in the order they are shown (before `case_order`)."""
        return self.study.practice_ids

    # --- reading ---------------------------------------------------------------------------

    def trial(self, trial_id: str) -> Trial:
        """A trial or practice trial of a paired study with its members on the sides this reader
        sees them; RatingStoreError for an id the study does not list."""
        try:
            trial = self.study.trial(trial_id)
        except StudyError as err:
            raise RatingStoreError(str(err)) from None
        return trial.mirrored() if self.mirrored else trial

    def answers(self, case_id: str) -> dict[str, str]:
        """Question key -> value given so far for one case or practice case."""
        table = self._answer_table(case_id)
        with database_errors(self.path):
            rows = self.conn.execute(f"SELECT question, value FROM {table} WHERE case_id = ?",
                                     (case_id,))
            return dict(rows.fetchall())

    def note(self, case_id: str) -> CaseNote:
        """The comment and the "not assessable" flag of a case or practice case."""
        self._answer_table(case_id)
        with database_errors(self.path):
            row = self.conn.execute("SELECT comment, not_assessable FROM case_notes "
                                    "WHERE case_id = ?", (case_id,)).fetchone()
        return CaseNote() if row is None else CaseNote(row[0], bool(row[1]))

    def current(self, case_id: str) -> CaseRecord:
        """Everything given for a case as it stands now: answers, comment, flag, time."""
        table = self._answer_table(case_id)
        with database_errors(self.path):
            latest = self.conn.execute(f"SELECT MAX(answered_at) FROM {table} WHERE case_id = ?",
                                       (case_id,)).fetchone()[0]
        answers, note = self.answers(case_id), self.note(case_id)
        finished = done.is_done(answers, note.not_assessable, self._questions)
        return CaseRecord(case_id, self.study.is_practice(case_id), answers, note, latest or "",
                          self.seconds_on_case(case_id), finished,
                          done.may_change(finished, self.study.answers_editable))

    def review_list(self, include_practice: bool = False) -> list[CaseRecord]:
        """The reader's cases with anything given (an answer, comment or flag), in the order
        they are shown: the practice cases first when `include_practice`."""
        shown = (self.practice_order if include_practice else []) + self.case_order
        with database_errors(self.path):
            given = {row[0] for row in self.conn.execute(
                "SELECT case_id FROM answers UNION SELECT case_id FROM practice_answers "
                "UNION SELECT case_id FROM case_notes WHERE comment != '' OR not_assessable")}
        return [self.current(case_id) for case_id in shown if case_id in given]

    def history(self, case_id: str) -> list[AnswerChange]:
        """Every answer, comment and flag given for a case, oldest first."""
        self._answer_table(case_id)
        with database_errors(self.path):
            rows = self.conn.execute("SELECT item, value, changed_at, seconds_on_case FROM "
                                     "answer_history WHERE case_id = ? ORDER BY seq", (case_id,))
            return [AnswerChange(*row) for row in rows.fetchall()]

    def is_complete(self, case_id: str) -> bool:
        """Whether every question of the study has an answer for this case."""
        return done.is_complete(self.answers(case_id), self._questions)

    def is_done(self, case_id: str) -> bool:
        """Whether the case is complete or flagged not assessable."""
        return done.is_done(self.answers(case_id), self.note(case_id).not_assessable,
                            self._questions)

    def can_change(self, case_id: str) -> bool:
        """Whether the case's answers and flag may still change: always in a study whose answers
        are editable, else only until the case is done."""
        return done.may_change(self.is_done(case_id), self.study.answers_editable)

    def practice_done(self) -> bool:
        """Whether every practice case is done (True for a study without practice cases)."""
        return all(self.is_done(case_id) for case_id in self.practice_order)

    def practice_truth(self, case_id: str) -> str:
        """Show a practice case's truth, "real" or "synthetic" (in a paired study the side of
        the trial's synthetic member as this reader sees it, "left" or "right"): once every
        question is answered,
        or once it is flagged not assessable when the study's `practice_truth_when_flagged` says
        so. The first time, the moment is recorded: answers given after it are marked
        `after_truth`.

        TruthNotShownError before that; RatingStoreError for a study case, whose truth is only
        in the key outside the study.
        """
        if not self.study.is_practice(case_id):
            raise RatingStoreError(f"Case {case_id!r} is no practice case of study "
                                   f"{self.study.study_id}; only practice cases have their "
                                   "truth shown.")
        flagged = self.note(case_id).not_assessable
        if not done.may_show_truth(self.is_complete(case_id), flagged,
                                   truth_when_flagged(self.study)):
            if not flagged:
                raise TruthNotShownError(f"Practice case {case_id} is not answered yet; its "
                                         "truth is shown once every question is answered.")
            raise TruthNotShownError(f"Practice case {case_id} is flagged not assessable; "
                                     f"study {self.study.study_id} shows a practice case's "
                                     "truth only once every question is answered.")
        if case_id not in self._truth_shown:
            with database_errors(self.path), self.conn:
                self.conn.execute("BEGIN IMMEDIATE")
                self.conn.execute(
                    "INSERT INTO truth_shown (case_id, shown_at, history_seq) "
                    "SELECT ?, ?, COALESCE(MAX(seq), 0) FROM answer_history", (case_id, utc_now()))
            self._truth_shown.add(case_id)
        truth = self.study.practice[case_id]
        return mirror_side(truth, self.mirrored) if self.study.design == "2afc" else truth

    def seconds_on_case(self, case_id: str) -> float:
        """Accumulated time on a case (or, without any, the most seconds given with its
        answers)."""
        table = self._answer_table(case_id)
        with database_errors(self.path):
            accumulated, with_answers = self.conn.execute(
                f"SELECT (SELECT seconds FROM case_time WHERE case_id = ?), "
                f"(SELECT MAX(seconds_on_case) FROM {table} WHERE case_id = ?)",
                (case_id, case_id)).fetchone()
        return done.seconds_on_case(accumulated, with_answers)

    def first_unrated_index(self) -> int:
        """Index in case_order of the first case not done; len(case_order) when all are done."""
        given: dict[str, set[str]] = {}
        with database_errors(self.path):
            for case_id, question in self.conn.execute("SELECT case_id, question FROM answers"):
                given.setdefault(case_id, set()).add(question)
            flagged = {row[0] for row in self.conn.execute(
                "SELECT case_id FROM case_notes WHERE not_assessable")}
        for index, case_id in enumerate(self.case_order):
            if not done.is_done(given.get(case_id, set()), case_id in flagged, self._questions):
                return index
        return len(self.case_order)

    # --- writing ---------------------------------------------------------------------------

    def record_answer(self, case_id: str, question_key: str, value: str,
                      seconds_on_case: float) -> None:
        """Store an answer at once (committed), replacing an earlier one for the same question;
        the earlier one stays in the history. AnswersFinalError for a change the study does not
        allow."""
        table = self._answer_table(case_id)
        letter = self._check_value(question_key, value)
        seconds = _check_seconds(seconds_on_case)
        with database_errors(self.path), self.conn:
            self.conn.execute("BEGIN IMMEDIATE")
            if self.answers(case_id).get(question_key) == letter:
                return
            self._check_may_change(case_id)
            now = utc_now()
            if table == "answers":
                self.conn.execute(
                    "INSERT INTO answers (case_id, question, value, answered_at, seconds_on_case) "
                    "VALUES (?, ?, ?, ?, ?) ON CONFLICT (case_id, question) DO UPDATE SET "
                    "value = excluded.value, answered_at = excluded.answered_at, "
                    "seconds_on_case = excluded.seconds_on_case",
                    (case_id, question_key, letter, now, seconds))
            else:
                self.conn.execute(
                    "INSERT INTO practice_answers (case_id, question, value, answered_at, "
                    "seconds_on_case, after_truth) VALUES (?, ?, ?, ?, ?, ?) "
                    "ON CONFLICT (case_id, question) DO UPDATE SET value = excluded.value, "
                    "answered_at = excluded.answered_at, "
                    "seconds_on_case = excluded.seconds_on_case, "
                    "after_truth = excluded.after_truth",
                    (case_id, question_key, letter, now, seconds,
                     int(case_id in self._truth_shown)))
            self._log_change(case_id, question_key, letter, now, seconds)

    def set_comment(self, case_id: str, comment: str) -> None:
        """Store the case's free-text comment at once (committed); it may always change, and
        each earlier text stays in the history."""
        self._answer_table(case_id)
        if not isinstance(comment, str) or len(comment) > MAX_COMMENT_LENGTH:
            raise RatingStoreError(f"A comment is text of at most {MAX_COMMENT_LENGTH} "
                                   "characters; shorten it.")
        with database_errors(self.path), self.conn:
            self.conn.execute("BEGIN IMMEDIATE")
            note = self.note(case_id)
            if note.comment == comment:
                return
            self._write_note(case_id, CaseNote(comment, note.not_assessable), COMMENT, comment)

    def set_not_assessable(self, case_id: str, flagged: bool) -> None:
        """Flag the case "image cannot be assessed" (or take the flag back) at once
        (committed). A flagged case is done; AnswersFinalError for a change the study does not
        allow."""
        self._answer_table(case_id)
        if not isinstance(flagged, bool):
            raise RatingStoreError(f"{flagged!r} is not a flag; give True or False.")
        with database_errors(self.path), self.conn:
            self.conn.execute("BEGIN IMMEDIATE")
            note = self.note(case_id)
            if note.not_assessable == flagged:
                return
            self._check_may_change(case_id)
            self._write_note(case_id, CaseNote(note.comment, flagged), NOT_ASSESSABLE,
                             "1" if flagged else "0")

    def add_time(self, case_id: str, seconds: float) -> None:
        """Add time spent on a case to its total (committed)."""
        self._answer_table(case_id)
        seconds = _check_seconds(seconds)
        with database_errors(self.path), self.conn:
            self.conn.execute("BEGIN IMMEDIATE")
            self.conn.execute(
                "INSERT INTO case_time (case_id, seconds) VALUES (?, ?) ON CONFLICT (case_id) "
                "DO UPDATE SET seconds = seconds + excluded.seconds", (case_id, seconds))

    # --- internals -------------------------------------------------------------------------

    def _check_may_change(self, case_id: str) -> None:
        """AnswersFinalError when the case is done and the study's answers are final."""
        if not self.can_change(case_id):
            raise AnswersFinalError(f"The answers of this case are final: study "
                                    f"{self.study.study_id} does not let a done case's answers "
                                    "change.")

    def _write_note(self, case_id: str, note: CaseNote, item: str, value: str) -> None:
        """Store a case's note and log the changed item (inside the caller's transaction)."""
        now = utc_now()
        self.conn.execute(
            "INSERT INTO case_notes (case_id, comment, not_assessable, noted_at) "
            "VALUES (?, ?, ?, ?) ON CONFLICT (case_id) DO UPDATE SET "
            "comment = excluded.comment, not_assessable = excluded.not_assessable, "
            "noted_at = excluded.noted_at",
            (case_id, note.comment, int(note.not_assessable), now))
        self._log_change(case_id, item, value, now, self.seconds_on_case(case_id))

    def _log_change(self, case_id: str, item: str, value: str, changed_at: str,
                    seconds: float) -> None:
        """Append one entry to the answer history (inside the caller's transaction)."""
        self.conn.execute("INSERT INTO answer_history (case_id, item, value, changed_at, "
                          "seconds_on_case) VALUES (?, ?, ?, ?, ?)",
                          (case_id, item, value, changed_at, seconds))

    def _answer_table(self, case_id: str) -> Literal["answers", "practice_answers"]:
        """The table holding the case's answers; RatingStoreError for an id the study lacks."""
        if self.study.is_practice(case_id):
            return "practice_answers"
        if case_id not in self.case_order:
            raise RatingStoreError(f"Case {case_id!r} is not part of study "
                                   f"{self.study.study_id}.")
        return "answers"

    def _check_value(self, question_key: str, value: str) -> str:
        """The option letter for `value` (a letter, or an option's text)."""
        question = self._questions.get(question_key)
        if question is None:
            raise RatingStoreError(f"The study does not ask the question {question_key!r}; it "
                                   f"asks {', '.join(self._questions)}.")
        for option in question.options:
            if value in (option.letter, option.text):
                return option.letter
        raise RatingStoreError(f"{value!r} is no answer to {question_key!r}; give one of "
                               f"{', '.join(question.letters)}.")


def truth_when_flagged(study: Study) -> bool:
    """Whether a practice case flagged not assessable shows its truth without every answer:
    study.json's `practice_truth_when_flagged`, false unless it is true."""
    return study.manifest.practice_truth_when_flagged


def _check_seconds(seconds: float) -> float:
    """A finite, non-negative number of seconds."""
    try:
        value = float(seconds)
    except (TypeError, ValueError):
        value = math.nan
    if not math.isfinite(value) or value < 0:
        raise RatingStoreError(f"{seconds!r} is not a valid time in seconds; give a number >= 0.")
    return value


def _create_or_load(conn: sqlite3.Connection, path: Path, study: Study, reader: str) -> list[str]:
    """Create the schema and the reader's order in a new database, or check and load an old one
    (bringing an older version to the current one); InvalidRatingsError or EditedRatingsError
    for a database edited outside mdiff (nothing is migrated then). The reader's case order."""
    version = schema.check_schema(conn, path)
    if not version:
        seed = order_seed(study.study_id, reader)
        order = shuffled_case_order(study.rated_ids, seed)
        mirrored = None
        if study.design == "2afc":
            mirrored = reader_mirrored(other_layouts(study.ratings_dir, path))
        schema.create(conn, study.study_id, reader, seed, order, mirrored)
        return order
    try:
        stored = read_all(conn, path, version, study)
    except sqlite3.DatabaseError as err:
        raise schema.corrupt(path, err) from None
    if stored.reader != reader:
        raise RatingStoreError(f"The ratings database {path} belongs to reader "
                               f"'{stored.reader}'; open it under that name.")
    refuse_edited([stored], "restore it from a backup before rating on")
    if version < schema.SCHEMA_VERSION:
        schema.migrate(conn, version, study)
    return stored.case_order
