"""The sweep: every (seed, fraction, with / without pre-training) cell, one CSV row per cell.

`results.csv` is rewritten whole, atomically, after each finished cell, so an interrupted sweep
keeps every finished row and a rerun skips them. A cell trains in `cells/NAME/` (the trainer's
checkpoints, so a long cell resumes too), and the folder is removed once its row is written.
The masks predicted for the figure's test case are kept in `predictions/` for the smallest
fraction (Figure 5).
"""

from __future__ import annotations

import csv
import math
import shutil
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from diffusion_core.outputs import write_text_atomically
from evaluation.downstream.config import DownstreamConfig
from evaluation.downstream.data import Case
from evaluation.downstream.finetune import build_segmenter, evaluate, finetune
from evaluation.downstream.folds import training_subset
from evaluation.errors import EvalError

RESULTS_NAME = "results.csv"
COLUMNS = ("fraction", "pretrained", "seed", "n_train", "dice", "hd95", "seconds")
CELLS_DIR, PREDICTIONS_DIR = "cells", "predictions"


@dataclass(frozen=True)
class Cell:
    """One fine-tuning run of the sweep."""

    fraction: float
    seed: int
    pretrained: bool

    @property
    def name(self) -> str:
        """The cell's folder and file name, e.g. f0.05_s0_pretrained."""
        return f"f{self.fraction:g}_s{self.seed}_{'pretrained' if self.pretrained else 'scratch'}"

    @property
    def key(self) -> tuple[str, str, str]:
        """How its CSV row is recognised."""
        return (f"{self.fraction:g}", str(int(self.pretrained)), str(self.seed))


def cells(config: DownstreamConfig) -> list[Cell]:
    """Every cell, seed by seed (a partial sweep then covers every fraction), smallest first."""
    sweep = config.sweep
    return [Cell(fraction, seed, pretrained)
            for seed in range(sweep.first_seed, sweep.first_seed + sweep.seeds)
            for fraction in sorted(sweep.fractions) for pretrained in (False, True)]


def read_results(out: Path) -> list[dict[str, str]]:
    """The finished rows of `out`/results.csv ([] when there is none yet)."""
    path = out / RESULTS_NAME
    if not path.is_file():
        return []
    with open(path, newline="") as handle:
        reader = csv.DictReader(handle)
        if tuple(reader.fieldnames or ()) != COLUMNS:
            raise EvalError(f"{path} does not hold this command's columns; give another --out.")
        return list(reader)


def _write_results(out: Path, rows: list[dict[str, str]]) -> None:
    lines = [",".join(COLUMNS)] + [",".join(row[c] for c in COLUMNS) for row in rows]
    write_text_atomically(out / RESULTS_NAME, "\n".join(lines) + "\n")


def _number(value: float) -> str:
    return "nan" if not math.isfinite(value) else f"{value:.6g}"


def run_sweep(out: Path, config: DownstreamConfig, train: Sequence[Case], test: Sequence[Case],
              shape: tuple[int, ...], unit: str, encoder_path: Path | None, *,
              device: str = "auto", progress: bool = True) -> list[dict[str, str]]:
    """Run every cell not yet in results.csv; the rows of the cells asked for, in their order
    (rows of cells outside this grid stay in the file)."""
    from tqdm.auto import tqdm

    from evaluation.downstream.pretrain import load_encoder

    rows = read_results(out)
    done = {(r["fraction"], r["pretrained"], r["seed"]) for r in rows}
    todo = [c for c in cells(config) if c.key not in done]
    encoder = load_encoder(encoder_path) if encoder_path is not None else None
    smallest = min(config.sweep.fractions)
    bar = tqdm(total=len(cells(config)), initial=len(cells(config)) - len(todo), unit="cell",
               desc="fine-tune", file=sys.stderr, disable=not progress, dynamic_ncols=True)
    try:
        for cell in todo:
            if cell.pretrained and encoder is None:
                raise EvalError("a pre-trained cell needs the pre-trained encoder; give "
                                "--pretrain.")
            bar.set_postfix_str(cell.name)
            started = time.perf_counter()
            subset = [train[i] for i in training_subset(train, cell.fraction, cell.seed, unit)]
            net = build_segmenter(config.swin, cell.seed, encoder if cell.pretrained else None,
                                  encoder_path)
            folder = out / CELLS_DIR / cell.name
            finetune(net, subset, shape, config.finetune, cell.seed, folder, device=device)
            dice, hd95, masks = evaluate(net, test, shape)
            if cell.fraction == smallest:
                _save_prediction(out, cell, masks[0])
            rows.append({"fraction": cell.key[0], "pretrained": cell.key[1], "seed": cell.key[2],
                         "n_train": str(len(subset)), "dice": _number(dice),
                         "hd95": _number(hd95),
                         "seconds": f"{time.perf_counter() - started:.1f}"})
            _write_results(out, rows)
            shutil.rmtree(folder, ignore_errors=True)
            bar.update(1)
    finally:
        bar.close()
    order = {c.key: i for i, c in enumerate(cells(config))}
    asked = [r for r in rows if (r["fraction"], r["pretrained"], r["seed"]) in order]
    return sorted(asked, key=lambda r: order[(r["fraction"], r["pretrained"], r["seed"])])


def _save_prediction(out: Path, cell: Cell, mask: np.ndarray) -> None:
    folder = out / PREDICTIONS_DIR
    folder.mkdir(exist_ok=True)
    target = folder / f"{cell.name}.npy"
    tmp = folder / f".{cell.name}.tmp.npy"
    np.save(tmp, mask.astype(np.uint8))
    tmp.replace(target)


def load_prediction(out: Path, cell: Cell) -> np.ndarray | None:
    """The figure case's predicted mask of a cell at the smallest fraction, if kept."""
    path = out / PREDICTIONS_DIR / f"{cell.name}.npy"
    return np.load(path).astype(bool) if path.is_file() else None
