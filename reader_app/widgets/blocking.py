"""Silencing a Qt object's signals while a model change is written into it."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from PySide6.QtCore import QObject


@contextmanager
def signals_blocked(obj: QObject) -> Iterator[None]:
    """Block `obj`'s signals inside the block, so model -> widget updates never echo back.

    Not `QSignalBlocker`: in PySide6 6.12 each use of it drops one reference to `None` too
    many, and after a few thousand slice steps the interpreter aborts.
    """
    previous = obj.blockSignals(True)
    try:
        yield
    finally:
        obj.blockSignals(previous)
