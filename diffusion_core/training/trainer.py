"""The one training loop every model shares; a model plugs in as a `TrainingTask`.

The trainer owns what is the same for the VQ-GAN, the DDPM and the baselines: the device, bf16
autocast on CUDA (fp32 on the CPU), torchrun / DistributedDataParallel, the data order, the
learning rate (constant, as the authors'), gradient clipping, the NaN guard, validation, atomic
checkpoints (every `checkpoint_every` steps, every `checkpoint_minutes`, and on SIGINT or SIGTERM
after the step under way: `stopping`), exact resume, the progress bar and `log.csv` (each row
written when it is logged). A task owns its networks, optimisers and losses.

Exact resume: the batch of every step is a pure function of (seed, step) (a stream of seeded
per-epoch permutations), the learning rate is the same at every step, and a checkpoint holds
every module, optimiser, the task's extra state and the torch RNG states. Validation runs under
`torch.random.fork_rng` in eval mode, so it changes nothing the next step sees. Hence N steps,
a resume, and M more give the same weights as N + M steps in one go.
"""

from __future__ import annotations

import csv
import math
import os
import sys
import time
from abc import ABC, abstractmethod
from collections.abc import Iterator
from contextlib import AbstractContextManager, nullcontext
from dataclasses import replace
from pathlib import Path

import torch
from torch import nn
from torch.utils.data import Dataset as TorchDataset

from diffusion_core import checkpoints, distributed, run_folder
from diffusion_core.atomic_files import file_hash
from diffusion_core.run_folder import BEST, LATEST, LOG_NAME, RunInfo
from diffusion_core.runtime import resolve_device
from diffusion_core.training.config import TrainerConfig
from diffusion_core.training.stopping import (
    CheckpointClock,
    StopSignals,
    TrainingInterrupted,
    agree,
)


class TrainingError(Exception):
    """Training cannot go on; the message says why in one sentence."""


class RunSetupError(ValueError):
    """A user mistake in how a run was asked for (device, run folder, resume, data)."""


class NonFiniteLoss(TrainingError):
    """A loss became NaN or infinite."""


def seed_run(seed: int) -> None:
    """Seed torch before a run builds its networks, so a fresh run is fixed by its --seed.

    A resumed run is not re-seeded in effect: its weights and RNG states come from the checkpoint.
    """
    torch.manual_seed(seed)


class StepContext:
    """What a task's `train_step` may use: wrapped modules, autocast and the guarded backward."""

    def __init__(self, trainer: Trainer, step: int) -> None:
        self._trainer = trainer
        self.step = step
        self.device = trainer.device

    def module(self, name: str) -> nn.Module:
        """The module as it should be called for a gradient step (DDP-wrapped when distributed)."""
        return self._trainer.wrapped[name]

    def autocast(self) -> AbstractContextManager:
        """bf16 autocast on CUDA; nothing on the CPU."""
        return self._trainer.autocast()

    def backward(self, loss: torch.Tensor, optimizer: str, name: str = "loss") -> None:
        """Check `loss` is finite, backpropagate, clip, step `optimizer` and clear its grads."""
        if not bool(torch.isfinite(loss.detach())):
            raise NonFiniteLoss(f"step {self.step + 1}: the {name} became "
                                f"{float(loss.detach())}")
        opt = self._trainer.optimizers[optimizer]
        loss.backward()
        params = [p for group in opt.param_groups for p in group["params"] if p.grad is not None]
        if self._trainer.config.grad_clip > 0 and params:
            torch.nn.utils.clip_grad_norm_(params, self._trainer.config.grad_clip)
        opt.step()
        opt.zero_grad(set_to_none=True)


