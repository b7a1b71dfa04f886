"""Frozen dataclasses read back from JSON objects, strictly; torch-free.

One rule for every `from_dict` of a config or an on-disk record: a key the dataclass does not
have is an error (a file from another version, or a typo in an edited one); a field without a
default must be there; a missing field with a default takes it (the settings added later default
to what mdiff did before they existed).
"""

from __future__ import annotations

from dataclasses import MISSING, fields
from typing import Any


def dataclass_fields(cls: type, data: Any, what: str) -> dict:
    """`data` as `cls`'s constructor arguments; ValueError naming unknown or missing keys."""
    if not isinstance(data, dict):
        raise ValueError(f"the {what} settings are not a JSON object")
    names = {f.name for f in fields(cls)}
    unknown = set(data) - names
    if unknown:
        raise ValueError(f"unknown {what} settings {sorted(unknown)}")
    missing = [f.name for f in fields(cls) if f.name not in data
               and f.default is MISSING and f.default_factory is MISSING]
    if missing:
        raise ValueError(f"the {what} settings lack {missing}")
    return dict(data)
