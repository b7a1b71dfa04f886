"""Fixtures shared across packages: a tiny-preset PREP_DIR and a tiny trained model."""

from __future__ import annotations

import os
import socket
import sys
from pathlib import Path

import numpy as np
import pytest

from diffusion_core.prepared import Manifest, PreparedScan
from diffusion_core.presets import get_preset


def write_prep_dir(folder: Path, n: int = 12, preset: str = "tiny", seed: int = 0) -> Path:
    """A PREP_DIR of `preset` with `n` blob volumes in [-1, 1] (learnable, not noise)."""
    spec = get_preset(preset)
    folder.mkdir(parents=True, exist_ok=True)
    manifest = Manifest.for_preset(spec, folder / "raw", None)
    rng = np.random.default_rng(seed)
    grid = np.stack(np.meshgrid(*(np.linspace(-1, 1, s) for s in spec.shape), indexing="ij"))
    for i in range(n):
        centre = rng.uniform(-0.4, 0.4, (3, 1, 1, 1))
        radius = rng.uniform(0.3, 0.6)
        blob = np.exp(-((grid - centre) ** 2).sum(0) / radius ** 2)
        array = (2.0 * blob - 1.0).astype(np.float32)
        name = f"scan{i:02d}.npy"
        np.save(folder / name, array)
        manifest.scans.append(PreparedScan(source=f"scan{i:02d}.nii.gz", arrays=[name]))
    manifest.save(folder)
    return folder


def write_samples_folder(folder: Path, preset: str, arrays, *, planned: int | None = None,
                         complete: bool = True) -> Path:
    """A samples folder as mdiff-sample writes it: each [-1, 1] array in the preset's intensities
    (case_0001.nii.gz ...), and samples.json planning `planned` files (default: one per array),
    made by model "m1" from seed 40 on."""
    from diffusion_core.io import Volume, canonical_affine, write_nifti
    from diffusion_core.samples import SamplesPlan, write_samples

    spec = get_preset(preset)
    folder.mkdir(parents=True)
    files = [{"file": f"case_{k + 1:04d}.nii.gz", "seed": 40 + k}
             for k in range(len(arrays) if planned is None else planned)]
    write_samples(folder, SamplesPlan(model="m1", preset=preset, vqgan={}, ddpm={},
                                      sampler="ddim", steps=10, eta=0.0, files=files,
                                      complete=complete))
    for entry, array in zip(files, arrays, strict=False):
        write_nifti(Volume(spec.to_intensity(array), spec.spacing, canonical_affine(spec.spacing),
                           spec.modality), folder / entry["file"])
    return folder


@pytest.fixture(scope="session")
def make_samples_folder():
    """The `write_samples_folder` function."""
    return write_samples_folder


@pytest.fixture
def make_blob_prep_dir():
    """The `write_prep_dir` function, for tests that need other presets or sizes."""
    return write_prep_dir


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> tuple[Path, Path]:
    """(VQ-GAN run, DDPM run) of the tiny preset, trained a few steps: the plumbing, not quality."""
    from diffusion_core.presets import ddpm_settings, vqgan_settings
    from diffusion_core.training.config import TrainerConfig
    from diffusion_core.training.ddpm import train_ddpm
    from diffusion_core.training.vqgan import train_vqgan

    root = tmp_path_factory.mktemp("tiny_model")
    prep = write_prep_dir(root / "prep")
    train_vqgan("tiny", prep, root / "vq", settings=vqgan_settings("tiny"), device="cpu",
                trainer=TrainerConfig(steps=4, batch_size=2, learning_rate=1e-3, val_every=4,
                                      checkpoint_every=4), progress=False)
    train_ddpm("tiny", prep, root / "vq", root / "dd", settings=ddpm_settings("tiny"),
               device="cpu", trainer=TrainerConfig(steps=4, batch_size=4, learning_rate=1e-3,
                                                   val_every=4, checkpoint_every=4),
               progress=False)
    return root / "vq", root / "dd"


TABLE1 = ("realistic_appearance", "slice_consistency", "anatomical_correctness")


def write_rated_study(root: Path, readers: tuple[str, ...] = ("ann",)) -> tuple[Path, Path]:
    """(study, key) under `root`: 3 real and 3 synthetic tiny MR scans, every case answered by
    each reader (Table 1 'C', Turing 'R' with confidence 2)."""
    from diffusion_core.io import Volume, canonical_affine, write_nifti
    from studies.cli.study import main as study_main
    from studies.ratings import RatingStore
    from studies.study import Study

    rng = np.random.default_rng(0)
    for source in ("real", "synthetic"):
        for i in range(3):
            array = rng.uniform(0, 200, (8, 16, 16)).astype(np.float32)
            write_nifti(Volume(array, (2.0, 2.0, 2.0), canonical_affine((2.0, 2.0, 2.0)), "MR"),
                        root / source / f"v{i}.nii.gz")
    study, key = root / "study", root / "study.key.csv"
    assert study_main(["create", "--out", str(study), "--real", str(root / "real"),
                       "--synthetic", str(root / "synthetic"), "--preset", "tiny",
                       "--turing"]) == 0
    opened = Study.open(study)
    for reader in readers:
        with RatingStore.open(opened, reader) as store:
            for case_id in store.case_order:
                for question in TABLE1:
                    store.record_answer(case_id, question, "C", 2.0)
                store.record_answer(case_id, "real_or_synthetic", "R", 2.0)
                store.record_answer(case_id, "confidence", "2", 2.0)
    return study, key


@pytest.fixture(scope="session")
def make_rated_study():
    """The `write_rated_study` function."""
    return write_rated_study


ROOT = Path(__file__).resolve().parents[1]


class Torchrun:
    """How a test starts a worker script as two CPU processes under torchrun (gloo)."""

    def command(self, worker: Path, *args: object) -> list[str]:
        """The command line: two processes on a free local port, running `worker args...`."""
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        return [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2",
                "--master-addr", "127.0.0.1", "--master-port", str(port), str(worker),
                *(str(arg) for arg in args)]

    @property
    def env(self) -> dict[str, str]:
        """The environment: this checkout importable, one thread per process."""
        return {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}

    root = ROOT  # the working directory


@pytest.fixture
def torchrun() -> Torchrun:
    """Starts workers under torchrun (see `Torchrun`)."""
    return Torchrun()
