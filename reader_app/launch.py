"""Starting the reader app: open a study for one reader (or a preview without one), then show
the reading window or render it into a screenshot."""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import shiboken6
from PySide6.QtCore import QEvent, Qt, QTimer, qInstallMessageHandler
from PySide6.QtWidgets import QApplication, QInputDialog, QLineEdit

from reader_app import APP_TITLE
from reader_app.model.opening import open_study_for_reading
from reader_app.model.preview_store import PreviewStore
from reader_app.model.session import ReadingSession
from reader_app.widgets.main_window import ReaderWindow
from reader_app.widgets.theme import apply_dark_theme
from studies.ratings import (
    RatingStore,
    RatingStoreError,
    existing_reader,
    reader_order,
    validate_reader,
)
from studies.study import Study, StudyError

EXIT_USAGE = 2  # every refusal, a locked reader too (diffusion_core.cli.common's rule)


class LaunchError(Exception):
    """Why the app could not open or finish, as one sentence for the reader, with the exit
    status; `dialog` is False where a dialog would not help (no display, a cancelled name)."""

    def __init__(self, message: str, status: int = EXIT_USAGE, dialog: bool = True) -> None:
        super().__init__(message)
        self.status = status
        self.dialog = dialog


@dataclass(frozen=True)
class ReaderRequest:
    """What `mdiff-reader` was asked: the study, the reader, and for a screenshot the PNG, the
    1-based case and slice to show and the window's size in pixels (width, height).

    `case_id` picks the screenshot's case by its id instead, for a caller that holds the key
    (the demo shows a synthetic case); `mdiff-reader` never asks for one.
    """

    study: str | Path
    reader: str | None = None
    screenshot: str | Path | None = None
    case: int | None = None
    slice_number: int | None = None
    size: tuple[int, int] | None = None
    case_id: str | None = None

    @property
    def gui(self) -> bool:
        """Whether the window is shown on screen (rather than rendered into a screenshot)."""
        return self.screenshot is None


def run_reader(request: ReaderRequest) -> int:
    """Open the study and the reader's ratings, then show the window until the reader closes
    it, or take the screenshot; returns 0 or raises `LaunchError`."""
    if request.gui and _no_display():
        raise LaunchError("no display was found; run it on a desktop session, or render the "
                          "window with --screenshot PNG.", dialog=False)
    if not request.gui:
        os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
        qInstallMessageHandler(drop_offscreen_notice)
    app = QApplication.instance() or QApplication([sys.argv[0]])
    app.setApplicationName(APP_TITLE)
    apply_dark_theme(app)

    try:
        study = open_study_for_reading(request.study)
    except StudyError as err:
        raise LaunchError(str(err)) from None
    try:
        store = None if request.gui else screenshot_store(study, request.reader)
        if store is None:
            reader = request.reader if request.reader is not None else ask_reader_name()
            if reader is None:
                raise LaunchError("no reader name was given, so the study was not opened.",
                                  dialog=False)
            store = RatingStore.open(study, reader)
    except RatingStoreError as err:  # a locked reader (ReaderLockedError) among them
        raise LaunchError(str(err)) from None

    window = ReaderWindow(ReadingSession(study, store), study.title, study.modality,
                          study.viewer)
    try:
        if not request.gui:
            if request.case_id is not None:
                session = window.session
                session.go_to(session.position_of(request.case_id))
            take_screenshot(window, Path(request.screenshot), request.case, request.slice_number,
                            request.size)
            return 0
        window.show()
        with _closing_on_interrupt(app):
            app.exec()
        return 0
    finally:
        # The window deletes itself when closed (the reader closed it, or exec ended otherwise).
        if shiboken6.isValid(window):
            window.close()
        # Run that deferred deletion now, while Qt and pyqtgraph are fully alive.
        app.sendPostedEvents(None, QEvent.Type.DeferredDelete)


def screenshot_store(study: Study, reader: str | None) -> RatingStore | PreviewStore:
    """What a screenshot shows: an existing reader's ratings (their place, nothing written), or
    answers kept in memory only, in that reader's case order (a new reader) or the listed one;
    a screenshot never creates a reader database."""
    if reader is None:
        return PreviewStore(study)
    name = existing_reader(study, reader)
    if name is not None:
        return RatingStore.open(study, name)
    return PreviewStore(study, case_order=reader_order(study, reader))


