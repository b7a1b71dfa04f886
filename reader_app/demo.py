"""`mdiff-demo`: a blinded study from the bundled demo model and real held-out scans, in the app.

Samples `n` volumes from the bundled model `demo` (DPM-Solver++, 20 steps, on the CPU), mixes
them with as many held-out real head MRI volumes of a subject the model never saw, builds a
blinded study with its key beside it, and opens the reader app. Without a display it says so,
writes a screenshot of the app instead, and succeeds. Every step resumes: running it again
reuses the samples and the study already made.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

HELDOUT = Path(__file__).resolve().parents[1] / "diffusion_core" / "bundled" / "demo" / "heldout"


@dataclass
class DemoStudy:
    """Where the demo put its study, key, samples and (headless) screenshot."""

    study: Path
    key: Path
    samples: Path
    screenshot: Path | None


def has_display() -> bool:
    """Whether a window can be shown (an X11 or Wayland display, and not Qt's offscreen)."""
    if os.environ.get("QT_QPA_PLATFORM", "") in ("offscreen", "minimal"):
        return False
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


def build_demo(out: Path, *, n: int = 10, seed: int = 0, sampler: str = "dpm",
               steps: int = 20, device: str = "auto") -> DemoStudy:
    """Sample, then build the study (each skipped when already done); returns the paths."""
    from diffusion_core.sampling import sample_folder
    from studies.create import create_study

    out.mkdir(parents=True, exist_ok=True)
    samples, study, key = out / "samples", out / "study", out / "study.key.csv"
    sample_folder("demo", n, samples, sampler=sampler, steps=steps, seed=seed, batch_size=5,
                  device=device)
    if not (study / "study.json").is_file():
        create_study(study, synthetic=samples, real=HELDOUT, n=n, n_real=n, preset="demo",
                     turing=True, key=key, seed=seed, dataset="demo",
                     title="mdiff demo: synthetic and real brain MRI", progress=True)
    return DemoStudy(study, key, samples, None)
