"""The model folder is Qt-free: every module under reader_app/model/ imports on a machine without
PySide6 or pyqtgraph, and none of them pulls in torch."""

from __future__ import annotations

import json
import pkgutil
import subprocess
import sys
from pathlib import Path

import reader_app.model

ROOT = Path(__file__).resolve().parents[3]
# What the model must never load: Qt and its plotting layer (the views' business), and torch
# (the app opens without it).
FORBIDDEN = ("PySide6", "pyqtgraph", "shiboken6", "torch")


def model_modules() -> list[str]:
    """Every module under reader_app/model/, found by walking the folder."""
    return sorted(info.name for info in pkgutil.walk_packages(reader_app.model.__path__,
                                                              prefix="reader_app.model."))


def _loaded_after_importing(modules: list[str]) -> list[str]:
    """The forbidden packages in sys.modules after importing `modules` in a fresh interpreter
    where PySide6 and pyqtgraph cannot be imported (as if uninstalled)."""
    code = (
        "import importlib, json, sys\n"
        "sys.modules['PySide6'] = None\n"
        "sys.modules['pyqtgraph'] = None\n"
        f"for name in {modules!r}:\n"
        "    importlib.import_module(name)\n"
        f"print(json.dumps([k for k in {FORBIDDEN!r}\n"
        "                   if sys.modules.get(k) is not None]))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr  # the ImportError names the module and the import
    return json.loads(out.stdout)


def test_the_walk_finds_the_model_modules():
    """The walk sees the folder's modules (so the next test cannot pass on an empty list)."""
    found = model_modules()
    for name in ("session", "display", "keymap", "windowing", "review", "loader"):
        assert f"reader_app.model.{name}" in found


def test_every_model_module_imports_with_qt_uninstalled():
    """Each module under reader_app/model/, and the command's parser, import without PySide6
    or pyqtgraph and load neither them nor torch."""
    assert _loaded_after_importing(["reader_app.model", *model_modules(),
                                    "reader_app.cli.reader"]) == []
