"""The latent DDPM on the shared trainer: the latent cache, exact resume, EMA, VQ-GAN checks."""

from __future__ import annotations

import json

import pytest
import torch

from diffusion_core.checkpoints import load_weights
from diffusion_core.presets import ddpm_settings, vqgan_settings
from diffusion_core.run_folder import LATENTS_DIR, WEIGHTS_NAME, CheckpointError
from diffusion_core.training.config import TrainerConfig
from diffusion_core.training.ddpm import WeightEMA, train_ddpm
from diffusion_core.training.trainer import RunSetupError
from diffusion_core.training.vqgan import train_vqgan

SETTINGS = ddpm_settings("tiny")


def _trainer(steps: int) -> TrainerConfig:
    return TrainerConfig(steps=steps, batch_size=4, learning_rate=1e-3, log_every=1,
                         val_every=3, checkpoint_every=3, seed=1)


@pytest.fixture
def vqgan_run(tiny_prep_dir, tmp_path):
    """A tiny VQ-GAN trained for a few steps."""
    run = tmp_path / "vqgan"
    train_vqgan("tiny", tiny_prep_dir, run, settings=vqgan_settings("tiny"),
                trainer=TrainerConfig(steps=4, batch_size=2, learning_rate=1e-3, val_every=4,
                                      checkpoint_every=4), device="cpu", progress=False)
    return run


def _train(data, vqgan, out, steps, resume=False):
    return train_ddpm("tiny", data, vqgan, out, settings=SETTINGS, trainer=_trainer(steps),
                      device="cpu", resume=resume, progress=False)


def test_weight_ema_copies_then_averages():
    module = torch.nn.Linear(1, 1, bias=False)
    module.weight.data.fill_(1.0)
    ema = WeightEMA(module, decay=0.5, every=2, start=4)
    module.weight.data.fill_(3.0)
    ema.update(module, 1)  # not a multiple of `every`: nothing
    assert float(ema.shadow["weight"]) == 1.0
    ema.update(module, 2)  # before `start`: a copy
    assert float(ema.shadow["weight"]) == 3.0
    module.weight.data.fill_(5.0)
    ema.update(module, 4)  # 0.5 * 3 + 0.5 * 5
    assert float(ema.shadow["weight"]) == 4.0


def test_n_plus_resume_plus_m_equals_n_plus_m(tiny_prep_dir, vqgan_run, tmp_path):
    _train(tiny_prep_dir, vqgan_run, tmp_path / "straight", 6)
    _train(tiny_prep_dir, vqgan_run, tmp_path / "split", 3)
    torch.manual_seed(99)
    _train(tiny_prep_dir, vqgan_run, tmp_path / "split", 6, resume=True)
    for name in (WEIGHTS_NAME,):
        a = load_weights(tmp_path / "straight" / name)  # the EMA weights
        b = load_weights(tmp_path / "split" / name)
        assert all(torch.equal(a[k], b[k]) for k in a)
    run = json.loads((tmp_path / "split" / "run.json").read_text())
    assert run["kind"] == "ddpm" and run["vqgan_run"]["hash"] and run["steps_done"] == 6
    low, high = run["latent_range"]
    assert low < high and run["latent_shape"] == [4, 4, 4, 4]


def test_the_latent_cache_is_rebuilt_when_the_vqgan_changes(tiny_prep_dir, vqgan_run, tmp_path):
    _train(tiny_prep_dir, vqgan_run, tmp_path / "a", 2)
    cache = list((tmp_path / "a" / LATENTS_DIR).glob("*.safetensors"))
    assert len(cache) == 1
    latents = load_weights(cache[0])
    assert latents["train.plain"].shape[1:] == (4, 4, 4, 4)
    assert not torch.equal(latents["train.plain"], latents["train.flipped"])
    # Retrain the VQ-GAN further: its hash changes, so a new DDPM run (same folder name for the
    # cache) must not read the old latents.
    train_vqgan("tiny", tiny_prep_dir, vqgan_run, settings=vqgan_settings("tiny"),
                trainer=TrainerConfig(steps=6, batch_size=2, learning_rate=1e-3, val_every=6,
                                      checkpoint_every=6), device="cpu", resume=True,
                progress=False)
    (tmp_path / "a" / "run.json").unlink()
    for folder in ("checkpoint_latest", "checkpoint_best"):
        import shutil
        shutil.rmtree(tmp_path / "a" / folder, ignore_errors=True)
    _train(tiny_prep_dir, vqgan_run, tmp_path / "a", 2)
    rebuilt = list((tmp_path / "a" / LATENTS_DIR).glob("*.safetensors"))
    assert len(rebuilt) == 1 and rebuilt[0].name != cache[0].name


