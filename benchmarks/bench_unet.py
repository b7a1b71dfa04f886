"""U-Net speed on the CPU: ours against the same network with explicit softmax attention.

    .venv/bin/python benchmarks/bench_unet.py [--threads 2] [--repeats 15] [--skip-paper]
                                              [--skip-convs] [--profile] [--stock-malloc]

- `width 16`: the authors' layout at base width 16 (3.0 M parameters) on a (1, 8, 16, 16, 16)
  latent (a 64^3 image at compression 4): one forward (a sampling step) and one training step
  at batch 1 as the trainer takes it (`DDPMTask.train_step`: the L1 loss at random t, then
  `StepContext.backward`'s finite check, gradient clipping and fused Adam). Ours (attention
  path "auto": SDPA, but short sequences written out on the CPU), the same weights with SDPA
  for every attention ("sdpa") and the reference (`attention_path("explicit")`:
  softmax(QK^T)V written out) run interleaved; each row gives the median and the fastest of
  --repeats, the median of "sdpa", and the median of the paired ratios ours / reference;
  with --threads 1 also the median CPU time per call, which a loaded machine inflates less.
  The authors' code took 95 ms and 0.27 s on an AVX2 machine of this kind (the goal, under half
  of theirs: 40 ms / 0.12 s; not done above 47 ms / 0.135 s).
- `fixed cost`: ours on a (1, 8, 1, 8, 8) latent, 1/128 of the voxels: what a call costs
  whatever the latent's size (operator dispatch, autograd's bookkeeping, Adam over 3 M weights).
- `mrnet`: one forward at width 64 on (1, 8, 8, 64, 64) (the authors': 1.67 s).
- `conv`: a (1, 3, 3) convolution as Conv3d against `SliceConv` (a Conv2d over slices), each on
  contiguous and channels-last-3d input, at the shapes of the width-16 U-Net.
- `--profile`: torch.profiler's busiest operators over three width-16 forwards.
- Memory: as the command-line tools do, the run first keeps freed memory in the process
  (`diffusion_core.runtime.retain_freed_memory`); `--stock-malloc` leaves glibc's defaults,
  which return and re-fault activations on every call. Each row gives the page faults per call.
The machine may be shared: the load average is printed before and after the run, with the time
of a 1024 x 1024 matmul to compare runs by.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import os
import resource
import statistics
import time
from collections.abc import Callable
from types import SimpleNamespace

import torch
from torch import nn

from diffusion_core.nn.blocks import SliceConv
from diffusion_core.nn.config import UNetConfig
from diffusion_core.nn.unet import UNet
from diffusion_core.runtime import retain_freed_memory
from diffusion_core.schedulers import DDPMScheduler, SchedulerConfig
from diffusion_core.training.config import DDPMSettings, TrainerConfig
from diffusion_core.training.ddpm import DDPMTask
from diffusion_core.training.trainer import StepContext

AUTHORS = {"width 16 forward": 0.095, "width 16 train step": 0.27, "mrnet forward": 1.67}
GOALS = {"width 16 forward": (0.040, 0.047), "width 16 train step": (0.12, 0.135)}


def _interleaved(fns: dict[str, Callable[[], object]], repeats: int,
                 warmup: int = 2) -> dict[str, list[float]]:
    """Seconds per call of each function, calls interleaved so that load changes hit all alike.

    Also the process CPU seconds per call, under "NAME cpu": with one thread, the time spent
    on the CPU, which a loaded machine inflates less than the wall clock.
    """
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    times: dict[str, list[float]] = {
        key: [] for name in fns for key in (name, f"{name} cpu", f"{name} faults")}
    for _ in range(repeats):
        for name, fn in fns.items():
            faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
            wall, cpu = time.perf_counter(), time.process_time()
            fn()
            times[f"{name} cpu"].append(time.process_time() - cpu)
            times[name].append(time.perf_counter() - wall)
            times[f"{name} faults"].append(
                resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults)
    return times


def _forward(model: UNet, x: torch.Tensor, t: torch.Tensor) -> Callable[[], object]:
    def run() -> None:
        with torch.no_grad():
            model(x, t)
    return run


def _train_step(model: UNet, x0: torch.Tensor) -> Callable[[], object]:
    """One step as the trainer takes it: `DDPMTask.train_step` (its loss, then
    `StepContext.backward`: finite check, backward, gradient clipping, its fused Adam), given
    the few things of a `Trainer` that a step reads."""
    settings = DDPMSettings(unet=model.config, scheduler=SchedulerConfig(), learning_rate=1e-4,
                            batch_size=x0.shape[0], steps=1)
    task = DDPMTask(model, DDPMScheduler(settings.scheduler), settings)
    trainer = SimpleNamespace(  # the trainer's defaults, on the CPU
        device=torch.device("cpu"), wrapped={"unet": model}, autocast=contextlib.nullcontext,
        optimizers=task.build_optimizers(),
        config=TrainerConfig(steps=1, batch_size=x0.shape[0], learning_rate=1e-4))
    context = StepContext(trainer, step=0)

    def run() -> None:
        task.train_step(x0, context)
    return run


def _row(label: str, times: dict[str, list[float]]) -> None:
    ours, ref, fused = times["ours"], times["reference"], times["sdpa"]
    ratio = statistics.median(a / b for a, b in zip(ours, ref, strict=True))
    line = (f"{label:20s} ours {statistics.median(ours) * 1e3:8.1f} ms (min {min(ours) * 1e3:7.1f})"
            f"   sdpa {statistics.median(fused) * 1e3:8.1f} ms"
            f"   reference {statistics.median(ref) * 1e3:8.1f} ms (min {min(ref) * 1e3:7.1f})"
            f"   ours/reference {ratio:.2f}"
            f"   page faults/call {statistics.median(times['ours faults']):.0f}")
    if torch.get_num_threads() == 1:
        line += (f"   cpu: ours {statistics.median(times['ours cpu']) * 1e3:.1f}, reference "
                 f"{statistics.median(times['reference cpu']) * 1e3:.1f} ms")
    if label in AUTHORS:
        line += f"   authors {AUTHORS[label] * 1e3:.0f} ms"
    if label in GOALS:
        goal, limit = GOALS[label]
        line += f" (goal {goal * 1e3:.0f}, limit {limit * 1e3:.0f})"
    print(line, flush=True)


def _variants(config: UNetConfig) -> dict[str, UNet]:
    """Ours ("auto" attention), "sdpa" everywhere and the reference, with the same weights."""
    torch.manual_seed(0)
    ours = UNet(config)
    return {"ours": ours, "sdpa": copy.deepcopy(ours).attention_path("sdpa"),
            "reference": copy.deepcopy(ours).attention_path("explicit")}


def bench_width16(repeats: int) -> None:
    """Forward and training step of the authors' layout at width 16."""
    models = _variants(UNetConfig(channels=8, base_channels=16))
    x, t = torch.randn(1, 8, 16, 16, 16), torch.tensor([150])
    _row("width 16 forward", _interleaved(
        {name: _forward(model, x, t) for name, model in models.items()}, repeats))
    _row("width 16 train step", _interleaved(
        {name: _train_step(model, x) for name, model in models.items()}, max(3, repeats // 2)))


def bench_fixed_cost(repeats: int) -> None:
    """Ours at width 16 on one 8 x 8 slice: the cost of a call apart from the latent's size."""
    torch.manual_seed(0)
    model = UNet(UNetConfig(channels=8, base_channels=16))
    x, t = torch.randn(1, 8, 1, 8, 8), torch.tensor([150])
    times = _interleaved({"forward": _forward(model, x, t), "train step": _train_step(model, x)},
                         repeats)
    cells = "   ".join(f"{name} {statistics.median(times[name]) * 1e3:6.1f} ms "
                       f"(min {min(times[name]) * 1e3:5.1f})" for name in ("forward", "train step"))
    print(f"{'fixed cost':20s} ours on (1, 8, 1, 8, 8): {cells}", flush=True)


def bench_mrnet(repeats: int) -> None:
    """Forward at the mrnet latent, width 64."""
    models = _variants(UNetConfig(channels=8, base_channels=64))
    x, t = torch.randn(1, 8, 8, 64, 64), torch.tensor([150])
    _row("mrnet forward", _interleaved(
        {name: _forward(model, x, t) for name, model in models.items()}, repeats, warmup=1))


def bench_convs(repeats: int) -> None:
    """A (1, 3, 3) convolution: Conv3d against SliceConv, contiguous and channels-last-3d."""
    for channels, size in ((16, 16), (32, 8), (64, 4), (128, 2)):
        x = torch.randn(1, channels, 16, size, size)
        slice_conv = SliceConv(channels, channels, 3, padding=1)
        conv3d = nn.Conv3d(channels, channels, (1, 3, 3), padding=(0, 1, 1))
        conv3d_last = copy.deepcopy(conv3d)
        conv3d_last.weight.data = conv3d.weight.data.contiguous(
            memory_format=torch.channels_last_3d)
        last = x.contiguous(memory_format=torch.channels_last_3d)
        with torch.no_grad():
            times = _interleaved({
                "Conv3d": lambda conv=conv3d, x=x: conv(x),
                "Conv3d channels-last": lambda conv=conv3d_last, x=last: conv(x),
                "SliceConv": lambda conv=slice_conv, x=x: conv(x),
                "SliceConv channels-last": lambda conv=slice_conv, x=last: conv(x),
            }, repeats)
        cells = "   ".join(f"{name} {statistics.median(v) * 1e3:6.2f}" for name, v in times.items()
                           if not name.endswith((" cpu", " faults")))
        print(f"conv {channels:3d} ch {size:2d}x{size:<2d} (ms)  {cells}", flush=True)


def profile_width16() -> None:
    """The busiest operators of three width-16 forwards, then of three training steps, each
    with the total time of the operators that do arithmetic (convolutions, matrix products,
    softmax, norms, element-wise maths, Adam) rather than dispatch, views or copies."""
    from torch.profiler import ProfilerActivity, profile

    model = _variants(UNetConfig(channels=8, base_channels=16))["ours"]
    x, t = torch.randn(1, 8, 16, 16, 16), torch.tensor([150])
    for label, run in (("forward", _forward(model, x, t)), ("train step", _train_step(model, x))):
        run()
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            for _ in range(3):
                run()
        events = prof.key_averages()
        print(events.table(sort_by="self_cpu_time_total", row_limit=15))
        total = sum(e.self_cpu_time_total for e in events) / 3e3
        arithmetic = sum(e.self_cpu_time_total for e in events if _is_arithmetic(e.key)) / 3e3
        print(f"{label}: {total:.1f} ms of operators per call (profiled), {arithmetic:.1f} ms of "
              f"them in arithmetic kernels", flush=True)


# The operators that compute rather than dispatch, view, allocate or copy (a profile's names).
ARITHMETIC = ("convolution", "conv2d", "mm", "bmm", "addmm", "baddbmm", "softmax", "norm",
              "silu", "gelu", "mul", "add", "sub", "div", "sum", "mean", "abs", "exp", "adam",
              "addcmul", "l1_loss", "sgn", "sin", "cos", "sqrt", "pow", "lerp")


# Operators that only hand a call on to the kernel that computes (their self time is dispatch).
CALL_WRAPPERS = ("aten::conv2d", "aten::convolution", "aten::_convolution", "aten::matmul",
                 "aten::linear")


def _is_arithmetic(name: str) -> bool:
    """Whether a profiled operator's name (aten::mm, aten::convolution_backward...) computes."""
    if not name.startswith("aten::") or name in CALL_WRAPPERS:
        return False
    words = name[len("aten::"):].strip("_").split("_")
    return any(word in ARITHMETIC for word in words) and "copy" not in words


def _load() -> str:
    one, five, _ = os.getloadavg()
    return f"load average {one:.2f} (1 min), {five:.2f} (5 min) on {os.cpu_count()} CPUs"


def _matmul_ms() -> float:
    a = torch.randn(1024, 1024)
    return statistics.median(_interleaved({"mm": lambda: a @ a}, 9)["mm"]) * 1e3


def main() -> None:
    """Print one line per measurement."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--skip-paper", action="store_true", help="no mrnet-size forward")
    parser.add_argument("--skip-convs", action="store_true")
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--stock-malloc", action="store_true",
                        help="leave glibc's malloc settings as they are (see the docstring)")
    args = parser.parse_args()
    retained = not args.stock_malloc and retain_freed_memory()
    torch.set_num_threads(args.threads)
    print(f"threads {args.threads}; {_load()}; 1024^2 matmul {_matmul_ms():.1f} ms; "
          f"freed memory {'retained' if retained else 'returned (stock malloc)'}", flush=True)
    bench_width16(args.repeats)
    bench_fixed_cost(args.repeats)
    if not args.skip_paper:
        bench_mrnet(max(2, args.repeats // 5))
    if not args.skip_convs:
        bench_convs(args.repeats)
    if args.profile:
        profile_width16()
    print(f"after: {_load()}")


if __name__ == "__main__":
    main()
