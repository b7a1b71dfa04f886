"""The GPU check: what only a GPU shows, in one command of a few minutes on one H100.

    .venv/bin/python benchmarks/gpu_check.py [--json]     # on a CUDA machine
    .venv/bin/python benchmarks/gpu_check.py --tiny       # the same rows, tiny preset, CPU

Every network is built from its preset's settings (`vqgan_settings`, `ddpm_settings`) with random
weights: no trained model is needed. Rows:

- `train vqgan` / `train ddpm` at the `adni` and `mrnet` presets, fp32 and bf16 autocast: one
  warm-up step then timed steps of the library's own tasks (`VQGANTask` with its critics on,
  `DDPMTask`) through the trainer's `StepContext`, at the preset's batch size; seconds per step,
  peak GPU memory (`torch.cuda.max_memory_allocated`), whether the loss is finite. A step that
  runs out of GPU memory is a row that says so, not a crash.
- `decode whole` / `decode tiled`: a `lidc` latent decoded in one piece and in 2 x 2 exact tiles
  (`nn.tiled`, activations on the CPU): peak GPU memory, and the largest difference between them.
- `sample dpm`: DPM-Solver++ with 20 steps (`LatentDiffusionPipeline`) of one volume at each
  paper preset: seconds, peak memory, a finite volume.
- `ddp vqgan` / `ddp ddpm`: two steps under `torchrun --nproc-per-node N` with every GPU present
  (N = 1 runs torchrun without DDP, which needs two processes), then whether every rank holds
  the same weights.

`--tiny` computes every row at the tiny preset on the CPU (the DDP rows with two gloo
processes): what the tests run. Peak GPU memory is empty there; no figure is made up. The exit
status is 1 when a row failed (an error, a non-finite loss or volume, ranks out of step).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from diffusion_core.diffusion import LatentScale  # noqa: E402
from diffusion_core.nn.unet import UNet  # noqa: E402
from diffusion_core.nn.vqgan import VQGAN  # noqa: E402
from diffusion_core.presets import ddpm_settings, get_preset, vqgan_settings  # noqa: E402
from diffusion_core.sampling import LatentDiffusionPipeline  # noqa: E402
from diffusion_core.schedulers import DDPMScheduler  # noqa: E402
from diffusion_core.training.config import TrainerConfig  # noqa: E402
from diffusion_core.training.ddpm import DDPMTask  # noqa: E402
from diffusion_core.training.trainer import StepContext, Trainer, TrainingTask  # noqa: E402
from diffusion_core.training.vqgan import VQGANTask  # noqa: E402

TRAIN_PRESETS = ("adni", "mrnet")
PAPER_PRESETS = ("mrnet", "adni", "duke", "lidc")
DECODE_PRESET = "lidc"
PRECISIONS = ("fp32", "bf16")
SAMPLER, SAMPLER_STEPS = "dpm", 20
ROW_MARK = "GPU_CHECK_ROW "  # how a torchrun worker hands its rows back on stdout
DDP_TIMEOUT_S = 300


@dataclass
class Row:
    """One measured line of the check."""

    check: str
    preset: str
    precision: str = ""
    seconds: float | None = None  # per step for training, per volume for sampling
    peak_mib: float | None = None  # torch.cuda.max_memory_allocated; None on the CPU
    loss: float | None = None
    ok: bool = False
    note: str = ""


class _CheckTrainer(Trainer):
    """The trainer with its autocast chosen: bf16 (its own choice on CUDA) or none (fp32)."""

    def __init__(self, *args, precision: str, **kwargs) -> None:
        self.precision = precision
        super().__init__(*args, **kwargs)

    def autocast(self) -> AbstractContextManager:
        """bf16 autocast on this device, or fp32."""
        if self.precision == "bf16":
            return torch.autocast(self.device.type, dtype=torch.bfloat16)
        return nullcontext()


# --- measuring -------------------------------------------------------------------------------

def _start(device: torch.device) -> None:
    """Free what earlier rows left and reset the peak-memory counter."""
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _peak_mib(device: torch.device) -> float | None:
    if device.type != "cuda":
        return None
    return round(torch.cuda.max_memory_allocated(device) / 2**20, 1)


def _guarded(row: Row, device: torch.device, work: Callable[[Row], None]) -> Row:
    """Fill `row` by `work`; an error (out of GPU memory included) becomes the row's note."""
    _start(device)
    try:
        work(row)
    except torch.cuda.OutOfMemoryError:
        row.ok, row.note = False, "out of GPU memory"
    except Exception as err:  # noqa: BLE001 - one failed row must not hide the others
        row.ok, row.note = False, f"{type(err).__name__}: {str(err).splitlines()[0][:160]}"
    row.peak_mib = _peak_mib(device)
    return row


