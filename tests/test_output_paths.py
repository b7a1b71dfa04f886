"""No command writes over its own inputs, into a study, or over an existing file without --force
(`diffusion_core.outputs`): every option that names a file or folder to write, refused in one
sentence with exit status 2 and the protected bytes unchanged."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

from diffusion_core.cli.prepare import main as prepare_main
from diffusion_core.outputs import (
    KEY_HEADER,
    STUDY_FORMAT,
    STUDY_MANIFEST,
    OutputPathError,
    check_output,
    is_study_key,
    replacing,
)
from evaluation.cli.eval import main as eval_main
from studies.cli.study import main as study_main
from studies.key import KEY_COLUMNS
from studies.study import MANIFEST_NAME, Study
from studies.study import STUDY_FORMAT as STUDIES_FORMAT

TABLE1 = ("realistic_appearance", "slice_consistency", "anatomical_correctness")
UNRELATED = b"an unrelated file the user keeps\n"


@pytest.fixture(scope="module")
def ws(tmp_path_factory, make_rated_study) -> dict[str, Path]:
    """Scans, a study rated by two readers (one of them 'Reader B'), its key and its export."""
    root = tmp_path_factory.mktemp("outputs")
    study, key = make_rated_study(root, ("ann", "Reader B"))
    opened = Study.open(study)
    export = root / "ratings.csv"
    assert study_main(["export", str(study), "--out", str(export), "--key", str(key)]) == 0
    (root / "prep").mkdir()  # stands for a PREP_DIR / run folder: refused before it is read
    (root / "run").mkdir()
    return {"root": root, "study": study, "key": key, "export": export,
            "db": study / "ratings" / "Reader B.sqlite", "manifest": study / MANIFEST_NAME,
            "case": opened.case_path(opened.case_ids[0]), "real": root / "real",
            "synthetic": root / "synthetic", "prep": root / "prep", "run": root / "run"}


def _unrelated(tmp: Path, name: str) -> Path:
    path = tmp / name
    path.write_bytes(UNRELATED)
    return path


def _hard_link(tmp: Path, target: Path, name: str) -> Path:
    link = tmp / name
    os.link(target, link)
    return link


def _symlink(tmp: Path, target: Path, name: str) -> Path:
    link = tmp / name
    link.symlink_to(target)
    return link


def _snapshot(path: Path) -> object:
    """The bytes of a file, the listing with bytes of a folder, or None when it is absent."""
    if path.is_file():
        return path.read_bytes()
    if path.is_dir():
        return {str(p.relative_to(path)): p.read_bytes() if p.is_file() else None
                for p in sorted(path.rglob("*"))}
    return None


# Each case: (main, argv, the path that must stay as it was, words of the one-line refusal).
Case = Callable[[dict[str, Path], Path], tuple[Callable, list, Path, str]]

REFUSED: dict[str, Case] = {
    # mdiff-study export --out
    "export --out the --key": lambda ws, tmp: (
        study_main, ["export", ws["study"], "--out", ws["key"], "--key", ws["key"]],
        ws["key"], "is the input --key"),
    "export --out the key, without --key, with --force": lambda ws, tmp: (
        study_main, ["export", ws["study"], "--out", ws["key"], "--force"],
        ws["key"], "is a study's key"),
    "export --out a hard link of the --key": lambda ws, tmp: (
        study_main, ["export", ws["study"], "--out", _hard_link(tmp, ws["key"], "k.csv"),
                     "--key", ws["key"], "--force"], ws["key"], "is the input --key"),
    "export --out a reader's database": lambda ws, tmp: (
        study_main, ["export", ws["study"], "--out", ws["db"], "--force"],
        ws["db"], "inside the study"),
    "export --out study.json": lambda ws, tmp: (
        study_main, ["export", ws["study"], "--out", ws["manifest"], "--force"],
        ws["manifest"], "inside the study"),
    "export --out a case file": lambda ws, tmp: (
        study_main, ["export", ws["study"], "--out", ws["case"], "--force"],
        ws["case"], "inside the study"),
    "export --out a new file in the study": lambda ws, tmp: (
        study_main, ["export", ws["study"], "--out", ws["study"] / "ratings.csv"],
        ws["study"] / "ratings.csv", "inside the study"),
    "export --out a link to study.json": lambda ws, tmp: (
        study_main, ["export", ws["study"], "--out",
                     _symlink(tmp, ws["manifest"], "s.csv"), "--force"],
        ws["manifest"], "inside the study"),
    "export --out the study folder": lambda ws, tmp: (
        study_main, ["export", ws["study"], "--out", ws["study"], "--force"],
        ws["manifest"], "is the input STUDY"),
    "export --out an existing file": lambda ws, tmp: (
        study_main, ["export", ws["study"], "--out", _unrelated(tmp, "old.csv")],
        tmp / "old.csv", "exists; pass --force"),
    "export --out a folder": lambda ws, tmp: (
        study_main, ["export", ws["study"], "--out", tmp, "--force"], tmp, "is a folder"),
    # mdiff-study create --out / --key
    "create --out inside a study": lambda ws, tmp: (
        study_main, ["create", "--out", ws["study"] / "cases" / "new", "--real", ws["real"],
                     "--preset", "tiny"], ws["study"], "inside the study"),
    "create --out inside --real": lambda ws, tmp: (
        study_main, ["create", "--out", ws["real"] / "new", "--real", ws["real"],
                     "--preset", "tiny"], ws["real"], "inside the input folder --real"),
    "create --key inside another study": lambda ws, tmp: (
        study_main, ["create", "--out", tmp / "new", "--key", ws["study"] / "new.key.csv",
                     "--real", ws["real"], "--preset", "tiny"], ws["study"], "inside the study"),
    "create --key inside --synthetic": lambda ws, tmp: (
        study_main, ["create", "--out", tmp / "new", "--key", ws["synthetic"] / "k.csv",
                     "--real", ws["real"], "--synthetic", ws["synthetic"], "--preset", "tiny"],
        ws["synthetic"], "inside the input folder --synthetic"),
    "create --key a reader's database": lambda ws, tmp: (
        study_main, ["create", "--out", tmp / "new", "--key", ws["db"], "--real", ws["real"],
                     "--preset", "tiny"], ws["db"], "inside the study"),
    # mdiff-eval agreement --figure
    "agreement --figure the input CSV": lambda ws, tmp: (
        eval_main, ["agreement", ws["export"], "--figure", ws["export"], "--force"],
        ws["export"], "is the input CSV"),
    "agreement --figure a hard link of the input CSV": lambda ws, tmp: (
        eval_main, ["agreement", ws["export"], "--figure",
                    _hard_link(tmp, ws["export"], "f.png"), "--force"],
        ws["export"], "is the input CSV"),
    "agreement --figure inside a study": lambda ws, tmp: (
        eval_main, ["agreement", ws["export"], "--figure", ws["study"] / "f.png"],
        ws["study"], "inside the study"),
    "agreement --figure an existing file": lambda ws, tmp: (
        eval_main, ["agreement", ws["export"], "--figure", _unrelated(tmp, "f.png")],
        tmp / "f.png", "exists; pass --force"),
    "agreement --figure a folder": lambda ws, tmp: (
        eval_main, ["agreement", ws["export"], "--figure", tmp, "--force"], tmp, "is a folder"),
    # mdiff-eval figure --out
    "figure --out inside DIR": lambda ws, tmp: (
        eval_main, ["figure", ws["real"], "--out", ws["real"] / "f.png"],
        ws["real"], "inside the input folder DIR"),
    "figure --out inside a study": lambda ws, tmp: (
        eval_main, ["figure", ws["real"], "--out", ws["study"] / "f.png", "--force"],
        ws["study"], "inside the study"),
    "figure --out an existing file": lambda ws, tmp: (
        eval_main, ["figure", ws["real"], "--out", _unrelated(tmp, "f.png")],
        tmp / "f.png", "exists; pass --force"),
    # mdiff-eval memorization --figure
    "memorization --figure inside --samples": lambda ws, tmp: (
        eval_main, ["memorization", "--train", ws["prep"], "--samples", ws["synthetic"],
                    "--figure", ws["synthetic"] / "f.png"],
        ws["synthetic"], "inside the input folder --samples"),
    "memorization --figure inside a study": lambda ws, tmp: (
        eval_main, ["memorization", "--train", ws["prep"], "--samples", ws["synthetic"],
                    "--figure", ws["study"] / "f.png", "--force"],
        ws["study"], "inside the study"),
    "memorization --figure an existing file": lambda ws, tmp: (
        eval_main, ["memorization", "--train", ws["prep"], "--samples", ws["synthetic"],
                    "--figure", _unrelated(tmp, "f.png")], tmp / "f.png", "exists; pass --force"),
    # mdiff-eval recon --figure / --volumes-out
    "recon --figure inside --data": lambda ws, tmp: (
        eval_main, ["recon", "--models", ws["run"], "--data", ws["prep"],
                    "--figure", ws["prep"] / "f.png"],
        ws["prep"], "inside the input folder --data"),
    "recon --figure an existing file": lambda ws, tmp: (
        eval_main, ["recon", "--models", ws["run"], "--data", ws["prep"],
                    "--figure", _unrelated(tmp, "f.png")], tmp / "f.png", "exists; pass --force"),
    "recon --volumes-out a file": lambda ws, tmp: (
        eval_main, ["recon", "--models", ws["run"], "--data", ws["prep"],
                    "--volumes-out", _unrelated(tmp, "volumes")],
        tmp / "volumes", "is a file, not a folder"),
    "recon --volumes-out a study": lambda ws, tmp: (
        eval_main, ["recon", "--models", ws["run"], "--data", ws["prep"],
                    "--volumes-out", ws["study"]], ws["study"], "inside the study"),
    "recon --volumes-out inside --models": lambda ws, tmp: (
        eval_main, ["recon", "--models", ws["run"], "--data", ws["prep"],
                    "--volumes-out", ws["run"] / "recon"], ws["run"],
        "inside the input folder --models"),
    # mdiff-prepare --out
    "prepare --out inside a study": lambda ws, tmp: (
        prepare_main, ["--preset", "tiny", "--data", ws["real"], "--out", ws["study"] / "prep"],
        ws["study"], "inside the study"),
    "prepare --out inside --masks": lambda ws, tmp: (
        prepare_main, ["--preset", "duke", "--data", ws["real"], "--masks", ws["synthetic"],
                       "--out", ws["synthetic"] / "prep"],
        ws["synthetic"], "inside the input folder --masks"),
    "prepare --out a folder of other files": lambda ws, tmp: (
        prepare_main, ["--preset", "tiny", "--data", ws["real"], "--out", ws["synthetic"]],
        ws["synthetic"], "no manifest.json"),
}


@pytest.mark.parametrize("case", list(REFUSED))
def test_a_refused_output_is_one_sentence_and_changes_nothing(case, ws, tmp_path, capsys):
    main, argv, protected, words = REFUSED[case](ws, tmp_path)
    before = _snapshot(protected)
    status = main([str(part) for part in argv])
    captured = capsys.readouterr()
    assert status == 2, captured.err
    assert "Traceback" not in captured.err and captured.err.count("\n") == 1, captured.err
    assert words in captured.err
    assert _snapshot(protected) == before


def test_force_replaces_an_existing_export(ws, tmp_path, capsys):
    old = _unrelated(tmp_path, "old.csv")
    assert study_main(["export", str(ws["study"]), "--out", str(old), "--force"]) == 0
    assert old.read_bytes() != UNRELATED and old.read_text().startswith("study_id,")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["old.csv"]  # no temporary file left


def test_force_replaces_an_existing_figure(ws, tmp_path):
    for argv in (["agreement", ws["export"]], ["figure", ws["real"], "--volumes", "1",
                                               "--slices", "1"]):
        png = _unrelated(tmp_path, "f.png")
        option = "--figure" if argv[0] == "agreement" else "--out"
        assert eval_main([str(a) for a in argv] + [option, str(png), "--force"]) == 0
        assert png.read_bytes().startswith(b"\x89PNG")


@pytest.mark.parametrize("argv", [
    ["memorization", "--train", "{prep}", "--samples", "{synthetic}", "--figure", "{png}"],
    ["recon", "--models", "{run}", "--data", "{prep}", "--figure", "{png}"],
])
def test_force_lets_a_figure_command_past_the_existing_file(argv, ws, tmp_path, capsys):
    """These commands need trained models and PREP_DIRs to finish; with --force they get past
    the figure's check and stop at the stand-in data instead (nothing written)."""
    png = _unrelated(tmp_path, "f.png")
    paths = {**{k: str(v) for k, v in ws.items()}, "png": str(png)}
    assert eval_main([a.format(**paths) for a in argv] + ["--force"]) == 2
    err = capsys.readouterr().err
    assert "--force" not in err and str(ws["prep"]) in err
    assert png.read_bytes() == UNRELATED


