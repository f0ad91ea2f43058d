"""int8 weights for small models on the CPU: torch's dynamic quantization of every Linear layer.

``torch.ao.quantization.quantize_dynamic`` stores each Linear's weight as int8 with one scale per tensor and
quantizes the activations on the fly, so a matrix product reads a quarter of float32's bytes; embeddings,
norms and attention stay float32. Chosen by measurement (BENCHMARKS.md, scripts/bench_block_cpu.py: a 0.5B
Qwen2.5-Coder-shaped block model). Only for CPU runs of float32 models of at most ``MAX_PARAMETERS``: larger
models should take a GPU, and torch's dynamic int8 kernels are CPU-only.
"""

from __future__ import annotations

import json
import logging
import math
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from infill.errors import ModelLoadError

if TYPE_CHECKING:  # torch is imported where a model is quantized: the CLI reads QUANTIZATIONS for --help
    import torch

logger = logging.getLogger(__name__)

Quantization = Literal["int8"]
QUANTIZATIONS: tuple[Quantization, ...] = ("int8",)
MAX_PARAMETERS = 2_000_000_000


def check_quantization(quantize: str | None, device: torch.device, model_dir: Path | None = None) -> None:
    """Refuse before anything is loaded: an unknown kind, a device other than the CPU, a checkpoint over
    ``MAX_PARAMETERS`` (counted from its safetensors headers: an 8B model is refused, not loaded first)."""
    if quantize is None:
        return
    if quantize not in QUANTIZATIONS:
        raise ModelLoadError(f"Unknown quantization {quantize!r} (known: {', '.join(QUANTIZATIONS)})")
    if device.type != "cpu":
        raise ModelLoadError(f"--quantize {quantize} is for the CPU; on {device} the model runs in its dtype")
    if model_dir is not None:
        _check_size(quantize, checkpoint_parameters(model_dir))


def checkpoint_parameters(model_dir: Path) -> int:
    """How many parameters the directory's safetensors files hold, read from their JSON headers."""
    total = 0
    for path in sorted(model_dir.glob("*.safetensors")):
        try:
            with path.open("rb") as file:
                header = json.loads(file.read(int.from_bytes(file.read(8), "little")))
            total += sum(math.prod(t["shape"]) for name, t in header.items() if name != "__metadata__")
        except (OSError, ValueError, KeyError, TypeError) as error:
            raise ModelLoadError(f"Could not read the tensor sizes in {path}: {error}") from error
    return total


def _check_size(quantize: str, parameters: int) -> None:
    if parameters > MAX_PARAMETERS:
        raise ModelLoadError(
            f"--quantize {quantize} is for models up to {MAX_PARAMETERS / 1e9:.0f}B parameters; this one has "
            f"{parameters / 1e9:.1f}B (run it on a GPU instead)"
        )


def quantize_linear_layers(model: torch.nn.Module, quantize: str) -> int:
    """Replace, in place, every Linear of ``model`` by torch's dynamic int8 Linear; returns the number
    replaced. Refuses models over ``MAX_PARAMETERS`` and models not in float32."""
    import torch

    parameters = sum(p.numel() for p in model.parameters())
    _check_size(quantize, parameters)
    dtype = next(model.parameters()).dtype
    if dtype != torch.float32:
        raise ModelLoadError(f"--quantize {quantize} needs the model in float32, not {dtype}")
    # quantize_dynamic matches exact types; infill's own Linear (modernbert.py) is nn.Linear without the
    # random initialisation, the same layer.
    linears = [m for m in model.modules() if isinstance(m, torch.nn.Linear)]
    for module in linears:
        module.__class__ = torch.nn.Linear
    # torch 2.13 marks torch.ao.quantization deprecated in favour of torchao (not a dependency here; its int8
    # path was not measured on this CPU): the warnings would reach the CLI's stderr on every load.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.filterwarnings("ignore", message=r"torch\.quantize_per_tensor", category=UserWarning)
        torch.ao.quantization.quantize_dynamic(model, {torch.nn.Linear}, dtype=torch.qint8, inplace=True)
    logger.info("Quantized %d Linear layers to int8 (%.2fB parameters)", len(linears), parameters / 1e9)
    return len(linears)
