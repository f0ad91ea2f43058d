"""Copy a trained diffusion model dir into the package as the bundled default (``infill/default_model/``).

Only what the loader and a reader need travels: weights, config, tokenizer, sampler defaults, the model card,
the data manifest and the training record. Limits keep the package installable and the repository cloneable:
at most 100 MB in all, weights in safetensors shards of at most 15 MB (written here, with the index
``model.safetensors.index.json`` that transformers' loader reads), every other file at most 1 MB (a corpus
manifest that lists hundreds of thousands of files is summarised to fit, with the sha256 of the full lists).

``--bfloat16`` stores the floating-point weights in bfloat16, half the bytes: a model of up to about 50M
parameters then fits (the loader upcasts to float32 on the CPU and uses bf16 on a GPU anyway).
"""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
from pathlib import Path

import torch
from safetensors.torch import save_file

from infill.errors import ModelLoadError, TrainingError
from infill.models.weights import read_safetensors
from training.eval.generation import model_family

BUNDLED_DIR = Path(__file__).resolve().parent.parent / "infill" / "default_model"
MAX_TOTAL_BYTES = 100 * 1024 * 1024
MAX_SHARD_BYTES = 15 * 1024 * 1024
MAX_OTHER_FILE_BYTES = 1024 * 1024  # nothing but weights over 1 MB in git
SHARD_TARGET_BYTES = 14 * 1024 * 1024  # tensors per shard; the safetensors header stays far under the margin
INDEX_FILE = "model.safetensors.index.json"
MANIFEST_FILE = "training_manifest.json"
BUNDLED_FILES = (
    "config.json",
    "generation_config.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "README.md",
    MANIFEST_FILE,
    "training_config.json",
    "eval.json",
    "loss_curve.png",
)


def bundle_model(
    run_dir: str | Path,
    dest: Path = BUNDLED_DIR,
    *,
    bfloat16: bool = False,
    shard_bytes: int = SHARD_TARGET_BYTES,
) -> list[Path]:
    """Replace ``dest`` with the model files of ``run_dir`` (weights re-sharded, in bfloat16 if asked);
    returns the files written. Nothing in ``dest`` changes unless every limit is met."""
    run_dir = Path(run_dir)
    try:
        family = model_family(run_dir)
    except ModelLoadError as exc:
        raise TrainingError(str(exc)) from None
    if family == "psm":
        raise TrainingError(f"{run_dir} is not a diffusion model dir (the AR peer is never bundled)")
    if not any(run_dir.glob("model*.safetensors")):
        raise TrainingError(f"{run_dir} has no safetensors weights")
    dest.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=dest.parent, prefix=f".{dest.name}-") as staging_dir:
        staging = Path(staging_dir) / dest.name
        staging.mkdir()
        write_shards(_load_weights(run_dir, bfloat16), staging, min(shard_bytes, MAX_SHARD_BYTES))
        for name in BUNDLED_FILES:
            if (run_dir / name).is_file():
                shutil.copy2(run_dir / name, staging / name)
        if bfloat16:
            config = json.loads((staging / "config.json").read_text())
            config["dtype"] = "bfloat16"
            (staging / "config.json").write_text(json.dumps(config, indent=2) + "\n")
        if (staging / MANIFEST_FILE).is_file():
            compact_manifest(staging / MANIFEST_FILE)
        check_limits(staging)
        if dest.exists():
            shutil.rmtree(dest)
        staging.rename(dest)
    return sorted(dest.iterdir())


def _load_weights(run_dir: Path, bfloat16: bool) -> dict[str, torch.Tensor]:
    tensors = read_safetensors(run_dir)
    if bfloat16:
        tensors = {k: t.to(torch.bfloat16) if t.is_floating_point() else t for k, t in tensors.items()}
    return tensors