class TrainingTask(ABC):
    """A model plugged into the trainer: its modules, optimisers, step and validation."""

    kind: str  # "vqgan", "ddpm", ...
    log_columns: tuple[str, ...]  # metric names train_step and validate may return
    # Batches of `batch_size` each step's batch holds, one after the other (a WGAN's critic
    # takes several updates per step, each on its own real volumes).
    batches_per_step: int = 1

    @abstractmethod
    def modules(self) -> dict[str, nn.Module]:
        """Every module whose state is trained (all are saved in checkpoints)."""

    @abstractmethod
    def build_optimizers(self) -> dict[str, torch.optim.Optimizer]:
        """One optimiser per independently stepped group; `lr` is reset every step."""

    @abstractmethod
    def train_step(self, batch: torch.Tensor, ctx: StepContext) -> dict[str, float]:
        """One optimisation step on `batch`; returns metrics to log."""

    @abstractmethod
    def validate(self, batches: Iterator[torch.Tensor], device: torch.device) -> dict[str, float]:
        """Metrics on the validation data; must include `val_loss` (lower is better)."""

    @abstractmethod
    def sampling_weights(self) -> dict[str, torch.Tensor]:
        """The weights `model.safetensors` holds (what sampling or encoding needs)."""

    def extra_state(self) -> dict:
        """Task state beyond modules and optimisers (e.g. EMA weights), saved in checkpoints."""
        return {}

    def load_extra_state(self, state: dict) -> None:  # noqa: B027 - an optional hook
        """Restore `extra_state()`."""

    def after_step(self, step: int) -> None:  # noqa: B027 - an optional hook
        """Called after every optimisation step with the number of steps done (EMA updates)."""


def batch_indices(step: int, size: int, batch_size: int, seed: int,
                  world_size: int = 1, rank: int = 0) -> list[tuple[int, int]]:
    """(epoch, index) pairs of this rank's batch at `step`: a stream of seeded permutations."""
    if size < 1:
        raise RunSetupError("the training split is empty: the PREP_DIR needs more scans")
    start = (step * world_size + rank) * batch_size
    out = []
    cached: dict[int, list[int]] = {}
    for position in range(start, start + batch_size):
        epoch, offset = divmod(position, size)
        if epoch not in cached:
            generator = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
            cached[epoch] = torch.randperm(size, generator=generator).tolist()
        out.append((epoch, cached[epoch][offset]))
    return out


def _stack(dataset: TorchDataset, pairs: list[tuple[int, int]]) -> torch.Tensor:
    items = []
    for epoch, index in pairs:
        if hasattr(dataset, "set_epoch"):
            dataset.set_epoch(epoch)
        items.append(dataset[index])
    return torch.stack(items)