# --- the networks, from preset settings with random weights ----------------------------------

def _task(kind: str, preset: str) -> tuple[TrainingTask, Callable[[int], torch.Tensor], int]:
    """(task, batch of a given size in [-1, 1], the preset's batch size) of `kind`."""
    if kind == "vqgan":
        settings = vqgan_settings(preset)
        loss = replace(settings.loss, gan_start_step=0)  # every critic on: the heaviest step
        task = VQGANTask(VQGAN(settings.model), loss, settings.learning_rate)
        shape = (1, *get_preset(preset).shape)
        return task, lambda n: torch.rand(n, *shape) * 2 - 1, settings.batch_size
    settings = ddpm_settings(preset)
    latent = vqgan_settings(preset).model.latent_shape(get_preset(preset).shape)
    task = DDPMTask(UNet(settings.unet), DDPMScheduler(settings.scheduler), settings)
    return task, lambda n: torch.rand(n, *latent) * 2 - 1, settings.batch_size


def _trainer(task: TrainingTask, batch_size: int, device: str, precision: str,
             run_dir: Path) -> Trainer:
    config = TrainerConfig(steps=10**6, batch_size=batch_size, learning_rate=1e-4)
    return _CheckTrainer(task, config, run_dir, [], [], device=device, progress=False,
                         precision=precision)


def _steps(trainer: Trainer, task: TrainingTask, batches: list[torch.Tensor]) -> list[dict]:
    """One training step of `task` per batch, through the trainer's StepContext."""
    out = []
    for step, batch in enumerate(batches):
        metrics = task.train_step(batch.to(trainer.device), StepContext(trainer, step))
        task.after_step(step + 1)
        out.append(metrics)
    return out


# --- the rows --------------------------------------------------------------------------------

def train_row(kind: str, preset: str, precision: str, device: torch.device, repeats: int,
              run_dir: Path) -> Row:
    """Seconds per step, peak memory and the loss of `kind`'s training step."""
    def work(row: Row) -> None:
        torch.manual_seed(0)
        task, batch, size = _task(kind, preset)
        trainer = _trainer(task, size, str(device.type), precision, run_dir)
        _steps(trainer, task, [batch(size)])  # warm-up: kernels chosen, optimiser state made
        _sync(device)
        times = []
        for _ in range(repeats):
            data = [batch(size)]
            started = time.perf_counter()
            metrics = _steps(trainer, task, data)[-1]
            _sync(device)
            times.append(time.perf_counter() - started)
        row.seconds, row.loss = statistics.median(times), float(metrics["loss"])
        row.ok = bool(np.isfinite(row.loss))
        row.note = f"batch {size}"

    return _guarded(Row(f"train {kind}", preset, precision), device, work)


def decode_rows(preset: str, device: torch.device) -> list[Row]:
    """A latent of `preset` decoded whole and in 2 x 2 exact tiles: peak memory, difference."""
    torch.manual_seed(0)
    model = VQGAN(vqgan_settings(preset).model).to(device).eval()
    latent = model.config.latent_shape(get_preset(preset).shape)
    with torch.no_grad():
        z_q = model.quantize(torch.randn(1, *latent, device=device))
    images: dict[str, torch.Tensor] = {}

    def decode(tiles: tuple[int, int] | None) -> Callable[[Row], None]:
        def work(row: Row) -> None:
            started = time.perf_counter()
            with torch.no_grad():
                image = model.decode(z_q, tiles=tiles).float().cpu()
            _sync(device)
            row.seconds = time.perf_counter() - started
            images[row.check] = image
            row.ok = bool(torch.isfinite(image).all())
            if tiles is not None and "decode whole" in images:
                difference = float((image - images["decode whole"]).abs().max())
                row.note = f"largest difference from the whole decode {difference:.1e}"
        return work

    return [_guarded(Row("decode whole", preset, "fp32"), device, decode(None)),
            _guarded(Row("decode tiled", preset, "fp32"), device, decode((2, 2)))]


