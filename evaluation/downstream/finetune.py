"""Fine-tuning MONAI's SwinUNETR for segmentation, with or without the pre-trained encoder.

Both arms of a cell are built the same way: torch is seeded with the cell's seed, the network is
built (so its decoder starts from the same tensors), and only then, for the pre-trained arm, the
encoder (`swinViT`) is replaced by the pre-trained weights, strictly (a missing, leftover or
mis-shaped tensor is an error, never silently skipped). The shared trainer then runs the same
schedule on the same batches (a pure function of the seed and step) with the same augmentation
(left-right flips drawn from the seeded global stream): Dice + cross-entropy, AdamW, constant
learning rate, the last step's weights.

Evaluation: each test case is segmented whole (argmax over two classes), cropped back from its
padding, and scored by Dice and the 95th-percentile Hausdorff distance in mm (HD95; NaN when
the prediction is empty).
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn

from diffusion_core import checkpoints, run_folder
from diffusion_core.training.config import TrainerConfig
from diffusion_core.training.trainer import StepContext, Trainer, TrainingTask, seed_run
from evaluation.downstream.config import FinetuneConfig, SwinConfig
from evaluation.downstream.data import Case, crop_from, pad_to
from evaluation.downstream.pretrain import ArrayDataset
from evaluation.downstream.ssl_head import build_swin_unetr


def build_segmenter(swin: SwinConfig, seed: int,
                    encoder: dict[str, torch.Tensor] | None = None,
                    source: Path | None = None) -> nn.Module:
    """SwinUNETR initialised from `seed`, its encoder then loaded from `encoder` when given."""
    seed_run(seed)
    net = build_swin_unetr(swin)
    if encoder is not None:
        checkpoints.load_into(net.swinViT, encoder, source or Path("the pre-trained encoder"))
    return net


def flip_left_right(batch: torch.Tensor) -> torch.Tensor:
    """Each item of (N, C, D, H, W) flipped along W with probability 1/2 (global torch stream)."""
    flips = torch.rand(batch.shape[0]) < 0.5
    return torch.stack([item.flip(-1) if bool(f) else item for item, f in zip(batch, flips,
                                                                               strict=True)])


class SegmentationTask(TrainingTask):
    """SwinUNETR trained with Dice + cross-entropy on (image, mask) batches (N, 2, D, H, W)."""

    kind = "segmentation"
    log_columns = ("loss", "val_loss")

    def __init__(self, net: nn.Module, config: FinetuneConfig) -> None:
        from monai.losses import DiceCELoss

        self.net, self.config = net, config
        self.loss = DiceCELoss(to_onehot_y=True, softmax=True)

    def modules(self) -> dict[str, nn.Module]:
        """The segmentation network."""
        return {"net": self.net}

    def build_optimizers(self) -> dict[str, torch.optim.Optimizer]:
        """AdamW."""
        return {"net": torch.optim.AdamW(self.net.parameters(), lr=self.config.learning_rate,
                                         weight_decay=self.config.weight_decay)}

    def train_step(self, batch: torch.Tensor, ctx: StepContext) -> dict[str, float]:
        """One step on a flipped batch: channel 0 the image, channel 1 the mask."""
        if self.config.flip:
            batch = flip_left_right(batch)
        with ctx.autocast():
            logits = ctx.module("net")(batch[:, :1])
        loss = self.loss(logits.float(), batch[:, 1:].round())
        ctx.backward(loss, "net")
        return {"loss": float(loss.detach())}

    def validate(self, batches: Iterator[torch.Tensor], device: torch.device) -> dict[str, float]:
        """The loss on held-out pairs (cells train without them: the schedule is fixed)."""
        losses = [float(self.loss(self.net(b[:, :1]).float(), b[:, 1:].round())) for b in batches]
        return {"val_loss": float(np.mean(losses)) if losses else float("nan")}

    def sampling_weights(self) -> dict[str, torch.Tensor]:
        """The whole network."""
        return self.net.state_dict()


def pairs_array(cases: Sequence[Case], shape: tuple[int, ...]) -> np.ndarray:
    """Cases as one (n, 2, *shape) float32 array: padded image and mask."""
    return np.stack([np.stack([pad_to(c.image, shape), pad_to(c.mask.astype(np.float32), shape)])
                     for c in cases]).astype(np.float32)


def finetune(net: nn.Module, cases: Sequence[Case], shape: tuple[int, ...],
             config: FinetuneConfig, seed: int, run_dir: Path, *,
             device: str = "auto") -> nn.Module:
    """Train `net` on the cases in `run_dir` (resuming a checkpoint there); the trained net."""
    task = SegmentationTask(net, config)
    trainer_config = TrainerConfig(steps=config.steps, batch_size=config.batch_size,
                                   learning_rate=config.learning_rate, log_every=10,
                                   val_every=config.steps, checkpoint_every=config.steps,
                                   seed=seed, checkpoint_minutes=5.0)
    empty = ArrayDataset(np.zeros((0, 2, *shape), dtype=np.float32))
    trainer = Trainer(task, trainer_config, run_dir, ArrayDataset(pairs_array(cases, shape)),
                      empty, device=device, progress=False)
    resume = run_folder.checkpoint_folder(run_dir, run_folder.LATEST) is not None
    trainer.run(resume=resume, weights="latest")
    return net


@torch.no_grad()
def segment(net: nn.Module, case: Case, shape: tuple[int, ...]) -> np.ndarray:
    """The network's boolean mask of one case, on the case's own grid."""
    device = next(net.parameters()).device
    net.eval()
    image = torch.from_numpy(pad_to(case.image, shape))[None, None].to(device)
    label = net(image).argmax(dim=1)[0].cpu().numpy().astype(bool)
    return crop_from(label, case.image.shape)


def dice(prediction: np.ndarray, truth: np.ndarray) -> float:
    """Dice overlap of two boolean masks (1.0 when both are empty)."""
    total = int(prediction.sum()) + int(truth.sum())
    return 1.0 if total == 0 else 2.0 * int((prediction & truth).sum()) / total


def hd95(prediction: np.ndarray, truth: np.ndarray, spacing: Sequence[float]) -> float:
    """95th-percentile symmetric Hausdorff distance in mm; NaN when either mask is empty."""
    from monai.metrics import compute_hausdorff_distance

    if not prediction.any() or not truth.any():
        return float("nan")
    onehot = [torch.from_numpy(np.stack([~m, m]))[None] for m in (prediction, truth)]
    with warnings.catch_warnings():  # MONAI 1.6 warns about an argument of its own internals
        warnings.simplefilter("ignore", FutureWarning)
        value = compute_hausdorff_distance(onehot[0], onehot[1], include_background=False,
                                           percentile=95, spacing=[float(s) for s in spacing])
    return float(value.item())


def evaluate(net: nn.Module, cases: Sequence[Case],
             shape: tuple[int, ...]) -> tuple[float, float, list[np.ndarray]]:
    """Mean Dice and mean HD95 (over cases where it is defined) of the test cases; the masks."""
    masks = [segment(net, case, shape) for case in cases]
    dices = [dice(m, c.mask) for m, c in zip(masks, cases, strict=True)]
    distances = [hd95(m, c.mask, c.spacing) for m, c in zip(masks, cases, strict=True)]
    finite = [d for d in distances if np.isfinite(d)]
    return float(np.mean(dices)), float(np.mean(finite)) if finite else float("nan"), masks
