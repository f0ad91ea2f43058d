"""Which torch device, dtype and number of CPU threads a model runs with."""

from __future__ import annotations

import logging
import os

import torch

from infill.errors import DeviceError

logger = logging.getLogger(__name__)

DEVICE_ENV_VAR = "INFILL_DEVICE"
# Below this many parameters a forward pass is a few milliseconds of small matrix products: a second thread
# buys nothing on an idle CPU and costs 6-10x on a busy one (issue 9, bundled model, 2 cores).
SMALL_MODEL_PARAMETERS = 10_000_000
# torch's own thread count (one per physical core, or OMP_NUM_THREADS), read before anything changes it.
_TORCH_DEFAULT_THREADS = torch.get_num_threads()


def resolve_device(device: str | None = None) -> torch.device:
    """ "auto" (default; INFILL_DEVICE overrides when ``device`` is None) -> cuda when available, else cpu.

    "cpu", "cuda" and "cuda:N" are taken literally; a CUDA device that is not there is a DeviceError rather
    than a silent fall-back to the CPU, so a user who asked for the GPU learns that they are not getting it.
    """
    if device is None:
        device = os.environ.get(DEVICE_ENV_VAR) or "auto"
    name = device.strip().lower()
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cpu":
        return torch.device("cpu")
    if name == "cuda" or name.startswith("cuda:"):
        if not torch.cuda.is_available():
            raise DeviceError("CUDA was requested but no CUDA device is available")
        try:
            resolved = torch.device(name)
        except RuntimeError as exc:
            raise DeviceError(f"Invalid CUDA device {device!r}: use cuda or cuda:N") from exc
        count = torch.cuda.device_count()
        if resolved.index is not None and resolved.index >= count:
            raise DeviceError(f"CUDA device {resolved.index} was requested but only {count} are available")
        return resolved
    if name == "mps":
        if not torch.backends.mps.is_available():
            raise DeviceError("MPS was requested but is not available")
        return torch.device("mps")
    raise DeviceError(f"Unknown device {device!r}: use auto, cpu, cuda or cuda:N")


def default_dtype(device: torch.device) -> torch.dtype:
    """bfloat16 on CUDA (half the memory, tensor cores); float32 elsewhere (CPU bf16 matmuls are slow)."""
    return torch.bfloat16 if device.type == "cuda" else torch.float32


def auto_threads(parameters: int) -> int:
    """CPU threads for a model of ``parameters``: OMP_NUM_THREADS when the user set it, 1 for small models
    (the bundled one has 1.4M), else torch's default of one per physical core."""
    if os.environ.get("OMP_NUM_THREADS", "").strip():
        return _TORCH_DEFAULT_THREADS
    return 1 if parameters < SMALL_MODEL_PARAMETERS else _TORCH_DEFAULT_THREADS


def use_threads(requested: int | None, model: object) -> int:
    """Set torch's intra-op threads (``requested``, or ``auto_threads`` for None) and return the count.

    torch keeps the count per OS thread once set: call this on the thread that runs the model.
    """
    from infill.models.adapters import parameter_count

    threads = requested if requested is not None else auto_threads(parameter_count(model) or 0)
    if threads != torch.get_num_threads():
        torch.set_num_threads(threads)
    logger.info("torch threads: %d%s", threads, "" if requested is not None else " (auto)")
    return threads
