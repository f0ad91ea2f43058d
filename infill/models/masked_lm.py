"""Masked LMs that transformers implements natively (ModernBERT, RoBERTa/CodeBERT, BERT...)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch
from transformers import AutoConfig, AutoModelForMaskedLM, PreTrainedModel

from infill.errors import ModelLoadError
from infill.models.locate import describe_error
from infill.models.weights import checked_model, pretrained_kwargs

logger = logging.getLogger(__name__)

# RoBERTa-style models number positions from pad_token_id + 1, so pad_token_id + 1 of their
# max_position_embeddings can never hold a token.
_POSITIONS_OFFSET_BY_PAD = {"roberta", "xlm-roberta", "camembert", "longformer", "data2vec-text", "xmod"}


def masked_lm_max_positions(config: dict[str, Any]) -> int | None:
    positions = config.get("max_position_embeddings")
    if not isinstance(positions, int):
        return None
    if config.get("model_type") in _POSITIONS_OFFSET_BY_PAD:
        positions -= int(config.get("pad_token_id") or 0) + 1
    return positions


def load_masked_lm(model_dir: Path, device: torch.device, dtype: torch.dtype) -> PreTrainedModel:
    try:
        config = AutoConfig.from_pretrained(str(model_dir), trust_remote_code=False)
        model = AutoModelForMaskedLM.from_pretrained(
            str(model_dir), config=config, **pretrained_kwargs(device, dtype), trust_remote_code=False
        )
    except Exception as exc:  # safetensors, OSError, ValueError...: all mean the directory is unusable
        raise ModelLoadError(f"Could not load the model in {model_dir}: {describe_error(exc)}") from exc
    return checked_model(model, model_dir)
