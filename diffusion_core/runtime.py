"""Process settings: the device a command runs on, its CPU threads, and malloc settings.

`resolve_device` is the one reading of every command's `--device auto|cpu|cuda`; it imports torch
when called, so importing this module stays torch-free.

`choose_threads` / `apply_threads`: every compute command's `--threads N|auto`. PyTorch's
default, one OpenMP thread per core, suits an idle machine only. OpenMP splits each operation
evenly and waits for its slowest thread, so a thread that has to share its core with another
busy process holds every operation back; and libgomp's threads spin while they wait, taking CPU
time from the very processes they wait for. On this project's 2-core machine, with other
processes keeping both cores busy, a training step of the demo U-Net took 15 times as long with
2 threads as with 1, and still 1.9 times as long once the waiting threads slept instead
(benchmarks/bench_threads.py measures the commands' own calls). So `auto` takes the cores this
process may use (its CPU affinity and cgroup quota) less the cores' worth that other processes
keep busy, measured from /proc/stat over the command's start-up (at least a tenth of a second),
and, where that leaves a core to others, OpenMP's waiting threads sleep
(`OMP_WAIT_POLICY=PASSIVE`, read once when torch loads its OpenMP runtime). On an idle machine
libgomp's spinning is kept: it is faster there, and a load that comes after the choice is then
not bounded.

`retain_freed_memory`: PyTorch's CPU tensors come from the C library's malloc. glibc hands
blocks above a (dynamic) threshold back to the operating system as soon as they are freed, and
trims the heap's free top just as eagerly, so every U-Net call maps its activations afresh and
pays a page fault per 4 KB touched: about 8,000 faults, a third of a width-16 forward's CPU time
on this machine (benchmarks/bench_unet.py, `--stock-malloc`). Keeping freed memory in the
process, as the CPU deployment guides do with jemalloc or tcmalloc, brings that to a few dozen.
The cost: the process keeps its peak heap instead of shrinking after it.
"""

from __future__ import annotations

import ctypes
import functools
import math
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

DEVICES = ("auto", "cpu", "cuda")


class DeviceError(ValueError):
    """A device that cannot be used; the message says what to ask for instead."""


def resolve_device(name: str) -> torch.device:
    """'auto' -> CUDA when available, else the CPU; 'cuda' without a GPU is a DeviceError.

    Under torchrun a CUDA device is this process's own GPU (LOCAL_RANK).
    """
    import torch

    if name not in DEVICES:
        raise DeviceError(f"unknown device {name!r}; choose auto, cpu or cuda")
    if name == "cuda" and not torch.cuda.is_available():
        raise DeviceError("--device cuda was asked for but torch sees no CUDA GPU; use "
                          "--device cpu or auto")
    if name == "cpu" or not torch.cuda.is_available():
        return torch.device("cpu")
    return torch.device("cuda", local_rank())


def local_rank() -> int:
    """This process's GPU index on its machine (torchrun's LOCAL_RANK; 0 without torchrun)."""
    return int(os.environ.get("LOCAL_RANK", "0"))

# glibc's mallopt parameters (malloc.h).
M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
TRIM_THRESHOLD = 1 << 30  # free heap top kept before it is given back: 1 GiB
MMAP_THRESHOLD = 256 << 20  # blocks from a private mapping only above 256 MiB


@functools.cache
def retain_freed_memory() -> bool:
    """Ask glibc's malloc to keep freed memory for reuse; False where the C library is not glibc.

    Idempotent, process-wide; the command-line tools call it before they start.
    """
    try:
        # glibc's own name: no library search (find_library runs ldconfig, ~7 ms at every start)
        libc = ctypes.CDLL("libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False  # musl, macOS, Windows: their allocators decide for themselves
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    return bool(mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD)
                and mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD))


# --- threads -------------------------------------------------------------------------------------

THREADS_AUTO = "auto"
# A core takes one more thread only when at most this much of it is busy: a thread that shares its
# core costs every operation far more than a missing thread does.
BUSY_TOLERANCE = 0.3
MIN_WINDOW = 0.1  # seconds of /proc/stat behind a choice (10 ms clock ticks: 10 per core)
BASELINE_MAX_AGE = 5.0  # seconds: an older start-of-window snapshot is replaced by a fresh one
PROC_STAT = Path("/proc/stat")
PROC_CGROUP = Path("/proc/self/cgroup")
CGROUP_ROOT = Path("/sys/fs/cgroup")
IDLE_FIELDS = (3, 4)  # idle and iowait among a /proc/stat cpu line's counters


@dataclass(frozen=True)
class CpuSnapshot:
    """Cumulative CPU seconds at one moment: busy and total on the usable cores, and our own."""

    at: float
    busy: float
    total: float
    own: float


