"""`mdiff-study create`: blinding of values, headers, names and orders; the key; bad input."""

from __future__ import annotations

import csv
import json
import os
import re
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from diffusion_core.io import canonical_affine, read_volume
from diffusion_core.presets import get_preset
from studies.audit import audit_folder
from studies.case_file import read_case
from studies.cli.study import main
from studies.study import Study

MANIFEST_KEYS = {"format", "version", "study_id", "title", "dataset", "modality", "questions",
                 "turing", "cases", "shape", "spacing", "viewer", "created_at",
                 "answers_editable", "practice"}
CASE_NAME = re.compile(r"^[0-9a-f]{8}\.nii$")


def mr_scale(values: np.ndarray) -> np.ndarray:
    """The MR study scale, written out apart from studies.normalise: the 0.5th and 99.5th
    percentiles go to 0 and 4095, then round and clip."""
    low, high = np.percentile(values, [0.5, 99.5])
    return np.clip(np.rint((values - low) * 4095.0 / (high - low)), 0, 4095)


def _create(out: Path, *args: str) -> int:
    return main(["create", "--out", str(out), *args])


def _key_rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def _stored(study: Study) -> dict:
    return {c: read_case(study.case_path(c)) for c in study.case_ids}


@pytest.fixture(scope="module")
def mr_study(mr_inputs, tmp_path_factory) -> Path:
    """A Turing study of 6 real uint8 and 6 synthetic float32 MR volumes, no preset."""
    out = tmp_path_factory.mktemp("created") / "knee"
    assert _create(out, "--synthetic", str(mr_inputs["synthetic"]), "--real",
                   str(mr_inputs["real"]), "--modality", "MR", "--turing", "--seed", "7",
                   "--title", "Knee study") == 0
    return out


def test_manifest_says_nothing_about_sources(mr_study):
    manifest = json.loads((mr_study / "study.json").read_text())
    assert set(manifest) == MANIFEST_KEYS
    assert (manifest["format"], manifest["version"], manifest["title"]) == \
        ("mdiff-study", 2, "Knee study")
    # No --dataset and no --preset: the title names the data set, so exports are never refused
    # for an empty dataset column.
    assert (manifest["modality"], manifest["dataset"], manifest["turing"]) == \
        ("MR", "Knee study", True)
    assert manifest["questions"] == ["realistic_appearance", "slice_consistency",
                                     "anatomical_correctness", "real_or_synthetic", "confidence"]
    assert manifest["shape"] == [8, 32, 32]
    assert manifest["spacing"] == [3.0, 0.7, 0.7]  # the first real volume's
    assert manifest["viewer"] == {"percentile": [0.5, 99.5]}
    assert (manifest["answers_editable"], manifest["practice"]) == (True, [])
    text = (mr_study / "study.json").read_text() + (mr_study / "log.txt").read_text()
    for question in manifest["questions"]:
        text = text.replace(f'"{question}"', "")
    for leak in ("real", "synthetic", "patient", "sample", "knee-ddpm", "seed"):
        assert leak not in text
    assert sorted(os.listdir(mr_study)) == ["cases", "log.txt", "ratings", "study.json"]
    assert os.listdir(mr_study / "ratings") == []
    assert not [p for p in mr_study.parent.iterdir() if ".partial" in p.name]


def test_every_case_has_one_header_dtype_size_and_time(mr_study):
    study = Study.open(mr_study)
    assert len(study.case_ids) == 12
    names = os.listdir(study.cases_dir)
    assert len(names) == 12 and all(CASE_NAME.match(n) for n in names)
    stored = _stored(study)
    first = next(iter(stored.values()))
    assert all(s.nifti_header == first.nifti_header for s in stored.values())
    assert all(s.gzip_header == b"" for s in stored.values())  # uncompressed
    assert {str(s.dtype) for s in stored.values()} == {"int16"}
    image = nib.load(study.case_path(study.case_ids[0]))
    # Spacing (3, 0.7, 0.7) on D (inferior->superior: +z), H (anterior->posterior: -y) and W
    # (right->left: -x), centred: the middle voxel (3.5, 15.5, 15.5) sits at the origin.
    expected = np.array([[0.0, 0.0, -0.7, 10.85],
                         [0.0, -0.7, 0.0, 10.85],
                         [3.0, 0.0, 0.0, -10.5],
                         [0.0, 0.0, 0.0, 1.0]])
    np.testing.assert_allclose(image.affine, expected, atol=1e-6)
    assert image.header.get_xyzt_units() == ("mm", "sec")
    assert (int(image.header["qform_code"]), int(image.header["sform_code"])) == (1, 1)
    assert image.header["descrip"].item() == b"mdiff modality=MR"
    assert image.header["intent_code"] == 0
    stats = [os.stat(study.case_path(c)) for c in study.case_ids]
    # The 352-byte header block, then the int16 voxels: the same size by construction.
    assert {s.st_size for s in stats} == {352 + 2 * 8 * 32 * 32}
    assert len({s.st_mtime_ns for s in stats}) == 1
    for case_id in study.case_ids:
        data = study.case_path(case_id).read_bytes()
        assert data[:352] == first.nifti_header and data[:2] != b"\x1f\x8b"


