"""The reading session model without Qt: order, answers, navigation, resume and timing."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from reader_app.preview_store import PreviewStore
from reader_app.session import ReadingSession
from studies.ratings import RatingStore
from studies.study import Study

ROOT = Path(__file__).resolve().parents[2]
ALL_A = {"realistic_appearance": "A", "slice_consistency": "B", "anatomical_correctness": "C"}


def open_session(folder: Path, clock=None, reader: str = "ann") -> ReadingSession:
    """A session over a real RatingStore."""
    study = Study.open(folder)
    store = RatingStore.open(study, reader)
    return ReadingSession(study, store, clock=clock) if clock else ReadingSession(study, store)


def answer_all(session: ReadingSession, answers: dict[str, str] = ALL_A) -> None:
    """Answer every question of the current case."""
    for key, value in answers.items():
        session.answer(key, value)


def test_model_modules_import_with_qt_uninstalled():
    """The session, display, windowing, keymap, loader and prefetch modules and the command's
    parser work on a machine without PySide6/pyqtgraph."""
    code = (
        "import sys\n"
        "sys.modules['PySide6'] = None\n"
        "sys.modules['pyqtgraph'] = None\n"
        "import reader_app.session, reader_app.windowing, reader_app.keymap, reader_app.loader\n"
        "import reader_app.preview_store, reader_app.opening, reader_app.display\n"
        "import reader_app.events, reader_app.prefetch, reader_app.cli.reader\n"
    )
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True)


def test_session_opens_at_the_first_case_in_the_readers_order(study_dir):
    """The case list is the store's per-reader shuffled order, starting at case 1."""
    session = open_session(study_dir)
    assert session.index == 0 and session.case_count == 3 and not session.finished
    assert session.case_path(0).name == f"{session.store.case_order[0]}.nii.gz"
    session.close()


def test_next_needs_every_answer_and_answers_are_saved_at_once(study_dir):
    """Next is refused until all three questions are answered; each answer is committed."""
    session = open_session(study_dir)
    case_id = session.store.case_order[0]
    session.answer("realistic_appearance", "C")
    assert not session.can_go_next
    with pytest.raises(RuntimeError):
        session.next()
    session.answer("slice_consistency", "D")
    session.answer("anatomical_correctness", "B")
    assert session.can_go_next and session.done_count == 1
    session.close()
    with RatingStore.open(Study.open(study_dir), "ann") as store:
        assert store.answers(case_id) == {"realistic_appearance": "C", "slice_consistency": "D",
                                          "anatomical_correctness": "B"}


def test_invalid_answers_are_refused(study_dir):
    """Unknown questions and letters are errors, not silently stored."""
    session = open_session(study_dir)
    with pytest.raises(ValueError):
        session.answer("realistic_appearance", "E")
    with pytest.raises(ValueError):
        session.answer("real_or_synthetic", "R")
    session.close()


def test_events_tell_views_about_answers_progress_and_case_changes(study_dir):
    """Views follow the model through its events."""
    session = open_session(study_dir)
    seen: list[tuple] = []
    session.answer_changed.connect(lambda k, v: seen.append(("answer", k, v)))
    session.progress_changed.connect(lambda d, t: seen.append(("progress", d, t)))
    session.case_changed.connect(lambda i: seen.append(("case", i)))
    answer_all(session)
    session.answer("realistic_appearance", "A")  # unchanged: no event, no write
    session.next()
    assert seen == [("answer", "realistic_appearance", "A"), ("answer", "slice_consistency", "B"),
                    ("answer", "anatomical_correctness", "C"), ("progress", 1, 3), ("case", 1)]
    session.close()


def test_previous_then_change_an_answer(study_dir):
    """Going back shows the saved answers; a new answer replaces the old one."""
    session = open_session(study_dir)
    assert not session.can_go_previous
    answer_all(session)
    session.next()
    session.previous()
    assert session.index == 0 and session.answers == ALL_A
    session.answer("slice_consistency", "D")
    assert session.answers["slice_consistency"] == "D"
    session.close()
    with RatingStore.open(Study.open(study_dir), "ann") as store:
        assert store.answers(store.case_order[0])["slice_consistency"] == "D"


