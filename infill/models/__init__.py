"""Model directories in, LoadedModel (logits, tokenizer, special ids) out; see base.py for the contract."""

from __future__ import annotations

from infill.models.base import DenoisingModel, LoadedModel, ModelKind, SpecialTokens, TextTokenizer
from infill.models.devices import default_dtype, resolve_device
from infill.models.families import FAMILIES, Family, detect_family, family_named
from infill.models.loader import load_model
from infill.models.locate import BUNDLED_MODEL_DIR, MODEL_ENV_VAR, resolve_model_dir

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
