"""Model directories in, LoadedModel (logits, tokenizer, special ids) out; see base.py for the contract.

The names below are imported on first use (PEP 562), so ``infill.models.locate`` can check a model directory
without importing torch: the CLI reports a bad ``--model`` before paying for torch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from infill.models.base import DenoisingModel, LoadedModel, ModelKind, SpecialTokens, TextTokenizer
    from infill.models.devices import default_dtype, resolve_device
    from infill.models.families import FAMILIES, Family, detect_family, family_named
    from infill.models.loader import load_model
    from infill.models.locate import BUNDLED_MODEL_DIR, MODEL_ENV_VAR, resolve_model_dir

_SOURCES = {
    "DenoisingModel": "base",
    "LoadedModel": "base",
    "ModelKind": "base",
    "SpecialTokens": "base",
    "TextTokenizer": "base",
    "default_dtype": "devices",
    "resolve_device": "devices",
    "FAMILIES": "families",
    "Family": "families",
    "detect_family": "families",
    "family_named": "families",
    "load_model": "loader",
    "BUNDLED_MODEL_DIR": "locate",
    "MODEL_ENV_VAR": "locate",
    "resolve_model_dir": "locate",
}

__all__ = [
    "BUNDLED_MODEL_DIR",
    "FAMILIES",
    "MODEL_ENV_VAR",
    "DenoisingModel",
    "Family",
    "LoadedModel",
    "ModelKind",
    "SpecialTokens",
    "TextTokenizer",
    "default_dtype",
    "detect_family",
    "family_named",
    "load_model",
    "resolve_device",
    "resolve_model_dir",
]


def __getattr__(name: str) -> Any:
    if name not in _SOURCES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"infill.models.{_SOURCES[name]}"), name)
    globals()[name] = value  # later lookups skip this function
    return value
