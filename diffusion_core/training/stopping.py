"""Stopping a run without losing it: SIGINT and SIGTERM end it after the current step, with a
checkpoint, and a clock asks for a checkpoint every few minutes.

While the trainer's loop runs, `StopSignals` turns SIGINT (Ctrl-C) and SIGTERM (`kill`, a job
scheduler's time limit) into a request: the step under way finishes, checkpoint_latest is
written, and the trainer raises `TrainingInterrupted`, which the command reports with the exit
status a shell gives for that signal (130, 143). In a single process a second signal stops at
once, without that checkpoint (the previous one is kept).

Under torchrun every rank may see the signal at another moment (the terminal sends Ctrl-C to
every process, torchrun forwards the signal it gets to every worker, `kill` reaches one), so
after each step the ranks agree (`agree`, one all-reduce of two numbers): if any rank was asked
to stop, or its clock says a checkpoint is due, all of them write it after the same step and
stop together. There, further signals are ignored, because torchrun sends its own copy of the
signal right after the terminal's; torchrun kills workers that have not ended 30 seconds after
that, so a checkpoint that takes longer is lost (the previous one is kept). The workers exit
130 or 143; torchrun reports them as failed.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path
from types import FrameType

import torch

from diffusion_core import distributed, run_folder
from diffusion_core.atomic_files import read_json
from diffusion_core.run_folder import CHECKPOINT_MANIFEST, LATEST

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class TrainingInterrupted(Exception):  # noqa: N818 - a stop the user asked for, not an error
    """Training stopped on a signal after `step` steps, and checkpoint_latest holds that step."""

    def __init__(self, signum: int, step: int, steps: int, run_dir: Path) -> None:
        self.signum, self.step, self.steps, self.run_dir = signum, step, steps, run_dir
        name = signal.Signals(signum).name
        super().__init__(f"stopped by {name} after step {step} of {steps}; "
                         f"{run_dir / LATEST} holds that step: run the same command with "
                         f"--resume to continue exactly where it stopped")

    @property
    def exit_status(self) -> int:
        """What a shell reports for a process ended by this signal: 128 + its number."""
        return 128 + self.signum


class StopSignals:
    """While entered, SIGINT and SIGTERM set `signum` instead of ending the process.

    `repeat_stops_at_once`: after the first signal, the handlers that were there before come
    back, so a second Ctrl-C raises KeyboardInterrupt at once (single process); otherwise later
    signals are ignored (torchrun, see the module's docstring). Outside the main thread, where
    Python cannot install handlers, it does nothing.
    """

    def __init__(self, repeat_stops_at_once: bool = True) -> None:
        self.signum: int | None = None
        self._repeat_stops_at_once = repeat_stops_at_once
        self._previous: dict[int, object] = {}

    def __enter__(self) -> StopSignals:
        """Install the handlers."""
        if threading.current_thread() is threading.main_thread():
            for signum in SIGNALS:
                self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        """Put back the handlers that were there before."""
        self._restore()

    def _restore(self) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous = {}

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.signum is not None:
            return
        self.signum = signum
        then = " (Ctrl-C again stops at once, without it)" if self._repeat_stops_at_once else ""
        # os.write, not print: the handler may run in the middle of another write to stderr.
        os.write(2, f"\n{signal.Signals(signum).name}: stopping after this step to write a "
                    f"checkpoint{then}\n".encode())
        if self._repeat_stops_at_once:
            self._restore()


class CheckpointClock:
    """Says when `minutes` have passed since it was last reset (None or 0: never)."""

    def __init__(self, minutes: float | None) -> None:
        self.seconds = None if not minutes else minutes * 60.0
        self.reset()

    def reset(self) -> None:
        """Start counting again (a checkpoint was just written)."""
        self._since = time.monotonic()

    def due(self) -> bool:
        """Whether a checkpoint is due."""
        return self.seconds is not None and time.monotonic() - self._since >= self.seconds


def agree(signum: int | None, due: bool, device: torch.device) -> tuple[int | None, bool]:
    """What every rank does after this step: stop on which signal (None: go on), and whether
    to write a checkpoint; the same on every rank (one all-reduce under torchrun)."""
    if not distributed.active():
        return signum, due
    import torch.distributed as dist

    where = device if device.type == "cuda" else torch.device("cpu")
    flags = torch.tensor([signum or 0, int(due)], dtype=torch.int64, device=where)
    dist.all_reduce(flags, op=dist.ReduceOp.MAX)
    stop, checkpoint = (int(value) for value in flags.tolist())
    return (stop or None), bool(checkpoint)


def interrupted_sentence(run_dir: str | os.PathLike) -> str:
    """What an interrupt that came before the trainer could stop cleanly left in `run_dir`."""
    run_dir = Path(run_dir)
    folder = run_folder.checkpoint_folder(run_dir, LATEST)
    if folder is None:
        return ("interrupted before the first checkpoint, so nothing was kept; run the same "
                "command again without --resume")
    step = read_json(folder / CHECKPOINT_MANIFEST, "checkpoint").get("step")
    return (f"interrupted; {folder} (step {step}) is kept: run the same command with --resume "
            f"to continue from it")
