"""The whole downstream experiment in one run folder, resumable: pre-train, sweep, figures.

    OUT/
      downstream.json       settings and inputs (a rerun must match them to continue)
      pretrain/             the self-supervised run (`pretrain`): checkpoints, log.csv, encoder
      results.csv           one row per finished cell: fraction, pretrained, seed, n_train,
                            dice, hd95, seconds
      predictions/          the figure case's masks at the smallest fraction
      figure4_dice.png      Dice against the training fraction, with and without pre-training
      figure5_overlays.png  the figure case's truth and both arms' masks

Running the same command again continues where it stopped: the pre-training from its last
checkpoint, the sweep from its first unfinished cell. With more seeds or other fractions (and
every other option the same) it adds the new cells and reports the grid asked for.
"""

from __future__ import annotations

import time
from pathlib import Path

from diffusion_core.atomic_files import read_json, write_json
from diffusion_core.outputs import check_output
from diffusion_core.run_folder import CheckpointError
from diffusion_core.training.trainer import RunSetupError, TrainingError
from evaluation.downstream.config import DownstreamConfig
from evaluation.downstream.data import DEFAULT_SUBJECT, common_shape, read_labelled, read_unlabelled
from evaluation.downstream.figures import figure4, figure5, summarise
from evaluation.downstream.finetune import dice
from evaluation.downstream.folds import check_disjoint, fraction_unit
from evaluation.downstream.sweep import Cell, load_prediction, run_sweep
from evaluation.errors import EvalError
from evaluation.slice_panels import save_png

SETTINGS_NAME = "downstream.json"
PRETRAIN_DIR = "pretrain"
FIGURE4, FIGURE5 = "figure4_dice.png", "figure5_overlays.png"


def _check_settings(out: Path, record: dict) -> None:
    """Write the run's settings, or refuse a folder holding a run with other settings.

    The sweep's grid may change (more seeds, other fractions): each cell's result depends on
    its own fraction and seed only, so finished cells stay valid and new ones are added.
    """
    path = out / SETTINGS_NAME
    if not path.is_file():
        if out.is_dir() and any(out.iterdir()):
            raise EvalError(f"--out {out} is a folder that holds other files; give a new or "
                            "empty folder (or a downstream run folder to continue it).")
        out.mkdir(parents=True, exist_ok=True)
    else:
        held = read_json(path, "downstream settings")
        for key in record:
            if _without_grid(held.get(key)) != _without_grid(record[key]):
                raise EvalError(f"--out {out} holds a downstream run with other {key} "
                                "settings; give the same options to continue it, or another "
                                "--out.")
    write_json(path, record)


def _without_grid(value: object) -> object:
    """Settings without the sweep's grid (its fractions and number of seeds)."""
    if isinstance(value, dict) and isinstance(value.get("sweep"), dict):
        sweep = {k: v for k, v in value["sweep"].items() if k not in ("fractions", "seeds")}
        return {**value, "sweep": sweep}
    return value


def downstream_report(pretrain_dir: Path, labelled: Path, test: Path, out: Path,
                      config: DownstreamConfig, *, subject_pattern: str = DEFAULT_SUBJECT,
                      device: str = "auto", progress: bool = True) -> dict:
    """Run (or continue) the experiment into `out`; the report `mdiff-eval downstream` prints."""
    started = time.perf_counter()
    out = check_output(out, inputs=[("--pretrain", pretrain_dir), ("--labelled", labelled),
                                    ("--test", test)], kind="folder")
    train_cases = read_labelled(labelled, "--labelled", subject_pattern)
    test_cases = read_labelled(test, "--test", subject_pattern)
    check_disjoint(train_cases, test_cases)
    unit = fraction_unit(train_cases, config.sweep.fractions)
    shape = common_shape(train_cases, test_cases)
    _check_settings(out, {
        "config": config.to_dict(), "subject_pattern": subject_pattern,
        "inputs": {"pretrain": str(pretrain_dir.resolve()), "labelled": str(labelled.resolve()),
                   "test": str(test.resolve()), "labelled_cases": [c.name for c in train_cases],
                   "test_cases": [c.name for c in test_cases]}})
    try:
        encoder = _pretrain(pretrain_dir, out / PRETRAIN_DIR, config, device, progress)
        rows = run_sweep(out, config, train_cases, test_cases, shape, unit, encoder,
                         device=device, progress=progress)
    except (CheckpointError, TrainingError, RunSetupError) as err:
        raise EvalError(f"{err}") from None
    summary = summarise(rows)
    save_png(figure4(summary, unit, len(test_cases)), out / FIGURE4)
    drew5 = _draw_figure5(out, config, test_cases[0], rows)
    return {
        "out": str(out), "unit": unit, "network_input": list(shape),
        "inputs": {"pretrain": str(pretrain_dir), "labelled": str(labelled), "test": str(test),
                   "labelled_cases": len(train_cases), "test_cases": len(test_cases),
                   "labelled_subjects": sorted({c.subject for c in train_cases}),
                   "test_subjects": sorted({c.subject for c in test_cases})},
        "config": config.to_dict(), "summary": summary,
        "results": [_result(row) for row in rows],
        "figures": [str(out / FIGURE4)] + ([str(out / FIGURE5)] if drew5 else []),
        "seconds": round(time.perf_counter() - started, 1)}


