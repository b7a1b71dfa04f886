"""The three self-supervised losses of Tang et al. 2022 and their 1:1:1 sum (no networks here)."""

from __future__ import annotations

import torch
import torch.nn.functional as F  # noqa: N812 - the usual name

from evaluation.downstream.config import PretrainConfig


def rotation_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of the 4-class rotation prediction: logits (N, 4), labels (N,)."""
    return F.cross_entropy(logits.float(), labels)


def contrastive_loss(first: torch.Tensor, second: torch.Tensor,
                     temperature: float = 0.5) -> torch.Tensor:
    """NT-Xent (SimCLR) between two views' embeddings (N, F): MONAI's ContrastiveLoss."""
    from monai.losses import ContrastiveLoss

    return ContrastiveLoss(temperature=temperature)(first.float(), second.float())


def inpainting_loss(reconstruction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean absolute error of the reconstructed, unmasked volume."""
    return F.l1_loss(reconstruction.float(), target.float())


def ssl_losses(outputs: tuple[tuple[torch.Tensor, ...], tuple[torch.Tensor, ...]],
               rotations: tuple[torch.Tensor, torch.Tensor],
               targets: tuple[torch.Tensor, torch.Tensor],
               config: PretrainConfig) -> dict[str, torch.Tensor]:
    """The weighted total and each loss, over both views: `outputs` are `SSLModel`'s per view."""
    (rot_a, emb_a, rec_a), (rot_b, emb_b, rec_b) = outputs
    rotation = 0.5 * (rotation_loss(rot_a, rotations[0]) + rotation_loss(rot_b, rotations[1]))
    contrast = contrastive_loss(emb_a, emb_b, config.temperature)
    inpaint = 0.5 * (inpainting_loss(rec_a, targets[0]) + inpainting_loss(rec_b, targets[1]))
    total = (config.rotation_weight * rotation + config.contrastive_weight * contrast
             + config.inpainting_weight * inpaint)
    return {"loss": total, "rotation": rotation, "contrastive": contrast, "inpainting": inpaint}
