"""A minimal callback event, so the Qt-free models can notify views without Qt signals."""

from __future__ import annotations

import inspect
import weakref
from collections.abc import Callable
from typing import Any


class Event:
    """A list of callbacks called, in connection order, each time the event is emitted.

    A bound method is held by a weak reference, so a model never keeps its views alive. A view
    holding its model and connected to it would otherwise form a reference cycle that only
    Python's cyclic garbage collector can free: at whichever allocation sets it off, possibly
    in the loader thread or while Qt is delivering an event to that very window, and Qt widgets
    deleted that way crash the app. Other callables (functions, lambdas) are held strongly.
    """

    def __init__(self) -> None:
        self._callbacks: list[Callable[..., Any] | weakref.WeakMethod] = []

    def connect(self, callback: Callable[..., Any]) -> None:
        """Call `callback` on every later emit."""
        self._callbacks.append(weakref.WeakMethod(callback) if inspect.ismethod(callback)
                               else callback)

    def disconnect(self, callback: Callable[..., Any]) -> None:
        """Stop calling `callback`; a callback that was never connected is ignored."""
        for entry in self._callbacks:
            if _resolve(entry) == callback:
                self._callbacks.remove(entry)
                return

    def emit(self, *args: Any) -> None:
        """Call every connected callback with `args`; methods of deleted objects are dropped."""
        for entry in list(self._callbacks):
            callback = _resolve(entry)
            if callback is None:
                self._callbacks.remove(entry)
            else:
                callback(*args)


def _resolve(entry: Callable[..., Any] | weakref.WeakMethod) -> Callable[..., Any] | None:
    """The callable an entry stands for; None when its object is gone."""
    return entry() if isinstance(entry, weakref.WeakMethod) else entry
