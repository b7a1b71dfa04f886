"""Shared fixtures for the evaluation tests."""

from __future__ import annotations

import csv
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest

# The columns of `mdiff-study export` in order (Turing answers, practice and the key included).
EXPORT_COLUMNS: tuple[str, ...] = (
    "study_id", "dataset", "reader", "case_id", "realistic_appearance", "slice_consistency",
    "anatomical_correctness", "real_or_synthetic", "confidence", "not_assessable", "comment",
    "seconds_on_case", "rated_at", "practice", "source", "origin",
)


@pytest.fixture
def write_export(tmp_path: Path) -> Callable[..., Path]:
    """Write crafted ratings as an export CSV; `columns` picks (and orders) the columns kept."""

    def write(name: str, rows: Sequence[dict], columns: Sequence[str] = EXPORT_COLUMNS) -> Path:
        path = tmp_path / name
        with path.open("w", newline="", encoding="utf-8") as f:
            writer = csv.DictWriter(f, fieldnames=list(columns), extrasaction="ignore")
            writer.writeheader()
            for row in rows:
                full = {"not_assessable": "0", "practice": "0",
                        "seconds_on_case": "12.5", "rated_at": "2024-05-01T10:00:00+00:00",
                        "origin": "", **row}
                writer.writerow({c: full.get(c, "") for c in columns})
        return path

    return write


@pytest.fixture
def run_eval(capsys: pytest.CaptureFixture) -> Callable[[list[str]], tuple[int, str, str]]:
    """Run `mdiff-eval ARGV` in-process; returns (exit status, stdout, stderr)."""
    from evaluation.cli.eval import main

    def run(argv: list[str]) -> tuple[int, str, str]:
        capsys.readouterr()
        status = main([str(a) for a in argv])
        out, err = capsys.readouterr()
        return status, out, err

    return run


@pytest.fixture(scope="session")
def smooth_volumes() -> Callable[..., object]:
    """`make(n, shape, seed=0, own=0.5)`: (n, *shape) float32 images sharing one smooth pattern.

    Each image is the shared pattern plus `own` times a smooth pattern of its own, so pairs are
    similar but not identical, as volumes of one anatomy are; values span [0, 1] over the set.
    """
    import numpy as np
    from scipy.ndimage import gaussian_filter

    def make(n: int, shape: Sequence[int], seed: int = 0, own: float = 0.5) -> np.ndarray:
        rng = np.random.default_rng(seed)
        base = gaussian_filter(rng.standard_normal(shape), 2.0)
        images = [base + own * gaussian_filter(rng.standard_normal(shape), 2.0) for _ in range(n)]
        stack = np.stack(images)
        return ((stack - stack.min()) / (stack.max() - stack.min())).astype(np.float32)

    return make


def _write_prepared(folder: Path, arrays, preset: str = "tiny") -> Path:
    """A PREP_DIR of `preset` holding `arrays` (one scan each, names vol00.npy ...) at their shape.
    """
    import numpy as np

    from diffusion_core.prepared import Manifest, PreparedScan
    from diffusion_core.presets import get_preset

    folder.mkdir(parents=True, exist_ok=True)
    manifest = Manifest.for_preset(get_preset(preset), folder / "raw", None)
    manifest.shape = list(arrays[0].shape)
    for k, array in enumerate(arrays):
        name = f"vol{k:02d}.npy"
        np.save(folder / name, np.asarray(array, dtype=np.float32))
        manifest.scans.append(PreparedScan(source=f"scan{k:02d}.nii.gz", arrays=[name]))
    manifest.save(folder)
    return folder


def _write_nifti_volumes(folder: Path, arrays, modality: str = "MR",
                         names: Sequence[str] | None = None) -> Path:
    """One canonical NIfTI file per array (case_0001.nii.gz ... unless `names` are given)."""
    from diffusion_core.io import Volume, canonical_affine, write_nifti

    folder.mkdir(parents=True, exist_ok=True)
    names = names or [f"case_{k + 1:04d}.nii.gz" for k in range(len(arrays))]
    for name, array in zip(names, arrays, strict=True):
        write_nifti(Volume(array.astype("float32"), (1.0, 1.0, 1.0),
                           canonical_affine((1.0, 1.0, 1.0)), modality), folder / name)
    return folder


def _panel_pixels(figure, png: Path, label: str, inset: int = 3):
    """The RGB pixels of the saved PNG inside the axes labelled `label` (spines left out)."""
    import numpy as np
    from matplotlib.image import imread

    image = imread(png)[..., :3]
    (ax,) = [a for a in figure.axes if a.get_label() == label]
    box = ax.get_window_extent()
    scale = image.shape[0] / (figure.get_figheight() * figure.dpi)
    x0, x1 = int(np.ceil(box.x0 * scale)) + inset, int(box.x1 * scale) - inset
    top, bottom = image.shape[0] - int(box.y1 * scale) + inset, \
        image.shape[0] - int(np.ceil(box.y0 * scale)) - inset
    return image[top:bottom, x0:x1]


@pytest.fixture(scope="session")
def write_prepared() -> Callable[..., Path]:
    """`write(folder, arrays, preset="tiny")`: a PREP_DIR holding these arrays."""
    return _write_prepared


@pytest.fixture(scope="session")
def write_nifti_volumes() -> Callable[..., Path]:
    """`write(folder, arrays, modality="MR", names=None)`: one canonical NIfTI per array."""
    return _write_nifti_volumes


@pytest.fixture(scope="session")
def panel_pixels() -> Callable[..., object]:
    """`pixels(figure, png, label)`: the saved PNG's pixels inside the axes with that label."""
    return _panel_pixels
