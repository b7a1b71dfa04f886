"""CPU threads on a shared machine: `--threads auto` against fixed counts, idle and beside load.

    .venv/bin/python benchmarks/bench_threads.py [--quick] [--repeats 3] [--busy spin|matmul]

For each load (no other process, then one and two busy processes that this script starts and
stops itself) and each thread setting, a fresh Python process (OpenMP reads its settings once per
process) does what `mdiff-sample --model demo` and `mdiff-train ddpm` do:

- `sample`: the bundled demo model sampling volumes with DPM-Solver++ (the library call behind
  `mdiff-sample`, its own seconds per volume times the volumes);
- `train step`: the demo DDPM's U-Net taking training steps as the trainer takes them
  (`benchmarks/bench_unet.py`'s `_train_step`) on a batch of the demo's latents (median step).

Thread settings: `--threads 1`, `--threads 2` (and every usable core when there are more),
`--threads auto` (`diffusion_core.runtime.apply_threads`, as every command applies it), and
(not with --quick) PyTorch's own default, one thread per core whose waits spin, for comparison.
Each row prints the median over --repeats rounds (settings interleaved within a round) and auto's
time over the best fixed count (goal: at most 1.1 in every row). A busy process is a Python loop
spinning (`--busy spin`) or a numpy matmul loop on one thread (`--busy matmul`).

The workers run without OMP_NUM_THREADS and OMP_WAIT_POLICY, whatever this process has.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BUSY_CODE = {
    "spin": "while True: pass",
    "matmul": ("import numpy as np\na = np.random.rand(256, 256)\n"
               "while True: a @ a"),
}
SETTLE_S = 0.5  # a started busy process spins before anything is measured beside it
GOAL = 1.1
TASKS = ("sample", "train step")


@contextlib.contextmanager
def busy_processes(count: int, kind: str = "spin") -> Iterator[list[subprocess.Popen]]:
    """`count` processes keeping one core busy each, stopped (and reaped) on leaving."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1",
           "MKL_NUM_THREADS": "1"}
    procs: list[subprocess.Popen] = []
    try:
        for _ in range(count):
            procs.append(subprocess.Popen([sys.executable, "-c", BUSY_CODE[kind]], env=env,
                                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        if procs:
            time.sleep(SETTLE_S)
        yield procs
    finally:
        for proc in procs:
            proc.kill()
        for proc in procs:
            proc.wait()


def worker_env() -> dict[str, str]:
    """This environment less what would choose the workers' threads for them."""
    return {k: v for k, v in os.environ.items()
            if k not in ("OMP_NUM_THREADS", "OMP_WAIT_POLICY", "MKL_NUM_THREADS")}


def run_worker(threads: str, *, volumes: int, sample_steps: int, train_steps: int) -> dict:
    """One configuration in a fresh process: its JSON line as a dict."""
    command = [sys.executable, str(Path(__file__).resolve()), "--worker", threads,
               "--volumes", str(volumes), "--sample-steps", str(sample_steps),
               "--train-steps", str(train_steps)]
    out = subprocess.run(command, env=worker_env(), cwd=ROOT, capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError(f"worker --threads {threads} failed:\n{out.stderr[-2000:]}")
    return parse_worker_output(out.stdout)


def parse_worker_output(stdout: str) -> dict:
    """The worker's result: the last line of its stdout, one JSON object."""
    lines = [line for line in stdout.splitlines() if line.strip()]
    if not lines:
        raise RuntimeError("the worker printed nothing")
    result = json.loads(lines[-1])
    missing = {"threads", "sample", "train step"} - set(result)
    if missing:
        raise RuntimeError(f"the worker's result lacks {sorted(missing)}")
    return result


def worker(threads: str, volumes: int, sample_steps: int, train_steps: int) -> dict:
    """Apply `threads` as the commands do, then time sampling and DDPM training steps."""
    from diffusion_core.runtime import apply_threads, retain_freed_memory

    retain_freed_memory()  # as every command does
    chosen = None if threads == "default" else apply_threads(
        "auto" if threads == "auto" else int(threads))
    import tempfile

    import torch

    from diffusion_core.models import load_ddpm
    from diffusion_core.sampling import resolve_model, sample_folder

    with tempfile.TemporaryDirectory() as tmp:
        summary = sample_folder("demo", volumes, Path(tmp) / "samples", steps=sample_steps,
                                device="cpu", progress=False)
    sample_s = summary["seconds_per_volume"] * summary["written"]

    sys.path.insert(0, str(ROOT / "benchmarks"))
    from bench_unet import _train_step

    unet, _, info = load_ddpm(resolve_model("demo").ddpm)
    torch.manual_seed(0)
    x0 = torch.randn(4, *info.latent_shape)  # the demo's training batch
    step = _train_step(unet.train(), x0)
    step()  # warm-up: the optimiser's state, the allocator's blocks
    times = []
    for _ in range(train_steps):
        started = time.perf_counter()
        step()
        times.append(time.perf_counter() - started)
    return {"threads": chosen or torch.get_num_threads(), "requested": threads,
            "sample": sample_s, "train step": statistics.median(times)}


def settings(with_default: bool = True) -> list[str]:
    """The thread settings compared: fixed counts, auto, and PyTorch's default."""
    from diffusion_core.runtime import usable_cores

    fixed = sorted({1, 2, usable_cores()})
    return [*(str(n) for n in fixed), "auto", *(["default"] if with_default else [])]


def summarise(results: dict[str, list[dict]]) -> dict[str, dict[str, float]]:
    """Per task: the median seconds of each setting, and auto's over the best fixed count."""
    table: dict[str, dict[str, float]] = {}
    for task in TASKS:
        row = {name: statistics.median(r[task] for r in runs) for name, runs in results.items()}
        best = min(v for k, v in row.items() if k.isdigit())
        row["auto / best"] = row["auto"] / best
        table[task] = row
    return table


def format_row(load: int, task: str, row: dict[str, float], auto_threads: list[int]) -> str:
    """One printed line of the table."""
    cells = "  ".join(f"{name} {value:6.2f} s" for name, value in row.items()
                      if name != "auto / best")
    chose = "/".join(str(n) for n in sorted(set(auto_threads)))
    mark = "ok" if row["auto / best"] <= GOAL else "ABOVE GOAL"
    return (f"{load} busy  {task:10s}  {cells}  (auto chose {chose})  "
            f"auto/best {row['auto / best']:.2f} {mark}")


def _load() -> str:
    one, five, _ = os.getloadavg()
    return f"load average {one:.2f} (1 min), {five:.2f} (5 min), {os.cpu_count()} CPUs"


def main() -> None:
    """Run the comparison (or, with --worker, one configuration) and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="one round, one volume of 5 steps, 2 training steps, without "
                             "PyTorch's default (which a loaded machine slows tenfold)")
    parser.add_argument("--repeats", type=int, default=3, help="rounds (default 3)")
    parser.add_argument("--busy", choices=tuple(BUSY_CODE), default="spin")
    parser.add_argument("--loads", default="0,1,2", help="busy processes per row (default 0,1,2)")
    parser.add_argument("--worker", metavar="THREADS", help=argparse.SUPPRESS)
    parser.add_argument("--volumes", type=int, default=2, help=argparse.SUPPRESS)
    parser.add_argument("--sample-steps", type=int, default=20, help=argparse.SUPPRESS)
    parser.add_argument("--train-steps", type=int, default=5, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(args.worker, args.volumes, args.sample_steps, args.train_steps)))
        return
    size = dict(volumes=2, sample_steps=20, train_steps=5)
    if args.quick:
        args.repeats, size = 1, dict(volumes=1, sample_steps=5, train_steps=2)
    names = settings(with_default=not args.quick)
    print(f"{_load()}; {args.repeats} round(s), busy = {args.busy}; {size}", flush=True)
    for load in (int(n) for n in args.loads.split(",")):
        results: dict[str, list[dict]] = {name: [] for name in names}
        with busy_processes(load, args.busy):
            for _ in range(args.repeats):
                for name in names:
                    results[name].append(run_worker(name, **size))
        auto_threads = [r["threads"] for r in results["auto"]]
        for task, row in summarise(results).items():
            print(format_row(load, task, row, auto_threads), flush=True)
    print(f"after: {_load()}")


if __name__ == "__main__":
    main()
