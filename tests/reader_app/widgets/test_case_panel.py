"""The column beside the image renders the session it is shown: the case's number and saved
answers, and which controls act."""

from __future__ import annotations

from reader_app.model.session import ReadingSession
from reader_app.widgets.case_panel import FINISH_TEXT, NEXT_TEXT, UNREADABLE_STATUS, CasePanel
from studies.ratings import RatingStore
from studies.study import Study

ALL_A = {"realistic_appearance": "A", "slice_consistency": "A", "anatomical_correctness": "A"}


def make_panel(qtbot, folder) -> tuple[CasePanel, ReadingSession]:
    """A panel over a fresh session of `folder` for reader "ann"."""
    study = Study.open(folder)
    session = ReadingSession(study, RatingStore.open(study, "ann"))
    panel = CasePanel(session, study.modality)
    qtbot.addWidget(panel)
    return panel, session


def test_answers_act_only_once_the_case_is_on_screen_and_next_once_it_is_done(qtbot, study_dir):
    """Before the image is shown no answer, flag or Next acts; answered, Next does."""
    panel, session = make_panel(qtbot, study_dir)
    panel.show_case(session)
    panel.show_controls(session, on_screen=False)
    assert panel.case_label.text() == "Case 1 of 3"
    assert not panel.questions.isEnabled() and not panel.notes.flag.isEnabled()
    assert not panel.next_button.isEnabled() and not panel.previous_button.isEnabled()
    panel.show_controls(session, on_screen=True)
    assert panel.questions.isEnabled() and not panel.next_button.isEnabled()
    for key, letter in ALL_A.items():
        session.answer(key, letter)
    panel.show_controls(session, on_screen=True)
    assert panel.next_button.isEnabled() and panel.next_button.text() == NEXT_TEXT
    session.close()


def test_a_case_shows_its_saved_answers_and_the_last_one_says_finish(qtbot, study_dir):
    """Back on an answered case its answers are checked and the first unanswered question is
    framed; on the last case Next reads Finish; an unreadable case says so in the status."""
    panel, session = make_panel(qtbot, study_dir)
    session.answer("realistic_appearance", "B")
    panel.show_case(session)
    assert panel.questions.current == 1
    assert panel.questions.groups[0].checkedButton().property("letter") == "B"
    for key, letter in ALL_A.items():
        session.answer(key, letter)
    session.next()
    for key, letter in ALL_A.items():
        session.answer(key, letter)
    session.next()
    session.mark_unreadable(session.index, "damaged")
    panel.show_case(session)
    panel.show_controls(session, on_screen=False)
    assert panel.case_label.text() == "Case 3 of 3"
    assert panel.next_button.text() == FINISH_TEXT and panel.next_button.isEnabled()
    assert panel.status.text() == UNREADABLE_STATUS
    session.close()
