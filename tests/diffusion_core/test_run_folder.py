"""run.json as a RunInfo: this version, every older form on disk, and one sentence for the rest.

The older forms are those mdiff-train wrote before run.json had a format version: the bundled
demo's (with `weights_hash` but no data content hash), runs from before `weights_hash` and the
data's `content_hash`, before `weights_step` (`--weights best`), before a DDPM's
`latent_scaling`, before a VQ-GAN's `init` and `frozen`, and runs resumed with `--new-data`
(flat `data_history` records).
"""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from diffusion_core.atomic_files import file_hash
from diffusion_core.registry import BUNDLED_DIR
from diffusion_core.run_folder import (
    RUN_NAME,
    RUN_VERSION,
    WEIGHTS_NAME,
    CheckpointError,
    DataRecord,
    EarlierData,
    RunInfo,
    RunRef,
    read_run_info,
    verified_weights,
    write_run_info,
)
from diffusion_core.training.config import TrainerConfig, VQGANLossConfig

DEMO = BUNDLED_DIR / "demo"


def _bundled(kind: str) -> dict:
    return json.loads((DEMO / kind / RUN_NAME).read_text())


def _without(data: dict, *keys: str) -> dict:
    return {key: value for key, value in data.items() if key not in keys}


def test_the_bundled_runs_load_as_written_before_the_format_version():
    vqgan, ddpm = read_run_info(DEMO / "vqgan", "vqgan"), read_run_info(DEMO / "ddpm", "ddpm")
    assert "format" not in _bundled("vqgan") and _bundled("ddpm")["trainer"]["warmup_steps"] == 0
    assert vqgan.preset == ddpm.preset == "demo" and vqgan.steps_done == vqgan.weights_step == 600
    assert vqgan.weights_hash == file_hash(DEMO / "vqgan" / WEIGHTS_NAME)
    assert vqgan.data == DataRecord("demo/data/train (prepared with the demo preset)",
                                    _bundled("vqgan")["data"]["pipeline_hash"], 48, None)
    assert vqgan.frozen == ("encoder", "codebook") and vqgan.init.hash.startswith("70489e40")
    assert vqgan.vqgan.output_floor == -1.0 and vqgan.loss.floor_margin == 0.15
    assert vqgan.trainer == TrainerConfig(steps=600, batch_size=2, learning_rate=3e-4,
                                          log_every=25, val_every=100, checkpoint_every=100)
    assert ddpm.vqgan_run == RunRef("../vqgan", vqgan.weights_hash)
    assert ddpm.latent_shape == (8, 8, 16, 16) and ddpm.latent_scaling == "std"
    assert ddpm.latent_range == pytest.approx((-0.6322358, 0.7213917))
    assert ddpm.scheduler.prediction_type == "v_prediction" and ddpm.ema.start == 500
    assert ddpm.data_history == () and ddpm.weights_step == ddpm.steps_done == 8500


@pytest.mark.parametrize("kind", ["vqgan", "ddpm"])
def test_this_version_round_trips_exactly(kind, tmp_path):
    info = read_run_info(DEMO / kind, kind)
    write_run_info(tmp_path, info)
    data = json.loads((tmp_path / RUN_NAME).read_text())
    assert data["format"] == "mdiff-run" and data["version"] == RUN_VERSION
    assert "warmup_steps" not in data["trainer"]
    assert RunInfo.from_dict(data) == info == read_run_info(tmp_path, kind)
    assert ("vqgan_run" in data) == (kind == "ddpm") and ("loss" in data) == (kind == "vqgan")


def test_a_run_from_before_weights_and_content_hashes_loads():
    """As mdiff-train wrote it before it recorded the weights' sha256 and the data's content."""
    for kind in ("vqgan", "ddpm"):
        info = RunInfo.from_dict(_without(_bundled(kind), "weights_hash"))
        assert info.weights_hash is None and info.data.content_hash is None
        assert verified_weights(DEMO / kind, info) == DEMO / kind / WEIGHTS_NAME


