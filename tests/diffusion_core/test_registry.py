"""The model registry: add, list, show, remove, resolve, and its one-sentence errors; no torch."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from diffusion_core.cli.models import main
from diffusion_core.registry import Registry, RegistryError, mdiff_home

ROOT = Path(__file__).resolve().parents[2]


def _runs(tmp_path: Path, preset: str = "tiny") -> tuple[Path, Path]:
    """A VQ-GAN and a DDPM run folder as mdiff-train writes them (JSON and weights only)."""
    vqgan, ddpm = tmp_path / "vq", tmp_path / "dd"
    vqgan.mkdir()
    ddpm.mkdir()
    (vqgan / "model.safetensors").write_bytes(b"vqgan weights")
    (vqgan / "run.json").write_text(json.dumps({"kind": "vqgan", "preset": preset}))
    import hashlib
    digest = hashlib.sha256(b"vqgan weights").hexdigest()
    (ddpm / "model.safetensors").write_bytes(b"ddpm weights")
    (ddpm / "run.json").write_text(json.dumps({"kind": "ddpm", "preset": preset, "vqgan": {
        "path": str(vqgan), "hash": digest}}))
    return vqgan, ddpm


def test_add_list_show_resolve_remove(tmp_path):
    vqgan, ddpm = _runs(tmp_path)
    registry = Registry(tmp_path / "home")
    entry = registry.add("tiny", vqgan, ddpm)
    assert entry.preset == "tiny" and Path(entry.ddpm) == ddpm.resolve()
    again = Registry(tmp_path / "home")  # read back from models.json
    assert "tiny" in again.entries() and again.get("tiny").vqgan == str(vqgan.resolve())
    assert again.resolve("tiny").ddpm == str(ddpm.resolve())
    assert again.resolve(str(ddpm)).vqgan == str(vqgan)  # a DDPM run folder names its VQ-GAN
    again.remove("tiny")
    assert "tiny" not in Registry(tmp_path / "home").entries()


def test_unknown_name_says_how_to_train_or_add(tmp_path):
    with pytest.raises(RegistryError, match=r"no model named 'duke'.*mdiff-train vqgan.*"
                                            r"mdiff-models add duke"):
        Registry(tmp_path / "home").get("duke")


def test_refusals(tmp_path):
    vqgan, ddpm = _runs(tmp_path)
    registry = Registry(tmp_path / "home")
    with pytest.raises(RegistryError, match="not a usable model name"):
        registry.add("../evil", vqgan, ddpm)
    with pytest.raises(RegistryError, match="not a vqgan run"):
        registry.add("x", ddpm, ddpm)
    registry.add("x", vqgan, ddpm)
    with pytest.raises(RegistryError, match="already registered"):
        registry.add("x", vqgan, ddpm)
    (vqgan / "model.safetensors").write_bytes(b"retrained")
    with pytest.raises(RegistryError, match="was not trained on the VQ-GAN"):
        registry.add("y", vqgan, ddpm)
    (vqgan / "run.json").unlink()
    with pytest.raises(RegistryError, match="its vqgan run .* is missing"):
        registry.get("x")
    with pytest.raises(RegistryError, match="no model named 'zzz'"):
        registry.remove("zzz")


def test_a_damaged_registry_file_is_one_sentence(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    (home / "models.json").write_text("{not json")
    with pytest.raises(RegistryError, match="cannot be read as JSON"):
        Registry(home).entries()


def test_home_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("MDIFF_HOME", str(tmp_path / "h"))
    assert mdiff_home() == tmp_path / "h"
    monkeypatch.delenv("MDIFF_HOME")
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    assert mdiff_home() == tmp_path / "xdg" / "mdiff"


def test_cli_round_trip_and_errors(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("MDIFF_HOME", str(tmp_path / "home"))
    vqgan, ddpm = _runs(tmp_path)
    assert main(["add", "knee", "--vqgan", str(vqgan), "--ddpm", str(ddpm)]) == 0
    capsys.readouterr()
    assert main(["list", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [m["name"] for m in listed["models"] if not m["bundled"]] == ["knee"]
    assert main(["show", "nope"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("mdiff-models: no model named 'nope'") and err.count("\n") == 1


def test_the_registry_imports_no_torch():
    code = ("import sys, diffusion_core.registry, diffusion_core.cli.models; "
            "print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert out.stdout.strip() == "False", out.stderr
