"""Loading and validating `mdiff-study export` CSVs."""

from __future__ import annotations

import math

import pytest

from evaluation.ratings_csv import RatingsCsvError, load_ratings

BASE_COLUMNS = ("study_id", "dataset", "reader", "case_id", "realistic_appearance",
                "slice_consistency", "anatomical_correctness", "seconds_on_case", "rated_at")


def _row(reader: str = "A", case: str = "c1", letters: str = "CDB", **extra: str) -> dict:
    row = {"study_id": "s1", "dataset": "lidc", "reader": reader, "case_id": case,
           "realistic_appearance": letters[0], "slice_consistency": letters[1],
           "anatomical_correctness": letters[2]}
    return {**row, **extra}


def test_letters_become_ordinal_scores_and_blanks_unanswered(write_export):
    path = write_export("s1.csv", [_row("A", "c1", "ABC"), _row("B", "c1", "D B"),
                                   _row("A", "c2", "DDD")], columns=BASE_COLUMNS)
    ratings = load_ratings([path])
    assert list(ratings["realistic_appearance"]) == [1.0, 4.0, 4.0]
    assert math.isnan(ratings["slice_consistency"][1])
    assert list(ratings["anatomical_correctness"]) == [3.0, 2.0, 4.0]
    assert list(ratings["line"]) == [2, 3, 4]
    assert set(ratings["file"]) == {str(path)}
    assert "source" not in ratings.columns


def test_turing_columns_and_key_are_parsed(write_export):
    path = write_export("s1.csv", [
        _row("A", "c1", real_or_synthetic="synthetic", confidence="3", source="real"),
        _row("B", "c1", real_or_synthetic="", confidence="", source="real"),
    ])
    ratings = load_ratings([path], require=("source", "real_or_synthetic"))
    assert ratings["real_or_synthetic"][0] == "synthetic"
    assert ratings["real_or_synthetic"].isna().tolist() == [False, True]
    assert ratings["confidence"][0] == 3.0 and math.isnan(ratings["confidence"][1])
    assert list(ratings["source"]) == ["real", "real"]


@pytest.mark.parametrize("dropped", [("reader",), ("slice_consistency", "case_id")])
def test_missing_columns_are_named_with_the_file(write_export, dropped):
    columns = [c for c in BASE_COLUMNS if c not in dropped]
    path = write_export("bad.csv", [_row()], columns=columns)
    with pytest.raises(RatingsCsvError) as err:
        load_ratings([path])
    message = str(err.value)
    assert str(path) in message
    assert all(f"`{c}`" in message for c in dropped)


def test_required_key_column_missing_says_unblinded_export_is_needed(write_export):
    path = write_export("blind.csv", [_row()], columns=BASE_COLUMNS)
    with pytest.raises(RatingsCsvError, match=r"`source`.*unblinded"):
        load_ratings([path], require=("source",))


@pytest.mark.parametrize(("column", "value"), [
    ("realistic_appearance", "E"),
    ("slice_consistency", "c"),
    ("anatomical_correctness", "3"),
    ("real_or_synthetic", "fake"),
    ("confidence", "5"),
    ("source", ""),
])
def test_values_out_of_range_name_line_column_and_value(write_export, column, value):
    rows = [_row("A", "c1", source="synthetic"), _row("B", "c1", source="synthetic")]
    rows[1][column] = value
    path = write_export("bad.csv", rows)
    with pytest.raises(RatingsCsvError) as err:
        load_ratings([path])
    message = str(err.value)
    assert f"{path} line 3" in message and f"`{column}`" in message and repr(value) in message


def test_empty_id_is_rejected(write_export):
    path = write_export("bad.csv", [_row(reader=" ")], columns=BASE_COLUMNS)
    with pytest.raises(RatingsCsvError, match=r"line 2, column `reader`"):
        load_ratings([path])


def test_empty_and_header_only_files(tmp_path, write_export):
    empty = tmp_path / "empty.csv"
    empty.write_bytes(b"")
    with pytest.raises(RatingsCsvError, match="is empty"):
        load_ratings([empty])
    header_only = write_export("header.csv", [], columns=BASE_COLUMNS)
    with pytest.raises(RatingsCsvError, match="no ratings"):
        load_ratings([header_only])