def test_the_defaults_still_work(ws, tmp_path):
    """A new --out, --figure or folder is written as before, without --force."""
    assert study_main(["export", str(ws["study"]), "--out", str(tmp_path / "new.csv")]) == 0
    assert eval_main(["agreement", str(ws["export"]), "--figure", str(tmp_path / "a.png")]) == 0
    assert prepare_main(["--preset", "tiny", "--data", str(ws["real"]),
                         "--out", str(tmp_path / "prep")]) == 0
    assert prepare_main(["--preset", "tiny", "--data", str(ws["real"]),  # resumed
                         "--out", str(tmp_path / "prep")]) == 0
    empty = tmp_path / "empty"
    empty.mkdir()
    assert prepare_main(["--preset", "tiny", "--data", str(ws["real"]), "--out", str(empty)]) == 0


# ----------------------------------------------------------------------- the rule itself


def test_the_study_and_key_names_are_the_studies_own():
    assert (STUDY_MANIFEST, STUDY_FORMAT, KEY_HEADER) == (MANIFEST_NAME, STUDIES_FORMAT,
                                                          KEY_COLUMNS)


def test_force_never_overrides_an_input_a_study_or_a_key(ws, tmp_path):
    for path, inputs in ((ws["export"], [("CSV", ws["export"])]), (ws["db"], []),
                         (ws["key"], [])):
        with pytest.raises(OutputPathError):
            check_output(path, inputs=inputs, force=True)
    assert issubclass(OutputPathError, ValueError)
    assert is_study_key(ws["key"]) and not is_study_key(ws["export"])


