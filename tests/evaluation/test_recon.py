"""`mdiff-eval recon`: scores of an identity and a blurring model, a trained VQ-GAN, the figure."""

from __future__ import annotations

import json
import re
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from scipy.ndimage import gaussian_filter

from evaluation.recon import PSNR_CAP_DB, recon_report

SHAPE = (16, 32, 32)
MODEL_KEYS = {"run", "preset", "compression", "latent_shape", "num_codes", "mean", "std",
              "codebook", "volumes"}
REPORT_KEYS = {"data", "split", "n_volumes", "data_range", "psnr_cap_db", "models", "figure",
               "figure_volume", "figure_slices", "volumes"}


class ScalarCodebook:
    """A codebook of `num_codes` one-dimensional codes evenly spread over [-1, 1]."""

    def __init__(self, num_codes: int = 16) -> None:
        self.num_codes = num_codes
        self.embedding = torch.linspace(-1, 1, num_codes)[:, None]


class FakeAutoencoder:
    """The VQ-GAN contract without a network: the latent is the image; decoding may blur it."""

    def __init__(self, blur: float = 0.0) -> None:
        self.blur = blur
        self.codebook = ScalarCodebook()
        self.config = SimpleNamespace(compression=(1, 1, 1))

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return x

    def quantize(self, z: torch.Tensor) -> torch.Tensor:
        return z

    def decode(self, z_q: torch.Tensor) -> torch.Tensor:
        if not self.blur:
            return z_q
        return torch.from_numpy(gaussian_filter(z_q.numpy(), (0, 0, self.blur, self.blur,
                                                              self.blur)))


def _blobs(n: int, seed: int = 0, shape: tuple[int, ...] = SHAPE) -> list[np.ndarray]:
    """Bright blobs on a dark background in [-1, 1], at random places."""
    rng = np.random.default_rng(seed)
    grid = np.stack(np.meshgrid(*(np.linspace(-1, 1, s) for s in shape), indexing="ij"))
    out = []
    for _ in range(n):
        centre = rng.uniform(-0.3, 0.3, (3, 1, 1, 1))
        out.append(2 * np.exp(-((grid - centre) ** 2).sum(0) / 0.15) - 1)
    return out


def _fake_loader(run, device):
    """Runs named 'identity...' give the identity model, the others a blurring one."""
    name = Path(run).name
    return FakeAutoencoder(0.0 if name.startswith("identity") else 1.5), {"preset": "tiny"}


@pytest.fixture
def blob_prep(tmp_path, write_prepared) -> Path:
    """A PREP_DIR of five blob volumes of SHAPE."""
    return write_prepared(tmp_path / "prep", _blobs(5))


def test_identity_scores_are_maximal_and_blur_scores_lower(blob_prep, tmp_path):
    figure = tmp_path / "recon.png"
    report = recon_report([tmp_path / "identity", tmp_path / "blur"], blob_prep, split="all",
                          figure=figure, device="cpu", load=_fake_loader, progress=False)
    assert set(report) == REPORT_KEYS and report["n_volumes"] == 5
    identity, blur = report["models"]
    assert set(identity) == MODEL_KEYS
    assert identity["mean"] == pytest.approx({"psnr": PSNR_CAP_DB, "ssim": 1.0, "ms_ssim": 1.0},
                                             abs=1e-5)
    assert identity["std"]["psnr"] == 0.0
    assert blur["mean"]["psnr"] < 40 and blur["mean"]["ssim"] < 0.99
    assert 0 < blur["mean"]["ms_ssim"] < 0.999
    for metric in ("psnr", "ssim", "ms_ssim"):
        assert all(b[metric] < i[metric] for i, b in zip(identity["volumes"], blur["volumes"],
                                                         strict=True))
    # Usage: the distinct nearest codes of every voxel of the split, counted independently.
    from diffusion_core.data import PreparedDataset

    voxels = np.concatenate([PreparedDataset(blob_prep, "all")[k].numpy().ravel()
                             for k in range(5)])
    codes = np.linspace(-1, 1, 16)
    used = np.unique(np.abs(voxels[:, None] - codes[None]).argmin(1)).size
    assert identity["codebook"]["codes_used"] == used
    assert identity["codebook"]["usage"] == pytest.approx(used / 16)
    assert 1 <= identity["codebook"]["perplexity"] <= used
    assert identity["compression"] == [1, 1, 1] and identity["latent_shape"] == list(SHAPE)
    assert report["figure"] == str(figure) and report["figure_slices"] == [4, 8, 12]
    assert report["figure_volume"] == "vol00.npy"


