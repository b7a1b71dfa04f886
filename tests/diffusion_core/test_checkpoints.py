"""Checkpoints: safetensors weights, hashed training state, and refusing damaged files."""

from __future__ import annotations

import pickle

import pytest
import torch

from diffusion_core import checkpoints
from diffusion_core.checkpoints import (
    CheckpointError,
    checkpoint_folder,
    load_checkpoint,
    load_into,
    load_weights,
    save_checkpoint,
    save_weights,
)

WEIGHTS = {"layer.weight": torch.arange(6.0).view(2, 3), "layer.bias": torch.zeros(2)}
STATE = {"step": 7, "rng_cpu": torch.get_rng_state(), "best_val": 0.5}


def test_weights_round_trip_exactly(tmp_path):
    save_weights(tmp_path / "w.safetensors", WEIGHTS)
    loaded = load_weights(tmp_path / "w.safetensors")
    assert set(loaded) == set(WEIGHTS)
    assert all(torch.equal(loaded[k], WEIGHTS[k]) for k in WEIGHTS)


def test_checkpoint_round_trip_and_swap(tmp_path):
    save_checkpoint(tmp_path, "checkpoint_latest", WEIGHTS, STATE)
    save_checkpoint(tmp_path, "checkpoint_latest", WEIGHTS, {**STATE, "step": 8})
    weights, state = load_checkpoint(checkpoint_folder(tmp_path, "checkpoint_latest"))
    assert state["step"] == 8 and torch.equal(weights["layer.weight"], WEIGHTS["layer.weight"])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint_latest"]


def test_a_crash_during_the_swap_leaves_the_previous_checkpoint_usable(tmp_path):
    save_checkpoint(tmp_path, "checkpoint_latest", WEIGHTS, STATE)
    (tmp_path / "checkpoint_latest").rename(tmp_path / ".checkpoint_latest.old")
    folder = checkpoint_folder(tmp_path, "checkpoint_latest")
    assert folder == tmp_path / ".checkpoint_latest.old"
    assert load_checkpoint(folder)[1]["step"] == 7


def test_a_truncated_weights_file_is_refused(tmp_path):
    save_weights(tmp_path / "w.safetensors", WEIGHTS)
    data = (tmp_path / "w.safetensors").read_bytes()
    (tmp_path / "w.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="not a readable safetensors file"):
        load_weights(tmp_path / "w.safetensors")
    with pytest.raises(CheckpointError, match="missing"):
        load_weights(tmp_path / "nothing.safetensors")


def test_a_tampered_checkpoint_file_is_refused(tmp_path):
    save_checkpoint(tmp_path, "checkpoint_latest", WEIGHTS, STATE)
    state_file = tmp_path / "checkpoint_latest" / checkpoints.STATE_NAME
    state_file.write_bytes(state_file.read_bytes()[:-10])
    with pytest.raises(CheckpointError, match="does not match the hash"):
        load_checkpoint(tmp_path / "checkpoint_latest")


class Payload:
    """An object whose unpickling would run code."""

    def __reduce__(self):
        return (print, ("unpickled!",))


def test_a_pickled_object_is_never_unpickled_even_with_a_matching_hash(tmp_path, capsys):
    save_checkpoint(tmp_path, "checkpoint_latest", WEIGHTS, STATE)
    folder = tmp_path / "checkpoint_latest"
    with open(folder / checkpoints.STATE_NAME, "wb") as handle:
        pickle.dump({"step": Payload()}, handle)
    manifest = checkpoints.read_json(folder / checkpoints.CHECKPOINT_MANIFEST)
    manifest["files"][checkpoints.STATE_NAME] = checkpoints.file_hash(
        folder / checkpoints.STATE_NAME)
    checkpoints.write_json(folder / checkpoints.CHECKPOINT_MANIFEST, manifest)
    with pytest.raises(CheckpointError, match="not mdiff training state"):
        load_checkpoint(folder)
    assert "unpickled!" not in capsys.readouterr().out


def test_foreign_weights_do_not_load_into_a_model(tmp_path):
    model = torch.nn.Linear(3, 2)
    with pytest.raises(CheckpointError, match="does not match the model"):
        load_into(model, {"other.weight": torch.zeros(2, 3)}, tmp_path / "x")
    with pytest.raises(CheckpointError, match="has shape"):
        load_into(model, {"weight": torch.zeros(3, 3), "bias": torch.zeros(2)}, tmp_path / "x")
