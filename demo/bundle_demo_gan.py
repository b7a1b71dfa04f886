"""Copy a trained demo GAN baseline into diffusion_core/bundled/demo-gan/gan/ ("demo-gan").

    .venv/bin/python demo/bundle_demo_gan.py RUNS_DIR

Only what sampling needs travels: RUNS_DIR/gan's run.json, model.safetensors (the generator) and
log.csv. The copy is checked against the sha256 its run.json recorded (`weights_hash`, which
loading checks too), and the record of its data names the committed demo data in words.
"""

from __future__ import annotations

import shutil
import sys
from dataclasses import replace
from pathlib import Path

from diffusion_core.atomic_files import file_hash
from diffusion_core.run_folder import LOG_NAME, WEIGHTS_NAME, read_run_info, write_run_info

ROOT = Path(__file__).resolve().parents[1]
BUNDLE = ROOT / "diffusion_core" / "bundled" / "demo-gan" / "gan"
MAX_MB = 10.0


def main() -> None:
    """Bundle RUNS_DIR/gan."""
    source = Path(sys.argv[1]) / "gan"
    info = read_run_info(source, "wgan")
    if info.steps_done != info.trainer.steps:
        raise SystemExit(f"{source} has trained {info.steps_done} of {info.trainer.steps} steps; "
                         f"finish it first (run demo/train_demo_gan.sh again)")
    size = (source / WEIGHTS_NAME).stat().st_size / 2**20
    if size > MAX_MB:
        raise SystemExit(f"{source / WEIGHTS_NAME} is {size:.1f} MB, more than the {MAX_MB:g} MB "
                         f"a bundled model may weigh")
    BUNDLE.mkdir(parents=True, exist_ok=True)
    for name in (WEIGHTS_NAME, LOG_NAME):
        shutil.copy2(source / name, BUNDLE / name)
    copied = file_hash(BUNDLE / WEIGHTS_NAME)
    if info.weights_hash != copied:
        raise SystemExit(f"{source / WEIGHTS_NAME} does not match the hash its run.json "
                         f"recorded; it was changed after training")
    write_run_info(BUNDLE, replace(info, data=replace(
        info.data, prep_dir="demo/data/train (prepared with the demo preset)")))
    print(f"bundled the demo GAN in {BUNDLE} ({size:.1f} MB of weights)")


if __name__ == "__main__":
    main()