def _cpu_counters(cpus: frozenset[int]) -> tuple[float, float] | None:
    """(busy, total) clock ticks of `cpus` from /proc/stat; None where it cannot be read."""
    try:
        lines = PROC_STAT.read_text().splitlines()
    except OSError:
        return None
    busy = total = 0
    for line in lines:
        name, *fields = line.split()
        if not (name.startswith("cpu") and name[3:].isdigit() and int(name[3:]) in cpus):
            continue
        ticks = [int(f) for f in fields[:8]]  # user .. steal; guest time is already in user
        total += sum(ticks)
        busy += sum(ticks) - sum(ticks[i] for i in IDLE_FIELDS)
    return (busy, total) if total else None


def _snapshot() -> CpuSnapshot | None:
    """The counters now, in seconds; None without /proc/stat (not Linux)."""
    counters = _cpu_counters(_affinity())
    if counters is None:
        return None
    tick = os.sysconf("SC_CLK_TCK")
    times = os.times()
    return CpuSnapshot(time.monotonic(), counters[0] / tick, counters[1] / tick,
                       times.user + times.system)


def _affinity() -> frozenset[int]:
    """The CPUs this process may run on."""
    try:
        return frozenset(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return frozenset(range(os.cpu_count() or 1))


def _cgroup_quota() -> float | None:
    """Cores' worth of CPU time the cgroup quota allows per period (cgroup v2 or v1); None: no
    quota."""
    try:
        entries = dict(line.split(":", 2)[1:] for line in
                       PROC_CGROUP.read_text().splitlines())
    except (OSError, ValueError):
        return None
    candidates = []
    if "" in entries:
        candidates.append((CGROUP_ROOT / entries[""].lstrip("/") / "cpu.max", None))
    for controllers, path in entries.items():
        if "cpu" in controllers.split(","):
            folder = CGROUP_ROOT / controllers / path.lstrip("/")
            candidates.append((folder / "cpu.cfs_quota_us", folder / "cpu.cfs_period_us"))
    for quota_file, period_file in candidates:
        try:
            fields = quota_file.read_text().split()
            if period_file is not None:
                fields.append(period_file.read_text().strip())
        except OSError:
            continue
        if len(fields) == 2 and fields[0] not in ("max", "-1"):
            return int(fields[0]) / int(fields[1])
    return None


def usable_cores() -> int:
    """How many cores this process may use: its CPU affinity, capped by a cgroup CPU quota."""
    cores = len(_affinity())
    quota = _cgroup_quota()
    return max(1, min(cores, math.ceil(quota))) if quota else cores


_baseline: CpuSnapshot | None = _snapshot()  # the window of a command starts when it does


def busy_cores(window: float = MIN_WINDOW) -> float:
    """Cores' worth of the usable cores that other processes keep busy, from /proc/stat over at
    least `window` seconds (since the command started, when that was recent), less this process's
    own use; the 1-minute load average where /proc/stat is missing, 0 where that is too."""
    global _baseline
    start = _baseline
    if start is None or time.monotonic() - start.at > BASELINE_MAX_AGE:
        start = _snapshot()
    if start is None:
        try:
            return os.getloadavg()[0]
        except (AttributeError, OSError):
            return 0.0
    time.sleep(max(0.0, start.at + window - time.monotonic()))
    end = _snapshot()
    _baseline = end
    if end is None or end.total <= start.total:
        return 0.0
    others = (end.busy - start.busy - (end.own - start.own)) / (end.at - start.at)
    return min(max(others, 0.0), float(len(_affinity())))  # 10 ms ticks: a little noise


def _env_threads() -> int | None:
    """OMP_NUM_THREADS when it is one positive number (the user's, or torchrun's 1 per
    process)."""
    text = os.environ.get("OMP_NUM_THREADS", "").strip()
    return int(text) if text.isdigit() and int(text) > 0 else None


def choose_threads(requested: int | str = THREADS_AUTO, *, cores: int | None = None,
                   busy: float | None = None) -> int:
    """The CPU threads to compute with: `requested` when it is a number; for 'auto',
    OMP_NUM_THREADS when set, else the usable cores not busy with other processes (at least 1).

    `cores` and `busy` replace the measured usable cores and busy cores (for tests).
    """
    if requested != THREADS_AUTO:
        if not isinstance(requested, int) or requested < 1:
            raise ValueError(f"threads must be a positive integer or 'auto', not {requested!r}")
        return requested
    if (from_env := _env_threads()) is not None:
        return from_env
    cores = usable_cores() if cores is None else cores
    busy = busy_cores() if busy is None else busy
    return max(1, min(cores, math.floor(cores - busy + BUSY_TOLERANCE)))


def apply_threads(requested: int | str = THREADS_AUTO) -> int:
    """Choose the thread count, make torch use it, and return it.

    Called before torch is first imported with fewer threads than usable cores, it also sets
    OMP_WAIT_POLICY=PASSIVE (unless the environment sets a policy), so idle OpenMP threads
    sleep instead of spinning on cores that other processes need. With every core (an idle
    machine) libgomp's spinning is kept: sleeping threads made a 2-thread demo sample 1.2-1.4x
    slower there (benchmarks/README.md, threads). Later, only the count can change.
    """
    threads = choose_threads(requested)
    if "torch" not in sys.modules and threads < usable_cores():
        os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    import torch

    torch.set_num_threads(threads)
    return threads
