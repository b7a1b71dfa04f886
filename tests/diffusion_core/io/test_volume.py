"""Volume and the canonical orientation: (D, H, W) = (S, P, L); oblique scans on the nearest
axes."""

from __future__ import annotations

import numpy as np
import pytest

from diffusion_core.io import (
    Volume,
    read_volume,
    write_nifti,
)


def test_phantom_features_sit_where_the_canonical_axes_say(ct_phantom, tmp_path):
    """D runs to superior, H to posterior, W to patient left: the bone ball shows it."""
    write_nifti(ct_phantom, tmp_path / "ct.nii.gz")
    volume = read_volume(tmp_path / "ct.nii.gz")
    d, h, w = np.argwhere(volume.array >= 600).mean(axis=0)
    depth, height, width = volume.array.shape
    assert d > depth / 2 and h < height / 2 and w > width / 2  # superior, anterior, left
    axes = volume.affine[:3, :3]
    assert axes[2, 0] > 0 and axes[1, 1] < 0 and axes[0, 2] < 0  # +S, -A (P), -R (L)


@pytest.mark.parametrize("layout", ["RAS", "AIR"])
def test_non_canonical_nifti_loads_to_the_canonical_array(layout, ct_phantom, phantom_on_grid,
                                                          tmp_path, assert_same_volume,
                                                          save_nifti_with_nibabel):
    """The same voxels stored in another axis order and direction read back canonical."""
    depth, height, width = ct_phantom.array.shape
    sd, sh, sw = ct_phantom.spacing
    canonical = ct_phantom.affine
    if layout == "RAS":  # axes (W, H, D) running right, anterior, superior
        shape = (width, height, depth)
        columns = [(sw, 0, 0), (0, sh, 0), (0, 0, sd)]
        first = canonical @ [0, height - 1, width - 1, 1]
    else:  # axes (H, D, W) running anterior, inferior, right
        shape = (height, depth, width)
        columns = [(0, sh, 0), (0, 0, -sd), (sw, 0, 0)]
        first = canonical @ [depth - 1, height - 1, width - 1, 1]
    affine = np.eye(4)
    affine[:3, :3] = np.array(columns, dtype=float).T
    affine[:3, 3] = first[:3]
    save_nifti_with_nibabel(tmp_path / "scan.nii", phantom_on_grid(shape, affine), affine)
    volume = read_volume(tmp_path / "scan.nii", modality="CT")
    assert_same_volume(volume, ct_phantom)


def test_oblique_nifti_takes_the_closest_canonical_axes(ct_phantom, tmp_path,
                                                        save_nifti_with_nibabel):
    """A scan tilted 12 degrees is not resampled: same voxels, axes the nearest canonical ones."""
    angle = np.deg2rad(12.0)
    rotation = np.eye(4)
    rotation[:2, :2] = [[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]]
    # Stored as (W, H, D) running left-to-right reversed, i.e. the canonical array transposed.
    stored = np.ascontiguousarray(ct_phantom.array.transpose(2, 1, 0)[::-1])
    width = ct_phantom.array.shape[2]
    flip = np.eye(4)
    flip[:3, :3] = [[0, 0, 1], [0, 1, 0], [-1, 0, 0]]
    flip[2, 3] = width - 1  # stored index (i, j, k) is canonical (k, j, width - 1 - i)
    stored_affine = rotation @ ct_phantom.affine @ flip
    save_nifti_with_nibabel(tmp_path / "oblique.nii.gz", stored, stored_affine)
    volume = read_volume(tmp_path / "oblique.nii.gz")
    np.testing.assert_array_equal(volume.array, ct_phantom.array)
    np.testing.assert_allclose(volume.affine, rotation @ ct_phantom.affine, atol=1e-4)
    np.testing.assert_allclose(volume.spacing, ct_phantom.spacing, rtol=1e-6)


def test_volume_rejects_a_wrong_shape():
    """A Volume is 3D with 3 spacings and a 4x4 affine."""
    with pytest.raises(ValueError, match="3D array"):
        Volume(np.zeros((4, 4)), (1, 1, 1), np.eye(4), "CT")
