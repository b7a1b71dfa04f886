"""`mdiff-reader` (reader_app/cli/reader.py over reader_app/launch.py): screenshots, the
reader-name dialog and the one-sentence errors."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from PySide6.QtGui import QImage

from reader_app import launch
from reader_app.cli import reader as cli
from studies.ratings import RatingStore, reader_order
from studies.study import Study

ROOT = Path(__file__).resolve().parents[2]


def image_colours(png) -> set[int]:
    """The distinct colours of a PNG (sampled on a grid)."""
    image = QImage(str(png))
    assert not image.isNull()
    return {image.pixel(x, y) for x in range(0, image.width(), 7)
            for y in range(0, image.height(), 7)}


def test_screenshot_writes_a_rich_png_and_no_ratings(qtbot, study_dir, tmp_path):
    """Without --reader the screenshot saves nothing in the study; the PNG shows the app."""
    png = tmp_path / "shot.png"
    assert cli.main([str(study_dir), "--screenshot", str(png), "--case", "2", "--slice", "3"]) == 0
    image = QImage(str(png))
    assert image.width() >= 1200 and image.height() >= 800
    assert len(image_colours(png)) > 50  # image, text and controls, not one flat colour
    assert list((study_dir / "ratings").iterdir()) == []


def test_screenshot_with_a_reader_uses_that_readers_place(qtbot, study_dir, tmp_path):
    """With --reader the window shows that reader's place; it never creates their database,
    which `mdiff-study status` would then count as a reader."""
    study = Study.open(study_dir)
    with RatingStore.open(study, "ann") as store:
        for question in study.questions:
            store.record_answer(store.case_order[0], question.key, "B", 3.0)
        second = store.case_order[1]
    before = (study_dir / "ratings" / "ann.sqlite").read_bytes()
    shown = launch.screenshot_store(study, "Ann")
    try:
        assert shown.reader == "ann" and shown.case_order[shown.first_unrated_index()] == second
    finally:
        shown.close()
    png = tmp_path / "ann.png"
    assert cli.main([str(study_dir), "--reader", "ann", "--screenshot", str(png)]) == 0
    assert png.is_file() and (study_dir / "ratings" / "ann.sqlite").read_bytes() == before
    # A new reader: that reader's case order, kept in memory only.
    new = launch.screenshot_store(study, "Cleo  Smith")
    assert new.case_order == reader_order(study, "Cleo Smith") != study.case_ids
    assert cli.main([str(study_dir), "--reader", "Cleo Smith", "--screenshot", str(png)]) == 0
    assert sorted(p.name for p in (study_dir / "ratings").glob("*.sqlite")) == ["ann.sqlite"]


@pytest.mark.parametrize("args, words", [
    (["--case", "9"], "--case 9 is outside"),
    (["--slice", "99"], "--slice 99 is outside"),
])
def test_screenshot_out_of_range_is_one_sentence(qtbot, study_dir, tmp_path, capsys, args,
                                                 words):
    """A case or slice number the study does not have: exit 2, one line on stderr."""
    code = cli.main([str(study_dir), "--screenshot", str(tmp_path / "x.png"), *args])
    err = capsys.readouterr().err
    assert code == 2 and words in err and err.count("\n") == 1


@pytest.mark.parametrize("size", [(1280, 800), (1400, 900)])
def test_screenshot_size_sets_the_window_size(qtbot, turing_study_dir, tmp_path, size):
    png = tmp_path / "sized.png"
    assert cli.main([str(turing_study_dir), "--screenshot", str(png),
                     "--size", f"{size[0]}x{size[1]}"]) == 0
    image = QImage(str(png))
    assert (image.width(), image.height()) == size


def test_a_screenshot_size_too_small_or_malformed_is_refused(qtbot, study_dir, tmp_path,
                                                             capsys):
    code = cli.main([str(study_dir), "--screenshot", str(tmp_path / "x.png"), "--size", "300x200"])
    err = capsys.readouterr().err
    assert code == 2 and "--size 300x200 is smaller than" in err and err.count("\n") == 1
    for bad in (["--size", "wide"], ["--size", "0x800"]):
        with pytest.raises(SystemExit) as exit_info:
            cli.main([str(study_dir), "--screenshot", str(tmp_path / "x.png"), *bad])
        assert exit_info.value.code == 2 and "WIDTHxHEIGHT" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        cli.main([str(study_dir), "--size", "1280x800"])
    assert "--screenshot" in capsys.readouterr().err


def test_missing_or_non_study_folder_exits_2(qtbot, tmp_path, capsys):
    """A folder that is not a study: one sentence naming it, exit 2, no traceback."""
    assert cli.main([str(tmp_path / "nowhere"), "--screenshot", str(tmp_path / "x.png")]) == 2
    err = capsys.readouterr().err
    assert "nowhere" in err and err.count("\n") == 1 and "Traceback" not in err
    (tmp_path / "plain").mkdir()
    assert cli.main([str(tmp_path / "plain"), "--screenshot", str(tmp_path / "x.png")]) == 2
    assert "study.json" in capsys.readouterr().err


def test_missing_study_in_the_gui_also_shows_a_dialog(qtbot, tmp_path, monkeypatch, capsys):
    """With a GUI up the same sentence appears in a dialog."""
    shown: list[str] = []
    monkeypatch.setattr(cli, "show_error", shown.append)
    assert cli.main([str(tmp_path / "nowhere"), "--reader", "ann"]) == 2
    assert len(shown) == 1 and shown[0] in capsys.readouterr().err


def test_second_instance_for_the_same_reader_is_refused(qtbot, study_dir, monkeypatch, capsys):
    """While reader ann has the study open, another window for ann (in any spelling) exits 2,
    like every refusal, with one sentence."""
    shown: list[str] = []
    monkeypatch.setattr(cli, "show_error", shown.append)
    with RatingStore.open(Study.open(study_dir), "ann"):
        assert cli.main([str(study_dir), "--reader", "ann"]) == 2
        assert cli.main([str(study_dir), "--reader", "ANN"]) == 2
    err = capsys.readouterr().err
    assert shown == ["Reader 'ann' already has this study open in another window or process.",
                     "Reader 'ANN' already has this study open in another window or process."]
    assert shown[0] in err


def test_bad_reader_name_is_refused(qtbot, study_dir, tmp_path, capsys):
    """A reader name that is no safe file name: exit 2, the rule in one sentence."""
    code = cli.main([str(study_dir), "--reader", "../evil", "--screenshot",
                     str(tmp_path / "x.png")])
    assert code == 2 and "not allowed" in capsys.readouterr().err
    assert list((study_dir / "ratings").iterdir()) == []


def test_the_name_dialog_asks_again_until_the_name_is_valid(qtbot, monkeypatch):
    """Without --reader a dialog asks the name; an invalid one is explained and asked again."""
    replies = iter([("  ", True), ("a/b", True), (" Dr Ann ", True)])
    prompts: list[str] = []

    def fake_get_text(parent, title, prompt, mode, text):
        prompts.append(prompt)
        return next(replies)

    monkeypatch.setattr("PySide6.QtWidgets.QInputDialog.getText", fake_get_text)
    assert launch.ask_reader_name() == "Dr Ann"
    assert len(prompts) == 3 and "not allowed" in prompts[2]


def test_cancelling_the_name_dialog_opens_nothing(qtbot, monkeypatch):
    """Cancel means no reader, so no study is opened."""
    monkeypatch.setattr("PySide6.QtWidgets.QInputDialog.getText",
                        lambda *args: ("", False))
    assert launch.ask_reader_name() is None


def test_case_and_slice_need_screenshot(study_dir, capsys):
    """--case without --screenshot is a usage error."""
    with pytest.raises(SystemExit) as exit_info:
        cli.main([str(study_dir), "--case", "1"])
    assert exit_info.value.code == 2
    assert "--screenshot" in capsys.readouterr().err


def test_gui_run_opens_the_window_and_releases_the_reader_on_close(qtbot, study_dir):
    """`mdiff-reader STUDY --reader ann` shows the window; closing it exits 0 and frees the
    reader's lock, so the next session can open."""
    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QApplication

    from reader_app.widgets.main_window import ReaderWindow

    seen: list[str] = []

    def close_reader_windows():
        for widget in QApplication.topLevelWidgets():
            if isinstance(widget, ReaderWindow) and widget.isVisible():
                seen.append(widget.windowTitle())
                widget.close()

    QTimer.singleShot(200, close_reader_windows)
    QTimer.singleShot(20_000, QApplication.quit)  # never hang the suite if closing fails
    assert cli.main([str(study_dir), "--reader", "ann"]) == 0
    assert seen == ["mdiff reader — Knee MR study"]
    with RatingStore.open(Study.open(study_dir), "ann") as store:
        assert store.first_unrated_index() == 0