def test_key_beside_the_study_names_sources_models_and_seeds(mr_study, mr_inputs):
    key = Path(str(mr_study) + ".key.csv")
    rows = _key_rows(key)
    assert list(rows[0]) == ["case_id", "source", "origin", "model", "seed"]
    assert sorted(r["case_id"] for r in rows) == sorted(Study.open(mr_study).case_ids)
    real = [r for r in rows if r["source"] == "real"]
    synthetic = [r for r in rows if r["source"] == "synthetic"]
    assert len(real) == len(synthetic) == 6
    assert {Path(r["origin"]) for r in real} == \
        {p.resolve() for p in mr_inputs["real"].glob("*.nii.gz")}
    assert all(r["model"] == "" and r["seed"] == "" for r in real)
    assert {r["model"] for r in synthetic} == {"knee-ddpm-v1"}
    for row in synthetic:
        number = int(Path(row["origin"]).name[len("sample_"):-len(".nii.gz")])
        assert row["seed"] == str(100 + number)


def test_real_uint8_and_synthetic_float_get_the_same_kind_of_values(mr_study):
    study = Study.open(mr_study)
    stored = _stored(study)
    sources = {r["case_id"]: r["source"] for r in _key_rows(Path(str(mr_study) + ".key.csv"))}
    distinct = {c: np.unique(s.array).size for c, s in stored.items()}
    # A uint8 scan has at most 256 values; dequantised and rescaled it fills the int16 scale.
    assert min(distinct[c] for c in distinct if sources[c] == "real") > 1000
    for s in stored.values():
        assert s.array.min() == 0 and s.array.max() == 4095
    audit = audit_folder(mr_study, Path(str(mr_study) + ".key.csv"))
    assert audit.passed, audit.failures


def test_cases_keep_their_orientation_and_content(mr_study):
    """Each case is its input, scaled: no axis swapped or flipped on the way."""
    study = Study.open(mr_study)
    for row in _key_rows(Path(str(mr_study) + ".key.csv")):
        case = read_volume(study.case_path(row["case_id"]))
        assert case.modality == "MR" and case.spacing == pytest.approx(study.spacing)
        np.testing.assert_array_equal(case.array, read_case(study.case_path(row["case_id"])).array)
        source = read_volume(row["origin"]).array.astype(float)
        correlation = np.corrcoef(case.array.ravel(), source.ravel())[0, 1]
        assert correlation > 0.99
        # The dither moves a value by up to half a source level (and the percentiles a little):
        # never by a whole level of the source on the 0-4095 scale.
        level = 4095 / np.subtract(*np.percentile(source, [99.5, 0.5]))
        if row["source"] == "synthetic":
            level = 1.0  # float input: rounding only
        difference = np.abs(case.array.astype(int) - mr_scale(source))
        assert difference.max() <= max(level, 1.0)


