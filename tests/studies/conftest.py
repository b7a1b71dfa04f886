"""Fixtures for the studies tests: generated volumes on disk and small study folders."""

from __future__ import annotations

import gzip
import json
import os
import secrets
import struct
from pathlib import Path
from types import SimpleNamespace

import nibabel as nib
import numpy as np
import pytest

from diffusion_core.io import canonical_affine
from studies.case_file import nifti_image
from studies.normalise import Grid
from studies.questions import study_questions

SHAPE = (8, 32, 32)


def phantom(rng: np.random.Generator, shape=SHAPE) -> np.ndarray:
    """A head-like test image in [0, 1]: an off-centre ellipsoid with a bright spot, plus noise.

    The bright spot sits in the upper slices, front and patient's right, so an orientation mistake
    moves it.
    """
    d, h, w = np.meshgrid(*(np.linspace(-1, 1, n) for n in shape), indexing="ij")
    body = ((d / 0.9) ** 2 + (h / 0.8) ** 2 + (w / 0.7) ** 2) < 1
    spot = ((d - 0.5) ** 2 + (h + 0.4) ** 2 + (w + 0.4) ** 2) < 0.1
    image = 0.1 + 0.5 * body + 0.3 * spot + 0.05 * rng.standard_normal(shape)
    image += 0.05 * rng.uniform(-1, 1) * h  # a gentle per-volume intensity ramp
    return np.clip(image, 0, 1)


def write_nifti_file(path: Path, array: np.ndarray, affine: np.ndarray, descrip: bytes,
                     xform_code: int) -> None:
    """A NIfTI file with the given data and header choices."""
    image = nib.Nifti1Image(array, affine)
    image.header.set_data_dtype(array.dtype)
    image.set_qform(affine, code=xform_code)
    image.set_sform(affine, code=xform_code)
    image.header["descrip"] = descrip
    nib.save(image, path)


@pytest.fixture(scope="session")
def mr_inputs(tmp_path_factory) -> dict[str, Path]:
    """6 real uint8 MR volumes (scanner header) and 6 synthetic float32 ones (another header).

    The synthetic folder has a model.json and a seed sidecar for each volume.
    """
    root = tmp_path_factory.mktemp("mr_inputs")
    rng = np.random.default_rng(0)
    real, synthetic = root / "real", root / "samples"
    real.mkdir()
    synthetic.mkdir()
    for i in range(6):
        scan = np.round(phantom(rng) * 255).astype(np.uint8)
        write_nifti_file(real / f"patient_{i:02d}.nii.gz", scan,
                         canonical_affine((3.0, 0.7, 0.7), (12.0, -40.0, 7.5)),
                         b"scanner ACME 1.5T", 1)
    for i in range(6):
        sample = (phantom(rng) * 2 - 1).astype(np.float32)
        write_nifti_file(synthetic / f"sample_{i:04d}.nii.gz", sample,
                         canonical_affine((1.0, 1.0, 1.0)), b"mdiff sample", 2)
        (synthetic / f"sample_{i:04d}.json").write_text(json.dumps({"seed": 100 + i}))
    (synthetic / "model.json").write_text(json.dumps({"name": "knee-ddpm-v1"}))
    return {"real": real, "synthetic": synthetic}


@pytest.fixture(scope="session")
def ct_inputs(tmp_path_factory) -> dict[str, Path]:
    """4 real int16 CT volumes in HU and 4 synthetic float32 ones in HU."""
    root = tmp_path_factory.mktemp("ct_inputs")
    rng = np.random.default_rng(1)
    real, synthetic = root / "real", root / "synthetic"
    real.mkdir()
    synthetic.mkdir()
    for i in range(4):
        hu = np.round(phantom(rng) * 1400 - 1000).astype(np.int16)
        write_nifti_file(real / f"ct_{i}.nii.gz", hu, canonical_affine((2.5, 0.8, 0.8)),
                         b"CT scanner", 1)
        fake = (phantom(rng) * 1400 - 1000).astype(np.float32)
        write_nifti_file(synthetic / f"fake_{i}.nii.gz", fake, canonical_affine((1.0, 1.0, 1.0)),
                         b"", 2)
    return {"real": real, "synthetic": synthetic}


