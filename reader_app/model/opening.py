"""Opening a study for reading, where a missing case file stops only that case, not the study."""

from __future__ import annotations

import sys
from pathlib import Path

from studies.study import MANIFEST_NAME, Study, StudyError, read_manifest


def open_study_for_reading(folder: str | Path) -> Study:
    """Open `folder` as `Study.open` does, but accept missing case files.

    `Study.open` refuses a study with a missing case file, naming the file; a reader must never
    see a case's file name, and the readable cases (and the answers saved on them) must stay
    reachable. So the missing files go to the study's log.txt and stderr, and each missing case
    later shows as "Case K could not be read", like a damaged file. With no case file at all
    there is nothing to read: a `StudyError` that names no file. Any other problem raises the
    `StudyError` of `Study.open`.
    """
    try:
        return Study.open(folder)
    except StudyError:
        study = _study_without_case_files(Path(folder))
        if study is None:
            raise
        missing = [case_id for case_id in study.case_ids
                   if not study.case_path(case_id).is_file()]
        if not missing:
            raise
        if len(missing) == len(study.case_ids):
            raise StudyError(f"{study.folder} has none of its {len(missing)} case files; restore "
                             "its cases folder from a copy of the study.") from None
        names = ", ".join(study.case_path(case_id).name for case_id in missing)
        detail = (f"{len(missing)} of {len(study.case_ids)} case files of {study.folder} are "
                  f"missing ({names}); each shows to the reader as a case that could not be read.")
        print(f"mdiff-reader: {detail}", file=sys.stderr)
        try:
            study.log(f"mdiff-reader: {detail}")
        except OSError:
            pass  # a read-only study folder: stderr has the details
        return study


def _study_without_case_files(folder: Path) -> Study | None:
    """The study of a valid manifest, without checking its case files; None when invalid."""
    manifest_path = folder / MANIFEST_NAME
    try:
        manifest = read_manifest(manifest_path)
    except StudyError:
        return None
    return Study(folder, manifest)
