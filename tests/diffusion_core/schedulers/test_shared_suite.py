"""One suite every sampler passes: shapes, seeds, per-sample generators, timesteps, config
round trip and errors (diffusers' tests/schedulers/test_schedulers.py pattern)."""

from __future__ import annotations

import pytest
import torch

from diffusion_core.schedulers import (
    SAMPLER_NAMES,
    SAMPLERS,
    SchedulerConfig,
    SchedulerOutput,
    make_scheduler,
    randn_like_per_sample,
)
from diffusion_core.schedulers.dpm_solver import DEFAULT_LAMBDA_MIN

# (sampler, options): DDIM both deterministic and fully stochastic.
CASES = [("ddpm", {}), ("ddim", {"eta": 0.0}), ("ddim", {"eta": 1.0}), ("dpm", {})]
STOCHASTIC = [("ddpm", {}), ("ddim", {"eta": 1.0})]
IDS = [f"{name}-{'-'.join(f'{k}{v}' for k, v in options.items()) or 'default'}"
       for name, options in CASES]


@pytest.fixture(params=CASES, ids=IDS)
def case(request) -> tuple[str, dict]:
    """One sampler with its options."""
    return request.param


def _scheduler(case, steps: int = 10, **config):
    """The case's scheduler over a default config (T = 300, cosine), `steps` sampling steps."""
    name, options = case
    scheduler = make_scheduler(name, SchedulerConfig(**config), **options)
    scheduler.set_timesteps(steps)
    return scheduler


def _seeded(batch: int, seeds) -> list[torch.Generator]:
    return [torch.Generator().manual_seed(s) for s in seeds][:batch]


def test_registry_names_every_sampler():
    assert tuple(SAMPLERS) == SAMPLER_NAMES
    for name, cls in SAMPLERS.items():
        assert cls.name == name


