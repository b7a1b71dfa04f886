"""The visual Turing test: accuracy, sensitivity, specificity, AUC and realism comparisons."""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy.stats import binomtest, mannwhitneyu
from sklearn.metrics import roc_auc_score
from statsmodels.stats.multitest import multipletests

from evaluation.ratings_csv import CATEGORIES, load_ratings
from evaluation.turing import turing_report

SCORE = {"A": 1, "B": 2, "C": 3, "D": 4}
# 20 synthetic then 10 real cases.
SOURCES = ["synthetic"] * 20 + ["real"] * 10
# Per reader: the real/synthetic answer (s/r), confidence (1-4) and realism (A-D) per case.
# Reader A spots 15/20 synthetic and 8/10 real cases; reader B 10/20 and 5/10.
READERS = {
    "A": ("sssssssssssssssrrrrr" + "rrrrrrrrss",
          "43214321432143214321" + "4321432143",
          "ABBCABBCABBCABCDCDCD" + "DDCDDCDCBA"),
    "B": ("ssssssssssrrrrrrrrrr" + "rrrrrsssss",
          "11223344112233441122" + "3344112233",
          "CCCCDDDDBBBBAAAACCDD" + "DDDDCCCCBB"),
}
# Slice consistency and anatomy: other crafted letters, so each question has its own test.
OTHER = {"A": "CDCDCDCDCDCDCDCDCDCD" + "DDDDDDDDDD", "B": "BCBCBCBCBCBCBCBCDDDD" + "CDCDCDCDCD"}


def turing_rows(sources: list[str] = SOURCES, readers: dict = READERS, *,
                dataset: str = "lidc") -> list[dict]:
    rows = []
    for reader, (calls, confidences, realism) in readers.items():
        for i, source in enumerate(sources):
            rows.append({
                "study_id": "s1", "dataset": dataset, "reader": reader, "case_id": f"c{i:03d}",
                "realistic_appearance": realism[i], "slice_consistency": OTHER[reader][i],
                "anatomical_correctness": OTHER[reader][::-1][i],
                "real_or_synthetic": {"s": "synthetic", "r": "real"}[calls[i]],
                "confidence": confidences[i], "source": source,
            })
    return rows


@pytest.fixture
def crafted(write_export):
    return write_export("lidc.csv", turing_rows())


def test_accuracy_sensitivity_specificity_per_reader(crafted):
    readers = turing_report(load_ratings([crafted])).datasets["lidc"].readers
    a, b = readers["A"], readers["B"]
    assert (a.accuracy.k, a.accuracy.n) == (23, 30)
    assert a.accuracy.value == pytest.approx(23 / 30)
    assert a.accuracy.p_value == pytest.approx(binomtest(23, 30, 0.5).pvalue)
    ci = binomtest(23, 30).proportion_ci(method="exact")
    assert (a.accuracy.ci_low, a.accuracy.ci_high) == pytest.approx((ci.low, ci.high))
    assert a.sensitivity.value == pytest.approx(15 / 20)
    assert a.specificity.value == pytest.approx(8 / 10)
    assert (b.accuracy.k, b.sensitivity.k, b.specificity.k) == (15, 10, 5)
    assert b.accuracy.p_value == pytest.approx(1.0)