def test_a_missing_case_file_still_opens_the_study(qtbot, study_dir, tmp_path, capsys):
    """The study opens with a case file missing; the screenshot of that case shows it could not
    be read, and asking for one of its slices is one clear sentence naming only the case."""
    study = Study.open(study_dir)
    study.case_path(study.case_ids[1]).unlink()
    assert cli.main([str(study_dir), "--screenshot", str(tmp_path / "a.png")]) == 0
    assert (tmp_path / "a.png").is_file()
    code = cli.main([str(study_dir), "--screenshot", str(tmp_path / "b.png"), "--case", "2",
                     "--slice", "1"])
    err = capsys.readouterr().err
    assert code == 2 and "Case 2 could not be read" in err and "Traceback" not in err


def test_slice_of_a_finished_study_is_one_sentence(qtbot, study_dir, tmp_path, capsys):
    """A reader with every case rated has no slice to show: exit 2 with the reason."""
    study = Study.open(study_dir)
    with RatingStore.open(study, "ann") as store:
        for case_id in store.case_order:
            for question in study.questions:
                store.record_answer(case_id, question.key, "A", 1.0)
    code = cli.main([str(study_dir), "--reader", "ann", "--screenshot", str(tmp_path / "x.png"),
                     "--slice", "2"])
    err = capsys.readouterr().err
    assert code == 2 and "rated every case" in err and err.count("\n") == 1