def sample_row(preset: str, device: torch.device) -> Row:
    """One volume of `preset` by DPM-Solver++ (20 steps, fewer where the schedule has fewer)."""
    def work(row: Row) -> None:
        torch.manual_seed(0)
        vqgan = VQGAN(vqgan_settings(preset).model)
        settings = ddpm_settings(preset)
        latent = vqgan.config.latent_shape(get_preset(preset).shape)
        pipeline = LatentDiffusionPipeline(vqgan, UNet(settings.unet), settings.scheduler,
                                           LatentScale(*vqgan.codebook.range()), latent,
                                           get_preset(preset), device)
        steps = pipeline.scheduler(SAMPLER, None).num_inference_steps
        started = time.perf_counter()
        volume = pipeline.sample([0], SAMPLER, steps)[0]
        _sync(device)
        row.seconds = time.perf_counter() - started
        row.ok = bool(np.isfinite(volume.intensity).all())
        row.note = f"{steps} steps, shape {'x'.join(map(str, volume.intensity.shape))}"

    return _guarded(Row(f"sample {SAMPLER}", preset, "fp32"), device, work)


# --- torchrun ----------------------------------------------------------------------------------

def ddp_rows(tiny: bool, processes: int) -> list[Row]:
    """The `ddp` rows, from `torchrun --nproc-per-node processes` running this script's worker;
    one failed row saying why when torchrun fails."""
    rows, failure = _torchrun(tiny, processes)
    return rows if failure is None else [Row("ddp", "", note=f"torchrun failed: {failure}")]


def _torchrun(tiny: bool, processes: int) -> tuple[list[Row], str | None]:
    """One torchrun of the worker: its rows, or why it failed."""
    torchrun = Path(sys.executable).with_name("torchrun")
    launcher = [str(torchrun)] if torchrun.exists() else [sys.executable, "-m",
                                                          "torch.distributed.run"]
    command = [*launcher, "--standalone", "--nproc-per-node", str(processes), __file__,
               "--ddp-worker", *(["--tiny"] if tiny else [])]
    env = dict(os.environ, OMP_NUM_THREADS="1") if tiny else None
    started = time.perf_counter()
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=DDP_TIMEOUT_S,
                              env=env, cwd=ROOT)
    except subprocess.TimeoutExpired:
        return [], f"it took over {DDP_TIMEOUT_S} s"
    rows = [Row(**json.loads(line[len(ROW_MARK):])) for line in done.stdout.splitlines()
            if line.startswith(ROW_MARK)]
    if done.returncode != 0 or not rows:
        lines = done.stderr.splitlines()
        # A rank's exception line ("[rank1]: module.Error: message"), else any error line.
        errors = ([m.group(1) for m in map(re.compile(r"^\[rank\d+\]: ([\w.]+: .*)").match,
                                            lines) if m]
                  or [line.strip() for line in lines if re.search(r"(Error|Exception)\b", line)]
                  or ["no error printed"])
        return [], f"exit {done.returncode}, {errors[-1][:200]}"
    for row in rows:
        row.note += f"; torchrun {time.perf_counter() - started:.0f} s in all"
    return rows, None


def ddp_worker(tiny: bool) -> None:
    """Under torchrun: two steps of each task on this rank's own data, then the ranks' weights
    compared; rank 0 prints the rows."""
    import torch.distributed as dist

    from diffusion_core import distributed

    preset = "tiny" if tiny else TRAIN_PRESETS[0]
    device = torch.device("cpu") if tiny else None
    rows = []
    for kind in ("vqgan", "ddpm"):
        with tempfile.TemporaryDirectory() as run_dir:
            torch.manual_seed(0)
            task, batch, size = _task(kind, preset)
            config = TrainerConfig(steps=10**6, batch_size=size, learning_rate=1e-4)
            # The trainer's own autocast: bf16 on CUDA, fp32 on the CPU.
            trainer = Trainer(task, config, Path(run_dir), [], [],
                              device="cpu" if tiny else "auto", progress=False)
            device = trainer.device
            precision = "bf16" if device.type == "cuda" else "fp32"
            torch.manual_seed(1 + distributed.rank())  # each rank its own batches
            _start(device)
            started = time.perf_counter()
            metrics = _steps(trainer, task, [batch(size), batch(size)])[-1]
            _sync(device)
            seconds = (time.perf_counter() - started) / 2
            module = task.modules()[kind if kind == "vqgan" else "unet"]
            total = float(sum(p.detach().double().sum() for p in module.parameters()))
            world = distributed.world_size()
            totals = [total] * world
            if distributed.active():
                dist.all_gather_object(totals, total)
            same = max(totals) - min(totals) <= 1e-9 * max(1.0, abs(total))
            ok = bool(np.isfinite(float(metrics["loss"]))) and same
            how = ("no DDP (one process)" if world == 1 else
                   f"DDP over {world} processes, ranks {'in step' if same else 'DIFFER'}")
            rows.append(Row(f"ddp {kind}", preset, precision, seconds, _peak_mib(device),
                            float(metrics["loss"]), ok, how))
    if distributed.rank() == 0:
        for row in rows:
            print(ROW_MARK + json.dumps(asdict(row)), flush=True)
    distributed.barrier()


