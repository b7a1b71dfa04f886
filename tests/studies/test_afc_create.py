"""`mdiff-study create --design 2afc`: trials, reuse, matching, the key, the audit of the design,
the export, and bad input (one sentence, exit 2)."""

from __future__ import annotations

import csv
import json
from collections import Counter
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from diffusion_core.io import canonical_affine
from studies.audit import audit_folder
from studies.case_file import read_case
from studies.cli.study import main
from studies.key import read_study_key
from studies.ratings import RatingStore
from studies.study import Study
from studies.trial_export import trial_columns


def _create(out: Path, *args: str) -> int:
    return main(["create", "--out", str(out), "--modality", "MR", *args])


def _rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    """5 real and 5 synthetic phantoms (8x16x16)."""
    from tests.studies.conftest import write_phantom_inputs

    return write_phantom_inputs(tmp_path_factory.mktemp("afc_inputs"), 5)


@pytest.fixture(scope="module")
def paired(inputs, tmp_path_factory):
    """A paired study of 4 trials and one practice trial, from 5 real and 5 synthetic inputs."""
    out = tmp_path_factory.mktemp("afc") / "study"
    real, synthetic = inputs
    assert _create(out, "--real", str(real), "--synthetic", str(synthetic), "--design", "2afc",
                   "--pairs", "4", "--practice", "1", "--seed", "3") == 0
    return out, Path(str(out) + ".key.csv")


def _copy(study: Path, to: Path) -> Path:
    """A copy of a study without its readers' databases (module fixtures stay unrated)."""
    import shutil

    shutil.copytree(study, to, ignore=shutil.ignore_patterns("*.sqlite", "*.lock"))
    return to


def _answer(study: Study, reader: str, choose: str = "L") -> None:
    with RatingStore.open(study, reader) as store:
        for trial_id in store.practice_order + store.case_order:
            store.record_answer(trial_id, "synthetic_side", choose, 2.0)
            store.record_answer(trial_id, "confidence", "3", 2.5)


def test_a_paired_study_pairs_a_real_and_a_synthetic_case_per_trial(paired):
    out, key_path = paired
    study = Study.open(out)
    key = read_study_key(study, key_path)
    assert study.design == "2afc" and len(study.trial_ids) == 4 and len(study.case_ids) == 8
    sides = []
    for trial in study.trials.values():
        assert sorted(key[c].source for c in (trial.left, trial.right)) == ["real", "synthetic"]
        sides.append("left" if key[trial.left].source == "synthetic" else "right")
    assert Counter(sides) == {"left": 2, "right": 2}
    # No case repeats without --reuse, and the key names each case's trial and side.
    members = [c for t in study.trials.values() for c in (t.left, t.right)]
    assert sorted(members) == sorted(study.case_ids)
    for trial in study.trials.values():
        assert key[trial.left].trials == f"{trial.trial_id}:left"
        assert key[trial.right].trials == f"{trial.trial_id}:right"
    # The practice trial: members P01a and P01b, one real and one synthetic, its truth listed.
    assert study.practice_file_ids == ["P01a", "P01b"]
    truth = study.practice["P01"]
    assert key[study.trial("P01").member(truth)].source == "synthetic"
    assert set(json.loads((out / "study.json").read_text())) >= {"design", "trials"}


def test_the_audit_of_a_fresh_paired_study_passes_and_covers_the_trials(paired, capsys):
    out, key_path = paired
    assert main(["audit", str(out), "--key", str(key_path)]) == 0
    said = capsys.readouterr().out
    for check in ("PASS  trial pairs", "PASS  side balance", "PASS  side orders",
                  "PASS  practice files"):
        assert check in said


