"""Checkpoints: safetensors weights, hashed training state, and refusing damaged files."""

from __future__ import annotations

import os
import pickle
import stat

import pytest
import torch

from diffusion_core import atomic_files, run_folder
from diffusion_core.checkpoints import (
    load_checkpoint,
    load_into,
    load_weights,
    save_checkpoint,
    save_weights,
)
from diffusion_core.run_folder import CheckpointError, checkpoint_folder

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
    state_file = tmp_path / "checkpoint_latest" / run_folder.STATE_NAME
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
    with open(folder / run_folder.STATE_NAME, "wb") as handle:
        pickle.dump({"step": Payload()}, handle)
    manifest = atomic_files.read_json(folder / run_folder.CHECKPOINT_MANIFEST)
    manifest["files"][run_folder.STATE_NAME] = atomic_files.file_hash(
        folder / run_folder.STATE_NAME)
    atomic_files.write_json(folder / run_folder.CHECKPOINT_MANIFEST, manifest)
    with pytest.raises(CheckpointError, match="not mdiff training state") as refused:
        load_checkpoint(folder)
    assert "unpickled!" not in capsys.readouterr().out
    # Our sentence, not torch's advice to load it with weights_only=False (which runs its code).
    message = str(refused.value)
    assert "weights_only" not in message and "\n" not in message
    assert str(folder / run_folder.STATE_NAME) in message


def test_foreign_weights_do_not_load_into_a_model(tmp_path):
    model = torch.nn.Linear(3, 2)
    with pytest.raises(CheckpointError, match="does not match the model"):
        load_into(model, {"other.weight": torch.zeros(2, 3)}, tmp_path / "x")
    with pytest.raises(CheckpointError, match="has shape"):
        load_into(model, {"weight": torch.zeros(3, 3), "bias": torch.zeros(2)}, tmp_path / "x")


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), float("-inf")])
def test_weights_holding_nan_or_infinity_are_refused(tmp_path, bad):
    weights = {**WEIGHTS, "layer.bias": torch.tensor([0.0, bad])}
    save_weights(tmp_path / "w.safetensors", weights)
    with pytest.raises(CheckpointError, match=r"NaN or infinite values \(in layer.bias\)") as err:
        load_weights(tmp_path / "w.safetensors")
    assert str(tmp_path / "w.safetensors") in str(err.value)
    # Integer tensors (step counters, code indices) cannot be non-finite and still load.
    save_weights(tmp_path / "i.safetensors", {"count": torch.arange(3)})
    assert torch.equal(load_weights(tmp_path / "i.safetensors")["count"], torch.arange(3))


def _mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.mark.parametrize(("umask", "file_mode", "folder_mode"),
                         [(0o022, 0o644, 0o755), (0o027, 0o640, 0o750)])
def test_weights_checkpoints_and_json_follow_the_umask(tmp_path, umask, file_mode, folder_mode):
    previous = os.umask(umask)
    try:
        save_weights(tmp_path / "model.safetensors", WEIGHTS)
        save_checkpoint(tmp_path, "checkpoint_latest", WEIGHTS, STATE)
        save_checkpoint(tmp_path, "checkpoint_latest", WEIGHTS, STATE)  # the swap, too
        atomic_files.write_json(tmp_path / "run.json", {"kind": "vqgan"})
    finally:
        os.umask(previous)
    folder = tmp_path / "checkpoint_latest"
    assert _mode(folder) == folder_mode
    for path in (tmp_path / "model.safetensors", tmp_path / "run.json", *folder.iterdir()):
        assert _mode(path) == file_mode, path
