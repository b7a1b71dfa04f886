"""What a reader's database keeps beside the answers: practice answers, comments, flags, history.

The API the reader app calls for practice feedback, comments, the review list and answer history.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path

import pytest

from studies.ratings import (
    COMMENT,
    NOT_ASSESSABLE,
    SCHEMA_VERSION,
    AnswersFinalError,
    CaseNote,
    RatingStore,
    RatingStoreError,
    TruthNotShownError,
    read_reader_ratings,
)
from studies.study import Study

TABLE1 = ("realistic_appearance", "slice_consistency", "anatomical_correctness")
PRACTICE = {"P01": "synthetic", "P02": "real"}
V1_STUDY = Path(__file__).parent / "data" / "v1_study"


def _answer_all(store: RatingStore, case_id: str, letters=("C", "C", "C")) -> None:
    for question, letter in zip(TABLE1, letters, strict=True):
        store.record_answer(case_id, question, letter, 5.0)


@pytest.fixture
def practice_study(tmp_path, study_folder_with) -> Study:
    """A 6-case study with two practice cases; answers editable (the default)."""
    return Study.open(study_folder_with(tmp_path / "study", n_cases=6, practice=PRACTICE))


@pytest.fixture
def final_study(tmp_path, study_folder_with) -> Study:
    """A 6-case study with two practice cases whose answers are final once a case is done."""
    return Study.open(study_folder_with(tmp_path / "final", n_cases=6, practice=PRACTICE,
                                        answers_editable=False))


def test_practice_answers_are_stored_apart_from_the_study_answers(practice_study):
    with RatingStore.open(practice_study, "anna") as store:
        assert store.practice_order == ["P01", "P02"]
        assert "P01" not in store.case_order
        _answer_all(store, "P01")
        store.record_answer("P02", "realistic_appearance", "A", 3.0)
        assert store.answers("P01") == dict(zip(TABLE1, "CCC", strict=True))
        assert store.is_complete("P01") and not store.is_complete("P02")
        assert store.first_unrated_index() == 0  # no study case was rated
        path = store.path
    ratings = read_reader_ratings(path)
    assert ratings.answers == {}
    assert ratings.practice_answers["P01"] == dict(zip(TABLE1, "CCC", strict=True))
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT COUNT(*) FROM answers").fetchone()[0] == 0
        assert conn.execute("SELECT COUNT(*) FROM practice_answers").fetchone()[0] == 4


def test_practice_truth_only_after_the_case_is_answered(practice_study):
    with RatingStore.open(practice_study, "anna") as store:
        with pytest.raises(TruthNotShownError, match="P01 is not answered yet"):
            store.practice_truth("P01")
        store.record_answer("P01", "realistic_appearance", "B", 2.0)
        with pytest.raises(TruthNotShownError):  # one answer is not the whole case
            store.practice_truth("P01")
        _answer_all(store, "P01")
        assert store.practice_truth("P01") == "synthetic"
        assert not store.practice_done()
        store.set_not_assessable("P02", True)  # a flagged case is done too
        assert store.practice_done()
        with pytest.raises(TruthNotShownError, match="P02 is flagged not assessable"):
            store.practice_truth("P02")  # but shows its truth only where the study says so
        for other in (store.case_order[0], "P03"):
            with pytest.raises(RatingStoreError, match="no practice case"):
                store.practice_truth(other)


def test_comment_and_flag_survive_close_and_reopen(practice_study):
    with RatingStore.open(practice_study, "anna") as store:
        case_id = store.case_order[2]
        store.set_comment(case_id, "motion artefact, slices 3-5")
        store.set_not_assessable(case_id, True)
        store.set_comment("P01", "practice note")
    with RatingStore.open(practice_study, "anna") as store:
        assert store.note(case_id) == CaseNote("motion artefact, slices 3-5", True)
        assert store.note("P01") == CaseNote("practice note", False)
        assert store.note(store.case_order[0]) == CaseNote()
        record = store.current(case_id)
        assert (record.done, record.answers, record.practice) == (True, {}, False)
        # A flagged case counts as done, so the reader resumes at the first other case.
        assert store.first_unrated_index() == 0
        for other in store.case_order[:2]:
            _answer_all(store, other)
        assert store.first_unrated_index() == 3
    ratings = read_reader_ratings(store.path)
    assert ratings.note(case_id).not_assessable and ratings.is_done(case_id, TABLE1)


def test_bad_comments_and_flags_are_refused(practice_study):
    with RatingStore.open(practice_study, "anna") as store:
        case_id = store.case_order[0]
        with pytest.raises(RatingStoreError, match="at most 10000 characters"):
            store.set_comment(case_id, "x" * 10_001)
        with pytest.raises(RatingStoreError, match="not a flag"):
            store.set_not_assessable(case_id, 1)
        with pytest.raises(RatingStoreError, match="not part of study"):
            store.set_comment("feedbeef", "no such case")


def test_a_change_keeps_the_earlier_answer_in_the_history(practice_study):
    with RatingStore.open(practice_study, "anna") as store:
        case_id = store.case_order[0]
        _answer_all(store, case_id)
        store.record_answer(case_id, "realistic_appearance", "C", 6.0)  # the same: no change
        store.record_answer(case_id, "realistic_appearance", "A", 9.0)
        store.set_comment(case_id, "first")
        store.set_comment(case_id, "second")
        store.set_not_assessable(case_id, True)
        store.set_not_assessable(case_id, False)
        assert store.answers(case_id)["realistic_appearance"] == "A"
        history = store.history(case_id)
    assert [(h.item, h.value) for h in history] == [
        ("realistic_appearance", "C"), ("slice_consistency", "C"),
        ("anatomical_correctness", "C"), ("realistic_appearance", "A"), (COMMENT, "first"),
        (COMMENT, "second"), (NOT_ASSESSABLE, "1"), (NOT_ASSESSABLE, "0")]
    assert history[3].seconds_on_case == 9.0
    assert all(h.changed_at >= history[0].changed_at for h in history)


def test_final_answers_cannot_change_once_a_case_is_done(final_study):
    with RatingStore.open(final_study, "anna") as store:
        case_id = store.case_order[0]
        store.record_answer(case_id, "realistic_appearance", "B", 1.0)
        store.record_answer(case_id, "realistic_appearance", "C", 2.0)  # not done yet: allowed
        assert store.can_change(case_id)
        _answer_all(store, case_id)
        assert not store.can_change(case_id) and not store.current(case_id).can_change
        with pytest.raises(AnswersFinalError, match="final"):
            store.record_answer(case_id, "slice_consistency", "D", 3.0)
        with pytest.raises(AnswersFinalError):
            store.set_not_assessable(case_id, True)
        store.record_answer(case_id, "slice_consistency", "C", 3.0)  # the same answer again
        store.set_comment(case_id, "a comment can still change")
        assert store.answers(case_id) == dict(zip(TABLE1, "CCC", strict=True))
        # A flagged case is done as well: the flag is then final.
        flagged = store.case_order[1]
        store.set_not_assessable(flagged, True)
        with pytest.raises(AnswersFinalError):
            store.set_not_assessable(flagged, False)
        assert [h.item for h in store.history(case_id)] == \
            ["realistic_appearance", "realistic_appearance", "slice_consistency",
             "anatomical_correctness", COMMENT]


def test_the_review_list_shows_every_case_given_something_in_shown_order(practice_study):
    with RatingStore.open(practice_study, "anna") as store:
        first, second, third = store.case_order[:3]
        _answer_all(store, third, ("A", "B", "C"))
        store.record_answer(first, "slice_consistency", "D", 4.0)
        store.set_comment(second, "only a comment")
        store.set_comment(store.case_order[4], "")  # nothing given
        _answer_all(store, "P02")
        store.add_time(third, 12.5)
        review = store.review_list()
        assert [r.case_id for r in review] == [first, second, third]
        assert review[2].answers == dict(zip(TABLE1, "ABC", strict=True))
        assert review[2].done and not review[0].done
        assert review[2].seconds_on_case == 12.5 and review[2].answered_at
        assert review[1].note.comment == "only a comment" and review[1].answered_at == ""
        with_practice = store.review_list(include_practice=True)
        assert [r.case_id for r in with_practice] == ["P02", first, second, third]
        assert with_practice[0].practice


def test_an_old_database_is_migrated_without_losing_anything(tmp_path):
    # tests/studies/data/v1_study was written by the schema 1 RatingStore of main at 9cb8c11:
    # reader Anna answered every question of her first case (C D B S 3, 11.5 s), two of her
    # second (A, B; 6 s on it), and every question of her third, changing realistic_appearance
    # from B to D (B B B R 1, then D; 25 s).
    folder = tmp_path / "v1_study"
    shutil.copytree(V1_STUDY, folder)
    (folder / "cases").mkdir()  # the (empty) case files are not stored with the test data
    for case_id in json.loads((folder / "study.json").read_text())["cases"]:
        (folder / "cases" / f"{case_id}.nii.gz").write_bytes(b"")
    study = Study.open(folder)
    path = folder / "ratings" / "Anna.sqlite"
    before = read_reader_ratings(path)  # read as schema 1, without writing
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == 1
        old_rows = sorted(conn.execute("SELECT * FROM answers").fetchall())
        old_times = sorted(conn.execute("SELECT * FROM case_time").fetchall())
    first, second, third = before.case_order[:3]
    assert before.answers[first] == {"realistic_appearance": "C", "slice_consistency": "D",
                                     "anatomical_correctness": "B", "real_or_synthetic": "S",
                                     "confidence": "3"}
    with RatingStore.open(study, "anna") as store:  # opening migrates it
        assert store.reader == "Anna" and store.case_order == before.case_order
        assert store.answers(third)["realistic_appearance"] == "D"
        assert store.seconds_on_case(second) == 6.0
        assert store.first_unrated_index() == 1
        assert [(h.item, h.value) for h in store.history(second)] == \
            [("realistic_appearance", "A"), ("slice_consistency", "B")]
        store.set_comment(second, "after the migration")
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        assert sorted(conn.execute("SELECT * FROM answers").fetchall()) == old_rows
        assert sorted(conn.execute("SELECT * FROM case_time").fetchall()) == old_times
        assert conn.execute("SELECT COUNT(*) FROM answer_history").fetchone()[0] == \
            len(old_rows) + 1
    after = read_reader_ratings(path)
    assert after.answers == before.answers and after.note(second).comment == \
        "after the migration"