def test_the_earliest_forms_take_what_those_runs_did():
    """Before --weights best (no weights_step: the weights were the last step's), before the
    DDPM's latent scaling (the codebook's range was the only one), before VQ-GAN init/frozen."""
    ddpm = RunInfo.from_dict(_without(_bundled("ddpm"), "weights_hash", "weights_step",
                                      "latent_scaling"))
    assert ddpm.weights_step == ddpm.steps_done and ddpm.latent_scaling == "codebook"
    vqgan = RunInfo.from_dict(_without(_bundled("vqgan"), "weights_hash", "weights_step",
                                       "init", "frozen"))
    assert vqgan.weights_step == 600 and vqgan.init is None and vqgan.frozen == ()


def test_a_resumed_runs_flat_data_history_loads():
    """As mdiff-train --new-data wrote it: earlier data records with their steps, content hash
    and all (or none, for data recorded before content hashes)."""
    data = _bundled("ddpm")
    data["data"] = {**data["data"], "content_hash": "c" * 64}
    data["data_history"] = [{**_bundled("ddpm")["data"], "steps_done": 3},
                            {**data["data"], "prep_dir": "/elsewhere", "steps_done": 7}]
    info = RunInfo.from_dict(data)
    assert info.data.content_hash == "c" * 64
    assert info.data_history == (
        EarlierData(**{**_bundled("ddpm")["data"], "content_hash": None}, steps_done=3),
        EarlierData("/elsewhere", data["data"]["pipeline_hash"], 48, "c" * 64, steps_done=7))
    assert RunInfo.from_dict(info.to_dict()) == info


def test_the_legacy_warmup_key_is_dropped_only_when_zero(tmp_path):
    data = _bundled("vqgan")
    data["trainer"]["warmup_steps"] = 100
    (tmp_path / RUN_NAME).write_text(json.dumps(data))
    with pytest.raises(CheckpointError, match=r"run.json asks for a learning-rate warm-up") as err:
        read_run_info(tmp_path)
    assert str(tmp_path / RUN_NAME) in str(err.value) and "\n" not in str(err.value)
    # In this version the key is unknown, even at 0.
    current = read_run_info(DEMO / "vqgan").to_dict()
    current["trainer"]["warmup_steps"] = 0
    with pytest.raises(CheckpointError, match=r"trainer: unknown trainer settings "
                                              r"\['warmup_steps'\]"):
        RunInfo.from_dict(current)


@pytest.mark.parametrize("legacy", [True, False])
@pytest.mark.parametrize(("change", "message"), [
    (lambda d: d.update(colour="blue"), r"unknown keys \['colour'\]"),
    (lambda d: d.pop("preset"), r"missing keys \['preset'\]"),
    (lambda d: d.pop("trainer"), r"missing keys \['trainer'\]"),
])
def test_unknown_or_missing_keys_are_one_sentence_naming_the_file(tmp_path, legacy, change,
                                                                  message):
    data = _bundled("ddpm") if legacy else read_run_info(DEMO / "ddpm").to_dict()
    change(data)
    (tmp_path / RUN_NAME).write_text(json.dumps(data))
    with pytest.raises(CheckpointError, match=rf"is not a run.json this mdiff can read "
                                              rf"\({message}\)") as err:
        read_run_info(tmp_path, "ddpm")
    assert str(err.value).startswith(str(tmp_path / RUN_NAME)) and "\n" not in str(err.value)


@pytest.mark.parametrize(("part", "change", "message"), [
    ("loss", lambda d: d.update(gan_weight_typo=1.0), r"loss: unknown VQ-GAN loss settings"),
    ("vqgan", lambda d: d.update(attention=True), r"vqgan: unknown VQ-GAN settings"),
    ("data", lambda d: d.pop("arrays"), r"data: the data settings lack \['arrays'\]"),
    ("trainer", lambda d: d.pop("steps"), r"trainer: the trainer settings lack \['steps'\]"),
    ("init", lambda d: d.update(path=""), r"init: it names no run folder"),
])
def test_unusable_settings_are_one_sentence_naming_the_file_and_the_key(tmp_path, part, change,
                                                                        message):
    data = read_run_info(DEMO / "vqgan").to_dict()
    change(data[part])
    (tmp_path / RUN_NAME).write_text(json.dumps(data))
    with pytest.raises(CheckpointError, match=rf"run.json holds settings mdiff cannot use "
                                              rf"\({message}") as err:
        read_run_info(tmp_path)
    assert str(err.value).startswith(str(tmp_path / RUN_NAME))