@pytest.mark.parametrize("shape", [(2, 1, 4, 6, 6), (3, 2, 5, 5)], ids=["3d", "2d"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_step_keeps_shape_and_dtype(case, network, shape, dtype):
    scheduler = _scheduler(case)
    sample = torch.randn(shape, dtype=dtype, generator=torch.Generator().manual_seed(0))
    t = scheduler.timesteps[0]
    out = scheduler.step(network(sample, t), t, sample, generator=torch.Generator().manual_seed(1))
    assert isinstance(out, SchedulerOutput)
    for tensor in (out.prev_sample, out.pred_original_sample):
        assert tensor.shape == shape and tensor.dtype == dtype
    assert out.pred_original_sample.abs().max() <= 1.0  # clamped, as the authors did
    assert not torch.equal(out.prev_sample, sample)


def test_seeded_loop_is_reproducible(case, network, sample_loop):
    scheduler = _scheduler(case)
    start = torch.randn(2, 1, 3, 4, 4, generator=torch.Generator().manual_seed(0))
    first = sample_loop(scheduler, network, start, torch.Generator().manual_seed(7))
    again = sample_loop(scheduler, network, start, torch.Generator().manual_seed(7))
    assert torch.equal(first, again)  # and a second loop starts afresh (DPM's state is reset)
    other = sample_loop(scheduler, network, start, torch.Generator().manual_seed(8))
    assert torch.equal(first, other) != (case in STOCHASTIC)


def test_a_volume_is_the_same_alone_or_in_a_batch(case, network, sample_loop):
    """Per-sample generators: volume 1's seed gives the same volume whatever the batch."""
    scheduler = _scheduler(case)
    seeds = [11, 12, 13]
    shape = (3, 1, 3, 4, 4)
    start = randn_like_per_sample(torch.empty(shape), _seeded(3, seeds))
    batch = sample_loop(scheduler, network, start, _seeded(3, seeds))
    alone_start = randn_like_per_sample(torch.empty(1, *shape[1:]), _seeded(1, seeds[1:]))
    assert torch.equal(alone_start[0], start[1])
    alone = sample_loop(scheduler, network, alone_start, _seeded(1, seeds[1:]))
    torch.testing.assert_close(alone[0], batch[1], rtol=0, atol=1e-6)


@pytest.mark.parametrize("steps", [1, 7, 10, 50, "max"])
def test_timesteps_descend_within_the_trained_range(case, steps):
    scheduler = _scheduler(case)
    limit = scheduler.max_inference_steps
    steps = limit if steps == "max" else steps
    scheduler.set_timesteps(steps)
    grid = scheduler.timesteps
    assert grid.dtype == torch.long and grid.shape == (steps,)
    assert bool((grid[1:] < grid[:-1]).all())
    assert int(grid[0]) == limit - 1 and int(grid[-1]) >= 0  # trailing: starts at the noisiest
    assert scheduler.num_inference_steps == steps


def test_every_trained_step_for_the_full_grid():
    config = SchedulerConfig()
    for name in ("ddpm", "ddim"):
        grid = make_scheduler(name, config).timesteps  # the default grid: the paper's T steps
        assert torch.equal(grid, torch.arange(config.num_train_timesteps - 1, -1, -1))


def test_config_round_trip(case, network, tmp_path):
    name, options = case
    config = SchedulerConfig(num_train_timesteps=120, beta_schedule="linear",
                             prediction_type="v_prediction", clip_sample_range=2.0)
    scheduler = make_scheduler(name, config, **options)
    path = tmp_path / "scheduler.json"
    scheduler.save_config(path)
    loaded = type(scheduler).from_config(path)
    assert type(loaded) is type(scheduler)
    assert loaded.config == config and loaded.options == scheduler.options
    assert torch.equal(loaded.alphas_cumprod, scheduler.alphas_cumprod)
    for one in (scheduler, loaded):
        one.set_timesteps(12)
    sample = torch.randn(2, 1, 3, 3, 3, generator=torch.Generator().manual_seed(0))
    t = scheduler.timesteps[3]
    steps = [one.step(network(sample, t), t, sample, generator=torch.Generator().manual_seed(2))
             for one in (scheduler, loaded)]
    assert torch.equal(steps[0].prev_sample, steps[1].prev_sample)


def test_from_config_refuses_another_samplers_file(case, tmp_path):
    name, options = case
    path = tmp_path / "scheduler.json"
    make_scheduler(name, SchedulerConfig(), **options).save_config(path)
    other = next(cls for key, cls in SAMPLERS.items() if key != name)
    with pytest.raises(ValueError, match=f"holds a '{name}' scheduler"):
        other.from_config(path)
    path.write_text('{"config": {}}')
    with pytest.raises(ValueError, match="not a scheduler config"):
        SAMPLERS[name].from_config(path)


def test_more_steps_than_trained_is_an_error(case):
    scheduler = _scheduler(case, num_train_timesteps=50)
    with pytest.raises(ValueError, match="more steps than trained"):
        scheduler.set_timesteps(51)
    for bad in (0, -3, 2.5, True):
        with pytest.raises(ValueError, match="positive integer"):
            scheduler.set_timesteps(bad)


def test_a_timestep_off_the_grid_is_an_error(case, network):
    scheduler = _scheduler(case, steps=10)
    sample = torch.zeros(1, 1, 2, 2)
    off = int(scheduler.timesteps[0]) - 1
    with pytest.raises(ValueError, match="not one of this scheduler's 10 timesteps"):
        scheduler.step(network(sample, off), off, sample)
    with pytest.raises(ValueError, match="outside"):
        scheduler.step(sample, 300, sample)


@pytest.mark.parametrize("stochastic", STOCHASTIC, ids=["ddpm", "ddim-eta1"])
def test_one_generator_per_sample_or_an_error(stochastic, network):
    scheduler = _scheduler(stochastic)
    sample = torch.zeros(3, 1, 2, 2)
    t = scheduler.timesteps[0]
    with pytest.raises(ValueError, match="2 generators for a batch of 3"):
        scheduler.step(network(sample, t), t, sample, generator=_seeded(2, [1, 2]))


def test_unknown_sampler_or_option_is_an_error():
    with pytest.raises(ValueError, match="unknown sampler 'euler'; known samplers: ddpm, ddim, "
                                         "dpm"):
        make_scheduler("euler", SchedulerConfig())
    with pytest.raises(ValueError, match="the ddpm sampler has no option 'eta'"):
        make_scheduler("ddpm", SchedulerConfig(), eta=1.0)
    with pytest.raises(ValueError, match=r"eta must be a number in \[0, 1\]"):
        make_scheduler("ddim", SchedulerConfig(), eta=1.5)
    assert make_scheduler("dpm", SchedulerConfig()).lambda_min_clipped == DEFAULT_LAMBDA_MIN
