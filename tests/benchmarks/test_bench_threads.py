"""benchmarks/bench_threads.py: its busy processes stop, its workers apply the thread setting
asked for and report in the form the table reads; no timing is checked."""

from __future__ import annotations

import importlib.util
import json
import os
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_threads.py"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("bench_threads", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("kind", ["spin", "matmul"])
def test_busy_processes_run_inside_the_block_and_are_gone_after_it(bench, kind):
    with bench.busy_processes(2, kind) as procs:
        assert len(procs) == 2
        assert all(proc.poll() is None for proc in procs)
        pids = [proc.pid for proc in procs]
    assert all(proc.returncode is not None for proc in procs)
    for pid in pids:  # reaped, not left as zombies
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


def test_busy_processes_are_stopped_when_the_block_fails(bench):
    with pytest.raises(RuntimeError), bench.busy_processes(1) as procs:
        raise RuntimeError("a worker failed")
    assert procs[0].returncode is not None


def test_no_busy_process_means_no_wait(bench, monkeypatch):
    monkeypatch.setattr(bench.time, "sleep", lambda s: pytest.fail("slept"))
    with bench.busy_processes(0) as procs:
        assert procs == []


def test_workers_choose_their_threads_themselves(bench, monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    monkeypatch.setenv("OMP_WAIT_POLICY", "ACTIVE")
    env = bench.worker_env()
    assert "OMP_NUM_THREADS" not in env and "OMP_WAIT_POLICY" not in env


def test_worker_output_is_its_last_json_line(bench):
    line = json.dumps({"threads": 1, "requested": "1", "sample": 0.5, "train step": 0.1})
    assert bench.parse_worker_output(f"a progress note\n{line}\n")["threads"] == 1
    with pytest.raises(RuntimeError, match="printed nothing"):
        bench.parse_worker_output("\n")
    with pytest.raises(RuntimeError, match="lacks"):
        bench.parse_worker_output(json.dumps({"threads": 1}))


def test_table_row_divides_auto_by_the_best_fixed_count(bench):
    def run(threads, sample, train):
        return {"threads": threads, "sample": sample, "train step": train}

    results = {"1": [run(1, 4.0, 1.0), run(1, 5.0, 1.2), run(1, 4.5, 1.1)],
               "2": [run(2, 7.0, 0.8)], "auto": [run(1, 4.6, 1.0)],
               "default": [run(2, 2.0, 0.1)]}  # PyTorch's default is shown, never "best"
    table = bench.summarise(results)
    assert table["sample"]["auto / best"] == pytest.approx(4.6 / 4.5)
    assert table["train step"]["auto / best"] == pytest.approx(1.0 / 0.8)
    assert bench.format_row(1, "sample", table["sample"], [1]).endswith("1.02 ok")
    line = bench.format_row(1, "train step", table["train step"], [1, 2, 1])
    assert "(auto chose 1/2)" in line and line.endswith("1.25 ABOVE GOAL")


def test_the_smallest_configuration_runs_in_a_fresh_process(bench):
    result = bench.run_worker("1", volumes=1, sample_steps=1, train_steps=1)
    assert result["threads"] == 1 and result["requested"] == "1"
    assert result["sample"] > 0 and result["train step"] > 0
