"""The tensors of a run folder: weights as safetensors, training state without pickle.

The run folder's layout and run.json belong to `run_folder`; this module reads and writes the
tensor files in it: `model.safetensors` (weights for sampling) and the checkpoint folders
(`checkpoint_latest/`, `checkpoint_best/`: everything `--resume` needs). Every file is written to
a temporary name and moved into place with `os.replace`; a checkpoint folder is swapped in whole,
and lists the sha256 of each of its files, so a truncated or edited file is refused with one
sentence instead of being loaded. Training state is read with `torch.load(weights_only=True)`,
which never unpickles an object. Weights holding NaN or infinity are refused on load: one such
value makes a sampler's every output the same, silently. Files and folders follow the umask.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from diffusion_core.atomic_files import (
    JSONFileError,
    atomic_folder,
    atomic_path,
    file_hash,
    follow_umask,
    read_json,
    write_json,
)
from diffusion_core.run_folder import (
    CHECKPOINT_MANIFEST,
    STATE_NAME,
    WEIGHTS_NAME,
    CheckpointError,
)


def save_weights(path: str | os.PathLike, state: dict[str, torch.Tensor]) -> None:
    """Write a state dict as safetensors, atomically (tensors made contiguous and unshared)."""
    path = Path(path)
    tensors = {key: value.detach().cpu().contiguous().clone() for key, value in state.items()}
    tmp = atomic_path(path)
    try:
        save_file(tensors, str(tmp))
        follow_umask(tmp)  # safetensors re-creates the file 0600
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def load_weights(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """A state dict from a safetensors file; CheckpointError if missing, truncated or foreign."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path} is missing")
    try:
        tensors = load_file(str(path))
    except (SafetensorError, OSError, ValueError, RuntimeError) as err:
        raise CheckpointError(f"{path} is not a readable safetensors file ({err}); it may be "
                              f"truncated or not written by mdiff") from None
    for key, value in tensors.items():
        if (value.is_floating_point() or value.is_complex()) and not bool(
                torch.isfinite(value).all()):
            raise CheckpointError(f"{path} holds NaN or infinite values (in {key}), so it is "
                                  f"damaged; restore it from a backup or write it again")
    return tensors


def load_into(module: torch.nn.Module, state: dict[str, torch.Tensor], source: Path) -> None:
    """Load `state` into `module`, refusing missing, leftover or mis-shaped tensors."""
    expected = module.state_dict()
    missing = sorted(set(expected) - set(state))
    leftover = sorted(set(state) - set(expected))
    if missing or leftover:
        detail = (f"missing {missing[:3]}" if missing else f"unexpected {leftover[:3]}")
        raise CheckpointError(f"{source} does not match the model its config describes "
                              f"({detail}); was it written by another model or version?")
    for key, value in state.items():
        if value.shape != expected[key].shape:
            raise CheckpointError(f"{source}: tensor {key} has shape {tuple(value.shape)}, the "
                                  f"model expects {tuple(expected[key].shape)}")
    module.load_state_dict(state)


def save_checkpoint(run_dir: str | os.PathLike, name: str, weights: dict[str, torch.Tensor],
                    state: dict) -> None:
    """Write RUN/name/ (weights + training state + their hashes), swapped in whole."""
    run_dir = Path(run_dir)
    final = run_dir / name
    staging = atomic_folder(final)
    try:
        save_weights(staging / WEIGHTS_NAME, weights)
        torch.save(state, staging / STATE_NAME)
        write_json(staging / CHECKPOINT_MANIFEST, {
            "files": {n: file_hash(staging / n) for n in (WEIGHTS_NAME, STATE_NAME)},
            "step": int(state.get("step", 0)),
        })
        old = run_dir / f".{name}.old"
        shutil.rmtree(old, ignore_errors=True)
        if final.exists():
            os.replace(final, old)
        os.replace(staging, final)
        shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def load_checkpoint(folder: str | os.PathLike) -> tuple[dict[str, torch.Tensor], dict]:
    """(weights, training state) from a checkpoint folder, after checking every file's hash."""
    folder = Path(folder)
    try:
        manifest = read_json(folder / CHECKPOINT_MANIFEST, "checkpoint")
    except JSONFileError as err:
        raise CheckpointError(str(err)) from None
    files = manifest.get("files")
    if not isinstance(files, dict) or set(files) != {WEIGHTS_NAME, STATE_NAME}:
        raise CheckpointError(f"{folder / CHECKPOINT_MANIFEST} does not list the checkpoint's "
                              f"files; it was not written by mdiff")
    for name, expected in files.items():
        path = folder / name
        if not path.is_file():
            raise CheckpointError(f"{path} is missing from the checkpoint")
        if file_hash(path) != expected:
            raise CheckpointError(f"{path} does not match the hash its checkpoint recorded: it "
                                  f"was truncated or changed after it was written")
    weights = load_weights(folder / WEIGHTS_NAME)
    try:
        state = torch.load(folder / STATE_NAME, map_location="cpu", weights_only=True)
    except Exception:  # weights_only raises UnpicklingError and others for foreign data
        # torch's own message advises weights_only=False, which would run the file's code.
        raise CheckpointError(f"{folder / STATE_NAME} is not mdiff training state: it holds "
                              f"Python objects mdiff never unpickles, so it was not written by "
                              f"mdiff-train; resume from another checkpoint or start the run "
                              f"again") from None
    if not isinstance(state, dict):
        raise CheckpointError(f"{folder / STATE_NAME} is not mdiff training state")
    return weights, state
