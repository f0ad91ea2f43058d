"""Models that need their own Python code (LLaDA-style), loaded only when the caller opted in.

loader.py refuses these directories unless trust_remote_code is set; here the code in the directory is
imported by transformers. The model must return unshifted per-position logits (``.logits`` or the first
output), as masked diffusion models such as LLaDA do.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch
from transformers import AutoConfig, AutoModel, AutoModelForMaskedLM

from infill.errors import ModelLoadError
from infill.models.adapters import MaskedLMAdapter
from infill.models.locate import describe_error
from infill.models.weights import checked_model, pretrained_kwargs

logger = logging.getLogger(__name__)


def load_remote(
    model_dir: Path, config: dict[str, Any], device: torch.device, dtype: torch.dtype
) -> MaskedLMAdapter:
    auto_map = config.get("auto_map") or {}
    auto_class = AutoModelForMaskedLM if "AutoModelForMaskedLM" in auto_map else AutoModel
    logger.warning("Running the model code shipped in %s (trust_remote_code)", model_dir)
    try:
        hf_config = AutoConfig.from_pretrained(str(model_dir), trust_remote_code=True)
        loaded = auto_class.from_pretrained(
            str(model_dir), config=hf_config, trust_remote_code=True, **pretrained_kwargs(device, dtype)
        )
    except Exception as exc:  # the remote code can raise anything; it all means "cannot load"
        message = f"Could not load the remote-code model in {model_dir}: {describe_error(exc)}"
        raise ModelLoadError(message) from exc
    return MaskedLMAdapter(checked_model(loaded, model_dir))
