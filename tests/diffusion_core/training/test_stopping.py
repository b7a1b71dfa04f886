"""Stopping a run without losing it: real signals at a random step, then an exact resume; the
checkpoint clock; what an interrupt says it kept."""

from __future__ import annotations

import csv
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from diffusion_core.checkpoints import load_checkpoint, load_weights
from diffusion_core.presets import vqgan_settings
from diffusion_core.run_folder import LATEST, LOG_NAME, WEIGHTS_NAME
from diffusion_core.training import stopping
from diffusion_core.training.config import TrainerConfig
from diffusion_core.training.stopping import StopSignals, interrupted_sentence
from diffusion_core.training.trainer import Trainer
from diffusion_core.training.vqgan import train_vqgan

ROOT = Path(__file__).resolve().parents[3]
STEPS = 40


def _command(data: Path, out: Path, *extra: str) -> list[str]:
    """mdiff-train on the tiny preset: a row per step, critics from step 4, validation at 30
    and 40, and no checkpoint by steps or minutes before the end: only a signal writes one."""
    from diffusion_core.cli.train import _parser

    argv = ["vqgan", "--preset", "tiny", "--data", str(data), "--out", str(out),
            "--device", "cpu", "--steps", str(STEPS), "--log-every", "1", "--val-every", "30",
            "--checkpoint-every", "1000", "--checkpoint-minutes", "0", "--gan-start", "4",
            *extra]
    try:  # one thread where the command lets us choose: the same arithmetic in every run
        _parser().parse_args([*argv, "--threads", "1"])
        argv += ["--threads", "1"]
    except SystemExit:
        pass
    return [sys.executable, "-m", "diffusion_core.cli.train", *argv]


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}


def _logged_step(out: Path) -> int:
    """The last step log.csv shows (0 before its first row)."""
    try:
        with open(out / LOG_NAME, newline="") as handle:
            rows = list(csv.DictReader(handle))
    except FileNotFoundError:
        return 0
    return int(rows[-1]["step"]) if rows else 0


def _interrupt_at(command: list[str], out: Path, step: int, signum: int,
                  log: Path) -> tuple[int, str]:
    """Run `command`, send `signum` once log.csv shows `step`; (exit status, stderr)."""
    with open(log, "w") as err:
        proc = subprocess.Popen(command, cwd=ROOT, env=_env(), stdout=subprocess.DEVNULL,
                                stderr=err)
        try:
            deadline = time.monotonic() + 180
            while _logged_step(out) < step:
                assert proc.poll() is None, log.read_text()[-2000:]
                assert time.monotonic() < deadline, "log.csv never showed the step"
                time.sleep(0.005)
            proc.send_signal(signum)
            code = proc.wait(timeout=180)
        finally:
            if proc.poll() is None:
                proc.kill()
    return code, log.read_text()


def test_signals_at_random_steps_then_resume_give_the_uninterrupted_weights(tiny_prep_dir,
                                                                            tmp_path):
    """N + SIGINT + resume + SIGTERM + resume + M == N + M, bit for bit; each stop exits with
    the shell's status for its signal, keeps a checkpoint of the step it ends after, and says
    so; log.csv shows every row as it is written (the test waits on it)."""
    seed = random.randrange(10**6)
    rng = random.Random(seed)
    whole, split = tmp_path / "whole", tmp_path / "split"
    reference_err = tmp_path / "reference_stderr.txt"
    with open(reference_err, "w") as err:
        reference = subprocess.Popen(_command(tiny_prep_dir, whole), cwd=ROOT, env=_env(),
                                     stdout=subprocess.DEVNULL, stderr=err)
    try:
        stops = _stop_twice_then_finish(tiny_prep_dir, split, rng, seed, tmp_path)
        assert reference.wait(timeout=300) == 0, reference_err.read_text()[-2000:]
    finally:
        if reference.poll() is None:
            reference.kill()
    _assert_same_run(whole, split, seed, stops)


