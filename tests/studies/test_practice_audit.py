"""`mdiff-study audit` on a study with a practice block: a created one passes; each way of making a
study case reachable from the practice truth fails."""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path

import numpy as np
import pytest

from studies.audit import audit_folder
from studies.case_file import encode_case, read_case
from studies.cli.study import main
from studies.key import KeyEntry, read_key, write_key
from studies.normalise import Grid
from studies.practice_audit import PAIRING
from studies.study import Study

PRACTICE_CHECKS = ["file names", "practice files", "practice sources", "practice content"]


def _create(out: Path, real: Path, synthetic: Path, *options: str) -> tuple[Path, Path]:
    assert main(["create", "--out", str(out), "--real", str(real), "--synthetic",
                 str(synthetic), "--modality", "MR", "--seed", "2", *options]) == 0
    return out, Path(str(out) + ".key.csv")


@pytest.fixture
def practised(mr_inputs, tmp_path) -> tuple[Path, Path]:
    """A created study of 4 real and 4 synthetic cases with 4 practice cases, and its key."""
    return _create(tmp_path / "study", mr_inputs["real"], mr_inputs["synthetic"], "--n", "4",
                   "--n-real", "4", "--practice", "4")


def _failed(created, check: str) -> str:
    """The reason the audit failed `check` (the test fails when it passed)."""
    audit = audit_folder(*created)
    result = next(c for c in audit.checks if c.name == check)
    assert not result.passed and not audit.passed, result
    return result.reason


def _rewrite(path: Path, data: bytes) -> None:
    """Replace a case file's bytes in place, keeping its times."""
    stat = path.stat()
    path.write_bytes(data)
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))


def test_a_created_study_with_practice_passes(practised, capsys):
    audit = audit_folder(*practised)
    assert [c.name for c in audit.checks] == PRACTICE_CHECKS
    assert audit.features[-1].name == PAIRING and audit.features[-1].kind == "values"
    assert audit.passed, audit.failures
    assert (audit.n_real, audit.n_synthetic, audit.n_practice) == (4, 4, 4)
    assert main(["audit", str(practised[0]), "--key", str(practised[1]), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["n_practice"] == 4 and len(report["checks"]) == 4
    assert main(["audit", str(practised[0]), "--key", str(practised[1])]) == 0
    out = capsys.readouterr().out
    assert "(and 4 practice cases)" in out and "PASS  practice content: no practice case" in out
    assert "PASS  practice files: practice/ holds exactly the 4 practice cases (P01, P02" in out


def test_a_study_case_copied_into_the_practice_block_fails(practised, capsys):
    study = Study.open(practised[0])
    copied = study.case_ids[0]
    _rewrite(study.case_path("P01"), study.case_path(copied).read_bytes())
    assert f"P01 is identical to study case {copied}" in _failed(practised, "practice content")
    assert main(["audit", str(practised[0]), "--key", str(practised[1])]) == 1
    assert "FAIL  practice content" in capsys.readouterr().out


def test_a_near_copy_fails(practised):
    study = Study.open(practised[0])
    source = read_case(study.case_path(study.case_ids[1])).array.astype(np.int32)
    # The same image dithered anew: one unit up or down in a third of the voxels.
    rng = np.random.default_rng(0)
    nudged = source + rng.choice([-1, 0, 0, 1], size=source.shape)
    grid = Grid(study.shape, study.spacing)
    _rewrite(study.case_path("P02"), encode_case(np.clip(nudged, 0, 4095).astype(np.int16),
                                                 grid, "MR"))
    reason = _failed(practised, "practice content")
    assert f"P02 is a near copy of study case {study.case_ids[1]}" in reason


def test_a_practice_case_from_a_study_case_input_fails(practised):
    study_dir, key_path = practised
    key = read_key(key_path)
    study_case = Study.open(study_dir).case_ids[2]
    # The same scan as the study case, another part of it.
    origin = f"{key[study_case].origin} [part 2 of 3]"
    key["P03"] = KeyEntry("P03", key["P03"].source, origin)
    write_key(key_path, list(key.values()))
    assert f"P03 comes from the input of study case {study_case}" in \
        _failed(practised, "practice sources")


def test_a_practice_truth_other_than_the_key_fails(practised):
    manifest = json.loads((practised[0] / "study.json").read_text())
    entry = manifest["practice"][0]
    entry["source"] = "real" if entry["source"] == "synthetic" else "synthetic"
    (practised[0] / "study.json").write_text(json.dumps(manifest))
    assert f"study.json gives {entry['case_id']} the truth {entry['source']}" in \
        _failed(practised, "practice files")


def test_a_study_case_listed_as_practice_is_refused_in_one_sentence(practised, capsys):
    manifest = json.loads((practised[0] / "study.json").read_text())
    manifest["practice"][0]["case_id"] = manifest["cases"][0]
    (practised[0] / "study.json").write_text(json.dumps(manifest))
    assert main(["audit", str(practised[0]), "--key", str(practised[1])]) == 2
    err = capsys.readouterr().err
    assert "is not a practice id" in err and err.count("\n") == 1


def test_a_stray_file_in_the_practice_folder_fails(practised):
    study = Study.open(practised[0])
    (study.practice_dir / f"{study.case_ids[0]}.nii").write_bytes(
        study.case_path(study.case_ids[0]).read_bytes())
    assert "disagree about 1 files" in _failed(practised, "practice files")


def test_practice_truth_that_pairs_with_study_cases_fails(phantom_inputs, tmp_path):
    created = _create(tmp_path / "study", *phantom_inputs(tmp_path / "inputs", 10),
                      "--practice", "4")
    study = Study.open(created[0])
    with open(created[1], newline="") as handle:
        sources = {row["case_id"]: row["source"] for row in csv.DictReader(handle)}
    grid = Grid(study.shape, study.spacing)
    # Every real case, study and practice alike, made of even values: a tell the labelled
    # practice cases teach, and their nearest real practice case gives each real study case away.
    for case_id, source in sources.items():
        if source == "real":
            path = study.case_path(case_id)
            array = read_case(path).array
            _rewrite(path, encode_case((array // 2 * 2).astype(np.int16), grid, "MR"))
    audit = audit_folder(*created)
    pairing = audit.feature(PAIRING)
    assert not pairing.passed and pairing.auc == 1.0, pairing
    assert "separates near-perfectly" in pairing.reason


def test_without_both_sources_in_practice_there_is_no_pairing(mr_inputs, float_volumes,
                                                              tmp_path):
    real = float_volumes(tmp_path / "practice_real", 2, seed=3, shape=(32, 32, 8))
    created = _create(tmp_path / "study", mr_inputs["real"], mr_inputs["synthetic"],
                      "--practice-real", str(real))
    audit = audit_folder(*created)
    assert [c.name for c in audit.checks] == PRACTICE_CHECKS
    assert PAIRING not in [f.name for f in audit.features]
