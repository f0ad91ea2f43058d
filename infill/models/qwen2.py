"""Qwen2-, Qwen3- and LLaMA-shaped decoders in plain torch, for inference: our ``infill-shifted-decoder``
family (bidirectional Qwen2) and block-diffusion checkpoints on Qwen3 (SDAR) and LLaMA (Stable-DiffCoder, on
Seed-Coder): block-causal attention.

transformers' Qwen2ForCausalLM made bidirectional (decoders.py) computes the same thing as the Qwen2 case, but
importing it costs about two ``import torch`` of a cold ``infill complete`` (modernbert.py says why). This
module is one forward pass for the three backbones: Qwen3 is Qwen2 with an RMSNorm over each query and key
head (``q_norm``/``k_norm``, before RoPE) and ``attention_bias`` (default false) on all four projections
instead of Qwen2's fixed q/k/v biases; LLaMA is Qwen3 without the head norms (``mlp_bias`` must be false).
Which keys a query sees is a mask the caller chooses, not a code path:
``block_size`` None is bidirectional (padding only), ``block_size`` b is block-causal over blocks of b
absolute positions (b = 1 would be causal). The forward pass takes an optional ``KeyValueCache``
(kv_cache.py; keys after RoPE, and values) in its two uses: new positions after the cached ones, appended
with ``store``, which is the exact prefix cache of a block-causal model (a block's keys depend only on
earlier blocks); or, with ``at``, new positions written into their slots of a cached bidirectional canvas,
which is Fast-dLLM's DualCache (adapters.DecoderAdapter.logits_with_cache). No other module of infill runs
these layers (tests/test_backbone_module.py). Modules, attribute names (``model.layers[i].self_attn.q_proj``,
``q_norm``, ``mlp.gate_proj``, ``input_layernorm``, ``model.norm``, ``lm_head``...) and class names are
transformers', so weights load by their checkpoint names and code that walks transformers' modules (the
adapters' positions-only LM head, stop-token merging, int8 quantization) works on them unchanged.
The logits are the raw per-position ones; Dream's one-position shift is the adapter's (adapters.py).
tests/test_native_qwen2.py and test_backbone_module.py check the Qwen2 and LLaMA logits of our shifted
decoder and the released Dream/DiffuCoder/LLaDA layouts against transformers';
tests/test_block_diffusion.py checks Qwen3/SDAR and tests/test_stable_diffcoder.py LLaMA/Stable-DiffCoder
against implementations written from the authors' code.

Shapes: ids, attention_mask, position_ids (B, T); hidden (B, T, H); q (B, heads, T, D); k, v (B, kv heads,
T, D); a cache holds (B, kv heads, P, D) per layer for P positions.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from infill.models.families import Backbone
from infill.models.kv_cache import KeyValueCache, attend, cached_keys
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
    # Qwen2: biases on q/k/v only. Qwen3: per-head q/k RMSNorm, ``attention_bias`` on q/k/v/o.
    qk_norm: bool = False
    qkv_bias: bool = True
    o_bias: bool = False

    @classmethod
    def from_json(
        cls, config: dict[str, Any], backbone: Backbone = "qwen2", *, any_model_type: bool = False
    ) -> Qwen2Config | None:
        """The config of a Qwen2 (or, with ``backbone`` "qwen3"/"llama", Qwen3/LLaMA) decoder this module
        computes exactly; None for anything else.

        Covered: for "qwen2" ``model_type`` "qwen2" and ``architectures`` only Qwen2ForCausalLM (or none;
        ``any_model_type``: any, where a block-diffusion family entry decided the backbone); for
        "qwen3"/"llama" any model type (the family entry decided the backbone: SDAR's is "sdar");
        ``hidden_act`` silu, plain RoPE (``rope_parameters`` absent or ``rope_type`` "default" with at most
        ``rope_theta``; no ``rope_scaling``, no ``partial_rotary_factor``), every layer full attention
        (``use_sliding_window`` false, ``layer_types`` only "full_attention"), no ``quantization_config``,
        heads dividing the sizes; for "llama" no ``mlp_bias``.
        """
        if backbone == "qwen2" and not any_model_type and config.get("model_type") != "qwen2":
            return None
        architectures = config.get("architectures") or []
        if backbone == "qwen2" and not any_model_type and any(a != "Qwen2ForCausalLM" for a in architectures):
            return None
        if config.get("hidden_act", "silu") not in _ACTIVATIONS or config.get("quantization_config"):
            return None
        if backbone == "llama" and config.get("mlp_bias"):
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
                **_attention_kind(backbone, bool(merged.get("attention_bias", False))),
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


def _attention_kind(backbone: Backbone, attention_bias: bool) -> dict[str, bool]:
    if backbone in ("qwen3", "llama"):  # LLaMA: Qwen3's attention without the q/k head norms
        return {"qk_norm": backbone == "qwen3", "qkv_bias": attention_bias, "o_bias": attention_bias}
    return {"qk_norm": False, "qkv_bias": True, "o_bias": False}


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


def attention_allowed(
    query_positions: torch.Tensor,
    key_positions: torch.Tensor,
    key_real: torch.Tensor,
    block_size: int | None,
    block_phase: int = 0,
) -> torch.Tensor:
    """(B, 1, T, S) bool: which keys each query attends to. Bidirectional (``block_size`` None): every real
    key. Block-causal: real keys whose block ((position + block_phase) // block_size) is not after the
    query's (a phase ends a block where a prompt ends, as the dllm project's BD3LM sampler does)."""
    allowed = key_real[:, None, None, :]  # (B, 1, 1, S)
    if block_size is not None:
        query_block = torch.div(query_positions + block_phase, block_size, rounding_mode="floor")
        key_block = torch.div(key_positions + block_phase, block_size, rounding_mode="floor")
        query_block, key_block = query_block[:, None, :, None], key_block[:, None, None, :]
        allowed = allowed & (key_block <= query_block)
    return allowed.expand(-1, 1, query_positions.shape[1], -1)


class Qwen2Attention(nn.Module):
    """Grouped-query attention over the allowed keys: Qwen2's (q/k/v biases) or Qwen3's (q/k head norms)."""

    def __init__(self, config: Qwen2Config) -> None:
        super().__init__()
        self.head_dim = config.head_dim
        self.scaling = self.head_dim**-0.5
        heads, kv_heads = config.num_attention_heads, config.num_key_value_heads
        self.num_key_value_groups = heads // kv_heads
        self.q_proj = Linear(config.hidden_size, heads * self.head_dim, bias=config.qkv_bias)
        self.k_proj = Linear(config.hidden_size, kv_heads * self.head_dim, bias=config.qkv_bias)
        self.v_proj = Linear(config.hidden_size, kv_heads * self.head_dim, bias=config.qkv_bias)
        self.o_proj = Linear(heads * self.head_dim, config.hidden_size, bias=config.o_bias)
        if config.qk_norm:  # Qwen3: RMSNorm over each head's dimensions, before RoPE
            self.q_norm = Qwen2RMSNorm(self.head_dim, config.rms_norm_eps)
            self.k_norm = Qwen2RMSNorm(self.head_dim, config.rms_norm_eps)

    def forward(
        self,
        hidden: torch.Tensor,
        rotary: tuple[torch.Tensor, torch.Tensor],
        allowed: torch.Tensor,
        past: tuple[torch.Tensor, torch.Tensor] | None = None,
        at: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``allowed`` (B, 1, T, S) bool: which keys each query attends to: ``past``'s P then the T new ones
        (S = P + T), or ``past``'s with the new ones written at slots ``at`` (S = P; kv_cache.layer_keys).
        Returns the output and the keys and values attended over."""
        shape = (*hidden.shape[:2], -1, self.head_dim)
        q = self.q_proj(hidden).view(shape)
        k = self.k_proj(hidden).view(shape)
        if hasattr(self, "q_norm"):
            q, k = self.q_norm(q), self.k_norm(k)
        q, k = q.transpose(1, 2), k.transpose(1, 2)
        v = self.v_proj(hidden).view(shape).transpose(1, 2)
        q, k = apply_rotary_pos_emb(q, k, *rotary)
        out, keys, values = attend(q, k, v, allowed, past, at, self.scaling)
        return self.o_proj(out.transpose(1, 2).flatten(2)), keys, values


class Qwen2DecoderLayer(nn.Module):
    # The attention module's attribute, as the checkpoint names it (LLaDA2's layers say ``attention``).
    attention_name = "self_attn"

    def __init__(self, config: Qwen2Config) -> None:
        super().__init__()
        self.self_attn = Qwen2Attention(config)
        self.mlp = Qwen2MLP(config)
        self.input_layernorm = Qwen2RMSNorm(config.hidden_size, config.rms_norm_eps)
        self.post_attention_layernorm = Qwen2RMSNorm(config.hidden_size, config.rms_norm_eps)

    def forward(
        self,
        hidden: torch.Tensor,
        rotary: tuple[torch.Tensor, torch.Tensor],
        allowed: torch.Tensor,
        past: tuple[torch.Tensor, torch.Tensor] | None = None,
        at: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        attention = getattr(self, self.attention_name)
        attended, k, v = attention(self.input_layernorm(hidden), rotary, allowed, past, at)
        hidden = hidden + attended
        return hidden + self.mlp(self.post_attention_layernorm(hidden)), k, v


class ModelOutput(NamedTuple):
    last_hidden_state: torch.Tensor  # (B, T, H), after the final norm
    cache: KeyValueCache | None = None  # with ``store``: the given cache with these positions in it


class CausalLMOutput(NamedTuple):
    logits: torch.Tensor  # (B, T, V), unshifted: row i is what the hidden state at i predicts
    cache: KeyValueCache | None = None


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
        *,
        past: KeyValueCache | None = None,
        store: bool = False,
        block_size: int | None = None,
        at: torch.Tensor | None = None,
        block_phase: int = 0,
    ) -> ModelOutput:
        """Hidden states of ``input_ids`` attending to ``past`` and to each other, bidirectionally or
        block-causally (``block_size``; see ``attention_allowed``). ``at`` (B, T): the new positions replace
        ``past``'s slots ``at`` instead of following it (a DualCache step; kv_cache.py), and their position
        ids default to those slots'. ``position_ids`` otherwise default to past.length.. (0..T-1 without a
        cache, as transformers'; the adapters pass real-token positions). ``store``: also return the cache
        with these positions in it. ``use_cache`` is accepted for transformers' call signature and
        ignored."""
        batch, length = input_ids.shape
        if position_ids is None and past is not None and at is not None:
            position_ids = past.positions.gather(1, at)
        elif position_ids is None:
            start = 0 if past is None else past.length
            position_ids = torch.arange(start, start + length, device=input_ids.device).expand(batch, -1)
        real = (
            torch.ones_like(input_ids, dtype=torch.bool) if attention_mask is None else attention_mask.bool()
        )
        key_positions, key_real = cached_keys(past, position_ids, real, at)
        allowed = attention_allowed(position_ids, key_positions, key_real, block_size, block_phase)
        hidden = self.embed_tokens(input_ids)
        rotary = self.rotary_emb(hidden, position_ids)
        keys, values = [], []
        for index, layer in enumerate(self.layers):
            layer_past = None if past is None else (past.keys[index], past.values[index])
            hidden, k, v = layer(hidden, rotary, allowed, layer_past, at)
            keys.append(k)
            values.append(v)
        cache = KeyValueCache(tuple(keys), tuple(values), key_positions, key_real) if store else None
        return ModelOutput(self.norm(hidden), cache)


class Qwen2ForCausalLM(nn.Module):
    """Named as transformers' class, whose modules and weight names it has (see the module docstring); run
    bidirectionally or block-causally despite the name."""

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
        *,
        past: KeyValueCache | None = None,
        store: bool = False,
        block_size: int | None = None,
        at: torch.Tensor | None = None,
    ) -> CausalLMOutput:
        hidden, cache = self.model(
            input_ids, attention_mask, position_ids, past=past, store=store, block_size=block_size, at=at
        )
        return CausalLMOutput(self.lm_head(hidden), cache)


