"""Fixtures for training tests: a tiny-preset PREP_DIR of smooth, structured volumes."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture
def tiny_prep_dir(tmp_path, make_blob_prep_dir) -> Path:
    """A tiny-preset PREP_DIR of 12 volumes (8x16x16)."""
    return make_blob_prep_dir(tmp_path / "prep")
