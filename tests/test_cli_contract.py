"""What every command promises (README.md, diffusion_core.cli.common): `--json` wherever a result
is printed, one exit-status rule, and a quiet stop when the reader of its output goes away."""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from diffusion_core.cli import common
from diffusion_core.cli.models import _parser as models_parser
from diffusion_core.cli.prepare import _parser as prepare_parser
from diffusion_core.cli.prepare import main as prepare_main
from diffusion_core.cli.sample import _parser as sample_parser
from diffusion_core.cli.train import _parser as train_parser
from evaluation.cli.eval import SUBCOMMANDS as EVAL_SUBCOMMANDS
from evaluation.cli.eval import main as eval_main
from studies.cli.study import SUBCOMMANDS as STUDY_SUBCOMMANDS
from studies.cli.study import main as study_main
from studies.ratings import RatingStore
from studies.study import Study

ROOT = Path(__file__).resolve().parents[1]
TABLE1 = ("realistic_appearance", "slice_consistency", "anatomical_correctness")


@pytest.fixture(scope="module")
def workspace(tmp_path_factory, make_rated_study) -> dict[str, Path]:
    """Scans, a rated study with its key and export, and a copy to merge."""
    root = tmp_path_factory.mktemp("contract")
    study, key = make_rated_study(root, ("ann", "ben"))
    copy = root / "copy"
    shutil.copytree(study, copy)
    # The copy's own reader replaces the study's two, so merging brings in one new reader.
    for database in (copy / "ratings").glob("*.sqlite"):
        database.unlink()
    opened = Study.open(copy)
    with RatingStore.open(opened, "cleo") as store:
        for case_id in store.case_order:
            for question in TABLE1:
                store.record_answer(case_id, question, "C", 2.0)
            store.record_answer(case_id, "real_or_synthetic", "R", 2.0)
            store.record_answer(case_id, "confidence", "2", 2.0)
    export = root / "ratings.csv"
    assert study_main(["export", str(study), "--out", str(export), "--key", str(key)]) == 0
    return {"root": root, "study": study, "key": key, "export": export, "copy": copy}


def _commands(ws: dict[str, Path], target: Path) -> dict[str, tuple]:
    """Every command and subcommand with arguments that succeed, writing new outputs to target."""
    return {
        "mdiff-prepare": (prepare_main, ["--preset", "tiny", "--data", str(ws["root"] / "real"),
                                         "--out", str(target / "prep")]),
        "mdiff-study create": (study_main, ["create", "--out", str(target / "new"), "--real",
                                            str(ws["root"] / "real"), "--preset", "tiny"]),
        "mdiff-study status": (study_main, ["status", str(ws["study"])]),
        "mdiff-study export": (study_main, ["export", str(ws["study"]), "--out",
                                            str(target / "out.csv")]),
        "mdiff-study audit": (study_main, ["audit", str(ws["study"]), "--key", str(ws["key"])]),
        "mdiff-study merge": (study_main, ["merge", str(ws["study"]), str(ws["copy"])]),
        "mdiff-eval msssim": (eval_main, ["msssim", str(ws["root"] / "real"), "--pairs", "2"]),
        "mdiff-eval agreement": (eval_main, ["agreement", str(ws["export"])]),
        "mdiff-eval turing": (eval_main, ["turing", str(ws["export"])]),
    }


def test_every_subcommand_has_json():
    """The README promises `--json` for every command that prints a result."""
    parsers = [prepare_parser()]
    for name, prog, subcommands in (("study", "mdiff-study", STUDY_SUBCOMMANDS),
                                    ("eval", "mdiff-eval", EVAL_SUBCOMMANDS)):
        parsers += [common.command_parser(prog, name, subcommands)._subparsers._group_actions[0]
                    .choices[sub] for sub in subcommands]
    assert len(parsers) == 1 + len(STUDY_SUBCOMMANDS) + len(EVAL_SUBCOMMANDS)
    parsers.append(sample_parser())
    for build in (train_parser, models_parser):
        parsers += list(build()._subparsers._group_actions[0].choices.values())
    for parser in parsers:
        assert "--json" in parser.format_help(), parser.prog


@pytest.mark.parametrize("command", ["mdiff-prepare", "mdiff-study create", "mdiff-study status",
                                     "mdiff-study export", "mdiff-study audit",
                                     "mdiff-study merge", "mdiff-eval agreement",
                                     "mdiff-eval turing"])
def test_json_is_one_object_on_stdout(command, workspace, tmp_path, capsys):
    main, args = _commands(workspace, tmp_path)[command]
    assert main([*args, "--json"]) == 0
    out = capsys.readouterr().out
    assert isinstance(json.loads(out), dict) and out.count("\n") == 1


class _ClosedPipe(io.StringIO):
    """A stdout whose reader went away: every write or flush is a BrokenPipeError."""

    def write(self, text: str) -> int:
        raise BrokenPipeError(32, "Broken pipe")

    def flush(self) -> None:
        raise BrokenPipeError(32, "Broken pipe")


@pytest.mark.parametrize("command", list(_commands(dict.fromkeys(
    ("root", "study", "key", "export", "copy"), Path()), Path())))
def test_every_command_stops_quietly_on_a_closed_pipe(command, workspace, tmp_path, monkeypatch,
                                                      capsys):
    """`... | head -1`: no traceback, no "cannot access (Broken pipe)", status 141."""
    main, args = _commands(workspace, tmp_path)[command]
    monkeypatch.setattr(sys, "stdout", _ClosedPipe())
    assert main(args) == common.EXIT_CLOSED_PIPE == 141
    monkeypatch.undo()
    err = capsys.readouterr().err
    assert "Broken pipe" not in err and "Traceback" not in err and "cannot access" not in err


@pytest.mark.parametrize("module, args", [
    ("studies.cli.study", ["audit", "{study}", "--key", "{key}"]),
    ("evaluation.cli.eval", ["turing", "{export}"]),
])
def test_a_real_closed_pipe_leaves_stderr_empty(module, args, workspace):
    """The interpreter's own last flush would complain too: nothing is left for it."""
    read, write = os.pipe()
    os.close(read)
    try:
        done = subprocess.run([sys.executable, "-m", module,
                               *[a.format(**{k: str(v) for k, v in workspace.items()})
                                 for a in args]],
                              stdout=write, stderr=subprocess.PIPE, text=True, cwd=ROOT,
                              env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=120)
    finally:
        os.close(write)
    assert (done.returncode, done.stderr) == (141, "")


def test_the_readme_states_the_one_exit_status_rule():
    """README.md's table of exit statuses is the one `diffusion_core.cli.common` implements."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    rows = dict(re.findall(r"^\| `(\d+)` \| (.+?) \|$", readme, flags=re.MULTILINE))
    assert set(rows) == {"0", "1", "2", "130", "141", "143"}
    assert (common.EXIT_OK, common.EXIT_FAILED, common.EXIT_USAGE, common.EXIT_INTERRUPTED,
            common.EXIT_CLOSED_PIPE, common.EXIT_TERMINATED) == (0, 1, 2, 130, 141, 143)
    assert "audit" in rows["1"] and "locked" in rows["2"]
