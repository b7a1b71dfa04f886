"""RatingStore: the order, answers, time, the practice truth, durability under SIGKILL, and
one error type for a failing database."""

from __future__ import annotations

import csv
import json
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from studies.cli.study import main
from studies.ratings import (
    SCHEMA_VERSION,
    RatingStore,
    RatingStoreError,
    TruthNotShownError,
    read_reader_ratings,
)
from studies.study import Study

ROOT = Path(__file__).resolve().parents[3]
TABLE1 = ("realistic_appearance", "slice_consistency", "anatomical_correctness")


def test_new_store_has_schema_and_a_full_shuffled_order(study_folder):
    study = Study.open(study_folder)
    with RatingStore.open(study, "anna") as store:
        assert sorted(store.case_order) == sorted(study.case_ids)
        assert store.first_unrated_index() == 0
        path = store.path
    assert path == study_folder / "ratings" / "anna.sqlite"
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert tables == {"meta", "case_order", "answers", "case_time", "practice_answers",
                      "case_notes", "answer_history", "truth_shown", "trial_layout"}
    assert conn.execute("SELECT study_id, reader FROM meta").fetchone() == (study.study_id, "anna")


def test_case_order_is_stable_across_reopen_and_differs_between_readers(study_folder):
    study = Study.open(study_folder)
    with RatingStore.open(study, "anna") as store:
        first = list(store.case_order)
    with RatingStore.open(study, "anna") as store:
        assert store.case_order == first
    with RatingStore.open(study, "ben") as store:
        assert store.case_order != first
        assert sorted(store.case_order) == sorted(first)
    # The order comes from reader + study id alone, not from the database file.
    (study_folder / "ratings" / "anna.sqlite").unlink()
    with RatingStore.open(study, "anna") as store:
        assert store.case_order == first


def test_answers_progress_and_time(study_folder):
    study = Study.open(study_folder)
    with RatingStore.open(study, "anna") as store:
        first, second = store.case_order[:2]
        store.record_answer(first, "realistic_appearance", "C", 12.5)
        store.record_answer(first, "slice_consistency", "D", 20.0)
        assert store.answers(first) == {"realistic_appearance": "C", "slice_consistency": "D"}
        assert not store.is_complete(first)
        assert store.seconds_on_case(first) == 20.0  # no add_time yet: the answers' time
        store.record_answer(first, "anatomical_correctness", "B", 31.0)
        store.record_answer(first, "realistic_appearance", "A", 33.0)  # changes its mind
        assert store.answers(first)["realistic_appearance"] == "A"
        assert store.is_complete(first)
        assert store.first_unrated_index() == 1
        store.add_time(first, 30.0)
        store.add_time(first, 4.5)
        assert store.seconds_on_case(first) == 34.5
        assert store.seconds_on_case(second) == 0.0
        for key in TABLE1:
            store.record_answer(second, key, "D", 5.0)
    with RatingStore.open(study, "anna") as store:
        assert store.first_unrated_index() == 2
        assert store.answers(first) == {"realistic_appearance": "A", "slice_consistency": "D",
                                         "anatomical_correctness": "B"}
        assert store.seconds_on_case(first) == 34.5


def test_first_unrated_index_is_len_when_all_done(study_folder):
    study = Study.open(study_folder)
    with RatingStore.open(study, "anna") as store:
        for case_id in store.case_order:
            for key in TABLE1:
                store.record_answer(case_id, key, "C", 1.0)
        assert store.first_unrated_index() == len(store.case_order) == 12


def test_turing_answers_take_letters_or_option_text(turing_study_folder):
    study = Study.open(turing_study_folder)
    with RatingStore.open(study, "anna") as store:
        case_id = store.case_order[0]
        store.record_answer(case_id, "real_or_synthetic", "synthetic", 3.0)
        store.record_answer(case_id, "confidence", "4", 3.0)
        assert store.answers(case_id) == {"real_or_synthetic": "S", "confidence": "4"}
        for key in TABLE1:
            store.record_answer(case_id, key, "B", 4.0)
        assert store.is_complete(case_id)


@pytest.mark.parametrize(("question", "value", "message"), [
    ("realistic_appearance", "E", "'E' is no answer to 'realistic_appearance'; give one of A, B"),
    ("realistic_appearance", "a", "'a' is no answer"),
    ("real_or_synthetic", "R", "does not ask the question 'real_or_synthetic'"),
    ("overall", "A", "does not ask the question 'overall'"),
])
def test_bad_answers_are_refused(study_folder, question, value, message):
    study = Study.open(study_folder)
    with RatingStore.open(study, "anna") as store:
        with pytest.raises(RatingStoreError, match=message.replace("(", r"\(")):
            store.record_answer(store.case_order[0], question, value, 1.0)
        assert store.answers(store.case_order[0]) == {}