class Trainer:
    """Runs a `TrainingTask` over a dataset into a run folder (its layout: docs/models.md)."""

    def __init__(self, task: TrainingTask, config: TrainerConfig, run_dir: str | os.PathLike,
                 train_data: TorchDataset, val_data: TorchDataset, *, device: str = "auto",
                 run_info: RunInfo | None = None, progress: bool = True) -> None:
        self.task, self.config = task, config
        self.run_dir = Path(run_dir)
        self.train_data, self.val_data = train_data, val_data
        distributed.setup()
        self.device = resolve_device(device)
        self.world_size, self.rank = distributed.world_size(), distributed.rank()
        self.run_info = run_info  # None: no run.json (a benchmark that never saves)
        self.progress = progress and self.rank == 0
        for module in task.modules().values():
            module.to(self.device)
        self.wrapped = {name: distributed.wrap(module, self.device)
                        for name, module in task.modules().items()}
        self.optimizers = task.build_optimizers()
        self.step = 0
        self.best_val = math.inf

    # --- helpers -----------------------------------------------------------------------------

    def autocast(self) -> AbstractContextManager:
        """bf16 on CUDA (fp16's narrower range overflows); fp32 on the CPU."""
        if self.device.type == "cuda":
            return torch.autocast("cuda", dtype=torch.bfloat16)
        return nullcontext()

    def _set_learning_rate(self) -> float:
        rate = self.config.learning_rate
        for opt in self.optimizers.values():
            for group in opt.param_groups:
                group["lr"] = rate * group.get("lr_scale", 1.0)
        return rate

    def _batch(self, step: int) -> torch.Tensor:
        pairs = batch_indices(step, len(self.train_data),
                              self.config.batch_size * self.task.batches_per_step,
                              self.config.seed, self.world_size, self.rank)
        return _stack(self.train_data, pairs).to(self.device, non_blocking=True)

    def _val_batches(self) -> Iterator[torch.Tensor]:
        for start in range(0, len(self.val_data), self.config.batch_size):
            stop = min(start + self.config.batch_size, len(self.val_data))
            yield torch.stack([self.val_data[i] for i in range(start, stop)]).to(self.device)

    # --- state -------------------------------------------------------------------------------

    def _weights(self) -> dict[str, torch.Tensor]:
        return {f"{name}.{key}": value for name, module in self.task.modules().items()
                for key, value in module.state_dict().items()}

    def _state(self) -> dict:
        state = {
            "step": self.step,
            "best_val": self.best_val,
            "optimizers": {name: opt.state_dict() for name, opt in self.optimizers.items()},
            "task": self.task.extra_state(),
            "rng_cpu": torch.get_rng_state(),
        }
        if self.device.type == "cuda":
            state["rng_cuda"] = torch.cuda.get_rng_state(self.device)
        return state

    def save(self, name: str) -> None:
        """Write checkpoint `name`, model.safetensors and run.json (rank 0 only).

        run.json's weights_step says which step model.safetensors holds: this one, until
        `export_best` puts the best step's weights there; its weights_hash is their sha256,
        which every load checks.
        """
        if self.rank == 0:
            checkpoints.save_checkpoint(self.run_dir, name, self._weights(), self._state())
            if self.run_info is not None:
                self._write_sampling_weights(replace(self.run_info, steps_done=self.step,
                                                     trainer=self.config), self.step)
        distributed.barrier()

    def _write_sampling_weights(self, info: RunInfo, step: int) -> None:
        """model.safetensors from the task's weights now, then run.json with its step and hash.

        In that order: a crash between the two leaves weights that do not match run.json's
        hash, which a load refuses, never weights loaded under another step's record.
        """
        weights = self.run_dir / run_folder.WEIGHTS_NAME
        checkpoints.save_weights(weights, self.task.sampling_weights())
        run_folder.write_run_info(self.run_dir, replace(info, weights_step=step,
                                                        weights_hash=file_hash(weights)))

    def restore(self, name: str) -> int:
        """Load checkpoint `name`'s modules and task state (not the optimisers); its step."""
        folder = run_folder.checkpoint_folder(self.run_dir, name)
        if folder is None:
            raise RunSetupError(f"{self.run_dir} has no {name}")
        state = self._load_modules(folder)
        self.task.load_extra_state(state.get("task", {}))
        return int(state["step"])

    def _load_modules(self, folder: Path) -> dict:
        """Load every module's weights from a checkpoint folder; returns its training state."""
        weights, state = checkpoints.load_checkpoint(folder)
        for name, module in self.task.modules().items():
            prefix = f"{name}."
            part = {k[len(prefix):]: v for k, v in weights.items() if k.startswith(prefix)}
            checkpoints.load_into(module, part, folder / run_folder.WEIGHTS_NAME)
        leftover = [k for k in weights if k.split(".", 1)[0] not in self.task.modules()]
        if leftover:
            raise run_folder.CheckpointError(f"{folder} holds modules this model does not have "
                                              f"({leftover[0]}); it belongs to another run")
        return state

    def export_best(self) -> int | None:
        """Write model.safetensors from checkpoint_best (the lowest validation loss); its step.

        The run's latest state stays in checkpoint_latest for --resume; run.json records which
        step the sampling weights come from.
        """
        if self.rank != 0 or run_folder.checkpoint_folder(self.run_dir, BEST) is None:
            return None
        step = self.restore(BEST)
        self._write_sampling_weights(run_folder.read_run_info(self.run_dir), step)
        return step

    def resume(self) -> int:
        """Load checkpoint_latest; returns the step it was written at."""
        folder = run_folder.checkpoint_folder(self.run_dir, LATEST)
        if folder is None:
            raise RunSetupError(f"{self.run_dir} has no checkpoint to resume from; start without "
                                f"--resume")
        state = self._load_modules(folder)
        try:
            for name, opt in self.optimizers.items():
                opt.load_state_dict(state["optimizers"][name])
            self.task.load_extra_state(state.get("task", {}))
            torch.set_rng_state(state["rng_cpu"])
            if self.device.type == "cuda" and "rng_cuda" in state:
                torch.cuda.set_rng_state(state["rng_cuda"], self.device)
            self.step = int(state["step"])
            self.best_val = float(state["best_val"])
        except (KeyError, ValueError, TypeError, RuntimeError) as err:
            raise run_folder.CheckpointError(f"{folder} does not hold this model's training "
                                              f"state ({err})") from None
        if self.step > self.config.steps:
            raise RunSetupError(f"the checkpoint is at step {self.step}, past --steps "
                                f"{self.config.steps}; ask for more steps")
        return self.step

    # --- logging -----------------------------------------------------------------------------

    @property
    def _columns(self) -> list[str]:
        return ["step", "lr", "seconds", *self.task.log_columns]

    def _truncate_log(self, step: int) -> None:
        """Drop log rows written after the checkpoint a resume starts from."""
        path = self.run_dir / LOG_NAME
        if self.rank != 0 or not path.is_file():
            return
        with open(path, newline="") as handle:
            rows = [row for row in csv.DictReader(handle) if int(row["step"]) <= step]
        self._write_log(rows, mode="w")

    def _write_log(self, rows: list[dict], mode: str = "a") -> None:
        path = self.run_dir / LOG_NAME
        new = mode == "w" or not path.is_file()
        with open(path, mode, newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=self._columns, extrasaction="ignore")
            if new:
                writer.writeheader()
            writer.writerows(rows)

    # --- the loop ----------------------------------------------------------------------------

    def validate(self) -> dict[str, float]:
        """Validation metrics, leaving RNG state and training mode as they were."""
        modules = self.task.modules().values()
        modes = [m.training for m in modules]
        with torch.random.fork_rng(devices=[self.device] if self.device.type == "cuda" else []):
            for m in modules:
                m.eval()
            try:
                with torch.no_grad(), self.autocast():
                    metrics = self.task.validate(self._val_batches(), self.device)
            finally:
                for m, mode in zip(modules, modes, strict=True):
                    m.train(mode)
        return metrics

    def fit(self) -> dict[str, float]:
        """Train from `self.step` to `config.steps`; returns the last logged row.

        SIGINT or SIGTERM end it after the current step with a checkpoint (`TrainingInterrupted`,
        see `stopping`); a checkpoint is also written every `checkpoint_minutes`.
        """
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self._truncate_log(self.step)  # rows a stop without a checkpoint left behind
        bar = self._progress_bar()
        for module in self.task.modules().values():
            module.train()
        last: dict[str, float] = {}
        started = time.perf_counter()
        clock = CheckpointClock(self.config.checkpoint_minutes)
        try:
            with StopSignals(repeat_stops_at_once=not distributed.active()) as signals:
                while self.step < self.config.steps:
                    last = self._train_one_step(started, bar) or last
                    signum, due = agree(signals.signum, clock.due(), self.device)
                    if (signum or due or self.step % self.config.checkpoint_every == 0
                            or self.step == self.config.steps):
                        self.save(LATEST)
                        clock.reset()
                    if signum and self.step < self.config.steps:
                        raise TrainingInterrupted(signum, self.step, self.config.steps,
                                                  self.run_dir)
        except NonFiniteLoss as err:
            kept = run_folder.checkpoint_folder(self.run_dir, LATEST)
            where = (f"the last good checkpoint is kept in {kept}" if kept else
                     "no checkpoint had been written yet")
            raise TrainingError(f"{err}; training stopped and {where} (try a lower learning "
                                f"rate, or --resume to continue from it)") from None
        finally:
            if bar is not None:
                bar.close()
        return last

    def _progress_bar(self):
        """A tqdm bar on stderr (rank 0, when asked for), or None."""
        if not self.progress:
            return None
        from tqdm.auto import tqdm
        return tqdm(total=self.config.steps, initial=self.step, desc=f"train {self.task.kind}",
                    unit="step", file=sys.stderr, dynamic_ncols=True)

    def _train_one_step(self, started: float, bar) -> dict[str, float] | None:
        """One optimisation step, its validation when due, its log row (written at once) and
        checkpoint_best; returns the row, or None when none was due."""
        cfg = self.config
        step = self.step
        rate = self._set_learning_rate()
        metrics = self.task.train_step(self._batch(step), StepContext(self, step))
        self.step = step + 1
        self.task.after_step(self.step)
        done = self.step == cfg.steps
        if (self.step % cfg.val_every == 0 or done) and len(self.val_data):
            metrics.update(self.validate())
        row = None
        if self.step % cfg.log_every == 0 or done or "val_loss" in metrics:
            row = {"step": self.step, "lr": rate,
                   "seconds": round(time.perf_counter() - started, 3), **metrics}
            if self.rank == 0:
                self._write_log([row])
            if bar is not None:
                bar.set_postfix({k: f"{v:.4g}" for k, v in metrics.items()
                                 if k in self.task.log_columns[:4]})
        if bar is not None:
            bar.update(1)
        if "val_loss" in metrics and metrics["val_loss"] < self.best_val:
            self.best_val = float(metrics["val_loss"])
            self.save(BEST)
        return row

    def run(self, *, resume: bool, weights: str = "best") -> dict[str, float]:
        """Resume if asked, train to the end, then keep the best or the latest weights."""
        if weights not in ("best", "latest"):
            raise RunSetupError(f"weights must be best or latest, not {weights!r}")
        if resume:
            self.resume()
        last = self.fit()
        if weights == "best":
            self.export_best()
        return last
