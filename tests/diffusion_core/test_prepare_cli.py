"""`mdiff-prepare`: a raw folder into a PREP_DIR, bad files skipped, re-runs resumed."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from pydicom.data import get_testdata_file

from diffusion_core.cli.prepare import main
from diffusion_core.io import Volume, canonical_affine, write_dicom_series, write_nifti
from diffusion_core.prepared import load_manifest
from diffusion_core.presets import get_preset


def _ellipsoid(shape, radii, centre=None) -> np.ndarray:
    """A boolean ellipsoid in a (D, H, W) grid."""
    centre = centre if centre is not None else [(n - 1) / 2 for n in shape]
    grid = np.indices(shape, dtype=np.float32)
    return sum(((g - c) / r) ** 2 for g, c, r in zip(grid, centre, radii, strict=True)) <= 1.0


def _write_ct_series(folder: Path) -> None:
    """A chest-CT-like DICOM series in HU (air, soft tissue, bone), stored with intercept -1024."""
    shape, spacing = (30, 64, 64), (3.0, 4.0, 4.0)
    hu = np.full(shape, -1000.0, np.float32)
    hu[_ellipsoid(shape, (30, 26, 28))] = 40.0
    hu[10:20, 40:46, 30:34] = 1000.0
    write_dicom_series(Volume(hu, spacing, canonical_affine(spacing), "CT"), folder,
                       rescale_intercept=-1024.0)


def _write_mr(path: Path, seed: int, shape=(12, 20, 18)) -> None:
    """A small MR NIfTI with some structure."""
    rng = np.random.default_rng(seed)
    array = np.where(_ellipsoid(shape, [n * 0.4 for n in shape]), 300 + 50 * rng.random(shape),
                     5 * rng.random(shape)).astype(np.float32)
    write_nifti(Volume(array, (2.0, 2.0, 2.0), canonical_affine((2.0, 2.0, 2.0)), "MR"), path)


@pytest.fixture
def mr_folder(tmp_path) -> Path:
    """Three good MR scans (one in a subfolder) and one corrupt NIfTI file."""
    raw = tmp_path / "raw"
    (raw / "site2").mkdir(parents=True)
    _write_mr(raw / "a.nii.gz", 1)
    _write_mr(raw / "b.nii", 2)
    _write_mr(raw / "site2" / "c.nii.gz", 3)
    (raw / "broken.nii.gz").write_bytes(b"\x1f\x8b this is not a gzip stream")
    return raw


def test_lidc_turns_a_dicom_ct_folder_into_a_128_cube(tmp_path, capsys):
    """The lidc preset's promise: (128, 128, 128) float32 in [-1, 1] plus a manifest."""
    raw, out = tmp_path / "raw", tmp_path / "prep"
    _write_ct_series(raw / "patient1")
    assert main(["--preset", "lidc", "--data", str(raw), "--out", str(out), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["prepared"] == 1 and summary["skipped"] == 0 and summary["arrays"] == 1
    array = np.load(out / "patient1.npy")
    assert array.shape == (128, 128, 128) and array.dtype == np.float32
    assert array.min() == -1.0 and array.max() == 1.0
    hu = get_preset("lidc").to_intensity(array)
    assert abs(float(np.median(hu[64, 60:68, 60:68])) - 40.0) < 2.0  # the intercept was applied
    manifest = load_manifest(out)
    assert manifest.preset == "lidc"
    assert manifest.pipeline_hash == get_preset("lidc").pipeline_hash
    assert manifest.pipeline == get_preset("lidc").pipeline()
    assert manifest.shape == [128, 128, 128]
    assert manifest.scans[0].source == "patient1"
    assert manifest.scans[0].arrays == ["patient1.npy"]
    assert manifest.scans[0].source_shape == [30, 64, 64]


def test_lidc_keeps_the_patients_orientation(ct_phantom, tmp_path, capsys):
    """The phantom's bone ball (left, anterior, superior of its centre) stays there."""
    raw, out = tmp_path / "raw", tmp_path / "prep"
    write_dicom_series(ct_phantom, raw / "phantom", rescale_intercept=-1024.0)
    assert main(["--preset", "lidc", "--data", str(raw), "--out", str(out)]) == 0
    array = np.load(out / "phantom.npy")
    depth, height, width = np.unravel_index(np.argmax(array), array.shape)
    # D runs inferior -> superior, H anterior -> posterior, W patient right -> left; the
    # phantom's centre is the volume's, which the centred crop/pad puts at voxel 64.
    assert depth > 64 and height < 64 and width > 64
    assert abs(depth - 64 - 9 / 2.5) <= 1.5 and abs(64 - height - 6 / 2.5) <= 1.5


def test_a_corrupt_file_is_skipped_with_its_reason(mr_folder, tmp_path, capsys):
    """The bad file is reported and recorded; the others are done; exit status 0."""
    out = tmp_path / "prep"
    assert main(["--preset", "tiny", "--data", str(mr_folder), "--out", str(out)]) == 0
    captured = capsys.readouterr()
    assert captured.out.startswith("prepared 3, skipped 1")
    assert "skipped broken.nii.gz" in captured.err
    manifest = load_manifest(out)
    assert [s.source for s in manifest.scans] == ["a.nii.gz", "b.nii", "site2/c.nii.gz"]
    assert [s.source for s in manifest.skipped] == ["broken.nii.gz"]
    assert "broken.nii.gz" in manifest.skipped[0].reason
    assert sorted(p.name for p in out.glob("*.npy")) == ["a.npy", "b.npy", "site2__c.npy"]
    for path in out.glob("*.npy"):
        array = np.load(path)
        assert array.shape == (8, 16, 16) and array.min() == -1.0 and array.max() == 1.0


def test_a_second_run_skips_what_is_done(mr_folder, tmp_path, capsys):
    """Nothing is rewritten; the skipped file is tried again; a lost array is redone."""
    out = tmp_path / "prep"
    args = ["--preset", "tiny", "--data", str(mr_folder), "--out", str(out), "--json"]
    assert main(args) == 0
    capsys.readouterr()
    written = {p.name: p.stat().st_mtime_ns for p in out.glob("*.npy")}
    (out / "b.npy").unlink()
    assert main(args) == 0
    summary = json.loads(capsys.readouterr().out)
    assert (summary["prepared"], summary["skipped"], summary["already_done"]) == (1, 1, 2)
    assert (out / "a.npy").stat().st_mtime_ns == written["a.npy"]
    assert (out / "b.npy").is_file()
    assert len(load_manifest(out).skipped) == 1


def test_another_preset_into_the_same_folder_is_refused(mr_folder, tmp_path, capsys):
    """One sentence, exit 2, nothing changed; --overwrite replaces the arrays."""
    out = tmp_path / "prep"
    assert main(["--preset", "tiny", "--data", str(mr_folder), "--out", str(out)]) == 0
    capsys.readouterr()
    assert main(["--preset", "adni", "--data", str(mr_folder), "--out", str(out)]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "'tiny'" in captured.err and "--overwrite" in captured.err
    assert len(captured.err.strip().splitlines()) == 1
    assert load_manifest(out).preset == "tiny"
    assert main(["--preset", "adni", "--data", str(mr_folder), "--out", str(out),
                 "--overwrite"]) == 0
    assert load_manifest(out).preset == "adni"
    assert np.load(out / "a.npy").shape == (64, 64, 64)


def test_another_data_folder_into_the_same_prep_dir_is_refused(tmp_path, capsys):
    """A scan of another folder with the same name is not taken as done (wrong provenance)."""
    first, second, out = tmp_path / "site1", tmp_path / "site2", tmp_path / "prep"
    _write_mr(first / "a.nii.gz", 1)
    _write_mr(second / "a.nii.gz", 2)
    assert main(["--preset", "tiny", "--data", str(first), "--out", str(out)]) == 0
    capsys.readouterr()
    assert main(["--preset", "tiny", "--data", str(second), "--out", str(out)]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and len(captured.err.strip().splitlines()) == 1
    assert "another data folder" in captured.err and "--overwrite" in captured.err
    assert load_manifest(out).raw_dir == str(first.resolve())
    # The same folder by another spelling is the same folder: a plain resume.
    assert main(["--preset", "tiny", "--data", str(first / ".." / first.name), "--out", str(out),
                 "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["already_done"] == 1
    assert main(["--preset", "tiny", "--data", str(second), "--out", str(out),
                 "--overwrite"]) == 0
    manifest = load_manifest(out)
    assert manifest.raw_dir == str(second.resolve())
    assert [s.source for s in manifest.scans] == ["a.nii.gz"]


def test_duke_uses_masks_matched_by_file_name(tmp_path, capsys):
    """Right and left arrays per scan; a scan without its mask is skipped, saying so."""
    raw, masks, out = tmp_path / "raw", tmp_path / "masks", tmp_path / "prep"
    raw.mkdir()
    shape, spacing = (20, 60, 80), (6.0, 2.64, 2.64)
    rng = np.random.default_rng(0)
    affine = canonical_affine(spacing)
    for name in ("p1", "p2"):
        array = (rng.random(shape) * 300).astype(np.float32)
        write_nifti(Volume(array, spacing, affine, "MR"), raw / f"{name}.nii.gz")
    mask = np.zeros(shape, np.uint8)
    mask[4:16, 5:30, 8:72] = 1
    write_nifti(Volume(mask, spacing, affine, "MR"), masks / "p1.nii.gz")
    assert main(["--preset", "duke", "--data", str(raw), "--out", str(out), "--masks",
                 str(masks)]) == 0
    manifest = load_manifest(out)
    assert manifest.scans[0].arrays == ["p1_right.npy", "p1_left.npy"]
    assert manifest.scans[0].mask == "p1.nii.gz"
    assert manifest.skipped[0].source == "p2.nii.gz"
    assert "no mask named 'p2'" in manifest.skipped[0].reason
    assert np.load(out / "p1_left.npy").shape == (32, 256, 256)
    capsys.readouterr()
    # The same folder without masks would mix two kinds of crop: refused.
    assert main(["--preset", "duke", "--data", str(raw), "--out", str(out)]) == 2
    assert "with masks" in capsys.readouterr().err


def test_a_run_that_prepares_nothing_fails(tmp_path, capsys):
    """Every scan skipped (here MR scans for a CT preset): the summary, then exit status 2 (not
    done), the status of every command that could not do what was asked."""
    raw = tmp_path / "raw"
    _write_mr(raw / "a.nii.gz", 1)
    assert main(["--preset", "lidc", "--data", str(raw), "--out", str(tmp_path / "prep")]) == 2
    captured = capsys.readouterr()
    assert captured.out.startswith("prepared 0, skipped 1")
    assert "is MR, not the CT" in load_manifest(tmp_path / "prep").skipped[0].reason
    assert "no scan in" in captured.err


@pytest.mark.parametrize(("args", "message"), [
    (["--preset", "lidcc"], "unknown preset 'lidcc'; choose one of: mrnet, adni"),
    (["--data", "{tmp}/missing"], "does not exist"),
    (["--data", "{tmp}/empty"], "holds no scans"),
    (["--masks", "{tmp}/nomasks", "--preset", "duke"], "masks folder"),
    (["--masks", "{tmp}/raw"], "takes no masks"),
    (["--out", "{tmp}/raw/prep"], "inside the data folder"),
])
def test_user_mistakes_are_one_sentence_and_exit_2(mr_folder, tmp_path, capsys, args, message):
    """No traceback, nothing on stdout, the problem named on stderr."""
    (tmp_path / "empty").mkdir()
    given = {"--preset": "tiny", "--data": str(mr_folder), "--out": str(tmp_path / "prep")}
    for flag, value in zip(args[::2], args[1::2], strict=True):
        given[flag] = value.replace("{tmp}", str(tmp_path))
    argv = [part for pair in given.items() for part in pair]
    assert main(argv) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert message in captured.err
    assert captured.err.startswith("mdiff-prepare: ")
    assert len(captured.err.strip().splitlines()) == 1


@pytest.mark.slow
def test_lidc_at_scanner_size_512_by_512(tmp_path, capsys):
    """A scanner-sized chest CT (160 slices of 512x512 at 0.7 x 0.7 x 2 mm, shuffled DICOM
    files, intercept -1024) and its NIfTI twin both become the same (128, 128, 128) cube."""
    shape, spacing = (160, 512, 512), (2.0, 0.7, 0.7)
    hu = np.full(shape, -1000.0, np.float32)
    hu[_ellipsoid(shape, (90, 170, 220))] = 40.0
    hu[_ellipsoid(shape, (60, 100, 70), (80, 250, 160))] = -850.0  # a right lung
    volume = Volume(hu.astype(np.int16), spacing, canonical_affine(spacing), "CT")
    raw, out = tmp_path / "raw", tmp_path / "prep"
    write_dicom_series(volume, raw / "dicom", rescale_intercept=-1024.0)
    write_nifti(volume, raw / "nifti.nii.gz")
    assert main(["--preset", "lidc", "--data", str(raw), "--out", str(out), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["prepared"] == 2
    from_dicom, from_nifti = np.load(out / "dicom.npy"), np.load(out / "nifti.npy")
    assert from_dicom.shape == (128, 128, 128) and from_dicom.min() == -1.0
    np.testing.assert_array_equal(from_dicom, from_nifti)
    hu_out = get_preset("lidc").to_intensity(from_dicom)
    # 1 mm grid cropped to 320 mm: the right lung (patient right = low W) stays on the right.
    right, left = hu_out[64, 64, 20:60], hu_out[64, 64, 68:108]
    assert np.median(right) < -700 and abs(np.median(left) - 40) < 5


def test_dicom_that_is_no_ct_or_mr_scan_is_skipped_with_its_modality(tmp_path, capsys):
    """pydicom's SEG, RT Dose and palette-colour ultrasound files are never prepared as MR."""
    raw = tmp_path / "raw"
    _write_mr(raw / "a.nii.gz", 1)
    for name in ("liver.dcm", "rtdose.dcm", "examples_palette.dcm"):
        shutil.copy(get_testdata_file(name, download=False), raw / name)
    out = tmp_path / "prep"
    assert main(["--preset", "tiny", "--data", str(raw), "--out", str(out)]) == 0
    manifest = load_manifest(out)
    assert [s.source for s in manifest.scans] == ["a.nii.gz"]
    reasons = {s.source: s.reason for s in manifest.skipped}
    assert set(reasons) == {"examples_palette.dcm", "liver.dcm", "rtdose.dcm"}
    assert "Segmentation Storage (modality SEG), not a CT or MR image" in reasons["liver.dcm"]
    assert "(modality RTDOSE)" in reasons["rtdose.dcm"]
    assert "(modality US)" in reasons["examples_palette.dcm"]
    captured = capsys.readouterr()
    assert captured.out.startswith("prepared 1, skipped 3")
    assert "skipped liver.dcm:" in captured.err


def test_a_dicom_ct_under_an_mr_preset_is_refused_and_plain_nifti_is_doubted(tmp_path, capsys):
    """A DICOM's own modality contradicting the preset skips it; a NIfTI records none, so values
    that look like the other modality are prepared with a warning naming the file."""
    raw = tmp_path / "raw"
    _write_ct_series(raw / "ct_series")
    hounsfield = np.full((12, 20, 18), -1000.0, np.float32)
    hounsfield[3:9, 5:15, 4:14] = 40.0
    nib.save(nib.Nifti1Image(hounsfield, np.eye(4)), raw / "plain_ct.nii.gz")
    out = tmp_path / "prep"
    assert main(["--preset", "tiny", "--data", str(raw), "--out", str(out)]) == 0
    manifest = load_manifest(out)
    assert [s.source for s in manifest.skipped] == ["ct_series"]
    assert "is CT, not the MR that was asked for" in manifest.skipped[0].reason
    assert [s.source for s in manifest.scans] == ["plain_ct.nii.gz"]
    err = capsys.readouterr().err
    (warning,) = [line for line in err.splitlines() if line.startswith("warning:")]
    assert "plain_ct.nii.gz" in warning and "Hounsfield units" in warning
    assert "preset 'tiny'" in warning


def test_a_uint8_scan_under_a_ct_preset_is_doubted(tmp_path, capsys):
    raw = tmp_path / "raw"
    raw.mkdir()
    scan = np.random.default_rng(3).integers(0, 256, (20, 40, 40)).astype(np.uint8)
    nib.save(nib.Nifti1Image(scan, np.eye(4)), raw / "knee.nii.gz")
    assert main(["--preset", "lidc", "--data", str(raw), "--out", str(tmp_path / "prep")]) == 0
    err = capsys.readouterr().err
    assert "warning:" in err and "knee.nii.gz" in err and "8-bit range" in err


def test_a_constant_volume_is_skipped_with_its_value(tmp_path, capsys):
    raw = tmp_path / "raw"
    _write_mr(raw / "a.nii.gz", 1)
    write_nifti(Volume(np.zeros((12, 20, 18), np.float32), (2.0, 2.0, 2.0),
                       canonical_affine((2.0, 2.0, 2.0)), "MR"), raw / "blank.nii.gz")
    out = tmp_path / "prep"
    assert main(["--preset", "tiny", "--data", str(raw), "--out", str(out)]) == 0
    (skipped,) = load_manifest(out).skipped
    assert skipped.source == "blank.nii.gz"
    assert "every voxel is 0, a constant volume" in skipped.reason