def _stop_twice_then_finish(data: Path, split: Path, rng: random.Random, seed: int,
                            tmp_path: Path) -> list[int]:
    """SIGINT at a random step, resume, SIGTERM at a later random step, resume to the end;
    the steps each stop ended after."""
    stops: list[int] = []
    for number, signum in enumerate((signal.SIGINT, signal.SIGTERM)):
        at = rng.randint(stops[-1] + 2 if stops else 2, (stops[-1] if stops else 0) + 12)
        extra = ["--resume"] if stops else []
        code, err = _interrupt_at(_command(data, split, *extra), split, at, signum,
                                  tmp_path / f"stderr{number}.txt")
        assert code == 128 + signum, (seed, err[-2000:])
        stopped = int(err.split(f"stopped by {signal.Signals(signum).name} after step ")[1]
                      .split()[0])
        assert at <= stopped < STEPS, (seed, at, stopped)
        assert "--resume to continue" in err.strip().splitlines()[-1]
        _, state = load_checkpoint(split / LATEST)
        assert state["step"] == stopped, seed
        stops.append(stopped)
    done = subprocess.run(_command(data, split, "--resume"), cwd=ROOT, env=_env(),
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    return stops


def _assert_same_run(whole: Path, split: Path, seed: int, stops: list[int]) -> None:
    """The same weights, optimiser moments, exported weights, and one log row per step."""
    weights_whole, state_whole = load_checkpoint(whole / LATEST)
    weights_split, state_split = load_checkpoint(split / LATEST)
    assert weights_whole.keys() == weights_split.keys()
    for key in weights_whole:
        assert torch.equal(weights_whole[key], weights_split[key]), (seed, stops, key)
    for name, optimizer in state_whole["optimizers"].items():
        for index, moments in optimizer["state"].items():
            for key, value in moments.items():
                assert torch.equal(value, state_split["optimizers"][name]["state"][index][key])
    best_whole, best_split = (load_weights(run / WEIGHTS_NAME) for run in (whole, split))
    assert all(torch.equal(best_whole[k], best_split[k]) for k in best_whole)
    with open(split / LOG_NAME, newline="") as handle:
        assert [int(row["step"]) for row in csv.DictReader(handle)] == list(range(1, STEPS + 1))


def _tiny_trainer(tiny_prep_dir, run: Path, steps: int, **config) -> Trainer:
    from diffusion_core.data import PreparedDataset
    from diffusion_core.nn.vqgan import VQGAN
    from diffusion_core.training.vqgan import VQGANTask

    settings = vqgan_settings("tiny")
    task = VQGANTask(VQGAN(settings.model), settings.loss, 1e-3)
    cfg = TrainerConfig(steps=steps, batch_size=2, learning_rate=1e-3, log_every=1,
                        val_every=100, checkpoint_every=100, **config)
    return Trainer(task, cfg, run, PreparedDataset(tiny_prep_dir, "train"), [],
                   device="cpu", progress=False)


def test_a_checkpoint_is_written_when_the_minutes_have_passed(tiny_prep_dir, tmp_path,
                                                              monkeypatch):
    saved = []
    original = Trainer.save

    def spy(self, name):
        saved.append((name, self.step))
        original(self, name)

    monkeypatch.setattr(Trainer, "save", spy)
    _tiny_trainer(tiny_prep_dir, tmp_path / "by_steps", 3, checkpoint_minutes=0).fit()
    assert saved == [(LATEST, 3)]
    saved.clear()
    # A clock that says a checkpoint is due after every step: one after each.
    monkeypatch.setattr(stopping.CheckpointClock, "due", lambda self: True)
    _tiny_trainer(tiny_prep_dir, tmp_path / "by_clock", 3).fit()
    assert saved == [(LATEST, 1), (LATEST, 2), (LATEST, 3)]


def test_the_default_checkpoint_clock_loses_at_most_ten_minutes():
    assert TrainerConfig(steps=1, batch_size=1, learning_rate=1.0).checkpoint_minutes <= 10
    with pytest.raises(ValueError, match="checkpoint minutes"):
        TrainerConfig(steps=1, batch_size=1, learning_rate=1.0, checkpoint_minutes=-1)


def test_a_signal_asks_once_and_a_second_ctrl_c_stops_at_once():
    # Python's own Ctrl-C handler is what a command starts with; the suite's earlier tests may
    # have left another one, and the second Ctrl-C brings back whatever was there before.
    previous_int = signal.signal(signal.SIGINT, signal.default_int_handler)
    before = signal.getsignal(signal.SIGTERM)
    try:
        with StopSignals() as signals:
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(0.05)
            assert signals.signum == signal.SIGTERM
            with pytest.raises(KeyboardInterrupt):
                os.kill(os.getpid(), signal.SIGINT)
                time.sleep(0.05)
    finally:
        signal.signal(signal.SIGINT, previous_int)
    assert signal.getsignal(signal.SIGTERM) is before
    with StopSignals(repeat_stops_at_once=False) as signals:  # torchrun: later ones ignored
        os.kill(os.getpid(), signal.SIGINT)
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(0.05)
        assert signals.signum == signal.SIGINT


def test_an_interrupt_says_what_it_kept(tiny_prep_dir, tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    assert "nothing was kept" in interrupted_sentence(run)
    assert "without --resume" in interrupted_sentence(run)
    train_vqgan("tiny", tiny_prep_dir, run, settings=vqgan_settings("tiny"),
                trainer=TrainerConfig(steps=2, batch_size=2, learning_rate=1e-3),
                device="cpu", progress=False)
    sentence = interrupted_sentence(run)
    assert "(step 2) is kept" in sentence and "--resume" in sentence
