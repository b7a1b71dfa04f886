"""`agreement` and `turing` leave out ratings flagged "not assessable" and practice rows, and say
how many; the loader reads both columns."""

from __future__ import annotations

import json

import pytest

from evaluation.agreement import agreement_report
from evaluation.ratings_csv import LeftOut, RatingsCsvError, load_ratings
from evaluation.turing import turing_report

TABLE1 = ("realistic_appearance", "slice_consistency", "anatomical_correctness")


def _row(reader: str, case: int, letter: str, source: str, call: str, flagged: bool = False,
         practice: bool = False) -> dict:
    return {"study_id": "s1", "dataset": "lidc", "reader": reader,
            "case_id": f"P{case:02d}" if practice else f"c{case:03d}",
            **{q: letter for q in TABLE1}, "real_or_synthetic": call, "confidence": "3",
            "not_assessable": "1" if flagged else "0", "practice": "1" if practice else "0",
            "source": source}


@pytest.fixture
def export(write_export):
    """Two readers on 4 synthetic and 2 real cases; reader A flagged one synthetic case (with a
    D answer and a wrong call, which would count if it were kept); two practice rows of A."""
    rows = []
    for reader in ("A", "B"):
        for case in range(4):
            flagged = reader == "A" and case == 0
            rows.append(_row(reader, case, "D" if flagged else "B", "synthetic",
                             "real" if flagged else "synthetic", flagged=flagged))
        rows += [_row(reader, case, "C", "real", "real") for case in (4, 5)]
    rows += [_row("A", 1, "D", "synthetic", "real", practice=True),
             _row("A", 2, "D", "real", "synthetic", flagged=True, practice=True)]
    return write_export("lidc.csv", rows)


def test_agreement_leaves_flagged_and_practice_rows_out(export, run_eval):
    summary = agreement_report(load_ratings([export])).datasets["lidc"]
    assert summary.left_out == LeftOut(not_assessable=1, practice=2)
    assert summary.n_cases == 4  # the synthetic study cases; c000 still has B's rating
    counts = summary.categories["realistic_appearance"].counts
    assert counts["A"].total == 3 and counts["A"].options["D"] == 0
    assert counts["B"].total == 4
    status, out, err = run_eval(["agreement", export])
    assert status == 0, err
    assert "1 ratings flagged not assessable left out, and 2 practice ratings" in out
    status, out, _ = run_eval(["agreement", export, "--json"])
    assert json.loads(out)["datasets"]["lidc"]["left_out"]["not_assessable"] == 1


def test_turing_leaves_flagged_and_practice_rows_out(export, run_eval):
    summary = turing_report(load_ratings([export])).datasets["lidc"]
    assert summary.left_out == LeftOut(not_assessable=1, practice=2)
    assert summary.n_cases == {"real": 2, "synthetic": 4}
    reader_a = summary.readers["A"].accuracy
    assert (reader_a.k, reader_a.n) == (5, 5)  # the flagged wrong call is not counted
    status, out, err = run_eval(["turing", export])
    assert status == 0, err
    assert "2 real and 4 synthetic cases; 1 ratings flagged not assessable left out" in out


def test_an_export_without_the_columns_flags_nothing(write_export):
    path = write_export("old.csv", [_row("A", 0, "B", "synthetic", "real")],
                        columns=("study_id", "dataset", "reader", "case_id", *TABLE1))
    ratings = load_ratings([path])
    assert not ratings["not_assessable"].any() and not ratings["practice"].any()


@pytest.mark.parametrize("column", ["not_assessable", "practice"])
def test_a_bad_flag_is_named_with_its_line(write_export, column):
    path = write_export("bad.csv", [{**_row("A", 0, "B", "synthetic", "real"), column: "yes"}])
    with pytest.raises(RatingsCsvError, match=rf"line 2, column `{column}`: the value 'yes' is "
                                              "not 0 or 1"):
        load_ratings([path])
