"""`mdiff-models`: named models under $MDIFF_HOME; no torch.

A model is the latent diffusion model (a VQ-GAN run plus a DDPM run) or the GAN baseline (one
WGAN-GP run, `kind` "wgan"); `mdiff-sample` and `mdiff-study create --model` take either.

The registry is one plain JSON file, `$MDIFF_HOME/models.json` (default: the user's data
directory, e.g. ~/.local/share/mdiff). A name such as `duke` given to `--model` resolves through
it; so does a DDPM run folder, which names its own VQ-GAN, or a GAN run folder. Models bundled
with the package (`demo`, `demo-gan`) are listed too and cannot be removed; their names are
reserved: `add` refuses them, and an entry of that name already in models.json (written by an
older mdiff, or by hand) is ignored in favour of the bundled model and reported by `ignored()`.

Every change is a read-modify-write under an exclusive lock on `models.json.lock` beside the file
(POSIX `flock`), and the file is replaced atomically, so concurrent `mdiff-models add` keep every
entry. Readers take no lock: they see the old file or the new one, never half of one.
"""

from __future__ import annotations

import json
import os
import re
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from diffusion_core import run_folder
from diffusion_core.atomic_files import JSONFileError, file_hash, read_json, write_json
from diffusion_core.run_folder import CheckpointError

try:
    import fcntl
except ImportError:  # Windows: no flock; concurrent adds there may still lose one
    fcntl = None

REGISTRY_NAME = "models.json"
LOCK_NAME = "models.json.lock"
REGISTRY_FORMAT = "mdiff-models"
REGISTRY_VERSION = 1
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
BUNDLED_DIR = Path(__file__).parent / "bundled"


class RegistryError(Exception):
    """A model that cannot be found, added or removed; the message says what to do."""


@dataclass(frozen=True)
class ModelEntry:
    """A named model: its preset and the run folders it samples from (a VQ-GAN and a DDPM run
    for a diffusion model; one GAN run, `gan`, with `vqgan` and `ddpm` empty, for a GAN)."""

    name: str
    preset: str
    vqgan: str
    ddpm: str
    added: str = ""
    bundled: bool = False
    kind: str = "diffusion"  # samples.MODEL_KINDS: "diffusion" or "wgan"
    gan: str = ""

    def runs(self) -> dict[str, str]:
        """The run folders sampling needs, by the kind of run each must be."""
        return {"wgan": self.gan} if self.kind == "wgan" else {"vqgan": self.vqgan,
                                                               "ddpm": self.ddpm}

    def stored(self) -> dict:
        """The entry as models.json keeps it (a diffusion model's as mdiff always wrote it)."""
        if self.kind == "wgan":
            return {"kind": "wgan", "preset": self.preset, "gan": self.gan, "added": self.added}
        return {"preset": self.preset, "vqgan": self.vqgan, "ddpm": self.ddpm,
                "added": self.added}


def mdiff_home() -> Path:
    """$MDIFF_HOME, else the platform's per-user data directory + /mdiff."""
    if os.environ.get("MDIFF_HOME"):
        return Path(os.environ["MDIFF_HOME"]).expanduser()
    if sys.platform == "win32":
        return Path(os.environ.get("APPDATA", Path.home())) / "mdiff"
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Application Support" / "mdiff"
    return Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share") / "mdiff"


def _how_to_make(name: str) -> str:
    return (f"train one (mdiff-train vqgan --preset PRESET --data PREP --out VQGAN_RUN, then "
            f"mdiff-train ddpm --preset PRESET --vqgan VQGAN_RUN --data PREP --out DDPM_RUN) and "
            f"register it with mdiff-models add {name} --vqgan VQGAN_RUN --ddpm DDPM_RUN")


