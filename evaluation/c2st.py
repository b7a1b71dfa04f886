"""Classifier two-sample test (C2ST, Lopez-Paz & Oquab 2017): can a classifier tell real volumes
from synthetic ones? A held-out ROC AUC of 0.5 means it cannot; 1.0 that they differ plainly.

Two classifiers, on the same folds:
- a small 3D CNN trained from scratch (no downloaded weights: `C2STNet`), on volumes average-
  pooled to at most `MAX_SIDE` voxels per axis and standardised by the training fold's mean and
  standard deviation, with left-right flips; Adam, binary cross-entropy weighted for balance;
- a logistic regression on simple per-volume features (`evaluation.volume_features`), which also
  names the features that separate the folders on their own.

Folds are grouped: every augmented copy of one source scan (a PREP_DIR's manifest knows the scan
each array came from) falls in one fold, so a classifier never meets a copy of a test volume in
training; outside a PREP_DIR each volume is its own group. The k-fold split is repeated over
`seeds` (each seed its own folds and network initialisation) and each volume's held-out scores
averaged over seeds; the AUC of those, its 95% CI (bootstrap over groups) and a permutation
p-value (labels permuted over groups) are the result. Calibration: the same test between two
halves of the real folder's groups, which should sit at 0.5.

Folders are read only through `diffusion_core.sources`, in one convention: the preset's model
space [-1, 1] when either folder has a preset, else the values the files hold.
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from diffusion_core.runtime import resolve_device
from diffusion_core.sources import VolumeSource, open_sources
from evaluation.c2st_figure import Maps, draw_c2st
from evaluation.errors import EvalError
from evaluation.volume_features import (
    bootstrap_ci,
    class_group_counts,
    feature_scores,
    feature_table,
    grouped_folds,
    permutation_p,
    roc_auc,
    separating_features,
)

DEFAULT_FOLDS, DEFAULT_SEEDS, DEFAULT_EPOCHS = 5, 3, 20
DEFAULT_BOOTSTRAP = DEFAULT_PERMUTATIONS = 2000
MAX_SIDE = 64
BATCH, LEARNING_RATE, WIDTH = 8, 2e-3, 8
SALIENCY_CASES = 2  # held-out cases per class drawn in the figure


# --- reading --------------------------------------------------------------------------------

@dataclass
class VolumeSet:
    """The volumes of one folder with each one's group (its source scan)."""

    folder: Path
    names: list[str]
    groups: list[str]
    volumes: np.ndarray  # (n, D, H, W) float32


def read_set(source: VolumeSource, label: str, progress: bool = True) -> VolumeSet:
    """Every volume of `source` in its convention, one shape; groups from the PREP_DIR's
    manifest (the scan an array was prepared from), else one per volume."""
    stack = source.stack("the classifier test needs one shape", progress=progress,
                         desc=f"reading {label}")
    groups = [f"{label}:{item.prepared_from or item.name}" for item in source.items]
    return VolumeSet(source.folder, source.names, groups, stack)


def read_pair(real: str | os.PathLike, synthetic: str | os.PathLike, *,
              progress: bool = True) -> tuple[VolumeSet, VolumeSet, str]:
    """Both folders in one convention (module docstring), of one shape; also the convention."""
    sources = open_sources([("REAL", real), ("SYNTHETIC", synthetic)])
    preset = next((s.preset for s in sources if s.preset is not None), None)
    values = (f"{sources[0].convention} of preset {preset.name!r}" if preset is not None
              else "as the files hold them")
    sets = [read_set(s, label, progress) for s, label in zip(sources, ("real", "synthetic"),
                                                            strict=True)]
    if sets[0].volumes.shape[1:] != sets[1].volumes.shape[1:]:
        raise EvalError(f"{real} holds volumes of shape {sets[0].volumes.shape[1:]} but "
                        f"{synthetic} of {sets[1].volumes.shape[1:]}; compare folders of one "
                        "shape.")
    return sets[0], sets[1], values


# --- the network ----------------------------------------------------------------------------

