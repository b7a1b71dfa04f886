"""Training data: a torch Dataset over a PREP_DIR written by `mdiff-prepare`."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from diffusion_core.prepared import PreparedError, load_manifest, split_arrays


class PreparedDataset(Dataset):
    """The arrays of a PREP_DIR as float32 tensors (1, D, H, W), one split of them.

    `split` is "train", "val" or "all" (see `prepared.split_arrays` for the deterministic split).
    `flip` mirrors a volume left-right with p = 0.5; None flips the train split only.

    The paper augments by "vertically flipping" with p = 0.5, which is ambiguous for volumes. We
    flip W (patient right <-> left), a plausible anatomy: a top-bottom flip would teach the model
    upside-down images that only synthetic cases would then show (DESIGN.md).
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
        if not self.flip:
            return False
        key = f"{self.seed}:{self.epoch}:{self.names[index]}".encode()
        generator = torch.Generator().manual_seed(
            int.from_bytes(hashlib.sha256(key).digest()[:8], "big") >> 1)
        return bool(torch.rand((), generator=generator) < 0.5)

    def __getitem__(self, index: int) -> torch.Tensor:
        """Item `index`: float32 (1, D, H, W) in [-1, 1]."""
        path = self.prep_dir / self.names[index]
        try:
            array = np.load(path)
        except (OSError, ValueError) as err:
            raise PreparedError(f"{path} (listed in manifest.json) cannot be read ({err}); "
                                f"run mdiff-prepare again") from None
        if array.shape != self.shape:
            raise PreparedError(f"{path} has shape {array.shape}, the manifest says "
                                f"{self.shape}; run mdiff-prepare again")
        volume = torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32)).unsqueeze(0)
        if self.is_flipped(index):
            volume = torch.flip(volume, dims=(-1,))
        return volume
