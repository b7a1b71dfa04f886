"""The questions are the paper's Table 1, word for word, plus the optional Turing test."""

from __future__ import annotations

from studies.questions import TABLE1_QUESTIONS, TURING_QUESTIONS, study_questions


def test_table1_keys_titles_and_letters():
    assert [q.key for q in TABLE1_QUESTIONS] == ["realistic_appearance", "slice_consistency",
                                                 "anatomical_correctness"]
    assert [q.title for q in TABLE1_QUESTIONS] == ["Realistic image appearance",
                                                   "Consistency between slices",
                                                   "Anatomical correctness"]
    for question in TABLE1_QUESTIONS:
        assert question.letters == ("A", "B", "C", "D")


def test_table1_rows_are_the_papers_text():
    rows = [
        "Realistic image appearance\tOverall not recognizable as CT/MRI\tOverall unrealistic, "
        "but generally recognizable as CT/MRI\tOverall realistic and only minor unrealistic "
        "areas\tCan't tell whether fake or not",
        "Consistency between slices\tNo consistent slices\tOnly few (up to 3) slices are "
        "consistent\tMajority of slices (>10) is consistent\tAll slices are consistent",
        "Anatomical correctness\tAnatomical region not recognizable\tAnatomical region "
        "recognizable, but major parts of the images exhibit anatomical incorrectness\tOnly "
        "minor anatomical incorrectness\tAnatomical features are correct",
    ]
    for question, row in zip(TABLE1_QUESTIONS, rows, strict=True):
        assert "\t".join([question.title, *(o.text for o in question.options)]) == row


def test_turing_questions_and_study_questions():
    call, confidence = TURING_QUESTIONS
    assert (call.key, call.title) == ("real_or_synthetic", "Real or synthetic?")
    assert [(o.letter, o.text) for o in call.options] == [("R", "real"), ("S", "synthetic")]
    assert confidence.key == "confidence" and confidence.letters == ("1", "2", "3", "4")
    assert call.option("S").text == "synthetic"
    assert study_questions(False) == TABLE1_QUESTIONS
    assert study_questions(True) == TABLE1_QUESTIONS + TURING_QUESTIONS
