"""Bring in the reader databases of a copy of a study rated at another site.

Refused, before anything is copied, when the other folder is a different study or when a reader
present in both has different answers, comments or flags; a reader with identical ones in both is
left as it is.
Each new reader database is copied with SQLite's backup API (consistent even while the other copy
is open) to a temporary file, then renamed into place under that reader's lock.
"""

from __future__ import annotations

import os
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path

from studies.ratings import (
    RatingStoreError,
    ReaderLock,
    ReaderRatings,
    database_path,
    read_study_ratings,
    validate_reader,
)
from studies.study import Study, StudyError


@dataclass
class MergeResult:
    """Which readers were brought in and which were already there with the same answers."""

    added: list[str] = field(default_factory=list)
    identical: list[str] = field(default_factory=list)


def merge_studies(folder: str | Path, other_folder: str | Path) -> MergeResult:
    """Copy the reader databases of `other_folder` into the study at `folder`."""
    study, other = Study.open(folder), Study.open(other_folder)
    if study.folder.resolve() == other.folder.resolve():
        raise StudyError(f"{other.folder} is the study itself; give the copy rated elsewhere.")
    if other.study_id != study.study_id:
        raise StudyError(f"{other.folder} is study {other.study_id}, not {study.study_id}; only "
                         "copies of the same study can be merged.")
    ours = {r.reader: r for r in read_study_ratings(study)}
    result, to_add = MergeResult(), []
    for ratings in read_study_ratings(other):
        mine = ours.get(ratings.reader)
        if mine is None:
            to_add.append(ratings)
        elif mine.same_ratings(ratings):
            result.identical.append(ratings.reader)
        else:
            raise StudyError(f"Reader '{ratings.reader}' has different answers, comments or "
                             f"flags in {study.folder} and {other.folder}; merge refused: keep "
                             "one of the two databases or rename that reader in one copy.")
    for ratings in to_add:
        _copy_reader(study, ratings)
        result.added.append(ratings.reader)
    if result.added:
        study.log(f"merged readers {', '.join(result.added)} from {other.folder}")
    return result


def _copy_reader(study: Study, ratings: ReaderRatings) -> None:
    """Copy one reader database into the study, under the reader's lock."""
    reader = validate_reader(ratings.reader)
    lock = ReaderLock(study, reader)
    try:
        target = database_path(study, reader)
        if target.exists():
            raise RatingStoreError(f"Reader '{reader}' started rating in {study.folder} during the "
                                   "merge; run the merge again.")
        tmp = target.with_name(target.name + ".tmp")
        source = sqlite3.connect(ratings.path)
        copy = sqlite3.connect(tmp)
        try:
            source.backup(copy)
        except sqlite3.Error as err:
            copy.close()
            tmp.unlink(missing_ok=True)
            raise RatingStoreError(f"Cannot copy {ratings.path} ({err}); check that file and "
                                   "run the merge again.") from None
        finally:
            copy.close()
            source.close()
        os.replace(tmp, target)
    finally:
        lock.release()
