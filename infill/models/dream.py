"""Dream-family diffusion LMs (Dream, DiffuCoder) through transformers' native Qwen2 classes.

Dream checkpoints are Qwen2 weights trained with full bidirectional attention; they ship remote code
(auto_map) that we never run: config.json is read as JSON, turned into a Qwen2Config and the weights are
loaded into Qwen2ForCausalLM with every attention layer made non-causal.

Dream keeps the autoregressive shift: the hidden state at i-1 predicts the token at i; adapters.DecoderAdapter
realigns it.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch
from transformers import Qwen2Config, Qwen2ForCausalLM

from infill.errors import ModelLoadError
from infill.models.adapters import DecoderAdapter
from infill.models.locate import describe_error
from infill.models.weights import checked_model, pretrained_kwargs

logger = logging.getLogger(__name__)

# Keys of Dream's config.json that name its remote code or would make transformers look for it.
_REMOTE_KEYS = ("auto_map", "architectures", "model_type", "transformers_version")


def qwen2_config_from_dream(config: dict[str, Any]) -> Qwen2Config:
    """Dream's config.json as a bidirectional Qwen2Config (is_causal False makes masks bidirectional)."""
    fields = {k: v for k, v in config.items() if k not in _REMOTE_KEYS}
    qwen = Qwen2Config(**fields)
    qwen.is_causal = False
    qwen.use_cache = False
    qwen.architectures = ["Qwen2ForCausalLM"]
    return qwen


def make_bidirectional(model: Qwen2ForCausalLM) -> None:
    """Attention modules carry their own is_causal flag, which sdpa/flash use when the mask is skipped."""
    for module in model.modules():
        if hasattr(module, "is_causal"):
            module.is_causal = False


def load_dream(
    model_dir: Path, config: dict[str, Any], device: torch.device, dtype: torch.dtype
) -> DecoderAdapter:
    try:
        qwen = qwen2_config_from_dream(config)
        kwargs = pretrained_kwargs(device, dtype)
        loaded = Qwen2ForCausalLM.from_pretrained(str(model_dir), config=qwen, **kwargs)
    except Exception as exc:  # safetensors, OSError, ValueError...: all mean the directory is unusable
        raise ModelLoadError(f"Could not load the Dream model in {model_dir}: {describe_error(exc)}") from exc
    model = checked_model(loaded, model_dir)
    make_bidirectional(model)
    return DecoderAdapter(model, shift=True)