def write_phantom_inputs(root: Path, count: int, shape=(8, 16, 16),
                         seed: int = 7) -> tuple[Path, Path]:
    """`count` real uint8 and `count` synthetic float32 MR phantoms in root/real and
    root/synthetic, one header each, as `mr_inputs` but of any number and shape."""
    rng = np.random.default_rng(seed)
    real, synthetic = root / "real", root / "synthetic"
    real.mkdir(parents=True)
    synthetic.mkdir()
    affine = canonical_affine((3.0, 1.4, 1.4))
    for i in range(count):
        write_nifti_file(real / f"r{i}.nii.gz",
                         np.round(phantom(rng, shape) * 255).astype(np.uint8), affine,
                         b"scanner", 1)
        write_nifti_file(synthetic / f"s{i}.nii.gz",
                         (phantom(rng, shape) * 2 - 1).astype(np.float32), affine, b"", 1)
    return real, synthetic


@pytest.fixture
def phantom_inputs():
    """`write_phantom_inputs(root, count, shape=(8, 16, 16), seed=7)` (a function)."""
    return write_phantom_inputs


def write_float_volumes(folder: Path, count: int, seed: int | None = None,
                        shape=(8, 32, 32)) -> Path:
    """`count` float32 volumes of uniform noise in [0, 100) as plain NIfTI (no modality
    recorded, identity affine), v0.nii.gz ...; the seed defaults to the count."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(count if seed is None else seed)
    for i in range(count):
        nib.save(nib.Nifti1Image(rng.uniform(0, 100, shape).astype(np.float32), np.eye(4)),
                 folder / f"v{i}.nii.gz")
    return folder


@pytest.fixture
def float_volumes():
    """`write_float_volumes(folder, count, seed=None, shape=(8, 32, 32))` (a function)."""
    return write_float_volumes


def make_study_folder(folder: Path, n_cases: int = 12, turing: bool = False,
                      study_id: str | None = None, dataset: str = "tiny",
                      practice: dict[str, str] | None = None,
                      answers_editable: bool | None = None) -> Path:
    """A minimal valid study folder (empty case files) for ratings, export and merge tests;
    `practice`: practice case id -> truth; `answers_editable` is left out when None."""
    cases = [secrets.token_hex(4) for _ in range(n_cases)]
    (folder / "cases").mkdir(parents=True)
    (folder / "ratings").mkdir()
    for case_id in cases:
        (folder / "cases" / f"{case_id}.nii.gz").write_bytes(b"")
    manifest = {
        "format": "mdiff-study", "version": 1, "study_id": study_id or secrets.token_hex(8),
        "title": "Test study", "dataset": dataset, "modality": "MR",
        "questions": [q.key for q in study_questions(turing)], "turing": turing,
        "cases": cases, "shape": [8, 16, 16], "spacing": [4.0, 4.0, 4.0],
        "viewer": {"percentile": [0.5, 99.5]}, "created_at": "2024-01-01T00:00:00+00:00",
    }
    if practice:
        (folder / "practice").mkdir()
        for case_id in practice:
            (folder / "practice" / f"{case_id}.nii.gz").write_bytes(b"")
        manifest["practice"] = [{"case_id": c, "source": s} for c, s in practice.items()]
    if answers_editable is not None:
        manifest["answers_editable"] = answers_editable
    (folder / "study.json").write_text(json.dumps(manifest))
    return folder


@pytest.fixture
def study_folder_with():
    """`make_study_folder(folder, n_cases=12, turing=False, ..., practice=None,
    answers_editable=None)` (a function)."""
    return make_study_folder


@pytest.fixture
def study_folder(tmp_path) -> Path:
    """A 12-case study without the Turing questions."""
    return make_study_folder(tmp_path / "study")


@pytest.fixture
def turing_study_folder(tmp_path) -> Path:
    """A 12-case study with the Turing questions."""
    return make_study_folder(tmp_path / "turing", turing=True)


# ------------------------------------------------------------------- version 1 (.nii.gz) studies


def padding_member(size: int) -> bytes:
    """An empty gzip member of exactly `size` bytes whose comment is filler, as version 1
    studies padded their cases to one size (written out here, apart from the code)."""
    header = b"\x1f\x8b" + struct.pack("<BBIBB", 8, 0x10, 0, 0, 255)
    comment = b" " * (size - 21) + b"\x00"
    return header + comment + b"\x03\x00" + struct.pack("<II", 0, 0)


def legacy_case_bytes(array: np.ndarray, grid: Grid, modality: str, size: int | None = None,
                      level: int = 6) -> bytes:
    """A version 1 case: the NIfTI gzipped (no name, no time), padded to `size` bytes."""
    data = gzip.compress(nifti_image(array, grid, modality).to_bytes(), compresslevel=level,
                         mtime=0)
    return data if size is None else data + padding_member(size - len(data))


def to_version_1(study: Path, size: int | None = None) -> Path:
    """Turn a study made by create into a version 1 study (gzipped cases padded to one size),
    keeping every case's times; returns the study folder."""
    from studies.case_file import read_case

    manifest = json.loads((study / "study.json").read_text())
    grid = Grid(tuple(manifest["shape"]), tuple(manifest["spacing"]))
    encoded = {}
    for case_id in manifest["cases"]:
        path = study / "cases" / f"{case_id}.nii"
        encoded[case_id] = (legacy_case_bytes(read_case(path).array, grid,
                                              manifest["modality"]), path.stat())
    size = size or -(-(max(len(d) for d, _ in encoded.values()) + 21) // 4096) * 4096
    for case_id, (data, stat) in encoded.items():
        target = study / "cases" / f"{case_id}.nii.gz"
        target.write_bytes(data + padding_member(size - len(data)))
        os.utime(target, ns=(stat.st_atime_ns, stat.st_mtime_ns))
        (study / "cases" / f"{case_id}.nii").unlink()
    manifest["version"] = 1
    (study / "study.json").write_text(json.dumps(manifest))
    return study


@pytest.fixture
def version_1() -> SimpleNamespace:
    """Helpers for version 1 studies: `padding_member`, `legacy_case_bytes`, `to_version_1`."""
    return SimpleNamespace(padding_member=padding_member, legacy_case_bytes=legacy_case_bytes,
                           to_version_1=to_version_1)


# ------------------------------------------------------------------ head scans and their crops


def head_scan(rng: np.random.Generator, modality: str, shape=(24, 96, 96)) -> np.ndarray:
    """A head-like scan as a scanner stores it: MR as uint8 (magnitude noise in the air, clipped
    at 0 and 255), CT as int16 Hounsfield units (air near -1000, bone up to about 1500).

    A skull shell around a brain with smooth texture and two dark ventricles, so crops differ;
    outside the scanner's circular field of view the file holds its padding value (MR 0, CT
    -2048), a pile of equal values as real exports have.
    """
    from scipy.ndimage import gaussian_filter

    d, h, w = np.meshgrid(*(np.linspace(-1, 1, n) for n in shape), indexing="ij")
    radius = np.sqrt((d / 0.95) ** 2 + (h / 0.85) ** 2 + (w / 0.75) ** 2)
    brain, skull = radius < 0.85, (radius >= 0.85) & (radius < 0.97)
    ventricles = (((np.abs(w) - 0.15) / 0.08) ** 2 + (h / 0.3) ** 2 + (d / 0.4) ** 2) < 1
    outside = h ** 2 + w ** 2 > 1.0
    texture = gaussian_filter(rng.standard_normal(shape), 2.0)
    texture /= texture.std()
    if modality == "MR":
        signal = np.where(brain, 120 + 25 * texture, 0.0) + np.where(skull, 60.0, 0.0)
        signal = np.where(ventricles & brain, 35.0, signal)
        noisy = np.abs(signal + 6 * (rng.standard_normal(shape) + 1j * rng.standard_normal(shape)))
        noisy[outside] = 0
        return np.clip(np.rint(noisy), 0, 255).astype(np.uint8)
    tissue = np.where(brain, 35 + 6 * texture, -1000.0) + np.where(skull, 2000 + 300 * texture,
                                                                    0.0)
    tissue = np.where(ventricles & brain, 8.0, tissue) + 12 * rng.standard_normal(shape)
    tissue[outside] = -2048
    return np.rint(tissue).astype(np.int16)


def crops(scan: np.ndarray, count: int, shape: tuple[int, int, int],
          rng: np.random.Generator) -> list[np.ndarray]:
    """`count` crops of `shape` from random places of the scan (copies)."""
    found = []
    for _ in range(count):
        start = [int(rng.integers(0, n - s + 1)) for n, s in zip(scan.shape, shape, strict=True)]
        box = tuple(slice(a, a + s) for a, s in zip(start, shape, strict=True))
        found.append(scan[box].copy())
    return found


@pytest.fixture(scope="session")
def head_scans() -> SimpleNamespace:
    """A uint8 MR and an int16 CT head scan (seeded), `crops(scan, count, shape, rng)`,
    `write(path, array, affine, descrip, xform_code)` and `scan(rng, modality, shape)`."""
    rng = np.random.default_rng(2024)
    return SimpleNamespace(mr=head_scan(rng, "MR"), ct=head_scan(rng, "CT"), crops=crops,
                           write=write_nifti_file, scan=head_scan)


# --------------------------------------------------------------------- paired (2AFC) studies


def make_afc_study_folder(folder: Path, n_trials: int = 6, practice: int = 0,
                          study_id: str | None = None) -> tuple[Path, dict[str, str]]:
    """A minimal valid paired study (empty case files): `n_trials` trials of a real and a
    synthetic case in a random layout A, `practice` practice trials; the folder and its truth,
    case id -> real|synthetic."""
    from studies.placement import unique_ids
    from studies.trials import layout_a, practice_members

    ids = unique_ids(3 * n_trials)
    real, synthetic, trial_ids = ids[:n_trials], ids[n_trials:2 * n_trials], ids[2 * n_trials:]
    trials = layout_a(list(zip(real, synthetic, strict=True)), trial_ids)
    (folder / "cases").mkdir(parents=True)
    (folder / "ratings").mkdir()
    cases = real + synthetic
    for case_id in cases:
        (folder / "cases" / f"{case_id}.nii").write_bytes(b"")
    manifest = {
        "format": "mdiff-study", "version": 2, "study_id": study_id or secrets.token_hex(8),
        "title": "Paired test study", "dataset": "tiny", "modality": "MR",
        "questions": ["synthetic_side", "confidence"], "turing": False,
        "cases": sorted(cases), "shape": [8, 16, 16], "spacing": [4.0, 4.0, 4.0],
        "viewer": {"percentile": [0.5, 99.5]}, "created_at": "2024-01-01T00:00:00+00:00",
        "practice": [], "design": "2afc",
        "trials": [{"trial_id": t.trial_id, "left": t.left, "right": t.right} for t in trials],
    }
    if practice:
        (folder / "practice").mkdir()
        for index in range(1, practice + 1):
            trial_id = f"P{index:02d}"
            left, right = practice_members(trial_id)
            for member in (left, right):
                (folder / "practice" / f"{member}.nii").write_bytes(b"")
            manifest["practice"].append({"trial_id": trial_id, "left": left, "right": right,
                                         "synthetic": "left" if index % 2 else "right"})
    (folder / "study.json").write_text(json.dumps(manifest))
    return folder, {**{c: "real" for c in real}, **{c: "synthetic" for c in synthetic}}


@pytest.fixture
def afc_study_folder_with():
    """`make_afc_study_folder(folder, n_trials=6, practice=0, study_id=None)` -> (folder,
    case id -> source) (a function)."""
    return make_afc_study_folder
