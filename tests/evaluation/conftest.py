"""Shared fixtures for the evaluation tests."""

from __future__ import annotations

import csv
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest

# The columns of `mdiff-study export` in order (Turing answers and the key included).
EXPORT_COLUMNS: tuple[str, ...] = (
    "study_id", "dataset", "reader", "case_id", "realistic_appearance", "slice_consistency",
    "anatomical_correctness", "real_or_synthetic", "confidence", "seconds_on_case", "rated_at",
    "source", "origin",
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
                full = {"seconds_on_case": "12.5", "rated_at": "2024-05-01T10:00:00+00:00",
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


@pytest.fixture
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
