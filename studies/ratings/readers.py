"""Reader names, where a reader's database lives, and the case order a reader gets.

A reader name is normalised (Unicode NFC, runs of spaces made one) and matched to an existing
reader without regard to case, so "reader x" and "Reader  X" continue the ratings of "Reader X"
instead of starting databases of their own.
"""

from __future__ import annotations

import hashlib
import random
import re
import unicodedata
from pathlib import Path

from studies.ratings.errors import RatingStoreError
from studies.study import Study

DATABASE_SUFFIX = ".sqlite"
MAX_READER_LENGTH = 64
_READER_PUNCTUATION = " -_."


def validate_reader(reader: str) -> str:
    """The reader name, NFC-normalised with runs of spaces made one; RatingStoreError when it is
    no safe file name (spaces at either end included: a name starts and ends with a letter or
    digit)."""
    name = re.sub(" {2,}", " ", unicodedata.normalize("NFC", reader)) \
        if isinstance(reader, str) else ""
    allowed = all(ch.isalnum() or ch in _READER_PUNCTUATION for ch in name)
    if not name or not name[0].isalnum() or not name[-1].isalnum() or not allowed \
            or len(name) > MAX_READER_LENGTH:
        raise RatingStoreError(
            f"The reader name {reader!r} is not allowed; use 1 to {MAX_READER_LENGTH} letters, "
            "digits, spaces, dashes, underscores or dots, starting and ending with a letter or "
            "digit.")
    return name


def reader_key(reader: str) -> str:
    """What two names of one reader share: the name with runs of spaces made one, without case."""
    return re.sub(" {2,}", " ", reader).casefold()


def existing_reader(study: Study, reader: str) -> str | None:
    """The name of the ratings database that `reader` names, whatever its case and spacing;
    None when the study has none. RatingStoreError for two databases that differ only in case."""
    key = reader_key(validate_reader(reader))
    if not study.ratings_dir.is_dir():
        return None
    matches = sorted(path.name[: -len(DATABASE_SUFFIX)]
                     for path in study.ratings_dir.glob(f"*{DATABASE_SUFFIX}")
                     if reader_key(path.name[: -len(DATABASE_SUFFIX)]) == key)
    if len(matches) > 1:
        names = " and ".join(f"'{name}'" for name in matches)
        raise RatingStoreError(f"The readers {names} of {study.folder} differ only in case or "
                               "spacing; open one of them by its exact name.")
    return matches[0] if matches else None


def reader_order(study: Study, reader: str) -> list[str]:
    """The case order (trial order in a paired study) a reader gets (or got) in a study, from
    the study id and the name."""
    name = existing_reader(study, reader) or validate_reader(reader)
    return shuffled_case_order(study.rated_ids, order_seed(study.study_id, name))


def order_seed(study_id: str, reader: str) -> str:
    """The seed of a reader's case order: a hash of study id and reader name."""
    return hashlib.sha256(f"{study_id}\n{reader}".encode()).hexdigest()[:16]


def shuffled_case_order(case_ids: list[str], seed: str) -> list[str]:
    """The case (or trial) ids in the order one seed gives; independent of the study's listed
    order."""
    order = sorted(case_ids)
    random.Random(int(seed, 16)).shuffle(order)
    return order


def database_path(study: Study, reader: str) -> Path:
    """Where a reader's ratings database lives."""
    return study.ratings_dir / f"{reader}{DATABASE_SUFFIX}"
