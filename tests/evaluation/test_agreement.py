"""Reader agreement: the paper's counts, kappas, Fleiss, Krippendorff and Figure 2."""

from __future__ import annotations

import json
import struct

import krippendorff
import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import cohen_kappa_score
from statsmodels.stats.inter_rater import aggregate_raters, cohens_kappa, fleiss_kappa

from evaluation.agreement import (
    FleissKappa,
    KrippendorffAlpha,
    OptionCounts,
    PercentAgreement,
    Tally,
    agreement_report,
    fleiss,
    krippendorff_ordinal,
    percent_agreement,
    weighted_kappa,
)
from evaluation.figures import figure2, option_shares
from evaluation.ratings_csv import CATEGORIES, load_ratings

SCORE = {"A": 1.0, "B": 2.0, "C": 3.0, "D": 4.0}
# Two readers on 12 cases; neither ever answers B, so a table built from the observed letters
# alone would be 3x3 and give different weighted kappas.
READER_A = "ACDDCACDDACD"
READER_B = "ACDCCCDDDACA"


def _scores(letters: str) -> np.ndarray:
    return np.array([SCORE[c] if c != " " else np.nan for c in letters])


def export_rows(answers: dict[str, str], *, study: str = "s1", dataset: str = "lidc",
                sources: str | None = None) -> list[dict]:
    """Rows of an export: `answers` maps reader -> one letter per case for all three questions
    ('.' = the reader has no row for that case, ' ' = unanswered); `sources` one r/s per case."""
    rows = []
    for reader, letters in answers.items():
        for i, letter in enumerate(letters):
            if letter == ".":
                continue
            row = {"study_id": study, "dataset": dataset, "reader": reader, "case_id": f"c{i:03d}"}
            row.update({c: letter.strip() for c in CATEGORIES})
            if sources is not None:
                row["source"] = "synthetic" if sources[i] == "s" else "real"
            rows.append(row)
    return rows


def load_ratings_frame(rows: list[dict]) -> pd.DataFrame:
    """Crafted rows as `load_ratings` returns them, without going through a file."""
    frame = pd.DataFrame(rows)
    for category in CATEGORIES:
        frame[category] = frame[category].map(lambda v: SCORE.get(v, np.nan)).astype(float)
    for column in ("not_assessable", "practice"):
        if column not in frame.columns:
            frame[column] = False
    frame["file"] = "crafted.csv"
    frame["line"] = np.arange(len(frame)) + 2
    return frame


BLIND = ("study_id", "dataset", "reader", "case_id", *CATEGORIES, "seconds_on_case", "rated_at")
KEYED = (*BLIND, "source", "origin")


@pytest.mark.parametrize("weighting", ["linear", "quadratic"])
def test_weighted_kappa_matches_sklearn_and_statsmodels(weighting):
    a, b = _scores(READER_A), _scores(READER_B)
    result = weighted_kappa(a, b, weighting)
    expected = cohen_kappa_score(a.astype(int), b.astype(int), weights=weighting,
                                 labels=[1, 2, 3, 4])
    assert result.kappa == pytest.approx(expected, abs=1e-12)
    full = pd.crosstab(a, b).reindex(index=[1.0, 2, 3, 4], columns=[1.0, 2, 3, 4], fill_value=0)
    reference = cohens_kappa(full.to_numpy(), wt=weighting)
    assert result.ci_low == pytest.approx(max(reference.kappa_low, -1), abs=1e-12)
    assert result.ci_high == pytest.approx(min(reference.kappa_upp, 1), abs=1e-12)
    assert result.ci_low < result.kappa < result.ci_high
    assert result.n_cases == 12 and result.reason is None
    shrunk = cohens_kappa(pd.crosstab(a, b).to_numpy(), wt=weighting).kappa
    assert abs(shrunk - expected) > 1e-3, "the crafted data must show why A-D are all kept"


def test_perfect_agreement_gives_one():
    a = _scores("ABCDDCBA")
    for weighting in ("linear", "quadratic"):
        result = weighted_kappa(a, a, weighting)
        assert result.kappa == pytest.approx(1.0)
        # The asymptotic variance is 0 here: no zero-width interval, a reason instead.
        assert result.ci_low is None and result.ci_high is None
        assert "no confidence interval" in result.reason
    assert fleiss(np.stack([a, a, a], axis=1)).kappa == pytest.approx(1.0)
    assert krippendorff_ordinal(np.stack([a, a])).alpha == pytest.approx(1.0)


def test_percent_agreement_counts_identical_answers():
    result = percent_agreement(_scores(READER_A), _scores(READER_B))
    assert result == PercentAgreement(pytest.approx(100 * 8 / 12), 12)
    assert result.to_json() == {"percent": pytest.approx(100 * 8 / 12), "n_cases": 12}
    assert percent_agreement(np.array([]), np.array([])).percent is None


