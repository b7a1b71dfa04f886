"""The twin test: one road from [-1, 1] to a case, whatever a volume came from.

Crops of one real scan go in as real (raw uint8 MR or int16 CT, scanner header), and their own
preprocessed arrays go in as synthetic (float32, another header, as `mdiff-sample` writes them:
in [-1, 1], in the preset's intensities, or as a PREP_DIR). Each twin pair's cases must match
voxel for voxel (within one step of the case's values where the twin went through intensities
and so differs from its original in the last bits), and the audit must find nothing. Nor may it
in a study of two halves of the crops, both real; nor when the synthetic cases are the pipeline's
clean output for other crops of the same scan, as a perfect sampler would write them.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

from diffusion_core import presets
from diffusion_core.io import Volume, canonical_affine, read_volume
from diffusion_core.prepared import load_manifest, prepare_folder
from diffusion_core.preprocess import ClipHU, MinMax, Part, Resize
from diffusion_core.presets import Preset, get_preset
from studies.audit import audit_folder, audit_text
from studies.case_file import read_case
from studies.create import create_study
from studies.study import Study

CROP = (12, 40, 40)
SCANNER = ((3.0, 0.7, 0.7), b"scanner ACME 3T", 1)  # spacing, description, xform code
SAMPLER_DESCRIPTION, SAMPLER_CODE = b"mdiff sample", 2

# A CT preset as small as tiny: the HU window, a resize, the window to [-1, 1].
TINY_CT = Preset(name="tiny_ct", description="Tests: CT resized to 8x16x16 in [-1000, 400] HU.",
                 modality="CT", shape=(8, 16, 16), spacing=(4.0, 4.0, 4.0), depth_axis="axial",
                 steps=(ClipHU(-1000.0, 400.0), Resize((8, 16, 16)),
                        MinMax(window=(-1000.0, 400.0))))


@pytest.fixture
def tiny_ct(monkeypatch) -> Preset:
    """The tiny CT preset, known to get_preset for this test."""
    monkeypatch.setitem(presets.PRESETS, TINY_CT.name, TINY_CT)
    return TINY_CT


def _key(study: Path) -> list[dict[str, str]]:
    with open(Path(str(study) + ".key.csv"), newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def _write_real(folder: Path, arrays: list[np.ndarray], head_scans,
                spacing: tuple[float, float, float] = SCANNER[0]) -> None:
    """Crops as a scanner export: integer values, the scanner's header and spacing."""
    _, description, code = SCANNER
    folder.mkdir(parents=True)
    for i, array in enumerate(arrays):
        head_scans.write(folder / f"crop_{i:02d}.nii.gz", array,
                         canonical_affine(spacing, (10.0, -20.0, 5.0)), description, code)


def _write_samples(folder: Path, arrays: list[np.ndarray], spacing, head_scans) -> None:
    """Arrays as a sampler writes them: float32, canonical affine, another header."""
    folder.mkdir(parents=True)
    for i, array in enumerate(arrays):
        head_scans.write(folder / f"crop_{i:02d}.nii.gz", np.asarray(array, dtype=np.float32),
                         canonical_affine(spacing), SAMPLER_DESCRIPTION, SAMPLER_CODE)


def _minmax(array: np.ndarray) -> np.ndarray:
    """[-1, 1] by the array's own range, as the MR road's last step computes it."""
    return MinMax()(Part(np.asarray(array, dtype=np.float32), (1.0, 1.0, 1.0)))[0].array


ROADS = ["MR raw, no preset / [-1, 1]", "MR tiny / [-1, 1]", "MR tiny / PREP_DIR",
         "MR tiny / intensities", "CT tiny_ct / HU", "CT raw, no preset / HU"]


