"""Training data: torch Datasets over a PREP_DIR (`mdiff-prepare`) and over cached latents."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from diffusion_core.prepared import PreparedError, load_array, load_manifest, split_arrays


def flip_decision(seed: int, epoch: int, name: str) -> bool:
    """Whether item `name` is mirrored in `epoch`: p = 0.5 from a generator seeded by all three."""
    key = f"{seed}:{epoch}:{name}".encode()
    generator = torch.Generator().manual_seed(
        int.from_bytes(hashlib.sha256(key).digest()[:8], "big") >> 1)
    return bool(torch.rand((), generator=generator) < 0.5)


class PreparedDataset(Dataset):
    """The arrays of a PREP_DIR as float32 tensors (1, D, H, W), one split of them.

    `split` is "train", "val" or "all" (see `prepared.split_arrays` for the deterministic split).
    `flip` mirrors a volume left-right with p = 0.5; None flips the train split only.

    The paper augments by "vertically flipping" with p = 0.5, which is ambiguous for volumes. We
    flip W (patient right <-> left), a plausible anatomy: a top-bottom flip would teach the model
    upside-down images that only synthetic cases would then show.
    """

    def __init__(self, prep_dir: str | os.PathLike, split: str = "train", *,
                 val_fraction: float = 0.1, seed: int = 0, flip: bool | None = None) -> None:
        self.prep_dir = Path(prep_dir)
        self.manifest = load_manifest(self.prep_dir)
        if not self.manifest.scans:
            raise PreparedError(f"{self.prep_dir} holds no prepared arrays; every scan was "
                                f"skipped (see its manifest.json)")
        self.split = split
        self.seed = seed
        self.flip = (split == "train") if flip is None else flip
        self.epoch = 0
        selected = split_arrays(self.manifest, split, val_fraction=val_fraction, seed=seed)
        self.names = [name for name, _source in selected]
        self.sources = [source for _name, source in selected]
        self.shape = tuple(self.manifest.shape)

    def set_epoch(self, epoch: int) -> None:
        """Choose the flips of this epoch (call once per epoch, like DistributedSampler's)."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        """Number of arrays in this split."""
        return len(self.names)

    def is_flipped(self, index: int) -> bool:
        """Whether item `index` is mirrored in the current epoch.

        Drawn from a torch.Generator seeded by (seed, epoch, array name), so the flips do not
        depend on the order items are read in, the number of DataLoader workers, or a resume.
        """
        return self.flip and flip_decision(self.seed, self.epoch, self.names[index])

    def __getitem__(self, index: int) -> torch.Tensor:
        """Item `index`: float32 (1, D, H, W) in [-1, 1]; PreparedError naming a bad file."""
        array = load_array(self.prep_dir / self.names[index], self.shape)
        volume = torch.from_numpy(np.ascontiguousarray(array)).unsqueeze(0)
        if self.is_flipped(index):
            volume = torch.flip(volume, dims=(-1,))
        return volume


class LatentDataset(Dataset):
    """Cached latents (N, C, d, h, w) with their left-right flipped twins, flipped as the images.

    The VQ-GAN is not equivariant to flips, so the flipped twin is the encoding of the flipped
    image, not the flipped latent; which of the two an item gives follows `flip_decision`, exactly
    as `PreparedDataset` flips the images.
    """

    def __init__(self, latents: torch.Tensor, flipped: torch.Tensor, names: list[str], *,
                 flip: bool, seed: int = 0) -> None:
        if latents.shape != flipped.shape or len(names) != latents.shape[0]:
            raise ValueError("latents, their flipped twins and names must match")
        self.latents, self.flipped, self.names = latents, flipped, list(names)
        self.flip, self.seed, self.epoch = flip, seed, 0

    def set_epoch(self, epoch: int) -> None:
        """Choose the flips of this epoch."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        """Number of latents."""
        return len(self.names)

    def __getitem__(self, index: int) -> torch.Tensor:
        """Latent `index` (C, d, h, w), the flipped image's latent when this epoch flips it."""
        if self.flip and flip_decision(self.seed, self.epoch, self.names[index]):
            return self.flipped[index]
        return self.latents[index]
