"""The two augmented views of self-supervised pre-training (Tang et al. 2022): rotate, then mask.

Each view of a volume is the volume turned by one of four quarter turns in the (H, W) plane
(0, 90, 180 or 270 degrees: the rotation label), with random cuboids replaced by noise or by the
same cuboid of another volume of the batch, until a random share of the volume up to
`mask_fraction` is covered. The inpainting target is the turned, unmasked volume. Turning in the
axial plane keeps the (D, H, W) shape when H == W, which pre-training asks of its volumes.

Every draw uses torch's global random state, which the trainer saves in its checkpoints, so a
resumed pre-training draws the same views as one that never stopped.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

ROTATIONS = 4
CUBOID_SIDE = (0.125, 0.25)  # a cuboid's side as a share of the axis, drawn per axis


@dataclass
class Views:
    """Two views of a batch: inputs (N, 1, D, H, W), rotation labels (N,), targets like inputs."""

    first: torch.Tensor
    second: torch.Tensor
    first_rotation: torch.Tensor
    second_rotation: torch.Tensor
    first_target: torch.Tensor
    second_target: torch.Tensor


def rotate(volumes: torch.Tensor, quarter_turns: torch.Tensor) -> torch.Tensor:
    """Each volume (N, 1, D, H, W) turned by its number of quarter turns in the (H, W) plane."""
    return torch.stack([torch.rot90(volume, int(k), dims=(2, 3))
                        for volume, k in zip(volumes, quarter_turns, strict=True)])


def mask_cuboids(volumes: torch.Tensor, mask_fraction: float) -> torch.Tensor:
    """A copy of `volumes` (N, 1, D, H, W) with random cuboids replaced (module docstring)."""
    out = volumes.clone()
    n, _, *shape = volumes.shape
    for index in range(n):
        target = float(torch.empty(()).uniform_(0.5 * mask_fraction, mask_fraction))
        covered = torch.zeros(shape, dtype=torch.bool)
        while covered.float().mean() < target:
            box = _random_box(shape)
            covered[box] = True
            other = int(torch.randint(n, ())) if n > 1 else index
            if other != index and bool(torch.rand(()) < 0.5):
                out[index, 0][box] = volumes[other, 0][box]
            else:
                low, high = float(volumes[index].min()), float(volumes[index].max())
                patch = out[index, 0][box]
                noise = torch.rand(patch.shape, dtype=patch.dtype, device=patch.device)
                out[index, 0][box] = noise * (high - low) + low
    return out


def _random_box(shape: list[int]) -> tuple[slice, ...]:
    """A random cuboid inside `shape`, each side a random share (CUBOID_SIDE) of its axis."""
    box = []
    for size in shape:
        share = float(torch.empty(()).uniform_(*CUBOID_SIDE))
        side = max(1, round(share * size))
        start = int(torch.randint(size - side + 1, ()))
        box.append(slice(start, start + side))
    return tuple(box)


def make_views(volumes: torch.Tensor, mask_fraction: float) -> Views:
    """Two independently turned and masked views of every volume (N, 1, D, H, W), H == W."""
    if volumes.shape[-1] != volumes.shape[-2]:
        raise ValueError(f"quarter turns need square (H, W) planes, not "
                         f"{tuple(volumes.shape[-2:])}")
    n = volumes.shape[0]
    first_rotation = torch.randint(ROTATIONS, (n,))
    second_rotation = torch.randint(ROTATIONS, (n,))
    first_target = rotate(volumes, first_rotation)
    second_target = rotate(volumes, second_rotation)
    return Views(mask_cuboids(first_target, mask_fraction),
                 mask_cuboids(second_target, mask_fraction),
                 first_rotation.to(volumes.device), second_rotation.to(volumes.device),
                 first_target, second_target)
