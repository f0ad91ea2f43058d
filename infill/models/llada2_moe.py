"""LLaDA2.x (inclusionAI's LLaDA2.0-mini / -flash, ``LLaDA2MoeModelLM``) in plain torch, for inference.

A block-diffusion model on Ling 2.0's mixture-of-experts decoder (BailingMoeV2), written from the release's
``modeling_llada2_moe.py`` (read, never imported). What differs from qwen2.py's decoder, and how it is
computed here exactly as theirs:

- attention: one fused ``query_key_value`` projection split into query, key and value heads (grouped-query),
  an RMSNorm over each query and key head (``query_layernorm``/``key_layernorm``, before RoPE), RoPE on the
  first ``head_dim * partial_rotary_factor`` dimensions of each head only (the rest pass through), output
  projection ``dense``;
- feed-forward: the first ``first_k_dense_replace`` layers a SwiGLU MLP; the others a mixture of experts:
  a router (``gate``) in float32 whatever the model's dtype, sigmoid scores; experts are *selected* on the
  scores plus ``expert_bias`` (a checkpoint buffer), group-limited: the ``n_group`` groups ranked by the sum
  of their two best biased scores, only the best ``topk_group`` groups' experts eligible, the
  ``num_experts_per_tok`` best of those taken; the selected experts are *weighted* by their unbiased scores,
  normalised to sum 1 (when more than one is taken; + 1e-20) and times ``routed_scaling_factor``. Each
  expert is a SwiGLU MLP of ``moe_intermediate_size``; their weighted sum is taken in float32 and cast back,
  then the shared expert (one MLP of ``moe_intermediate_size * num_shared_experts``) is added. The release's
  ``norm_topk_prob`` key is not read by their code (it always normalises), nor here.

The trunk's forward pass (mask, cache, layer loop) is qwen2.py's ``Qwen2Model.forward``, inherited: a layer
here takes and returns what a Qwen2 layer does, so the block-causal mask, the optional ``KeyValueCache`` and
the block decoding adapter (block_model.py) are the same code for every block-diffusion family. Module and
attribute names are the checkpoint's (``model.layers.N.attention.query_key_value``,
``mlp.gate.expert_bias``, ``mlp.experts.E.gate_proj``...), except the token embedding, which the family's
weight map renames from ``model.word_embeddings`` to qwen2.py's ``model.embed_tokens``.
tests/test_llada2.py checks the logits and greedy block generation against an implementation written in the
test from the authors' code.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from infill.errors import ModelLoadError
from infill.models.kv_cache import attend
from infill.models.modernbert import Embedding, Linear, rotate_half
from infill.models.qwen2 import (
    Qwen2DecoderLayer,
    Qwen2ForCausalLM,
    Qwen2Model,
    Qwen2RMSNorm,
    Qwen2RotaryEmbedding,
)
from infill.models.weights import load_by_name

# configuration_llada2_moe.py's defaults for the keys the forward pass reads (the release sets them all).
_DEFAULTS: dict[str, Any] = {
    "rms_norm_eps": 1e-6,
    "rope_theta": 600000.0,
    "partial_rotary_factor": 0.5,
    "first_k_dense_replace": 0,
    "num_shared_experts": None,
    "n_group": 1,
    "topk_group": 1,
    "routed_scaling_factor": 1.0,
    "use_qkv_bias": False,
    "use_bias": False,
    "use_qk_norm": True,
    "tie_word_embeddings": False,
    "max_position_embeddings": 32768,
}
# Settings whose other values the release's code computes differently (or not at all).
_REQUIRED: dict[str, Any] = {"hidden_act": "silu", "score_function": "sigmoid", "rope_scaling": None}


@dataclass(frozen=True)
class LLaDA2MoeConfig:
    vocab_size: int
    hidden_size: int
    intermediate_size: int  # the dense layers' MLP
    num_hidden_layers: int
    num_attention_heads: int
    num_key_value_heads: int
    head_dim: int
    rotary_dim: int  # head_dim * partial_rotary_factor: the leading dimensions RoPE rotates
    rope_theta: float
    max_position_embeddings: int
    rms_norm_eps: float
    tie_word_embeddings: bool
    qkv_bias: bool
    dense_bias: bool
    qk_norm: bool
    first_k_dense_replace: int
    num_experts: int | None  # None: every layer dense
    num_experts_per_tok: int
    moe_intermediate_size: int
    num_shared_experts: int | None
    n_group: int
    topk_group: int
    routed_scaling_factor: float

    @classmethod
    def from_json(cls, config: dict[str, Any], what: str = "LLaDA2 model") -> LLaDA2MoeConfig:
        """The release's config.json keys; a one-line ModelLoadError for anything the forward pass here
        does not compute as the release's code does."""
        merged = {**_DEFAULTS, **{k: v for k, v in config.items() if v is not None or k == "rope_scaling"}}
        unsupported = {k: merged.get(k, v) for k, v in _REQUIRED.items() if merged.get(k, v) != v}
        if config.get("quantization_config"):
            unsupported["quantization_config"] = "..."
        if unsupported:
            details = ", ".join(f"{k}={v!r}" for k, v in unsupported.items())
            raise ModelLoadError(f"This {what} variant is not one infill runs natively ({details})")
        try:
            heads = int(merged["num_attention_heads"])
            head_dim = int(merged.get("head_dim") or int(merged["hidden_size"]) // heads)
            experts = merged.get("num_experts")
            parsed = cls(
                vocab_size=int(merged["vocab_size"]),
                hidden_size=int(merged["hidden_size"]),
                intermediate_size=int(merged["intermediate_size"]),
                num_hidden_layers=int(merged["num_hidden_layers"]),
                num_attention_heads=heads,
                num_key_value_heads=int(merged.get("num_key_value_heads") or heads),
                head_dim=head_dim,
                # transformers' default RoPE init: int(head_dim * partial_rotary_factor)
                rotary_dim=int(head_dim * float(merged["partial_rotary_factor"])),
                rope_theta=float(merged["rope_theta"]),
                max_position_embeddings=int(merged["max_position_embeddings"]),
                rms_norm_eps=float(merged["rms_norm_eps"]),
                tie_word_embeddings=bool(merged["tie_word_embeddings"]),
                qkv_bias=bool(merged["use_qkv_bias"]),
                dense_bias=bool(merged["use_bias"]),
                qk_norm=bool(merged["use_qk_norm"]),
                first_k_dense_replace=int(merged["first_k_dense_replace"]),
                num_experts=None if experts is None else int(experts),
                num_experts_per_tok=int(merged.get("num_experts_per_tok") or 1),
                moe_intermediate_size=int(merged.get("moe_intermediate_size") or 0),
                num_shared_experts=(
                    None if merged["num_shared_experts"] is None else int(merged["num_shared_experts"])
                ),
                n_group=int(merged["n_group"]),
                topk_group=int(merged["topk_group"]),
                routed_scaling_factor=float(merged["routed_scaling_factor"]),
            )
        except (KeyError, TypeError, ValueError, ZeroDivisionError) as exc:
            raise ModelLoadError(f"config.json of this {what} is not a LLaDA2 MoE config: {exc}") from exc
        problem = parsed.problem()
        if problem:
            raise ModelLoadError(f"config.json of this {what} is not one infill runs natively: {problem}")
        return parsed

    def problem(self) -> str | None:
        """Why the sizes cannot make a model (None when they can)."""
        if self.num_attention_heads % self.num_key_value_heads:
            return "num_attention_heads is not a multiple of num_key_value_heads"
        if self.rotary_dim % 2 or not 0 < self.rotary_dim <= self.head_dim:
            return f"a rotary dimension of {self.rotary_dim} in heads of {self.head_dim}"
        if self.num_experts is None:
            return None
        per_group, remainder = divmod(self.num_experts, self.n_group)
        if remainder or per_group < 2:  # the router ranks a group by its two best experts
            return f"{self.num_experts} experts in {self.n_group} groups"
        if not 0 < self.topk_group <= self.n_group:
            return f"topk_group {self.topk_group} of {self.n_group} groups"
        if not 0 < self.num_experts_per_tok <= self.topk_group * per_group:
            return f"{self.num_experts_per_tok} experts per token from {self.topk_group * per_group} eligible"
        if self.moe_intermediate_size <= 0:
            return "no moe_intermediate_size"
        return None


class LLaDA2MoeMLP(nn.Module):
    """SwiGLU: a dense layer's MLP, each expert and the shared expert."""

    def __init__(self, hidden_size: int, intermediate_size: int) -> None:
        super().__init__()
        self.gate_proj = Linear(hidden_size, intermediate_size, bias=False)
        self.up_proj = Linear(hidden_size, intermediate_size, bias=False)
        self.down_proj = Linear(intermediate_size, hidden_size, bias=False)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.down_proj(F.silu(self.gate_proj(hidden)) * self.up_proj(hidden))


class LLaDA2MoeGate(nn.Module):
    """The router: which experts each token goes to, and their weights (see the module docstring)."""

    def __init__(self, config: LLaDA2MoeConfig) -> None:
        super().__init__()
        assert config.num_experts is not None
        self.top_k = config.num_experts_per_tok
        self.n_group, self.topk_group = config.n_group, config.topk_group
        self.routed_scaling_factor = config.routed_scaling_factor
        self.weight = nn.Parameter(torch.empty(config.num_experts, config.hidden_size))
        self.register_buffer("expert_bias", torch.empty(config.num_experts))  # a checkpoint tensor

    def forward(self, hidden: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(N, k) expert ids and (N, k) float32 weights of the (N, H) tokens."""
        scores = torch.sigmoid(F.linear(hidden.float(), self.weight.float()))
        biased = scores + self.expert_bias  # for choosing experts only
        tokens = biased.shape[0]
        grouped = biased.view(tokens, self.n_group, -1)
        group_scores = grouped.topk(2, dim=-1).values.sum(-1)  # (N, groups)
        groups = group_scores.topk(self.topk_group, dim=-1, sorted=False).indices
        eligible = torch.zeros_like(group_scores, dtype=torch.bool).scatter(1, groups, True)
        eligible = eligible[:, :, None].expand_as(grouped).reshape(tokens, -1)
        chosen = biased.masked_fill(~eligible, float("-inf")).topk(self.top_k, dim=-1).indices
        weights = scores.gather(1, chosen)
        if self.top_k > 1:
            weights = weights / (weights.sum(-1, keepdim=True) + 1e-20)
        return chosen, weights * self.routed_scaling_factor


class LLaDA2MoeSparseMoeBlock(nn.Module):
    def __init__(self, config: LLaDA2MoeConfig) -> None:
        super().__init__()
        assert config.num_experts is not None
        size, inner = config.hidden_size, config.moe_intermediate_size
        self.gate = LLaDA2MoeGate(config)
        self.experts = nn.ModuleList(LLaDA2MoeMLP(size, inner) for _ in range(config.num_experts))
        self.shared_experts = (
            LLaDA2MoeMLP(size, inner * config.num_shared_experts) if config.num_shared_experts else None
        )

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        flat = hidden.reshape(-1, hidden.shape[-1])
        chosen, weights = self.gate(flat)
        mixed = torch.zeros(flat.shape, dtype=torch.float32, device=flat.device)
        # Only the experts some token chose run, each on its tokens (a token takes an expert at most once).
        for expert in chosen.unique().tolist():
            rows, slots = (chosen == expert).nonzero(as_tuple=True)
            out = self.experts[expert](flat[rows]).float() * weights[rows, slots, None]
            mixed.index_add_(0, rows, out)
        mixed = mixed.to(hidden.dtype).view(hidden.shape)
        return mixed if self.shared_experts is None else mixed + self.shared_experts(hidden)


class LLaDA2MoeAttention(nn.Module):
    def __init__(self, config: LLaDA2MoeConfig) -> None:
        super().__init__()
        self.heads, self.kv_heads = config.num_attention_heads, config.num_key_value_heads
        self.head_dim, self.rotary_dim = config.head_dim, config.rotary_dim
        width = (self.heads + 2 * self.kv_heads) * self.head_dim
        self.query_key_value = Linear(config.hidden_size, width, bias=config.qkv_bias)
        self.dense = Linear(self.heads * self.head_dim, config.hidden_size, bias=config.dense_bias)
        if config.qk_norm:
            self.query_layernorm = Qwen2RMSNorm(self.head_dim, config.rms_norm_eps)
            self.key_layernorm = Qwen2RMSNorm(self.head_dim, config.rms_norm_eps)

    def _rope(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        rotated, passed = x[..., : self.rotary_dim], x[..., self.rotary_dim :]
        return torch.cat([rotated * cos + rotate_half(rotated) * sin, passed], dim=-1)

    def forward(
        self,
        hidden: torch.Tensor,
        rotary: tuple[torch.Tensor, torch.Tensor],
        allowed: torch.Tensor,
        past: tuple[torch.Tensor, torch.Tensor] | None = None,
        at: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """As qwen2.Qwen2Attention.forward (the same mask and cache semantics)."""
        batch, length = hidden.shape[:2]
        qkv = self.query_key_value(hidden).view(batch, length, -1, self.head_dim)
        q, k, v = qkv.split([self.heads, self.kv_heads, self.kv_heads], dim=2)
        if hasattr(self, "query_layernorm"):
            q, k = self.query_layernorm(q), self.key_layernorm(k)
        cos, sin = (t[:, None] for t in rotary)  # (B, 1, T, rotary_dim)
        q, k = self._rope(q.transpose(1, 2), cos, sin), self._rope(k.transpose(1, 2), cos, sin)
        out, keys, values = attend(q, k, v.transpose(1, 2), allowed, past, at, self.head_dim**-0.5)
        return self.dense(out.transpose(1, 2).flatten(2)), keys, values


class LLaDA2MoeDecoderLayer(Qwen2DecoderLayer):
    """Qwen2's pre-norm layer (its forward), with Ling 2.0's attention and, past the dense layers, MoE."""

    attention_name = "attention"

    def __init__(self, config: LLaDA2MoeConfig, index: int) -> None:
        nn.Module.__init__(self)
        self.attention = LLaDA2MoeAttention(config)
        sparse = config.num_experts is not None and index >= config.first_k_dense_replace
        self.mlp: nn.Module = (
            LLaDA2MoeSparseMoeBlock(config)
            if sparse
            else LLaDA2MoeMLP(config.hidden_size, config.intermediate_size)
        )
        self.input_layernorm = Qwen2RMSNorm(config.hidden_size, config.rms_norm_eps)
        self.post_attention_layernorm = Qwen2RMSNorm(config.hidden_size, config.rms_norm_eps)


class LLaDA2MoeRotaryEmbedding(Qwen2RotaryEmbedding):
    """Qwen2's cos/sin over the rotary dimensions only (partial_rotary_factor)."""

    def __init__(self, config: LLaDA2MoeConfig) -> None:
        nn.Module.__init__(self)
        dim = config.rotary_dim
        self.inv_freq = 1.0 / (config.rope_theta ** (torch.arange(0, dim, 2, dtype=torch.float32) / dim))
        self._on_device = {}


class LLaDA2MoeModel(Qwen2Model):
    """The trunk; ``forward`` is Qwen2Model's (block-causal mask, optional key/value cache)."""

    def __init__(self, config: LLaDA2MoeConfig) -> None:
        nn.Module.__init__(self)  # not Qwen2Model's: other layers
        self.config = config  # type: ignore[assignment]
        self.embed_tokens = Embedding(config.vocab_size, config.hidden_size)
        self.layers = nn.ModuleList(LLaDA2MoeDecoderLayer(config, i) for i in range(config.num_hidden_layers))
        self.norm = Qwen2RMSNorm(config.hidden_size, config.rms_norm_eps)
        self.rotary_emb = LLaDA2MoeRotaryEmbedding(config)


class LLaDA2MoeModelLM(Qwen2ForCausalLM):
    """Named as the release's class; ``forward`` is Qwen2ForCausalLM's (unshifted logits)."""

    def __init__(self, config: LLaDA2MoeConfig) -> None:
        nn.Module.__init__(self)
        self.config = config  # type: ignore[assignment]
        self.model = LLaDA2MoeModel(config)
        self.lm_head = Linear(config.hidden_size, config.vocab_size, bias=False)


def load_llada2_moe(
    model_dir: Path,
    config: dict[str, Any],
    device: torch.device,
    dtype: torch.dtype,
    *,
    weight_names: tuple[tuple[str, str], ...] = (),
    what: str = "llada2 model",
) -> tuple[LLaDA2MoeModelLM, dict[str, list[str]]]:
    """The directory's model and its load report (as qwen2.load_qwen2's); ``weight_names``: the family's
    renames of checkpoint tensors (the embedding's)."""
    parsed = LLaDA2MoeConfig.from_json(config, what)
    model = LLaDA2MoeModelLM(parsed)
    tied_head = "lm_head.weight" if parsed.tie_word_embeddings else None
    report = load_by_name(model, model_dir, tied_head, weight_names, what)
    if report["missing_keys"] or report["mismatched_keys"]:
        return model, report  # checked_model refuses it by name
    if parsed.tie_word_embeddings:
        model.lm_head.weight = model.model.embed_tokens.weight
    return model.to(device=device, dtype=dtype), report
