"""The input table of FDA's iMRMC (also read by RJafroc's `DfReadDataFile(..., format="iMRMC")`).

iMRMC's input file, as its documentation's example (`standalone_application/FilesTest-iMRMC/
test.imrmc` in DIDSR/iMRMC) and its reader (`src/mrmc/core/InputFile.java`) lay it out: lines of
free text (the first is the study's title), among them `NR:`, `N0:`, `N1:` and `NM:` at the start
of a line (readers, cases of truth 0, cases of truth 1, modalities); then the line `BEGIN DATA:`;
then one `readerID,caseID,modalityID,score` row per line: for every case a truth row (reader -1,
modality 0, score 0 or 1), then a row per reader, case and modality with the reader's score.

Here:
- truth 1 = synthetic: the "signal present" a reader is to detect; truth 0 = real;
- one modality, 1 (the study's cases as the reader app shows them);
- readers and cases are numbered 1, 2, ... (RJafroc needs numbers; iMRMC strips spaces from ids),
  and the header maps each number to its reader's name and its case id;
- the score (higher = more likely synthetic): `turing`, the call and its confidence on one 1-8
  scale (real & certain = 1, ..., real & guessing = 4, synthetic & guessing = 5, ..., synthetic &
  certain = 8), the default when the study asks the Turing questions; else `realism`,
  5 - realistic_appearance (A = 1 ... D = 4), so "not recognizable" scores 4 and "can't tell
  whether fake or not" 1;
- only done study cases count: a case a reader flagged "not assessable" is left out for that
  reader (the header says how many), a case no reader scored has no truth row, and practice cases
  never appear;
- no free text holds a colon, since iMRMC reads any line holding "N0:" and the like as a count;
- a table without a single score is refused (StudyError): iMRMC cannot read one, and an empty
  file would pass for a finished export.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from studies.key import KeyEntry
from studies.questions import ALL_QUESTIONS
from studies.ratings import ReaderRatings
from studies.study import Study, StudyError

SCORES: tuple[str, ...] = ("realism", "turing")
SIGNAL = "synthetic"  # truth 1
TRUTH_READER, TRUTH_MODALITY, MODALITY = "-1", "0", "1"
BEGIN_DATA = "BEGIN DATA:"
_TURING_LEVELS = 4  # confidence 1 (guessing) ... 4 (certain)


@dataclass(frozen=True)
class ImrmcTable:
    """The text of an iMRMC input file and what it holds."""

    text: str
    n_scores: int  # reader x case rows
    n_readers: int
    n_real: int  # truth 0
    n_synthetic: int  # truth 1
    n_not_assessable: int  # reader x case ratings left out as flagged


def default_score(study: Study) -> str:
    """`turing` for a study that asks the Turing questions, else `realism`."""
    return "turing" if study.turing else "realism"


def case_score(answers: dict[str, str], score: str) -> int:
    """A done case's score on the chosen scale (module docstring); higher = more synthetic."""
    if score == "realism":
        ordinal = ALL_QUESTIONS["realistic_appearance"].letters.index(
            answers["realistic_appearance"]) + 1
        return 5 - ordinal
    confidence = int(answers["confidence"])
    if answers["real_or_synthetic"] == "S":
        return _TURING_LEVELS + confidence
    return _TURING_LEVELS + 1 - confidence


def imrmc_table(study: Study, readers: list[ReaderRatings], key: dict[str, KeyEntry],
                score: str | None = None) -> ImrmcTable:
    """The iMRMC input table of a study's done, assessable study cases; `score`: realism or
    turing (default: `default_score`)."""
    score = default_score(study) if score is None else score
    if score not in SCORES:
        raise StudyError(f"The score {score!r} is not one of {', '.join(SCORES)}; give --score "
                         "realism or --score turing.")
    if score == "turing" and not study.turing:
        raise StudyError(f"Study {study.study_id} does not ask the Turing questions; give "
                         "--score realism.")
    scored: dict[str, dict[str, int]] = {}  # reader -> case -> score
    flagged = 0
    for ratings in readers:
        for case_id in ratings.case_order:
            if ratings.note(case_id).not_assessable:
                flagged += 1
            elif ratings.is_complete(case_id, study.question_keys):
                scored.setdefault(ratings.reader, {})[case_id] = \
                    case_score(ratings.answers[case_id], score)
    if not scored:
        raise StudyError(f"No reader has finished an assessable study case of study "
                         f"{study.study_id} yet ({flagged} ratings flagged not assessable), so "
                         "the iMRMC table would hold no score; nothing was written.")
    cases = sorted({case_id for given in scored.values() for case_id in given})
    number = {case_id: index for index, case_id in enumerate(cases, start=1)}
    truth = {case_id: int(key[case_id].source == SIGNAL) for case_id in cases}
    reader_names = sorted(scored)
    lines = [_free_text(f"mdiff study {study.title} (study {study.study_id}, dataset "
                        f"{study.dataset}) for iMRMC"), "",
             f"NR: {len(reader_names)}", f"N0: {sum(t == 0 for t in truth.values())}",
             f"N1: {sum(truth.values())}", "NM: 1", "",
             f"truth 1 = {SIGNAL} (the signal to detect), truth 0 = real",
             f"modality {MODALITY} = the study's cases as the reader app shows them",
             f"score = {_score_text(score)}",
             f"left out = {flagged} reader-case ratings flagged not assessable"]
    lines += [_free_text(f"reader {i} = {name}") for i, name in enumerate(reader_names, start=1)]
    lines += [f"case {number[case_id]} = {case_id}" for case_id in cases]
    lines += ["", BEGIN_DATA]
    lines += [f"{TRUTH_READER},{number[case_id]},{TRUTH_MODALITY},{truth[case_id]}"
              for case_id in cases]
    for index, name in enumerate(reader_names, start=1):
        lines += [f"{index},{number[case_id]},{MODALITY},{value}"
                  for case_id, value in sorted(scored[name].items(), key=lambda i: number[i[0]])]
    n_scores = sum(len(given) for given in scored.values())
    return ImrmcTable("\n".join(lines) + "\n", n_scores, len(reader_names),
                      len(cases) - sum(truth.values()), sum(truth.values()), flagged)


def _score_text(score: str) -> str:
    """What the score column means, for the header."""
    if score == "realism":
        return "realism, 5 - realistic_appearance (A=1 ... D=4), higher = less realistic"
    return ("Turing call and confidence on one scale, 1 = real and certain ... 4 = real and "
            "guessing, 5 = synthetic and guessing ... 8 = synthetic and certain")


def _free_text(text: str) -> str:
    """A header line iMRMC reads as text: one line, without colons."""
    return re.sub(r"\s+", " ", text.replace(":", " ")).strip()
