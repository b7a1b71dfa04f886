"""Training the GAN baseline on the shared trainer: penalty, step counts, resume, refusals."""

from __future__ import annotations

import csv
import json
from dataclasses import replace

import pytest
import torch

from diffusion_core import checkpoints, run_folder
from diffusion_core.checkpoints import load_weights
from diffusion_core.presets import wgan_settings
from diffusion_core.training import wgan as wgan_module
from diffusion_core.training.config import TrainerConfig, WGANLossConfig
from diffusion_core.training.trainer import TrainingError
from diffusion_core.training.wgan import critic_objective, gradient_penalty, train_wgan

SETTINGS = wgan_settings("tiny")


@pytest.fixture
def prep(tmp_path, make_blob_prep_dir):
    """A tiny-preset PREP_DIR of 12 volumes."""
    return make_blob_prep_dir(tmp_path / "prep")


def _trainer(steps: int, **kw) -> TrainerConfig:
    values = dict(steps=steps, batch_size=2, learning_rate=1e-4, log_every=1, val_every=4,
                  checkpoint_every=2, seed=3)
    values.update(kw)
    return TrainerConfig(**values)


def _train(data, out, steps, *, resume=False, settings=SETTINGS, **kw):
    return train_wgan("tiny", data, out, settings=settings, trainer=_trainer(steps, **kw),
                      device="cpu", resume=resume, progress=False)


