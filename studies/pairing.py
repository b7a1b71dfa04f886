"""The trials of a paired (2AFC) study: which inputs it draws, and which real case meets which
synthetic case.

Counts. Without `--reuse` every case is shown in one trial only, so `--pairs N` draws N synthetic
and N real inputs (with `--match`, every real input of the folder, or `--n-real`, to choose the
partners from); a folder that cannot give N is refused before anything is read. With `--reuse` a
case may be shown in several trials, never twice with the same partner: up to N of each folder
are drawn, and the trials spread over the cases as evenly as they can (every case in
floor or ceil of its share).

Matching (`--match`). Each case is described, as the reader will see it (its values after the one
road into cases), by its **foreground fraction** (the share of voxels above the case's Otsu
threshold: how much of the field of view the body fills) and its **intensity histogram** (32
bins of the foreground values over the 1st to 99th percentile of every case's foreground, as
shares). The distance of a real and a synthetic case is the sum of the two differences (the
absolute difference of the fractions, and the total variation distance of the histograms), each
divided by its standard deviation over every real-synthetic combination. Without `--reuse` the
pairs minimise the total distance (an optimal assignment); with it, each next trial takes the
closest pair among those whose cases have been shown least. Without `--match` the pairs are
random.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from studies.case_file import read_case
from studies.inputs import Draw, check_room, folder_pool
from studies.request import StudyRequest
from studies.staging import StagedCase
from studies.study import StudyError

HISTOGRAM_BINS = 32
FOREGROUND_PERCENTILES = (1.0, 99.0)


@dataclass(frozen=True)
class Pairs:
    """The trials' members as indices into the staged real and synthetic cases."""

    real: list[StagedCase]
    synthetic: list[StagedCase]
    members: list[tuple[int, int]]  # per trial: (index in real, index in synthetic)
    distances: list[float] | None = None  # with --match: each trial's distance


def pair_draws(request: StudyRequest, rng: np.random.Generator,
               tell: Callable[[str], None]) -> list[Draw]:
    """The synthetic and real draws of a paired study; StudyError when the folders cannot give
    `--pairs` trials without `--reuse`."""
    pairs = request.pairs
    draws = []
    for folder, count, source, option in ((request.synthetic, request.n, "synthetic", "--n"),
                                          (request.real, request.n_real, "real", "--n-real")):
        pool = folder_pool(folder, source, rng, tell)
        room = len(pool.candidates)
        check_room(folder, room, source, option, count, None if request.reuse else pairs)
        if count is None:
            count = None if request.match and source == "real" else min(pairs, room)
        draws.append(Draw(pool, option, count))
    return draws


def practice_pair_draws(request: StudyRequest, study: list[Draw], rng: np.random.Generator,
                        tell: Callable[[str], None]) -> list[Draw]:
    """K real and K synthetic practice inputs for `--practice K` trials: from the practice
    folders, else from the study's own (never study cases); [] without a practice block."""
    if request.practice_real is not None:
        folders = ((request.practice_synthetic, "synthetic", "--practice-synthetic"),
                   (request.practice_real, "real", "--practice-real"))
        draws = [Draw(folder_pool(folder, source, rng, tell), option, None)
                 for folder, source, option in folders]
        rooms = [len(d.pool.candidates) for d in draws]
        count = request.practice or min(rooms)
        where = "the practice folders"
    elif request.practice is None:
        return []
    else:
        draws = [Draw(d.pool, "--practice", None) for d in study]
        # The study keeps what it asked for; without a count, at least one case of the folder.
        rooms = [len(d.pool.candidates) - (d.wanted if d.wanted is not None else 1)
                 for d in study]
        count = request.practice
        where = "the input folders beside the study's cases"
    for draw, room in zip(draws, rooms, strict=True):
        if count > room:
            raise StudyError(f"--practice {count} trials need {count} {draw.pool.source} "
                             f"volumes, but {where} hold {room}; ask for fewer, or give "
                             "--practice-real and --practice-synthetic folders.")
        draw.wanted = count
    return draws


