"""ModernBERT masked LMs (the architecture of our from-scratch models) in plain torch, for inference.

transformers' ModernBertForMaskedLM computes the same thing, but importing any transformers model class pulls
in its whole loading machinery (torch.distributed, dynamo, quantizers...): about three times an ``import
torch``, paid by every cold ``infill complete``. This module is transformers' forward pass for the configs
it covers (``ModernBertConfig.from_json`` returns None for any other, and the loader then uses
transformers): the same module tree and attribute names (``model.layers[i].attn.Wqkv``, ``head``,
``decoder``...), so the weights load by their checkpoint names and code that walks transformers' modules
(the positions-only LM head, stop-token merging) works on it unchanged. The forward pass takes an optional
``KeyValueCache`` (kv_cache.py) for Fast-dLLM's DualCache: with ``past`` and ``at`` the block's positions
are written into their slots of the cached canvas and attend over all of it (tests/test_context_cache.py).
A ModernBERT loaded by transformers (a config this module does not cover) runs without that cache.
tests/test_native_modernbert.py checks the logits against transformers' on several configs.

Shapes: ids, attention_mask (B, T); hidden (B, T, H); q, k, v (B, heads, T, D).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from infill.models.kv_cache import KeyValueCache, attend, cached_keys
from infill.models.weights import load_by_name

ACTIVATIONS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "gelu": F.gelu,
    "gelu_pytorch_tanh": lambda x: F.gelu(x, approximate="tanh"),
    "silu": F.silu,
    "swish": F.silu,
    "relu": F.relu,
}
LAYER_TYPES = ("full_attention", "sliding_attention")
DEFAULT_THETA = {"full_attention": 160_000.0, "sliding_attention": 10_000.0}  # transformers' defaults
# Keys of the transformers 4 configs that set the two thetas.
_THETA_KEYS = {"full_attention": "global_rope_theta", "sliding_attention": "local_rope_theta"}


@dataclass(frozen=True)
class ModernBertConfig:
    """The config.json keys the forward pass reads, with transformers' defaults."""

    vocab_size: int
    hidden_size: int
    intermediate_size: int
    num_hidden_layers: int
    num_attention_heads: int
    layer_types: tuple[str, ...]
    rope_theta: dict[str, float]
    local_attention: int = 128
    max_position_embeddings: int = 8192
    norm_eps: float = 1e-5
    norm_bias: bool = False
    attention_bias: bool = False
    mlp_bias: bool = False
    decoder_bias: bool = True
    classifier_bias: bool = False
    hidden_activation: str = "gelu"
    classifier_activation: str = "gelu"
    tie_word_embeddings: bool = True

    @property
    def sliding_window(self) -> int:
        """Half the local window: a token sees the tokens at most this far away (inclusive)."""
        return self.local_attention // 2

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.num_attention_heads

    @classmethod
    def from_json(cls, config: dict[str, Any]) -> ModernBertConfig | None:
        """The config of a ModernBERT masked LM this module computes exactly; None for anything else
        (another architecture, scaled RoPE, an activation it does not know...)."""
        if config.get("model_type") != "modernbert":
            return None
        if any(not a.startswith("ModernBertForMaskedLM") for a in config.get("architectures") or []):
            return None
        layers = config.get("num_hidden_layers", 22)
        every = config.get("global_attn_every_n_layers", 3)
        layer_types = config.get("layer_types") or [
            "sliding_attention" if i % every else "full_attention" for i in range(layers)
        ]
        rope = config.get("rope_parameters") or {}
        if config.get("rope_scaling") or not isinstance(rope, dict):
            return None
        theta = {}
        for kind in LAYER_TYPES:
            params = rope.get(kind) or {}
            if params.get("rope_type", "default") != "default" or set(params) - {"rope_type", "rope_theta"}:
                return None
            theta[kind] = float(params.get("rope_theta", config.get(_THETA_KEYS[kind], DEFAULT_THETA[kind])))
        try:
            parsed = cls(
                vocab_size=config.get("vocab_size", 50368),
                hidden_size=config.get("hidden_size", 768),
                intermediate_size=config.get("intermediate_size", 1152),
                num_hidden_layers=layers,
                num_attention_heads=config.get("num_attention_heads", 12),
                layer_types=tuple(layer_types),
                rope_theta=theta,
                **{key: config[key] for key in _OPTIONAL if key in config},
            )
        except TypeError:
            return None
        known_activations = {parsed.hidden_activation, parsed.classifier_activation} <= set(ACTIVATIONS)
        if (
            not known_activations
            or len(parsed.layer_types) != parsed.num_hidden_layers
            or not set(parsed.layer_types) <= set(LAYER_TYPES)
            or parsed.hidden_size % parsed.num_attention_heads
        ):
            return None
        return parsed


