"""The ids of a study's parts: case and trial ids are random lowercase hex, practice ids `P01`."""

from __future__ import annotations

import re

# Case ids are random lowercase hex (see create.py); anything else could be a path. Trial ids of
# a paired study follow the same pattern and are never a case's.
CASE_ID_PATTERN = re.compile(r"^[0-9a-f]{8,32}$")
# Practice ids: an upper-case P and a number, so no practice id can be a study case's id.
PRACTICE_ID_PATTERN = re.compile(r"^P[0-9]{2,4}$")
