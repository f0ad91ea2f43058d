"""from_pretrained settings every model kind shares, the check that the weights fit the architecture, and
reading a directory's safetensors weights (into infill's own plain-torch models too)."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import torch
from safetensors.torch import load_file

from infill.errors import ModelLoadError
from infill.models.locate import describe_error

Model = TypeVar("Model", bound=torch.nn.Module)

logger = logging.getLogger(__name__)


def pretrained_kwargs(device: torch.device, dtype: torch.dtype) -> dict[str, Any]:
    """from_pretrained arguments every kind shares: safetensors only, straight onto the device."""
    return {
        "use_safetensors": True,
        "dtype": dtype,
        "device_map": {"": device},
        "output_loading_info": True,
    }


def checked_model(loaded: tuple[Model, dict[str, Any]], model_dir: Path) -> Model:
    """Refuse weights that do not fit the architecture (transformers would silently init them randomly).

    ``loaded``: a model and its load report (missing, mismatched and unexpected tensor names), as
    from_pretrained(output_loading_info=True) or modernbert.load_modernbert give them."""
    model, info = loaded
    missing = sorted(info.get("missing_keys") or ())
    mismatched = sorted(str(k) for k in info.get("mismatched_keys") or ())
    if missing or mismatched:
        bad = missing or mismatched
        raise ModelLoadError(
            f"The weights in {model_dir} do not match its config.json: "
            f"{len(bad)} tensors missing or mis-shaped (e.g. {bad[0]})"
        )
    unexpected = sorted(info.get("unexpected_keys") or ())
    if unexpected:
        example = unexpected[0]
        logger.warning("Ignoring %d unused tensors in %s (e.g. %s)", len(unexpected), model_dir, example)
    return model.eval()


@contextmanager
def quiet_transformers() -> Iterator[None]:
    """No "Loading weights" bars or multi-line load reports on stderr while loading.

    Callers report progress themselves, and checked_model turns a bad load report into one ModelLoadError.
    """
    from transformers.utils import logging as hf_logging

    was_enabled = hf_logging.is_progress_bar_enabled()
    verbosity = hf_logging.get_verbosity()
    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()
    try:
        yield
    finally:
        hf_logging.set_verbosity(verbosity)
        if was_enabled:
            hf_logging.enable_progress_bar()


def read_safetensors(model_dir: Path) -> dict[str, torch.Tensor]:
    """Every tensor of the directory's safetensors weights (``model.safetensors``, or the shards its
    ``model.safetensors.index.json`` names), on the CPU."""
    index = model_dir / "model.safetensors.index.json"
    if index.is_file():
        weight_map = json.loads(index.read_text(encoding="utf-8"))["weight_map"]
        files = sorted(set(weight_map.values()))
    else:
        files = ["model.safetensors"]
    weights: dict[str, torch.Tensor] = {}
    for name in files:
        weights.update(load_file(str(model_dir / name), device="cpu"))
    return weights


def load_by_name(
    model: torch.nn.Module,
    model_dir: Path,
    tied_head: str | None,
    renames: tuple[tuple[str, str], ...] = (),
    what: str = "model",
) -> dict[str, list[str]]:
    """Fill ``model`` (built uninitialised from the directory's config) with the directory's tensors, by name;
    returns the load report (missing, mismatched and unexpected names, as transformers'
    ``output_loading_info`` gives them) and loads nothing when a tensor is missing or mis-shaped, for
    ``checked_model`` to refuse. ``tied_head``: the output projection's name when it shares the embedding's
    weight (the caller ties them), so the checkpoint need not hold it. ``renames``: (regex, replacement) on
    the checkpoint's names, the first that matches wins (a family's weight map, as transformers'
    ``key_mapping``). ``what``: the model as an error names it ("the dream model")."""
    try:
        weights = read_safetensors(model_dir)
    except Exception as exc:  # safetensors, OSError, a bad index...: all mean the directory is unusable
        raise ModelLoadError(f"Could not load the {what} in {model_dir}: {describe_error(exc)}") from exc
    if renames:
        weights = {_renamed(name, renames): tensor for name, tensor in weights.items()}
    expected = model.state_dict()
    if tied_head is not None:
        expected.pop(tied_head)
    report: dict[str, list[str]] = {
        "missing_keys": sorted(set(expected) - set(weights)),
        "mismatched_keys": sorted(
            name for name in set(expected) & set(weights) if weights[name].shape != expected[name].shape
        ),
        "unexpected_keys": sorted(set(weights) - set(expected) - {tied_head}),
    }
    if not report["missing_keys"] and not report["mismatched_keys"]:
        model.load_state_dict({name: weights[name] for name in expected}, strict=False)
    return report


def _renamed(name: str, renames: tuple[tuple[str, str], ...]) -> str:
    for pattern, replacement in renames:
        new, count = re.subn(pattern, replacement, name)
        if count:
            return new
    return name