def test_figure_shows_the_blob_and_where_each_model_differs(blob_prep, tmp_path, panel_pixels):
    from diffusion_core.data import PreparedDataset
    from evaluation.recon import draw_recon, evaluate_model
    from evaluation.slice_panels import save_png

    dataset = PreparedDataset(blob_prep, "all", flip=False)
    results = [evaluate_model(FakeAutoencoder(blur), {}, name, dataset, device="cpu",
                              figure_index=0, progress=False)
               for name, blur in (("identity", 0.0), ("blur", 1.5))]
    original = dataset[0][0].numpy()
    figure = draw_recon(original, results, [8], "vol00.npy")
    png = tmp_path / "recon.png"
    save_png(figure, png)
    brightest = np.unravel_index(np.argmax(original[8]), original[8].shape)
    shown = panel_pixels(figure, png, "original slice 8", inset=0)
    rows, cols = shown.shape[:2]
    at = (int(brightest[0] * rows / SHAPE[1]), int(brightest[1] * cols / SHAPE[2]))
    assert shown[at].mean() > 0.8 and shown[2:6, 2:6].mean() < 0.1  # bright blob, dark corner
    identity_difference = panel_pixels(figure, png, "model 0 difference slice 8")
    blur_difference = panel_pixels(figure, png, "model 1 difference slice 8")
    assert identity_difference.max() < 0.05  # magma's black: no difference anywhere
    assert blur_difference.max() > 0.5  # the blur changed the blob's edges


def test_cli_with_a_trained_vqgan(tiny_vqgan, run_eval, tmp_path):
    run, prep = tiny_vqgan
    figure = tmp_path / "figure3.png"
    status, out, err = run_eval(["recon", "--models", run, "--data", prep, "--figure", figure,
                                 "--device", "cpu", "--json"])
    assert status == 0, err
    report = json.loads(out)
    from diffusion_core.data import PreparedDataset

    val = PreparedDataset(prep, "val").names
    assert report["split"] == "val" and report["n_volumes"] == len(val) >= 1
    (model,) = report["models"]
    assert model["compression"] == [2, 4, 4] and model["latent_shape"] == [4, 4, 4]
    assert model["num_codes"] == 32 and model["preset"] == "tiny"
    assert 0 < model["codebook"]["codes_used"] <= 32
    assert [v["name"] for v in model["volumes"]] == val
    assert all(0.0 <= v["ssim"] <= 1.0 and 0.0 <= v["ms_ssim"] <= 1.0 and np.isfinite(v["psnr"])
               for v in model["volumes"])
    assert figure.stat().st_size > 5_000 and "recon vq" in err
    status, out, _ = run_eval(["recon", "--models", run, "--data", prep, "--split", "all",
                               "--device", "cpu", "--volumes-out", tmp_path / "vols"])
    assert status == 0 and "PSNR dB" in out and "(c 2x4x4)" in out
    assert f"reconstructions of {run}: {tmp_path / 'vols' / 'vq'}" in out
    # Written on the preset's grid, as a sampler's volumes, so a study takes them as such.
    from diffusion_core.io import read_volume
    from diffusion_core.presets import get_preset
    from studies.normalise import is_on_grid

    written = sorted((tmp_path / "vols" / "vq").iterdir())
    assert [p.name for p in written] == [Path(n).stem + ".nii.gz"
                                         for n in PreparedDataset(prep, "all").names]
    assert all(is_on_grid(read_volume(p), get_preset("tiny")) for p in written)


