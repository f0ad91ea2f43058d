"""Copy a trained diffusion model dir into the package as the bundled default (``infill/default_model/``).

Only what the loader and a reader need travels: weights, config, tokenizer, sampler defaults, the model card,
the data manifest and the training record. Size limits keep the package installable anywhere.

``--bfloat16`` stores the floating-point weights in bfloat16, half the bytes: a model of up to about 20M
parameters then fits the 40 MB limit (the loader upcasts to float32 on the CPU and uses bf16 on a GPU anyway).
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from infill.errors import ModelLoadError, TrainingError
from training.eval.generation import model_family

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


def bundle_model(run_dir: str | Path, dest: Path = BUNDLED_DIR, *, bfloat16: bool = False) -> list[Path]:
    """Replace ``dest`` with the model files of ``run_dir`` (weights in bfloat16 if asked); returns the files
    written."""
    run_dir = Path(run_dir)
    try:
        family = model_family(run_dir)
    except ModelLoadError as exc:
        raise TrainingError(str(exc)) from None
    if family == "psm":
        raise TrainingError(f"{run_dir} is not a diffusion model dir (the AR peer is never bundled)")
    shards = sorted(run_dir.glob("model*.safetensors"))
    if not shards:
        raise TrainingError(f"{run_dir} has no safetensors weights")
    with tempfile.TemporaryDirectory() as staging:
        files = [*shards, *(run_dir / name for name in BUNDLED_FILES if (run_dir / name).is_file())]
        if bfloat16:
            files = _bfloat16_copies(files, Path(staging))
        too_big = [f.name for f in files if f.suffix == ".safetensors" and f.stat().st_size > MAX_SHARD_BYTES]
        if too_big:
            raise TrainingError(f"shards over 15 MB: {', '.join(too_big)} (save with max_shard_size='14MB')")
        total = sum(f.stat().st_size for f in files)
        if total > MAX_TOTAL_BYTES:
            hint = "" if bfloat16 else " (--bfloat16 halves the weights)"
            raise TrainingError(f"model files total {total / 2**20:.1f} MB, over the 40 MB limit{hint}")
        if dest.exists():
            shutil.rmtree(dest)
        dest.mkdir(parents=True)
        return [Path(shutil.copy2(f, dest / f.name)) for f in files]


def _bfloat16_copies(files: list[Path], staging: Path) -> list[Path]:
    """``files`` with every safetensors shard, config.json and the shard index rewritten for bfloat16 weights
    in ``staging``; the other files as they are."""
    converted: list[Path] = []
    total_size = 0
    for path in files:
        if path.suffix == ".safetensors":
            tensors = {
                name: tensor.to(torch.bfloat16) if tensor.is_floating_point() else tensor
                for name, tensor in load_file(str(path)).items()
            }
            total_size += sum(t.numel() * t.element_size() for t in tensors.values())
            target = staging / path.name
            save_file(tensors, str(target), metadata={"format": "pt"})
            converted.append(target)
        else:
            converted.append(path)
    for i, path in enumerate(converted):
        if path.name in ("config.json", "model.safetensors.index.json"):
            data = json.loads(path.read_text())
            if path.name == "config.json":
                data["dtype"] = "bfloat16"
            else:
                data.setdefault("metadata", {})["total_size"] = total_size
            converted[i] = staging / path.name
            converted[i].write_text(json.dumps(data, indent=2) + "\n")
    return converted


def main(argv: list[str] | None = None) -> int:
    """``python -m training.bundle RUN_DIR [--bfloat16]``: make RUN_DIR the bundled default model."""
    import argparse
    import sys

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("run_dir", help="a diffusion model dir written by infill train")
    parser.add_argument("--bfloat16", action="store_true", help="store the weights in bfloat16 (half size)")
    args = parser.parse_args(argv)
    try:
        written = bundle_model(args.run_dir, bfloat16=args.bfloat16)
    except TrainingError as exc:
        print(f"bundle: error: {exc}", file=sys.stderr)
        return 2
    for path in written:
        print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