# --- the command -----------------------------------------------------------------------------

def run_check(tiny: bool, ddp_processes: int | None = None) -> list[Row]:
    """Every row: the tiny preset on the CPU with `tiny`, else the paper's presets on CUDA."""
    device = torch.device("cpu") if tiny else torch.device("cuda", 0)
    train_presets = ("tiny",) if tiny else TRAIN_PRESETS
    repeats = 1 if tiny else 3
    rows = []
    with tempfile.TemporaryDirectory() as run_dir:
        for kind in ("vqgan", "ddpm"):
            for preset in train_presets:
                for precision in PRECISIONS:
                    rows.append(train_row(kind, preset, precision, device, repeats,
                                          Path(run_dir)))
    rows += decode_rows("tiny" if tiny else DECODE_PRESET, device)
    rows += [sample_row(preset, device) for preset in (("tiny",) if tiny else PAPER_PRESETS)]
    processes = ddp_processes or (2 if tiny else torch.cuda.device_count())
    rows += ddp_rows(tiny, processes)
    return rows


def _cell(value: float | None, digits: int) -> str:
    return "" if value is None else f"{value:.{digits}f}"


def format_table(rows: list[Row]) -> str:
    """The rows as a Markdown table."""
    lines = ["| check | preset | precision | seconds | peak GPU MiB | loss | ok | note |",
             "|---|---|---|---|---|---|---|---|"]
    for row in rows:
        lines.append(f"| {row.check} | {row.preset} | {row.precision} | "
                     f"{_cell(row.seconds, 3)} | {_cell(row.peak_mib, 0)} | "
                     f"{_cell(row.loss, 4)} | {'yes' if row.ok else 'NO'} | {row.note} |")
    return "\n".join(lines)


def environment(tiny: bool) -> dict:
    """What the figures were measured on."""
    cuda = torch.cuda.is_available() and not tiny
    return {"torch": torch.__version__, "device": torch.cuda.get_device_name(0) if cuda
            else "cpu", "gpus": torch.cuda.device_count() if cuda else 0,
            "cudnn_tf32": bool(torch.backends.cudnn.allow_tf32) if cuda else None,
            "tiny": tiny}


def main(argv: list[str] | None = None) -> int:
    """Run the check and print its table (or JSON); 1 if a row failed, 2 without a GPU."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tiny", action="store_true",
                        help="the tiny preset on the CPU (what the tests run)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of the table")
    parser.add_argument("--ddp-processes", type=int, metavar="N",
                        help="torchrun processes (default: every GPU; 2 with --tiny)")
    parser.add_argument("--ddp-worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.ddp_worker:
        ddp_worker(args.tiny)
        return 0
    if not args.tiny and not torch.cuda.is_available():
        print("gpu_check: torch sees no CUDA GPU; run it on a GPU machine, or pass --tiny for "
              "the CPU version", file=sys.stderr)
        return 2
    if args.tiny:
        torch.set_num_threads(1)  # tiny networks gain nothing from more; a busy machine loses
    started = time.perf_counter()
    rows = run_check(args.tiny, args.ddp_processes)
    report = {**environment(args.tiny), "seconds": round(time.perf_counter() - started, 1),
              "rows": [asdict(row) for row in rows]}
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print(f"{report['device']}, torch {report['torch']}, {report['seconds']} s in all")
        print(format_table(rows))
    return 0 if all(row.ok for row in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
