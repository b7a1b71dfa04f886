"""torchrun support for training and sampling: process-group set-up, ranks, DDP wrapping; all
no-ops in a single process."""

from __future__ import annotations

import os

import torch
import torch.distributed as dist
from torch import nn

from diffusion_core.runtime import local_rank


def _launched() -> bool:
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def setup() -> None:
    """Join the process group torchrun describes (gloo on the CPU, NCCL on GPUs), once."""
    if _launched() and not dist.is_initialized():
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        if backend == "nccl":
            torch.cuda.set_device(local_rank())
        dist.init_process_group(backend=backend)


def active() -> bool:
    """Whether this process is one of several."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def world_size() -> int:
    """Number of processes (1 without torchrun)."""
    return dist.get_world_size() if active() else 1


def rank() -> int:
    """This process's rank (0 without torchrun)."""
    return dist.get_rank() if active() else 0


def rank_share(draw: torch.Tensor) -> torch.Tensor:
    """This process's share (along dim 0) of a random draw every process made alike.

    Ranks keep one RNG stream (a checkpoint stores one state, so resume stays exact); drawing
    for all of them and keeping one's own rows gives each its own noise, as one process with
    the whole batch would. Without torchrun: the draw itself.
    """
    n = draw.shape[0] // world_size()
    return draw[rank() * n:(rank() + 1) * n]


def barrier() -> None:
    """Wait for every process (nothing to wait for in a single process)."""
    if active():
        dist.barrier()


def wrap(module: nn.Module, device: torch.device) -> nn.Module:
    """DDP around a module with trainable parameters when distributed; the module otherwise.

    Buffers are not broadcast: the codebook all-reduces its own EMA statistics, so every rank
    already holds the same buffers, and broadcasting rank 0's would hide a bug instead.
    """
    if not active() or not any(p.requires_grad for p in module.parameters()):
        return module
    ids = [device.index] if device.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(module, device_ids=ids, broadcast_buffers=False)