def test_a_study_json_of_another_tool_is_no_study(tmp_path):
    (tmp_path / STUDY_MANIFEST).write_text('{"name": "not an mdiff study"}')
    assert check_output(tmp_path / "out.csv") == tmp_path / "out.csv"
    (tmp_path / "ratings").mkdir()  # a study whose study.json is damaged is still one
    (tmp_path / STUDY_MANIFEST).write_text("{broken")
    with pytest.raises(OutputPathError, match="inside the study"):
        check_output(tmp_path / "out.csv")


def test_a_link_out_of_an_input_folder_is_refused(ws, tmp_path):
    """A link inside an input folder is refused even when it points elsewhere, and a link
    outside one that points into it too."""
    outside = tmp_path / "elsewhere.png"
    inner = _symlink(ws["real"], outside, "link.png")
    try:
        with pytest.raises(OutputPathError, match="inside the input folder"):
            check_output(inner, inputs=[("DIR", ws["real"])])
    finally:
        inner.unlink()
    into = _symlink(tmp_path, ws["real"] / "new.png", "into.png")
    with pytest.raises(OutputPathError, match="inside the input folder"):
        check_output(into, inputs=[("DIR", ws["real"])])


def test_replacing_leaves_the_file_as_it_was_when_the_write_fails(tmp_path):
    path = _unrelated(tmp_path, "f.csv")
    with pytest.raises(RuntimeError), replacing(path) as tmp:
        tmp.write_text("half")
        raise RuntimeError("stopped")
    assert path.read_bytes() == UNRELATED and sorted(tmp_path.iterdir()) == [path]
    with replacing(path) as tmp:
        tmp.write_text("new")
    assert path.read_text() == "new" and sorted(tmp_path.iterdir()) == [path]