class C2STNet(nn.Module):
    """Three strided 3D convolutions, global average pooling, one logit: x (N, 1, D, H, W)."""

    def __init__(self, width: int = WIDTH) -> None:
        super().__init__()
        layers, channels = [], 1
        for out in (width, 2 * width, 4 * width):
            # No normalisation layer: a per-volume norm would erase the brightness and noise
            # level that may be exactly what separates the folders.
            layers += [nn.Conv3d(channels, out, 3, stride=2, padding=1), nn.LeakyReLU(0.2)]
            channels = out
        self.features = nn.Sequential(*layers)
        self.head = nn.Linear(channels, 1)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 1, D, H, W) -> (N, 4 * width) pooled features."""
        return self.features(x).mean(dim=(2, 3, 4))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 1, D, H, W) -> (N,) logits, positive for 'synthetic'."""
        return self.head(self.embed(x))[:, 0]


def network_input(volumes: np.ndarray) -> torch.Tensor:
    """(n, D, H, W) -> (n, 1, d, h, w) float32, average-pooled to at most MAX_SIDE per axis."""
    x = torch.from_numpy(np.ascontiguousarray(volumes, dtype=np.float32))[:, None]
    target = tuple(min(n, MAX_SIDE) for n in x.shape[2:])
    return F.adaptive_avg_pool3d(x, target) if target != tuple(x.shape[2:]) else x


def train_network(x: torch.Tensor, y: torch.Tensor, *, epochs: int, seed: int,
                  device: torch.device) -> C2STNet:
    """A C2STNet fitted to (x, y) on `device`; x already standardised."""
    generator = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    net = C2STNet().to(device)
    optimiser = torch.optim.Adam(net.parameters(), lr=LEARNING_RATE)
    positive = float(y.sum())
    weight = torch.tensor((len(y) - positive) / max(positive, 1.0), device=device)
    net.train()
    for _ in range(epochs):
        order = torch.randperm(len(y), generator=generator)
        for start in range(0, len(y), BATCH):
            pick = order[start:start + BATCH]
            batch = x[pick]
            flip = torch.rand(len(pick), generator=generator) < 0.5
            batch = torch.where(flip.view(-1, 1, 1, 1, 1), batch.flip(-1), batch).to(device)
            loss = F.binary_cross_entropy_with_logits(net(batch), y[pick].to(device),
                                                      pos_weight=weight)
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
    return net.eval()


def predict(net: C2STNet, x: torch.Tensor, device: torch.device) -> np.ndarray:
    """The logits of (n, 1, d, h, w) volumes, a batch at a time: (n,)."""
    with torch.no_grad():
        return np.concatenate([net(x[i:i + 4 * BATCH].to(device)).cpu().numpy()
                               for i in range(0, len(x), 4 * BATCH)])


def saliency(net: C2STNet, x: torch.Tensor, device: torch.device) -> np.ndarray:
    """|d logit / d input| of each volume, (n, d, h, w): where the network looks."""
    maps = []
    for i in range(0, len(x), 4 * BATCH):
        part = x[i:i + 4 * BATCH].clone().to(device).requires_grad_(True)
        net(part).sum().backward()
        maps.append(part.grad.abs()[:, 0].cpu().numpy())
    return np.concatenate(maps)


# --- the test -------------------------------------------------------------------------------

@dataclass(frozen=True)
class Settings:
    """How the test runs: folds, seeds, epochs, device, bootstrap and permutation draws."""

    folds: int = DEFAULT_FOLDS
    seeds: int = DEFAULT_SEEDS
    epochs: int = DEFAULT_EPOCHS
    device: str = "cpu"
    bootstrap: int = DEFAULT_BOOTSTRAP
    permutations: int = DEFAULT_PERMUTATIONS
    seed: int = 0


def folds_for(groups: list[str], labels: np.ndarray, folds: int) -> int:
    """The folds a test can use: at most the smaller class's group count; EvalError below 2."""
    counts = class_group_counts(groups, labels)
    if min(counts) < 2:
        raise EvalError(f"the test needs at least 2 source scans in each folder, got "
                        f"{counts[0]} and {counts[1]}; give more volumes.")
    return min(folds, *counts)


