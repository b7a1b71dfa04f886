"""The audit of a paired (2AFC) study's trials: can anything but the images tell which side of a
trial holds the synthetic case?

The case files are those of a single-reading study (one road), audited as such. Beyond them:
- **trial pairs**: every trial pairs one real and one synthetic case, and the key's `trials`
  column says the same pairs and sides as study.json;
- **side balance**: layout A has the synthetic case on the left in floor(N/2) or ceil(N/2) of the
  N trials (each reader then sees N/2 on each side, give or take one);
- **side orders**: nothing a reader could see in study.json or the folder without the images
  (the trials' list position, the trial ids' alphabetical order, whether the left member's id,
  list position or inode comes before the right member's) separates the trials with the
  synthetic case on the left from those with it on the right, by the file-level rule of
  `studies.blinding` (no complete separation, p >= 0.01).
`mdiff-study create` draws layout A again while a side order fails, so a fresh study passes.
"""

from __future__ import annotations

import os
from pathlib import Path

from studies.blinding import FILE, CheckResult, SourceTest
from studies.key import KeyEntry
from studies.study import Study
from studies.trials import Trial

TRIAL_PAIRS, SIDE_BALANCE = "trial pairs", "side balance"
SIDE_ORDERS = "side orders"
# The labels SourceTest compares: a trial with its synthetic case on the left or on the right.
_LEFT, _RIGHT = "synthetic", "real"


def synthetic_sides(trials: list[Trial], sources: dict[str, str]) -> dict[str, str]:
    """Trial id -> "left"|"right": the side of its synthetic member (`sources`: case id ->
    real|synthetic)."""
    return {t.trial_id: "left" if sources[t.left] == "synthetic" else "right" for t in trials}


def side_features(folder: Path, trials: list[Trial], cases: list[str],
                  suffix: str) -> dict[str, dict[str, float]]:
    """What a reader could see of each trial without the images: feature -> trial id -> value."""
    position = {case_id: i for i, case_id in enumerate(cases)}
    inode = {case_id: os.stat(folder / f"{case_id}{suffix}").st_ino for case_id in cases}
    return {
        "trial list position in study.json": {t.trial_id: float(i) for i, t in enumerate(trials)},
        "trial id (alphabetical order)": {t.trial_id: float(i) for i, t in
                                          enumerate(sorted(trials, key=lambda t: t.trial_id))},
        "left member's id before the right's": {t.trial_id: float(t.left < t.right)
                                                 for t in trials},
        "left member listed before the right": {
            t.trial_id: float(position[t.left] < position[t.right]) for t in trials},
        "left member's inode below the right's": {
            t.trial_id: float(inode[t.left] < inode[t.right]) for t in trials},
    }


def side_leaks(folder: Path, trials: list[Trial], cases: list[str], suffix: str,
               sides: dict[str, str]) -> list[str]:
    """The side features that fail the file-level rule, each with how."""
    tester = SourceTest({t: _LEFT if side == "left" else _RIGHT for t, side in sides.items()})
    leaks = []
    for name, values in side_features(folder, trials, cases, suffix).items():
        result = tester.test(name, FILE, values)
        if not result.passed:
            direction = "higher" if result.auc > 0.5 else "lower"
            leaks.append(f"{name}: synthetic-left trials are {direction} than synthetic-right "
                         f"ones (AUC {result.auc:.2f}, p = {result.p_value:.3g})")
    return leaks


def trial_pairs(study: Study, key: dict[str, KeyEntry]) -> CheckResult:
    """Every trial pairs a real and a synthetic case; the key's trials column agrees."""
    listed: dict[str, set[str]] = {}
    for trial in study.trials.values():
        sources = sorted(key[c].source for c in (trial.left, trial.right))
        if sources != ["real", "synthetic"]:
            return CheckResult(TRIAL_PAIRS, False, f"trial {trial.trial_id} shows a "
                                                   f"{sources[0]} and a {sources[1]} case")
        listed[trial.left] = listed.get(trial.left, set()) | {f"{trial.trial_id}:left"}
        listed[trial.right] = listed.get(trial.right, set()) | {f"{trial.trial_id}:right"}
    for case_id in study.case_ids:
        if set(key[case_id].trials.split()) != listed.get(case_id, set()):
            return CheckResult(TRIAL_PAIRS, False, f"the key places case {case_id} in other "
                                                   "trials or on other sides than study.json")
    return CheckResult(TRIAL_PAIRS, True, f"each of the {len(study.trials)} trials pairs a real "
                                          "and a synthetic case, as the key says")


def side_balance(trials: list[Trial], sides: dict[str, str]) -> CheckResult:
    """Layout A shows the synthetic member on the left in floor(N/2) or ceil(N/2) trials."""
    n = len(trials)
    left = sum(side == "left" for side in sides.values())
    passed = left in (n // 2, (n + 1) // 2)
    return CheckResult(SIDE_BALANCE, passed,
                       f"the synthetic case is on the left in {left} of the {n} trials of layout "
                       f"A{'' if passed else f', not {n // 2}'} (each reader sees layout A or "
                       "its mirror)")


def trial_audit(study: Study, key: dict[str, KeyEntry]) -> list[CheckResult]:
    """The checks of a paired study's trials (module docstring)."""
    pairs = trial_pairs(study, key)
    if not pairs.passed:
        return [pairs]
    trials = list(study.trials.values())
    sides = synthetic_sides(trials, {c: key[c].source for c in study.case_ids})
    leaks = side_leaks(study.cases_dir, trials, study.case_ids, study.case_suffix, sides)
    orders = CheckResult(SIDE_ORDERS, not leaks, "; ".join(leaks) if leaks else
                         "no order in study.json or the folder tells the synthetic side")
    return [pairs, side_balance(trials, sides), orders]