def test_bad_case_and_times_are_refused(study_folder):
    study = Study.open(study_folder)
    with RatingStore.open(study, "anna") as store:
        with pytest.raises(RatingStoreError, match="is not part of study"):
            store.record_answer("deadbeef00", "realistic_appearance", "A", 1.0)
        for seconds in (-1.0, float("nan"), float("inf"), "soon"):
            with pytest.raises(RatingStoreError, match="not a valid time"):
                store.add_time(store.case_order[0], seconds)
    with pytest.raises(RatingStoreError, match="were closed"):
        store.answers(store.case_order[0])


def test_answers_survive_sigkill_mid_study(study_folder):
    """A writer killed with SIGKILL keeps every answer it had reported as recorded."""
    child = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        from studies.study import Study
        from studies.ratings import RatingStore
        store = RatingStore.open(Study.open({str(study_folder)!r}), "anna")
        n = 0
        while True:  # rate round and round until killed
            for case_id in store.case_order:
                for key in {TABLE1!r}:
                    store.record_answer(case_id, key, "ABCD"[n % 4], float(n))
                    n += 1
                    print(n, flush=True)
    """)], cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    reported = 0
    while reported < 25:
        reported = int(child.stdout.readline())
    os.kill(child.pid, signal.SIGKILL)
    child.wait()
    child.stdout.close()
    child.stdin.close()
    assert child.returncode == -signal.SIGKILL

    study = Study.open(study_folder)
    with RatingStore.open(study, "anna") as store:  # the dead process holds no lock
        rows = sum(len(store.answers(c)) for c in store.case_order)
        assert rows >= 25
        complete = store.first_unrated_index()
        assert complete >= 25 // 3
    conn = sqlite3.connect(study_folder / "ratings" / "anna.sqlite")
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


def test_a_database_failing_under_the_store_raises_rating_store_error(study_folder):
    """Callers (the app) catch one error type: sqlite's own errors come out as RatingStoreError."""
    study = Study.open(study_folder)
    store = RatingStore.open(study, "anna")
    case = store.case_order[0]
    other = sqlite3.connect(store.path)
    other.executescript("DROP TABLE answers; DROP TABLE case_time;")
    other.close()
    calls = [lambda: store.record_answer(case, "realistic_appearance", "C", 1.0),
             lambda: store.add_time(case, 2.0), lambda: store.answers(case),
             lambda: store.seconds_on_case(case), store.first_unrated_index]
    for call in calls:
        with pytest.raises(RatingStoreError, match=r"anna\.sqlite failed \(no such table"):
            call()
    store.close()


def _truth_when_flagged(study: Study) -> Study:
    manifest = json.loads((study.folder / "study.json").read_text())
    manifest["practice_truth_when_flagged"] = True
    (study.folder / "study.json").write_text(json.dumps(manifest))
    return Study.open(study.folder)


@pytest.mark.parametrize("shown", [False, True])
def test_a_flagged_practice_case_shows_its_truth_only_where_the_study_says_so(rated, tmp_path,
                                                                             answer_case, shown):
    """Flagged to see the truth, then unflagged and answered: where the study shows the truth
    of a flagged case, those answers are marked (store, export); by default nothing is shown."""
    study, path, _ = rated
    if shown:
        study = _truth_when_flagged(study)
    with RatingStore.open(study, "anna") as store:
        store.set_not_assessable("P02", True)
        if shown:
            assert store.practice_truth("P02") == "real"
        else:
            with pytest.raises(TruthNotShownError, match="flagged not assessable"):
                store.practice_truth("P02")
        store.set_not_assessable("P02", False)
        answer_case(store, "P02")
        assert store.practice_truth("P02") == "real"  # answered: shown either way
    ratings = read_reader_ratings(path, study)
    assert ratings.answered_after_truth("P02") is shown
    out = tmp_path / "ratings.csv"
    assert main(["export", str(study.folder), "--out", str(out), "--include-practice"]) == 0
    rows = {r["case_id"]: r["after_truth"]
            for r in csv.DictReader(out.read_text(encoding="utf-8").splitlines())}
    assert (rows["P01"], rows["P02"]) == ("1", "1" if shown else "0")


@pytest.mark.parametrize("shown", [False, True])
def test_the_preview_store_follows_the_studys_rule_for_flagged_practice(rated, shown):
    """Screenshots (no reader file) show a flagged practice case's truth only where the study
    says so, as the reader's own store does."""
    from reader_app.model.preview_store import PreviewStore

    study, _, _ = rated
    if shown:
        study = _truth_when_flagged(study)
    store = PreviewStore(study)
    store.set_not_assessable("P02", True)
    if shown:
        assert store.practice_truth("P02") == "real"
    else:
        with pytest.raises(TruthNotShownError):
            store.practice_truth("P02")


def test_a_truth_setting_that_is_not_true_or_false_is_refused(rated):
    from studies.study import StudyError

    study, _, _ = rated
    manifest = json.loads((study.folder / "study.json").read_text())
    manifest["practice_truth_when_flagged"] = "yes"
    (study.folder / "study.json").write_text(json.dumps(manifest))
    with pytest.raises(StudyError, match="practice_truth_when_flagged"):
        Study.open(study.folder)