def test_audit_cli_passes_on_created_study(mr_study, capsys):
    key = str(mr_study) + ".key.csv"
    assert main(["audit", str(mr_study), "--key", key]) == 0
    lines = capsys.readouterr().out.splitlines()
    rows = [line for line in lines if line.startswith(("PASS  ", "FAIL  "))]
    assert len(rows) == 1 + 18 and all(line.startswith("PASS  ") for line in rows)
    assert lines[-1].startswith("Audit passed")
    assert main(["audit", str(mr_study), "--key", key, "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["passed"] is True and len(report["checks"]) == 1
    assert len(report["features"]) == 18 and all(f["passed"] for f in report["features"])


def test_preset_pipeline_and_preprocessed_passthrough(tmp_path):
    """With a preset, raw scans go through its pipeline; a sampler's [-1, 1] output passes."""
    rng = np.random.default_rng(5)
    real, synthetic = tmp_path / "real", tmp_path / "synthetic"
    real.mkdir()
    synthetic.mkdir()
    samples = {}
    for i in range(3):
        scan = (rng.uniform(0, 1, (10, 40, 40)) * 200).astype(np.uint8)
        nib.save(nib.Nifti1Image(scan, np.diag([1.5, 1.0, 1.0, 1.0])), real / f"r{i}.nii.gz")
        sample = rng.uniform(-1, 1, (8, 16, 16)).astype(np.float32)
        samples[f"s{i}.nii.gz"] = sample
        nib.save(nib.Nifti1Image(sample, canonical_affine((1.0, 1.0, 1.0))),
                 synthetic / f"s{i}.nii.gz")
    out = tmp_path / "tiny_study"
    assert _create(out, "--synthetic", str(synthetic), "--real", str(real), "--preset",
                   "tiny", "--n", "2", "--n-real", "2") == 0
    study = Study.open(out)
    preset = get_preset("tiny")
    assert (study.dataset, study.modality) == ("tiny", "MR")
    assert study.shape == (8, 16, 16) and study.spacing == preset.spacing
    for row in _key_rows(Path(str(out) + ".key.csv")):
        array = read_case(study.case_path(row["case_id"])).array
        assert array.shape == (8, 16, 16)
        if row["source"] == "synthetic":
            # tiny maps [-1, 1] linearly onto [0, 1], which the percentile scaling does not see.
            expected = mr_scale(samples[Path(row["origin"]).name])
            assert np.abs(array.astype(int) - expected).max() <= 1


def test_ct_is_stored_in_hounsfield_units(ct_inputs, tmp_path):
    out = tmp_path / "chest"
    assert _create(out, "--synthetic", str(ct_inputs["synthetic"]), "--real",
                   str(ct_inputs["real"]), "--modality", "CT") == 0
    study = Study.open(out)
    assert study.viewer == {"window": [40, 400]} and study.modality == "CT"
    for row in _key_rows(Path(str(out) + ".key.csv")):
        array = read_case(study.case_path(row["case_id"])).array
        source = read_volume(row["origin"]).array
        assert array.dtype == np.int16
        assert np.abs(array.astype(float) - np.asarray(source, dtype=float)).max() <= 1.0
    assert audit_folder(out, Path(str(out) + ".key.csv")).passed


def test_same_seed_same_choice_and_values_new_ids(mr_inputs, tmp_path):
    arrays = []
    for name in ("a", "b"):
        out = tmp_path / name
        assert _create(out, "--synthetic", str(mr_inputs["synthetic"]), "--real",
                       str(mr_inputs["real"]), "--n", "3", "--n-real", "2", "--modality", "MR",
                       "--seed", "11") == 0
        study = Study.open(out)
        by_origin = {r["origin"]: read_case(study.case_path(r["case_id"])).array
                     for r in _key_rows(Path(str(out) + ".key.csv"))}
        arrays.append((set(study.case_ids), by_origin))
    (ids_a, a), (ids_b, b) = arrays
    assert set(a) == set(b) and len(a) == 5
    assert not ids_a & ids_b
    for origin in a:
        np.testing.assert_array_equal(a[origin], b[origin])


# ------------------------------------------------------------------------------------- bad input


def _bad_case(tmp_path: Path, case: str, float_volumes) -> tuple[list[str], str]:
    """The create arguments for one bad input and a fragment of the expected message."""
    good = float_volumes(tmp_path / "good", 3)
    out = tmp_path / "study"
    if case == "empty folder":
        (tmp_path / "empty").mkdir()
        return ["--synthetic", str(tmp_path / "empty"), "--modality", "MR"], "empty"
    if case == "fewer than asked":
        return ["--synthetic", str(good), "--n", "5", "--modality", "MR"], \
            "holds 3 scans, fewer than the 5 asked with --n"
    if case == "mixed 2D and 3D":
        nib.save(nib.Nifti1Image(np.zeros((32, 32), np.float32), np.eye(4)),
                 good / "flat.nii.gz")
        return ["--real", str(good), "--modality", "MR"], "flat.nii.gz"
    if case == "unreadable file":
        (good / "broken.nii.gz").write_bytes(b"\x1f\x8b not really gzip")
        return ["--synthetic", str(good), "--modality", "MR"], "broken.nii.gz"
    if case == "study exists":
        out.mkdir()
        return ["--synthetic", str(good), "--modality", "MR"], "already exists"
    if case == "key inside study":
        return ["--synthetic", str(good), "--modality", "MR", "--key",
                str(out / "key.csv")], "inside the study"
    if case == "shapes differ without preset":
        # Not constant: a constant volume is skipped before its shape matters.
        odd = np.arange(8 * 30 * 32, dtype=np.float32).reshape(8, 30, 32)
        nib.save(nib.Nifti1Image(odd, np.eye(4)), good / "odd.nii.gz")
        return ["--synthetic", str(good), "--modality", "MR"], "pass --preset"
    if case == "no folders":
        return ["--modality", "MR"], "No volumes were given"
    if case == "unknown preset":
        return ["--synthetic", str(good), "--preset", "nope"], "unknown preset 'nope'"
    if case == "real count without folder":
        return ["--synthetic", str(good), "--n-real", "2", "--modality", "MR"], \
            "no --real folder"
    if case == "normalised CT without preset":
        folder = tmp_path / "unit"
        folder.mkdir()
        for i in range(2):
            nib.save(nib.Nifti1Image(np.linspace(-1, 1, 8 * 32 * 32, dtype=np.float32)
                                     .reshape(8, 32, 32), np.eye(4)), folder / f"u{i}.nii.gz")
        return ["--synthetic", str(folder), "--real", str(good), "--modality", "CT"], \
            "not Hounsfield units"
    raise AssertionError(case)


@pytest.mark.parametrize("case", [
    "empty folder", "fewer than asked", "mixed 2D and 3D", "unreadable file", "study exists",
    "key inside study", "shapes differ without preset", "no folders", "unknown preset",
    "real count without folder", "normalised CT without preset",
])
def test_bad_input_is_one_sentence_and_leaves_nothing(tmp_path, capsys, case, float_volumes):
    args, fragment = _bad_case(tmp_path, case, float_volumes)
    out = tmp_path / "study"
    existed = out.exists()
    assert _create(out, *args) == 2
    captured = capsys.readouterr()
    err = captured.err.strip().splitlines()
    assert len(err) == 1 and fragment in err[0], captured.err
    assert "Traceback" not in captured.err and captured.out == ""
    assert out.exists() == existed
    assert not [p for p in tmp_path.iterdir() if ".partial" in p.name or p.suffix == ".csv"]
    assert not list(tmp_path.glob("*.tmp"))


def test_a_scan_split_by_the_preset_gives_one_case_from_one_part(mr_inputs, tmp_path,
                                                                 monkeypatch):
    """DUKE-like presets return two arrays per scan; the study takes one, and the key says which."""
    from diffusion_core.presets import Preset

    parts = [np.full((8, 16, 16), -1.0, np.float32), np.full((8, 16, 16), 1.0, np.float32)]
    for part in parts:
        part[:, :8] = 0.0  # two distinct halves, so the quantised case shows which part it was
    monkeypatch.setattr(Preset, "preprocess", lambda self, volume, mask=None: parts)
    out = tmp_path / "split"
    assert _create(out, "--real", str(mr_inputs["real"]), "--preset", "tiny",
                   "--n-real", "3") == 0
    study = Study.open(out)
    for row in _key_rows(Path(str(out) + ".key.csv")):
        match = re.fullmatch(r"(.+) \[part ([12]) of 2\]", row["origin"])
        assert match and Path(match.group(1)).is_file()
        array = read_case(study.case_path(row["case_id"])).array
        low_half_is_dark = array[:, 8:].mean() < array[:, :8].mean()
        assert low_half_is_dark == (match.group(2) == "1")


@pytest.mark.slow
def test_paper_sized_study_of_fifty_synthetic_and_ten_real_passes_the_audit(tmp_path):
    """The paper's study size at MRNet's shape: 50 decoder-like float samples in [-1, 1] and 10
    real uint8 exams (.npy, other depth), blinded so that the audit finds nothing.

    The exams are rounded to uint8, as a scanner stores values; the samples are what a decoder
    that learnt the exams would write: their noise and their background clipped at the lowest
    value, continuous instead of 256 levels. (Samples with less noise or no clipped background
    are other images, which the audit rightly tells apart by the noise level and the share of
    voxels at the minimum; so are exams truncated to integers instead of rounded, whose values
    sit half a level below the continuous ones.)"""
    from diffusion_core.io import Volume, canonical_affine, write_nifti

    rng = np.random.default_rng(11)
    real, synthetic = tmp_path / "real", tmp_path / "synthetic"
    real.mkdir()
    synthetic.mkdir()
    d, h, w = np.indices((36, 256, 256), dtype=np.float32)
    knee = np.exp(-((h - 128) ** 2 + (w - 128) ** 2) / 6000.0)
    for i in range(10):
        exam = np.clip(np.rint(knee * 200 + rng.normal(0, 10, knee.shape)), 0, 255).astype(np.uint8)
        np.save(real / f"exam{i:04d}.npy", exam)
    preset = get_preset("mrnet")
    for i in range(50):
        sample = np.clip(knee[:32] * 200 + rng.normal(0, 10, preset.shape), 0, 255) / 127.5 - 1
        # As a sampler writes them: canonical (D, H, W) with the preset's spacing.
        write_nifti(Volume(sample.astype(np.float32), preset.spacing,
                           canonical_affine(preset.spacing), "MR"),
                    synthetic / f"sample{i:04d}.nii.gz")
    out = tmp_path / "knee"
    assert _create(out, "--synthetic", str(synthetic), "--real", str(real), "--preset",
                   "mrnet", "--n", "50", "--n-real", "10", "--turing") == 0
    study = Study.open(out)
    assert len(study.case_ids) == 60 and study.shape == preset.shape
    assert audit_folder(out, Path(str(out) + ".key.csv")).passed
