"""Fixtures of the reader app tests: tiny studies on disk in the layout of docs/study-format.md."""

from __future__ import annotations

import os

# Before anything imports Qt: the tests never need a display.
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import json  # noqa: E402
from pathlib import Path  # noqa: E402

import nibabel as nib  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from diffusion_core.io import canonical_affine  # noqa: E402

TABLE1_KEYS = ["realistic_appearance", "slice_consistency", "anatomical_correctness"]
TURING_KEYS = ["real_or_synthetic", "confidence"]
CASE_IDS = ["3fa9c2d17b0e4a55", "a04be3917c2d5f68", "5c7e21f0d9a3b6e4", "e8d1046b2f9ac375"]
SHAPE = (8, 24, 20)            # (D, H, W)
SPACING = (3.0, 1.0, 1.5)      # mm, (D, H, W)


def case_volume(seed: int, shape: tuple[int, int, int] = SHAPE, modality: str = "CT"
                ) -> np.ndarray:
    """An int16 volume with structure on every axis: a bright ball in noisy tissue, HU for CT."""
    rng = np.random.default_rng(seed)
    d, h, w = np.meshgrid(*(np.arange(n) for n in shape), indexing="ij")
    centre = np.array(shape) / 2 + rng.uniform(-1, 1, 3)
    ball = ((d - centre[0]) / shape[0]) ** 2 + ((h - centre[1]) / shape[1]) ** 2 \
        + ((w - centre[2]) / shape[2]) ** 2 < 0.09
    if modality == "CT":
        volume = np.where(ball, 60.0, -900.0) + rng.normal(0, 20, shape) + 3.0 * h
    else:
        volume = np.where(ball, 1800.0, 400.0) + rng.normal(0, 30, shape) + 5.0 * w
    return volume.astype(np.int16)


def write_study(folder: Path, *, case_ids: list[str] = CASE_IDS[:3], modality: str = "CT",
                turing: bool = False, shape: tuple[int, int, int] = SHAPE,
                spacing: tuple[float, float, float] = SPACING, title: str = "Knee MR study",
                viewer: dict | None = None) -> Path:
    """Write a study folder (study.json, cases/ID.nii.gz, empty ratings/) and return it."""
    (folder / "cases").mkdir(parents=True)
    (folder / "ratings").mkdir()
    for seed, case_id in enumerate(case_ids):
        image = nib.Nifti1Image(case_volume(seed, shape, modality), canonical_affine(spacing))
        nib.save(image, folder / "cases" / f"{case_id}.nii.gz")
    manifest = {
        "format": "mdiff-study", "version": 1, "study_id": "study-0001", "title": title,
        "dataset": "tiny", "modality": modality,
        "questions": TABLE1_KEYS + (TURING_KEYS if turing else []), "turing": turing,
        "cases": list(case_ids), "shape": list(shape), "spacing": list(spacing),
        "viewer": viewer or {}, "created_at": "2026-01-01T00:00:00+00:00",
    }
    (folder / "study.json").write_text(json.dumps(manifest, indent=2), encoding="utf-8")
    return folder


@pytest.fixture
def study_dir(tmp_path: Path) -> Path:
    """A CT study of three cases with the Table 1 questions."""
    return write_study(tmp_path / "study")


@pytest.fixture
def turing_study_dir(tmp_path: Path) -> Path:
    """An MR study of two cases that also asks the visual Turing questions."""
    return write_study(tmp_path / "turing", case_ids=CASE_IDS[:2], modality="MR", turing=True,
                       title="Brain MR Turing study")


class FakeClock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        """Let `seconds` pass."""
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    """A hand-moved clock for timing tests."""
    return FakeClock()


@pytest.fixture
def make_study(tmp_path: Path):
    """`make_study(name, **options)` writes another study under the test's tmp folder."""
    return lambda name, **options: write_study(tmp_path / name, **options)


@pytest.fixture
def nifti_tools():
    """The fixture's volume maker, canonical affine and spacing, for tests that write files."""
    return case_volume, canonical_affine, SPACING


def write_inputs(folder: Path, per_source: int) -> tuple[Path, Path]:
    """`per_source` real and as many synthetic CT scans under `folder`; (real, synthetic)."""
    from diffusion_core.io import Volume, write_nifti

    for source in ("real", "synthetic"):
        for seed in range(per_source):
            volume = Volume(case_volume(seed + (10 if source == "real" else 0)), SPACING,
                            canonical_affine(SPACING), "CT")
            write_nifti(volume, folder / source / f"scan{seed}.nii.gz")
    return folder / "real", folder / "synthetic"


