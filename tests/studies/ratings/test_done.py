"""The one rule for a done case and its time, and the store and the snapshot agreeing on it."""

from __future__ import annotations

import pytest

from studies.ratings import RatingStore, read_reader_ratings
from studies.ratings.done import is_complete, is_done, may_change, seconds_on_case

KEYS = ("realistic_appearance", "slice_consistency", "anatomical_correctness")


@pytest.mark.parametrize(("given", "flagged", "complete", "done"), [
    ({}, False, False, False),
    ({"realistic_appearance": "A", "slice_consistency": "B"}, False, False, False),
    (dict.fromkeys(KEYS, "C"), False, True, True),
    ({}, True, False, True),
    (set(KEYS), False, True, True),  # the questions answered, without their letters
])
def test_a_case_is_done_when_complete_or_flagged(given, flagged, complete, done):
    assert is_complete(given, KEYS) is complete
    assert is_done(given, flagged, KEYS) is done


@pytest.mark.parametrize(("case_done", "editable", "changes"), [
    (False, False, True), (True, False, False), (False, True, True), (True, True, True)])
def test_a_done_case_is_final_only_where_answers_are_not_editable(case_done, editable, changes):
    assert may_change(case_done, editable) is changes


@pytest.mark.parametrize(("accumulated", "with_answers", "seconds"), [
    (None, None, 0.0), (None, 7, 7.0), (12.5, 7.0, 12.5), (0.0, 7.0, 0.0)])
def test_the_time_on_a_case_is_the_accumulated_time_first(accumulated, with_answers, seconds):
    assert seconds_on_case(accumulated, with_answers) == seconds


def test_the_store_and_the_snapshot_agree_on_done_and_time(rated):
    """The live store and the read-only snapshot of one database decide alike for every case:
    answered, flagged, partly answered, practice or not, timed or not."""
    study, path, ids = rated
    with RatingStore.open(study, "anna") as store:
        partial = store.case_order[2]
        store.record_answer(partial, "realistic_appearance", "B", 7.0)
        shown = store.practice_order + store.case_order
        live = {c: (store.is_complete(c), store.is_done(c), store.seconds_on_case(c))
                for c in shown}
    ratings = read_reader_ratings(path, study)
    read = {c: (ratings.is_complete(c, study.question_keys),
                ratings.is_done(c, study.question_keys), ratings.seconds_on_case(c))
            for c in shown}
    assert read == live
    assert {c: v for c, v in live.items() if v != (False, False, 0.0)} == {
        "P01": (True, True, 6.0), ids["case"]: (True, True, 12.0),
        ids["flagged"]: (False, True, 0.0), partial: (False, False, 7.0)}