def run_test(volumes: np.ndarray, labels: np.ndarray, groups: list[str], settings: Settings,
             step: Callable[[], None] = lambda: None) -> tuple[dict, dict, Maps]:
    """Both classifiers over `settings.seeds` repeats of grouped k-fold; (cnn, features, maps).

    `labels`: 1 for the second folder ("synthetic"); `step` hears each network trained.
    """
    k = folds_for(groups, labels, settings.folds)
    device = torch.device(settings.device)
    x_all = network_input(volumes)
    bounds = (float(volumes.min()), float(volumes.max()))
    table = feature_table(volumes, bounds)
    y_all = torch.from_numpy(labels.astype(np.float32))
    cnn = np.zeros((settings.seeds, len(labels)))
    feat = np.zeros((settings.seeds, len(labels)))
    shown = _first_of_each(labels, SALIENCY_CASES)
    maps = Maps(np.zeros((len(labels), x_all.shape[2])), {},
                {i: x_all[i, 0].numpy() for i in shown})
    for s in range(settings.seeds):
        folds = grouped_folds(groups, labels, k, np.random.default_rng(settings.seed + s))
        feat[s] = feature_scores(table, labels, folds)
        for fold in range(k):
            train, test = np.flatnonzero(folds != fold), np.flatnonzero(folds == fold)
            mean, std = x_all[train].mean(), x_all[train].std().clamp_min(1e-6)
            net = train_network((x_all[train] - mean) / std, y_all[train],
                                epochs=settings.epochs, seed=1000 * (settings.seed + s) + fold,
                                device=device)
            x_test = (x_all[test] - mean) / std
            cnn[s, test] = predict(net, x_test, device)
            if s == 0:
                grads = saliency(net, x_test, device)
                maps.profile[test] = grads.mean(axis=(2, 3))
                maps.cases.update({int(i): g for i, g in zip(test, grads, strict=True)
                                   if int(i) in shown})
            step()
    rng = np.random.default_rng(settings.seed)
    return (_statistics(cnn, labels, groups, settings, rng, k),
            {**_statistics(feat, labels, groups, settings, rng, k),
             "features": separating_features(table, labels)}, maps)


def _first_of_each(labels: np.ndarray, n: int) -> list[int]:
    """The first `n` indices of each label."""
    return [int(i) for c in (0, 1) for i in np.flatnonzero(labels == c)[:n]]


def _statistics(scores: np.ndarray, labels: np.ndarray, groups: list[str], settings: Settings,
                rng: np.random.Generator, folds: int) -> dict:
    """AUC of the seed-averaged held-out scores, its CI, p-value and the AUC of every seed."""
    mean = scores.mean(axis=0)
    low, high = bootstrap_ci(mean, labels, groups, rng, settings.bootstrap)
    return {"auc": roc_auc(mean, labels), "ci_low": low, "ci_high": high,
            "p_value": permutation_p(mean, labels, groups, rng, settings.permutations),
            "auc_per_seed": [roc_auc(s, labels) for s in scores], "folds": folds}


