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
from transformers import AutoConfig, AutoModel, AutoModelForMaskedLM, PreTrainedModel

from infill.errors import ModelLoadError
from infill.models.locate import describe_error
from infill.models.weights import checked_model, pretrained_kwargs

logger = logging.getLogger(__name__)


class RemoteAdapter:
    """``logits(input_ids (B, T), attention_mask (B, T)) -> (B, T, V)`` float32, unshifted."""

    def __init__(self, model: PreTrainedModel) -> None:
        self.model = model

    def logits(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        with torch.inference_mode():
            out = self.model(input_ids=input_ids, attention_mask=attention_mask)
        logits = getattr(out, "logits", None)
        if logits is None:
            logits = out[0]
        assert logits.shape[:2] == input_ids.shape, "remote model must give one row of logits per position"
        return logits.float()


def load_remote(
    model_dir: Path, config: dict[str, Any], device: torch.device, dtype: torch.dtype
) -> RemoteAdapter:
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
    return RemoteAdapter(checked_model(loaded, model_dir))
