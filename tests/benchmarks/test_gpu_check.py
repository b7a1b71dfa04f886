"""benchmarks/gpu_check.py: its tiny version computes every row on the CPU, with finite losses."""

from __future__ import annotations

import importlib.util
import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
import torch

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "gpu_check.py"
ROWS = {("train vqgan", "fp32"), ("train vqgan", "bf16"), ("train ddpm", "fp32"),
        ("train ddpm", "bf16"), ("decode whole", "fp32"), ("decode tiled", "fp32"),
        ("sample dpm", "fp32"), ("ddp vqgan", "fp32"), ("ddp ddpm", "fp32")}


@pytest.fixture(scope="module")
def check():
    spec = importlib.util.spec_from_file_location("gpu_check", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules["gpu_check"] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    yield module
    sys.modules.pop("gpu_check", None)


@pytest.fixture(scope="module")
def tiny_report():
    done = subprocess.run([sys.executable, str(SCRIPT), "--tiny", "--json"], capture_output=True,
                          text=True, timeout=600)
    assert done.returncode in (0, 1), done.stdout + done.stderr
    report = json.loads(done.stdout)
    assert done.returncode == (0 if all(r["ok"] for r in report["rows"]) else 1)
    return report


def _cpu_bf16_nan(row: dict) -> bool:
    """The one failure the tiny check may meet: under the CPU's bf16 autocast (GroupNorm in bf16,
    unlike CUDA's) the tiny VQ-GAN's critics turn NaN in about 1 run of 50; the trainer itself
    never autocasts on the CPU."""
    return (row["check"], row["precision"]) == ("train vqgan", "bf16") and \
        "NonFiniteLoss" in row["note"]


def test_the_tiny_check_computes_every_row(tiny_report):
    rows = tiny_report["rows"]
    assert {(r["check"], r["precision"]) for r in rows} == ROWS and len(rows) == len(ROWS)
    assert all(r["preset"] == "tiny" and (r["ok"] or _cpu_bf16_nan(r)) for r in rows), rows
    computed = [r for r in rows if not _cpu_bf16_nan(r)]
    assert all(r["seconds"] is not None and r["seconds"] > 0 for r in computed)
    assert all(r["peak_mib"] is None for r in rows)  # no GPU: no memory figure is made up
    losses = [r["loss"] for r in computed if r["check"].startswith(("train", "ddp"))]
    assert len(losses) >= 5 and all(math.isfinite(loss) for loss in losses)
    ddp = [r for r in rows if r["check"].startswith("ddp")]
    assert all("DDP over 2 processes, ranks in step" in r["note"] for r in ddp)
    tiled = next(r for r in rows if r["check"] == "decode tiled")
    assert float(tiled["note"].rsplit(" ", 1)[1]) < 1e-4  # the exact tiles match the whole
    assert tiny_report["device"] == "cpu" and tiny_report["tiny"] is True


def test_the_table_has_a_line_per_row(check, tiny_report):
    rows = [check.Row(**r) for r in tiny_report["rows"]]
    lines = check.format_table(rows).splitlines()
    assert len(lines) == 2 + len(rows)
    assert all(line.count("|") == 9 for line in lines)  # no cell breaks the table
    assert lines[2].startswith("| train vqgan | tiny | fp32 |")


def test_a_row_that_runs_out_of_memory_says_so(check):
    def work(row):
        raise torch.cuda.OutOfMemoryError("CUDA out of memory")

    row = check._guarded(check.Row("train ddpm", "mrnet", "fp32"), torch.device("cpu"), work)
    assert not row.ok and row.note == "out of GPU memory"


@pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU is present")
def test_without_a_gpu_the_full_check_says_to_use_tiny(check, capsys):
    assert check.main([]) == 2
    assert "--tiny" in capsys.readouterr().err


def test_a_failed_torchrun_is_a_row_naming_the_ranks_error(check, monkeypatch):
    stderr = ("[rank1]: Traceback (most recent call last):\n"
              "[rank1]:   File \"gpu_check.py\", line 1, in <module>\n"
              "[rank1]: diffusion_core.training.trainer.NonFiniteLoss: step 2: the loss became "
              "nan\ntorch.distributed.elastic.multiprocessing.errors.ChildFailedError:\n")
    monkeypatch.setattr(check.subprocess, "run", lambda *a, **k: subprocess.CompletedProcess(
        a, 1, stdout="", stderr=stderr))
    rows = check.ddp_rows(True, 2)
    assert len(rows) == 1 and not rows[0].ok
    assert rows[0].note == ("torchrun failed: exit 1, diffusion_core.training.trainer."
                            "NonFiniteLoss: step 2: the loss became nan")
