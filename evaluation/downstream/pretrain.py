"""Self-supervised pre-training of the SwinUNETR encoder, run by the shared trainer.

`PretrainTask` plugs `SSLModel` and the three losses into `diffusion_core.training.trainer`,
which brings the device choice, bf16 autocast on CUDA, gradient clipping, the NaN guard, atomic
checkpoints, SIGINT/SIGTERM stops and exact resume. Its folder:

    PRETRAIN/
      checkpoint_latest/ (checkpoint_best/)   the trainer's, for resuming
      log.csv                                 loss, rotation, contrastive, inpainting per step
      encoder.safetensors                     the encoder's weights (`swinViT.*` of SwinUNETR)

One deviation from Tang et al.: the learning rate is constant (the trainer's), not warmup-cosine.
A tenth of the volumes (at most 16) is held out for the validation loss when there are ten or
more.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.utils.data import Dataset

from diffusion_core import checkpoints, run_folder
from diffusion_core.atomic_files import read_json
from diffusion_core.training.config import TrainerConfig
from diffusion_core.training.trainer import StepContext, Trainer, TrainingTask, seed_run
from evaluation.downstream.config import PretrainConfig, SwinConfig
from evaluation.downstream.ssl_head import SSLModel
from evaluation.downstream.ssl_losses import ssl_losses
from evaluation.downstream.views import make_views

ENCODER_NAME = "encoder.safetensors"
LOSSES = ("loss", "rotation", "contrastive", "inpainting")


class ArrayDataset(Dataset):
    """Rows of an (n, C, ...) or (n, ...) float32 array as tensors with a channel axis."""

    def __init__(self, array: np.ndarray) -> None:
        self.array = array

    def __len__(self) -> int:
        return len(self.array)

    def __getitem__(self, index: int) -> torch.Tensor:
        item = torch.from_numpy(np.ascontiguousarray(self.array[index]))
        return item if item.ndim == 4 else item.unsqueeze(0)


class PretrainTask(TrainingTask):
    """The SSL model, AdamW, and the 1:1:1 sum of rotation, contrastive and inpainting losses."""

    kind = "ssl"
    log_columns = (*LOSSES, "val_loss")

    def __init__(self, swin: SwinConfig, config: PretrainConfig) -> None:
        self.config = config
        self.model = SSLModel(swin, config.contrastive_dim)

    def modules(self) -> dict[str, nn.Module]:
        """The SSL model (encoder and heads)."""
        return {"ssl": self.model}

    def build_optimizers(self) -> dict[str, torch.optim.Optimizer]:
        """AdamW with the configured weight decay."""
        return {"ssl": torch.optim.AdamW(self.model.parameters(), lr=self.config.learning_rate,
                                         weight_decay=self.config.weight_decay)}

    def _losses(self, model: nn.Module, batch: torch.Tensor) -> dict[str, torch.Tensor]:
        views = make_views(batch, self.config.mask_fraction)
        outputs = (model(views.first), model(views.second))
        return ssl_losses(outputs, (views.first_rotation, views.second_rotation),
                          (views.first_target, views.second_target), self.config)

    def train_step(self, batch: torch.Tensor, ctx: StepContext) -> dict[str, float]:
        """Two views of every volume, the three losses, one AdamW step."""
        with ctx.autocast():
            losses = self._losses(ctx.module("ssl"), batch)
        ctx.backward(losses["loss"], "ssl")
        return {name: float(value.detach()) for name, value in losses.items()}

    def validate(self, batches: Iterator[torch.Tensor], device: torch.device) -> dict[str, float]:
        """The mean total loss over the held-out volumes (views drawn under forked RNG)."""
        totals = [float(self._losses(self.model, batch)["loss"]) for batch in batches
                  if len(batch) > 1]
        return {"val_loss": float(np.mean(totals)) if totals else float("nan")}

    def sampling_weights(self) -> dict[str, torch.Tensor]:
        """The encoder's weights, the part fine-tuning starts from."""
        return self.model.encoder.state_dict()


def split_volumes(volumes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(training, validation): a tenth (2 to 16) held out when there are 10 or more."""
    held = min(16, max(2, len(volumes) // 10)) if len(volumes) >= 10 else 0
    return volumes[:len(volumes) - held], volumes[len(volumes) - held:]


def pretrain(volumes: np.ndarray, run_dir: Path, swin: SwinConfig, config: PretrainConfig, *,
             device: str = "auto", progress: bool = True) -> Path:
    """Pre-train on (n, D, H, W) volumes into `run_dir`, resuming what is there; the encoder file.

    A finished run (its encoder file written at the last step) is not trained again.
    """
    run_dir.mkdir(parents=True, exist_ok=True)
    done = finished_encoder(run_dir, config)
    if done is not None:
        return done
    latest = run_folder.checkpoint_folder(run_dir, run_folder.LATEST)
    seed_run(config.seed)
    task = PretrainTask(swin, config)
    train, val = split_volumes(volumes)
    trainer_config = TrainerConfig(steps=config.steps, batch_size=config.batch_size,
                                   learning_rate=config.learning_rate, log_every=5,
                                   val_every=max(1, config.steps // 5),
                                   checkpoint_every=max(1, min(50, config.steps)),
                                   seed=config.seed, checkpoint_minutes=5.0)
    trainer = Trainer(task, trainer_config, run_dir, ArrayDataset(train), ArrayDataset(val),
                      device=device, progress=progress)
    trainer.run(resume=latest is not None, weights="latest")
    encoder = run_dir / ENCODER_NAME
    checkpoints.save_weights(encoder, task.sampling_weights())
    return encoder


def finished_encoder(run_dir: Path, config: PretrainConfig) -> Path | None:
    """The encoder file of a pre-training that reached its last step; None otherwise."""
    encoder = run_dir / ENCODER_NAME
    latest = run_folder.checkpoint_folder(run_dir, run_folder.LATEST)
    if not encoder.is_file() or latest is None:
        return None
    step = read_json(latest / run_folder.CHECKPOINT_MANIFEST, "checkpoint").get("step", 0)
    return encoder if int(step) == config.steps else None


def load_encoder(path: Path) -> dict[str, torch.Tensor]:
    """The encoder weights a pre-training wrote (CheckpointError when damaged)."""
    return checkpoints.load_weights(path)