def _twin_inputs(road: str, tmp_path: Path, head_scans) -> tuple[Path, Path, dict, int]:
    """The real and synthetic folders of one road, the create options, and the largest
    difference allowed between twins."""
    modality = road[:2]
    rng = np.random.default_rng(ROADS.index(road))
    scan = head_scans.mr if modality == "MR" else head_scans.ct
    shape = (8, 32, 32) if "no preset" in road else CROP
    originals = head_scans.crops(scan, 6, shape, rng)
    real, synthetic = tmp_path / "real", tmp_path / "synthetic"
    _write_real(real, originals, head_scans)
    preset = None if "no preset" in road else get_preset("tiny" if modality == "MR" else "tiny_ct")
    options = {"modality": modality} if preset is None else {"preset": preset.name}
    if road.endswith("PREP_DIR"):
        prepare_folder(preset, real, synthetic, progress=False)
        return real, synthetic, options, 0
    volumes = [Volume(a, SCANNER[0], canonical_affine(SCANNER[0]), modality) for a in originals]
    if preset is None:
        twins = [_minmax(a) if modality == "MR" else a.astype(np.float32) for a in originals]
        spacing = (1.0, 1.0, 1.0)
    else:
        twins = [preset.preprocess(v)[0] for v in volumes]
        spacing = preset.spacing
    if road.endswith(("intensities", "HU")) and preset is not None:
        twins = [preset.to_intensity(t) for t in twins]
    _write_samples(synthetic, twins, spacing, head_scans)
    # Through intensities a twin differs from its original in the last bits: another dither.
    return real, synthetic, options, 1 if road.endswith("intensities") or "tiny_ct" in road else 0


def _pairs(study: Path, synthetic: Path) -> list[tuple[np.ndarray, np.ndarray]]:
    """(real case, twin case) arrays, paired through the key's origins."""
    rows = _key(study)
    opened = Study.open(study)
    by_name = {}
    names = {}
    if (synthetic / "manifest.json").is_file():
        names = {array: source for array, source in load_manifest(synthetic).array_sources()}
    for row in rows:
        name = Path(row["origin"]).name
        name = names.get(name, name).replace(".npy", ".nii.gz")
        by_name.setdefault(name, {})[row["source"]] = read_case(
            opened.case_path(row["case_id"])).array
    assert len(by_name) == 6 and all(len(pair) == 2 for pair in by_name.values())
    return [(pair["real"], pair["synthetic"]) for pair in by_name.values()]


@pytest.mark.parametrize("road", ROADS)
def test_twins_become_the_same_case(road, tmp_path, head_scans, tiny_ct):
    real, synthetic, options, allowed = _twin_inputs(road, tmp_path, head_scans)
    study = tmp_path / "twins"
    create_study(study, real=real, synthetic=synthetic, seed=5, **options)
    for real_case, twin_case in _pairs(study, synthetic):
        assert real_case.dtype == twin_case.dtype == np.int16
        assert np.abs(real_case.astype(int) - twin_case.astype(int)).max() <= allowed
        assert np.unique(real_case).size > 300  # not a comb of the source's few levels
    audit = audit_folder(study, Path(str(study) + ".key.csv"))
    assert audit.passed, audit_text(audit)


def test_two_halves_of_the_same_real_scans_pass(tmp_path, head_scans):
    """Both groups real (uint8 crops of one scan), split in two: nothing can separate them."""
    rng = np.random.default_rng(11)
    originals = head_scans.crops(head_scans.mr, 12, CROP, rng)
    _write_real(tmp_path / "a", originals[:6], head_scans)
    _write_real(tmp_path / "b", originals[6:], head_scans)
    study = tmp_path / "halves"
    create_study(study, real=tmp_path / "a", synthetic=tmp_path / "b", preset="tiny", seed=2)
    audit = audit_folder(study, Path(str(study) + ".key.csv"))
    assert audit.passed, audit_text(audit)


