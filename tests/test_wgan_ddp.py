"""The GAN baseline under torchrun (two processes, gloo, CPU): one set of weights on both ranks."""

from __future__ import annotations

import subprocess
import textwrap

import torch

WORKER = textwrap.dedent("""
    import os, sys
    import torch
    from diffusion_core.presets import wgan_settings
    from diffusion_core.training.config import TrainerConfig
    import diffusion_core.training.wgan as module

    data, out = sys.argv[1], sys.argv[2]
    made = []
    original = module.WGANTask.__init__
    def spy(self, *args, **kwargs):
        original(self, *args, **kwargs)
        made.append(self)
    module.WGANTask.__init__ = spy
    rank = int(os.environ["RANK"])
    module.train_wgan("tiny", data, out, settings=wgan_settings("tiny"), device="cpu",
                      progress=False, trainer=TrainerConfig(steps=3, batch_size=1,
                      learning_rate=1e-3, log_every=1, val_every=3, checkpoint_every=3))
    task = made[0]
    # Parameters: DDP averages their gradients. (Batch-norm statistics are each rank's own,
    # from its own latents; rank 0's are saved.)
    torch.save({**{f"g.{k}": v for k, v in task.generator.named_parameters()},
                **{f"c.{k}": v for k, v in task.critic.named_parameters()}},
               f"{out}/rank{rank}.pt")
""")


def test_two_processes_train_one_generator_and_one_critic(tmp_path, make_blob_prep_dir,
                                                          torchrun):
    # The critic's gradient penalty differentiates through DistributedDataParallel twice.
    prep = make_blob_prep_dir(tmp_path / "prep")
    worker = tmp_path / "worker.py"
    worker.write_text(WORKER)
    out = tmp_path / "run"
    result = subprocess.run(
        torchrun.command(worker, prep, out),
        cwd=torchrun.root, env=torchrun.env, capture_output=True, text=True, timeout=240)
    assert result.returncode == 0, result.stderr[-3000:]
    rank0, rank1 = (torch.load(out / f"rank{r}.pt") for r in (0, 1))
    assert set(rank0) == set(rank1) and any(k.startswith("c.") for k in rank0)
    for key in rank0:
        assert torch.allclose(rank0[key], rank1[key], atol=1e-6), key
    assert (out / "run.json").is_file()
