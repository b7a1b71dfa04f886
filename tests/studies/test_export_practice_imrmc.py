"""`mdiff-study export`: comments and flags, practice rows only when asked, and the iMRMC table."""

from __future__ import annotations

import csv
import json
import shutil

import pytest

from studies.cli.study import main
from studies.key import KeyEntry, write_key
from studies.ratings import RatingStore
from studies.study import Study

TABLE1 = ("realistic_appearance", "slice_consistency", "anatomical_correctness")
PRACTICE = {"P01": "synthetic", "P02": "real"}


def _read_csv(path) -> tuple[list[str], list[dict[str, str]]]:
    with open(path, newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        return list(reader.fieldnames), list(reader)


def _answer(store: RatingStore, case_id: str, letters: str = "CCC", call: str | None = None,
            confidence: str | None = None) -> None:
    for question, letter in zip(TABLE1, letters, strict=True):
        store.record_answer(case_id, question, letter, 4.0)
    if call is not None:
        store.record_answer(case_id, "real_or_synthetic", call, 4.0)
        store.record_answer(case_id, "confidence", confidence, 4.0)


@pytest.fixture
def practised(tmp_path, study_folder_with):
    """A 6-case study with two practice cases and its key (even positions synthetic); reader
    anna answered both practice cases and the first two study cases, flagged the third (no
    answers, a comment) and left a comment only on the fourth."""
    study = Study.open(study_folder_with(tmp_path / "study", n_cases=6, practice=PRACTICE))
    key = tmp_path / "study.key.csv"
    write_key(key, [KeyEntry(c, "synthetic" if i % 2 == 0 else "real", f"/in/{c}")
                    for i, c in enumerate(study.case_ids)]
              + [KeyEntry(c, s, f"/practice/{c}") for c, s in PRACTICE.items()])
    with RatingStore.open(study, "anna") as store:
        for case_id in ("P01", "P02", *store.case_order[:2]):
            _answer(store, case_id)
        store.set_not_assessable(store.case_order[2], True)
        store.set_comment(store.case_order[2], "no image, only noise")
        store.set_comment(store.case_order[3], "a comment, no answer")
        order = store.case_order
    return study, key, order


def test_practice_rows_are_exported_only_when_asked_and_marked(practised, tmp_path):
    study, key, order = practised
    out = tmp_path / "ratings.csv"
    assert main(["export", str(study.folder), "--out", str(out)]) == 0
    columns, rows = _read_csv(out)
    assert "practice" not in columns
    assert [r["case_id"] for r in rows] == order[:3]  # done cases: two answered, one flagged
    out = tmp_path / "with_practice.csv"
    assert main(["export", str(study.folder), "--out", str(out), "--include-practice",
                 "--key", str(key), "--force"]) == 0
    columns, rows = _read_csv(out)
    assert columns[-4:] == ["practice", "after_truth", "source", "origin"]
    assert [(r["case_id"], r["practice"], r["after_truth"]) for r in rows] == \
        [("P01", "1", "0"), ("P02", "1", "0"), (order[0], "0", "0"), (order[1], "0", "0"),
         (order[2], "0", "0")]
    assert [r["source"] for r in rows[:2]] == ["synthetic", "real"]
    assert rows[0]["origin"] == "/practice/P01"


def test_comment_and_flag_columns(practised, tmp_path):
    study, _, order = practised
    out = tmp_path / "ratings.csv"
    assert main(["export", str(study.folder), "--out", str(out), "--include-partial"]) == 0
    _, rows = _read_csv(out)
    by_case = {r["case_id"]: r for r in rows}
    assert list(by_case) == order[:4]
    flagged = by_case[order[2]]
    assert (flagged["not_assessable"], flagged["comment"]) == ("1", "no image, only noise")
    assert [flagged[q] for q in TABLE1] == ["", "", ""]
    assert (by_case[order[3]]["not_assessable"], by_case[order[3]]["comment"]) == \
        ("0", "a comment, no answer")
    assert by_case[order[0]]["not_assessable"] == "0"


def test_status_counts_flagged_cases_as_done_and_practice_apart(practised, capsys):
    study, _, _ = practised
    with RatingStore.open(study, "ben") as store:
        _answer(store, "P01")
        _answer(store, store.case_order[0])
        store.add_time(store.case_order[0], 30.0)
        store.add_time("P01", 500.0)  # practice time is no study time
    assert main(["status", str(study.folder), "--json"]) == 0
    anna, ben = json.loads(capsys.readouterr().out)["readers"]
    assert (anna["done"], anna["practice_done"], anna["practice"]) == (3, True, "2 / 2")
    assert (ben["done"], ben["practice_done"], ben["practice"]) == (1, False, "1 / 2")
    assert (ben["seconds_total"], ben["seconds_median"]) == (30.0, 30.0)
    # anna's done cases: two answered (4 s each, the time given with the answers), one flagged
    # without time spent on it.
    assert (anna["seconds_total"], anna["seconds_median"]) == (8.0, 4.0)
    assert main(["status", str(study.folder)]) == 0
    text = capsys.readouterr().out
    assert "practice" in text.splitlines()[1]
    assert "2 / 2 done" in text and "1 / 2" in text


def test_merge_refuses_a_reader_whose_comments_differ(practised, tmp_path, capsys):
    study, _, order = practised
    copy = tmp_path / "site_b"
    shutil.copytree(study.folder, copy)
    with RatingStore.open(Study.open(copy), "anna") as store:
        store.set_comment(order[0], "seen differently here")
    assert main(["merge", str(study.folder), str(copy)]) == 2
    assert "different answers, comments or flags" in capsys.readouterr().err


# ------------------------------------------------------------------------------------- iMRMC

# The layout of iMRMC's own example input file, `standalone_application/FilesTest-iMRMC/
# test.imrmc` in github.com/DIDSR/iMRMC (5 readers, 50 + 50 cases, 2 modalities there), written
# out here at 2 readers, 2 + 2 cases and 1 modality with made-up scores: free text first (its
# first line the title), the counts NR:, N0:, N1:, NM: at the start of lines, free text again,
# the line "BEGIN DATA:", one truth row per case (reader -1, modality 0, truth 0 or 1), then one
# row per reader, case and modality: readerID,caseID,modalityID,score.
DOCUMENTED_LAYOUT = """Simulated iMRMC input

NR: 2
N0: 2
N1: 2
NM: 1

AUC1: 0.750

BEGIN DATA:
-1,1,0,0
-1,2,0,0
-1,3,0,1
-1,4,0,1
1,1,1,0.12
1,2,1,-0.40
1,3,1,1.30
1,4,1,0.95
2,1,1,-1.10
2,2,1,0.20
2,3,1,0.70
2,4,1,2.05
"""


def parse_imrmc(text: str) -> dict:
    """Read an iMRMC input file as iMRMC's InputFile.java and RJafroc's ReadImrmc do, checking
    what both require; returns the header counts, truth per case and (reader, case, modality) ->
    score."""
    lines = text.splitlines()
    begin = lines.index("BEGIN DATA:")
    header = lines[:begin]
    counts = {}
    for line in header:
        for name in ("NR", "N0", "N1", "NM"):
            # iMRMC takes any header line holding "NR:" (in any case) for that count and reads
            # the number from its fourth character on.
            if f"{name}:" in line.upper():
                assert line.startswith(f"{name}:") and name not in counts, line
                counts[name] = int(line[3:])
    assert set(counts) == {"NR", "N0", "N1", "NM"} and header[0]
    truth, scores = {}, {}
    for line in lines[begin + 1:]:
        reader, case, modality, score = line.split(",")  # exactly four fields
        int(case)  # RJafroc: "Case IDs must be integers."
        float(score)
        if reader == "-1":
            assert modality == "0" and score in ("0", "1") and case not in truth
            truth[case] = int(score)
        else:
            assert case in truth, "a score row before its case's truth row"
            assert (reader, case, modality) not in scores, "a replicate observation"
            scores[reader, case, modality] = float(score)
    assert counts["N0"] == sum(t == 0 for t in truth.values())
    assert counts["N1"] == sum(truth.values())
    assert counts["NR"] == len({r for r, _, _ in scores})
    assert counts["NM"] == len({m for _, _, m in scores})
    return {"counts": counts, "truth": truth, "scores": scores, "header": header}


def test_the_parser_accepts_the_documented_layout():
    parsed = parse_imrmc(DOCUMENTED_LAYOUT)
    assert parsed["counts"] == {"NR": 2, "N0": 2, "N1": 2, "NM": 1}
    assert len(parsed["scores"]) == 8 and parsed["truth"] == {"1": 0, "2": 0, "3": 1, "4": 1}


@pytest.fixture
def turing_rated(tmp_path, study_folder_with):
    """A 6-case Turing study with its key (even positions synthetic) and two readers: anna
    answered every case, ben five (one of them flagged) and left one half done."""
    study = Study.open(study_folder_with(tmp_path / "turing", n_cases=6, turing=True,
                                         practice={"P01": "real"}))
    key = tmp_path / "turing.key.csv"
    sources = {c: "synthetic" if i % 2 == 0 else "real" for i, c in enumerate(study.case_ids)}
    write_key(key, [KeyEntry(c, s, "x") for c, s in sources.items()]
              + [KeyEntry("P01", "real", "y")])
    with RatingStore.open(study, "anna") as store:
        _answer(store, "P01", "AAA", "S", "4")  # practice: never in the table
        for case_id in store.case_order:
            call = "S" if sources[case_id] == "synthetic" else "R"
            _answer(store, case_id, "BCD" if call == "S" else "DCB", call, "4")
    with RatingStore.open(study, "ben") as store:
        for case_id in store.case_order[:4]:
            _answer(store, case_id, "CCC", "R", "2")
        store.set_not_assessable(store.case_order[4], True)
        store.record_answer(store.case_order[5], "realistic_appearance", "A", 1.0)
    return study, key, sources


def test_the_imrmc_table_has_the_documented_layout(turing_rated, tmp_path, capsys):
    study, key, sources = turing_rated
    # A title iMRMC would misread as a count ("SCAN1: ..." holds "N1:") unless it is cleaned.
    manifest = json.loads((study.folder / "study.json").read_text())
    manifest["title"] = "Knee scan1: N1: 4"
    (study.folder / "study.json").write_text(json.dumps(manifest))
    out = tmp_path / "study.imrmc"
    assert main(["export", str(study.folder), "--out", str(out), "--format", "imrmc",
                 "--key", str(key), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report == {"imrmc": str(out), "format": "imrmc", "rows": 10, "not_assessable": 1,
                      "with_key": True, "edited": 0}
    parsed = parse_imrmc(out.read_text())
    assert parsed["counts"] == {"NR": 2, "N0": 3, "N1": 3, "NM": 1}
    case_of = {}
    for line in parsed["header"]:
        if line.startswith("case "):
            number, case_id = line[len("case "):].split(" = ")
            case_of[number] = case_id
    assert sorted(case_of.values()) == sorted(study.case_ids)  # no practice case
    # Truth 1 = synthetic, from the key.
    assert {case_of[n]: t for n, t in parsed["truth"].items()} == \
        {c: int(s == "synthetic") for c, s in sources.items()}
    assert "reader 1 = anna" in parsed["header"] and "reader 2 = ben" in parsed["header"]
    assert "left out = 1 reader-case ratings flagged not assessable" in parsed["header"]
    # The Turing score: anna called every case right with confidence 4 (8 or 1), ben "real"
    # with confidence 2 (3) on his four done cases; his flagged and half-done cases are absent.
    anna = {case_of[c]: s for (r, c, _), s in parsed["scores"].items() if r == "1"}
    ben = {case_of[c]: s for (r, c, _), s in parsed["scores"].items() if r == "2"}
    assert anna == {c: 8.0 if s == "synthetic" else 1.0 for c, s in sources.items()}
    with RatingStore.open(study, "ben") as store:
        assert set(ben) == set(store.case_order[:4]) and set(ben.values()) == {3.0}
    assert {m for _, _, m in parsed["scores"]} == {"1"}
    assert parsed["header"][0].startswith("mdiff study Knee scan1 N1 4 (study ")


def test_the_realism_score_and_the_default_for_a_study_without_turing(turing_rated, tmp_path):
    study, key, sources = turing_rated
    out = tmp_path / "realism.imrmc"
    assert main(["export", str(study.folder), "--out", str(out), "--format", "imrmc",
                 "--key", str(key), "--score", "realism"]) == 0
    parsed = parse_imrmc(out.read_text())
    anna = sorted(s for (r, _, _), s in parsed["scores"].items() if r == "1")
    # anna's realism: B (2) on synthetic cases, D (4) on real ones; score = 5 - realism.
    assert anna == [1.0, 1.0, 1.0, 3.0, 3.0, 3.0]
    assert any("5 - realistic_appearance" in line for line in parsed["header"])


@pytest.mark.parametrize("options, message", [
    ((), "needs each case's truth"),
    (("--key", "KEY", "--include-practice"), "holds done study cases only"),
    (("--key", "KEY", "--include-partial"), "holds done study cases only"),
])
def test_imrmc_mistakes_are_one_sentence(turing_rated, tmp_path, capsys, options, message):
    study, key, _ = turing_rated
    argv = ["export", str(study.folder), "--out", str(tmp_path / "t.imrmc"), "--format", "imrmc",
            *[str(key) if o == "KEY" else o for o in options]]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
    assert not (tmp_path / "t.imrmc").exists()


def test_an_imrmc_table_without_a_score_is_refused_and_nothing_written(tmp_path,
                                                                        study_folder_with,
                                                                        capsys):
    """Only practice answers, a flagged case and a half-done one: no score for iMRMC, so one
    sentence and no file (an empty table would pass for a finished export)."""
    study = Study.open(study_folder_with(tmp_path / "study", n_cases=4, practice=PRACTICE))
    key = tmp_path / "study.key.csv"
    write_key(key, [KeyEntry(c, "real", "x") for c in study.case_ids]
              + [KeyEntry(c, s, "y") for c, s in PRACTICE.items()])
    out = tmp_path / "t.imrmc"
    argv = ["export", str(study.folder), "--out", str(out), "--format", "imrmc", "--key", str(key)]
    assert main(argv) == 2  # no reader at all
    assert "would hold no score; nothing was written" in capsys.readouterr().err
    with RatingStore.open(study, "anna") as store:
        _answer(store, "P01")
        store.set_not_assessable(store.case_order[0], True)
        store.record_answer(store.case_order[1], "realistic_appearance", "A", 1.0)
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "No reader has finished an assessable study case" in err and err.count("\n") == 1
    assert "(1 ratings flagged not assessable)" in err
    assert not out.exists()


def test_score_mistakes_are_one_sentence(practised, tmp_path, capsys):
    study, key, _ = practised
    out = tmp_path / "t.imrmc"
    assert main(["export", str(study.folder), "--out", str(out), "--format", "imrmc", "--key",
                 str(key), "--score", "turing"]) == 2
    assert "does not ask the Turing questions" in capsys.readouterr().err
    assert main(["export", str(study.folder), "--out", str(out), "--score", "realism"]) == 2
    assert "with --format imrmc only" in capsys.readouterr().err