def _truth_and_answers(reader: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    calls, confidences, realism = READERS[reader]
    truth = np.array([s == "synthetic" for s in SOURCES])
    signed = np.array([(1 if c == "s" else -1) * int(k) for c, k in zip(calls, confidences,
                                                                       strict=True)])
    return truth, signed, np.array([SCORE[x] for x in realism])


def test_auc_matches_sklearn_per_reader_and_pooled(crafted):
    summary = turing_report(load_ratings([crafted])).datasets["lidc"]
    pooled_truth, pooled_signed, pooled_realism = [], [], []
    for reader in ("A", "B"):
        truth, signed, realism = _truth_and_answers(reader)
        stats = summary.readers[reader]
        assert stats.auc_realism.auc == pytest.approx(roc_auc_score(truth, -realism))
        assert stats.auc_confidence.auc == pytest.approx(roc_auc_score(truth, signed))
        assert (stats.auc_realism.n_real, stats.auc_realism.n_synthetic) == (10, 20)
        pooled_truth.append(truth)
        pooled_signed.append(signed)
        pooled_realism.append(realism)
    truth = np.concatenate(pooled_truth)
    assert summary.pooled.auc_realism.auc == pytest.approx(
        roc_auc_score(truth, -np.concatenate(pooled_realism)))
    assert summary.pooled.auc_confidence.auc == pytest.approx(
        roc_auc_score(truth, np.concatenate(pooled_signed)))
    assert summary.pooled.accuracy.k == 23 + 15


def test_lower_realism_means_synthetic(write_export):
    sources = ["synthetic"] * 3 + ["real"] * 3
    path = write_export("separable.csv", turing_rows(sources, {"A": ("srsrsr", "111111",
                                                                      "ABADCD")}))
    report = turing_report(load_ratings([path]))
    assert report.datasets["lidc"].readers["A"].auc_realism.auc == 1.0


def test_realism_comparison_is_mann_whitney_with_holm(crafted):
    realism = turing_report(load_ratings([crafted])).datasets["lidc"].realism
    rows = turing_rows()
    raw = []
    for category in CATEGORIES:
        real = [SCORE[r[category]] for r in rows if r["source"] == "real"]
        synthetic = [SCORE[r[category]] for r in rows if r["source"] == "synthetic"]
        expected = mannwhitneyu(real, synthetic, alternative="two-sided")
        test = realism[category]
        assert test.u == pytest.approx(expected.statistic)
        assert test.p_value == pytest.approx(expected.pvalue)
        assert (test.n_real, test.n_synthetic) == (20, 40)
        assert test.median_real == pytest.approx(np.median(real))
        raw.append(expected.pvalue)
    holm = multipletests(raw, method="holm")[1]
    assert [realism[c].p_holm for c in CATEGORIES] == pytest.approx(list(holm))


def test_one_class_gives_null_with_reasons(write_export):
    readers = {"A": ("ssrr", "1234", "ABCD"), "B": ("srsr", "4321", "DCBA")}
    path = write_export("synthetic_only.csv", turing_rows(["synthetic"] * 4, readers))
    report = turing_report(load_ratings([path]))
    json.dumps(report.to_json(), allow_nan=False)
    summary = report.datasets["lidc"]
    assert summary.n_cases == {"real": 0, "synthetic": 4}
    pooled = summary.pooled
    assert pooled.auc_realism.auc is None and "no real cases" in pooled.auc_realism.reason
    assert pooled.auc_confidence.auc is None and pooled.auc_confidence.reason
    assert pooled.specificity.value is None and pooled.specificity.reason
    assert pooled.sensitivity.value == pytest.approx(4 / 8)
    for category in CATEGORIES:
        assert summary.realism[category].p_value is None
        assert summary.realism[category].p_holm is None
        assert "no real case" in summary.realism[category].reason


def test_without_confidence_column_its_auc_is_null(write_export):
    columns = ("study_id", "dataset", "reader", "case_id", *CATEGORIES, "real_or_synthetic",
               "seconds_on_case", "rated_at", "source", "origin")
    path = write_export("no_confidence.csv", turing_rows(), columns=columns)
    stats = turing_report(load_ratings([path])).datasets["lidc"].readers["A"]
    assert stats.auc_confidence.auc is None
    assert "`confidence`" in stats.auc_confidence.reason
    assert stats.auc_realism.auc is not None


def test_cli_json_keys(crafted, run_eval):
    status, out, err = run_eval(["turing", crafted, "--json"])
    assert status == 0, err
    report = json.loads(out)
    assert set(report) == {"files", "datasets"}
    summary = report["datasets"]["lidc"]
    assert set(summary) == {"n_cases", "left_out", "readers", "pooled", "realism"}
    assert summary["left_out"] == {"not_assessable": 0, "practice": 0}
    assert summary["n_cases"] == {"real": 10, "synthetic": 20}
    assert set(summary["readers"]) == {"A", "B"}
    detection = summary["pooled"]
    assert set(detection) == {"accuracy", "sensitivity", "specificity", "auc_realism",
                              "auc_confidence"}
    assert set(detection["accuracy"]) == {"value", "k", "n", "ci_low", "ci_high", "p_value"}
    assert set(detection["auc_realism"]) == {"auc", "n_real", "n_synthetic"}
    assert set(summary["realism"]) == set(CATEGORIES)
    assert set(summary["realism"]["slice_consistency"]) == {
        "n_real", "n_synthetic", "median_real", "median_synthetic", "u", "p_value", "p_holm"}


def test_cli_text(crafted, run_eval):
    status, out, err = run_eval(["turing", crafted])
    assert status == 0, err
    assert "Reader A: accuracy 76.7% (23/30" in out
    assert "10 real and 20 synthetic cases" in out and "Holm p =" in out


@pytest.mark.parametrize("missing", ["source", "real_or_synthetic"])
def test_cli_names_the_missing_column_and_file(write_export, run_eval, missing):
    columns = [c for c in ("study_id", "dataset", "reader", "case_id", *CATEGORIES,
                           "real_or_synthetic", "confidence", "seconds_on_case", "rated_at",
                           "source", "origin") if c != missing]
    path = write_export("blind.csv", turing_rows(), columns=columns)
    status, out, err = run_eval(["turing", path])
    assert status == 2 and out == ""
    assert str(path) in err and f"`{missing}`" in err and err.count("\n") == 1

