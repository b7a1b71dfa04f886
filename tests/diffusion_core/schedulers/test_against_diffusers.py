"""Step-by-step agreement with diffusers' schedulers on the same betas (`trained_betas`).

Settings matched on the diffusers side, where our choice is not its default:
- timesteps: trailing spacing for DDPM and DDIM (`timestep_spacing="trailing"`); DPM-Solver is
  handed our grid (`set_timesteps(timesteps=...)`) because diffusers' trailing grid for DPM spaces
  by T / K even after lambda clipping; the clipping itself is compared separately.
- DDPM: `variance_type="fixed_small"` (beta_tilde), `clip_sample`, `clip_sample_range`.
- DDIM: `set_alpha_to_one=True`, `steps_offset=0` and `use_clipped_model_output=True` in step
  (the noise re-derived from the clamped x0, as guided-diffusion's DDIM does).
- DPM-Solver++: `algorithm_type="dpmsolver++"`, `solver_order=2`, `solver_type="midpoint"`,
  `final_sigmas_type="zero"`, `lambda_min_clipped=-5.1`; our clamp is diffusers' `thresholding`
  with `sample_max_value=1.0` (a plain clamp for a range of 1).
Noise: both draw it from per-sample generators seeded alike (diffusers' `randn_tensor` convention).
Each step gets the same input on both sides (our trajectory), so each step is compared on its own.
"""

from __future__ import annotations

import math

import diffusers
import numpy as np
import pytest
import torch

from diffusion_core.schedulers import SchedulerConfig, get_beta_schedule, make_scheduler

# diffusers' DPM-Solver hands a tensor to numpy inside set_timesteps (numpy 2 deprecation).
pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")

T = 300
BATCH = 3

CASES = ([("ddpm", {}, K) for K in (300, 50)]
         + [("ddim", {"eta": eta}, K) for eta in (0.0, 1.0) for K in (10, 50)]
         + [("dpm", {"lower_order_final": low}, K) for low in (True, False) for K in (10, 20)])
IDS = [f"{name}-{'-'.join(f'{k}{v}' for k, v in options.items()) or 'ancestral'}-K{K}"
       for name, options, K in CASES]


def _diffusers_scheduler(name: str, options: dict, config: SchedulerConfig, betas: np.ndarray):
    """diffusers' scheduler with our config's settings (see the module docstring)."""
    common = {"num_train_timesteps": config.num_train_timesteps, "trained_betas": betas,
              "prediction_type": config.prediction_type}
    if name == "ddpm":
        return diffusers.DDPMScheduler(**common, variance_type="fixed_small",
                                       clip_sample=config.clip_sample,
                                       clip_sample_range=config.clip_sample_range,
                                       timestep_spacing="trailing")
    if name == "ddim":
        return diffusers.DDIMScheduler(**common, clip_sample=config.clip_sample,
                                       clip_sample_range=config.clip_sample_range,
                                       timestep_spacing="trailing", set_alpha_to_one=True,
                                       steps_offset=0)
    return diffusers.DPMSolverMultistepScheduler(
        **common, algorithm_type="dpmsolver++", solver_order=2, solver_type="midpoint",
        lower_order_final=options["lower_order_final"], final_sigmas_type="zero",
        lambda_min_clipped=-5.1, thresholding=config.clip_sample, sample_max_value=1.0)


def _in_float64(theirs, abar: np.ndarray) -> None:
    """Replace diffusers' float32 tables by the same betas' float64 ones (after set_timesteps)."""
    table = torch.from_numpy(abar)
    one = torch.tensor(1.0, dtype=torch.float64)
    replace = {"alphas_cumprod": table}
    if isinstance(theirs, diffusers.DDPMScheduler):
        replace["one"] = one
    elif isinstance(theirs, diffusers.DDIMScheduler):
        replace["final_alpha_cumprod"] = one
    else:
        steps = theirs.timesteps.numpy()
        replace["sigmas"] = torch.from_numpy(np.append(np.sqrt((1 - abar) / abar)[steps], 0.0))
    for attribute, value in replace.items():
        assert hasattr(theirs, attribute), f"diffusers renamed {attribute}"
        setattr(theirs, attribute, value)