def _shown(value: object) -> str:
    """A JSON value as a short phrase for an error message."""
    text = json.dumps(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _parse_entry(name: str, raw: object) -> ModelEntry | str:
    """A models.json entry as a ModelEntry, or what is wrong with it."""
    if not isinstance(raw, dict):
        return f"its entry is {_shown(raw)}, not an object"
    gan = raw.get("kind") == "wgan"
    for key, what in (("preset", "a preset name"),
                      *((("gan", "a run folder"),) if gan else
                        (("vqgan", "a run folder"), ("ddpm", "a run folder")))):
        value = raw.get(key)
        if not isinstance(value, str) or not value:
            return f"its {key} is {_shown(value)}, not {what}"
    added = raw.get("added")
    added = added if isinstance(added, str) else ""
    if gan:
        return ModelEntry(name, raw["preset"], "", "", added=added, kind="wgan", gan=raw["gan"])
    return ModelEntry(name, raw["preset"], raw["vqgan"], raw["ddpm"], added=added)


class Registry:
    """The models of one $MDIFF_HOME plus the bundled ones."""

    def __init__(self, home: str | os.PathLike | None = None) -> None:
        self.home = Path(home) if home is not None else mdiff_home()
        self.path = self.home / REGISTRY_NAME
        self.lock_path = self.home / LOCK_NAME

    # --- reading -----------------------------------------------------------------------------

    def _read_models(self) -> dict:
        """The `models` object of models.json as stored ({} before the first add)."""
        if self.path.is_dir():
            raise RegistryError(f"{self.path} is a folder, not the model registry file; move it "
                                f"out of the way (models are re-added with mdiff-models add)")
        if not self.path.exists():
            return {}
        try:
            data = read_json(self.path, "model registry")
        except JSONFileError as err:
            raise RegistryError(f"{err}; fix or delete it (models are re-added with "
                                f"mdiff-models add)") from None
        if data.get("format") != REGISTRY_FORMAT or not isinstance(data.get("models"), dict):
            raise RegistryError(f"{self.path} is not an mdiff model registry; move it out of "
                                f"the way (models are re-added with mdiff-models add)")
        return data["models"]

    def _user_entries(self) -> tuple[dict[str, ModelEntry], dict[str, str]]:
        """The usable entries of models.json, and what is wrong with each damaged one."""
        entries, damaged = {}, {}
        for name, raw in self._read_models().items():
            parsed = _parse_entry(name, raw)
            if isinstance(parsed, ModelEntry):
                entries[name] = parsed
            else:
                damaged[name] = parsed
        return entries, damaged

    def _bundled_entries(self) -> dict[str, ModelEntry]:
        entries = {}
        for folder in sorted(BUNDLED_DIR.glob("*/")) if BUNDLED_DIR.is_dir() else []:
            vqgan, ddpm, gan = folder / "vqgan", folder / "ddpm", folder / "gan"
            for run, kind in ((ddpm, "ddpm"), (gan, "wgan")):
                if not (run / run_folder.RUN_NAME).is_file():
                    continue
                try:
                    info = run_folder.read_run_info(run, kind)
                except CheckpointError as err:
                    raise RegistryError(f"the bundled model {folder.name!r} is damaged ({err}); "
                                        f"reinstall mdiff") from None
                entries[folder.name] = (
                    ModelEntry(folder.name, info.preset, "", "", bundled=True, kind="wgan",
                               gan=str(gan)) if kind == "wgan" else
                    ModelEntry(folder.name, info.preset, str(vqgan), str(ddpm), bundled=True))
        return entries

    def entries(self) -> dict[str, ModelEntry]:
        """Every usable model by name: the bundled ones, then the user's (whose entries of a
        bundled model's name are ignored, see `ignored`; damaged ones are left out, see
        `damaged`)."""
        bundled = self._bundled_entries()
        user, _ = self._user_entries()
        return {**bundled, **{name: e for name, e in user.items() if name not in bundled}}

    def damaged(self) -> dict[str, str]:
        """Sentences for the entries of models.json that cannot be used, by name."""
        bundled = self._bundled_entries()
        _, damaged = self._user_entries()
        return {name: self._damaged_sentence(name, problem)
                for name, problem in damaged.items() if name not in bundled}

    def ignored(self) -> dict[str, str]:
        """Sentences for the entries of models.json that a bundled model's name hides, by name."""
        bundled = self._bundled_entries()
        return {name: (f"the model {name!r} in {self.path} is ignored: {name!r} is the name of "
                       f"the model bundled with mdiff, which is used instead; remove yours with "
                       f"mdiff-models remove {name} and add it again under another name")
                for name in self._read_models() if name in bundled}

    def _damaged_sentence(self, name: str, problem: str) -> str:
        return (f"model {name!r} in {self.path} is damaged ({problem}); add it again with "
                f"mdiff-models add {name} --replace --vqgan RUN --ddpm RUN, or forget it with "
                f"mdiff-models remove {name}")

    def get(self, name: str) -> ModelEntry:
        """The model called `name`, checked to still have both its run folders.

        A bundled model's name always means the bundled model (models.json is not even read)."""
        entry = self._bundled_entries().get(name)
        if entry is None:
            user, damaged = self._user_entries()
            if name in damaged:
                raise RegistryError(self._damaged_sentence(name, damaged[name]))
            if name not in user:
                known = ", ".join(self.entries()) or "none yet"
                raise RegistryError(f"no model named {name!r} is registered (known: {known}); "
                                    f"{_how_to_make(name)}")
            entry = user[name]
        for kind, folder in entry.runs().items():
            folder = Path(folder)
            if not (folder / run_folder.RUN_NAME).is_file():
                raise RegistryError(f"model {name!r}: its {kind} run {folder} is missing; restore "
                                    f"it, or remove the model with mdiff-models remove {name}")
        return entry

    # --- writing -----------------------------------------------------------------------------

    def _unwritable(self, err: OSError) -> RegistryError:
        if self.home.exists() and not self.home.is_dir():
            return RegistryError(f"the model registry's folder {self.home} is a file; set "
                                 f"MDIFF_HOME to a folder you can write")
        where = f" ({err.filename})" if err.filename and Path(err.filename) != self.home else ""
        return RegistryError(f"cannot write the model registry in {self.home}: "
                             f"{err.strerror or err}{where}; set MDIFF_HOME to a folder you can "
                             f"write, or fix that folder's permissions")

    @contextmanager
    def _locked(self) -> Iterator[None]:
        """Hold the registry's lock file exclusively (other writers wait for it)."""
        try:
            self.home.mkdir(parents=True, exist_ok=True)
            handle = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o666)  # umask applies
        except OSError as err:
            raise self._unwritable(err) from None
        try:
            if fcntl is not None:
                fcntl.flock(handle, fcntl.LOCK_EX)
            yield
        finally:
            os.close(handle)  # releases the lock; the lock file stays (deleting it would race)

    def _write_models(self, models: dict) -> None:
        """Replace models.json atomically (a temporary file beside it, then os.replace)."""
        try:
            write_json(self.path, {"format": REGISTRY_FORMAT,
                                             "version": REGISTRY_VERSION, "models": models})
        except OSError as err:
            raise self._unwritable(err) from None

    def add(self, name: str, vqgan: str | os.PathLike, ddpm: str | os.PathLike, *,
            replace: bool = False) -> ModelEntry:
        """Register a DDPM run and the VQ-GAN run it was trained on under `name`."""
        self._check_new_name(name, replace)  # early, before hashing the weights
        vqgan_dir, ddpm_dir = Path(vqgan).resolve(), Path(ddpm).resolve()
        try:
            vq_info = run_folder.read_run_info(vqgan_dir, "vqgan")
            dd_info = run_folder.read_run_info(ddpm_dir, "ddpm")
        except CheckpointError as err:
            raise RegistryError(str(err)) from None
        weights = vqgan_dir / run_folder.WEIGHTS_NAME
        if not weights.is_file() or file_hash(weights) != dd_info.vqgan_run.hash:
            raise RegistryError(f"the DDPM in {ddpm_dir} was not trained on the VQ-GAN in "
                                f"{vqgan_dir} (its weights differ from the ones it recorded); "
                                f"pass the VQ-GAN run it was trained with")
        if vq_info.preset != dd_info.preset:
            raise RegistryError(f"the VQ-GAN is of preset {vq_info.preset!r} and the DDPM "
                                f"of {dd_info.preset!r}")
        entry = ModelEntry(name, dd_info.preset, str(vqgan_dir), str(ddpm_dir),
                           added=datetime.now(UTC).isoformat(timespec="seconds"))
        return self._store(entry, replace)

    def add_gan(self, name: str, run: str | os.PathLike, *, replace: bool = False) -> ModelEntry:
        """Register a GAN baseline run (mdiff-train wgan) under `name`."""
        self._check_new_name(name, replace)
        run_dir = Path(run).resolve()
        try:
            info = run_folder.read_run_info(run_dir, "wgan")
            run_folder.verified_weights(run_dir, info)
        except CheckpointError as err:
            raise RegistryError(str(err)) from None
        return self._store(ModelEntry(name, info.preset, "", "", kind="wgan", gan=str(run_dir),
                                      added=datetime.now(UTC).isoformat(timespec="seconds")),
                           replace)

    def _check_new_name(self, name: str, replace: bool) -> None:
        """RegistryError for a name `add` cannot take (checked before any weights are read)."""
        if not _NAME.match(name):
            raise RegistryError(f"{name!r} is not a usable model name: use letters, digits, '.', "
                                f"'_' or '-' (at most 64)")
        if name in self._bundled_entries():
            raise RegistryError(f"{name!r} is the name of the model bundled with mdiff; choose "
                                f"another name")
        if name in self._read_models() and not replace:
            raise RegistryError(f"a model named {name!r} is already registered; pass --replace "
                                f"or remove it first")

    def _store(self, entry: ModelEntry, replace: bool) -> ModelEntry:
        """Write `entry` into models.json under the lock; returns it."""
        with self._locked():
            models = self._read_models()  # again: another add may have written since
            if entry.name in models and not replace:
                raise RegistryError(f"a model named {entry.name!r} is already registered; pass "
                                    f"--replace or remove it first")
            models[entry.name] = entry.stored()
            self._write_models(models)
        return entry

    def remove(self, name: str) -> None:
        """Forget model `name` (its run folders are left as they are); a damaged entry, or one
        hidden by a bundled model's name, is removed too."""
        if name not in self._read_models():  # before taking the lock, which creates the folder
            if name in self._bundled_entries():
                raise RegistryError(f"{name!r} is bundled with mdiff and cannot be removed")
            raise RegistryError(f"no model named {name!r} is registered")
        with self._locked():
            models = self._read_models()
            if name not in models:
                raise RegistryError(f"no model named {name!r} is registered")
            del models[name]
            self._write_models(models)

    def resolve(self, name_or_run: str | os.PathLike) -> ModelEntry:
        """A registered name, or a DDPM run folder (whose run.json names its VQ-GAN).

        A bundled model's name, given as a string, is that model even where a folder of that
        name holds a run: write ./demo for the folder."""
        if isinstance(name_or_run, str) and name_or_run in self._bundled_entries():
            return self.get(name_or_run)
        path = Path(name_or_run)
        if (path / run_folder.RUN_NAME).is_file():
            try:
                info = run_folder.read_run_info(path)
                if info.kind == "wgan":
                    return ModelEntry(path.name, info.preset, "", "", kind="wgan",
                                      gan=str(path.resolve()))
                info = run_folder.read_run_info(path, "ddpm")
            except CheckpointError as err:
                raise RegistryError(str(err)) from None
            vqgan = Path(info.vqgan_run.path)
            if not vqgan.is_absolute():
                vqgan = path / vqgan
            return ModelEntry(path.name, info.preset, str(vqgan), str(path.resolve()))
        if path.is_dir() and str(name_or_run) not in self.entries():
            raise RegistryError(f"{path} is a folder but not a DDPM or GAN run: its "
                                f"{run_folder.RUN_NAME} is missing; give the run folder "
                                f"mdiff-train ddpm or wgan wrote, or a registered model's name")
        return self.get(str(name_or_run))