_OPTIONAL = (
    "local_attention",
    "max_position_embeddings",
    "norm_eps",
    "norm_bias",
    "attention_bias",
    "mlp_bias",
    "decoder_bias",
    "classifier_bias",
    "hidden_activation",
    "classifier_activation",
    "tie_word_embeddings",
)


class Linear(nn.Linear):
    """nn.Linear without the random initialisation: every weight is then loaded from the checkpoint."""

    def reset_parameters(self) -> None:
        pass


class Embedding(nn.Embedding):
    """nn.Embedding without the random initialisation (see Linear)."""

    def reset_parameters(self) -> None:
        pass


def rotate_half(x: torch.Tensor) -> torch.Tensor:
    first, second = x.chunk(2, dim=-1)
    return torch.cat((-second, first), dim=-1)


def apply_rotary_pos_emb(
    q: torch.Tensor, k: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, unsqueeze_dim: int = 1
) -> tuple[torch.Tensor, torch.Tensor]:
    """RoPE on (B, heads, T, D) queries and keys with (B, T, D) cos/sin, computed in float32 (as
    transformers' ModernBERT does)."""
    cos, sin = cos.unsqueeze(unsqueeze_dim), sin.unsqueeze(unsqueeze_dim)
    q_embed = q.float() * cos + rotate_half(q.float()) * sin
    k_embed = k.float() * cos + rotate_half(k.float()) * sin
    return q_embed.to(q.dtype), k_embed.to(k.dtype)


class ModernBertEmbeddings(nn.Module):
    def __init__(self, config: ModernBertConfig) -> None:
        super().__init__()
        self.tok_embeddings = Embedding(config.vocab_size, config.hidden_size)
        self.norm = nn.LayerNorm(config.hidden_size, eps=config.norm_eps, bias=config.norm_bias)

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        return self.norm(self.tok_embeddings(input_ids))


class ModernBertMLP(nn.Module):
    def __init__(self, config: ModernBertConfig) -> None:
        super().__init__()
        self.Wi = Linear(config.hidden_size, 2 * config.intermediate_size, bias=config.mlp_bias)
        self.act = ACTIVATIONS[config.hidden_activation]
        self.Wo = Linear(config.intermediate_size, config.hidden_size, bias=config.mlp_bias)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        value, gate = self.Wi(hidden).chunk(2, dim=-1)
        return self.Wo(self.act(value) * gate)


class ModernBertRotaryEmbedding(nn.Module):
    """cos/sin per layer type. The inverse frequencies stay float32 whatever the model's dtype."""

    def __init__(self, config: ModernBertConfig) -> None:
        super().__init__()
        dim = config.head_dim
        steps = torch.arange(0, dim, 2, dtype=torch.float32) / dim
        # Plain attributes, not buffers: moving the model to bf16 must not round them.
        self.inv_freq = {kind: 1.0 / (theta**steps) for kind, theta in config.rope_theta.items()}
        self._on_device: dict[tuple[str, torch.device], torch.Tensor] = {}

    def forward(
        self, x: torch.Tensor, position_ids: torch.Tensor, layer_type: str
    ) -> tuple[torch.Tensor, torch.Tensor]:
        inv_freq = self._on_device.get((layer_type, x.device))
        if inv_freq is None:
            inv_freq = self._on_device[(layer_type, x.device)] = self.inv_freq[layer_type].to(x.device)
        return rope_cos_sin(position_ids, inv_freq, x.dtype)


