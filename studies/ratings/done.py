"""The one rule for when a case is done, whether it may still change, and its time.

A case is **done** when every question has an answer or it is flagged not assessable. When the
study's `answers_editable` is false, a done case's answers and flag are final; comments can always
change. The time on a case is the time accumulated while it was shown or, where none was, the most
seconds given with its answers. The live store, the read-only snapshot, the app's in-memory
preview store and the version 3 migration all decide through these functions.
"""

from __future__ import annotations

from collections.abc import Container, Iterable


def is_complete(given: Container[str], question_keys: Iterable[str]) -> bool:
    """Whether every question has an answer among `given` (the questions answered)."""
    return all(key in given for key in question_keys)


def is_done(given: Container[str], not_assessable: bool, question_keys: Iterable[str]) -> bool:
    """Whether a case with these answers and flag is done: complete, or flagged."""
    return not_assessable or is_complete(given, question_keys)


def may_change(case_done: bool, answers_editable: bool) -> bool:
    """Whether a case's answers and flag may still change: always in a study whose answers are
    editable, else only until the case is done."""
    return answers_editable or not case_done


def may_show_truth(complete: bool, not_assessable: bool, truth_when_flagged: bool) -> bool:
    """Whether a practice case's truth may be shown: every question answered, or the case flagged
    not assessable where the study shows the truth of a flagged case."""
    return complete or (not_assessable and truth_when_flagged)


def seconds_on_case(accumulated: float | None, with_answers: float | None) -> float:
    """The time on a case: the accumulated time, else the most seconds given with its answers,
    else 0."""
    if accumulated is not None:
        return float(accumulated)
    return float(with_answers) if with_answers is not None else 0.0