def test_volumes_out_writes_each_reconstruction_and_overwrites_nothing(blob_prep, tmp_path):
    from diffusion_core.data import PreparedDataset
    from diffusion_core.io import read_volume
    from diffusion_core.presets import get_preset
    from evaluation.errors import EvalError

    out = tmp_path / "vols"
    runs = [tmp_path / "identity", tmp_path / "blur"]
    report = recon_report(runs, blob_prep, split="all", device="cpu", volumes_out=out,
                          load=_fake_loader, progress=False)
    assert report["volumes"] == {str(r): str(out / r.name) for r in runs}
    dataset = PreparedDataset(blob_prep, "all", flip=False)
    tiny = get_preset("tiny")
    for index, name in enumerate(dataset.names):
        original = dataset[index][0].numpy()
        same = read_volume(out / "identity" / f"{Path(name).stem}.nii.gz")
        blurred = read_volume(out / "blur" / f"{Path(name).stem}.nii.gz")
        assert same.modality == "MR" and same.spacing == tuple(dataset.manifest.spacing)
        np.testing.assert_allclose(same.array, tiny.to_intensity(original), atol=1e-6)
        assert np.abs(blurred.array - same.array).max() > 0.05  # the blur, not the original
    kept = {p: p.read_bytes() for p in out.rglob("*.nii.gz")}
    with pytest.raises(EvalError, match="already exists and is not an empty folder"):
        recon_report(runs, blob_prep, split="all", device="cpu", volumes_out=out,
                     load=_fake_loader, progress=False)
    assert {p: p.read_bytes() for p in out.rglob("*.nii.gz")} == kept
    with pytest.raises(EvalError, match="blur is the name of more than one"):
        recon_report([tmp_path / "a" / "blur", tmp_path / "b" / "blur"], blob_prep,
                     split="all", device="cpu", volumes_out=tmp_path / "other",
                     load=_fake_loader, progress=False)
    assert not (tmp_path / "other").exists()


def test_volumes_out_that_is_a_file_is_one_refusal_before_anything_runs(blob_prep, tmp_path):
    """Not a traceback from deep in the writing, and the file is left as it was."""
    from diffusion_core.outputs import OutputPathError

    taken = tmp_path / "vols"
    taken.write_bytes(b"kept")
    with pytest.raises(OutputPathError, match="is a file, not a folder"):
        recon_report([tmp_path / "identity"], blob_prep, split="all", device="cpu",
                     volumes_out=taken, load=_fake_loader, progress=False)
    assert taken.read_bytes() == b"kept"


@pytest.fixture(scope="module")
def tiny_vqgan(tmp_path_factory, write_prepared) -> tuple[Path, Path]:
    """A tiny VQ-GAN trained for two steps on 12 blob volumes of the tiny preset (8x16x16)."""
    from diffusion_core.presets import get_preset, vqgan_settings
    from diffusion_core.training.config import TrainerConfig
    from diffusion_core.training.vqgan import train_vqgan

    root = tmp_path_factory.mktemp("recon")
    prep = write_prepared(root / "prep", _blobs(12, shape=get_preset("tiny").shape))
    train_vqgan("tiny", prep, root / "vq", settings=vqgan_settings("tiny"), device="cpu",
                trainer=TrainerConfig(steps=2, batch_size=2, learning_rate=1e-3, val_every=2,
                                      checkpoint_every=2), progress=False)
    return root / "vq", prep


def test_a_missing_run_is_one_sentence(blob_prep, run_eval, tmp_path):
    status, out, err = run_eval(["recon", "--models", tmp_path / "nothing", "--data", blob_prep,
                                 "--device", "cpu"])
    assert status == 2 and out == "" and "Traceback" not in err
    (line,) = err.strip().splitlines()
    assert line.startswith("mdiff-eval recon: cannot load the VQ-GAN ") and "nothing" in line
    assert line.endswith(".")


def _odd_compression(run, device):
    model = FakeAutoencoder()
    model.config = SimpleNamespace(compression=(1, 1, 3))
    return model, {}


