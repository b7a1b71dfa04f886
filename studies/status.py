"""How far each reader of a study has got: cases done, time spent, the practice block.

A case is done when every question has an answer or the reader flagged it "not assessable".
Practice cases are counted apart (`practice`, `practice_done`) and their time is never study time.
A reader database holding impossible values is refused (`studies.ratings.read_reader_ratings`,
one sentence); cases whose history does not explain their answers (edited outside mdiff) are
listed per reader (`edited_cases`), since export refuses them. In a paired (2AFC) study a reader's
progress counts trials, and the report says how many trials the study's cases make.
"""

from __future__ import annotations

import statistics
from dataclasses import asdict, dataclass

from studies.ratings import case_list, read_study_ratings
from studies.study import Study


@dataclass(frozen=True)
class ReaderProgress:
    """One reader's progress."""

    reader: str
    done: int             # study cases done
    total: int
    seconds_total: float  # time on all study cases
    seconds_median: float | None  # median time per done study case; None before the first
    practice: str | None  # "done / total" practice cases; None for a study without practice
    practice_done: bool | None  # every practice case done; None for a study without practice
    edited_cases: list[str]  # cases whose history does not explain their answers, comment or flag


def study_progress(study: Study) -> list[ReaderProgress]:
    """Every reader's progress, in name order."""
    progress = []
    keys = study.question_keys
    for ratings in read_study_ratings(study):
        done = [c for c in ratings.case_order if ratings.is_done(c, keys)]
        times = [ratings.seconds_on_case(c) for c in done]
        total = sum(ratings.seconds_on_case(c) for c in ratings.case_order)
        practised = sum(ratings.is_done(c, keys) for c in study.practice_ids)
        has_practice = bool(study.practice_ids)
        progress.append(ReaderProgress(
            ratings.reader, len(done), len(study.rated_ids), total,
            statistics.median(times) if times else None,
            f"{practised} / {len(study.practice_ids)}" if has_practice else None,
            practised == len(study.practice_ids) if has_practice else None,
            ratings.history_disagrees))
    return progress


def status_report(study: Study) -> dict:
    """The status as one JSON-ready object (a paired study's with its design and trials)."""
    report = {"study_id": study.study_id, "title": study.title, "dataset": study.dataset,
              "modality": study.modality, "cases": len(study.case_ids),
              "practice_cases": len(study.practice_ids),
              "readers": [asdict(p) for p in study_progress(study)]}
    if study.design == "2afc":
        report.update(design="2afc", trials=len(study.trial_ids))
    return report


def format_duration(seconds: float) -> str:
    """Seconds as h:mm:ss."""
    whole = int(round(seconds))
    return f"{whole // 3600}:{whole % 3600 // 60:02d}:{whole % 60:02d}"


def status_text(report: dict) -> str:
    """The status as a small table for the terminal."""
    paired = report.get("design") == "2afc"
    practice = f" and {report['practice_cases']} practice {'trials' if paired else 'cases'}" \
        if report["practice_cases"] else ""
    trials = f"{report['trials']} paired trials of " if paired else ""
    lines = [f"{report['title']} ({report['dataset'] or 'no dataset'}, {report['modality']}): "
             f"{trials}{report['cases']} cases{practice}, study id {report['study_id']}"]
    if not report["readers"]:
        lines.append("No reader has opened the study yet.")
        return "\n".join(lines)
    width = max(6, *(len(r["reader"]) for r in report["readers"]))
    header = f"{'reader':<{width}}  {'done':>11}  {'time':>9}  {'median/case':>11}"
    lines.append(header + ("  practice" if report["practice_cases"] else ""))
    for r in report["readers"]:
        median = "-" if r["seconds_median"] is None else f"{r['seconds_median']:.0f} s"
        done = f"{r['done']} / {r['total']}"
        line = (f"{r['reader']:<{width}}  {done:>11}  "
                f"{format_duration(r['seconds_total']):>9}  {median:>11}")
        if report["practice_cases"]:
            line += f"  {r['practice']}" + (" done" if r["practice_done"] else " (not done)")
        lines.append(line)
    for r in report["readers"]:
        if r["edited_cases"]:
            lines.append(f"{r['reader']}: the history does not explain cases "
                         f"{case_list(r['edited_cases'])}, edited outside mdiff (export refuses "
                         "them without --accept-edits).")
    return "\n".join(lines)
