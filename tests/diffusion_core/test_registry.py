"""The model registry: add, list, show, remove, resolve, and its one-sentence errors; no torch."""

from __future__ import annotations

import hashlib
import json
import os
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from diffusion_core.cli.models import main
from diffusion_core.registry import Registry, RegistryError, mdiff_home
from diffusion_core.run_folder import RunRef

ROOT = Path(__file__).resolve().parents[2]


def _runs(write_run_json, tmp_path: Path, preset: str = "tiny") -> tuple[Path, Path]:
    """A VQ-GAN and a DDPM run folder as mdiff-train writes them (JSON and weights only)."""
    vqgan, ddpm = tmp_path / "vq", tmp_path / "dd"
    write_run_json(vqgan, "vqgan", preset)
    (vqgan / "model.safetensors").write_bytes(b"vqgan weights")
    digest = hashlib.sha256(b"vqgan weights").hexdigest()
    write_run_json(ddpm, "ddpm", preset, RunRef(str(vqgan), digest))
    (ddpm / "model.safetensors").write_bytes(b"ddpm weights")
    return vqgan, ddpm


def test_add_list_show_resolve_remove(tmp_path, write_run_json):
    vqgan, ddpm = _runs(write_run_json, tmp_path)
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


def test_refusals(tmp_path, write_run_json):
    vqgan, ddpm = _runs(write_run_json, tmp_path)
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


def test_cli_round_trip_and_errors(tmp_path, monkeypatch, capsys, write_run_json):
    monkeypatch.setenv("MDIFF_HOME", str(tmp_path / "home"))
    vqgan, ddpm = _runs(write_run_json, tmp_path)
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


# --- concurrent adds, unwritable homes, damaged entries, the bundled model's name ---------------

_ADD_WHEN_TOLD = """
import os, sys, time
from pathlib import Path
from diffusion_core.cli.models import main
name, vqgan, ddpm, go = sys.argv[1:]
Path(go + "." + name).touch()  # ready
while not os.path.exists(go):
    time.sleep(0.001)
sys.exit(main(["add", name, "--vqgan", vqgan, "--ddpm", ddpm]))
"""


def test_concurrent_adds_keep_every_model(tmp_path, write_run_json):
    """Six `mdiff-models add` at once, started together: all six end up in models.json."""
    vqgan, ddpm = _runs(write_run_json, tmp_path)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    for round_ in range(3):
        home, go = tmp_path / f"home{round_}", tmp_path / f"go{round_}"
        env["MDIFF_HOME"] = str(home)
        names = [f"m{i}" for i in range(6)]
        procs = [subprocess.Popen([sys.executable, "-c", _ADD_WHEN_TOLD, name, str(vqgan),
                                   str(ddpm), str(go)], env=env, cwd=ROOT,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                 for name in names]
        deadline = time.monotonic() + 60
        while not all(Path(f"{go}.{name}").exists() for name in names):
            assert time.monotonic() < deadline and all(p.poll() is None for p in procs)
            time.sleep(0.01)
        go.touch()
        for proc in procs:
            out, err = proc.communicate(timeout=60)
            assert proc.returncode == 0, err
            assert out.startswith("added ")
        stored = json.loads((home / "models.json").read_text())["models"]
        assert sorted(stored) == names, f"round {round_}"
        assert not list(home.glob(".models.json.*.tmp"))  # no temporary file left behind


def test_the_registry_file_follows_the_umask(tmp_path, write_run_json):
    vqgan, ddpm = _runs(write_run_json, tmp_path)
    old = os.umask(0o027)
    try:
        Registry(tmp_path / "home").add("x", vqgan, ddpm)
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "home" / "models.json").stat().st_mode) == 0o640


def _one_sentence(capsys, status: int, starts: str) -> str:
    assert status == 2
    err = capsys.readouterr().err
    assert err.startswith(f"mdiff-models: {starts}") and err.count("\n") == 1, err
    return err


def test_an_unusable_home_is_one_sentence(tmp_path, monkeypatch, capsys, write_run_json):
    vqgan, ddpm = _runs(write_run_json, tmp_path)
    add = ["add", "x", "--vqgan", str(vqgan), "--ddpm", str(ddpm)]
    a_file = tmp_path / "a_file"
    a_file.write_text("not a folder")
    monkeypatch.setenv("MDIFF_HOME", str(a_file))  # MDIFF_HOME is a file
    _one_sentence(capsys, main(add), f"the model registry's folder {a_file} is a file")
    monkeypatch.setenv("MDIFF_HOME", str(a_file / "home"))  # below a file: unwritable, even as root
    _one_sentence(capsys, main(add), "cannot write the model registry in")
    assert main(["list"]) == 0  # nothing to list there but the bundled model
    capsys.readouterr()
    home = tmp_path / "home"
    (home / "models.json").mkdir(parents=True)  # models.json is a folder
    monkeypatch.setenv("MDIFF_HOME", str(home))
    _one_sentence(capsys, main(add), f"{home / 'models.json'} is a folder")
    _one_sentence(capsys, main(["list"]), f"{home / 'models.json'} is a folder")
    _one_sentence(capsys, main(["show", "x"]), f"{home / 'models.json'} is a folder")
    assert a_file.read_text() == "not a folder"


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0,
                    reason="root writes into a read-only folder")
