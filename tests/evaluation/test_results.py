"""`JsonResult.to_json`: fields in order, nested results, tuples as lists, `reason` only if set."""

from __future__ import annotations

import json
from dataclasses import dataclass

from evaluation.results import JsonResult


@dataclass(frozen=True)
class _Stat(JsonResult):
    value: float | None
    n: int
    reason: str | None = None


@dataclass(frozen=True)
class _Report(JsonResult):
    files: tuple[str, ...]
    stats: dict[str, _Stat]
    pairs: tuple[tuple[str, str], ...]


def test_nested_results_become_one_json_object_in_field_order():
    report = _Report(("b.csv", "a.csv"), {"x": _Stat(0.5, 2), "y": _Stat(None, 0, "no data")},
                     (("A", "B"),))
    assert json.dumps(report.to_json()) == (
        '{"files": ["b.csv", "a.csv"], "stats": {"x": {"value": 0.5, "n": 2}, '
        '"y": {"value": null, "n": 0, "reason": "no data"}}, "pairs": [["A", "B"]]}')
