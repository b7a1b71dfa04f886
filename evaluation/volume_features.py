"""Simple per-volume features, and the two-sample statistics shared by both C2ST classifiers.

Features (one row per volume, `FEATURES` names the columns): intensity (mean, standard
deviation, skewness, kurtosis, five quantiles, histogram entropy on the set's common range,
distinct values, background fraction), gradient (mean and standard deviation of the central-
difference gradient magnitude), texture (mean absolute Laplacian, neighbour correlation along the
three axes, mean local 3x3x3 variance). Each feature belongs to a family (`FAMILY`) so a report
can say "the synthetic volumes are blurrier" rather than "feature 11 differs".

Statistics: the ROC AUC by ranks (P(score of a synthetic > score of a real), ties count one
half), its 95% CI from a bootstrap over groups (each class's groups resampled with replacement,
every volume of a drawn group kept together), and a permutation p-value that permutes the labels
over groups while the held-out scores stay fixed (the classifier-two-sample null: a classifier
whose held-out scores do not depend on the label). Folds (`grouped_folds`) never split a group.

numpy and scipy only, plus scikit-learn's logistic regression for the feature classifier.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import ndimage
from scipy.stats import kurtosis, rankdata, skew

QUANTILES = (0.01, 0.1, 0.5, 0.9, 0.99)
HISTOGRAM_BINS = 64
FAMILY = {
    "mean": "intensity", "standard deviation": "contrast", "skewness": "intensity",
    "kurtosis": "intensity", **{f"{100 * q:g}th percentile": "intensity" for q in QUANTILES},
    "histogram entropy": "intensity", "distinct values (log10)": "quantisation",
    "background fraction": "intensity", "gradient mean": "sharpness or noise",
    "gradient standard deviation": "sharpness or noise",
    "mean absolute Laplacian": "sharpness or noise", "neighbour correlation": "sharpness or noise",
    "local variance": "sharpness or noise",
}
FEATURES = tuple(FAMILY)


# --- features -------------------------------------------------------------------------------

def volume_features(volume: np.ndarray, bounds: tuple[float, float]) -> np.ndarray:
    """The `FEATURES` of one (D, H, W) volume; `bounds`: the common value range of the set."""
    v = np.asarray(volume, dtype=np.float64)
    flat = v.ravel()
    low, high = bounds
    span = max(high - low, 1e-12)
    counts, _ = np.histogram(flat, bins=HISTOGRAM_BINS, range=(low, high + 1e-12))
    p = counts[counts > 0] / flat.size
    std = float(flat.std())
    gradient = np.sqrt(sum(g ** 2 for g in np.gradient(v)))
    laplacian = ndimage.laplace(v)
    local_mean = ndimage.uniform_filter(v, 3)
    local_var = ndimage.uniform_filter(v * v, 3) - local_mean ** 2
    return np.array([
        flat.mean(), std, _finite(skew(flat)), _finite(kurtosis(flat)),
        *np.quantile(flat, QUANTILES),
        float(-(p * np.log(p)).sum()), float(np.log10(np.unique(flat).size)),
        float(np.mean(flat <= flat.min() + 0.01 * span)),
        gradient.mean(), gradient.std(), np.abs(laplacian).mean(), _neighbour_correlation(v),
        local_var.mean(),
    ], dtype=np.float64)


def _finite(value: float) -> float:
    """A moment of a constant volume is NaN; call it 0."""
    return float(value) if np.isfinite(value) else 0.0


def _neighbour_correlation(v: np.ndarray) -> float:
    """Mean over the three axes of the correlation of each voxel with its next neighbour."""
    values = []
    for axis in range(3):
        a = np.moveaxis(v, axis, 0)
        x, y = a[1:].ravel(), a[:-1].ravel()
        sx, sy = x.std(), y.std()
        values.append(0.0 if sx == 0 or sy == 0 else
                      float(np.mean((x - x.mean()) * (y - y.mean())) / (sx * sy)))
    return float(np.mean(values))


def feature_table(volumes: Sequence[np.ndarray], bounds: tuple[float, float]) -> np.ndarray:
    """(n, len(FEATURES)) features of several volumes."""
    return np.stack([volume_features(v, bounds) for v in volumes])


# --- statistics -----------------------------------------------------------------------------

def roc_auc(scores: np.ndarray, labels: np.ndarray) -> float:
    """P(score of a label-1 item > score of a label-0 item), ties one half; NaN if a class is
    empty."""
    labels = np.asarray(labels).astype(bool)
    n1, n0 = int(labels.sum()), int((~labels).sum())
    if n1 == 0 or n0 == 0:
        return float("nan")
    ranks = rankdata(scores)
    return float((ranks[labels].sum() - n1 * (n1 + 1) / 2) / (n1 * n0))


def _group_index(groups: Sequence[str]) -> tuple[np.ndarray, list[np.ndarray]]:
    """Each group's members: (the group of each item as an int, members per group)."""
    names, inverse = np.unique(np.asarray(groups, dtype=object).astype(str), return_inverse=True)
    return inverse, [np.flatnonzero(inverse == g) for g in range(len(names))]


