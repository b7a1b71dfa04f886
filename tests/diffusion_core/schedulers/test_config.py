"""SchedulerConfig and the beta-schedule registry: checks, round trip, torch-free import."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from diffusion_core.schedulers import BETA_SCHEDULES, SchedulerConfig, get_beta_schedule

ROOT = Path(__file__).resolve().parents[3]


def test_defaults_are_the_authors():
    config = SchedulerConfig()
    assert config.to_dict() == {"num_train_timesteps": 300, "beta_schedule": "cosine",
                                "prediction_type": "epsilon", "clip_sample": True,
                                "clip_sample_range": 1.0}


def test_round_trip_through_json():
    config = SchedulerConfig(num_train_timesteps=1000, beta_schedule="linear",
                             prediction_type="v_prediction", clip_sample=False,
                             clip_sample_range=3)
    again = SchedulerConfig.from_dict(json.loads(json.dumps(config.to_dict())))
    assert again == config and again.clip_sample_range == 3.0


def test_unknown_keys_are_refused():
    with pytest.raises(ValueError, match=r"unknown scheduler settings \['eta'\]"):
        SchedulerConfig.from_dict({**SchedulerConfig().to_dict(), "eta": 0.0})


def test_unknown_schedule_lists_the_known_ones():
    with pytest.raises(ValueError, match="unknown beta schedule 'quadratic'; known schedules: "
                                         "cosine, linear"):
        SchedulerConfig(beta_schedule="quadratic")
    with pytest.raises(ValueError, match="unknown beta schedule"):
        get_beta_schedule(["cosine"])


def test_unknown_prediction_type():
    with pytest.raises(ValueError, match="unknown prediction type 'sample'; choose from epsilon, "
                                         "v_prediction"):
        SchedulerConfig(prediction_type="sample")


@pytest.mark.parametrize("settings, message", [
    ({"num_train_timesteps": 0}, "positive integer"),
    ({"num_train_timesteps": "300"}, "positive integer"),
    ({"num_train_timesteps": 300.0}, "positive integer"),
    ({"clip_sample": "yes"}, "true or false"),
    ({"clip_sample_range": 0.0}, "positive number"),
    ({"clip_sample_range": "1"}, "positive number"),
])
def test_bad_values(settings, message):
    with pytest.raises(ValueError, match=message):
        SchedulerConfig(**settings)


def test_every_schedule_is_documented():
    assert set(BETA_SCHEDULES) == {"cosine", "linear"}
    for schedule in BETA_SCHEDULES.values():
        assert schedule.__doc__ and len(schedule.__doc__.split()) > 5


def test_config_and_names_import_without_torch():
    code = ("import sys\n"
            "from diffusion_core.schedulers import SAMPLER_NAMES, SchedulerConfig\n"
            "SchedulerConfig(beta_schedule='linear')\n"
            "print('torch' in sys.modules)\n")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "False"