def test_a_screenshot_run_imports_neither_torch_nor_monai(study_dir, tmp_path):
    """The app starts without the heavy model libraries (it must open in well under 2 s)."""
    code = (
        "import sys\n"
        "from reader_app.cli.reader import main\n"
        f"assert main([{str(study_dir)!r}, '--screenshot', {str(tmp_path / 's.png')!r}]) == 0\n"
        "print(sorted(m for m in ('torch', 'monai') if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                         check=True, env={**os.environ, "QT_QPA_PLATFORM": "offscreen"})
    assert out.stdout.strip().splitlines()[-1] == "[]"
    assert (tmp_path / "s.png").is_file()


def test_a_study_without_any_case_file_is_one_sentence_naming_no_case(study_dir, tmp_path,
                                                                      capsys):
    """With every case file gone there is nothing to rate: exit 2, and no case id is shown."""
    study = Study.open(study_dir)
    for case_id in study.case_ids:
        study.case_path(case_id).unlink()
    assert cli.main([str(study_dir), "--screenshot", str(tmp_path / "x.png")]) == 2
    err = capsys.readouterr().err
    assert "none of its 3 case files" in err and "Traceback" not in err
    assert not any(case_id in err for case_id in study.case_ids)


def test_screenshot_case_numbers_count_study_cases_after_the_practice_block(
        qtbot, make_practice_study, tmp_path, capsys):
    """--case K is study case K (practice cases come before and are not counted); without
    --case the preview opens at the first practice case."""
    from reader_app.model.preview_store import PreviewStore
    from reader_app.model.session import ReadingSession
    from reader_app.widgets.main_window import ReaderWindow

    folder = make_practice_study()
    study = Study.open(folder)
    window = ReaderWindow(ReadingSession(study, PreviewStore(study)), study.title,
                          study.modality, study.viewer)
    qtbot.addWidget(window)
    assert window.panel.case_label.text() == "Practice 1 of 2"
    launch.take_screenshot(window, tmp_path / "case.png", 1, None)
    assert window.panel.case_label.text() == "Case 1 of 4" and (tmp_path / "case.png").is_file()
    code = cli.main([str(folder), "--screenshot", str(tmp_path / "x.png"), "--case", "5"])
    assert code == 2 and "cases 1 to 4" in capsys.readouterr().err
