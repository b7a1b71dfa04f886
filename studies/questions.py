"""The questions a reader answers per case: the paper's Table 1 and the optional Turing test; per
trial of a paired (2AFC) study: which side is synthetic, and the same confidence."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Option:
    """One answer of a question: the letter stored in the ratings database and the text shown."""

    letter: str
    text: str


@dataclass(frozen=True)
class Question:
    """A question with a stable key (the export column) and its exclusive options."""

    key: str
    title: str
    options: tuple[Option, ...]

    @property
    def letters(self) -> tuple[str, ...]:
        """The valid stored values, in display order."""
        return tuple(option.letter for option in self.options)

    def option(self, letter: str) -> Option:
        """The option with this letter; KeyError when the question has none."""
        for option in self.options:
            if option.letter == letter:
                return option
        raise KeyError(letter)


def _abcd(*texts: str) -> tuple[Option, ...]:
    """Options A-D in order."""
    return tuple(Option(letter, text) for letter, text in zip("ABCD", texts, strict=True))


# Table 1 of Khader et al., word for word (a Likert scale, A worst to D best).
TABLE1_QUESTIONS: tuple[Question, ...] = (
    Question(
        "realistic_appearance",
        "Realistic image appearance",
        _abcd(
            "Overall not recognizable as CT/MRI",
            "Overall unrealistic, but generally recognizable as CT/MRI",
            "Overall realistic and only minor unrealistic areas",
            "Can't tell whether fake or not",
        ),
    ),
    Question(
        "slice_consistency",
        "Consistency between slices",
        _abcd(
            "No consistent slices",
            "Only few (up to 3) slices are consistent",
            "Majority of slices (>10) is consistent",
            "All slices are consistent",
        ),
    ),
    Question(
        "anatomical_correctness",
        "Anatomical correctness",
        _abcd(
            "Anatomical region not recognizable",
            "Anatomical region recognizable, but major parts of the images exhibit anatomical "
            "incorrectness",
            "Only minor anatomical incorrectness",
            "Anatomical features are correct",
        ),
    ),
)

# The visual Turing test a study may add: the reader's call and how sure they are (1 = guessing).
TURING_QUESTIONS: tuple[Question, ...] = (
    Question("real_or_synthetic", "Real or synthetic?",
             (Option("R", "real"), Option("S", "synthetic"))),
    Question("confidence", "Confidence (1 = guessing, 4 = certain)",
             tuple(Option(str(level), str(level)) for level in range(1, 5))),
)

# A paired (2AFC) trial: the side holding the synthetic case (L/R), then the Turing confidence.
AFC_QUESTIONS: tuple[Question, ...] = (
    Question("synthetic_side", "Which one is synthetic?",
             (Option("L", "Left"), Option("R", "Right"))),
    TURING_QUESTIONS[1],
)

ALL_QUESTIONS: dict[str, Question] = {
    q.key: q for q in TABLE1_QUESTIONS + TURING_QUESTIONS + AFC_QUESTIONS}


def study_questions(turing: bool, design: str = "single") -> tuple[Question, ...]:
    """The questions of a study: Table 1, then the Turing questions when the study asks them;
    those of a paired study (`design` "2afc") are AFC_QUESTIONS."""
    if design == "2afc":
        return AFC_QUESTIONS
    return TABLE1_QUESTIONS + (TURING_QUESTIONS if turing else ())