def _no_display() -> bool:
    """True on Linux without X11 or Wayland and without an explicit Qt platform."""
    return (sys.platform.startswith("linux") and not os.environ.get("QT_QPA_PLATFORM")
            and not os.environ.get("DISPLAY") and not os.environ.get("WAYLAND_DISPLAY"))


@contextmanager
def _closing_on_interrupt(app: QApplication) -> Iterator[None]:
    """While the event loop runs, Ctrl+C in the terminal closes the window properly (the time
    on the case is saved) instead of killing the process."""
    previous = signal.signal(signal.SIGINT, lambda *_: app.closeAllWindows())
    # Python runs signal handlers only between bytecodes: an idle timer lets it in now and then.
    timer = QTimer()
    timer.timeout.connect(lambda: None)
    timer.start(250)
    try:
        yield
    finally:
        timer.stop()
        signal.signal(signal.SIGINT, previous)


def take_screenshot(window: ReaderWindow, png: Path, case: int | None,
                    slice_number: int | None, size: tuple[int, int] | None = None) -> None:
    """Render `window` offscreen at study case `case` (after the practice block) and slice
    `slice_number` (1-based) into `png`, `size` (width, height) pixels large (default: the
    window's own size)."""
    session = window.session
    if case is not None:
        if not 1 <= case <= session.case_count:
            unit = session.unit  # "case", or "pair" in a paired study
            raise LaunchError(f"--case {case} is outside this study's {unit}s 1 to "
                              f"{session.case_count}; give a {unit} number in that range.")
        session.go_to(session.study_case_position(case))
    if not png.parent.is_dir():
        raise LaunchError(f"The folder {png.parent} for the screenshot does not exist; create "
                          "it first.")
    window.setAttribute(Qt.WidgetAttribute.WA_DontShowOnScreen)
    if size is not None:
        _resize(window, size)
    window.show()
    QApplication.processEvents()
    if not window.wait_for_case():
        raise LaunchError("The case took too long to load for the screenshot.")
    if slice_number is not None:
        if session.finished:
            raise LaunchError("This reader has rated every case, so there is no slice to show; "
                              "leave out --slice, or give --case K.")
        if session.current_unreadable:
            raise LaunchError(f"Case {session.index + 1} could not be read (see the study's "
                              "log.txt), so there is no slice to show; leave out --slice.")
        display = window.viewer.display
        if not 1 <= slice_number <= display.slice_total:
            raise LaunchError(f"--slice {slice_number} is outside the case's slices 1 to "
                              f"{display.slice_total}; give a slice number in that range.")
        display.set_slice(slice_number - 1)
    QApplication.processEvents()
    if not window.grab().save(str(png)):
        raise LaunchError(f"The screenshot could not be written to {png}; check the file name "
                          "ends in .png and the folder is writable.")


def _resize(window: ReaderWindow, size: tuple[int, int]) -> None:
    """Give the window `size`; LaunchError when it cannot be that small."""
    smallest = window.minimumSizeHint()
    width, height = size
    if width < smallest.width() or height < smallest.height():
        raise LaunchError(f"--size {width}x{height} is smaller than this study's window can be "
                          f"({smallest.width()}x{smallest.height()}); give a larger size.")
    window.resize(width, height)


def ask_reader_name() -> str | None:
    """Ask the reader's name in a dialog until it is a valid name; None when cancelled."""
    prompt = "Your reader name (the same each time you continue this study):"
    text = ""
    while True:
        text, ok = QInputDialog.getText(None, APP_TITLE, prompt, QLineEdit.EchoMode.Normal, text)
        if not ok:
            return None
        try:
            return validate_reader(text.strip())
        except RatingStoreError as err:
            prompt = f"{err}\n\nYour reader name:"


def drop_offscreen_notice(_kind: object, _context: object, message: str) -> None:
    """Qt's message handler for screenshots: the offscreen platform's notice that it cannot
    resize windows to their size hints is noise on stderr; anything else is printed."""
    if "propagateSizeHints" not in message:
        print(message, file=sys.stderr)
