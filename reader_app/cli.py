"""`mdiff-reader STUDY [--reader NAME] [--screenshot PNG [--case K] [--slice S]]`."""

from __future__ import annotations

import argparse
import os
import signal
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from reader_app import APP_TITLE

EXIT_USAGE = 2  # every refusal, a locked reader too (diffusion_core.cli.common's rule)


def build_parser() -> argparse.ArgumentParser:
    """The `mdiff-reader` argument parser."""
    parser = argparse.ArgumentParser(
        prog="mdiff-reader",
        description="Rate the cases of a blinded reader study, slice by slice.")
    parser.add_argument("study", help="the study folder made by `mdiff-study create`")
    parser.add_argument("--reader", metavar="NAME",
                        help="your reader name (asked for in a dialog when left out)")
    parser.add_argument("--screenshot", metavar="PNG",
                        help="render the window offscreen to PNG and exit (saves nothing; with "
                        "--reader, shows that reader's place in their case order)")
    parser.add_argument("--case", type=int, metavar="K",
                        help="with --screenshot: show case K (1 = first in the reader's order, "
                        "or in the study's listed order without --reader)")
    parser.add_argument("--slice", type=int, metavar="S",
                        help="with --screenshot: show slice S (1 = first) of the case")
    return parser


def _no_display() -> bool:
    """True on Linux without X11 or Wayland and without an explicit Qt platform."""
    return (sys.platform.startswith("linux") and not os.environ.get("QT_QPA_PLATFORM")
            and not os.environ.get("DISPLAY") and not os.environ.get("WAYLAND_DISPLAY"))


def main(argv: list[str] | None = None) -> int:
    """Entry point of `mdiff-reader`."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if (args.case is not None or args.slice is not None) and not args.screenshot:
        parser.error("--case and --slice only apply together with --screenshot PNG")
    if args.screenshot:
        os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    elif _no_display():
        print("mdiff-reader: no display was found; run it on a desktop session, or render the "
              "window with --screenshot PNG.", file=sys.stderr)
        return EXIT_USAGE
    try:
        return _run(args)
    except KeyboardInterrupt:
        print("mdiff-reader: interrupted.", file=sys.stderr)
        return 130


def _run(args: argparse.Namespace) -> int:
    """Open the study and the reader's ratings, then show the window or take the screenshot."""
    # Qt, pyqtgraph and the study code are imported here so that `--help` answers at once.
    import shiboken6
    from PySide6.QtCore import QEvent, qInstallMessageHandler
    from PySide6.QtWidgets import QApplication

    from reader_app.opening import open_study_for_reading
    from reader_app.theme import apply_dark_theme
    from studies.ratings import RatingStore, RatingStoreError
    from studies.study import StudyError

    gui = not args.screenshot
    if not gui:
        qInstallMessageHandler(drop_offscreen_notice)
    app = QApplication.instance() or QApplication([sys.argv[0]])
    app.setApplicationName(APP_TITLE)
    apply_dark_theme(app)

    try:
        study = open_study_for_reading(args.study)
    except StudyError as err:
        return _fail(str(err), EXIT_USAGE, gui)

    try:
        store = None if gui else screenshot_store(study, args.reader)
        if store is None:
            reader = args.reader if args.reader is not None else ask_reader_name()
            if reader is None:
                print("mdiff-reader: no reader name was given, so the study was not opened.",
                      file=sys.stderr)
                return EXIT_USAGE
            store = RatingStore.open(study, reader)
    except RatingStoreError as err:  # a locked reader (ReaderLockedError) among them
        return _fail(str(err), EXIT_USAGE, gui)

    from reader_app.main_window import ReaderWindow
    from reader_app.session import ReadingSession

    session = ReadingSession(study, store)
    window = ReaderWindow(session, study.title, study.modality, study.viewer)
    try:
        if not gui:
            return take_screenshot(window, Path(args.screenshot), args.case, args.slice)
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


def screenshot_store(study, reader: str | None):
    """What a screenshot shows: an existing reader's ratings (their place, nothing written), or
    answers kept in memory only, in that reader's case order (a new reader) or the listed one;
    a screenshot never creates a reader database."""
    from reader_app.preview_store import PreviewStore
    from studies.ratings import RatingStore, existing_reader, reader_order

    if reader is None:
        return PreviewStore(study)
    name = existing_reader(study, reader)
    if name is not None:
        return RatingStore.open(study, name)
    return PreviewStore(study, case_order=reader_order(study, reader))


@contextmanager
def _closing_on_interrupt(app) -> Iterator[None]:
    """While the event loop runs, Ctrl+C in the terminal closes the window properly (the time
    on the case is saved) instead of killing the process."""
    from PySide6.QtCore import QTimer

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


def take_screenshot(window, png: Path, case: int | None, slice_number: int | None) -> int:
    """Render `window` offscreen at case `case` and slice `slice_number` (1-based) into `png`."""
    from PySide6.QtCore import Qt
    from PySide6.QtWidgets import QApplication

    session = window.session
    if case is not None:
        if not 1 <= case <= session.case_count:
            return _fail(f"--case {case} is outside this study's cases 1 to "
                         f"{session.case_count}; give a case number in that range.",
                         EXIT_USAGE, gui=False)
        session.go_to(case - 1)
    if not png.parent.is_dir():
        return _fail(f"The folder {png.parent} for the screenshot does not exist; create it "
                     "first.", EXIT_USAGE, gui=False)
    window.setAttribute(Qt.WidgetAttribute.WA_DontShowOnScreen)
    window.show()
    QApplication.processEvents()
    if not window.wait_for_case():
        return _fail("The case took too long to load for the screenshot.", EXIT_USAGE, gui=False)
    if slice_number is not None:
        if session.finished:
            return _fail("This reader has rated every case, so there is no slice to show; "
                         "leave out --slice, or give --case K.", EXIT_USAGE, gui=False)
        if session.current_unreadable:
            return _fail(f"Case {session.index + 1} could not be read (see the study's log.txt), "
                         "so there is no slice to show; leave out --slice.", EXIT_USAGE,
                         gui=False)
        total = window.viewer.slice_total
        if not 1 <= slice_number <= total:
            return _fail(f"--slice {slice_number} is outside the case's slices 1 to {total}; "
                         "give a slice number in that range.", EXIT_USAGE, gui=False)
        window.viewer.set_slice(slice_number - 1)
    QApplication.processEvents()
    if not window.grab().save(str(png)):
        return _fail(f"The screenshot could not be written to {png}; check the file name ends "
                     "in .png and the folder is writable.", EXIT_USAGE, gui=False)
    return 0


def ask_reader_name() -> str | None:
    """Ask the reader's name in a dialog until it is a valid name; None when cancelled."""
    from PySide6.QtWidgets import QInputDialog, QLineEdit

    from studies.ratings import RatingStoreError, validate_reader

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


def show_error(message: str) -> None:
    """A modal error dialog (when the app has a GUI)."""
    from PySide6.QtWidgets import QMessageBox

    QMessageBox.critical(None, APP_TITLE, message)


def _fail(message: str, code: int, gui: bool) -> int:
    """Report a problem in one sentence on stderr (and in a dialog with a GUI); return `code`."""
    print(f"mdiff-reader: {message}", file=sys.stderr)
    if gui:
        show_error(message)
    return code


if __name__ == "__main__":
    raise SystemExit(main())
