"""Qwen2-shaped shifted diffusion decoders (our ``infill-shifted-decoder`` family) in plain torch, for
inference.

transformers' Qwen2ForCausalLM made bidirectional (decoders.py) computes the same thing, but importing it
costs about two ``import torch`` of a cold ``infill complete`` (modernbert.py says why). This module is that
forward pass, always bidirectional (padding mask only, no causal mask), for the configs
``Qwen2Config.from_json`` covers (the loader uses transformers for any other): the same module tree and
attribute names (``model.layers[i].self_attn.q_proj``, ``mlp.gate_proj``, ``input_layernorm``, ``model.norm``,
``lm_head``...) and class name, so the weights load by their checkpoint names and code that walks
transformers' modules (the adapters' positions-only LM head, context_cache.py's layer loop, stop-token
merging) works on it unchanged. The logits are the raw per-position ones; Dream's one-position shift is the
adapter's (adapters.py). tests/test_native_qwen2.py checks the logits and cached fills against transformers'.

Shapes: ids, attention_mask, position_ids (B, T); hidden (B, T, H); q (B, heads, T, D); k, v (B, kv heads,
T, D).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from infill.models.modernbert import Embedding, Linear, rope_cos_sin, rotate_half
from infill.models.weights import load_by_name

# transformers' Qwen2Config defaults for keys a config.json may leave out.
_DEFAULTS: dict[str, Any] = {
    "vocab_size": 151936,
    "hidden_size": 4096,
    "intermediate_size": 22016,
    "num_hidden_layers": 32,
    "num_attention_heads": 32,
    "max_position_embeddings": 32768,
    "rms_norm_eps": 1e-6,
    "tie_word_embeddings": False,
}
DEFAULT_THETA = 10_000.0  # transformers' default_theta
_ACTIVATIONS = ("silu", "swish")
_ROPE_KEYS = {"rope_type", "type", "rope_theta"}


@dataclass(frozen=True)
class Qwen2Config:
    """The config.json keys the forward pass reads, with transformers' defaults."""

    vocab_size: int
    hidden_size: int
    intermediate_size: int
    num_hidden_layers: int
    num_attention_heads: int
    num_key_value_heads: int
    head_dim: int
    rope_theta: float
    max_position_embeddings: int
    rms_norm_eps: float
    tie_word_embeddings: bool
    use_sliding_window: bool = False  # always: context_cache.cacheable reads it

    @classmethod
    def from_json(cls, config: dict[str, Any]) -> Qwen2Config | None:
        """The config of a Qwen2 decoder this module computes exactly; None for anything else.

        Covered: ``model_type`` "qwen2", ``architectures`` only Qwen2ForCausalLM (or none), ``hidden_act``
        silu, plain RoPE (``rope_parameters`` absent or ``rope_type`` "default" with at most ``rope_theta``;
        no ``rope_scaling``, no ``partial_rotary_factor``), every layer full attention (``use_sliding_window``
        false, ``layer_types`` only "full_attention"), no ``quantization_config``, heads dividing the sizes.
        """
        if config.get("model_type") != "qwen2":
            return None
        if any(a != "Qwen2ForCausalLM" for a in config.get("architectures") or []):
            return None
        if config.get("hidden_act", "silu") not in _ACTIVATIONS or config.get("quantization_config"):
            return None
        theta = _plain_rope_theta(config)
        if theta is None or config.get("use_sliding_window"):
            return None
        merged = {**_DEFAULTS, **{k: v for k, v in config.items() if v is not None}}
        heads = merged["num_attention_heads"]
        try:
            parsed = cls(
                vocab_size=int(merged["vocab_size"]),
                hidden_size=int(merged["hidden_size"]),
                intermediate_size=int(merged["intermediate_size"]),
                num_hidden_layers=int(merged["num_hidden_layers"]),
                num_attention_heads=int(heads),
                num_key_value_heads=int(merged.get("num_key_value_heads", heads)),
                head_dim=int(merged.get("head_dim", merged["hidden_size"] // heads)),
                rope_theta=theta,
                max_position_embeddings=int(merged["max_position_embeddings"]),
                rms_norm_eps=float(merged["rms_norm_eps"]),
                tie_word_embeddings=bool(merged["tie_word_embeddings"]),
            )
        except (TypeError, ValueError, ZeroDivisionError):
            return None
        layer_types = config.get("layer_types")
        if layer_types is not None and (
            not isinstance(layer_types, list)
            or len(layer_types) != parsed.num_hidden_layers
            or any(kind != "full_attention" for kind in layer_types)
        ):
            return None
        sizes = (parsed.hidden_size, parsed.intermediate_size, parsed.num_hidden_layers, parsed.head_dim)
        if min(*sizes, parsed.num_key_value_heads, parsed.vocab_size) <= 0 or parsed.head_dim % 2:
            return None
        if parsed.num_attention_heads % parsed.num_key_value_heads:
            return None
        return parsed


def _plain_rope_theta(config: dict[str, Any]) -> float | None:
    """The RoPE base of a config with unscaled (default) RoPE; None for any other RoPE."""
    if config.get("rope_scaling") or config.get("partial_rotary_factor") is not None:
        return None
    rope = config.get("rope_parameters") or {}
    if not isinstance(rope, dict) or set(rope) - _ROPE_KEYS:
        return None
    if rope.get("rope_type", rope.get("type", "default")) != "default":
        return None
    theta = rope.get("rope_theta", config.get("rope_theta"))
    try:
        return DEFAULT_THETA if theta is None else float(theta)
    except (TypeError, ValueError):
        return None


def apply_rotary_pos_emb(
    q: torch.Tensor, k: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, unsqueeze_dim: int = 1
) -> tuple[torch.Tensor, torch.Tensor]:
    """RoPE on (B, heads, T, D) queries and keys with (B, T, D) cos/sin in their dtype (transformers' Qwen2
    and LLaMA function)."""
    cos, sin = cos.unsqueeze(unsqueeze_dim), sin.unsqueeze(unsqueeze_dim)
    return q * cos + rotate_half(q) * sin, k * cos + rotate_half(k) * sin


class Qwen2RMSNorm(nn.Module):
    def __init__(self, hidden_size: int, eps: float) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.empty(hidden_size))  # loaded from the checkpoint
        self.variance_epsilon = eps

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        dtype = hidden.dtype
        hidden = hidden.float()
        hidden = hidden * torch.rsqrt(hidden.pow(2).mean(-1, keepdim=True) + self.variance_epsilon)
        return self.weight * hidden.to(dtype)


class Qwen2MLP(nn.Module):
    def __init__(self, config: Qwen2Config) -> None:
        super().__init__()
        self.gate_proj = Linear(config.hidden_size, config.intermediate_size, bias=False)
        self.up_proj = Linear(config.hidden_size, config.intermediate_size, bias=False)
        self.down_proj = Linear(config.intermediate_size, config.hidden_size, bias=False)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.down_proj(F.silu(self.gate_proj(hidden)) * self.up_proj(hidden))


class Qwen2RotaryEmbedding(nn.Module):
    """cos/sin for position ids. The inverse frequencies stay float32 whatever the model's dtype."""

    def __init__(self, config: Qwen2Config) -> None:
        super().__init__()
        dim = config.head_dim
        # A plain attribute, not a buffer: moving the model to bf16 must not round it.
        self.inv_freq = 1.0 / (config.rope_theta ** (torch.arange(0, dim, 2, dtype=torch.float32) / dim))
        self._on_device: dict[torch.device, torch.Tensor] = {}

    def forward(self, x: torch.Tensor, position_ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        inv_freq = self._on_device.get(x.device)
        if inv_freq is None:
            inv_freq = self._on_device[x.device] = self.inv_freq.to(x.device)
        return rope_cos_sin(position_ids, inv_freq, x.dtype)


class Qwen2Attention(nn.Module):
    """Grouped-query attention with q/k/v biases, bidirectional."""

    def __init__(self, config: Qwen2Config) -> None:
        super().__init__()
        self.head_dim = config.head_dim
        self.scaling = self.head_dim**-0.5
        heads, kv_heads = config.num_attention_heads, config.num_key_value_heads
        self.num_key_value_groups = heads // kv_heads
        self.q_proj = Linear(config.hidden_size, heads * self.head_dim, bias=True)
        self.k_proj = Linear(config.hidden_size, kv_heads * self.head_dim, bias=True)
        self.v_proj = Linear(config.hidden_size, kv_heads * self.head_dim, bias=True)
        self.o_proj = Linear(heads * self.head_dim, config.hidden_size, bias=False)

    def forward(
        self, hidden: torch.Tensor, rotary: tuple[torch.Tensor, torch.Tensor], allowed: torch.Tensor
    ) -> torch.Tensor:
        """``allowed`` (B, 1, T, T) bool: which keys each query attends to."""
        shape = (*hidden.shape[:2], -1, self.head_dim)
        q = self.q_proj(hidden).view(shape).transpose(1, 2)
        k = self.k_proj(hidden).view(shape).transpose(1, 2)
        v = self.v_proj(hidden).view(shape).transpose(1, 2)
        q, k = apply_rotary_pos_emb(q, k, *rotary)
        out = F.scaled_dot_product_attention(
            q, k, v, attn_mask=allowed, scale=self.scaling, enable_gqa=self.num_key_value_groups > 1
        )
        return self.o_proj(out.transpose(1, 2).flatten(2))


class Qwen2DecoderLayer(nn.Module):
    def __init__(self, config: Qwen2Config) -> None:
        super().__init__()
        self.self_attn = Qwen2Attention(config)
        self.mlp = Qwen2MLP(config)
        self.input_layernorm = Qwen2RMSNorm(config.hidden_size, config.rms_norm_eps)
        self.post_attention_layernorm = Qwen2RMSNorm(config.hidden_size, config.rms_norm_eps)

    def forward(
        self, hidden: torch.Tensor, rotary: tuple[torch.Tensor, torch.Tensor], allowed: torch.Tensor
    ) -> torch.Tensor:
        hidden = hidden + self.self_attn(self.input_layernorm(hidden), rotary, allowed)
        return hidden + self.mlp(self.post_attention_layernorm(hidden))


class ModelOutput(NamedTuple):
    last_hidden_state: torch.Tensor  # (B, T, H), after the final norm


class CausalLMOutput(NamedTuple):
    logits: torch.Tensor  # (B, T, V), unshifted: row i is what the hidden state at i predicts


class Qwen2Model(nn.Module):
    def __init__(self, config: Qwen2Config) -> None:
        super().__init__()
        self.config = config
        self.embed_tokens = Embedding(config.vocab_size, config.hidden_size)
        self.layers = nn.ModuleList(Qwen2DecoderLayer(config) for _ in range(config.num_hidden_layers))
        self.norm = Qwen2RMSNorm(config.hidden_size, config.rms_norm_eps)
        self.rotary_emb = Qwen2RotaryEmbedding(config)

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
        use_cache: bool = False,
    ) -> ModelOutput:
        """Bidirectional: every query attends to every unpadded key. ``position_ids`` default to 0..T-1, as
        transformers' (the adapters pass real-token positions). ``use_cache`` is accepted and ignored (this
        module keeps no generation cache; context_cache.py is the denoising one)."""
        batch, length = input_ids.shape
        if position_ids is None:
            position_ids = torch.arange(length, device=input_ids.device).expand(batch, -1)
        keys = (
            torch.ones_like(input_ids, dtype=torch.bool) if attention_mask is None else attention_mask.bool()
        )
        allowed = keys[:, None, None, :].expand(-1, 1, length, -1)  # (B, 1, T, T): padding keys masked
        hidden = self.embed_tokens(input_ids)
        rotary = self.rotary_emb(hidden, position_ids)
        for layer in self.layers:
            hidden = layer(hidden, rotary, allowed)
        return ModelOutput(self.norm(hidden))


class Qwen2ForCausalLM(nn.Module):
    """Named as transformers' class, whose modules and weight names it has (see the module docstring); run
    bidirectionally despite the name."""

    def __init__(self, config: Qwen2Config) -> None:
        super().__init__()
        self.config = config
        self.model = Qwen2Model(config)
        self.lm_head = Linear(config.hidden_size, config.vocab_size, bias=False)

    def get_output_embeddings(self) -> nn.Linear:
        return self.lm_head

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
        use_cache: bool = False,
    ) -> CausalLMOutput:
        hidden = self.model(input_ids, attention_mask, position_ids).last_hidden_state
        return CausalLMOutput(self.lm_head(hidden))


def load_qwen2(
    model_dir: Path, config: dict[str, Any], device: torch.device, dtype: torch.dtype
) -> tuple[Qwen2ForCausalLM, dict[str, list[str]]] | None:
    """The directory's bidirectional decoder and its load report (missing, mismatched and unexpected tensor
    names, as transformers' ``output_loading_info`` gives them); None when ``Qwen2Config.from_json`` does not
    cover its config."""
    parsed = Qwen2Config.from_json(config)
    if parsed is None:
        return None
    model = Qwen2ForCausalLM(parsed)  # uninitialised: every tensor comes from the checkpoint
    report = load_by_name(model, model_dir, "lm_head.weight" if parsed.tie_word_embeddings else None)
    if report["missing_keys"] or report["mismatched_keys"]:
        return model, report  # checked_model refuses it by name
    if parsed.tie_word_embeddings:
        model.lm_head.weight = model.model.embed_tokens.weight
    return model.to(device=device, dtype=dtype), report
