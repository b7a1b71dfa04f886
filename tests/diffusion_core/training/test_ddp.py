"""Two processes under torchrun (gloo, CPU): one codebook on both ranks and one checkpoint."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[3]

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


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_processes_share_one_codebook_and_write_one_checkpoint(tiny_prep_dir, tmp_path):
    worker = tmp_path / "worker.py"
    worker.write_text(WORKER)
    out = tmp_path / "run"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    result = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2",
         "--master-addr", "127.0.0.1", "--master-port", str(_free_port()), str(worker),
         str(tiny_prep_dir), str(out)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=240)
    assert result.returncode == 0, result.stderr[-3000:]
    rank0, rank1 = (torch.load(out / f"rank{r}.pt") for r in (0, 1))
    for key in rank0:
        assert torch.equal(rank0[key], rank1[key]), key
    # One writer: one checkpoint folder and no leftovers of a second writer's swap.
    names = sorted(p.name for p in out.iterdir() if "checkpoint" in p.name)
    assert names == ["checkpoint_best", "checkpoint_latest"]