def _result(row: dict[str, str]) -> dict:
    """A results.csv row as JSON values (NaN as null)."""
    hd95 = float(row["hd95"])
    return {"fraction": float(row["fraction"]), "pretrained": row["pretrained"] == "1",
            "seed": int(row["seed"]), "n_train": int(row["n_train"]),
            "dice": float(row["dice"]), "hd95": hd95 if hd95 == hd95 else None,
            "seconds": float(row["seconds"])}


def _pretrain(folder: Path, run_dir: Path, config: DownstreamConfig, device: str,
              progress: bool) -> Path:
    """The pre-trained encoder's file, training (or finishing) it first when needed."""
    from evaluation.downstream.pretrain import finished_encoder, pretrain

    encoder = finished_encoder(run_dir, config.pretrain)
    if encoder is not None:
        return encoder
    volumes, _ = read_unlabelled(folder)
    if len(volumes) < config.pretrain.batch_size:
        raise EvalError(f"--pretrain {folder} holds {len(volumes)} volumes, fewer than one batch "
                        f"of {config.pretrain.batch_size}; add volumes.")
    return pretrain(volumes, run_dir, config.swin, config.pretrain, device=device,
                    progress=progress)


def _draw_figure5(out: Path, config: DownstreamConfig, case, rows) -> bool:
    """Figure 5 from the first seed's two cells at the smallest fraction, when both finished."""
    fraction = min(config.sweep.fractions)
    seed = config.sweep.first_seed
    predictions, dices = {}, {}
    for arm in ("0", "1"):
        cell = Cell(fraction, seed, arm == "1")
        mask = load_prediction(out, cell)
        row = next((r for r in rows if (r["fraction"], r["pretrained"], r["seed"]) == cell.key),
                   None)
        if mask is None or row is None:
            return False
        predictions[arm] = mask
        dices[arm] = dice(mask, case.mask)
    save_png(figure5(case.image, case.mask, predictions, dices, fraction, case.name,
                     case.spacing), out / FIGURE5)
    return True


def downstream_text(report: dict) -> str:
    """The report as a table: Dice (95 % CI) and HD95 per fraction and arm."""
    lines = [f"downstream run {report['out']}: {report['inputs']['labelled_cases']} labelled "
             f"cases ({len(report['inputs']['labelled_subjects'])} subjects), "
             f"{report['inputs']['test_cases']} test cases "
             f"({len(report['inputs']['test_subjects'])} subjects); fractions count "
             f"{report['unit']}s",
             f"{'fraction':>8}  {'pre-trained':>11}  {'n':>3}  {'seeds':>5}  "
             f"{'Dice':>6}  {'95% CI':>15}  {'HD95 mm':>8}"]
    for s in report["summary"]:
        ci = ("" if s["dice_ci_low"] is None else
              f"{s['dice_ci_low']:.3f}-{s['dice_ci_high']:.3f}")
        hd = "" if s["hd95_mean"] is None else f"{s['hd95_mean']:.2f}"
        lines.append(f"{s['fraction']:>8g}  {'yes' if s['pretrained'] else 'no':>11}  "
                     f"{s['n_train']:>3}  {s['seeds']:>5}  {s['dice_mean']:>6.3f}  {ci:>15}  "
                     f"{hd:>8}")
    lines.append("figures: " + ", ".join(report["figures"]))
    return "\n".join(lines)