def test_fleiss_uses_cases_rated_by_all_readers():
    rows = export_rows({"A": "ACDDCACDDA", "B": "ACDCCCDDDA", "C": "AC.DCAD.DB"})
    matrix = load_ratings_frame(rows).pivot(index="case_id", columns="reader",
                                            values="realistic_appearance")
    complete = matrix.dropna().to_numpy()
    report_entry = agreement_report(load_ratings_frame(rows)).datasets["lidc"]
    stats = report_entry.categories["realistic_appearance"].fleiss
    expected = fleiss_kappa(aggregate_raters(complete.astype(int) - 1, n_cat=4)[0])
    assert stats == FleissKappa(pytest.approx(expected, abs=1e-12), n_cases=8, n_readers=3)


def test_krippendorff_matches_the_package_with_missing_ratings():
    by_reader = np.array([_scores("ACDDCACDDA"), _scores("ACDCCCDDDA"), _scores("AC DCAD DB")])
    result = krippendorff_ordinal(by_reader)
    expected = krippendorff.alpha(reliability_data=by_reader, level_of_measurement="ordinal",
                                  value_domain=[1, 2, 3, 4])
    assert result == KrippendorffAlpha(pytest.approx(expected, abs=1e-12), n_cases=10)


def test_pairs_use_shared_cases_only():
    rows = export_rows({"A": "ACDDCACDDA..", "B": "..DCCCDDDACA"})
    pair = agreement_report(load_ratings_frame(rows)).datasets["lidc"].categories[
        "slice_consistency"].pairs[0]
    a, b = _scores("DDCACDDA"), _scores("DCCCDDDA")
    assert pair.readers == ("A", "B") and pair.n_shared == 8
    assert pair.kappa_linear.kappa == pytest.approx(
        cohen_kappa_score(a, b, weights="linear", labels=[1, 2, 3, 4]))


def test_same_case_id_in_another_study_is_not_shared():
    rows = export_rows({"A": "ACDD"}, study="s1") + export_rows({"B": "ACDD"}, study="s2")
    pair = agreement_report(load_ratings_frame(rows)).datasets["lidc"].categories[
        "realistic_appearance"].pairs[0]
    assert pair.n_shared == 0
    assert pair.percent_agreement.percent is None
    assert pair.kappa_quadratic.kappa is None and pair.kappa_quadratic.reason


def test_undefined_statistics_are_null_with_a_reason():
    every_d = agreement_report(load_ratings_frame(export_rows({"A": "DDDD", "B": "DDDD"})))
    stats = every_d.datasets["lidc"].categories["anatomical_correctness"]
    pair = stats.pairs[0]
    for kappa in (pair.kappa_linear, pair.kappa_quadratic):
        assert kappa.kappa is None and kappa.ci_low is None and kappa.ci_high is None
        assert "no expected disagreement" in kappa.reason
        assert kappa.to_json()["reason"] == kappa.reason
    assert pair.percent_agreement.percent == 100.0
    assert "reason" not in pair.percent_agreement.to_json()
    assert stats.fleiss.kappa is None and "D" in stats.fleiss.reason
    assert stats.krippendorff.alpha is None and stats.krippendorff.reason

    one_reader = agreement_report(load_ratings_frame(export_rows({"A": "ABCD"})))
    stats = one_reader.datasets["lidc"].categories["realistic_appearance"]
    assert stats.pairs == () and stats.to_json()["pairs"] == []
    assert stats.fleiss.kappa is None and "two readers" in stats.fleiss.reason
    assert stats.krippendorff.alpha is None and "two readers" in stats.krippendorff.reason

    one_shared = weighted_kappa(_scores("C"), _scores("D"), "linear")
    assert one_shared.kappa is None and "at least 2" in one_shared.reason
    for report in (every_d, one_reader):
        json.dumps(report.to_json(), allow_nan=False)


def _paper_like_export(write_export, dataset: str = "mrnet", study: str = "s1") -> object:
    """50 synthetic cases (reader A: 49 C or better) plus 10 real ones rated A by both."""
    reader_a = "B" + "CD" * 24 + "D" + "A" * 10
    reader_b = "BB" + "DC" * 24 + "A" * 10
    sources = "s" * 50 + "r" * 10
    return write_export(f"{dataset}.csv", export_rows({"A": reader_a, "B": reader_b},
                                                      dataset=dataset, study=study,
                                                      sources=sources), columns=KEYED)


def test_paper_counts_use_synthetic_cases_when_the_key_is_there(write_export):
    report = agreement_report(load_ratings([_paper_like_export(write_export)]))
    summary = report.datasets["mrnet"]
    assert summary.cases == "synthetic" and summary.n_cases == 50
    counts = summary.categories["realistic_appearance"].counts
    assert counts["A"] == OptionCounts(49, 50, {"A": 0, "B": 1, "C": 24, "D": 25})
    assert counts["B"].c_or_better == 48 and counts["B"].total == 50
    assert report.all_datasets["slice_consistency"]["A"] == Tally(c_or_better=49, total=50)


def test_without_the_key_all_cases_count(write_export):
    path = write_export("blind.csv", export_rows({"A": "CDAB", "B": "CDAA"}), columns=BLIND)
    summary = agreement_report(load_ratings([path])).datasets["lidc"]
    assert summary.cases == "all" and summary.n_cases == 4
    assert summary.categories["realistic_appearance"].counts["A"].c_or_better == 2


