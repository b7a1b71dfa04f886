"""A paired (2AFC) study made by `studies.create`, opened by `mdiff-reader`: the screenshot,
the sides each reader sees, and a whole reading by keyboard that the key can score."""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import Qt
from PySide6.QtGui import QImage

from reader_app.cli import reader as cli
from reader_app.model.session import ReadingSession
from reader_app.widgets.main_window import REVIEW_PAGE, ReaderWindow
from reader_app.widgets.review_page import COMPLETE_TEXT
from studies.case_file import read_case
from studies.key import read_key
from studies.ratings import RatingStore
from studies.study import Study


def open_window(qtbot, study: Study, reader: str) -> ReaderWindow:
    window = ReaderWindow(ReadingSession(study, RatingStore.open(study, reader)), study.title,
                          study.modality, study.viewer)
    qtbot.addWidget(window)
    window.show()
    qtbot.waitExposed(window)
    qtbot.waitUntil(lambda: window.viewer.pair.has_volumes)
    return window


def shown(window: ReaderWindow) -> tuple[np.ndarray, np.ndarray]:
    pair = window.viewer.pair
    return pair.left.volume, pair.right.volume


def test_mdiff_reader_renders_a_made_paired_study_without_writing(qtbot, made_pair_study,
                                                                  tmp_path):
    folder = made_pair_study.folder
    png = tmp_path / "pair.png"
    assert cli.main([str(folder), "--screenshot", str(png), "--case", "2", "--slice", "3",
                     "--size", "1400x900"]) == 0
    image = QImage(str(png))
    assert (image.width(), image.height()) == (1400, 900)
    assert len({image.pixel(x, y) for x in range(0, 1400, 7) for y in range(0, 900, 7)}) > 50
    assert list((folder / "ratings").iterdir()) == []


def test_a_pair_number_out_of_range_names_pairs(made_pair_study, tmp_path, capsys):
    code = cli.main([str(made_pair_study.folder), "--screenshot", str(tmp_path / "p.png"),
                     "--case", "99"])
    err = capsys.readouterr().err
    assert code == 2 and "outside this study's pairs 1 to" in err and "pair number" in err, err


def test_each_reader_sees_the_key_s_members_and_the_next_reader_the_mirror(qtbot,
                                                                           made_pair_study):
    """The first reader's left image is the file the study lists on the left for that trial;
    the second reader sees that same trial with its members swapped."""
    study = Study.open(made_pair_study.folder)
    first = open_window(qtbot, study, "ann")
    trial = study.trial("P01")
    left, right = shown(first)
    assert np.array_equal(left, read_case(study.case_path(trial.left)).array)
    assert np.array_equal(right, read_case(study.case_path(trial.right)).array)
    first.close()
    second = open_window(qtbot, study, "bob")
    assert [np.array_equal(a, b) for a, b in zip(shown(second), (right, left), strict=True)] \
        == [True, True]


def test_a_whole_reading_by_keyboard_is_saved_and_scored_by_the_key(qtbot, made_pair_study):
    """A reader who picks, by arrow key, the side the key says is synthetic, with confidence 4:
    every trial's answers are in the database, and every pick is right."""
    study = Study.open(made_pair_study.folder)
    key = read_key(made_pair_study.key_path)
    window = open_window(qtbot, study, "ann")
    session = window.session
    picks = []
    while not session.finished:
        left, _right = session.case_paths(session.index)
        pick = "L" if key[left.stem].source == "synthetic" else "R"
        qtbot.keyClick(window, Qt.Key.Key_Left if pick == "L" else Qt.Key.Key_Right)
        qtbot.keyClick(window, Qt.Key.Key_4)
        picks.append(pick)
        qtbot.keyClick(window, Qt.Key.Key_Return)
        if not session.finished:
            qtbot.waitUntil(lambda: window.viewer.pair.has_volumes)
    assert window.pages.currentIndex() == REVIEW_PAGE
    assert window.review.title.text() == COMPLETE_TEXT
    window.close()
    with RatingStore.open(study, "ann") as store:
        trial_ids = store.practice_order + store.case_order
        assert len(picks) == len(trial_ids) == 3  # the practice trial and both study trials
        for trial_id, pick in zip(trial_ids, picks, strict=True):
            assert store.answers(trial_id) == {"synthetic_side": pick, "confidence": "4"}
            members = store.trial(trial_id)
            chosen = members.left if pick == "L" else members.right
            assert key[chosen].source == "synthetic"
