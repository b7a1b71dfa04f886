"""DESIGN.md's import rules: the app starts without torch, and only reader_app imports Qt."""

from __future__ import annotations

import json
import pkgutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# Modules that the app or studies import at start-up: numpy/scipy/nibabel/pydicom only.
LIGHT_CORE = ["diffusion_core", "diffusion_core.io", "diffusion_core.presets",
              "diffusion_core.preprocess"]


def _modules(package: str) -> list[str]:
    """Every module of a top-level package of this repository."""
    found = [package]
    for info in pkgutil.walk_packages([str(ROOT / package)], prefix=package + "."):
        found.append(info.name)
    return found


def _imported_after(modules: list[str]) -> set[str]:
    """Top-level names in sys.modules after importing `modules` in a fresh interpreter."""
    code = (
        "import importlib, json, sys\n"
        f"for m in {modules!r}:\n"
        "    importlib.import_module(m)\n"
        "print(json.dumps(sorted({k.split('.')[0] for k in sys.modules})))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                         text=True, check=True)
    return set(json.loads(out.stdout))


def test_app_side_imports_no_torch_or_monai():
    """reader_app, studies and the light diffusion_core modules never pull in torch or MONAI."""
    light = [m for m in LIGHT_CORE if (ROOT / (m.replace(".", "/") + ".py")).exists()
             or (ROOT / m.replace(".", "/")).is_dir()]
    modules = light + _modules("studies") + _modules("reader_app")
    heavy = _imported_after(modules) & {"torch", "monai", "torchmetrics"}
    assert not heavy, f"importing {modules} pulled in {sorted(heavy)}"


@pytest.mark.parametrize("package", ["diffusion_core", "studies", "evaluation"])
def test_only_reader_app_imports_qt(package):
    """No package but reader_app imports Qt or pyqtgraph."""
    qt = _imported_after(_modules(package)) & {"PySide6", "pyqtgraph", "shiboken6"}
    assert not qt, f"{package} imports {sorted(qt)}"
