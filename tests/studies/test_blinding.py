"""studies.blinding: the AUC, its permutation p-value, the two rules, and the visible orders."""

from __future__ import annotations

import math
import os

import pytest

from studies.blinding import (
    FILE,
    PERMUTATIONS,
    VALUES,
    SourceTest,
    auc,
    order_features,
    order_leaks,
)

SOURCES = {"a": "real", "b": "real", "c": "synthetic", "d": "synthetic"}


def _sources(n_real: int, n_synthetic: int) -> dict[str, str]:
    """Cases r0.. (real) and s0.. (synthetic)."""
    return {**{f"r{i}": "real" for i in range(n_real)},
            **{f"s{i}": "synthetic" for i in range(n_synthetic)}}


def test_auc_is_the_chance_a_synthetic_value_is_above_a_real_one():
    assert auc({"a": 1, "b": 2, "c": 3, "d": 4}, SOURCES) == 1.0
    assert auc({"a": 3, "b": 4, "c": 1, "d": 2}, SOURCES) == 0.0
    # pairs (c, a) above, (c, b) tie, (d, a) tie, (d, b) below: (1 + 0.5 + 0.5) / 4
    assert auc({"a": 1, "b": 2, "c": 2, "d": 1}, SOURCES) == pytest.approx(0.5)
    assert auc({"a": 1, "b": 3, "c": 2, "d": 4}, SOURCES) == pytest.approx(0.75)


@pytest.mark.parametrize("values", [
    {"a": 1, "b": 2, "c": 3, "d": 4}, {"a": 3, "b": 4, "c": 1, "d": 2},
    {"a": 1, "b": 2, "c": 2, "d": 1}, {"a": 1, "b": 3, "c": 2, "d": 4},
    {"a": 5, "b": 5, "c": 5, "d": 5},
])
def test_the_rank_sum_auc_is_the_pairwise_auc(values):
    assert SourceTest(SOURCES).test("f", FILE, values).auc == pytest.approx(auc(values, SOURCES))


def test_exact_p_values_count_the_labellings_that_separate_as_well():
    """2 + 2 cases have C(4, 2) = 6 labellings, 2 of them complete separations: p = 1/3; for
    4 + 4, 2 of C(8, 4) = 70."""
    complete = SourceTest(SOURCES).test("f", FILE, {"a": 1, "b": 2, "c": 3, "d": 4})
    assert (complete.auc, complete.p_value) == (1.0, pytest.approx(2 / 6))
    sources = _sources(4, 4)
    values = {c: float(i) for i, c in enumerate(sorted(sources, key=lambda c: c[0] == "s"))}
    assert SourceTest(sources).test("f", FILE, values).p_value == pytest.approx(2 / 70)
    ties = SourceTest(SOURCES).test("f", FILE, {c: 7.0 for c in SOURCES})
    assert (ties.auc, ties.p_value, ties.passed) == (0.5, 1.0, True)


def test_large_studies_draw_random_labellings_from_a_fixed_seed():
    """C(40, 20) labellings are too many: PERMUTATIONS random ones, the observed counted once."""
    sources = _sources(20, 20)
    assert math.comb(40, 20) > 20_000
    values = {c: (100.0 if c.startswith("s") else 0.0) + i for i, c in enumerate(sources)}
    first = SourceTest(sources).test("f", FILE, values)
    assert first.auc == 1.0 and first.p_value == pytest.approx(1 / (PERMUTATIONS + 1))
    mixed = {c: float(i % 7) for i, c in enumerate(sources)}
    assert SourceTest(sources).test("f", FILE, mixed).p_value == \
        SourceTest(sources).test("f", FILE, mixed).p_value > 0.05


def test_the_file_level_rule_fails_any_separation():
    tester = SourceTest(SOURCES)
    # Complete separation fails even where 2 + 2 cases cannot make it significant.
    result = tester.test("inode", FILE, {"a": 1, "b": 2, "c": 3, "d": 4})
    assert not result.passed and "every synthetic case is higher" in result.reason
    assert tester.test("inode", FILE, {"a": 1, "b": 3, "c": 2, "d": 4}).passed
    assert tester.test("inode", FILE, {"a": 1, "b": 2, "c": 2, "d": 4}).passed  # a tie between
    # Significant without being complete: 30 + 30 cases, one synthetic case among the reals.
    sources = _sources(30, 30)
    order = sorted(sources, key=lambda c: (c[0] == "s", c))
    order.insert(10, order.pop(35))
    result = SourceTest(sources).test("list", FILE, {c: float(i) for i, c in enumerate(order)})
    assert 0.9 < result.auc < 1.0 and result.p_value < 0.01 and not result.passed
    assert "more often than chance" in result.reason
    # One real case: a complete separation is no evidence at all.
    one_real = {"a": "real", "b": "synthetic", "c": "synthetic", "d": "synthetic"}
    assert SourceTest(one_real).test("f", FILE, {"a": 1, "b": 2, "c": 3, "d": 4}).passed


