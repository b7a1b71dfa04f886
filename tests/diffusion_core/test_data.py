"""PreparedDataset: the deterministic split and the left-right flip augmentation."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from diffusion_core.data import PreparedDataset
from diffusion_core.prepared import (
    Manifest,
    PreparedError,
    PreparedScan,
    load_manifest,
    split_arrays,
)
from diffusion_core.presets import get_preset

SHAPE = (8, 16, 16)


def _prep_dir(folder: Path, sources: list[str], *, halves: bool = False) -> Path:
    """A PREP_DIR of the tiny preset: one asymmetric array per source (two with `halves`)."""
    folder.mkdir(parents=True, exist_ok=True)
    manifest = Manifest.for_preset(get_preset("tiny"), folder / "raw", None)
    rng = np.random.default_rng(0)
    for source in sources:
        names = [f"{source}_right.npy", f"{source}_left.npy"] if halves else [f"{source}.npy"]
        for name in names:
            np.save(folder / name, rng.uniform(-1, 1, SHAPE).astype(np.float32))
        manifest.scans.append(PreparedScan(source=source, arrays=names))
    manifest.save(folder)
    return folder


def _names(folder: Path, split: str, **kwargs) -> list[str]:
    """The array names of one split."""
    return [name for name, _ in split_arrays(load_manifest(folder), split, **kwargs)]


def test_split_is_deterministic_disjoint_and_covers_everything(tmp_path):
    """Same arguments, same split; train and val share nothing and together are all."""
    folder = _prep_dir(tmp_path / "prep", [f"case{i:03d}" for i in range(200)])
    train, val = _names(folder, "train"), _names(folder, "val")
    assert train == _names(folder, "train") and val == _names(folder, "val")
    assert not set(train) & set(val)
    assert sorted(train + val) == sorted(_names(folder, "all"))
    assert 8 <= len(val) <= 34  # about val_fraction = 0.1 of 200
    assert _names(folder, "val", seed=1) != val


def test_adding_scans_moves_none_of_the_others(tmp_path):
    """The split hashes each source, so new scans leave the old assignments alone."""
    before = _names(_prep_dir(tmp_path / "a", [f"case{i:03d}" for i in range(100)]), "val")
    after = _names(_prep_dir(tmp_path / "b", [f"case{i:03d}" for i in range(150)]), "val")
    assert set(before) <= set(after)
    assert not {name for name in after if int(name[4:7]) < 100} - set(before)


def test_both_halves_of_a_scan_share_a_split(tmp_path):
    """DUKE's right and left breast of one patient never straddle train and validation."""
    folder = _prep_dir(tmp_path / "prep", [f"case{i:02d}" for i in range(60)], halves=True)
    val = _names(folder, "val")
    assert val and len(val) % 2 == 0
    for name in val:
        partner = name.replace("_right", "_left") if "_right" in name else name.replace(
            "_left", "_right")
        assert partner in val


def test_a_small_prep_dir_still_gets_a_validation_scan(tmp_path):
    """Three scans at 10 %: the hash would often pick none, so one is held out."""
    folder = _prep_dir(tmp_path / "prep", ["a", "b", "c"])
    assert len(_names(folder, "val")) == 1
    assert len(_names(folder, "train")) == 2
    assert _names(folder, "val", val_fraction=0.0) == []


def test_items_are_float32_tensors_with_a_channel(tmp_path):
    """(1, D, H, W) float32, the saved values (unflipped without augmentation)."""
    folder = _prep_dir(tmp_path / "prep", ["a", "b", "c"])
    dataset = PreparedDataset(folder, "all", flip=False)
    assert len(dataset) == 3
    item = dataset[1]
    assert item.shape == (1, *SHAPE) and item.dtype == torch.float32
    assert np.array_equal(item[0].numpy(), np.load(folder / dataset.names[1]))


def test_flip_is_left_right_only_and_reproducible(tmp_path):
    """Flipped items are the array mirrored along W; the same seed and epoch flip the same."""
    folder = _prep_dir(tmp_path / "prep", [f"s{i:02d}" for i in range(40)])
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


def test_only_the_train_split_flips_by_default(tmp_path):
    """Validation data is never augmented unless asked."""
    folder = _prep_dir(tmp_path / "prep", [f"s{i:02d}" for i in range(40)])
    assert PreparedDataset(folder, "train").flip
    val = PreparedDataset(folder, "val")
    assert not val.flip and not any(val.is_flipped(i) for i in range(len(val)))


def test_a_folder_without_manifest_is_a_clear_error(tmp_path):
    """PreparedError naming the folder and how to prepare it."""
    with pytest.raises(PreparedError, match="mdiff-prepare"):
        PreparedDataset(tmp_path)


def test_a_damaged_prep_dir_is_a_clear_error(tmp_path):
    """A missing or wrongly shaped array names the file; a bad split name is refused."""
    folder = _prep_dir(tmp_path / "prep", ["a", "b"])
    np.save(folder / "a.npy", np.zeros((2, 2, 2), np.float32))
    (folder / "b.npy").unlink()
    dataset = PreparedDataset(folder, "all", flip=False)
    with pytest.raises(PreparedError, match="a.npy has shape"):
        dataset[dataset.names.index("a.npy")]
    with pytest.raises(PreparedError, match="b.npy"):
        dataset[dataset.names.index("b.npy")]
    with pytest.raises(ValueError, match="split"):
        PreparedDataset(folder, "test")