def real_halves(groups: list[str], seed: int) -> np.ndarray | None:
    """Labels splitting the real folder's groups into two random halves; None under 4 groups."""
    names = sorted(set(groups))
    if len(names) < 4:
        return None
    second = set(np.random.default_rng(seed).permutation(names)[len(names) // 2:])
    return np.array([g in second for g in groups], dtype=np.int64)


# --- the report -----------------------------------------------------------------------------

def c2st_report(real: str | os.PathLike, synthetic: str | os.PathLike, *,
                settings: Settings = Settings(), device: str = "auto",
                figure: str | os.PathLike | None = None, force: bool = False,
                progress: bool = True) -> dict:
    """The test of REAL vs SYNTHETIC beside its calibration, real half vs half (JSON-ready)."""
    from evaluation.slice_panels import check_figure_path, save_png

    started = time.perf_counter()
    figure = None if figure is None else Path(figure)
    _check_settings(settings)
    if figure is not None:
        check_figure_path(figure, force=force, inputs=[("REAL", real), ("SYNTHETIC", synthetic)])
    settings = dataclasses.replace(settings, device=resolve_device(device).type)
    real_set, synthetic_set, values = read_pair(real, synthetic, progress=progress)
    volumes = np.concatenate([real_set.volumes, synthetic_set.volumes])
    labels = np.repeat([0, 1], [len(real_set.names), len(synthetic_set.names)])
    groups = real_set.groups + synthetic_set.groups
    halves = real_halves(real_set.groups, settings.seed)
    k = folds_for(groups, labels, settings.folds)
    runs = settings.seeds * (k + (0 if halves is None else
                                  _folds_or_zero(real_set.groups, halves, settings.folds)))
    with tqdm(total=runs, desc="training classifiers", unit="network",
              disable=not progress) as bar:
        cnn, features, maps = run_test(volumes, labels, groups, settings, bar.update)
        calibration = None
        if halves is not None and _folds_or_zero(real_set.groups, halves, settings.folds):
            half_cnn, half_features, _ = run_test(real_set.volumes, halves, real_set.groups,
                                                  settings, bar.update)
            calibration = {"cnn": half_cnn, "features": half_features,
                           "n_volumes": [int((halves == 0).sum()), int((halves == 1).sum())]}
    report = {
        "inputs": {name: {"dir": str(s.folder), "n_volumes": len(s.names),
                          "n_groups": len(set(s.groups))}
                   for name, s in (("real", real_set), ("synthetic", synthetic_set))},
        "values": values, "shape": list(volumes.shape[1:]),
        "network_input": list(next(iter(maps.inputs.values())).shape),
        "settings": dataclasses.asdict(settings),
        "cnn": cnn, "features": features, "calibration": calibration,
        "verdict": verdict(cnn, calibration), "figure": None,
    }
    if figure is not None:
        save_png(draw_c2st(maps, labels, real_set.volumes, synthetic_set.volumes, cnn), figure)
        report["figure"] = str(figure)
    report["seconds"] = time.perf_counter() - started
    return report


def _folds_or_zero(groups: list[str], labels: np.ndarray, folds: int) -> int:
    """`folds_for`, or 0 where a class has fewer than 2 groups."""
    counts = class_group_counts(groups, labels)
    return 0 if min(counts) < 2 else min(folds, *counts)


def _check_settings(settings: Settings) -> None:
    """EvalError for settings the test cannot use."""
    for name in ("folds", "seeds", "epochs"):
        minimum = 2 if name == "folds" else 1
        if getattr(settings, name) < minimum:
            raise EvalError(f"--{name} must be at least {minimum}, got "
                            f"{getattr(settings, name)}.")


def verdict(cnn: dict, calibration: dict | None) -> str:
    """One sentence: do the folders differ, and can the calibration be trusted?"""
    if cnn["ci_low"] > 0.5 and cnn["p_value"] < 0.05:
        said = (f"a classifier tells the folders apart (AUC {cnn['auc']:.2f}, 95% CI "
                f"{cnn['ci_low']:.2f}-{cnn['ci_high']:.2f})")
    else:
        said = (f"no evidence that a classifier tells the folders apart at this size (AUC "
                f"{cnn['auc']:.2f}, 95% CI {cnn['ci_low']:.2f}-{cnn['ci_high']:.2f})")
    if calibration is None:
        return said + "; too few real source scans (under 4) to calibrate on real halves."
    half = calibration["cnn"]
    if half["ci_low"] > 0.5:
        return said + (f"; but the real halves also separate (AUC {half['auc']:.2f}), so the "
                       "real folder is not one population and this AUC overstates the gap.")
    return said + f"; real half vs half: AUC {half['auc']:.2f}, as it should be near 0.5."


def c2st_text(report: dict, top: int = 5) -> str:
    """The text report: both classifiers beside their calibration, the separating features."""
    real, synthetic = report["inputs"]["real"], report["inputs"]["synthetic"]
    calibration = report["calibration"]
    lines = [f"real {real['dir']} ({real['n_volumes']} volumes, {real['n_groups']} source "
             f"scans) vs synthetic {synthetic['dir']} ({synthetic['n_volumes']} volumes); "
             f"values: {report['values']}; network input "
             f"{'x'.join(map(str, report['network_input']))}",
             f"{'held-out ROC AUC':<22} {'real vs synthetic':<34} real half vs half "
             "(calibration, ~0.5)"]

    def cell(part: dict | None) -> str:
        if part is None:
            return "n/a (under 4 real source scans)"
        return (f"{part['auc']:.3f} [{part['ci_low']:.3f}, {part['ci_high']:.3f}] "
                f"p {part['p_value']:.3g}")

    for key, name in (("cnn", "3D CNN"), ("features", "feature classifier")):
        lines.append(f"{name:<22} {cell(report[key]):<34} "
                     f"{cell(calibration[key] if calibration else None)}")
    separating = [f for f in report["features"]["features"] if f["separates"]][:top]
    if separating:
        lines.append("features that separate (own AUC; median real -> synthetic):")
        lines.extend(f"  {f['feature']} ({f['family']}): {f['auc']:.2f}; "
                     f"{f['real_median']:.4g} -> {f['synthetic_median']:.4g}"
                     for f in separating)
    else:
        lines.append("no single feature separates the folders (own AUC within 0.25-0.75)")
    lines.append(f"verdict: {report['verdict']}")
    if report["figure"]:
        lines.append(f"figure: {report['figure']}")
    lines.append(f"took {report['seconds']:.1f} s")
    return "\n".join(lines)