def test_a_missing_or_changed_vqgan_is_one_clear_error(tiny_prep_dir, vqgan_run, tmp_path):
    _train(tiny_prep_dir, vqgan_run, tmp_path / "dd", 2)
    from diffusion_core.models import load_ddpm
    (vqgan_run / WEIGHTS_NAME).write_bytes(b"changed")
    with pytest.raises(CheckpointError, match="has changed since this DDPM was trained"):
        load_ddpm(tmp_path / "dd")
    (vqgan_run / WEIGHTS_NAME).unlink()
    with pytest.raises(CheckpointError, match="is missing"):
        load_ddpm(tmp_path / "dd")
    with pytest.raises(CheckpointError, match="not a run folder"):
        _train(tiny_prep_dir, tmp_path / "nowhere", tmp_path / "dd2", 2)


def test_a_vqgan_of_another_preset_is_refused(tiny_prep_dir, vqgan_run, tmp_path):
    info = json.loads((vqgan_run / "run.json").read_text())
    info["preset"] = "demo"
    (vqgan_run / "run.json").write_text(json.dumps(info))
    with pytest.raises(RunSetupError, match="VQ-GAN of preset 'demo'"):
        _train(tiny_prep_dir, vqgan_run, tmp_path / "dd", 2)


def test_unit_variance_scaling_records_the_latents_mean_and_std(tiny_prep_dir, vqgan_run,
                                                                tmp_path):
    from dataclasses import replace

    from diffusion_core.diffusion import LatentScale
    from diffusion_core.models import load_vqgan

    settings = replace(SETTINGS, latent_scaling="std")
    train_ddpm("tiny", tiny_prep_dir, vqgan_run, tmp_path / "std", settings=settings,
               trainer=_trainer(2), device="cpu", progress=False)
    run = json.loads((tmp_path / "std" / "run.json").read_text())
    assert run["latent_scaling"] == "std"
    cache = load_weights(next((tmp_path / "std" / LATENTS_DIR).glob("*.safetensors")))
    train = torch.cat([cache["train.plain"], cache["train.flipped"]])
    scaled = LatentScale(*run["latent_range"]).normalise(train)
    assert abs(float(scaled.mean())) < 1e-4 and abs(float(scaled.std()) - 1.0) < 1e-3
    # The paper's codebook range leaves the same latents narrower than unit variance.
    vqgan, _ = load_vqgan(vqgan_run)
    assert float(LatentScale(*vqgan.codebook.range()).normalise(train).std()) < 0.9
    # Sampling clips x0 to the codebook's extent at that scale, not to the paper's [-1, 1].
    from diffusion_core.sampling import LatentDiffusionPipeline
    pipeline = LatentDiffusionPipeline.from_runs(vqgan_run, tmp_path / "std", torch.device("cpu"))
    extent = LatentScale(*run["latent_range"]).extent(*vqgan.codebook.range())
    assert extent > 1.1 and pipeline.scheduler_config.clip_sample_range == pytest.approx(extent)
    with pytest.raises(ValueError, match="latent scaling must be one of codebook, std"):
        replace(SETTINGS, latent_scaling="minmax")


def _cache(run):
    (path,) = (run / LATENTS_DIR).glob("*.safetensors")
    return path, load_weights(path)


def test_a_killed_run_reused_with_other_data_encodes_that_data(tiny_prep_dir, vqgan_run,
                                                               make_blob_prep_dir, tmp_path):
    """Another PREP_DIR of the preset, with as many arrays under the same names: the latents
    left by a killed run in the folder are of the old data, so they are encoded anew."""
    from diffusion_core.prepared import content_hash

    other = make_blob_prep_dir(tmp_path / "other", seed=5)
    run = tmp_path / "dd"
    _train(tiny_prep_dir, vqgan_run, run, 2)
    old_path, _ = _cache(run)
    (run / "run.json").unlink()  # what a run killed before its first checkpoint leaves
    for folder in ("checkpoint_latest", "checkpoint_best"):
        import shutil
        shutil.rmtree(run / folder, ignore_errors=True)
    _train(other, vqgan_run, run, 2)
    _train(other, vqgan_run, tmp_path / "fresh", 2)
    path, latents = _cache(run)
    _, fresh = _cache(tmp_path / "fresh")
    assert path.name != old_path.name and set(latents) == set(fresh)
    assert all(torch.equal(latents[k], fresh[k]) for k in fresh)
    data = json.loads((run / "run.json").read_text())["data"]
    assert data["content_hash"] == content_hash(other)
    assert data["prep_dir"] == str(other.resolve())