def test_a_read_only_home_is_one_sentence(tmp_path, monkeypatch, capsys, write_run_json):
    vqgan, ddpm = _runs(write_run_json, tmp_path)
    home = tmp_path / "home"
    Registry(home).add("x", vqgan, ddpm)
    home.chmod(0o500)
    try:
        monkeypatch.setenv("MDIFF_HOME", str(home))
        err = _one_sentence(capsys, main(["add", "y", "--vqgan", str(vqgan), "--ddpm", str(ddpm)]),
                            "cannot write the model registry in")
        assert "Permission denied" in err
        _one_sentence(capsys, main(["remove", "x"]), "cannot write the model registry in")
    finally:
        home.chmod(0o700)
    assert list(Registry(home)._read_models()) == ["x"]


def _write_models(home: Path, models: object) -> None:
    home.mkdir(parents=True, exist_ok=True)
    (home / "models.json").write_text(json.dumps(
        {"format": "mdiff-models", "version": 1, "models": models}))


@pytest.mark.parametrize("bad", [{"vqgan": None}, {"ddpm": None}, {"vqgan": 5}, {"ddpm": ["a"]},
                                 {"preset": None}, {"vqgan": ""}])
def test_a_damaged_entry_is_one_sentence_and_the_others_still_work(tmp_path, monkeypatch, capsys,
                                                                     bad, write_run_json):
    vqgan, ddpm = _runs(write_run_json, tmp_path)
    home = tmp_path / "home"
    good = {"name": "good", "preset": "tiny", "vqgan": str(vqgan), "ddpm": str(ddpm)}
    _write_models(home, {"good": good, "bad": {**good, "name": "bad", **bad},
                         "odd": "not an object"})
    monkeypatch.setenv("MDIFF_HOME", str(home))
    key = next(iter(bad))
    err = _one_sentence(capsys, main(["show", "bad"]), "model 'bad' in")
    assert f"its {key} is {json.dumps(bad[key])}" in err and "mdiff-models remove bad" in err
    _one_sentence(capsys, main(["show", "odd"]), "model 'odd' in")
    with pytest.raises(RegistryError, match="model 'bad' .* is damaged"):
        Registry(home).resolve("bad")
    assert Registry(home).resolve("good").ddpm == str(ddpm)
    assert main(["list", "--json"]) == 0
    out, err = capsys.readouterr()
    assert "good" in [m["name"] for m in json.loads(out)["models"]]
    assert "model 'bad'" in err and "model 'odd'" in err  # reported, not listed
    # Adding another model keeps the damaged entries as they were; remove forgets them.
    assert main(["add", "other", "--vqgan", str(vqgan), "--ddpm", str(ddpm)]) == 0
    assert json.loads((home / "models.json").read_text())["models"]["odd"] == "not an object"
    assert main(["remove", "bad"]) == 0 and main(["remove", "odd"]) == 0
    capsys.readouterr()
    assert main(["list"]) == 0 and capsys.readouterr().err == ""


@pytest.mark.parametrize("content", ["[]", '["a"]', '{"format": "mdiff-models", "models": []}',
                                     '{"format": "other", "models": {}}', "null"])
def test_a_registry_that_is_no_registry_is_one_sentence(tmp_path, monkeypatch, capsys, content,
                                                        write_run_json):
    vqgan, ddpm = _runs(write_run_json, tmp_path)
    home = tmp_path / "home"
    home.mkdir()
    (home / "models.json").write_text(content)
    monkeypatch.setenv("MDIFF_HOME", str(home))
    _one_sentence(capsys, main(["list"]), f"{home / 'models.json'}")
    _one_sentence(capsys, main(["add", "x", "--vqgan", str(vqgan), "--ddpm", str(ddpm)]),
                  f"{home / 'models.json'}")
    assert (home / "models.json").read_text() == content  # left for the user to look at


def test_adding_a_name_again_needs_replace(tmp_path, write_run_json):
    vqgan, ddpm = _runs(write_run_json, tmp_path)
    registry = Registry(tmp_path / "home")
    first = registry.add("x", vqgan, ddpm)
    with pytest.raises(RegistryError, match="already registered; pass --replace"):
        registry.add("x", vqgan, ddpm)
    (tmp_path / "other").mkdir()
    other_vq, other_dd = _runs(write_run_json, tmp_path / "other")
    registry.add("x", other_vq, other_dd, replace=True)
    assert registry.get("x").ddpm == str(other_dd.resolve()) != first.ddpm


