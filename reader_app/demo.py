"""`mdiff-demo`: a blinded study from the bundled demo model and real held-out scans, in the app.

Samples `n + 1` volumes from the bundled model `demo` (DPM-Solver++, 20 steps, on the CPU),
mixes `n` of them with as many held-out real head MRI volumes of a subject the model never saw,
puts one more of each in a practice block of two cases that the reader sees first (with their
truth once answered), builds the blinded study with its key beside it, and opens the reader app.
Without a display it says so, writes a screenshot of the app instead, and succeeds. Every step
resumes: running it again reuses the samples and the study already made.

With `design="2afc"` (`mdiff-demo --design 2afc`) it builds a paired study instead, beside the
single-reading one (`study-2afc/`, its key and `samples-2afc/`): `n` trials, each a held-out
real scan and a sample side by side, after one practice trial (one more of each).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from studies.study import StudyError

HELDOUT = Path(__file__).resolve().parents[1] / "diffusion_core" / "bundled" / "demo" / "heldout"
# The bundled model's name: reserved, so it resolves to the bundled model whatever the user's
# models.json holds (diffusion_core.registry).
DEMO_MODEL = "demo"
# One real and one synthetic practice case: `create_study` splits the block evenly, and the
# demo gives each source exactly one volume beside the study's.
PRACTICE = 2
DEFAULT_CASES = 9  # per source: the ten held-out scans less the practice block's real one


# Where each design's study, key and samples go inside the demo folder.
LAYOUT: dict[str, tuple[str, str, str]] = {
    "single": ("study", "study.key.csv", "samples"),
    "2afc": ("study-2afc", "study-2afc.key.csv", "samples-2afc"),
}


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


def build_demo(out: Path, *, n: int = DEFAULT_CASES, seed: int = 0, sampler: str = "dpm",
               steps: int = 20, device: str = "auto", design: str = "single") -> DemoStudy:
    """Sample, then build the study with its practice block (each skipped when already done);
    returns the paths. `design` "2afc": the paired study of `n` trials and one practice trial.
    StudyError for an `n` the held-out scans cannot serve."""
    from diffusion_core.sampling import sample_folder
    from studies.create import create_study

    most = len(list(HELDOUT.glob("*.nii.gz"))) - PRACTICE // 2
    if not 1 <= n <= most:
        raise StudyError(f"--n {n} is outside 1 to {most}: the demo has {most + 1} held-out real "
                         "scans, and its practice block takes one; give a smaller --n.")
    if out.exists() and not out.is_dir():
        raise StudyError(f"{out} is a file; --out takes a folder for the demo (new, or one an "
                         "earlier mdiff-demo made).")
    if design not in LAYOUT:
        raise StudyError(f"The demo design {design!r} is not one of {', '.join(LAYOUT)}; give "
                         "--design single or --design 2afc.")
    study, key, samples = (out / name for name in LAYOUT[design])
    if not (study / "study.json").is_file():
        out.mkdir(parents=True, exist_ok=True)
        sample_folder(DEMO_MODEL, n + PRACTICE // 2, samples, sampler=sampler, steps=steps,
                      seed=seed, batch_size=5, device=device)
        if design == "2afc":
            # One practice trial: a real and a synthetic volume beside the trials' own.
            create_study(study, synthetic=samples, real=HELDOUT, design="2afc", pairs=n,
                         preset="demo", key=key, seed=seed, dataset="demo",
                         practice=PRACTICE // 2, progress=True,
                         title="mdiff demo: which brain MRI is synthetic?")
        else:
            create_study(study, synthetic=samples, real=HELDOUT, n=n, n_real=n, preset="demo",
                         turing=True, key=key, seed=seed, dataset="demo", practice=PRACTICE,
                         title="mdiff demo: synthetic and real brain MRI", progress=True)
    return DemoStudy(study, key, samples, None)


def synthetic_case(demo: DemoStudy) -> str:
    """The first synthetic study case in the study's list (from the key): what the headless
    screenshot shows, since the model's work is what the demo is for."""
    from studies.key import read_study_key
    from studies.study import Study

    study = Study.open(demo.study)
    key = read_study_key(study, demo.key)
    return next(c for c in study.case_ids if key[c].source == "synthetic")


def first_trial(demo: DemoStudy) -> str:
    """The first trial in a paired demo study's list: what its headless screenshot shows (every
    trial holds a synthetic case)."""
    from studies.study import Study

    return Study.open(demo.study).trial_ids[0]
