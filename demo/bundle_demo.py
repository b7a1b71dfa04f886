"""Copy a trained demo VQ-GAN and DDPM into diffusion_core/bundled/demo/ (the model "demo").

    .venv/bin/python demo/bundle_demo.py RUNS_DIR

Only what sampling needs travels: each run's run.json, model.safetensors (the DDPM's EMA
weights) and log.csv. The VQ-GAN is stage 4's (the decoder fine-tuned with the critic on stage
2's latent space, starting from stage 3's); its record of stage 3 keeps the content hash and
names the folder in words. The
DDPM's record of its VQ-GAN becomes the relative path `../vqgan`
(with the same content hash), so the bundle works wherever the package is installed. Each
copied model.safetensors is checked against the sha256 its run.json recorded (`weights_hash`,
which loading checks too); a run trained before mdiff recorded it gets the copy's hash.
"""

from __future__ import annotations

import shutil
import sys
from dataclasses import replace
from pathlib import Path

from diffusion_core.atomic_files import file_hash
from diffusion_core.run_folder import LOG_NAME, WEIGHTS_NAME, read_run_info, write_run_info

ROOT = Path(__file__).resolve().parents[1]
BUNDLE = ROOT / "diffusion_core" / "bundled" / "demo"


def main() -> None:
    """Bundle RUNS_DIR/vqgan (stage 4) and RUNS_DIR/ddpm."""
    runs = Path(sys.argv[1])
    for kind in ("vqgan", "ddpm"):
        source, target = runs / kind, BUNDLE / kind
        target.mkdir(parents=True, exist_ok=True)
        for name in (WEIGHTS_NAME, LOG_NAME):
            shutil.copy2(source / name, target / name)
        info = read_run_info(source, kind)
        copied = file_hash(target / WEIGHTS_NAME)
        if info.weights_hash not in (None, copied):
            raise SystemExit(f"{source / WEIGHTS_NAME} does not match the hash its run.json "
                             f"recorded; it was changed after training")
        info = replace(info, weights_hash=copied, data=replace(
            info.data, prep_dir="demo/data/train (prepared with the demo preset)"))
        if info.init is not None:  # the critic fine-tune's starting run (stage 3), not bundled
            info = replace(info, init=replace(
                info.init, path="vqgan_floor (stage 3 of demo/train_demo.sh, not bundled)"))
        if kind == "ddpm":
            if info.vqgan_run.hash != file_hash(BUNDLE / "vqgan" / WEIGHTS_NAME):
                raise SystemExit("the DDPM was not trained on this VQ-GAN")
            info = replace(info, vqgan_run=replace(info.vqgan_run, path="../vqgan"))
        write_run_info(target, info)
    size = sum(p.stat().st_size for p in BUNDLE.rglob("*.safetensors")) / 2**20
    print(f"bundled the demo model in {BUNDLE} ({size:.1f} MB of weights)")


if __name__ == "__main__":
    main()
