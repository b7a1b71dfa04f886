"""The models' callback event: order, disconnect, and views never kept alive by their model."""

from __future__ import annotations

import gc
import weakref

from reader_app.model.events import Event


class View:
    """A stand-in for a widget that listens to its model."""

    def __init__(self, model_event: Event, log: list) -> None:
        self.model_event = model_event  # the view holds its model, as the real ones do
        self.log = log
        model_event.connect(self.on_change)

    def on_change(self, value: int) -> None:
        """Record a change."""
        self.log.append(value)


def test_callbacks_run_in_connection_order_and_disconnect():
    """Functions and methods are called in order; a disconnected one is no longer called."""
    event, log = Event(), []
    view = View(event, log)
    event.connect(lambda value: log.append(value * 10))
    event.emit(1)
    event.disconnect(view.on_change)
    event.disconnect(print)  # never connected: ignored
    event.emit(2)
    assert log == [1, 10, 20]


def test_a_view_is_freed_as_soon_as_nothing_else_holds_it():
    """A bound method is held weakly: view and model form no reference cycle, so the view goes
    the moment its last reference does, not at some later garbage collection (which for a Qt
    window may run in the loader thread, or in the middle of Qt delivering it an event)."""
    event, log = Event(), []
    gc.disable()
    try:
        view = View(event, log)
        gone = weakref.ref(view)
        del view
        assert gone() is None
    finally:
        gc.enable()
    event.emit(3)
    assert log == []


def test_a_lambda_is_kept_alive_by_the_event():
    """A function nothing else holds still runs: only methods are held weakly."""
    event, log = Event(), []
    event.connect(lambda value: log.append(value))
    gc.collect()
    event.emit(4)
    assert log == [4]
