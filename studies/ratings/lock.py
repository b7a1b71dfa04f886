"""One writer per reader: an exclusive `flock` on `ratings/<reader>.lock`.

One database per reader means no two readers ever write one file; a second process for the same
reader is refused through the lock, which the OS drops when a process dies, so a crash never
leaves a stale lock behind. The lock file itself stays (removing it would let two processes lock
two different files of one name).
"""

from __future__ import annotations

import fcntl
import os

from studies.ratings.errors import RatingStoreError, ReaderLockedError
from studies.ratings.readers import reader_key
from studies.study import Study

LOCK_SUFFIX = ".lock"


class ReaderLock:
    """An exclusive, non-blocking `flock` on `ratings/<reader>.lock`, dropped by the OS on exit."""

    def __init__(self, study: Study, reader: str) -> None:
        """Take the lock now; ReaderLockedError when another process holds it.

        One lock per reader whatever the case of the name, so two spellings of a new reader
        cannot start two databases at once.
        """
        self.path = study.ratings_dir / f"{reader_key(reader)}{LOCK_SUFFIX}"
        try:
            study.ratings_dir.mkdir(exist_ok=True)
            self._fd: int | None = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as err:
            raise RatingStoreError(f"Cannot create the lock file {self.path} ({err.strerror}); "
                                   "make the study folder writable.") from None
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self._fd)
            self._fd = None
            raise ReaderLockedError(f"Reader '{reader}' already has this study open in another "
                                    "window or process.") from None

    def release(self) -> None:
        """Drop the lock; safe to call twice."""
        if self._fd is not None:
            os.close(self._fd)  # closing the descriptor releases the flock
            self._fd = None