def pair_cases(staged: list[StagedCase], pairs: int, reuse: bool, match: bool,
               rng: np.random.Generator) -> Pairs:
    """Choose each trial's real and synthetic member among the staged cases (module
    docstring); StudyError when the usable cases cannot make `pairs` trials."""
    real = [case for case in staged if case.entry.source == "real"]
    synthetic = [case for case in staged if case.entry.source == "synthetic"]
    possible = len(real) * len(synthetic) if reuse else min(len(real), len(synthetic))
    if possible < pairs:
        how = "distinct pairs" if reuse else "pairs without --reuse"
        raise StudyError(f"The {len(real)} real and {len(synthetic)} synthetic cases that could "
                         f"be used make only {possible} {how}, fewer than --pairs {pairs}; ask "
                         "for fewer pairs or add volumes.")
    cost = match_distances(real, synthetic) if match else rng.random((len(real), len(synthetic)))
    if reuse:
        members = _spread_pairs(cost, pairs)
    else:
        from scipy.optimize import linear_sum_assignment

        # The synthetic cases to show: a random `pairs` of them; then their partners.
        shown = sorted(rng.permutation(len(synthetic))[:pairs].tolist())
        rows, cols = linear_sum_assignment(cost[:, shown].T)
        members = [(int(cols[k]), shown[int(rows[k])]) for k in range(len(rows))]
    distances = [float(cost[r, s]) for r, s in members] if match else None
    return Pairs(real, synthetic, members, distances)


def _spread_pairs(cost: np.ndarray, pairs: int) -> list[tuple[int, int]]:
    """`pairs` distinct (real, synthetic) index pairs, each next one the cheapest among those
    whose two cases have been shown least."""
    n_real, n_synthetic = cost.shape
    used_real, used_synthetic = np.zeros(n_real), np.zeros(n_synthetic)
    taken = np.zeros(cost.shape, dtype=bool)
    members = []
    for _ in range(pairs):
        load = used_real[:, None] + used_synthetic[None, :]
        load = np.where(taken, np.inf, load)
        score = np.where(load == load.min(), cost, np.inf)
        r, s = np.unravel_index(int(np.argmin(score)), cost.shape)
        taken[r, s] = True
        used_real[r] += 1
        used_synthetic[s] += 1
        members.append((int(r), int(s)))
    return members


def case_signature(array: np.ndarray) -> tuple[float, np.ndarray]:
    """A case's foreground fraction (voxels above its Otsu threshold) and foreground values."""
    from skimage.filters import threshold_otsu

    values = np.asarray(array, dtype=np.float64)
    if values.min() == values.max():
        return 0.0, values.ravel()[:0]
    foreground = values > threshold_otsu(values)
    return float(foreground.mean()), values[foreground]


def match_distances(real: list[StagedCase], synthetic: list[StagedCase]) -> np.ndarray:
    """(real, synthetic) distances of foreground fraction and intensity histogram, each
    difference divided by its standard deviation over all combinations (module docstring)."""
    signatures = [case_signature(read_case(case.staged).array) for case in real + synthetic]
    pooled = np.concatenate([values for _, values in signatures]) if signatures else np.zeros(0)
    low, high = (np.percentile(pooled, FOREGROUND_PERCENTILES) if pooled.size else (0.0, 1.0))
    edges = np.linspace(low, high if high > low else low + 1.0, HISTOGRAM_BINS + 1)
    histograms = []
    for _, values in signatures:
        counts = np.histogram(np.clip(values, edges[0], edges[-1]), bins=edges)[0].astype(float)
        histograms.append(counts / counts.sum() if counts.sum() else counts)
    fraction = np.array([f for f, _ in signatures])
    hist = np.array(histograms)
    n = len(real)
    fraction_gap = np.abs(fraction[:n, None] - fraction[None, n:])
    histogram_gap = 0.5 * np.abs(hist[:n, None, :] - hist[None, n:, :]).sum(axis=2)
    return _standardised(fraction_gap) + _standardised(histogram_gap)


def _standardised(gaps: np.ndarray) -> np.ndarray:
    """Differences divided by their standard deviation (as they are when it is 0)."""
    spread = float(gaps.std())
    return gaps / spread if spread > 0 else gaps