def test_a_ddpm_run_that_names_no_vqgan_is_one_sentence(tmp_path, write_run_json):
    _, ddpm = _runs(write_run_json, tmp_path)
    info = json.loads((ddpm / "run.json").read_text())
    for recorded in (None, {"path": None, "hash": "x"}, {"path": "", "hash": "x"},
                     {"hash": "x"}):
        (ddpm / "run.json").write_text(json.dumps({**info, "vqgan_run": recorded}))
        with pytest.raises(RegistryError, match=r"run.json holds settings mdiff cannot use "
                                                r"\(.*vqgan_run.*\)") as err:
            Registry(tmp_path / "home").resolve(str(ddpm))
        assert str(ddpm / "run.json") in str(err.value) and "\n" not in str(err.value)


def test_a_bundled_name_is_reserved(tmp_path, monkeypatch, capsys, write_run_json):
    """`demo` always means the bundled model: `add demo` is refused, a `demo` already in
    models.json is reported and ignored (and can be removed), `list` shows the bundled one."""
    vqgan, ddpm = _runs(write_run_json, tmp_path)
    home = tmp_path / "home"
    monkeypatch.setenv("MDIFF_HOME", str(home))
    for extra in ([], ["--replace"]):
        _one_sentence(capsys, main(["add", "demo", "--vqgan", str(vqgan), "--ddpm", str(ddpm),
                                    *extra]), "'demo' is the name of the model bundled")
    assert not (home / "models.json").exists()
    # A `demo` entry from before the rule (or written by hand), next to a damaged one.
    _write_models(home, {"demo": {"name": "demo", "preset": "tiny", "vqgan": str(vqgan),
                                  "ddpm": str(ddpm)}})
    registry = Registry(home)
    assert registry.get("demo").bundled and registry.resolve("demo").bundled
    assert set(registry.ignored()) == {"demo"}
    assert main(["list", "--json"]) == 0
    out, err = capsys.readouterr()
    demo = [m for m in json.loads(out)["models"] if m["name"] == "demo"]
    assert len(demo) == 1 and demo[0]["bundled"] and demo[0]["preset"] == "demo"
    assert err.startswith("mdiff-models: warning: the model 'demo' in") and "ignored" in err
    assert main(["list"]) == 0
    assert "demo: preset demo, bundled" in capsys.readouterr().out
    assert main(["show", "demo"]) == 0
    out, err = capsys.readouterr()
    assert "bundled" in out and "ignored" in err
    assert main(["remove", "demo"]) == 0  # the user's entry goes; the bundled model stays
    capsys.readouterr()
    assert Registry(home).ignored() == {} and Registry(home).get("demo").bundled
    _one_sentence(capsys, main(["remove", "demo"]), "'demo' is bundled with mdiff")


def test_a_bundled_name_needs_no_registry_and_beats_a_folder_of_that_name(tmp_path, monkeypatch,
                                                                          write_run_json):
    home = tmp_path / "home"
    home.mkdir()
    (home / "models.json").write_text("{not json")
    assert Registry(home).get("demo").bundled  # a damaged models.json does not matter to it
    _, ddpm = _runs(write_run_json, tmp_path)
    ddpm.rename(tmp_path / "demo")  # a DDPM run folder called demo in the working directory
    monkeypatch.chdir(tmp_path)
    assert Registry(home).resolve("demo").bundled
    assert not Registry(home).resolve("./demo").bundled  # the folder, named as a path


def test_a_folder_without_run_json_is_named_as_such(tmp_path, monkeypatch):
    """`--model FOLDER` where the folder lost its run.json says what is missing, not "no model
    named ... registered" (the study side resolves through the registry)."""
    registry = Registry(tmp_path / "home")
    folder = tmp_path / "ddpm_run"
    folder.mkdir()
    with pytest.raises(RegistryError, match=r"run.json is missing"):
        registry.resolve(str(folder))
    monkeypatch.chdir(tmp_path)
    with pytest.raises(RegistryError, match="no model named 'nothing_here'"):
        registry.resolve("nothing_here")


def test_presets_table_in_text_and_json(capsys):
    assert main(["presets"]) == 0
    text = capsys.readouterr().out
    assert text.splitlines()[0].split()[:2] == ["preset", "H"]
    assert "64 x 64 x 32" in text and "(32, 64, 64)" in text and "not measured" in text
    assert main(["presets", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)["presets"]
    assert {row["preset"] for row in rows} >= {"mrnet", "adni", "duke", "lidc", "demo", "tiny"}