@pytest.mark.parametrize(("options", "expected"), [
    ({"data": "missing"}, "has no manifest.json"),
    ({"figure": "recon.jpg"}, "must be a .png file"),
    ({"figure": "recon.png", "figure_volume": "vol99.npy"}, "--figure-volume vol99.npy is not"),
    ({"load": _odd_compression}, "compresses by (1, 1, 3), which does not divide"),
    ({"runs": []}, "at least one VQ-GAN"),
])
def test_bad_requests_are_one_sentence(blob_prep, tmp_path, options, expected):
    from evaluation.errors import EvalError

    arguments = {"runs": [tmp_path / "identity"], "data": blob_prep, "split": "all",
                 "load": _fake_loader, "device": "cpu", "progress": False}
    for key, value in options.items():
        arguments[key] = tmp_path / value if key in ("data", "figure") else value
    runs, data = arguments.pop("runs"), arguments.pop("data")
    with pytest.raises(EvalError, match=re.escape(expected)):
        recon_report(runs, data, **arguments)


def test_an_empty_split_says_which_to_use(tmp_path, write_prepared):
    from diffusion_core.data import PreparedDataset
    from evaluation.errors import EvalError

    prep = write_prepared(tmp_path / "one", _blobs(1))
    empty = "val" if len(PreparedDataset(prep, "val")) == 0 else "train"
    with pytest.raises(EvalError, match=f"the {empty} split of .* holds no volume; use --split "
                                        "all"):
        recon_report([tmp_path / "identity"], prep, split=empty, load=_fake_loader,
                     device="cpu", progress=False)


def _one_line(status, out, err) -> str:
    """The one sentence of a refused `mdiff-eval recon` (after its progress bar, if any)."""
    assert status == 2 and out == "" and "Traceback" not in err
    line = err.strip().splitlines()[-1]
    assert line.startswith("mdiff-eval recon: ") and line.endswith(".")
    return line


@pytest.mark.parametrize(("damage", "expected"), [
    (lambda a: np.where(a > 0.5, np.nan, a), "vol03.npy holds NaN or infinite values; run "
                                             "mdiff-prepare again."),
    (lambda a: 1000 * a, "outside the prepared range [-1, 1]; run mdiff-prepare again."),
    (lambda a: a[:, :16], "vol03.npy has shape (16, 16, 32), not the (16, 32, 32)"),
])
def test_a_damaged_prep_dir_array_is_one_sentence(damage, expected, blob_prep, run_eval,
                                                  monkeypatch):
    """No NaN scores (nor a --json traceback over them), no scores of data on another scale."""
    monkeypatch.setattr("evaluation.recon.load_model", _fake_loader)
    np.save(blob_prep / "vol03.npy", damage(np.load(blob_prep / "vol03.npy")))
    line = _one_line(*run_eval(["recon", "--models", blob_prep.parent / "identity", "--data",
                                blob_prep, "--split", "all", "--device", "cpu", "--json"]))
    assert expected in line and str(blob_prep / "vol03.npy") in line


def test_a_model_giving_nan_is_one_sentence(blob_prep, run_eval, monkeypatch):
    """A VQ-GAN whose weights went bad gives no NaN scores: a --json report cannot hold them."""
    model = FakeAutoencoder()
    model.decode = lambda z_q: torch.full_like(z_q, float("nan"))
    monkeypatch.setattr("evaluation.recon.load_model", lambda run, device: (model, {}))
    line = _one_line(*run_eval(["recon", "--models", blob_prep.parent / "bad", "--data",
                                blob_prep, "--split", "all", "--device", "cpu", "--json"]))
    assert "the VQ-GAN " in line and "gives NaN or infinite values for vol00.npy" in line


def test_a_vqgan_of_another_preset_is_refused(tiny_vqgan, run_eval, write_prepared, tmp_path):
    """A tiny VQ-GAN on a demo PREP_DIR scores nothing (its 7.75 dB said nothing of it)."""
    from diffusion_core.presets import get_preset

    run, _prep = tiny_vqgan
    demo = write_prepared(tmp_path / "demo", _blobs(2, shape=get_preset("demo").shape), "demo")
    line = _one_line(*run_eval(["recon", "--models", run, "--data", demo, "--split", "all",
                                "--device", "cpu", "--volumes-out", tmp_path / "vols"]))
    assert line == (f"mdiff-eval recon: the VQ-GAN {run} was trained on preset 'tiny' but --data "
                    f"{demo} was prepared with 'demo'; evaluate it on a PREP_DIR of its own "
                    "preset.")
    assert not (tmp_path / "vols").exists()
