"""Reading case files in canonical orientation, and the background case cache."""

from __future__ import annotations

import threading
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from diffusion_core.io import VolumeError
from reader_app.model.loader import CaseCache, CaseImage, read_case
from reader_app.model.windowing import Window, foreground_window


def test_read_case_keeps_a_canonical_file_as_it_is(tmp_path, nifti_tools):
    """A case written in canonical (D, H, W) order comes back unchanged, as int16."""
    case_volume, canonical_affine, spacing = nifti_tools
    volume = case_volume(0)
    path = tmp_path / "case.nii.gz"
    nib.save(nib.Nifti1Image(volume, canonical_affine(spacing)), path)
    case = read_case(path)
    assert case.array.dtype == np.int16
    np.testing.assert_array_equal(case.array, volume)
    assert case.spacing == spacing


def test_read_case_reorients_a_ras_file_to_canonical(tmp_path, nifti_tools):
    """The same volume stored RAS-first (x, y, z) still displays the canonical way round."""
    case_volume, _, spacing = nifti_tools
    volume = case_volume(1)
    # canonical (D: S, H: P, W: L) -> RAS (x: R, y: A, z: S): transpose to (W, H, D), flip W and H.
    ras = np.ascontiguousarray(volume.transpose(2, 1, 0)[::-1, ::-1, :])
    d, h, w = spacing
    nib.save(nib.Nifti1Image(ras, np.diag([w, h, d, 1.0])), tmp_path / "ras.nii.gz")
    case = read_case(tmp_path / "ras.nii.gz")
    np.testing.assert_array_equal(case.array, volume)
    assert case.spacing == spacing


def test_read_case_gives_the_foreground_window(tmp_path, nifti_tools):
    """The auto-window comes with the case, computed off the GUI thread: the study's percentiles
    of the voxels above the background."""
    case_volume, canonical_affine, spacing = nifti_tools
    volume = case_volume(2, modality="MR")
    path = tmp_path / "mr.nii.gz"
    nib.save(nib.Nifti1Image(volume, canonical_affine(spacing)), path)
    window = read_case(path, percentiles=(1.0, 99.0)).auto_window
    assert window == foreground_window(volume, (1.0, 99.0))
    assert window.low > np.percentile(volume, 1.0) + 500  # the background at 400 is left out


def test_read_case_fails_on_a_broken_file(tmp_path):
    """A damaged file raises, so the app can say the case could not be read."""
    path = tmp_path / "broken.nii.gz"
    path.write_bytes(b"\x1f\x8bnot really gzip")
    with pytest.raises(VolumeError, match="broken.nii.gz"):
        read_case(path)


def test_cache_reads_each_case_once_in_the_background_and_forgets_on_retain():
    """Requests share one future; reads run off the calling thread; retain drops the rest."""
    threads: list[str] = []

    def fake_read(path: Path) -> CaseImage:
        threads.append(threading.current_thread().name)
        return CaseImage(np.zeros((2, 2, 2), np.int16), (1.0, 1.0, 1.0), Window(0.0, 1.0))

    cache = CaseCache(fake_read)
    first = cache.request(Path("a"))
    assert cache.request(Path("a")) is first
    first.result(timeout=10)
    assert threads == [threads[0]] and threads[0] != threading.current_thread().name
    cache.retain([Path("b")])
    cache.request(Path("a")).result(timeout=10)
    assert len(threads) == 2
    cache.shutdown()