def bootstrap_ci(scores: np.ndarray, labels: np.ndarray, groups: Sequence[str],
                 rng: np.random.Generator, n: int = 2000) -> tuple[float, float]:
    """95% CI of the AUC from a bootstrap over groups, within each class."""
    inverse, members = _group_index(groups)
    group_label = np.array([labels[m[0]] for m in members])
    by_class = [np.flatnonzero(group_label == c) for c in (0, 1)]
    values = []
    for _ in range(n):
        drawn = np.concatenate([members[g] for c in by_class
                                for g in rng.choice(c, size=c.size, replace=True)])
        values.append(roc_auc(scores[drawn], labels[drawn]))
    low, high = np.nanquantile(values, [0.025, 0.975])
    return float(low), float(high)


def permutation_p(scores: np.ndarray, labels: np.ndarray, groups: Sequence[str],
                  rng: np.random.Generator, n: int = 2000) -> float:
    """One-sided p-value of the AUC: labels permuted over groups, the scores fixed."""
    inverse, members = _group_index(groups)
    group_label = np.array([labels[m[0]] for m in members])
    observed = roc_auc(scores, labels)
    hits = sum(roc_auc(scores, rng.permutation(group_label)[inverse]) >= observed - 1e-12
               for _ in range(n))
    return float((1 + hits) / (n + 1))


def grouped_folds(groups: Sequence[str], labels: np.ndarray, folds: int,
                  rng: np.random.Generator) -> np.ndarray:
    """The fold of every item: each class's groups shuffled and dealt round robin, so every fold
    holds both classes and no group is ever split; `folds` at most the smaller class's groups."""
    inverse, members = _group_index(groups)
    group_label = np.array([labels[m[0]] for m in members])
    fold_of_group = np.zeros(len(members), dtype=np.int64)
    for c in (0, 1):
        chosen = rng.permutation(np.flatnonzero(group_label == c))
        fold_of_group[chosen] = (np.arange(chosen.size) + rng.integers(folds)) % folds
    return fold_of_group[inverse]


def class_group_counts(groups: Sequence[str], labels: np.ndarray) -> tuple[int, int]:
    """How many groups each class has: (label 0, label 1)."""
    _, members = _group_index(groups)
    group_label = np.array([labels[m[0]] for m in members])
    return int((group_label == 0).sum()), int((group_label == 1).sum())


# --- the feature classifier -----------------------------------------------------------------

def feature_scores(table: np.ndarray, labels: np.ndarray, folds: np.ndarray) -> np.ndarray:
    """Held-out scores of a logistic regression on standardised features, fold by fold."""
    from sklearn.linear_model import LogisticRegression

    scores = np.zeros(len(labels))
    for fold in np.unique(folds):
        train, test = folds != fold, folds == fold
        mean, std = table[train].mean(0), table[train].std(0)
        std[std == 0] = 1.0
        model = LogisticRegression(C=0.1, max_iter=2000)
        model.fit((table[train] - mean) / std, labels[train])
        scores[test] = model.decision_function((table[test] - mean) / std)
    return scores


def separating_features(table: np.ndarray, labels: np.ndarray, *, names: Sequence[str] = FEATURES,
                        threshold: float = 0.75) -> list[dict]:
    """Every feature's own AUC (label 1 higher > 0.5) and effect size (difference of the class
    means over the pooled standard deviation), strongest first: by AUC, ties (common when
    several features separate perfectly) by effect size; `separates` when the AUC is at least
    `threshold` or at most 1 - `threshold`."""
    rows = []
    for k, name in enumerate(names):
        auc = roc_auc(table[:, k], labels)
        real, synthetic = table[labels == 0, k], table[labels == 1, k]
        pooled = np.sqrt((real.var() + synthetic.var()) / 2)
        effect = float((synthetic.mean() - real.mean()) / pooled) if pooled > 0 else 0.0
        rows.append({"feature": name, "family": FAMILY.get(name, ""), "auc": auc,
                     "effect_size": effect, "real_median": float(np.median(real)),
                     "synthetic_median": float(np.median(synthetic)),
                     "separates": bool(abs(auc - 0.5) >= threshold - 0.5)})
    return sorted(rows, key=lambda r: (-round(abs(r["auc"] - 0.5), 9), -abs(r["effect_size"])))
