"""The VQ-GAN's vector-quantising codebook, updated by exponential moving averages.

van den Oord et al. (VQ-VAE, appendix A.1) and the authors' code: each encoder vector snaps to
its nearest code (L2); codes follow the EMA of the vectors assigned to them (decay 0.99, Laplace
smoothing of the counts); codes whose EMA count falls under a threshold are restarted from random
current encoder vectors; the encoder is pulled towards its codes by the commitment loss
0.25 * ||z - sg(e)||^2 and receives the decoder's gradient through the straight-through estimator.

Everything the codebook learns, including whether its data-dependent initialisation has happened,
is a buffer, so it is part of every checkpoint: a resumed run never re-initialises it (the
authors' code did not save that flag, so its resumed runs re-initialised their codebooks). Under
torch.distributed the counts and sums are all-reduced and restarts are drawn on rank 0 and
broadcast, so every process holds the same codebook.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.distributed as dist
import torch.nn.functional as F
from einops import rearrange
from torch import nn

# Distance matrices are built for at most this many (vector, code) pairs at once: 2^24 float32
# is 64 MiB, so 16384 codes are searched 1024 vectors at a time.
SEARCH_BUDGET = 1 << 24


@dataclass
class Quantized:
    """The codebook's output for a batch of encoder vectors."""

    z_q: torch.Tensor  # (N, dim, *spatial), straight-through in training
    indices: torch.Tensor  # (N, *spatial) int64
    commitment_loss: torch.Tensor  # scalar
    perplexity: torch.Tensor  # scalar: exp(entropy of this batch's code use)
    usage: torch.Tensor  # scalar: fraction of codes used by this batch