@pytest.fixture
def created_study(tmp_path: Path):
    """A CT study of two real and two synthetic cases made by `studies.create.create_study`,
    with its key CSV beside it (a `CreatedStudy`)."""
    from studies.create import create_study

    real, synthetic = write_inputs(tmp_path, 2)
    return create_study(tmp_path / "made", real=real, synthetic=synthetic, modality="CT",
                        seed=0, title="Made study")


@pytest.fixture
def make_practice_study(tmp_path: Path):
    """`make_practice_study(answers_editable=True, name, turing=False)`: a CT study of two
    real and two synthetic cases after a practice block of one real and one synthetic case
    (`create --practice 2` from the same inputs), made by `studies.create.create_study`;
    returns its folder."""
    from studies.create import create_study

    real, synthetic = write_inputs(tmp_path / "inputs", 3)

    def make(answers_editable: bool = True, name: str = "practice", turing: bool = False
             ) -> Path:
        made = create_study(tmp_path / name, real=real, synthetic=synthetic, n=2, n_real=2,
                            practice=2, modality="CT", seed=0, title="Practice study",
                            answers_editable=answers_editable, turing=turing)
        return made.folder

    return make


PAIR_TRIALS = [("77aa00bb11cc22dd", CASE_IDS[0], CASE_IDS[1]),
               ("88bb11cc22dd33ee", CASE_IDS[2], CASE_IDS[3])]


def write_pair_study(folder: Path, *, modality: str = "MR", practice: bool = True) -> Path:
    """Write a paired (2AFC) study of two trials (study.json's layout A: PAIR_TRIALS, as
    (trial id, left, right)) and, with `practice`, one practice trial P01 whose synthetic member
    is on the right; return its folder."""
    (folder / "cases").mkdir(parents=True)
    (folder / "practice").mkdir()
    (folder / "ratings").mkdir()
    files = [(folder / "cases", case_id) for case_id in CASE_IDS]
    files += [(folder / "practice", name) for name in ("P01a", "P01b")] if practice else []
    for seed, (where, name) in enumerate(files):
        image = nib.Nifti1Image(case_volume(seed, SHAPE, modality), canonical_affine(SPACING))
        nib.save(image, where / f"{name}.nii.gz")
    manifest = {
        "format": "mdiff-study", "version": 1, "study_id": "study-0002", "title": "Paired study",
        "dataset": "tiny", "modality": modality, "questions": ["synthetic_side", "confidence"],
        "turing": False, "cases": CASE_IDS, "shape": list(SHAPE), "spacing": list(SPACING),
        "viewer": {}, "created_at": "2026-01-01T00:00:00+00:00", "design": "2afc",
        "trials": [{"trial_id": t, "left": left, "right": right} for t, left, right
                   in PAIR_TRIALS],
        "practice": [{"trial_id": "P01", "left": "P01a", "right": "P01b", "synthetic": "right"}]
        if practice else [],
    }
    (folder / "study.json").write_text(json.dumps(manifest, indent=2), encoding="utf-8")
    return folder


@pytest.fixture
def pair_study_dir(tmp_path: Path) -> Path:
    """A paired MR study of two trials after one practice trial (synthetic on the right)."""
    return write_pair_study(tmp_path / "pairs")


@pytest.fixture
def make_pair_study(tmp_path: Path):
    """`make_pair_study(name, **options)` writes another paired study under the test's tmp
    folder (`write_pair_study`'s options)."""
    return lambda name, **options: write_pair_study(tmp_path / name, **options)


@pytest.fixture
def made_pair_study(tmp_path: Path):
    """A paired CT study of two trials after one practice trial, made by
    `studies.create.create_study(design="2afc")` from three real and three synthetic scans,
    with its key CSV beside it (a `CreatedStudy`)."""
    from studies.create import create_study

    real, synthetic = write_inputs(tmp_path / "inputs", 3)
    return create_study(tmp_path / "made", real=real, synthetic=synthetic, design="2afc",
                        pairs=2, practice=1, modality="CT", seed=0, title="Made pairs")