class HalfSquare(torch.nn.Module):
    """A critic whose input gradient is known: f(x) = sum(x^2) / 2 per volume, so grad = x."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return 0.5 * x.square().flatten(1).sum(1)


def test_the_gradient_penalty_takes_one_norm_per_volume():
    # Two volumes whose gradients (the volumes themselves) have norms 1 and 3 over all their
    # voxels: the penalty is ((1 - 1)^2 + (3 - 1)^2) / 2 = 2. A norm over the size-1 channel
    # axis (one per voxel, as Kwon et al.'s code) would give mean((|x_v| - 1)^2) instead.
    voxels = 8 * 16 * 16
    points = torch.full((2, 1, 8, 16, 16), 1.0 / voxels ** 0.5)
    points[1] *= 3.0
    points.requires_grad_(True)
    penalty = gradient_penalty(HalfSquare()(points), points)
    assert penalty.item() == pytest.approx(2.0, rel=1e-5)
    per_voxel = ((points.detach().abs() - 1.0) ** 2).mean()
    assert abs(per_voxel.item() - 2.0) > 0.5
    penalty.backward()  # differentiable: the penalty trains the critic
    assert points.grad is not None


def test_the_critic_objective_is_the_wasserstein_estimate_plus_the_penalty():
    real, fake = torch.ones(2, 1, 2, 2, 2), torch.zeros(2, 1, 2, 2, 2)
    mix = torch.tensor([0.0, 1.0]).view(2, 1, 1, 1, 1)
    loss, wasserstein, penalty = critic_objective(HalfSquare(), real, fake, mix, 10.0)
    # f(real) = 4, f(fake) = 0; interpolates: fake (grad 0, norm 0) and real (norm sqrt(8)).
    assert wasserstein.item() == pytest.approx(4.0)
    assert penalty.item() == pytest.approx((1.0 + (8 ** 0.5 - 1) ** 2) / 2)
    assert loss.item() == pytest.approx(10.0 * penalty.item() - 4.0)


def test_critic_and_generator_step_counts_are_honoured(prep, tmp_path, monkeypatch):
    seen = []
    original = wgan_module.WGANTask._critic_step

    def spy(self, real, ctx):
        seen.append((ctx.step, real.detach().clone()))
        return original(self, real, ctx)

    monkeypatch.setattr(wgan_module.WGANTask, "_critic_step", spy)
    settings = replace(SETTINGS, loss=WGANLossConfig(critic_steps=3, generator_steps=2))
    _train(prep, tmp_path / "run", 2, settings=settings)
    # Three critic updates per step, each on its own batch of real volumes.
    assert [step for step, _ in seen] == [0, 0, 0, 1, 1, 1]
    assert all(real.shape[0] == 2 for _, real in seen)
    assert not torch.equal(seen[0][1], seen[1][1])
    _, state = checkpoints.load_checkpoint(tmp_path / "run" / run_folder.LATEST)
    adam = state["optimizers"]
    assert float(adam["critic"]["state"][0]["step"]) == 6
    assert float(adam["generator"]["state"][0]["step"]) == 4
    assert adam["critic"]["param_groups"][0]["betas"] == (0.0, 0.9)


def test_tiny_trains_logs_the_estimate_and_the_penalty(prep, tmp_path):
    last = _train(prep, tmp_path / "run", 4)
    run = json.loads((tmp_path / "run" / "run.json").read_text())
    assert run["kind"] == "wgan" and run["weights_step"] == 4 and run["trainer"]["grad_clip"] == 0
    assert run["gan_loss"]["critic_steps"] == 5 and run["wgan"]["shape"] == [8, 16, 16]
    with open(tmp_path / "run" / "log.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert [int(r["step"]) for r in rows] == [1, 2, 3, 4]
    assert all(float(r["penalty"]) >= 0 and r["wasserstein"] != "" for r in rows)
    assert last["val_wasserstein"] == last["val_loss"]
    weights = load_weights(tmp_path / "run" / "model.safetensors")
    assert weights and all(k.split(".")[0] in ("project", "project_norm", "stages")
                           for k in weights)


def test_n_plus_resume_plus_m_equals_n_plus_m(prep, tmp_path):
    torch.manual_seed(0)
    _train(prep, tmp_path / "straight", 4)
    torch.manual_seed(0)
    _train(prep, tmp_path / "split", 2)
    torch.manual_seed(123)  # a resume must not depend on the process's RNG state
    _train(prep, tmp_path / "split", 4, resume=True)
    a = load_weights(tmp_path / "straight" / run_folder.LATEST / run_folder.WEIGHTS_NAME)
    b = load_weights(tmp_path / "split" / run_folder.LATEST / run_folder.WEIGHTS_NAME)
    assert set(a) == set(b) and any(k.startswith("critic.") for k in a)
    for key in a:
        assert torch.equal(a[key], b[key]), key
    with open(tmp_path / "split" / "log.csv") as handle:
        assert [int(row["step"]) for row in csv.DictReader(handle)] == [1, 2, 3, 4]


def test_a_nan_critic_stops_with_one_sentence(prep, tmp_path, monkeypatch):
    _train(prep, tmp_path / "run", 2)
    monkeypatch.setattr(wgan_module.Critic, "forward",
                        lambda self, x: torch.full((x.shape[0],), float("nan")) * x.sum())
    with pytest.raises(TrainingError, match=r"step 3: the critic loss became nan.*checkpoint"):
        _train(prep, tmp_path / "run", 4, resume=True)


def test_the_command_trains_and_refuses_mixed_up_runs(prep, tmp_path, tiny_model, capsys):
    from diffusion_core.cli.train import main

    gan = tmp_path / "gan"
    assert main(["wgan", "--preset", "tiny", "--data", str(prep), "--out", str(gan),
                 "--steps", "2", "--critic-steps", "2", "--generator-steps", "3",
                 "--betas", "0.5", "0.99", "--device", "cpu"]) == 0
    run = json.loads((gan / "run.json").read_text())
    assert run["gan_loss"] == {"penalty_weight": 10.0, "critic_steps": 2, "generator_steps": 3,
                               "betas": [0.5, 0.99]}
    assert "model.safetensors holds the last step (2)" in capsys.readouterr().out
    vqgan, ddpm = tiny_model
    # A GAN run where a VQ-GAN is expected: one sentence, exit 2.
    assert main(["ddpm", "--preset", "tiny", "--data", str(prep), "--vqgan", str(gan),
                 "--out", str(tmp_path / "dd"), "--device", "cpu"]) == 2
    err = capsys.readouterr().err
    assert "is a GAN baseline (WGAN-GP) run, not a vqgan run" in err
    assert err.count("\n") == 1 and "Traceback" not in err
    # Resuming a diffusion run as a GAN, and the reverse.
    assert main(["wgan", "--preset", "tiny", "--data", str(prep), "--out", str(vqgan),
                 "--resume", "--device", "cpu"]) == 2
    assert "is a 'vqgan' run, not 'wgan'" in capsys.readouterr().err
    assert main(["vqgan", "--preset", "tiny", "--data", str(prep), "--out", str(gan),
                 "--resume", "--device", "cpu"]) == 2
    assert "is a 'wgan' run, not 'vqgan'" in capsys.readouterr().err


def test_a_gan_is_refused_where_a_diffusion_model_is_read_and_the_reverse(prep, tmp_path,
                                                                          tiny_model):
    from diffusion_core.models import load_ddpm, load_vqgan, load_wgan

    _train(prep, tmp_path / "gan", 1)
    vqgan, ddpm = tiny_model
    for load in (load_vqgan, load_ddpm):
        with pytest.raises(run_folder.CheckpointError,
                           match="is a GAN baseline .WGAN-GP. run, not a (vqgan|ddpm) run"):
            load(tmp_path / "gan")
    for run, name in ((vqgan, "VQ-GAN"), (ddpm, "DDPM")):
        with pytest.raises(run_folder.CheckpointError,
                           match=f"is a {name} run, not a GAN baseline .WGAN-GP. run; train"):
            load_wgan(run)