def _distributed() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def nearest_codes(vectors: torch.Tensor, codes: torch.Tensor,
                  budget: int = SEARCH_BUDGET) -> torch.Tensor:
    """Index of the nearest code (L2) for each row of `vectors` (M, d) among `codes` (K, d).

    Searched in chunks of rows so that no more than `budget` distances exist at once.
    """
    rows = max(1, budget // max(1, codes.shape[0]))
    code_sq = codes.pow(2).sum(1)
    out = torch.empty(vectors.shape[0], dtype=torch.long, device=vectors.device)
    for start in range(0, vectors.shape[0], rows):
        chunk = vectors[start:start + rows]
        # ||v - e||^2 = ||v||^2 - 2 v.e + ||e||^2; ||v||^2 does not change the argmin.
        distances = torch.addmm(code_sq, chunk, codes.t(), alpha=-2.0)  # one pass, one buffer
        out[start:start + rows] = distances.argmin(1)
    return out


class Codebook(nn.Module):
    """`num_codes` codes of size `dim` with EMA updates, dead-code restarts and lazy init."""

    def __init__(self, num_codes: int = 16384, dim: int = 8, *, decay: float = 0.99,
                 epsilon: float = 1e-7, commitment: float = 0.25,
                 restart_threshold: float = 1.0) -> None:
        super().__init__()
        if num_codes < 1 or dim < 1:
            raise ValueError("a codebook needs at least one code of at least one dimension")
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"decay must be in [0, 1), not {decay}")
        self.num_codes, self.dim = num_codes, dim
        self.decay, self.epsilon = decay, epsilon
        self.commitment, self.restart_threshold = commitment, restart_threshold
        self.register_buffer("embedding", torch.randn(num_codes, dim))
        self.register_buffer("ema_count", torch.ones(num_codes))
        self.register_buffer("ema_sum", self.embedding.clone())
        self.register_buffer("initialised", torch.zeros((), dtype=torch.bool))
        self.frozen = False  # True: no EMA updates or restarts even in training mode

    # --- lookups -----------------------------------------------------------------------------

    def range(self) -> tuple[float, float]:
        """The smallest and largest value in the codebook (the DDPM's latent normalisation)."""
        return float(self.embedding.min()), float(self.embedding.max())

    def lookup(self, indices: torch.Tensor) -> torch.Tensor:
        """Codes for `indices` (N, *spatial) as (N, dim, *spatial)."""
        return rearrange(self.embedding[indices], "n ... d -> n d ...")

    def quantize(self, z: torch.Tensor) -> torch.Tensor:
        """Snap z (N, dim, *spatial) to its nearest codes, without updating anything."""
        flat = rearrange(z, "n d ... -> (n ...) d")
        indices = nearest_codes(flat.float(), self.embedding).view(z.shape[0], *z.shape[2:])
        return self.lookup(indices).to(z.dtype)

    # --- training ----------------------------------------------------------------------------

    def forward(self, z: torch.Tensor) -> Quantized:
        """Quantise z (N, dim, *spatial); in training mode also update the codes."""
        # Distances and EMA statistics in fp32 even under bf16 autocast (fp16 gave the authors'
        # users NaN losses).
        with torch.autocast(device_type=z.device.type, enabled=False):
            return self._quantize_and_update(z)

    def _quantize_and_update(self, z: torch.Tensor) -> Quantized:
        if z.shape[1] != self.dim:
            raise ValueError(f"the codebook holds {self.dim}-dimensional codes; got {z.shape[1]} "
                             f"channels")
        spatial = z.shape[2:]
        flat = rearrange(z, "n d ... -> (n ...) d").float()
        updating = self.training and not self.frozen
        if updating and not bool(self.initialised):
            self._initialise(flat.detach())
        indices = nearest_codes(flat.detach(), self.embedding)
        counts = torch.bincount(indices, minlength=self.num_codes).float()
        codes = self.embedding[indices]  # the codes before this batch's update (VQ-VAE, A.1)
        if updating:
            self._ema_update(flat.detach(), indices, counts.clone())
        commitment = self.commitment * F.mse_loss(flat, codes.detach())
        # Straight-through: the forward value is the code, the gradient goes to z unchanged.
        z_q = flat + (codes - flat).detach()
        probabilities = counts / counts.sum().clamp_min(1.0)
        entropy = -(probabilities * torch.log(probabilities.clamp_min(1e-10))).sum()
        return Quantized(
            z_q=rearrange(z_q, "(n s) d -> n d s", n=z.shape[0]).reshape(z.shape).to(z.dtype),
            indices=indices.view(z.shape[0], *spatial),
            commitment_loss=commitment,
            perplexity=entropy.exp(),
            usage=(counts > 0).float().mean(),
        )

    @torch.no_grad()
    def _random_vectors(self, flat: torch.Tensor, count: int) -> torch.Tensor:
        """`count` random rows of `flat` (with replacement when too few), equal on every rank."""
        picks = torch.randint(0, flat.shape[0], (count,), device=flat.device)
        chosen = flat[picks].contiguous()
        if _distributed():
            dist.broadcast(chosen, src=0)
        return chosen

    @torch.no_grad()
    def _initialise(self, flat: torch.Tensor) -> None:
        """Data-dependent init: codes from the first batch's encoder vectors."""
        self.embedding.copy_(self._random_vectors(flat, self.num_codes))
        self.ema_sum.copy_(self.embedding)
        self.ema_count.fill_(1.0)
        self.initialised.fill_(True)

    @torch.no_grad()
    def _ema_update(self, flat: torch.Tensor, indices: torch.Tensor,
                    counts: torch.Tensor) -> None:
        """One EMA step of counts and sums, Laplace smoothing, then dead-code restart."""
        sums = torch.zeros_like(self.ema_sum).index_add_(0, indices, flat)
        if _distributed():
            dist.all_reduce(counts)
            dist.all_reduce(sums)
        self.ema_count.mul_(self.decay).add_(counts, alpha=1.0 - self.decay)
        self.ema_sum.mul_(self.decay).add_(sums, alpha=1.0 - self.decay)
        total = self.ema_count.sum()
        smoothed = (self.ema_count + self.epsilon) / (total + self.num_codes * self.epsilon) * total
        self.embedding.copy_(self.ema_sum / smoothed.unsqueeze(1))
        dead = self.ema_count < self.restart_threshold
        n_dead = int(dead.sum())
        if n_dead:
            fresh = self._random_vectors(flat, n_dead)
            self.embedding[dead] = fresh
            self.ema_sum[dead] = fresh
            self.ema_count[dead] = 1.0
