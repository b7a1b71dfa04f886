"""One writer per reader: a second process or store for the same reader is refused."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from studies.ratings import RatingStore, ReaderLockedError
from studies.study import Study

ROOT = Path(__file__).resolve().parents[3]


def test_second_writer_for_one_reader_is_refused(study_folder):
    study = Study.open(study_folder)
    child = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import sys
        from studies.study import Study
        from studies.ratings import RatingStore
        store = RatingStore.open(Study.open({str(study_folder)!r}), "anna")
        print("open", flush=True)
        sys.stdin.readline()
        store.close()
        print("closed", flush=True)
        sys.stdin.readline()
    """)], cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert child.stdout.readline().strip() == "open"
    try:
        with pytest.raises(ReaderLockedError) as caught:
            RatingStore.open(study, "anna")
        assert str(caught.value) == ("Reader 'anna' already has this study open in another "
                                     "window or process.")
        with RatingStore.open(study, "ben"):  # other readers are not affected
            pass
        child.stdin.write("\n")
        child.stdin.flush()
        assert child.stdout.readline().strip() == "closed"
        with RatingStore.open(study, "anna") as store:
            assert store.reader == "anna"
    finally:
        child.kill()
        child.wait()
        child.stdout.close()
        child.stdin.close()


def test_second_store_in_the_same_process_is_refused_until_closed(study_folder):
    study = Study.open(study_folder)
    store = RatingStore.open(study, "anna")
    with pytest.raises(ReaderLockedError):
        RatingStore.open(study, "anna")
    store.close()
    RatingStore.open(study, "anna").close()
