"""studies.blinding: the separation rule, the AUC beside it, and the orders a reader could see."""

from __future__ import annotations

import os

import pytest

from studies.blinding import auc, order_features, order_leaks, separation, span

SOURCES = {"a": "real", "b": "real", "c": "synthetic", "d": "synthetic"}


def test_separation_rule():
    sources = {"a": "real", "b": "real", "c": "synthetic", "d": "synthetic"}
    assert separation({"a": 1, "b": 2, "c": 3, "d": 4}, sources) is not None
    assert separation({"a": 1, "b": 3, "c": 2, "d": 4}, sources) is None
    assert separation({"a": 1, "b": 2, "c": 2, "d": 4}, sources) is None  # touching ranges
    assert separation({"a": 100, "b": 101, "c": 103, "d": 104}, sources, tolerance=5) is None
    assert separation({"a": 100, "b": 101, "c": 110, "d": 111}, sources, tolerance=5) is not None
    one_real = {"a": "real", "b": "synthetic", "c": "synthetic", "d": "synthetic"}
    assert separation({"a": 1, "b": 2, "c": 3, "d": 4}, one_real) is None


def test_auc_is_the_chance_a_synthetic_value_is_above_a_real_one():
    assert auc({"a": 1, "b": 2, "c": 3, "d": 4}, SOURCES) == 1.0
    assert auc({"a": 3, "b": 4, "c": 1, "d": 2}, SOURCES) == 0.0
    # pairs (c, a) above, (c, b) tie, (d, a) tie, (d, b) below: (1 + 0.5 + 0.5) / 4
    assert auc({"a": 1, "b": 2, "c": 2, "d": 1}, SOURCES) == pytest.approx(0.5)
    assert auc({"a": 1, "b": 3, "c": 2, "d": 4}, SOURCES) == pytest.approx(0.75)


def test_span_names_one_value_or_a_range():
    assert span([3.0, 3.0]) == "3"
    assert span([7.0, 3.0, 4.5]) == "3 to 7"


def _cases(folder, names):
    (folder / "cases").mkdir()
    for name in names:
        (folder / "cases" / f"{name}.nii.gz").write_bytes(b"")


def test_order_features_read_list_names_inodes_listing_and_ctimes(tmp_path):
    _cases(tmp_path, ["c", "a", "d", "b"])
    features = order_features(tmp_path, ["d", "c", "b", "a"])
    assert list(features) == ["list position in study.json", "alphabetical order of file names",
                              "inode number (creation order)", "directory listing order",
                              "change time (ctime)"]
    assert features["list position in study.json"] == {"d": 0, "c": 1, "b": 2, "a": 3}
    assert features["alphabetical order of file names"] == {"a": 0, "b": 1, "c": 2, "d": 3}
    listing = [name[:1] for name in os.listdir(tmp_path / "cases")]
    assert features["directory listing order"] == {c: float(i) for i, c in enumerate(listing)}
    inodes = {c: float(os.stat(tmp_path / "cases" / f"{c}.nii.gz").st_ino) for c in "abcd"}
    assert features["inode number (creation order)"] == inodes


def test_order_leaks_name_the_list_order_that_separates(tmp_path):
    _cases(tmp_path, ["a", "b", "c", "d"])
    # Real cases first in the list and in the names: both orders separate.
    leaks = order_leaks(tmp_path, ["a", "b", "c", "d"], SOURCES)
    assert any(leak.startswith("list position in study.json: every synthetic case is above")
               for leak in leaks)
    assert any(leak.startswith("alphabetical order of file names") for leak in leaks)
    # Interleaved in the list, and synthetic ids that do not all sort after the real ones.
    mixed = {"a": "real", "d": "real", "b": "synthetic", "c": "synthetic"}
    leaks = order_leaks(tmp_path, ["a", "b", "d", "c"], mixed)
    assert not [leak for leak in leaks if leak.startswith(("list", "alphabetical"))]
