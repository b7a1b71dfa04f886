"""`mdiff-study create --real PREP_DIR`: a folder written by mdiff-prepare is read through its
manifest, as arrays already preprocessed by its preset (that preset's modality and spacing)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from diffusion_core.io import Volume, canonical_affine, write_nifti
from diffusion_core.prepared import MANIFEST_NAME, Manifest, PreparedScan, prepare_folder
from diffusion_core.presets import get_preset
from studies.case_file import read_case
from studies.cli.study import main
from studies.normalise import Grid
from studies.study import Study


def _create(out: Path, *args: str) -> int:
    return main(["create", "--out", str(out), *args])


def _key_rows(out: Path) -> list[dict[str, str]]:
    with open(Path(str(out) + ".key.csv"), newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def _smooth(shape: tuple[int, int, int], rng: np.random.Generator) -> np.ndarray:
    """A smooth random image in [-1, 1] (cheap to compress, unlike white noise)."""
    d, h, w = np.meshgrid(*(np.linspace(0, np.pi, n) for n in shape), indexing="ij")
    phase = rng.uniform(0, np.pi, 3)
    image = np.sin(2 * d + phase[0]) * np.cos(3 * h + phase[1]) * np.sin(w + phase[2])
    return image.astype(np.float32)


def _lidc_prep_dir(folder: Path, count: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """A PREP_DIR of the lidc preset as mdiff-prepare writes it: arrays in [-1, 1], manifest."""
    preset = get_preset("lidc")
    folder.mkdir(parents=True)
    manifest = Manifest.for_preset(preset, folder.parent / "raw", None)
    arrays = {}
    for i in range(count):
        array = _smooth(preset.shape, rng)
        array[:, :, :20] = -1.0  # air at the border, as the crop/pad gives
        name = f"patient{i}.npy"
        np.save(folder / name, array)
        manifest.scans.append(PreparedScan(source=f"patient{i}", arrays=[name]))
        arrays[name] = array
    manifest.save(folder)
    return arrays


def _lidc_samples(folder: Path, count: int, rng: np.random.Generator) -> None:
    """Synthetic lidc volumes as a sampler writes them: [-1, 1] on the preset's grid."""
    preset = get_preset("lidc")
    for i in range(count):
        sample = _smooth(preset.shape, rng)
        grid = Grid(preset.shape, preset.spacing)
        write_nifti(Volume(sample, preset.spacing, grid.affine, "CT"),
                    folder / f"case_{i:04d}.nii.gz")


@pytest.fixture(scope="module")
def lidc_inputs(tmp_path_factory) -> dict:
    """A lidc PREP_DIR of two arrays and a folder of two synthetic lidc samples."""
    root = tmp_path_factory.mktemp("lidc_inputs")
    rng = np.random.default_rng(3)
    arrays = _lidc_prep_dir(root / "prep", 2, rng)
    _lidc_samples(root / "samples", 2, rng)
    return {"prep": root / "prep", "samples": root / "samples", "arrays": arrays}


def test_a_ct_prep_dir_gives_ct_cases_in_hounsfield_units(lidc_inputs, tmp_path):
    """Without --preset the PREP_DIR's own (lidc) is used: CT, its grid, arrays back to HU.

    Before PREP_DIRs were recognised, their arrays were read as MR exams at 1 mm and the study
    refused them as MR in a CT study.
    """
    out = tmp_path / "chest"
    assert _create(out, "--real", str(lidc_inputs["prep"]), "--synthetic",
                   str(lidc_inputs["samples"]), "--seed", "1") == 0
    study = Study.open(out)
    preset = get_preset("lidc")
    assert (study.modality, study.dataset) == ("CT", "lidc")
    assert study.shape == preset.shape and study.spacing == preset.spacing
    rows = _key_rows(out)
    real = [row for row in rows if row["source"] == "real"]
    assert len(real) == 2 and len(rows) == 4
    for row in real:
        origin = Path(row["origin"])
        assert origin.parent == lidc_inputs["prep"].resolve()
        # lidc's [-1, 1] is its window [-1000, 400] HU, written out apart from the code.
        prepared = lidc_inputs["arrays"][origin.name].astype(np.float64)
        expected = np.clip(np.rint((prepared + 1.0) / 2.0 * 1400.0 - 1000.0), -1000, 400)
        stored = read_case(study.case_path(row["case_id"])).array
        assert stored.dtype == np.int16
        assert np.abs(stored.astype(int) - expected).max() <= 1
        assert stored.min() == -1000 and 300 < stored.max() <= 400


def test_the_prep_dirs_preset_must_be_the_studys(lidc_inputs, tmp_path, capsys):
    """--preset naming another preset than the PREP_DIR's is one sentence, exit 2, no study."""
    out = tmp_path / "wrong"
    assert _create(out, "--real", str(lidc_inputs["prep"]), "--preset", "tiny") == 2
    err = capsys.readouterr().err
    assert "prepared with preset 'lidc', not 'tiny'" in err and "--preset lidc" in err
    assert len(err.strip().splitlines()) == 1 and not out.exists()


def test_a_prep_dir_of_another_pipeline_version_is_refused(lidc_inputs, tmp_path, capsys):
    """A manifest whose pipeline hash is not the preset's: its arrays would map back wrongly."""
    prep = tmp_path / "old_prep"
    prep.mkdir()
    manifest = json.loads((lidc_inputs["prep"] / MANIFEST_NAME).read_text())
    manifest["pipeline_hash"] = "0" * 64
    (prep / MANIFEST_NAME).write_text(json.dumps(manifest))
    for name in lidc_inputs["arrays"]:
        (prep / name).symlink_to(lidc_inputs["prep"] / name)
    assert _create(tmp_path / "old", "--real", str(prep)) == 2
    assert "another version of the 'lidc' pipeline" in capsys.readouterr().err


def test_mdiff_prepare_output_goes_straight_into_a_study(tmp_path):
    """Raw MR scans -> mdiff-prepare (tiny) -> create --real PREP_DIR --preset tiny: the real
    cases are the prepared arrays on the preset's grid, not MRNet exams at 1 mm."""
    raw, prep = tmp_path / "raw", tmp_path / "prep"
    rng = np.random.default_rng(4)
    for i in range(3):
        scan = (rng.uniform(0, 1, (10, 20, 18)) * 300).astype(np.float32)
        write_nifti(Volume(scan, (2.0, 2.0, 2.0), canonical_affine((2.0, 2.0, 2.0)), "MR"),
                    raw / f"s{i}.nii.gz")
    assert prepare_folder(get_preset("tiny"), raw, prep, progress=False).arrays == 3
    out = tmp_path / "study"
    assert _create(out, "--real", str(prep), "--preset", "tiny", "--n-real", "2") == 0
    study = Study.open(out)
    preset = get_preset("tiny")
    assert study.spacing == preset.spacing == (4.0, 4.0, 4.0)
    for row in _key_rows(out):
        # The MR study scale (0.5th and 99.5th percentiles to 0 and 4095) of the array itself:
        # the preset's linear map back from [-1, 1] does not move the percentiles' places.
        prepared = np.load(row["origin"]).astype(np.float64)
        low, high = np.percentile(prepared, [0.5, 99.5])
        expected = np.clip(np.rint((prepared - low) * 4095.0 / (high - low)), 0, 4095)
        stored = read_case(study.case_path(row["case_id"])).array
        assert np.abs(stored.astype(int) - expected).max() <= 1
