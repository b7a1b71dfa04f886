"""Reader names: which are allowed, and how spellings of one reader find one database."""

from __future__ import annotations

import pytest

from studies.ratings import (
    RatingStore,
    RatingStoreError,
    ReaderLockedError,
    existing_reader,
    validate_reader,
)
from studies.study import Study


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