def test_unreadable_paths(tmp_path):
    with pytest.raises(RatingsCsvError, match="does not exist"):
        load_ratings([tmp_path / "missing.csv"])
    with pytest.raises(RatingsCsvError, match="is a folder"):
        load_ratings([tmp_path])
    binary = tmp_path / "binary.csv"
    binary.write_bytes(bytes(range(256)) * 4)
    with pytest.raises(RatingsCsvError, match="cannot be read as a CSV"):
        load_ratings([binary])


def test_rows_with_the_wrong_number_of_fields_name_their_line(tmp_path):
    header = ",".join(BASE_COLUMNS[:7])
    path = tmp_path / "ragged.csv"
    path.write_text(f"{header}\ns1,lidc,A,c1,C,D,B\n\ns1,lidc,B,c1,C,D,B,extra\n")
    with pytest.raises(RatingsCsvError, match=r"line 4 has 8 fields but the header has 7"):
        load_ratings([path])
    path.write_text(f"{header}\ns1,lidc,A,c1,C,D\n")
    with pytest.raises(RatingsCsvError, match=r"line 2 has 6 fields"):
        load_ratings([path])


def test_blank_lines_keep_line_numbers_right(tmp_path):
    path = tmp_path / "blank.csv"
    path.write_text(",".join(BASE_COLUMNS[:7]) + "\ns1,lidc,A,c1,C,D,B\n\ns1,lidc,B,c1,C,X,B\n")
    with pytest.raises(RatingsCsvError, match=r"line 4, column `slice_consistency`: the value 'X'"):
        load_ratings([path])


def test_repeated_column_is_refused(tmp_path):
    path = tmp_path / "twice.csv"
    path.write_text(",".join(BASE_COLUMNS[:7]) + ",reader\ns1,lidc,A,c1,C,D,B,A\n")
    with pytest.raises(RatingsCsvError, match=r"column `reader` more than once"):
        load_ratings([path])


def test_same_export_twice_is_refused(write_export):
    path = write_export("s1.csv", [_row()], columns=BASE_COLUMNS)
    with pytest.raises(RatingsCsvError, match=r"rated case 'c1' of study 's1' twice"):
        load_ratings([path, path])


def test_same_case_id_in_two_studies_is_two_cases(write_export):
    first = write_export("s1.csv", [_row()], columns=BASE_COLUMNS)
    second = write_export("s2.csv", [{**_row(), "study_id": "s2"}], columns=BASE_COLUMNS)
    assert len(load_ratings([first, second])) == 2


def test_dataset_mixing_key_and_no_key_is_refused(write_export):
    keyed = write_export("keyed.csv", [_row(source="synthetic")])
    blind = write_export("blind.csv", [{**_row(), "study_id": "s2"}], columns=BASE_COLUMNS)
    with pytest.raises(RatingsCsvError, match=r"mixes exports with the key"):
        load_ratings([keyed, blind])


def test_conflicting_keys_are_refused(write_export):
    first = write_export("a.csv", [_row("A", source="synthetic")])
    second = write_export("b.csv", [_row("B", source="real")])
    with pytest.raises(RatingsCsvError, match=r"`real` in one export and `synthetic`"):
        load_ratings([first, second])


@pytest.mark.parametrize("command", ["agreement", "turing"])
def test_cli_reports_one_sentence_and_exit_2(write_export, run_eval, command):
    path = write_export("bad.csv", [_row(letters="CEB", source="synthetic",
                                         real_or_synthetic="real")])
    status, out, err = run_eval([command, path])
    assert status == 2
    assert out == ""
    assert err.count("\n") == 1 and "Traceback" not in err
    assert "line 2, column `slice_consistency`" in err and "'E'" in err


def test_the_export_writes_the_columns_the_loader_reads():
    """studies.export owns the column list; here it is written out by hand, as the fixtures are."""
    from studies.export import COLUMNS

    assert COLUMNS == (
        "study_id", "dataset", "reader", "case_id", "realistic_appearance", "slice_consistency",
        "anatomical_correctness", "real_or_synthetic", "confidence", "not_assessable", "comment",
        "seconds_on_case", "rated_at", "practice", "after_truth", "source", "origin")