def _compare(name, options, K, config, network, dtype) -> float:
    """Run our sampler; at every step run diffusers' on the same input; the worst difference."""
    ours = make_scheduler(name, config, **{k: v for k, v in options.items() if k == "eta"})
    ours.set_timesteps(K)
    betas = get_beta_schedule(config.beta_schedule)(config.num_train_timesteps)  # float64
    theirs = _diffusers_scheduler(name, options, config, betas)
    if name == "dpm":
        theirs.set_timesteps(timesteps=ours.timesteps.tolist())
    else:
        theirs.set_timesteps(K)
    assert torch.equal(theirs.timesteps, ours.timesteps)
    if dtype == torch.float64:
        _in_float64(theirs, np.cumprod(1 - betas))
    extra = {"eta": options["eta"], "use_clipped_model_output": True} if name == "ddim" else {}
    ours_gens = [torch.Generator().manual_seed(100 + i) for i in range(BATCH)]
    their_gens = [torch.Generator().manual_seed(100 + i) for i in range(BATCH)]
    sample = torch.randn(BATCH, 1, 3, 4, 4, dtype=dtype, generator=torch.Generator().manual_seed(0))
    worst = 0.0
    for t in ours.timesteps:
        output = network(sample, t)
        mine = ours.step(output, t, sample, generator=ours_gens)
        if name == "dpm":
            theirs_out = theirs.step(output, t, sample)
        else:
            theirs_out = theirs.step(output, t, sample, generator=their_gens, **extra)
        scale = max(1.0, float(mine.prev_sample.abs().max()))  # unclamped eps runs reach 1e3
        worst = max(worst, float((mine.prev_sample - theirs_out.prev_sample).abs().max()) / scale)
        sample = mine.prev_sample
    return worst


@pytest.mark.parametrize("name, options, K", CASES, ids=IDS)
@pytest.mark.parametrize("prediction_type", ["epsilon", "v_prediction"])
@pytest.mark.parametrize("clip", [True, False], ids=["clip", "noclip"])
def test_every_step_matches_diffusers_in_float64(name, options, K, prediction_type, clip, network):
    """The same maths: with both in float64, every step agrees far below 1e-5.

    diffusers' DPM-Solver casts the sample to float32 inside its step, hence its looser bound.
    """
    config = SchedulerConfig(prediction_type=prediction_type, clip_sample=clip)
    tolerance = 1e-6 if name == "dpm" else 1e-9
    assert _compare(name, options, K, config, network, torch.float64) < tolerance


# diffusers' float32 loses digits where ours (float64 coefficients) does not: 1 - abar_t near
# t = 0 in DDPM's posterior (1e-4 off a float64 run; ours 4e-6) and 1 - abar_prev - sigma^2 at
# t = T-1 for DDIM with eta = 1 (1.3e-5 off; ours 2e-6).
FLOAT32_TOLERANCE = {("ddpm", 300): 2e-4, ("ddim", 10): 3e-5, ("ddim", 50): 3e-5}


@pytest.mark.parametrize("name, options, K", CASES, ids=IDS)
@pytest.mark.parametrize("prediction_type", ["epsilon", "v_prediction"])
def test_every_step_matches_diffusers_in_float32(name, options, K, prediction_type, network):
    """diffusers as shipped (float32 tables), x0 clamped: within 1e-5 but for the cases above."""
    config = SchedulerConfig(prediction_type=prediction_type)
    stochastic = name == "ddpm" or options.get("eta") == 1.0
    tolerance = FLOAT32_TOLERANCE.get((name, K), 1e-5) if stochastic else 1e-5
    assert _compare(name, options, K, config, network, torch.float32) < tolerance


@pytest.mark.parametrize("schedule", ["cosine", "linear"])
@pytest.mark.parametrize("lambda_min", [-5.1, -3.0, -math.inf])
def test_lambda_clipping_drops_the_same_steps_as_diffusers(schedule, lambda_min):
    config = SchedulerConfig(beta_schedule=schedule)
    ours = make_scheduler("dpm", config, lambda_min_clipped=lambda_min)
    theirs = diffusers.DPMSolverMultistepScheduler(
        num_train_timesteps=T, trained_betas=ours.betas.double().numpy(),
        lambda_min_clipped=lambda_min, timestep_spacing="trailing")
    theirs.set_timesteps(10)
    ours.set_timesteps(10)
    assert int(ours.timesteps[0]) == int(theirs.timesteps[0])  # both start at the first kept step
    if schedule == "cosine" and lambda_min > -math.inf:
        assert ours.max_inference_steps < T


def test_clipped_steps_are_not_available(network):
    scheduler = make_scheduler("dpm", SchedulerConfig())
    kept = scheduler.max_inference_steps
    with pytest.raises(ValueError, match=f"lambda_min_clipped=-5.1 leaves {kept} of the 300"):
        scheduler.set_timesteps(kept + 1)
    scheduler.set_timesteps(kept)
    assert int(scheduler.timesteps[0]) == kept - 1
