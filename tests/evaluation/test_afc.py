"""`mdiff-eval afc`: proportion correct, exact CI, binomial p, d', side bias, confidence AUC and
agreement on the chosen case, against values computed by hand; bad input in one sentence."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import pytest

from evaluation.afc import afc_from_exports, dprime_2afc
from studies.trial_export import trial_columns

# Trial i shows real case r{i} and synthetic case s{i}; reader A sees layout A, in which the
# synthetic case is on the left in trials 0-4; reader B sees the mirror.
A_CHOICES = "LLLLRRRRLL"  # right on trials 0-3 and 5-7: 7 of 10, Left 6 times
A_CONFIDENCE = "4321143212"


def _rows(reader: str, mirrored: bool, choices: str, confidences: str) -> list[dict[str, str]]:
    rows = []
    for i, (choice, confidence) in enumerate(zip(choices, confidences, strict=True)):
        left, right = (f"s{i}", f"r{i}") if i < 5 else (f"r{i}", f"s{i}")
        if mirrored:
            left, right = right, left
        synthetic = "left" if left.startswith("s") else "right"
        chosen = {"L": "left", "R": "right"}[choice]
        rows.append({"study_id": "5eed", "dataset": "demo", "reader": reader,
                     "trial_id": f"t{i}", "left_case_id": left, "right_case_id": right,
                     "chosen_side": chosen, "confidence": confidence, "not_assessable": "0",
                     "comment": "", "seconds_on_trial": "3.0", "rated_at": "", "practice": "0",
                     "after_truth": "0", "synthetic_side": synthetic,
                     "correct": "1" if chosen == synthetic else "0",
                     "left_origin": "", "right_origin": ""})
    return rows


def _b_rows() -> list[dict[str, str]]:
    """Reader B is right on every trial (mirrored sides: synthetic right in trials 0-4)."""
    return _rows("B", True, "RRRRRLLLLL", "4444444444")


def _write(path: Path, rows: list[dict[str, str]], columns: list[str] | None = None) -> Path:
    columns = columns or trial_columns(True, True)
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    return path


@pytest.fixture
def export(tmp_path) -> Path:
    return _write(tmp_path / "afc.csv", _rows("A", False, A_CHOICES, A_CONFIDENCE) + _b_rows())


def test_proportion_correct_exact_ci_p_and_dprime_by_hand(export):
    report = afc_from_exports([export])
    a = report.readers["A"]
    assert (a.correct.k, a.correct.n) == (7, 10) and a.correct.value == 0.7
    # Clopper-Pearson: Beta(0.025; 7, 4) and Beta(0.975; 8, 3).
    assert a.correct.ci_low == pytest.approx(0.3475471, abs=1e-6)
    assert a.correct.ci_high == pytest.approx(0.9332605, abs=1e-6)
    # Two-sided exact binomial: 2 * P(X >= 7) = 2 * 176 / 1024.
    assert a.correct.p_value == pytest.approx(0.34375)
    assert a.dprime.value == pytest.approx(math.sqrt(2) * 0.5244005, abs=1e-6)
    assert not a.dprime.corrected
    # Side bias: Left 6 of 10, 2 * P(X >= 6) = 2 * 386 / 1024.
    assert (a.left_choices.k, a.left_choices.value) == (6, 0.6)
    assert a.left_choices.p_value == pytest.approx(0.75390625)
    # Ratings +4 +3 +2 +1 -1 (synthetic left) against -4 -3 -2 +1 +2: 21 of 25 pairs.
    assert a.auc_confidence.auc == pytest.approx(21 / 25)
    assert (a.auc_confidence.n_synthetic_left, a.auc_confidence.n_synthetic_right) == (5, 5)
    # Its curve, threshold by threshold from +4 down: (0, 0), (0, 1/5), (0, 2/5), (1/5, 3/5), ...
    assert a.auc_confidence.roc[:4] == ((0.0, 0.0), (0.0, 0.2), (0.0, 0.4), (0.2, 0.6))
    assert a.auc_confidence.roc[-1] == (1.0, 1.0)


def test_a_perfect_reader_gets_the_half_trial_correction(export):
    b = afc_from_exports([export]).readers["B"]
    assert b.correct.value == 1.0 and b.correct.ci_high == 1.0
    assert b.correct.ci_low == pytest.approx(0.025 ** 0.1)  # the exact lower bound for 10/10
    assert b.correct.p_value == pytest.approx(2 / 1024)
    assert b.dprime.corrected and b.dprime.pc_used == pytest.approx(0.95)
    assert b.dprime.value == pytest.approx(math.sqrt(2) * 1.6448536, abs=1e-6)
    assert b.left_choices.value == 0.5 and b.auc_confidence.auc == 1.0
    assert dprime_2afc(0, 4).pc_used == pytest.approx(1 / 8)
    assert dprime_2afc(0, 4).value < 0


def test_pooled_and_agreement_on_the_chosen_case_by_hand(export):
    report = afc_from_exports([export])
    pooled = report.pooled
    assert (pooled.correct.k, pooled.correct.n) == (17, 20)
    assert (pooled.left_choices.k, pooled.left_choices.n) == (11, 20)
    pair = report.agreement.pairs[0]
    # B always picks the synthetic case, so the two chose the same case where A was right.
    assert pair.readers == ("A", "B") and pair.n_shared == 10 and pair.same_case == 0.7
    # Cohen's kappa: p_o = 0.7, p_e = 0.7 * 1 + 0.3 * 0 = 0.7, so 0.
    assert pair.kappa == pytest.approx(0.0)
    # Fleiss: P = 0.7, shares 17/20 and 3/20, P_e = 0.745, (0.7 - 0.745) / 0.255.
    assert report.agreement.fleiss_kappa == pytest.approx(-0.045 / 0.255)
    assert report.agreement.n_trials_all_readers == 10


def test_left_out_rows_are_counted_not_used(tmp_path):
    rows = _rows("A", False, A_CHOICES, A_CONFIDENCE)
    rows[0].update(not_assessable="1")
    rows[1].update(chosen_side="", confidence="", correct="")
    rows.append({**rows[2], "trial_id": "P01", "practice": "1"})
    report = afc_from_exports([_write(tmp_path / "a.csv", rows)])
    assert report.left_out.to_json() == {"not_assessable": 1, "practice": 1, "unanswered": 1}
    assert report.readers["A"].correct.n == 8 and report.n_trials == 8
    assert report.agreement.fleiss_kappa is None and report.agreement.reason


def test_cli_json_text_and_figure(export, tmp_path, run_eval):
    figure = tmp_path / "afc.png"
    status, out, err = run_eval(["afc", export, "--json", "--figure", figure])
    assert status == 0, err
    report = json.loads(out)
    assert set(report) == {"files", "study_id", "dataset", "n_trials", "left_out", "readers",
                           "pooled", "agreement", "figure"}
    assert set(report["readers"]["A"]) == {"correct", "dprime", "left_choices",
                                           "auc_confidence"}
    assert report["pooled"]["correct"]["k"] == 17 and report["figure"] == str(figure)
    assert figure.is_file() and figure.stat().st_size > 10_000
    status, out, _ = run_eval(["afc", export])
    assert status == 0 and "Reader A:" in out and "0.70 [0.35, 0.93] (7/10)" in out
    assert "same case in 70% of 10 shared trials" in out
    status, _, err = run_eval(["afc", export, "--figure", figure])  # exists: refused
    assert status == 2 and err.count("\n") == 1


def _edit(rows: list[dict[str, str]], **change: str) -> list[dict[str, str]]:
    rows[0] = {**rows[0], **change}
    return rows


@pytest.mark.parametrize("make, message", [
    (lambda p: _write(p, _rows("A", False, A_CHOICES, A_CONFIDENCE),
                      trial_columns(False, True)), "export the study with --key"),
    (lambda p: _write(p, [{"study_id": "x", "case_id": "c"}],
                      ["study_id", "dataset", "reader", "case_id", "realistic_appearance"]),
     "single-reading study"),
    (lambda p: _write(p, _edit(_rows("A", False, A_CHOICES, A_CONFIDENCE), correct="0")),
     "disagrees with `chosen_side`"),
    (lambda p: _write(p, _edit(_rows("A", False, A_CHOICES, A_CONFIDENCE), chosen_side="up")),
     "column `chosen_side`: the value 'up' is not one of left, right"),
    (lambda p: _write(p, _edit(_rows("A", False, A_CHOICES, A_CONFIDENCE), confidence="9")),
     "column `confidence`"),
    (lambda p: _write(p, _rows("A", False, A_CHOICES, A_CONFIDENCE) * 2),
     "answers trial t0 a second time"),
    (lambda p: _write(p, _rows("A", False, A_CHOICES, A_CONFIDENCE)
                      + [{**r, "study_id": "other"} for r in _b_rows()]), "2 studies"),
    (lambda p: _write(p, _rows("A", False, A_CHOICES, A_CONFIDENCE)
                      + [{**r, "left_case_id": "zz"} for r in _b_rows()]),
     "shows other cases to different readers"),
    (lambda p: _write(p, []), "has a header but no trials"),
    (lambda p: p.with_name("missing.csv"), "does not exist"),
])
def test_bad_input_is_one_sentence_and_exit_2(tmp_path, run_eval, make, message):
    path = make(tmp_path / "bad.csv")
    status, out, err = run_eval(["afc", path])
    assert status == 2 and out == ""
    assert message in err and err.count("\n") == 1 and "Traceback" not in err
