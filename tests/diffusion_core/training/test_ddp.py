"""Two processes under torchrun (gloo, CPU): one codebook on both ranks and one checkpoint."""

from __future__ import annotations

import os
import subprocess
import textwrap

import torch

WORKER = textwrap.dedent("""
    import sys
    from dataclasses import replace
    import torch
    import torch.distributed as dist
    from diffusion_core.presets import vqgan_settings
    from diffusion_core.training.config import TrainerConfig
    from diffusion_core.training.vqgan import VQGANTask, train_vqgan
    import diffusion_core.training.vqgan as module

    data, out = sys.argv[1], sys.argv[2]
    settings = vqgan_settings("tiny")
    settings = replace(settings, loss=replace(settings.loss, gan_start_step=2))
    made = []
    original = module.VQGANTask.__init__
    def spy(self, *args, **kwargs):
        original(self, *args, **kwargs)
        made.append(self)
    module.VQGANTask.__init__ = spy
    torch.manual_seed(dist_rank := int(__import__("os").environ["RANK"]))  # ranks start apart
    train_vqgan("tiny", data, out, settings=settings, device="cpu", progress=False,
                trainer=TrainerConfig(steps=4, batch_size=2, learning_rate=1e-3, log_every=1,
                                      val_every=4, checkpoint_every=2))
    book = made[0].model.codebook
    torch.save({"embedding": book.embedding, "ema_count": book.ema_count,
                "weight": made[0].model.decoder.conv_out.weight.detach()},
               f"{out}/rank{dist_rank}.pt")
""")


def test_two_processes_share_one_codebook_and_write_one_checkpoint(tiny_prep_dir, tmp_path,
                                                                   torchrun):
    worker = tmp_path / "worker.py"
    worker.write_text(WORKER)
    out = tmp_path / "run"
    result = subprocess.run(
        torchrun.command(worker, tiny_prep_dir, out),
        cwd=torchrun.root, env=torchrun.env, capture_output=True, text=True, timeout=240)
    assert result.returncode == 0, result.stderr[-3000:]
    rank0, rank1 = (torch.load(out / f"rank{r}.pt") for r in (0, 1))
    for key in rank0:
        assert torch.equal(rank0[key], rank1[key]), key
    # One writer: one checkpoint folder and no leftovers of a second writer's swap.
    names = sorted(p.name for p in out.iterdir() if "checkpoint" in p.name)
    assert names == ["checkpoint_best", "checkpoint_latest"]


STOPPING_WORKER = textwrap.dedent("""
    import os, sys
    from pathlib import Path
    from diffusion_core.presets import vqgan_settings
    from diffusion_core.training.config import TrainerConfig
    from diffusion_core.training.stopping import TrainingInterrupted
    from diffusion_core.training.vqgan import train_vqgan

    data, out = sys.argv[1], Path(sys.argv[2])
    rank = os.environ["RANK"]
    out.mkdir(exist_ok=True)
    (out / f"pid{rank}").write_text(str(os.getpid()))
    try:
        train_vqgan("tiny", data, out, settings=vqgan_settings("tiny"), device="cpu",
                    progress=False, resume=(out / "run.json").exists(),
                    trainer=TrainerConfig(steps=400, batch_size=2, learning_rate=1e-3,
                                          log_every=1, val_every=1000, checkpoint_every=1000,
                                          checkpoint_minutes=0))
    except TrainingInterrupted as stop:
        (out / f"stopped{rank}").write_text(str(stop.step))
        sys.exit(stop.exit_status)
""")


def test_a_signal_to_one_rank_stops_every_rank_after_the_same_step(tiny_prep_dir, tmp_path,
                                                                   torchrun):
    """SIGTERM to rank 1 alone: both ranks stop after the same step, with one checkpoint of
    it, instead of rank 0 waiting forever in the next step's all-reduce."""
    import time

    from diffusion_core.checkpoints import load_checkpoint

    worker = tmp_path / "worker.py"
    worker.write_text(STOPPING_WORKER)
    out = tmp_path / "run"
    proc = subprocess.Popen(
        torchrun.command(worker, tiny_prep_dir, out),
        cwd=torchrun.root, env=torchrun.env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        text=True, start_new_session=True)
    try:
        deadline = time.monotonic() + 240
        log = out / "log.csv"
        while not (log.is_file() and len(log.read_text().splitlines()) > 3):
            assert proc.poll() is None and time.monotonic() < deadline
            time.sleep(0.01)
        os.kill(int((out / "pid1").read_text()), 15)
        proc.communicate(timeout=120)  # torchrun reports its workers' failure: not checked
    finally:
        if proc.poll() is None:  # a deadlock: end torchrun and its workers
            os.killpg(proc.pid, 9)
    steps = {(out / f"stopped{rank}").read_text() for rank in (0, 1)}
    assert len(steps) == 1
    _, state = load_checkpoint(out / "checkpoint_latest")
    assert str(state["step"]) == steps.pop() and 3 <= state["step"] < 400
