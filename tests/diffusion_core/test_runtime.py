"""The process settings: the one `--device` reading, the `--threads` policy and how every compute
command applies it, and freed blocks kept in the process instead of being re-faulted."""

from __future__ import annotations

import importlib
import os
import platform
import subprocess
import sys

import pytest

from diffusion_core import runtime
from diffusion_core.runtime import (
    CpuSnapshot,
    DeviceError,
    choose_threads,
    resolve_device,
    retain_freed_memory,
    usable_cores,
)

# Allocates, touches and frees a 40 MB block 20 times and prints the page faults it cost. Above
# 32 MB (the most glibc's dynamic threshold reaches) stock malloc maps every block afresh.
FAULTS = """
import resource, sys
from diffusion_core.runtime import retain_freed_memory
if sys.argv[1] == "retain":
    assert retain_freed_memory()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(20):
    block = bytearray(40 << 20)
    del block
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""

glibc = pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="a glibc setting")


@glibc
def test_retain_freed_memory_is_accepted_and_idempotent() -> None:
    assert retain_freed_memory() is True
    assert retain_freed_memory() is True


@glibc
def test_freed_blocks_are_reused_not_refaulted() -> None:
    def faults(mode: str) -> int:
        out = subprocess.run([sys.executable, "-c", FAULTS, mode], capture_output=True,
                             text=True, check=True)
        return int(out.stdout)

    stock, retained = faults("stock"), faults("retain")
    # Stock: ~10,000 faults a block (one per 4 KB page), 200,000 in all; retained: the first.
    assert stock > 100_000
    assert retained < stock / 10


def test_resolve_device_gives_a_torch_device_and_one_sentence_for_a_mistake(monkeypatch) -> None:
    import torch

    assert resolve_device("cpu") == torch.device("cpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device("auto") == torch.device("cpu")
    with pytest.raises(DeviceError, match="--device cuda was asked for but torch sees no CUDA "
                                          "GPU; use --device cpu or auto"):
        resolve_device("cuda")
    with pytest.raises(ValueError, match="unknown device 'gpu'; choose auto, cpu or cuda"):
        resolve_device("gpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setenv("LOCAL_RANK", "1")  # under torchrun: this process's own GPU
    assert resolve_device("auto") == resolve_device("cuda") == torch.device("cuda", 1)


def test_importing_runtime_imports_no_torch() -> None:
    code = "import sys, diffusion_core.runtime; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "False"


# --- threads ---------------------------------------------------------------------------------

@pytest.mark.parametrize(("cores", "busy", "threads"), [
    (2, 0.0, 2), (2, 0.2, 2), (2, 0.5, 1), (2, 1.0, 1), (2, 2.0, 1), (2, 3.5, 1),
    (1, 0.0, 1), (16, 3.2, 13), (16, 0.0, 16), (8, 7.9, 1),
])
def test_auto_takes_the_cores_other_processes_leave_idle(monkeypatch, cores, busy, threads):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    assert choose_threads("auto", cores=cores, busy=busy) == threads


def test_a_number_is_taken_as_asked_and_auto_honours_omp_num_threads(monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    assert choose_threads("auto", cores=2, busy=0.0) == 3  # the user's (or torchrun's) choice
    assert choose_threads(1, cores=2, busy=0.0) == 1
    assert choose_threads(4, cores=2, busy=2.0) == 4
    monkeypatch.setenv("OMP_NUM_THREADS", "4,2")  # nested levels: not one number, measured
    assert choose_threads("auto", cores=2, busy=0.0) == 2
    for bad in (0, -1, "2", 1.5):
        with pytest.raises(ValueError, match="positive integer or 'auto'"):
            choose_threads(bad)


def test_usable_cores_are_the_affinity_capped_by_a_cgroup_quota(monkeypatch):
    monkeypatch.setattr(runtime.os, "sched_getaffinity", lambda pid: {0, 3, 5}, raising=False)
    monkeypatch.setattr(runtime, "_cgroup_quota", lambda: None)
    assert usable_cores() == 3
    monkeypatch.setattr(runtime, "_cgroup_quota", lambda: 1.5)
    assert usable_cores() == 2
    monkeypatch.setattr(runtime, "_cgroup_quota", lambda: 0.2)
    assert usable_cores() == 1


@pytest.mark.parametrize(("cgroup", "files", "quota"), [
    ("0::/job\n", {"job/cpu.max": "150000 100000\n"}, 1.5),
    ("0::/job\n", {"job/cpu.max": "max 100000\n"}, None),
    ("4:memory:/x\n2:cpu,cpuacct:/job\n",
     {"cpu,cpuacct/job/cpu.cfs_quota_us": "200000\n",
      "cpu,cpuacct/job/cpu.cfs_period_us": "100000\n"}, 2.0),
    ("2:cpu,cpuacct:/\n", {"cpu,cpuacct/cpu.cfs_quota_us": "-1\n",
                           "cpu,cpuacct/cpu.cfs_period_us": "100000\n"}, None),
    ("0::/job\n", {}, None),
])
def test_cgroup_quota_v2_and_v1(tmp_path, monkeypatch, cgroup, files, quota):
    (tmp_path / "self_cgroup").write_text(cgroup)
    for name, text in files.items():
        (tmp_path / "fs" / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "fs" / name).write_text(text)
    monkeypatch.setattr(runtime, "PROC_CGROUP", tmp_path / "self_cgroup")
    monkeypatch.setattr(runtime, "CGROUP_ROOT", tmp_path / "fs")
    assert runtime._cgroup_quota() == quota


def test_proc_stat_counts_only_the_usable_cpus_and_idle_as_idle(tmp_path, monkeypatch):
    # user nice system idle iowait irq softirq steal guest guest_nice
    (tmp_path / "stat").write_text(
        "cpu  60 0 20 100 10 0 0 0 0 0\n"
        "cpu0 10 0 10 50 5 0 0 0 0 0\n"
        "cpu1 50 0 10 50 5 0 0 5 0 0\n"
        "intr 12345\n")
    monkeypatch.setattr(runtime, "PROC_STAT", tmp_path / "stat")
    assert runtime._cpu_counters(frozenset({1})) == (65, 120)
    assert runtime._cpu_counters(frozenset({0, 1})) == (85, 195)
    assert runtime._cpu_counters(frozenset({7})) is None
    monkeypatch.setattr(runtime, "PROC_STAT", tmp_path / "missing")
    assert runtime._cpu_counters(frozenset({0})) is None


def test_busy_cores_are_the_others_use_over_the_window(monkeypatch):
    """Busy CPU time less this process's own, per second of the window, at most the cores."""
    snapshots = iter([CpuSnapshot(at=10.0, busy=5.0, total=20.0, own=1.0),
                      CpuSnapshot(at=10.2, busy=5.35, total=20.4, own=1.15)])
    slept = []
    monkeypatch.setattr(runtime, "_baseline", None)
    monkeypatch.setattr(runtime, "_snapshot", lambda: next(snapshots))
    monkeypatch.setattr(runtime.time, "monotonic", lambda: 10.05)
    monkeypatch.setattr(runtime.time, "sleep", slept.append)
    # 0.35 s busy in 0.2 s on 2 cores, 0.15 s of it ours: one other core busy
    assert runtime.busy_cores(window=0.1) == pytest.approx(1.0)
    assert slept == [pytest.approx(0.05)]  # the rest of the window
    assert runtime._baseline.at == 10.2  # the next choice starts where this one ended