def test_reopening_resumes_at_the_first_unrated_case_with_its_answers(study_dir):
    """A crash or close after case 1 and half of case 2 resumes on case 2, answers shown."""
    session = open_session(study_dir)
    answer_all(session)
    session.next()
    session.answer("realistic_appearance", "D")
    session.close()
    again = open_session(study_dir)
    assert again.index == 1 and again.answers == {"realistic_appearance": "D"}
    assert again.done_count == 1
    again.close()


def test_finishing_the_last_case_ends_the_study(study_dir):
    """After the last case the session is finished; reopening shows the study complete."""
    session = open_session(study_dir)
    for _ in range(3):
        answer_all(session)
        session.next()
    assert session.finished and session.done_count == 3 and not session.can_go_next
    session.close()
    assert open_session(study_dir).finished


def test_only_active_time_counts(study_dir, clock):
    """Time accumulates while the window is active, not while it is in the background."""
    session = open_session(study_dir, clock)
    case_id = session.store.case_order[0]
    session.activate()
    clock.advance(10)
    session.deactivate()
    clock.advance(500)  # the reader is away: not counted
    session.activate()
    clock.advance(5)
    session.answer("realistic_appearance", "B")
    assert session.store.seconds_on_case(case_id) == pytest.approx(15)
    clock.advance(3)
    assert session.seconds_on_current() == pytest.approx(18)
    answer_all(session)
    clock.advance(2)
    session.next()  # leaving the case saves its running time
    clock.advance(7)
    session.close()
    with RatingStore.open(Study.open(study_dir), "ann") as store:
        assert store.seconds_on_case(case_id) == pytest.approx(20)
        assert store.seconds_on_case(store.case_order[1]) == pytest.approx(7)


def test_time_given_with_an_answer_is_the_time_so_far(study_dir, clock):
    """record_answer gets the case's total active seconds at the moment of the answer."""
    session = open_session(study_dir, clock)
    session.activate()
    clock.advance(4)
    session.answer("realistic_appearance", "B")
    clock.advance(6)
    session.answer("slice_consistency", "B")
    session.close()
    with sqlite3.connect(study_dir / "ratings" / "ann.sqlite") as conn:
        rows = dict(conn.execute("SELECT question, seconds_on_case FROM answers"))
    assert rows == {"realistic_appearance": pytest.approx(4), "slice_consistency":
                    pytest.approx(10)}


def test_unreadable_case_is_logged_and_can_be_skipped(study_dir):
    """A case that cannot be read may be skipped; the log names the file, the reader sees only
    the case number."""
    session = open_session(study_dir)
    flagged: list[int] = []
    session.case_unreadable.connect(flagged.append)
    file_name = session.case_path(0).name
    message = session.mark_unreadable(0, "gzip: bad header")
    assert message == "Case 1 could not be read."
    assert flagged == [0] and session.can_go_next and session.current_unreadable
    with pytest.raises(RuntimeError):
        session.answer("realistic_appearance", "A")
    log = (study_dir / "log.txt").read_text()
    assert file_name in log and "gzip: bad header" in log
    session.next()
    for _ in range(2):
        answer_all(session)
        session.next()
    # Past the last case the unreadable one is not offered again: the study ends.
    assert session.finished
    session.close()


def test_preview_store_keeps_the_study_folder_untouched(study_dir):
    """Screenshots without a reader write no ratings file."""
    study = Study.open(study_dir)
    session = ReadingSession(study, PreviewStore(study))
    answer_all(session)
    session.go_to(2)
    assert session.index == 2
    session.close()
    assert list((study_dir / "ratings").iterdir()) == []


def test_previous_from_the_end_returns_to_the_last_case(study_dir):
    """A reader who finished too soon goes back to the last case with its answers shown."""
    session = open_session(study_dir)
    for _ in range(3):
        answer_all(session)
        session.next()
    assert session.finished and session.can_go_previous
    session.previous()
    assert session.index == 2 and session.answers == ALL_A and not session.finished
    session.close()