def test_the_audit_fails_a_planted_study_whose_synthetic_member_is_always_left(
        paired, tmp_path, capsys):
    out, key_path = paired
    import shutil

    planted = tmp_path / "planted"
    shutil.copytree(out, planted)
    key = read_study_key(Study.open(planted), key_path)
    manifest = json.loads((planted / "study.json").read_text())
    for trial in manifest["trials"]:
        if key[trial["left"]].source == "real":
            trial["left"], trial["right"] = trial["right"], trial["left"]
    (planted / "study.json").write_text(json.dumps(manifest))
    # The key's trials column follows the planted study, so only the sides give it away.
    rows = _rows(key_path)
    for row in rows:
        if row["case_id"] in key and not row["case_id"].startswith("P"):
            trial = row["trials"].split(":")[0]
            row["trials"] = f"{trial}:{'left' if row['source'] == 'synthetic' else 'right'}"
    planted_key = tmp_path / "planted.key.csv"
    with open(planted_key, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    audit = audit_folder(planted, planted_key)
    assert not audit.passed
    assert any(line.startswith("side balance: the synthetic case is on the left in 4 of the 4")
               for line in audit.failures)
    assert main(["audit", str(planted), "--key", str(planted_key)]) == 1
    assert "FAIL  side balance" in capsys.readouterr().out


def test_the_audit_fails_trials_listed_in_an_order_that_follows_the_side(paired, tmp_path):
    out, key_path = paired
    import shutil

    planted = tmp_path / "ordered"
    shutil.copytree(out, planted)
    key = read_study_key(Study.open(planted), key_path)
    manifest = json.loads((planted / "study.json").read_text())
    manifest["trials"].sort(key=lambda t: key[t["left"]].source != "synthetic")
    (planted / "study.json").write_text(json.dumps(manifest))
    audit = audit_folder(planted, key_path)
    assert [line.split(":")[0] for line in audit.failures] == ["side orders"]
    assert "trial list position in study.json: synthetic-left trials are lower" in \
        audit.failures[0]


def test_case_files_are_those_a_single_reading_study_makes(inputs, paired, tmp_path):
    """One road: the same input and seed give byte-identical case files in both designs."""
    out, key_path = paired
    real, synthetic = inputs
    single = tmp_path / "single"
    assert _create(single, "--real", str(real), "--synthetic", str(synthetic),
                   "--practice", "2", "--seed", "3") == 0
    by_origin = {e.origin: c for c, e in read_study_key(Study.open(single),
                                                        str(single) + ".key.csv").items()}
    study = Study.open(out)
    compared = 0
    for case_id, entry in read_study_key(study, key_path).items():
        if case_id in study.case_ids and entry.origin in by_origin:
            other = Study.open(single).case_path(by_origin[entry.origin])
            assert study.case_path(case_id).read_bytes() == other.read_bytes()
            compared += 1
    assert compared >= 4


def test_export_one_row_per_reader_and_trial_with_sides_as_each_reader_saw_them(
        paired, tmp_path, capsys):
    out, key_path = paired
    out = _copy(out, tmp_path / "rated")
    study = Study.open(out)
    _answer(study, "anna", "L")
    _answer(study, "ben", "L")
    csv_path = tmp_path / "afc.csv"
    assert main(["export", str(out), "--out", str(csv_path), "--key", str(key_path),
                 "--include-practice"]) == 0
    rows = _rows(csv_path)
    with open(csv_path, encoding="utf-8") as handle:
        header = handle.readline().strip().split(",")
    assert header == trial_columns(True, True) == [
        "study_id", "dataset", "reader", "trial_id", "left_case_id", "right_case_id",
        "chosen_side", "confidence", "not_assessable", "comment", "seconds_on_trial", "rated_at",
        "practice", "after_truth", "synthetic_side", "correct", "left_origin", "right_origin"]
    assert len(rows) == 2 * (4 + 1) and {r["reader"] for r in rows} == {"anna", "ben"}
    key = read_study_key(study, key_path)
    by_reader = {(r["reader"], r["trial_id"]): r for r in rows}
    for trial_id in study.trial_ids:
        anna, ben = by_reader["anna", trial_id], by_reader["ben", trial_id]
        assert (anna["left_case_id"], anna["right_case_id"]) == \
            (ben["right_case_id"], ben["left_case_id"])  # the sides differ between readers
        for row in (anna, ben):
            synthetic = "left" if key[row["left_case_id"]].source == "synthetic" else "right"
            assert row["synthetic_side"] == synthetic and row["chosen_side"] == "left"
            assert row["correct"] == ("1" if synthetic == "left" else "0")
            assert row["left_origin"] == key[row["left_case_id"]].origin
    # Every reader chose Left throughout: each is right on exactly their synthetic-left trials.
    for reader in ("anna", "ben"):
        correct = sum(r["correct"] == "1" for r in rows if r["reader"] == reader
                      and r["practice"] == "0")
        assert correct == 2
    practice = [r for r in rows if r["practice"] == "1"]
    assert {r["trial_id"] for r in practice} == {"P01"}
    assert main(["export", str(out), "--out", str(tmp_path / "blind.csv")]) == 0
    assert "synthetic_side" not in _rows(tmp_path / "blind.csv")[0]
    capsys.readouterr()
    assert main(["export", str(out), "--out", str(tmp_path / "x.imrmc"), "--format", "imrmc",
                 "--key", str(key_path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no iMRMC table" in err and "mdiff-eval afc" in err
    assert main(["status", str(out), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["design"] == "2afc" and report["trials"] == 4
    assert [r["done"] for r in report["readers"]] == [4, 4]


@pytest.mark.parametrize("match", [[], ["--match"]])
def test_reuse_spreads_the_trials_over_the_cases_without_a_repeated_pair(inputs, tmp_path,
                                                                          match):
    real, synthetic = inputs
    out = tmp_path / "reuse"
    assert _create(out, "--real", str(real), "--synthetic", str(synthetic), "--design", "2afc",
                   "--pairs", "12", "--reuse", "--seed", "1", *match) == 0
    study = Study.open(out)
    trials = list(study.trials.values())
    assert len(trials) == 12 and len(study.case_ids) == 10
    pairs = {frozenset((t.left, t.right)) for t in trials}
    assert len(pairs) == 12  # never twice the same partner
    shown = Counter(c for t in trials for c in (t.left, t.right))
    assert set(shown.values()) <= {2, 3}  # 24 showings over 10 cases: as even as can be
    assert audit_folder(out, str(out) + ".key.csv").passed


def _sphere(radius: float, brightness: float, shape=(8, 16, 16)) -> np.ndarray:
    d, h, w = np.meshgrid(*(np.arange(n) - (n - 1) / 2 for n in shape), indexing="ij")
    inside = (d * 2) ** 2 + h ** 2 + w ** 2 < radius ** 2
    rng = np.random.default_rng(int(radius * 10))
    return (inside * brightness + 0.02 * rng.standard_normal(shape) + 0.05).astype(np.float32)


def test_match_pairs_each_synthetic_case_with_its_most_similar_real_one(tmp_path):
    """Spheres of four sizes: each synthetic one must meet the real one of its size."""
    real, synthetic = tmp_path / "real", tmp_path / "synthetic"
    real.mkdir()
    synthetic.mkdir()
    affine = canonical_affine((2.0, 1.0, 1.0))
    for i, radius in enumerate((3.0, 4.5, 6.0, 7.5)):
        nib.save(nib.Nifti1Image(_sphere(radius, 1.0), affine), real / f"r{i}.nii.gz")
        nib.save(nib.Nifti1Image(_sphere(radius + 0.2, 0.9), affine), synthetic / f"s{i}.nii.gz")
    out = tmp_path / "matched"
    assert _create(out, "--real", str(real), "--synthetic", str(synthetic), "--design", "2afc",
                   "--pairs", "4", "--match", "--seed", "5") == 0
    study = Study.open(out)
    key = read_study_key(study, str(out) + ".key.csv")
    for trial in study.trials.values():
        origins = sorted(Path(key[c].origin).name for c in (trial.left, trial.right))
        assert origins[0][1] == origins[1][1], origins  # r2 with s2, ...
        sizes = [float((read_case(study.case_path(c)).array > 1000).mean())
                 for c in (trial.left, trial.right)]
        assert abs(sizes[0] - sizes[1]) < 0.05


def test_practice_trials_from_practice_folders(inputs, tmp_path, phantom_inputs):
    real, synthetic = inputs
    practice_real, practice_synthetic = phantom_inputs(tmp_path / "practice", 2, seed=11)
    out = tmp_path / "with_practice"
    assert _create(out, "--real", str(real), "--synthetic", str(synthetic), "--design", "2afc",
                   "--pairs", "5", "--practice-real", str(practice_real),
                   "--practice-synthetic", str(practice_synthetic)) == 0
    study = Study.open(out)
    assert study.practice_ids == ["P01", "P02"] and len(study.trial_ids) == 5
    key = read_study_key(study, str(out) + ".key.csv")
    for trial_id, side in study.practice.items():
        trial = study.trial(trial_id)
        assert key[trial.member(side)].source == "synthetic"
        assert Path(key[trial.member(side)].origin).parent == practice_synthetic
    assert audit_folder(out, str(out) + ".key.csv").passed


@pytest.mark.parametrize("args, message", [
    (["--pairs", "3"], "--pairs is an option of paired studies"),
    (["--match"], "--match is an option of paired studies"),
    (["--design", "2afc"], "give --pairs N"),
    (["--design", "2afc", "--pairs", "0"], "give --pairs N"),
    (["--design", "2afc", "--pairs", "2", "--turing"], "leave out --turing"),
    (["--design", "2afc", "--pairs", "6"], "--pairs 6 needs 6 synthetic volumes without --reuse"),
    (["--design", "2afc", "--pairs", "3", "--n", "2"], "--n 2 draws fewer synthetic cases"),
    (["--design", "2afc", "--pairs", "26", "--reuse"], "make only 25 distinct pairs"),
    (["--design", "2afc", "--pairs", "5", "--practice", "1"], "--practice 1 trials need"),
    (["--design", "2afc", "--pairs", "2", "--practice-real", str(Path(__file__).parent / "data")],
     "give both --practice-real"),
])
def test_bad_paired_requests_are_one_sentence_and_exit_2(inputs, tmp_path, capsys, args,
                                                         message):
    real, synthetic = inputs
    out = tmp_path / "bad"
    assert _create(out, "--real", str(real), "--synthetic", str(synthetic), *args) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and "Traceback" not in err
    assert not out.exists()


def test_a_paired_study_needs_both_real_and_synthetic_volumes(inputs, tmp_path, capsys):
    real, _ = inputs
    assert _create(tmp_path / "bad", "--real", str(real), "--design", "2afc", "--pairs",
                   "2") == 2
    assert "give both --real and --synthetic" in capsys.readouterr().err


def test_partial_trials_and_a_merged_reader_export_as_their_trials(paired, tmp_path):
    out, key_path = paired
    out = _copy(out, tmp_path / "site_a")
    copy = _copy(out, tmp_path / "site_b")
    study = Study.open(copy)
    with RatingStore.open(study, "carl") as store:
        first = store.case_order[0]
        store.record_answer(first, "synthetic_side", "R", 4.0)  # no confidence yet
    assert main(["merge", str(out), str(copy)]) == 0
    csv_path = tmp_path / "partial.csv"
    assert main(["export", str(out), "--out", str(csv_path), "--key", str(key_path),
                 "--include-partial"]) == 0
    rows = [r for r in _rows(csv_path) if r["reader"] == "carl"]
    assert len(rows) == 1 and rows[0]["trial_id"] == first
    assert rows[0]["chosen_side"] == "right" and rows[0]["confidence"] == ""
    assert rows[0]["correct"] == ("1" if rows[0]["synthetic_side"] == "right" else "0")