def test_cli_text_has_the_paper_style_counts(write_export, run_eval):
    status, out, err = run_eval(["agreement", _paper_like_export(write_export)])
    assert status == 0, err
    assert "Reader A, realistic appearance: C or better 49/50" in out
    assert "Reader B, anatomical correctness: C or better 48/50" in out
    assert "synthetic cases" in out and "Fleiss' kappa" in out and "Krippendorff" in out


def test_cli_json_keys_and_totals_over_datasets(write_export, run_eval):
    paths = [_paper_like_export(write_export, "mrnet", "s1"),
             _paper_like_export(write_export, "lidc", "s2")]
    status, out, err = run_eval(["agreement", *paths, "--json"])
    assert status == 0, err
    report = json.loads(out)
    assert set(report) == {"files", "figure", "datasets", "all_datasets"}
    assert report["figure"] is None
    assert set(report["datasets"]) == {"mrnet", "lidc"}
    summary = report["datasets"]["lidc"]
    assert set(summary) == {"cases", "n_cases", "left_out", "readers", "categories"}
    assert summary["left_out"] == {"not_assessable": 0, "practice": 0}
    assert set(summary["categories"]) == set(CATEGORIES)
    stats = summary["categories"]["realistic_appearance"]
    assert set(stats) == {"counts", "pairs", "fleiss", "krippendorff"}
    pair = stats["pairs"][0]
    assert set(pair) == {"readers", "n_shared", "percent_agreement", "kappa_linear",
                         "kappa_quadratic"}
    assert set(pair["kappa_linear"]) == {"kappa", "ci_low", "ci_high", "n_cases"}
    assert set(stats["fleiss"]) == {"kappa", "n_cases", "n_readers"}
    assert set(stats["krippendorff"]) == {"alpha", "n_cases"}
    assert report["all_datasets"]["realistic_appearance"]["A"] == {"c_or_better": 98,
                                                                   "total": 100}
    status, text, _ = run_eval(["agreement", *paths])
    assert "Reader A, realistic appearance: C or better 98/100 (lidc 49/50, mrnet 49/50)" in text


def _png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


def test_figure_file_is_a_sensible_png(write_export, run_eval, tmp_path):
    png = tmp_path / "figure2.png"
    paths = [_paper_like_export(write_export, "mrnet", "s1"),
             _paper_like_export(write_export, "lidc", "s2")]
    status, out, err = run_eval(["agreement", *paths, "--figure", png, "--json"])
    assert status == 0, err
    assert json.loads(out)["figure"] == str(png)
    width, height = _png_size(png.read_bytes())
    assert 800 <= width <= 4000 and 400 <= height <= 4000


def test_figure_bars_are_the_computed_option_shares(write_export):
    rows = export_rows({"A": "ABCDDDCC", "B": "BBC DDD."}, dataset="adni")
    report = agreement_report(load_ratings([write_export("adni.csv", rows, columns=BLIND)]))
    fig = figure2(report)
    ax = fig.axes[0]
    assert ax.get_title().startswith("adni")
    assert len(ax.containers) == 4  # one stacked layer per option A-D
    summary = report.datasets["adni"]
    expected = np.array([option_shares(summary.categories[c].counts[r])
                         for c in CATEGORIES for r in ("A", "B")])
    drawn = np.array([[patch.get_height() for patch in layer.patches]
                      for layer in ax.containers]).T
    np.testing.assert_allclose(drawn, expected)
    assert drawn[1] == pytest.approx([0, 100 * 2 / 6, 100 / 6, 100 * 3 / 6])  # reader B
    bottoms = np.array([[patch.get_y() for patch in layer.patches] for layer in ax.containers]).T
    np.testing.assert_allclose(bottoms[:, 1:], np.cumsum(expected, axis=1)[:, :-1])


@pytest.mark.parametrize(("name", "message"), [("figure.pdf", "must be a .png"),
                                               ("missing/figure.png", "does not exist")])
def test_bad_figure_path_is_a_clear_error(write_export, run_eval, tmp_path, name, message):
    status, out, err = run_eval(["agreement", _paper_like_export(write_export), "--figure",
                                 tmp_path / name])
    assert status == 2 and out == "" and message in err and err.count("\n") == 1


def test_reader_labels_do_not_overlap_with_many_readers(write_export):
    readers = {f"Reader {name}": "ABCDDCBAAD" for name in "ABCDE"}
    paths = [write_export(f"{d}.csv", export_rows(readers, dataset=d, study=d), columns=BLIND)
             for d in ("adni", "mrnet")]
    fig = figure2(agreement_report(load_ratings(paths)))
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    for ax in fig.axes[:2]:
        boxes = [label.get_window_extent(renderer) for label in ax.get_xticklabels()]
        assert len(boxes) == 15
        gaps = [right.x0 - left.x1 for left, right in zip(boxes, boxes[1:], strict=False)]
        assert min(gaps) > 0, "reader labels of neighbouring bars overlap"
