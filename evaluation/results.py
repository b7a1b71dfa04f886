"""Typed results of the evaluation commands and their one JSON form.

A result is a frozen dataclass; `to_json()` gives the object `--json` prints: its fields in
order, nested results, tuples as lists and mappings as objects. A statistic that cannot be
computed is None with a `reason`; where it can, `reason` is None and left out of the JSON.
"""

from __future__ import annotations

from dataclasses import fields
from typing import Any


def json_value(value: Any) -> Any:
    """A result, or a tuple, list or dict holding results, as JSON-ready Python values."""
    if isinstance(value, JsonResult):
        return value.to_json()
    if isinstance(value, dict):
        return {key: json_value(item) for key, item in value.items()}
    if isinstance(value, tuple | list):
        return [json_value(item) for item in value]
    return value


class JsonResult:
    """Mixin of the result dataclasses: `to_json()` of their fields, in order."""

    def to_json(self) -> dict[str, Any]:
        """The result as one JSON-ready object; a `reason` of None is left out."""
        data = {}
        for field in fields(self):  # type: ignore[arg-type]
            value = getattr(self, field.name)
            if field.name == "reason" and value is None:
                continue
            data[field.name] = json_value(value)
        return data
