"""`mdiff-models`: named models (a VQ-GAN run plus a DDPM run) under $MDIFF_HOME; no torch.

The registry is one plain JSON file, `$MDIFF_HOME/models.json` (default: the user's data
directory, e.g. ~/.local/share/mdiff). A name such as `duke` given to `--model` resolves through
it; so does a DDPM run folder, which names its own VQ-GAN. Models bundled with the package (the
demo) are listed too and cannot be removed.
"""

from __future__ import annotations

import os
import re
import sys
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

from diffusion_core import run_files
from diffusion_core.models import read_run
from diffusion_core.run_files import CheckpointError

REGISTRY_NAME = "models.json"
REGISTRY_FORMAT = "mdiff-models"
REGISTRY_VERSION = 1
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
BUNDLED_DIR = Path(__file__).parent / "bundled"


class RegistryError(Exception):
    """A model that cannot be found, added or removed; the message says what to do."""


@dataclass(frozen=True)
class ModelEntry:
    """A named model: its preset and the two run folders it samples from."""

    name: str
    preset: str
    vqgan: str
    ddpm: str
    added: str = ""
    bundled: bool = False


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


class Registry:
    """The models of one $MDIFF_HOME plus the bundled ones."""

    def __init__(self, home: str | os.PathLike | None = None) -> None:
        self.home = Path(home) if home is not None else mdiff_home()
        self.path = self.home / REGISTRY_NAME

    # --- reading -----------------------------------------------------------------------------

    def _user_entries(self) -> dict[str, ModelEntry]:
        if not self.path.is_file():
            return {}
        try:
            data = run_files.read_json(self.path, "model registry")
        except CheckpointError as err:
            raise RegistryError(f"{err}; fix or delete it (models are re-added with "
                                f"mdiff-models add)") from None
        if data.get("format") != REGISTRY_FORMAT or not isinstance(data.get("models"), dict):
            raise RegistryError(f"{self.path} is not an mdiff model registry")
        try:
            return {name: ModelEntry(**entry, bundled=False)
                    for name, entry in data["models"].items()}
        except TypeError as err:
            raise RegistryError(f"{self.path} is damaged ({err})") from None

    def _bundled_entries(self) -> dict[str, ModelEntry]:
        entries = {}
        for folder in sorted(BUNDLED_DIR.glob("*/")) if BUNDLED_DIR.is_dir() else []:
            vqgan, ddpm = folder / "vqgan", folder / "ddpm"
            if (ddpm / run_files.RUN_NAME).is_file():
                info = run_files.read_json(ddpm / run_files.RUN_NAME, "bundled model")
                entries[folder.name] = ModelEntry(folder.name, str(info.get("preset", "")),
                                                  str(vqgan), str(ddpm), bundled=True)
        return entries

    def entries(self) -> dict[str, ModelEntry]:
        """Every model by name; a user's model shadows a bundled one of the same name."""
        return {**self._bundled_entries(), **self._user_entries()}

    def get(self, name: str) -> ModelEntry:
        """The model called `name`, checked to still have both its run folders."""
        entries = self.entries()
        if name not in entries:
            known = ", ".join(entries) or "none yet"
            raise RegistryError(f"no model named {name!r} is registered (known: {known}); "
                                f"{_how_to_make(name)}")
        entry = entries[name]
        for kind in ("vqgan", "ddpm"):
            folder = Path(getattr(entry, kind))
            if not (folder / run_files.RUN_NAME).is_file():
                raise RegistryError(f"model {name!r}: its {kind} run {folder} is missing; restore "
                                    f"it, or remove the model with mdiff-models remove {name}")
        return entry

    # --- writing -----------------------------------------------------------------------------

    def _save(self, entries: dict[str, ModelEntry]) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        models = {name: {k: v for k, v in asdict(e).items() if k not in ("name", "bundled")}
                  | {"name": name} for name, e in entries.items()}
        run_files.write_json(self.path, {"format": REGISTRY_FORMAT, "version": REGISTRY_VERSION,
                                         "models": models})

    def add(self, name: str, vqgan: str | os.PathLike, ddpm: str | os.PathLike, *,
            replace: bool = False) -> ModelEntry:
        """Register a DDPM run and the VQ-GAN run it was trained on under `name`."""
        if not _NAME.match(name):
            raise RegistryError(f"{name!r} is not a usable model name: use letters, digits, '.', "
                                f"'_' or '-' (at most 64)")
        entries = self._user_entries()
        if name in entries and not replace:
            raise RegistryError(f"a model named {name!r} is already registered; pass --replace "
                                f"or remove it first")
        vqgan_dir, ddpm_dir = Path(vqgan).resolve(), Path(ddpm).resolve()
        try:
            vq_info = read_run(vqgan_dir, "vqgan")
            dd_info = read_run(ddpm_dir, "ddpm")
        except CheckpointError as err:
            raise RegistryError(str(err)) from None
        recorded = dd_info.get("vqgan", {})
        weights = vqgan_dir / run_files.WEIGHTS_NAME
        if not weights.is_file() or run_files.file_hash(weights) != recorded.get("hash"):
            raise RegistryError(f"the DDPM in {ddpm_dir} was not trained on the VQ-GAN in "
                                f"{vqgan_dir} (its weights differ from the ones it recorded); "
                                f"pass the VQ-GAN run it was trained with")
        if vq_info.get("preset") != dd_info.get("preset"):
            raise RegistryError(f"the VQ-GAN is of preset {vq_info.get('preset')!r} and the DDPM "
                                f"of {dd_info.get('preset')!r}")
        entry = ModelEntry(name, str(dd_info.get("preset")), str(vqgan_dir), str(ddpm_dir),
                           added=datetime.now(UTC).isoformat(timespec="seconds"))
        entries[name] = entry
        self._save(entries)
        return entry

    def remove(self, name: str) -> None:
        """Forget model `name` (its run folders are left as they are)."""
        entries = self._user_entries()
        if name not in entries:
            if name in self._bundled_entries():
                raise RegistryError(f"{name!r} is bundled with mdiff and cannot be removed")
            raise RegistryError(f"no model named {name!r} is registered")
        del entries[name]
        self._save(entries)

    def resolve(self, name_or_run: str | os.PathLike) -> ModelEntry:
        """A registered name, or a DDPM run folder (whose run.json names its VQ-GAN)."""
        path = Path(name_or_run)
        if (path / run_files.RUN_NAME).is_file():
            try:
                info = read_run(path, "ddpm")
            except CheckpointError as err:
                raise RegistryError(str(err)) from None
            vqgan = Path(info.get("vqgan", {}).get("path", ""))
            if not vqgan.is_absolute():
                vqgan = path / vqgan
            return ModelEntry(path.name, str(info.get("preset")), str(vqgan), str(path.resolve()))
        return self.get(str(name_or_run))

