"""Reading case volumes in a background thread, so the next case is ready before it is asked for."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future, InvalidStateError, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from diffusion_core.modality import MR_PERCENTILES
from reader_app.model.windowing import Window, foreground_window
from studies.case_file import read_case as read_case_file


@dataclass(frozen=True)
class CaseImage:
    """A case ready to display: the canonical (D, H, W) array, its spacing and its auto-window."""

    array: np.ndarray
    spacing: tuple[float, float, float]
    auto_window: Window


def read_case(path: Path, percentiles: tuple[float, float] = MR_PERCENTILES) -> CaseImage:
    """Read one case file in canonical orientation and compute its auto-window (the percentiles
    of its foreground).

    Study cases are int16 NIfTI; `studies.case_file.read_case` keeps the stored integers (no
    float copy) and turns any file orientation into the canonical one. Failures raise
    `VolumeError`.
    """
    case = read_case_file(path)
    return CaseImage(array=case.array, spacing=case.spacing,
                     auto_window=foreground_window(case.array, percentiles))


class CaseCache:
    """Futures of case images read by one background thread, keeping only a few in memory.

    `request_all` returns the future of what one position shows (a case, or the two members of
    a paired trial), starting the reads if needed; `retain` forgets every case but the listed
    ones (the current position's and its neighbours'), so memory stays bounded.
    """

    def __init__(self, read: Callable[[Path], CaseImage] = read_case) -> None:
        self._read = read
        # One worker: reads happen in request order, and a prefetch never competes with the
        # case the reader is waiting for on a 2-core machine.
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="case-loader")
        self._futures: dict[Path, Future[CaseImage]] = {}
        self._groups: dict[tuple[Path, ...], Future[tuple[CaseImage, ...]]] = {}

    def request(self, path: Path) -> Future[CaseImage]:
        """The future of the case at `path`, reading it in the background if not yet started."""
        future = self._futures.get(path)
        if future is None:
            future = self._executor.submit(self._read, path)
            self._futures[path] = future
        return future

    def request_all(self, paths: Sequence[Path]) -> Future[tuple[CaseImage, ...]]:
        """One future of the images at `paths`, in order: done once every read is, failed with
        the first read's error (a cancelled read cancels it). The same future each time the
        same paths are asked for, until `retain` drops one of them."""
        key = tuple(paths)
        group = self._groups.get(key)
        if group is None:
            group = _gather([self.request(path) for path in key])
            self._groups[key] = group
        return group

    def retain(self, paths: Iterable[Path]) -> None:
        """Drop every cached case whose path is not in `paths` (a failed read is retried later)."""
        keep = set(paths)
        for path in list(self._futures):
            if path not in keep:
                self._futures.pop(path).cancel()
        for key in list(self._groups):
            if not keep.issuperset(key):
                self._groups.pop(key).cancel()

    def shutdown(self) -> None:
        """Stop the loader thread; pending reads are cancelled."""
        self._executor.shutdown(wait=False, cancel_futures=True)
        self._futures.clear()
        self._groups.clear()


def _gather(parts: list[Future[CaseImage]]) -> Future[tuple[CaseImage, ...]]:
    """A future of every part's result, settled when the last part is (in the loader thread):
    failed with the first failed part's error, cancelled with any part."""
    group: Future[tuple[CaseImage, ...]] = Future()

    def settle(_part: Future) -> None:
        if group.done() or not all(part.done() for part in parts):
            return
        try:
            if any(part.cancelled() for part in parts):
                group.cancel()
                return
            failed = next((part.exception() for part in parts
                           if part.exception() is not None), None)
            if failed is not None:
                group.set_exception(failed)
            else:
                group.set_result(tuple(part.result() for part in parts))
        except InvalidStateError:
            pass  # settled (or cancelled) meanwhile in another thread

    for part in parts:
        part.add_done_callback(settle)
    return group
