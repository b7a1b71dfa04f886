"""The reading session model without Qt: order, answers, navigation, resume and timing."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from reader_app.model.preview_store import PreviewStore
from reader_app.model.review import format_seconds, review_rows
from reader_app.model.session import FINAL_REFUSED, ReadingSession
from studies.ratings import RatingStore, TruthNotShownError, read_reader_ratings
from studies.study import Study

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


# --- practice block, comment and flag, final answers, review ----------------------------------

class TruthSpy:
    """A RatingStore wrapper that records every practice_truth call (no study case's may come)."""

    def __init__(self, store: RatingStore) -> None:
        self.store = store
        self.asked: list[str] = []

    def practice_truth(self, case_id: str) -> str:
        """Record the id, then ask the store."""
        self.asked.append(case_id)
        return self.store.practice_truth(case_id)

    def __getattr__(self, name: str):
        return getattr(self.store, name)


def test_practice_cases_come_first_and_never_count_in_the_progress(make_practice_study):
    """Positions run over P01, P02, then the reader's order; labels say "Practice k of 2" and
    "Case k of 4"; done_count and progress events count study cases only."""
    session = open_session(make_practice_study())
    store = session.store
    assert session.practice_count == 2 and session.case_count == 4
    assert session.position_count == 6 and session.index == 0
    assert [session.label(i) for i in range(6)] == ["Practice 1 of 2", "Practice 2 of 2",
                                                    "Case 1 of 4", "Case 2 of 4",
                                                    "Case 3 of 4", "Case 4 of 4"]
    assert session.case_path(0).parent.name == "practice"
    assert session.case_path(2).name.startswith(store.case_order[0])
    progress: list[tuple[int, int]] = []
    session.progress_changed.connect(lambda done, total: progress.append((done, total)))
    for _ in range(2):
        answer_all(session)
        session.next()
    assert session.done_count == 0 and progress == [] and session.index == 2
    answer_all(session)
    assert session.done_count == 1 and progress == [(1, 4)]
    session.close()
    with RatingStore.open(Study.open(session.study.folder), "ann") as again:
        assert again.answers("P01") == ALL_A and again.answers(again.case_order[0]) == ALL_A


def test_practice_truth_only_once_done_and_never_for_a_study_case(make_practice_study):
    """No feedback before the last question is answered; then the case's truth; a study case
    never has any, and the store is never asked for a study case's truth."""
    folder = make_practice_study()
    study = Study.open(folder)
    spy = TruthSpy(RatingStore.open(study, "ann"))
    session = ReadingSession(study, spy)
    session.answer("realistic_appearance", "A")
    session.answer("slice_consistency", "A")
    assert session.practice_feedback is None
    session.answer("anatomical_correctness", "A")
    assert sorted(study.practice.values()) == ["real", "synthetic"]
    assert session.practice_feedback == f"This practice case was {study.practice['P01']}."
    session.next()
    assert session.practice_feedback is None
    session.set_not_assessable(True)  # flagged is done, but the study keeps the truth then
    assert session.can_go_next and session.practice_feedback is None
    session.next()
    answer_all(session)
    assert session.practice_feedback is None and not session.current_is_practice
    session.next()
    assert set(spy.asked) == {"P01", "P02"}
    session.close()


def _truth_when_flagged(folder: Path) -> Path:
    """The study at `folder` with study.json's practice_truth_when_flagged set to true."""
    manifest = json.loads((folder / "study.json").read_text())
    manifest["practice_truth_when_flagged"] = True
    (folder / "study.json").write_text(json.dumps(manifest))
    return folder


def test_answers_given_after_the_truth_was_shown_are_marked(make_practice_study):
    """Flag a practice case to see its truth (where the study shows it then), take the flag
    back and answer: the answers are marked after_truth; so is an answer changed after the
    truth of an answered case, and not the answers given before it."""
    folder = _truth_when_flagged(make_practice_study())
    study = Study.open(folder)
    session = open_session(folder)
    answer_all(session)
    assert session.practice_feedback == f"This practice case was {study.practice['P01']}."
    session.answer("realistic_appearance", "D")  # changed once the truth was known
    session.next()
    session.set_not_assessable(True)
    assert session.practice_feedback == f"This practice case was {study.practice['P02']}."
    session.set_not_assessable(False)
    assert session.practice_feedback is None
    answer_all(session)
    session.close()
    ratings = read_reader_ratings(folder / "ratings" / "ann.sqlite", study)
    assert ratings.after_truth == {"P01": {"realistic_appearance"},
                                   "P02": {"realistic_appearance", "slice_consistency",
                                           "anatomical_correctness"}}
    assert sorted(ratings.truth_shown) == ["P01", "P02"] and ratings.history_disagrees == []


def test_answers_before_the_truth_are_not_marked(make_practice_study):
    """In a study that keeps a flagged case's truth, flagging shows nothing and records no
    showing; answers changed before the truth are not marked, and the truth comes once every
    question is answered."""
    folder = make_practice_study()
    session = open_session(folder)
    session.answer("realistic_appearance", "B")
    session.set_not_assessable(True)
    assert session.practice_feedback is None
    session.set_not_assessable(False)
    session.answer("realistic_appearance", "C")
    answer_all(session, {"slice_consistency": "A", "anatomical_correctness": "A"})
    assert session.practice_feedback is not None
    session.close()
    ratings = read_reader_ratings(folder / "ratings" / "ann.sqlite")
    assert ratings.after_truth == {} and list(ratings.truth_shown) == ["P01"]


def test_practice_feedback_repeats_the_readers_real_or_synthetic_call(make_practice_study):
    """In a Turing study the feedback says the truth, then on its own line what the reader
    called it."""
    folder = make_practice_study(turing=True)
    truth = Study.open(folder).practice["P01"]
    session = open_session(folder)
    answer_all(session, {**ALL_A, "real_or_synthetic": "S"})
    assert session.practice_feedback is None  # the confidence is still to come
    session.answer("confidence", "2")
    assert session.practice_feedback == f"This practice case was {truth}.\nYou answered synthetic."
    session.close()


def test_the_flag_makes_a_case_done_and_taking_it_back_undoes_that(study_dir):
    """"Image cannot be assessed" enables Next and counts the case; unflagged, it is open
    again; both saved at once."""
    session = open_session(study_dir)
    case_id = session.store.case_order[0]
    progress: list[tuple[int, int]] = []
    session.progress_changed.connect(lambda done, total: progress.append((done, total)))
    session.answer("realistic_appearance", "B")
    session.set_not_assessable(True)
    assert session.can_go_next and session.done_count == 1 and session.note.not_assessable
    assert session.store.note(case_id).not_assessable
    session.set_not_assessable(False)
    assert not session.can_go_next and session.done_count == 0
    assert progress == [(1, 3), (0, 3)]
    session.set_not_assessable(True)
    session.next()
    session.close()
    again = open_session(study_dir)
    assert again.index == 1 and again.done_count == 1  # a flagged case is not offered again
    again.close()


def test_a_typed_comment_is_saved_on_leaving_the_case_and_on_close(study_dir):
    """edit_comment keeps the text; save_comment, next() and close() store it; it comes back on
    reopening."""
    session = open_session(study_dir)
    first, second = session.store.case_order[:2]
    session.edit_comment("motion")
    assert session.note.comment == "motion" and session.store.note(first).comment == ""
    session.save_comment()
    assert session.store.note(first).comment == "motion"
    session.edit_comment("motion artefact")
    answer_all(session)
    session.next()  # leaving saves
    assert session.store.note(first).comment == "motion artefact"
    session.edit_comment("noisy")
    session.close()  # closing saves
    again = open_session(study_dir)
    assert again.index == 1 and again.note.comment == "noisy"
    again.previous()
    assert again.note.comment == "motion artefact"
    assert [c.value for c in again.store.history(first) if c.item == "comment"] == \
        ["motion", "motion artefact"]
    assert again.store.note(second).comment == "noisy"
    again.close()


def test_a_change_keeps_the_history_and_final_answers_refuse_it(make_practice_study):
    """Editable: a changed answer replaces the old one and the history has both. Final: a done
    case's answer and flag stay, `answer_refused` says one sentence; comments still change."""
    session = open_session(make_practice_study(answers_editable=True))
    answer_all(session)
    session.answer("slice_consistency", "D")
    assert [c.value for c in session.store.history("P01") if c.item == "slice_consistency"] == \
        ["B", "D"]
    session.close()

    session = open_session(make_practice_study(answers_editable=False, name="final"))
    refused: list[str] = []
    session.answer_refused.connect(refused.append)
    session.answer("realistic_appearance", "A")
    session.answer("realistic_appearance", "C")  # not done yet: may still change
    assert session.can_change
    answer_all(session, {"slice_consistency": "B", "anatomical_correctness": "C"})
    assert not session.can_change
    session.answer("slice_consistency", "D")
    session.set_not_assessable(True)
    assert refused == [FINAL_REFUSED, FINAL_REFUSED]
    assert FINAL_REFUSED.count(".") == 1 and FINAL_REFUSED.endswith(".")
    assert session.answers["slice_consistency"] == "B" and not session.note.not_assessable
    assert session.store.answers("P01")["slice_consistency"] == "B"
    session.edit_comment("unsure")
    session.save_comment()
    assert session.store.note("P01").comment == "unsure"
    session.close()


def test_review_rows_list_every_case_given_with_labels_times_and_changes(make_practice_study,
                                                                        clock):
    """One row per case with anything given, practice first and marked, answers as shown in
    the panel, flag, comment, time, and whether an answer changed; no id anywhere."""
    session = open_session(make_practice_study(), clock)
    session.activate()
    clock.advance(30)
    answer_all(session)
    session.answer("realistic_appearance", "D")  # a change
    session.next()
    session.set_not_assessable(True)
    session.edit_comment("blurred")
    session.next()
    clock.advance(75)
    answer_all(session)
    session.next()
    session.edit_comment("looked twice")
    session.save_comment()
    session.deactivate()
    rows = review_rows(session)
    assert [(r.index, r.label, r.practice) for r in rows] == [
        (0, "Practice 1", True), (1, "Practice 2", True), (2, "Case 1", False),
        (3, "Case 2", False)]
    assert rows[0].answers == ("D", "B", "C") and rows[0].changed
    assert rows[1].not_assessable and rows[1].answers == ("", "", "") and not rows[1].changed
    assert rows[1].comment == "blurred" and rows[3].comment == "looked twice"
    assert rows[0].seconds == pytest.approx(30) and rows[2].seconds == pytest.approx(75)
    assert not rows[2].changed
    ids = set(session.study.case_ids)
    assert not [r for r in rows if ids & {r.label, r.comment, *r.answers}]
    assert format_seconds(42.4) == "42 s" and format_seconds(185) == "3 min 05 s"
    session.close()


def test_review_shows_short_option_texts_and_keys_for_the_long_ones(turing_study_dir):
    """A Turing study's review shows "synthetic" and "3", and the Table 1 answers by key."""
    session = open_session(turing_study_dir)
    answer_all(session, {**ALL_A, "real_or_synthetic": "S", "confidence": "3"})
    assert review_rows(session)[0].answers == ("A", "B", "C", "synthetic", "3")
    session.close()


def test_preview_store_follows_the_practice_and_final_rules(make_practice_study):
    """Screenshots without a reader get the practice block first, its truth only once done,
    and refusals of final answers, all in memory."""
    folder = make_practice_study(answers_editable=False)
    study = Study.open(folder)
    store = PreviewStore(study)
    session = ReadingSession(study, store)
    assert session.label(0) == "Practice 1 of 2" and session.practice_feedback is None
    with pytest.raises(TruthNotShownError):
        store.practice_truth("P01")
    answer_all(session)
    assert session.practice_feedback == f"This practice case was {study.practice['P01']}."
    refused: list[str] = []
    session.answer_refused.connect(refused.append)
    session.answer("slice_consistency", "D")
    assert refused == [FINAL_REFUSED] and store.answers("P01") == ALL_A
    assert [r.label for r in review_rows(session)] == ["Practice 1"]
    session.close()
    assert list((folder / "ratings").iterdir()) == []
