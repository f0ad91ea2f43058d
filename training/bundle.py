"""Copy a trained diffusion model dir into the package as the bundled default (``infill/default_model/``).

Only what the loader and a reader need travels: weights, config, tokenizer, sampler defaults, the model card,
the data manifest and the training record. Size limits keep the package installable anywhere.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from infill.errors import TrainingError

BUNDLED_DIR = Path(__file__).resolve().parent.parent / "infill" / "default_model"
MAX_TOTAL_BYTES = 40 * 1024 * 1024
MAX_SHARD_BYTES = 15 * 1024 * 1024
BUNDLED_FILES = (
    "config.json",
    "generation_config.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "README.md",
    "training_manifest.json",
    "training_config.json",
    "eval.json",
    "loss_curve.png",
    "model.safetensors.index.json",
)


def bundle_model(run_dir: str | Path, dest: Path = BUNDLED_DIR) -> list[Path]:
    """Replace ``dest`` with the model files of ``run_dir``; returns the files written."""
    run_dir = Path(run_dir)
    config = run_dir / "config.json"
    if not config.is_file() or json.loads(config.read_text()).get("infill_format") == "psm":
        raise TrainingError(f"{run_dir} is not a diffusion model dir (the AR peer is never bundled)")
    shards = sorted(run_dir.glob("model*.safetensors"))
    if not shards:
        raise TrainingError(f"{run_dir} has no safetensors weights")
    too_big = [s.name for s in shards if s.stat().st_size > MAX_SHARD_BYTES]
    if too_big:
        raise TrainingError(f"shards over 15 MB: {', '.join(too_big)} (save with max_shard_size='14MB')")
    files = shards + [run_dir / name for name in BUNDLED_FILES if (run_dir / name).is_file()]
    total = sum(f.stat().st_size for f in files)
    if total > MAX_TOTAL_BYTES:
        raise TrainingError(f"model files total {total / 2**20:.1f} MB, over the 40 MB bundle limit")
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    return [Path(shutil.copy2(f, dest / f.name)) for f in files]


if __name__ == "__main__":
    import sys

    for path in bundle_model(sys.argv[1]):
        print(path)