def test_the_value_set_rule_fails_near_perfect_significant_separations_only():
    # 3 + 3 complete separation: p = 2/20, too few cases to call it a leak.
    three = _sources(3, 3)
    ordered = {c: float(i) for i, c in enumerate(sorted(three, key=lambda c: c[0] == "s"))}
    assert SourceTest(three).test("distinct values", VALUES, ordered).passed
    six = _sources(6, 6)
    ordered = {c: float(i) for i, c in enumerate(sorted(six, key=lambda c: c[0] == "s"))}
    result = SourceTest(six).test("distinct values", VALUES, ordered)
    assert not result.passed and "near-perfectly" in result.reason
    # AUC 35/36 = 0.97: still near-perfect; AUC 32/36 = 0.89: a difference, not a leak.
    swapped = dict(ordered, r5=6.0, s0=5.0)
    assert SourceTest(six).test("v", VALUES, swapped).auc == pytest.approx(35 / 36)
    assert not SourceTest(six).test("v", VALUES, swapped).passed
    looser = dict(ordered, r5=8.0, s0=5.0, s2=4.5)
    assert SourceTest(six).test("v", VALUES, looser).auc < 0.95
    assert SourceTest(six).test("v", VALUES, looser).passed


def test_a_source_without_cases_cannot_be_tested():
    result = SourceTest({"a": "real", "b": "real"}).test("f", FILE, {"a": 1.0, "b": 2.0})
    assert (result.auc, result.p_value, result.passed) == (None, None, True)


def _cases(folder, names):
    (folder / "cases").mkdir()
    for name in names:
        (folder / "cases" / f"{name}.nii").write_bytes(b"")


def test_order_features_read_list_names_inodes_listing_and_times(tmp_path):
    _cases(tmp_path, ["c", "a", "d", "b"])
    features = order_features(tmp_path, ["d", "c", "b", "a"], ".nii")
    assert list(features) == ["list position in study.json", "file name (alphabetical order)",
                              "inode number (creation order)", "directory listing order",
                              "access time (s)", "change time (s)"]
    assert features["list position in study.json"] == {"d": 0, "c": 1, "b": 2, "a": 3}
    assert features["file name (alphabetical order)"] == {"a": 0, "b": 1, "c": 2, "d": 3}
    listing = [name[:1] for name in os.listdir(tmp_path / "cases")]
    assert features["directory listing order"] == {c: float(i) for i, c in enumerate(listing)}
    inodes = {c: float(os.stat(tmp_path / "cases" / f"{c}.nii").st_ino) for c in "abcd"}
    assert features["inode number (creation order)"] == inodes
    os.utime(tmp_path / "cases" / "b.nii", (1000.0, 1000.0))
    os.utime(tmp_path / "cases" / "a.nii", (1002.5, 1000.0))
    times = order_features(tmp_path, ["a", "b"], ".nii")["access time (s)"]
    assert times == {"a": 2.5, "b": 0.0}


def test_order_leaks_name_the_list_order_that_separates(tmp_path):
    _cases(tmp_path, ["a", "b", "c", "d"])
    # Real cases first in the list and in the names: both orders separate.
    leaks = order_leaks(tmp_path, ["a", "b", "c", "d"], SOURCES, ".nii")
    assert any(leak.startswith("list position in study.json: every synthetic case is higher")
               for leak in leaks)
    assert any(leak.startswith("file name (alphabetical order)") for leak in leaks)
    # Interleaved in the list, and synthetic ids that do not all sort after the real ones.
    mixed = {"a": "real", "d": "real", "b": "synthetic", "c": "synthetic"}
    leaks = order_leaks(tmp_path, ["a", "b", "d", "c"], mixed, ".nii")
    assert not [leak for leak in leaks if leak.startswith(("list", "file name"))]


def test_value_set_significance_is_divided_among_the_features_tested_together():
    """5 + 5 cases apart but for one swap: AUC 24/25, p = 4/252 = 0.016. Alone that fails
    (p < 0.05); as one of 8 value-set features it is chance (p > 0.05 / 8)."""
    five = _sources(5, 5)
    ordered = {c: float(i) for i, c in enumerate(sorted(five, key=lambda c: c[0] == "s"))}
    one_swap = dict(ordered, r4=5.0, s0=4.0)
    alone = SourceTest(five).test("v", VALUES, one_swap)
    assert (alone.auc, alone.p_value) == (pytest.approx(24 / 25), pytest.approx(4 / 252))
    assert not alone.passed
    assert SourceTest(five).test("v", VALUES, one_swap, family=8).passed
    # Even apart, 5 + 5 cases are too few among 8 features (p = 2/252); 6 + 6 are not (2/924).
    assert SourceTest(five).test("v", VALUES, ordered, family=8).passed
    six = _sources(6, 6)
    apart = {c: float(i) for i, c in enumerate(sorted(six, key=lambda c: c[0] == "s"))}
    assert not SourceTest(six).test("v", VALUES, apart, family=8).passed
