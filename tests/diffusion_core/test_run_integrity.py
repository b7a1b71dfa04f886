"""Loading a run checks what its run.json recorded: the weights' hash, finite weights, and the
preset against the shapes the networks make."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from diffusion_core.atomic_files import file_hash
from diffusion_core.cli.sample import main as sample_main
from diffusion_core.models import load_ddpm, load_vqgan
from diffusion_core.registry import BUNDLED_DIR
from diffusion_core.run_folder import RUN_NAME, WEIGHTS_NAME, CheckpointError, run_ref

WEIGHTS_HASH = "weights_hash"  # run.json's record of model.safetensors' sha256


def _copy_model(tiny_model, tmp_path: Path) -> tuple[Path, Path]:
    """A copy of the session's tiny model, its DDPM pointing at the copied VQ-GAN."""
    vq, dd = (Path(shutil.copytree(run, tmp_path / run.name, ignore=shutil.ignore_patterns(
        "checkpoint_*", "latents"))) for run in tiny_model)
    _edit(dd, lambda info: info["vqgan_run"].update(path=str(vq)))
    return vq, dd


def _edit(run: Path, change) -> None:
    info = json.loads((run / RUN_NAME).read_text())
    change(info)
    (run / RUN_NAME).write_text(json.dumps(info))


def _flip_a_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[-5] ^= 0x10  # inside the last tensor: the file still parses
    path.write_bytes(bytes(data))


def test_the_trainer_records_the_hash_of_the_weights_it_wrote(tiny_model):
    for run in tiny_model:
        info = json.loads((run / RUN_NAME).read_text())
        assert info[WEIGHTS_HASH] == file_hash(run / WEIGHTS_NAME)
    vq, dd = tiny_model
    assert json.loads((dd / RUN_NAME).read_text())["vqgan_run"]["hash"] == \
        file_hash(vq / WEIGHTS_NAME)


@pytest.mark.parametrize("kind", ["vqgan", "ddpm"])
def test_one_flipped_byte_in_the_weights_is_refused(tiny_model, tmp_path, kind, capsys):
    vq, dd = _copy_model(tiny_model, tmp_path)
    run = vq if kind == "vqgan" else dd
    _flip_a_byte(run / WEIGHTS_NAME)
    load_file(str(run / WEIGHTS_NAME))  # still readable: only the hash tells
    with pytest.raises(CheckpointError, match="does not match the sha256 its run.json recorded"):
        (load_vqgan if kind == "vqgan" else load_ddpm)(run)
    if kind == "vqgan":
        with pytest.raises(CheckpointError, match="does not match the sha256"):
            run_ref(run, "vqgan")  # what a DDPM trained on it would record
    code = sample_main(["--model", str(dd), "--n", "1", "--out", str(tmp_path / "s"),
                        "--device", "cpu"])
    err = capsys.readouterr().err
    # The DDPM's own record of its VQ-GAN speaks first for a changed VQ-GAN.
    assert code == 2 and err.count("\n") == 1
    assert ("has changed since this DDPM was trained" if kind == "vqgan" else
            str(run / WEIGHTS_NAME)) in err
    assert not (tmp_path / "s").exists()


def test_a_nan_in_one_ddpm_weight_is_refused_even_with_a_matching_hash(tiny_model, tmp_path):
    vq, dd = _copy_model(tiny_model, tmp_path)
    tensors = load_file(str(dd / WEIGHTS_NAME))
    name = sorted(tensors)[0]
    tensors[name].view(-1)[0] = float("nan")
    save_file(tensors, str(dd / WEIGHTS_NAME))
    _edit(dd, lambda info: info.update({WEIGHTS_HASH: file_hash(dd / WEIGHTS_NAME)}))
    with pytest.raises(CheckpointError, match=rf"NaN or infinite values \(in {name}\)"):
        load_ddpm(dd)


def test_a_run_written_before_hashes_were_recorded_still_loads(tiny_model, tmp_path):
    vq, dd = _copy_model(tiny_model, tmp_path)
    for run in (vq, dd):
        _edit(run, lambda info: info.update({WEIGHTS_HASH: None}))
    assert load_vqgan(vq)[0].codebook.initialised
    assert load_ddpm(dd)[2].preset == "tiny"


@pytest.mark.parametrize("edited", ["both", "ddpm"])
def test_a_run_json_edited_to_another_preset_is_refused(tiny_model, tmp_path, edited, capsys):
    vq, dd = _copy_model(tiny_model, tmp_path)
    for run in (dd, vq) if edited == "both" else (dd,):
        _edit(run, lambda info: info.update(preset="demo"))
    message = ("names preset 'demo', whose volumes are 32x64x64, but its latents .* decode to "
               "8x16x16" if edited == "both" else "its VQ-GAN .* is of preset 'tiny'")
    with pytest.raises(CheckpointError, match=message):
        load_ddpm(dd)
    code = sample_main(["--model", str(dd), "--n", "1", "--out", str(tmp_path / "s"),
                        "--device", "cpu"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "demo" in err


def test_a_vqgan_run_json_naming_an_unknown_preset_is_refused(tiny_model, tmp_path):
    vq, _ = _copy_model(tiny_model, tmp_path)
    _edit(vq, lambda info: info.update(preset="tinyy"))
    with pytest.raises(CheckpointError, match="names no preset mdiff knows"):
        load_vqgan(vq)


def test_the_bundled_demo_records_its_hashes_and_loads():
    demo = BUNDLED_DIR / "demo"
    for kind in ("vqgan", "ddpm"):
        info = json.loads((demo / kind / RUN_NAME).read_text())
        assert info[WEIGHTS_HASH] == file_hash(demo / kind / WEIGHTS_NAME)
    torch.manual_seed(0)
    unet, _, info = load_ddpm(demo / "ddpm")
    assert info.preset == "demo" and not any(p.isnan().any() for p in unet.parameters())
    assert load_vqgan(demo / "vqgan")[1].preset == "demo"
