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

import json
import shutil
import sys
from pathlib import Path

from diffusion_core.run_files import RUN_NAME, WEIGHTS_HASH, WEIGHTS_NAME, file_hash

ROOT = Path(__file__).resolve().parents[1]
BUNDLE = ROOT / "diffusion_core" / "bundled" / "demo"


def main() -> None:
    """Bundle RUNS_DIR/vqgan (stage 4) and RUNS_DIR/ddpm."""
    runs = Path(sys.argv[1])
    for kind in ("vqgan", "ddpm"):
        source, target = runs / kind, BUNDLE / kind
        target.mkdir(parents=True, exist_ok=True)
        for name in (WEIGHTS_NAME, "log.csv"):
            shutil.copy2(source / name, target / name)
        info = json.loads((source / RUN_NAME).read_text())
        copied = file_hash(target / WEIGHTS_NAME)
        if info.setdefault(WEIGHTS_HASH, copied) != copied:
            raise SystemExit(f"{source / WEIGHTS_NAME} does not match the hash its run.json "
                             f"recorded; it was changed after training")
        info["data"]["prep_dir"] = "demo/data/train (prepared with the demo preset)"
        if "init" in info:  # the critic fine-tune's starting run (stage 3), not bundled
            info["init"]["path"] = "vqgan_floor (stage 3 of demo/train_demo.sh, not bundled)"
        if kind == "ddpm":
            if info["vqgan"]["hash"] != file_hash(BUNDLE / "vqgan" / WEIGHTS_NAME):
                raise SystemExit("the DDPM was not trained on this VQ-GAN")
            info["vqgan"]["path"] = "../vqgan"
        (target / RUN_NAME).write_text(json.dumps(info, indent=2, sort_keys=True) + "\n")
    size = sum(p.stat().st_size for p in BUNDLE.rglob("*.safetensors")) / 2**20
    print(f"bundled the demo model in {BUNDLE} ({size:.1f} MB of weights)")


if __name__ == "__main__":
    main()