class Qwen3ForCausalLM(Qwen2ForCausalLM):
    """The same module with Qwen3's attention (``Qwen2Config.qk_norm``), under transformers' Qwen3 class
    name (what reports print)."""


class LlamaForCausalLM(Qwen2ForCausalLM):
    """The same module with LLaMA's attention (``attention_bias`` on all four projections, no head norms;
    Seed-Coder, Stable-DiffCoder; LLaDA), under transformers' LLaMA class name."""


_CLASSES: dict[Backbone, type[Qwen2ForCausalLM]] = {
    "qwen2": Qwen2ForCausalLM,
    "qwen3": Qwen3ForCausalLM,
    "llama": LlamaForCausalLM,
}


def load_qwen2(
    model_dir: Path,
    config: dict[str, Any],
    device: torch.device,
    dtype: torch.dtype,
    backbone: Backbone = "qwen2",
    *,
    any_model_type: bool = False,
    weight_names: tuple[tuple[str, str], ...] = (),
    what: str = "model",
) -> tuple[Qwen2ForCausalLM, dict[str, list[str]]] | None:
    """The directory's decoder (``backbone`` "qwen2", "qwen3" or "llama") and its load report (missing,
    mismatched and unexpected tensor names, as transformers' ``output_loading_info`` gives them); None when
    ``Qwen2Config.from_json`` does not cover its config. ``weight_names``: the family's renames of checkpoint
    tensors to these modules' names (LLaDA's); ``what``: the model as an error names it."""
    parsed = Qwen2Config.from_json(config, backbone, any_model_type=any_model_type)
    if parsed is None:
        return None
    # Uninitialised: every tensor comes from the checkpoint.
    model = _CLASSES[backbone](parsed)
    tied_head = "lm_head.weight" if parsed.tie_word_embeddings else None
    report = load_by_name(model, model_dir, tied_head, weight_names, what)
    if report["missing_keys"] or report["mismatched_keys"]:
        return model, report  # checked_model refuses it by name
    if parsed.tie_word_embeddings:
        model.lm_head.weight = model.model.embed_tokens.weight
    return model.to(device=device, dtype=dtype), report
