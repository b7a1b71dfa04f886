"""How far each reader of a study has got: cases done, time spent."""

from __future__ import annotations

import statistics
from dataclasses import asdict, dataclass

from studies.ratings import read_study_ratings
from studies.study import Study


@dataclass(frozen=True)
class ReaderProgress:
    """One reader's progress."""

    reader: str
    done: int             # cases with every question answered
    total: int
    seconds_total: float  # time on all cases
    seconds_median: float | None  # median time per completed case; None before the first


def study_progress(study: Study) -> list[ReaderProgress]:
    """Every reader's progress, in name order."""
    progress = []
    for ratings in read_study_ratings(study):
        done = [c for c in ratings.case_order if ratings.is_complete(c, study.question_keys)]
        times = [ratings.seconds_on_case(c) for c in done]
        total = sum(ratings.seconds_on_case(c) for c in ratings.case_order)
        progress.append(ReaderProgress(ratings.reader, len(done), len(study.case_ids), total,
                                       statistics.median(times) if times else None))
    return progress


def status_report(study: Study) -> dict:
    """The status as one JSON-ready object."""
    return {"study_id": study.study_id, "title": study.title, "dataset": study.dataset,
            "modality": study.modality, "cases": len(study.case_ids),
            "readers": [asdict(p) for p in study_progress(study)]}


def format_duration(seconds: float) -> str:
    """Seconds as h:mm:ss."""
    whole = int(round(seconds))
    return f"{whole // 3600}:{whole % 3600 // 60:02d}:{whole % 60:02d}"


def status_text(report: dict) -> str:
    """The status as a small table for the terminal."""
    lines = [f"{report['title']} ({report['dataset'] or 'no dataset'}, {report['modality']}): "
             f"{report['cases']} cases, study id {report['study_id']}"]
    if not report["readers"]:
        lines.append("No reader has opened the study yet.")
        return "\n".join(lines)
    width = max(6, *(len(r["reader"]) for r in report["readers"]))
    lines.append(f"{'reader':<{width}}  {'done':>11}  {'time':>9}  {'median/case':>11}")
    for r in report["readers"]:
        median = "-" if r["seconds_median"] is None else f"{r['seconds_median']:.0f} s"
        done = f"{r['done']} / {r['total']}"
        lines.append(f"{r['reader']:<{width}}  {done:>11}  "
                     f"{format_duration(r['seconds_total']):>9}  {median:>11}")
    return "\n".join(lines)