def write_shards(tensors: dict[str, torch.Tensor], out: Path, shard_bytes: int) -> list[Path]:
    """``model.safetensors``, or ``model-0000i-of-0000n.safetensors`` + index when more than one shard is
    needed; tensors keep their order, each shard holds at most ``shard_bytes`` of them."""
    groups: list[dict[str, torch.Tensor]] = [{}]
    size = 0
    for name, tensor in tensors.items():
        nbytes = tensor.numel() * tensor.element_size()
        if nbytes > shard_bytes:
            raise TrainingError(
                f"tensor {name} holds {nbytes / 2**20:.2f} MiB, over the {shard_bytes / 2**20:.2f} MiB of "
                "one shard: a tensor cannot be split (use a smaller vocabulary x hidden size, or --bfloat16)"
            )
        if groups[-1] and size + nbytes > shard_bytes:
            groups.append({})
            size = 0
        groups[-1][name] = tensor.contiguous()
        size += nbytes
    if len(groups) == 1:
        names = ["model.safetensors"]
    else:
        names = [f"model-{i + 1:05d}-of-{len(groups):05d}.safetensors" for i in range(len(groups))]
    for name, group in zip(names, groups, strict=True):
        save_file(group, str(out / name), metadata={"format": "pt"})
    if len(groups) > 1:
        index = {
            "metadata": {"total_size": sum(t.numel() * t.element_size() for t in tensors.values())},
            "weight_map": {
                tensor: name for name, group in zip(names, groups, strict=True) for tensor in group
            },
        }
        (out / INDEX_FILE).write_text(json.dumps(index, indent=2) + "\n")
    return [out / name for name in names]


def compact_manifest(path: Path) -> None:
    """Shrink a corpus manifest over the per-file limit: the file lists become counts and sha256 digests
    (of the sorted paths joined by newlines), held-out paths kept while they fit."""
    if path.stat().st_size <= MAX_OTHER_FILE_BYTES:
        return
    manifest = json.loads(path.read_text())
    for key in ("train_files", "heldout_files"):
        files = manifest.get(key)
        if isinstance(files, list):
            manifest[f"{key}_count"] = len(files)
            manifest[f"{key}_sha256"] = hashlib.sha256("\n".join(files).encode()).hexdigest()
    manifest.pop("train_files", None)
    manifest["note"] = "file lists summarised for the bundle; the full manifest is in the training run dir"
    text = json.dumps(manifest, indent=1) + "\n"
    if len(text.encode()) > MAX_OTHER_FILE_BYTES:
        manifest.pop("heldout_files", None)
        text = json.dumps(manifest, indent=1) + "\n"
    path.write_text(text)


def check_limits(model_dir: Path) -> None:
    """Every limit of a bundled model dir, with the first one broken as the error."""
    files = [p for p in model_dir.iterdir() if p.is_file()]
    for path in files:
        size = path.stat().st_size
        if path.suffix == ".safetensors" and size > MAX_SHARD_BYTES:
            raise TrainingError(f"{path.name} is {size / 2**20:.1f} MiB, over the 15 MiB shard limit")
        if path.suffix != ".safetensors" and size > MAX_OTHER_FILE_BYTES:
            raise TrainingError(
                f"{path.name} is {size / 2**20:.1f} MiB; files other than weights stay under 1 MiB"
            )
    total = sum(p.stat().st_size for p in files)
    if total > MAX_TOTAL_BYTES:
        raise TrainingError(
            f"model files total {total / 2**20:.1f} MiB, over the 100 MiB limit "
            "(--bfloat16 halves the weights)"
        )


def main(argv: list[str] | None = None) -> int:
    """``python -m training.bundle RUN_DIR [--bfloat16] [--dest DIR]``: make RUN_DIR the bundled default."""
    import argparse
    import sys

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("run_dir", help="a diffusion model dir written by infill train")
    parser.add_argument("--bfloat16", action="store_true", help="store the weights in bfloat16 (half size)")
    parser.add_argument(
        "--dest", type=Path, default=BUNDLED_DIR, help="where (default: infill/default_model)"
    )
    args = parser.parse_args(argv)
    try:
        written = bundle_model(args.run_dir, args.dest, bfloat16=args.bfloat16)
    except TrainingError as exc:
        print(f"bundle: error: {exc}", file=sys.stderr)
        return 2
    for path in written:
        print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
