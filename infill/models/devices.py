"""Which torch device and dtype a model runs on."""

from __future__ import annotations

import logging
import os

import torch

from infill.errors import DeviceError

logger = logging.getLogger(__name__)

DEVICE_ENV_VAR = "INFILL_DEVICE"


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
