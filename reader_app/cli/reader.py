"""`mdiff-reader STUDY [--reader NAME] [--screenshot PNG [--case K] [--slice S] [--size WxH]]`."""

from __future__ import annotations

import argparse
import sys

from reader_app import APP_TITLE, DEFAULT_SIZE

EXIT_INTERRUPTED = 130  # 128 + SIGINT, what a shell reports for Ctrl-C


def build_parser() -> argparse.ArgumentParser:
    """The `mdiff-reader` argument parser."""
    parser = argparse.ArgumentParser(
        prog="mdiff-reader",
        description="Rate the cases of a blinded reader study, slice by slice; in a paired "
        "(2AFC) study, pick the synthetic one of two volumes shown side by side.")
    parser.add_argument("study", help="the study folder made by `mdiff-study create`")
    parser.add_argument("--reader", metavar="NAME",
                        help="your reader name (asked for in a dialog when left out)")
    parser.add_argument("--screenshot", metavar="PNG",
                        help="render the window offscreen to PNG and exit (saves nothing; with "
                        "--reader, shows that reader's place in their case order)")
    parser.add_argument("--case", type=int, metavar="K",
                        help="with --screenshot: show study case K, or pair K of a paired study "
                        "(1 = first in the reader's order, or in the study's listed order "
                        "without --reader; practice cases come before and are not counted)")
    parser.add_argument("--slice", type=int, metavar="S",
                        help="with --screenshot: show slice S (1 = first) of the case (of both "
                        "sides of a pair)")
    parser.add_argument("--size", type=window_size, metavar="WxH",
                        help="with --screenshot: the window's width and height in pixels "
                        f"(default {DEFAULT_SIZE[0]}x{DEFAULT_SIZE[1]})")
    return parser


def window_size(text: str) -> tuple[int, int]:
    """'1280x800' as (1280, 800); argparse's error for anything else."""
    width, _, height = text.lower().partition("x")
    if not (width.isdigit() and height.isdigit() and int(width) > 0 and int(height) > 0):
        raise argparse.ArgumentTypeError(f"{text!r} is not WIDTHxHEIGHT in pixels, e.g. 1280x800")
    return int(width), int(height)


def main(argv: list[str] | None = None) -> int:
    """Entry point of `mdiff-reader`."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if (args.case is not None or args.slice is not None or args.size is not None) \
            and not args.screenshot:
        parser.error("--case, --slice and --size only apply together with --screenshot PNG")
    # Qt, pyqtgraph and the study code load only now, so that `--help` answers at once.
    from reader_app.launch import LaunchError, ReaderRequest, run_reader

    request = ReaderRequest(study=args.study, reader=args.reader, screenshot=args.screenshot,
                            case=args.case, slice_number=args.slice, size=args.size)
    try:
        return run_reader(request)
    except LaunchError as err:
        print(f"mdiff-reader: {err}", file=sys.stderr)
        if err.dialog and request.gui:
            show_error(str(err))
        return err.status
    except KeyboardInterrupt:
        print("mdiff-reader: interrupted.", file=sys.stderr)
        return EXIT_INTERRUPTED


def show_error(message: str) -> None:
    """A modal error dialog (when the app has a GUI)."""
    from PySide6.QtWidgets import QMessageBox

    QMessageBox.critical(None, APP_TITLE, message)


if __name__ == "__main__":
    raise SystemExit(main())