def test_busy_cores_fall_back_to_the_load_average_without_proc_stat(monkeypatch):
    monkeypatch.setattr(runtime, "_baseline", None)
    monkeypatch.setattr(runtime, "_snapshot", lambda: None)
    monkeypatch.setattr(runtime.os, "getloadavg", lambda: (1.5, 1.0, 0.5), raising=False)
    assert runtime.busy_cores() == 1.5


def test_busy_cores_measured_here_are_within_the_usable_cores():
    assert 0.0 <= runtime.busy_cores() <= len(runtime._affinity())


APPLY = """
import os, sys
from diffusion_core.runtime import apply_threads
print(apply_threads(sys.argv[1] if sys.argv[1] == "auto" else int(sys.argv[1])))
import torch
print(torch.get_num_threads(), os.environ.get("OMP_WAIT_POLICY"))
"""


CORES = runtime.usable_cores()
ONE = "1 PASSIVE" if CORES > 1 else "1 None"  # a single core leaves nothing to others


@pytest.mark.parametrize(("env", "requested", "expected"), [
    ({}, "1", ["1", ONE]),
    ({"OMP_WAIT_POLICY": "ACTIVE"}, "1", ["1", "1 ACTIVE"]),  # the user's policy stays
    ({"OMP_NUM_THREADS": "1"}, "auto", ["1", ONE]),
    ({}, str(CORES), [str(CORES), f"{CORES} None"]),  # every core: libgomp's spinning stays
])
def test_apply_threads_before_torch_loads_sets_the_count_and_a_passive_wait(env, requested,
                                                                            expected):
    clean = {k: v for k, v in os.environ.items()
             if k not in ("OMP_NUM_THREADS", "OMP_WAIT_POLICY")}
    out = subprocess.run([sys.executable, "-c", APPLY, requested], env={**clean, **env},
                         capture_output=True, text=True, check=True)
    assert out.stdout.split("\n")[:2] == expected


