"""PreparedDataset: items of a split, the left-right flip augmentation, damaged PREP_DIRs."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch

from diffusion_core.data import PreparedDataset
from diffusion_core.prepared import PreparedError

SHAPE = (8, 16, 16)


def test_items_are_float32_tensors_with_a_channel(tmp_path, make_prep_dir):
    """(1, D, H, W) float32, the saved values (unflipped without augmentation)."""
    folder = make_prep_dir(tmp_path / "prep", ["a", "b", "c"])
    dataset = PreparedDataset(folder, "all", flip=False)
    assert len(dataset) == 3
    item = dataset[1]
    assert item.shape == (1, *SHAPE) and item.dtype == torch.float32
    assert np.array_equal(item[0].numpy(), np.load(folder / dataset.names[1]))


def test_flip_is_left_right_only_and_reproducible(tmp_path, make_prep_dir):
    """Flipped items are the array mirrored along W; the same seed and epoch flip the same."""
    folder = make_prep_dir(tmp_path / "prep", [f"s{i:02d}" for i in range(40)])
    dataset = PreparedDataset(folder, "all", flip=True, seed=3)
    flipped = [dataset.is_flipped(i) for i in range(len(dataset))]
    assert 8 <= sum(flipped) <= 32
    for index in (flipped.index(True), flipped.index(False)):
        saved = torch.from_numpy(np.load(folder / dataset.names[index]))
        expected = torch.flip(saved, dims=(-1,)) if flipped[index] else saved
        assert torch.equal(dataset[index][0], expected)
    again = PreparedDataset(folder, "all", flip=True, seed=3)
    assert [again.is_flipped(i) for i in range(len(again))] == flipped
    assert [again.is_flipped(i) for i in reversed(range(len(again)))] == flipped[::-1]
    again.set_epoch(1)
    assert [again.is_flipped(i) for i in range(len(again))] != flipped


def test_only_the_train_split_flips_by_default(tmp_path, make_prep_dir):
    """Validation data is never augmented unless asked."""
    folder = make_prep_dir(tmp_path / "prep", [f"s{i:02d}" for i in range(40)])
    assert PreparedDataset(folder, "train").flip
    val = PreparedDataset(folder, "val")
    assert not val.flip and not any(val.is_flipped(i) for i in range(len(val)))


def test_a_folder_without_manifest_is_a_clear_error(tmp_path):
    """PreparedError naming the folder and how to prepare it."""
    with pytest.raises(PreparedError, match="mdiff-prepare"):
        PreparedDataset(tmp_path)


def test_a_damaged_prep_dir_is_a_clear_error(tmp_path, make_prep_dir):
    """A missing or wrongly shaped array names the file; a bad split name is refused."""
    folder = make_prep_dir(tmp_path / "prep", ["a", "b"])
    np.save(folder / "a.npy", np.zeros((2, 2, 2), np.float32))
    (folder / "b.npy").unlink()
    dataset = PreparedDataset(folder, "all", flip=False)
    with pytest.raises(PreparedError, match="a.npy has shape"):
        dataset[dataset.names.index("a.npy")]
    with pytest.raises(PreparedError, match="b.npy"):
        dataset[dataset.names.index("b.npy")]
    with pytest.raises(ValueError, match="split"):
        PreparedDataset(folder, "test")


@pytest.mark.parametrize(("value", "problem"), [
    (np.nan, "NaN or infinite values; run mdiff-prepare again"),
    (1000.0, "to 1000, outside the prepared range [-1, 1]; run mdiff-prepare again"),
])
def test_an_array_with_nan_or_out_of_range_values_is_refused(value, problem, tmp_path,
                                                             make_prep_dir):
    """Training and scoring read arrays here: a NaN or a PREP_DIR scaled to +-1000 is an error
    naming the file, not numbers computed from it."""
    folder = make_prep_dir(tmp_path / "prep", ["a", "b"])
    array = np.load(folder / "b.npy")
    array[2, 3, 4] = value
    np.save(folder / "b.npy", array)
    dataset = PreparedDataset(folder, "all", flip=False)
    assert dataset[dataset.names.index("a.npy")].shape == (1, *SHAPE)
    with pytest.raises(PreparedError, match=rf"b\.npy holds .*{re.escape(problem)}"):
        dataset[dataset.names.index("b.npy")]