def rope_cos_sin(
    position_ids: torch.Tensor, inv_freq: torch.Tensor, dtype: torch.dtype
) -> tuple[torch.Tensor, torch.Tensor]:
    """RoPE's cos and sin at each position, (B, T, D), the frequencies repeated over both halves."""
    freqs = position_ids[..., None].float() * inv_freq  # (B, T, D/2)
    angles = torch.cat((freqs, freqs), dim=-1)
    return angles.cos().to(dtype), angles.sin().to(dtype)


class ModernBertAttention(nn.Module):
    def __init__(self, config: ModernBertConfig) -> None:
        super().__init__()
        self.head_dim = config.head_dim
        self.Wqkv = Linear(config.hidden_size, 3 * config.hidden_size, bias=config.attention_bias)
        self.Wo = Linear(config.hidden_size, config.hidden_size, bias=config.attention_bias)

    def forward(
        self,
        hidden: torch.Tensor,
        rotary: tuple[torch.Tensor, torch.Tensor],
        allowed: torch.Tensor,
        past: tuple[torch.Tensor, torch.Tensor] | None = None,
        at: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``allowed`` (B, 1, T, S) bool: which keys each query attends to (its own and ``past``'s, as
        kv_cache.layer_keys puts them). Returns the output and the keys and values attended over."""
        batch, length, _ = hidden.shape
        qkv = self.Wqkv(hidden).view(batch, length, 3, -1, self.head_dim)
        q, k, v = (part.transpose(1, 2) for part in qkv.unbind(dim=2))  # (B, heads, T, D)
        q, k = apply_rotary_pos_emb(q, k, *rotary)
        out, keys, values = attend(q, k, v, allowed, past, at, self.head_dim**-0.5)
        return self.Wo(out.transpose(1, 2).reshape(batch, length, -1)), keys, values


class ModernBertEncoderLayer(nn.Module):
    def __init__(self, config: ModernBertConfig, index: int) -> None:
        super().__init__()
        hidden, eps, bias = config.hidden_size, config.norm_eps, config.norm_bias
        # The first layer reads the embeddings' own norm.
        self.attn_norm: nn.Module = nn.Identity() if index == 0 else nn.LayerNorm(hidden, eps=eps, bias=bias)
        self.attn = ModernBertAttention(config)
        self.mlp_norm = nn.LayerNorm(hidden, eps=eps, bias=bias)
        self.mlp = ModernBertMLP(config)
        self.attention_type = config.layer_types[index]

    def forward(
        self,
        hidden: torch.Tensor,
        rotary: tuple[torch.Tensor, torch.Tensor],
        allowed: torch.Tensor,
        past: tuple[torch.Tensor, torch.Tensor] | None = None,
        at: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        attended, keys, values = self.attn(self.attn_norm(hidden), rotary, allowed, past, at)
        hidden = hidden + attended
        return hidden + self.mlp(self.mlp_norm(hidden)), keys, values


class ModernBertModel(nn.Module):
    def __init__(self, config: ModernBertConfig) -> None:
        super().__init__()
        self.config = config
        self.embeddings = ModernBertEmbeddings(config)
        layers = range(config.num_hidden_layers)
        self.layers = nn.ModuleList(ModernBertEncoderLayer(config, i) for i in layers)
        self.final_norm = nn.LayerNorm(config.hidden_size, eps=config.norm_eps, bias=config.norm_bias)
        self.rotary_emb = ModernBertRotaryEmbedding(config)

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        *,
        past: KeyValueCache | None = None,
        at: torch.Tensor | None = None,
        store: bool = False,
    ) -> tuple[torch.Tensor, KeyValueCache | None]:
        """(final hidden states (B, T, H), the cache with ``store``), as transformers' model output indexes
        its first item. ``past`` and ``at`` (B, T): a DualCache step (kv_cache.py): the new positions replace
        the cached canvas's slots ``at`` and attend over all of it."""
        batch, length = input_ids.shape
        hidden = self.embeddings(input_ids)
        # ModernBERT numbers positions 0..T-1 whatever the padding.
        if past is not None and at is not None:
            positions = past.positions.gather(1, at)
        else:
            assert past is None, "a bidirectional encoder's cache is replaced into, never appended to"
            positions = torch.arange(length, device=input_ids.device).expand(batch, -1)
        real = (
            torch.ones_like(input_ids, dtype=torch.bool) if attention_mask is None else attention_mask.bool()
        )
        key_positions, key_real = cached_keys(past, positions, real, at)
        full = key_real[:, None, None, :].expand(-1, 1, length, -1)  # (B, 1, T, S): padding keys masked
        distance = (positions[:, None, :, None] - key_positions[:, None, None, :]).abs()
        near = full & (distance <= self.config.sliding_window)  # local layers see a window only
        allowed = {"full_attention": full, "sliding_attention": near}
        rotary = {kind: self.rotary_emb(hidden, positions, kind) for kind in set(self.config.layer_types)}
        keys, values = [], []
        for index, layer in enumerate(self.layers):
            layer_past = None if past is None else (past.keys[index], past.values[index])
            kind = layer.attention_type
            hidden, k, v = layer(hidden, rotary[kind], allowed[kind], layer_past, at)
            keys.append(k)
            values.append(v)
        cache = KeyValueCache(tuple(keys), tuple(values), key_positions, key_real) if store else None
        return self.final_norm(hidden), cache


class ModernBertPredictionHead(nn.Module):
    def __init__(self, config: ModernBertConfig) -> None:
        super().__init__()
        self.dense = Linear(config.hidden_size, config.hidden_size, bias=config.classifier_bias)
        self.act = ACTIVATIONS[config.classifier_activation]
        self.norm = nn.LayerNorm(config.hidden_size, eps=config.norm_eps, bias=config.norm_bias)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.norm(self.act(self.dense(hidden)))


class MaskedLMOutput(NamedTuple):
    logits: torch.Tensor  # (B, T, V)


class ModernBertForMaskedLM(nn.Module):
    """Named as transformers' class, whose modules and weight names it has (see the module docstring)."""

    def __init__(self, config: ModernBertConfig) -> None:
        super().__init__()
        self.config = config
        self.model = ModernBertModel(config)
        self.head = ModernBertPredictionHead(config)
        self.decoder = Linear(config.hidden_size, config.vocab_size, bias=config.decoder_bias)

    def get_output_embeddings(self) -> nn.Linear:
        return self.decoder

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> MaskedLMOutput:
        hidden = self.model(input_ids, attention_mask)[0]
        return MaskedLMOutput(self.decoder(self.head(hidden)))


def load_modernbert(
    model_dir: Path, config: dict[str, Any], device: torch.device, dtype: torch.dtype
) -> tuple[ModernBertForMaskedLM, dict[str, list[str]]] | None:
    """The directory's masked LM and its load report (missing, mismatched and unexpected tensor names, as
    transformers' ``output_loading_info`` gives them); None when ``ModernBertConfig.from_json`` does not
    cover its config."""
    parsed = ModernBertConfig.from_json(config)
    if parsed is None:
        return None
    model = ModernBertForMaskedLM(parsed)  # uninitialised: every tensor comes from the checkpoint
    report = load_by_name(model, model_dir, "decoder.weight" if parsed.tie_word_embeddings else None)
    if report["missing_keys"] or report["mismatched_keys"]:
        return model, report  # checked_model refuses it by name
    if parsed.tie_word_embeddings:
        model.decoder.weight = model.model.embeddings.tok_embeddings.weight
    return model.to(device=device, dtype=dtype), report