@pytest.fixture()
def torch_threads():
    """Two threads before the test (so that 1 is a change), torch's count restored after it."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(2)
    yield torch
    torch.set_num_threads(before)


def _recording(seen: list[int], status: int = 0):
    def record(*args, **kwargs):
        import torch

        seen.append(torch.get_num_threads())
        return status
    return record


@pytest.mark.parametrize(("module", "argv"), [
    ("diffusion_core.cli.sample", ["--model", "demo", "--n", "1", "--out", "s"]),
    ("diffusion_core.cli.train", ["ddpm", "--preset", "tiny", "--data", "p", "--out", "r",
                                  "--vqgan", "v"]),
    ("diffusion_core.cli.train", ["vqgan", "--preset", "tiny", "--data", "p", "--out", "r"]),
    ("reader_app.cli.demo", []),
])
def test_threads_reach_torch_in_every_single_command(torch_threads, monkeypatch, module, argv):
    """`--threads 1` is what torch computes with by the time the command's work starts."""
    cli = importlib.import_module(module)
    seen: list[int] = []
    monkeypatch.setattr(cli, "_run", _recording(seen))
    assert cli.main([*argv, "--threads", "1"]) == 0
    assert seen == [1]


@pytest.mark.parametrize("argv", [
    ["msssim", "a", "b"], ["recon", "--models", "r", "--data", "p"],
    ["memorization", "--train", "p", "--samples", "s"], ["c2st", "a", "b"],
])
def test_threads_reach_torch_in_every_computing_eval_subcommand(torch_threads, monkeypatch,
                                                                 argv):
    from evaluation.cli import eval as eval_cli

    seen: list[int] = []
    monkeypatch.setattr(eval_cli.SUBCOMMANDS[argv[0]], "run", _recording(seen))
    assert eval_cli.main([*argv, "--threads", "1"]) == 0
    assert seen == [1]


def test_only_the_eval_subcommands_that_compute_offer_threads(capsys):
    from evaluation.cli import eval as eval_cli

    for name in eval_cli.SUBCOMMANDS:
        with pytest.raises(SystemExit):
            eval_cli.main([name, "--help"])
        assert ("--threads" in capsys.readouterr().out) is (name in eval_cli.THREADED), name


def test_threads_reach_torch_in_study_create_from_a_model(torch_threads, monkeypatch, tmp_path):
    import studies.create
    from studies.cli import study
    from studies.study import StudyError

    seen: list[int] = []

    def refuse(*args, **kwargs):
        _recording(seen)()
        raise StudyError("stopped here")
    monkeypatch.setattr(studies.create, "create_study_from_model", refuse)
    argv = ["create", "--out", str(tmp_path / "s"), "--model", "demo", "--n", "2"]
    assert study.main([*argv, "--threads", "1"]) == 2
    assert seen == [1]


@pytest.mark.parametrize("bad", ["0", "two", "-1"])
def test_a_bad_threads_value_is_a_usage_error(bad, capsys):
    from diffusion_core.cli import sample

    with pytest.raises(SystemExit) as stop:
        sample.main(["--model", "demo", "--n", "1", "--out", "s", "--threads", bad])
    assert stop.value.code == 2
    assert f"expected a positive integer or auto, got {bad!r}" in capsys.readouterr().err