def test_another_format_a_newer_version_and_another_kind_are_refused(tmp_path):
    data = read_run_info(DEMO / "vqgan").to_dict()
    with pytest.raises(CheckpointError, match="is run.json version 2, which this mdiff cannot "
                                              "read .*; update mdiff"):
        RunInfo.from_dict({**data, "version": 2}, tmp_path / RUN_NAME)
    with pytest.raises(CheckpointError, match="is not a run.json written by mdiff-train"):
        RunInfo.from_dict({**data, "format": "other"})
    with pytest.raises(CheckpointError, match="is a run of kind 'gan', not one of vqgan, ddpm, "
                                              "wgan"):
        RunInfo.from_dict({**data, "kind": "gan"})
    with pytest.raises(CheckpointError, match=r"unknown keys \[.*'loss', 'vqgan'\]; missing keys "
                                              r"\['gan_loss', 'wgan'\]"):
        RunInfo.from_dict({**data, "kind": "wgan"})
    with pytest.raises(CheckpointError, match=r"is a 'vqgan' run, not a ddpm run"):
        read_run_info(DEMO / "vqgan", "ddpm")
    with pytest.raises(CheckpointError, match="is not a run folder"):
        read_run_info(tmp_path / "nothing")


def test_an_incomplete_run_info_is_never_written(tmp_path):
    info = read_run_info(DEMO / "ddpm")
    with pytest.raises(ValueError, match="a ddpm run.json needs latent_range"):
        write_run_info(tmp_path, replace(info, latent_range=None))
    assert not (tmp_path / RUN_NAME).exists()


def test_run_weights_are_checked_against_the_hash_run_json_recorded(tmp_path):
    import torch

    from diffusion_core.checkpoints import load_weights, save_weights

    save_weights(tmp_path / WEIGHTS_NAME, {"layer.weight": torch.arange(6.0).view(2, 3)})
    info = replace(read_run_info(DEMO / "vqgan"), weights_hash=file_hash(tmp_path / WEIGHTS_NAME))
    assert verified_weights(tmp_path, info) == tmp_path / WEIGHTS_NAME
    data = bytearray((tmp_path / WEIGHTS_NAME).read_bytes())
    data[-3] ^= 0x01  # one flipped bit in a tensor: still a readable safetensors file
    (tmp_path / WEIGHTS_NAME).write_bytes(bytes(data))
    load_weights(tmp_path / WEIGHTS_NAME)
    with pytest.raises(CheckpointError, match="does not match the sha256 its run.json recorded"):
        verified_weights(tmp_path, info)
    # A run written before the hash was recorded has nothing to check against, and still loads.
    assert verified_weights(tmp_path, replace(info, weights_hash=None)) == \
        tmp_path / WEIGHTS_NAME
    with pytest.raises(CheckpointError, match="is missing"):
        verified_weights(tmp_path / "nothing", info)


def test_configs_refuse_unknown_and_missing_keys_alike():
    """One from_dict rule: the loss config used to drop unknown keys without a word."""
    loss = VQGANLossConfig().to_dict()
    assert VQGANLossConfig.from_dict(loss) == VQGANLossConfig()
    with pytest.raises(ValueError, match=r"unknown VQ-GAN loss settings \['l2_weight'\]"):
        VQGANLossConfig.from_dict({**loss, "l2_weight": 1.0})
    trainer = TrainerConfig(steps=5, batch_size=2, learning_rate=1e-3)
    assert TrainerConfig.from_dict(trainer.to_dict()) == trainer
    with pytest.raises(ValueError, match=r"the trainer settings lack \['batch_size'\]"):
        TrainerConfig.from_dict({"steps": 5, "learning_rate": 1e-3})
    with pytest.raises(ValueError, match="the trainer settings are not a JSON object"):
        TrainerConfig.from_dict([5])

