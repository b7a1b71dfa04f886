"""RatingStore: answers, order, durability under SIGKILL, the reader lock, bad databases."""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from studies.ratings import (
    SCHEMA_VERSION,
    RatingStore,
    RatingStoreError,
    ReaderLockedError,
    existing_reader,
    validate_reader,
)
from studies.study import Study

ROOT = Path(__file__).resolve().parents[2]
TABLE1 = ("realistic_appearance", "slice_consistency", "anatomical_correctness")


def _child(code: str) -> subprocess.Popen:
    """A Python process running `code` with the repository importable, lines on stdout."""
    return subprocess.Popen([sys.executable, "-c", textwrap.dedent(code)], cwd=ROOT,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)


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
                      "case_notes", "answer_history", "truth_shown"}
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


@pytest.mark.parametrize("name", ["", " anna", "anna ", "../anna", "a/b", "a\\b", ".hidden",
                                  "anna\n", "x" * 65, "anna;drop", None])
def test_unsafe_reader_names_are_refused(study_folder, name):
    study = Study.open(study_folder)
    with pytest.raises(RatingStoreError, match="is not allowed; use 1 to 64 letters"):
        RatingStore.open(study, name)
    assert list((study_folder / "ratings").iterdir()) == []


@pytest.mark.parametrize("name", ["anna", "Dr. Anna Müller", "reader_2", "R-1.b"])
def test_safe_reader_names_are_kept(study_folder, name):
    assert validate_reader(name) == name
    with RatingStore.open(Study.open(study_folder), name) as store:
        assert store.reader == name
        assert store.path.name == f"{name}.sqlite"


def test_spellings_of_one_reader_continue_one_database(study_folder):
    """"reader x" and "Reader  X" are the reader "Reader X": one database, one order, one lock."""
    study = Study.open(study_folder)
    with RatingStore.open(study, "Reader  X") as store:  # a new reader: spaces collapsed
        assert store.reader == "Reader X" and store.path.name == "Reader X.sqlite"
        store.record_answer(store.case_order[0], "realistic_appearance", "C", 2.0)
        order = store.case_order
        for other in ("reader x", "READER  X"):
            with pytest.raises(ReaderLockedError):
                RatingStore.open(study, other)
    for other in ("reader x", "READER  X", "Reader X"):
        with RatingStore.open(study, other) as store:
            assert (store.reader, store.case_order) == ("Reader X", order)
            assert store.answers(order[0]) == {"realistic_appearance": "C"}
    assert existing_reader(study, "rEaDeR x") == "Reader X"
    assert existing_reader(study, "Reader Y") is None
    assert sorted(p.name for p in study.ratings_dir.glob("*.sqlite")) == ["Reader X.sqlite"]


def test_two_old_databases_that_differ_only_in_case_are_refused(study_folder):
    """Made before names were matched: open neither by guessing, say which exist."""
    study = Study.open(study_folder)
    for name in ("Ann", "ann"):
        with RatingStore.open(study, name):
            pass  # each opened by its exact name before the other existed
        if name == "Ann":
            (study.ratings_dir / "Ann.sqlite").rename(study.ratings_dir / "keep.sqlite")
    (study.ratings_dir / "keep.sqlite").rename(study.ratings_dir / "Ann.sqlite")
    with pytest.raises(RatingStoreError, match="The readers 'Ann' and 'ann' of .* differ only"):
        RatingStore.open(study, "ANN")


def test_answers_survive_sigkill_mid_study(study_folder):
    """A writer killed with SIGKILL keeps every answer it had reported as recorded."""
    child = _child(f"""
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
    """)
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


def test_second_writer_for_one_reader_is_refused(study_folder):
    study = Study.open(study_folder)
    child = _child(f"""
        import sys
        from studies.study import Study
        from studies.ratings import RatingStore
        store = RatingStore.open(Study.open({str(study_folder)!r}), "anna")
        print("open", flush=True)
        sys.stdin.readline()
        store.close()
        print("closed", flush=True)
        sys.stdin.readline()
    """)
    assert child.stdout.readline().strip() == "open"
    try:
        with pytest.raises(ReaderLockedError) as caught:
            RatingStore.open(study, "anna")
        assert str(caught.value) == ("Reader 'anna' already has this study open in another "
                                     "window or process.")
        with RatingStore.open(study, "ben"):  # other readers are not affected
            pass
        child.stdin.write("\n")
        child.stdin.flush()
        assert child.stdout.readline().strip() == "closed"
        with RatingStore.open(study, "anna") as store:
            assert store.reader == "anna"
    finally:
        child.kill()
        child.wait()
        child.stdout.close()
        child.stdin.close()


def test_second_store_in_the_same_process_is_refused_until_closed(study_folder):
    study = Study.open(study_folder)
    store = RatingStore.open(study, "anna")
    with pytest.raises(ReaderLockedError):
        RatingStore.open(study, "anna")
    store.close()
    RatingStore.open(study, "anna").close()


def test_corrupt_database_is_reported_and_left_untouched(study_folder):
    study = Study.open(study_folder)
    path = study_folder / "ratings" / "anna.sqlite"
    garbage = b"this is not a database, just some bytes " * 200
    path.write_bytes(garbage)
    for _ in range(2):  # the failed open released the lock: the second try fails the same way
        with pytest.raises(RatingStoreError) as caught:
            RatingStore.open(study, "anna")
        assert not isinstance(caught.value, ReaderLockedError)
        assert str(path) in str(caught.value) and "left untouched" in str(caught.value)
    assert path.read_bytes() == garbage


def test_database_of_another_study_is_refused(study_folder, tmp_path):
    other = tmp_path / "other"
    shutil.copytree(study_folder, other)
    manifest = json.loads((other / "study.json").read_text())
    manifest["study_id"] = "0123456789abcdef"
    (other / "study.json").write_text(json.dumps(manifest))
    RatingStore.open(Study.open(other), "anna").close()
    shutil.copy(other / "ratings" / "anna.sqlite", study_folder / "ratings" / "anna.sqlite")
    with pytest.raises(RatingStoreError, match="belongs to study 0123456789abcdef"):
        RatingStore.open(Study.open(study_folder), "anna")


def test_newer_schema_is_refused(study_folder):
    study = Study.open(study_folder)
    RatingStore.open(study, "anna").close()
    conn = sqlite3.connect(study_folder / "ratings" / "anna.sqlite")
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.close()
    with pytest.raises(RatingStoreError, match="newer than this mdiff reads"):
        RatingStore.open(study, "anna")


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