def test_a_resume_on_other_data_needs_new_data_and_keeps_both_records(tiny_prep_dir, vqgan_run,
                                                                      make_blob_prep_dir,
                                                                      tmp_path):
    """Other content is refused; --new-data re-encodes the latents at the run's latent scale
    (the U-Net learnt that one) and run.json keeps the old record in data_history."""
    from dataclasses import replace

    from diffusion_core.prepared import content_hash

    def train(data, out, steps, **kw):
        train_ddpm("tiny", data, vqgan_run, out, settings=replace(SETTINGS, latent_scaling="std"),
                   trainer=_trainer(steps), device="cpu", progress=False, **kw)

    other = make_blob_prep_dir(tmp_path / "other", seed=5)
    run = tmp_path / "dd"
    train(tiny_prep_dir, run, 3)
    before = json.loads((run / "run.json").read_text())
    old_cache, _ = _cache(run)
    with pytest.raises(RunSetupError, match=r"trained on other data than .*other .it was started "
                                            r"on .*prep, whose content differs.*--new-data"):
        train(other, run, 6, resume=True)
    train(other, run, 6, resume=True, new_data=True)
    after = json.loads((run / "run.json").read_text())
    assert after["steps_done"] == 6 and after["latent_range"] == before["latent_range"]
    assert after["data"]["content_hash"] == content_hash(other)
    assert after["data_history"] == [{**before["data"], "steps_done": 3}]
    new_cache, latents = _cache(run)
    train(other, tmp_path / "fresh", 1)
    _, fresh = _cache(tmp_path / "fresh")
    assert new_cache.name != old_cache.name
    assert all(torch.equal(latents[k], fresh[k]) for k in fresh)
    # A run started on the other data would have another scale: the kept one is the old data's.
    assert json.loads((tmp_path / "fresh" / "run.json").read_text())["latent_range"] != \
        before["latent_range"]
    # Later resumes on the new data need no flag, and keep the history.
    train(other, run, 9, resume=True)
    assert json.loads((run / "run.json").read_text())["data_history"] == after["data_history"]


def test_each_torchrun_rank_draws_its_own_timesteps_and_noise(monkeypatch):
    """Ranks share one RNG state; each must still get other t and noise than the others, the
    rows one process with the whole batch would draw (a per-rank draw gave all ranks the same)."""
    from diffusion_core import distributed
    from diffusion_core.diffusion import training_noise
    from diffusion_core.schedulers import DDPMScheduler
    from diffusion_core.schedulers.config import SchedulerConfig
    from diffusion_core.training.ddpm import rank_training_noise

    scheduler = DDPMScheduler(SchedulerConfig(num_train_timesteps=1000))
    batch = torch.zeros(3, 2, 4, 8, 8)
    draws = []
    monkeypatch.setattr(distributed, "world_size", lambda: 2)
    for rank in (0, 1):
        monkeypatch.setattr(distributed, "rank", lambda rank=rank: rank)
        torch.manual_seed(7)  # the state every rank holds
        draws.append(rank_training_noise(scheduler, batch))
    (t0, noise0), (t1, noise1) = draws
    assert t0.shape == (3,) and noise0.shape == batch.shape
    assert not torch.equal(noise0, noise1) and not torch.equal(t0, t1)
    torch.manual_seed(7)
    t_all, noise_all = training_noise(scheduler, (6, 2, 4, 8, 8), "cpu", torch.float32)
    assert torch.equal(torch.cat([t0, t1]), t_all)
    assert torch.equal(torch.cat([noise0, noise1]), noise_all)
    # One process: exactly the draw of before (single-process runs are unchanged bit for bit).
    monkeypatch.setattr(distributed, "world_size", lambda: 1)
    monkeypatch.setattr(distributed, "rank", lambda: 0)
    torch.manual_seed(7)
    t_one, noise_one = rank_training_noise(scheduler, batch)
    torch.manual_seed(7)
    assert torch.equal(t_one, torch.randint(0, 1000, (3,)))
    assert torch.equal(noise_one, torch.randn(batch.shape))
