"""The reading session of a paired (2AFC) study without Qt: a trial id stands where a case id
does, its two files come from the reader's sides, and everything a single-reading session does
(saving, resuming, practice feedback, time, review) works per trial."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from reader_app.model.loader import CaseCache, read_case
from reader_app.model.preview_store import PreviewStore
from reader_app.model.review import review_rows
from reader_app.model.session import ReadingSession
from studies.ratings import RatingStore
from studies.study import Study

PAIR_ANSWER = {"synthetic_side": "L", "confidence": "3"}


def open_session(folder: Path, reader: str = "ann", clock=None) -> ReadingSession:
    study = Study.open(folder)
    store = RatingStore.open(study, reader)
    return ReadingSession(study, store, clock=clock) if clock else ReadingSession(study, store)


def answer_all(session: ReadingSession, answers: dict[str, str] = PAIR_ANSWER) -> None:
    for key, value in answers.items():
        session.answer(key, value)


def test_a_trial_is_a_pair_with_its_two_files_as_this_reader_sees_them(pair_study_dir):
    """Practice first, then the reader's trials; each position's files are the trial's left and
    right members, swapped for the second reader (who sees the mirror of layout A)."""
    session = open_session(pair_study_dir)
    assert session.paired and session.unit == "pair"
    assert session.practice_count == 1 and session.case_count == 2
    assert [session.label(i) for i in range(3)] == ["Practice 1 of 1", "Pair 1 of 2",
                                                    "Pair 2 of 2"]
    assert [p.name for p in session.case_paths(0)] == ["P01a.nii.gz", "P01b.nii.gz"]
    first = session.store.trial(session.store.case_order[0])
    assert [p.stem for p in session.case_paths(1)] == [f"{first.left}.nii", f"{first.right}.nii"]
    with pytest.raises(ValueError):
        session.case_path(1)  # a pair has two files
    session.close()
    other = open_session(pair_study_dir, "bob")
    mirrored = other.store.trial(first.trial_id)
    assert (mirrored.left, mirrored.right) == (first.right, first.left)
    assert [p.name for p in other.case_paths(0)] == ["P01b.nii.gz", "P01a.nii.gz"]
    other.close()


def test_every_answer_is_saved_at_once_and_reopening_resumes_at_the_first_unfinished_pair(
        pair_study_dir):
    session = open_session(pair_study_dir)
    answer_all(session)  # the practice trial
    session.next()
    trial_id = session.store.case_order[0]
    session.answer("synthetic_side", "R")
    with sqlite3.connect(pair_study_dir / "ratings" / "ann.sqlite") as conn:
        rows = conn.execute("SELECT case_id, question, value FROM answers").fetchall()
    assert rows == [(trial_id, "synthetic_side", "R")]
    session.close()
    resumed = open_session(pair_study_dir)
    assert resumed.index == 1 and resumed.answers == {"synthetic_side": "R"}
    assert not resumed.can_go_next
    resumed.answer("confidence", "2")
    resumed.next()
    assert resumed.index == 2 and resumed.done_count == 1
    resumed.close()


def test_practice_feedback_tells_the_synthetic_side_after_answering(pair_study_dir):
    """Nothing before both answers; then the side where this reader saw the synthetic member
    and the reader's own pick. The second reader sees the trial mirrored: the other side."""
    session = open_session(pair_study_dir)
    session.answer("synthetic_side", "L")
    assert session.practice_feedback is None and session.practice_truth is None
    session.answer("confidence", "4")
    assert session.practice_truth == "right"
    assert session.practice_feedback == ("The synthetic one was on the right.\n"
                                         "You picked the left one.")
    session.close()
    other = open_session(pair_study_dir, "bob")
    answer_all(other, {"synthetic_side": "L", "confidence": "1"})
    assert other.practice_feedback.startswith("The synthetic one was on the left.")
    other.next()
    assert other.practice_feedback is None  # a study trial has no truth here
    other.close()


def test_time_on_a_pair_accumulates_while_active(pair_study_dir, clock):
    session = open_session(pair_study_dir, clock=clock)
    trial_id = session.store.practice_order[0]
    session.activate()
    clock.advance(5.0)
    session.deactivate()
    clock.advance(100.0)  # not counted: the window was not active
    session.activate()
    clock.advance(2.5)
    assert session.seconds_on_current() == pytest.approx(7.5)
    session.answer("synthetic_side", "R")  # saves the running stretch
    assert session.store.seconds_on_case(trial_id) == pytest.approx(7.5)
    session.close()


def test_the_review_lists_the_pairs_with_their_answers(pair_study_dir):
    session = open_session(pair_study_dir)
    answer_all(session)
    session.next()
    session.answer("synthetic_side", "R")
    rows = review_rows(session)
    assert [(r.label, r.practice, r.answers) for r in rows] == [
        ("Practice 1", True, ("Left", "3")), ("Pair 1", False, ("Right", ""))]
    session.close()


def test_a_preview_shows_the_trials_as_study_json_lists_them(pair_study_dir):
    """Without a reader database the sides are layout A's, the order the listed one."""
    study = Study.open(pair_study_dir)
    session = ReadingSession(study, PreviewStore(study))
    assert session.store.case_order == study.trial_ids
    trial = study.trial(study.trial_ids[0])
    assert [p.stem for p in session.case_paths(1)] == [f"{trial.left}.nii", f"{trial.right}.nii"]
    answer_all(session, {"synthetic_side": "R", "confidence": "2"})
    assert session.practice_truth == "right"
    assert not (pair_study_dir / "ratings" / "ann.sqlite").exists()


def test_the_loader_reads_both_members_as_one_future(pair_study_dir):
    """One future per position; the same one when asked again; retain drops it with a member."""
    session = open_session(pair_study_dir)
    cache = CaseCache(read_case)
    try:
        future = cache.request_all(session.case_paths(1))
        images = future.result(timeout=30)
        assert len(images) == 2 and images[0].array.shape == images[1].array.shape
        assert cache.request_all(session.case_paths(1)) is future
        cache.retain(session.case_paths(1)[:1])
        assert cache.request_all(session.case_paths(1)) is not future
        broken = cache.request_all([session.case_paths(1)[0], pair_study_dir / "none.nii"])
        assert broken.exception(timeout=30) is not None
    finally:
        cache.shutdown()
        session.close()
