"""Dream-family diffusion LMs (Dream, DiffuCoder) through transformers' native Qwen2 classes.

Dream checkpoints are Qwen2 weights trained with full bidirectional attention; they ship remote code
(auto_map) that we never run: config.json is read as JSON, turned into a Qwen2Config and the weights are
loaded into Qwen2ForCausalLM with every attention layer made non-causal.

Dream keeps the autoregressive shift: the hidden state at i-1 predicts the token at i. The adapter
realigns so that ``logits[:, i]`` is the distribution of the token AT i, taken from the previous attended
position (padding skipped); the first real position has no predecessor and gets its own raw logits (what
Dream's own sampler does). That row is not a real prediction: keep position 0 of a canvas non-editable.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch
from transformers import Qwen2Config, Qwen2ForCausalLM

from infill.errors import ModelLoadError
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


class DreamAdapter:
    """``logits(input_ids (B, T), attention_mask (B, T)) -> (B, T, V)`` float32, realigned (module doc)."""

    def __init__(self, model: Qwen2ForCausalLM) -> None:
        self.model = model

    def logits(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        # Positions count real tokens only, so left and right padding give the same logits.
        position_ids = (attention_mask.long().cumsum(-1) - 1).clamp(min=0)
        with torch.inference_mode():
            raw = self.model(
                input_ids=input_ids,
                attention_mask=attention_mask,
                position_ids=position_ids,
                use_cache=False,
            ).logits  # (B, T, V): raw[:, i] predicts the next attended token
        source = _predecessor_index(attention_mask)  # (B, T)
        return torch.gather(raw, 1, source[..., None].expand_as(raw)).float()


def _predecessor_index(attention_mask: torch.Tensor) -> torch.Tensor:
    """(B, T) index of the previous attended position, or the position itself when it has none.

    With right padding this is ``[0, 0, 1, 2, ...]``; with left padding the first real token maps to itself
    instead of to a padding row.
    """
    seq = attention_mask.shape[1]
    positions = torch.arange(seq, device=attention_mask.device).expand_as(attention_mask)
    attended = torch.where(attention_mask.bool(), positions, torch.full_like(positions, -1))
    before = torch.cat([torch.full_like(attended[:, :1], -1), attended[:, :-1]], dim=1).cummax(dim=1).values
    return torch.where(before >= 0, before, positions)


def load_dream(
    model_dir: Path, config: dict[str, Any], device: torch.device, dtype: torch.dtype
) -> DreamAdapter:
    try:
        qwen = qwen2_config_from_dream(config)
        kwargs = pretrained_kwargs(device, dtype)
        loaded = Qwen2ForCausalLM.from_pretrained(str(model_dir), config=qwen, **kwargs)
    except Exception as exc:  # safetensors, OSError, ValueError...: all mean the directory is unusable
        raise ModelLoadError(f"Could not load the Dream model in {model_dir}: {describe_error(exc)}") from exc
    model = checked_model(loaded, model_dir)
    make_bidirectional(model)
    return DreamAdapter(model)