@pytest.mark.parametrize("road", ["MR tiny", "MR raw, no preset", "CT tiny_ct"])
def test_a_perfect_samplers_output_cannot_be_told_from_real_scans(road, tmp_path, head_scans,
                                                                  tiny_ct):
    """The adversary's scenario: real uint8 MR / int16 CT crops against float32 synthetic
    volumes that are the pipeline's clean output for other crops of the same scan, in [-1, 1]
    (MR) or in Hounsfield units (CT). Only the images differ; the audit finds nothing. Without
    a preset the uint8 crops are not interpolated, so their values stay a comb of 256 levels
    until the dither, and their padding a pile at 0, as the samples' at -1."""
    modality = road[:2]
    rng = np.random.default_rng(21)
    scan = head_scans.mr if modality == "MR" else head_scans.ct
    preset = None if "no preset" in road else get_preset(road.split()[1])
    originals = head_scans.crops(scan, 16, CROP if preset else (8, 32, 32), rng)
    _write_real(tmp_path / "real", originals[:8], head_scans)
    if preset is None:
        samples, spacing = [_minmax(a) for a in originals[8:]], (1.0, 1.0, 1.0)
    else:
        samples = [preset.preprocess(Volume(a, SCANNER[0], canonical_affine(SCANNER[0]),
                                            modality))[0] for a in originals[8:]]
        spacing = preset.spacing
    if modality == "CT":
        samples = [preset.to_intensity(s) for s in samples]
    _write_samples(tmp_path / "samples", samples, spacing, head_scans)
    study = tmp_path / "study"
    options = {"preset": preset.name} if preset else {"modality": modality}
    create_study(study, real=tmp_path / "real", synthetic=tmp_path / "samples", seed=8,
                 **options)
    audit = audit_folder(study, Path(str(study) + ".key.csv"))
    assert audit.passed, audit_text(audit)
    assert read_volume(next((tmp_path / "samples").iterdir())).array.dtype == np.float32


def test_a_clamped_samplers_pile_at_minus_one_matches_a_scans_zero_background(tmp_path,
                                                                            head_scans):
    """Real skull-stripped uint8 slabs (zero outside the brain: a pile at the minimum, values a
    comb of levels) against continuous float32 samples clamped to [-1, 1] as DDPM samplers do
    (the same share of background, at exactly -1). Dithering a pile would move half the real
    one off the minimum and none of the synthetic one: the share of voxels at the minimum
    would separate them perfectly. A pile stays a pile on every road."""
    rng = np.random.default_rng(31)
    brain = np.where(head_scans.mr > 60, head_scans.mr, 0).astype(np.uint8)  # skull-stripped
    starts = rng.permutation(np.arange(6, 10))[:4].tolist() + rng.integers(6, 10, 8).tolist()
    slabs = [brain[s:s + 8].copy() for s in starts]
    _write_real(tmp_path / "real", slabs[:6], head_scans)
    level = 2.0 / 255.0
    samples = []
    for slab in slabs[6:]:
        unit = slab.astype(np.float32) / np.float32(127.5) - 1.0
        smooth = unit + rng.uniform(-level / 2, level / 2, slab.shape).astype(np.float32)
        samples.append(np.clip(np.where(slab == 0, -1.5, smooth), -1.0, 1.0))
    _write_samples(tmp_path / "samples", samples, (1.0, 1.0, 1.0), head_scans)
    study = tmp_path / "study"
    create_study(study, real=tmp_path / "real", synthetic=tmp_path / "samples", modality="MR",
                 seed=4)
    audit = audit_folder(study, Path(str(study) + ".key.csv"))
    assert audit.passed, audit_text(audit)
    at_minimum = audit.feature("fraction at the minimum")
    assert min(at_minimum.real + at_minimum.synthetic) > 0.3  # a pile in every case


@pytest.mark.slow
def test_head_cts_against_a_perfect_samplers_hu_output_at_lidc_size(tmp_path, head_scans):
    """The adversary's CT scenario at the paper's LIDC grid (128^3 at 2.5 mm): 8 real int16
    head CTs through the lidc pipeline, 8 synthetic float32 volumes in Hounsfield units that are
    that pipeline's clean output for 8 other head CTs, written as a sampler writes them."""
    rng = np.random.default_rng(41)
    preset = get_preset("lidc")
    spacing = (3.0, 1.5, 1.5)
    scans = [head_scans.scan(rng, "CT", (48, 128, 128)) for _ in range(16)]
    _write_real(tmp_path / "real", scans[:8], head_scans, spacing)
    samples = [preset.to_intensity(preset.preprocess(
        Volume(scan, spacing, canonical_affine(spacing), "CT"))[0]) for scan in scans[8:]]
    _write_samples(tmp_path / "samples", samples, preset.spacing, head_scans)
    study = tmp_path / "study"
    create_study(study, real=tmp_path / "real", synthetic=tmp_path / "samples", preset="lidc",
                 seed=6)
    audit = audit_folder(study, Path(str(study) + ".key.csv"))
    assert audit.passed, audit_text(audit)
    assert Study.open(study).shape == (128, 128, 128)
