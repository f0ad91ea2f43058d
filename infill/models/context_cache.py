"""A context key/value cache across denoising steps (Fast-dLLM's DualCache), as manual layer loops over the
weights of transformers' own modules: ModernBERT masked LMs (transformers' or modernbert.py's, which has the
same modules) and Qwen2/LLaMA decoders made bidirectional.

A full pass computes every position and keeps each layer's keys and values (after RoPE). A cached pass
recomputes only the query positions (the block being decoded) layer by layer: their new keys and values are
written into the cache and their queries attend over all of it, so everything else is seen as it was at the
last full pass. Attention is bidirectional, so where the fresh entries sit in the cache does not matter;
RoPE uses each position's own position id.

Shapes: ids, attention_mask (B, T); query (B, M) positions; hidden (B, M, H); cache per layer (B, Hkv, T, D).
With the cache refreshed on the same ids, a cached pass gives the full pass's hidden states at the query
positions, within float tolerance (tests/test_context_cache.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F

# ModernBERT's RoPE, the same function as transformers' (whose module costs seconds to import).
from infill.models.modernbert import apply_rotary_pos_emb

# transformers' Qwen2/LLaMA RoPE (in the input dtype), from qwen2.py for the same reason.
from infill.models.qwen2 import apply_rotary_pos_emb as decoder_rope

if TYPE_CHECKING:
    from transformers import PreTrainedModel


@dataclass
class ContextCache:
    keys: list[torch.Tensor]  # per layer (B, Hkv, T, D), RoPE applied
    values: list[torch.Tensor]  # per layer (B, Hkv, T, D)

    def rows(self, index: torch.Tensor) -> ContextCache:
        """A copy of the cache of the batch rows ``index`` (for decoding some rows on their own)."""
        return ContextCache([k[index] for k in self.keys], [v[index] for v in self.values])

    def put_rows(self, index: torch.Tensor, part: ContextCache) -> None:
        """Write ``part`` (the cache of rows ``index``) back into this one."""
        for mine, theirs in zip(self.keys + self.values, part.keys + part.values, strict=True):
            mine[index] = theirs


def _attend(
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    allowed: torch.Tensor,
    scale: float,
) -> torch.Tensor:
    """(B, H, M, D) queries over (B, Hkv, T, D) keys where ``allowed (B, 1, M, T)`` -> (B, M, H * D)."""
    out = F.scaled_dot_product_attention(
        query, key, value, attn_mask=allowed, scale=scale, enable_gqa=key.shape[1] != query.shape[1]
    )
    return out.transpose(1, 2).flatten(2)


def _store(
    cache: ContextCache,
    building: bool,
    layer: int,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The layer's keys and values for all positions. ``building`` (a full pass: ``query`` is every position,
    in order): the fresh ones, appended to ``cache`` as the layer's; else the cache's, with the fresh ones
    written in at ``query (B, M)``."""
    if building:
        cache.keys.append(key)
        cache.values.append(value)
        return key, value
    index = query[:, None, :, None].expand_as(key)
    cache.keys[layer].scatter_(2, index, key)
    cache.values[layer].scatter_(2, index, value)
    return cache.keys[layer], cache.values[layer]


def real_token_positions(attention_mask: torch.Tensor) -> torch.Tensor:
    """(B, T) position ids that count real tokens only (left padding gets 0, right padding the last real
    token's), so that left and right padding give a decoder the same positions."""
    return (attention_mask.long().cumsum(-1) - 1).clamp(min=0)


def _key_padding(attention_mask: torch.Tensor, rows: int) -> torch.Tensor:
    """(B, 1, M, T) bool: every query may attend to every real (unpadded) key."""
    return attention_mask.bool()[:, None, None, :].expand(-1, 1, rows, -1)


def modernbert_hidden(
    model: PreTrainedModel,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    query: torch.Tensor,
    cache: ContextCache | None,
) -> tuple[torch.Tensor, ContextCache]:
    """Final hidden states (after final_norm) of a ModernBertForMaskedLM at ``query``; with ``cache`` None
    ``query`` must be every position in order (the full pass that builds the cache)."""
    backbone = model.model
    config = backbone.config
    # ModernBERT numbers positions 0..T-1 whatever the padding (its own forward does the same).
    hidden = backbone.embeddings(input_ids=input_ids.gather(1, query))
    padding = _key_padding(attention_mask, query.shape[1])
    keys = torch.arange(input_ids.shape[1], device=query.device)
    near = padding & ((query[:, None, :, None] - keys).abs() <= config.sliding_window)  # local layers
    rotary = {kind: backbone.rotary_emb(hidden, query, kind) for kind in set(config.layer_types)}
    building = cache is None  # the full pass: this call builds the cache
    cache = ContextCache([], []) if cache is None else cache
    head_dim = config.hidden_size // config.num_attention_heads
    for index, layer in enumerate(backbone.layers):
        attn = layer.attn
        qkv = attn.Wqkv(layer.attn_norm(hidden)).view(*hidden.shape[:2], 3, -1, head_dim)
        q, k, v = (part.transpose(1, 2) for part in qkv.unbind(dim=2))  # (B, H, M, D)
        cos, sin = rotary[layer.attention_type]
        q, k = apply_rotary_pos_emb(q, k, cos, sin, unsqueeze_dim=1)
        k, v = _store(cache, building, index, query, k, v)
        allowed = near if layer.attention_type == "sliding_attention" else padding
        hidden = hidden + attn.Wo(_attend(q, k, v, allowed, head_dim**-0.5))
        hidden = hidden + layer.mlp(layer.mlp_norm(hidden))
    return backbone.final_norm(hidden), cache


def decoder_hidden(
    model: PreTrainedModel,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    query: torch.Tensor,
    cache: ContextCache | None,
) -> tuple[torch.Tensor, ContextCache]:
    """Final hidden states (after the final norm) of a bidirectional Qwen2/LLaMA ForCausalLM at ``query``;
    with ``cache`` None ``query`` must be every position in order (the full pass that builds the cache)."""
    backbone = model.model
    position_ids = real_token_positions(attention_mask).gather(1, query)
    hidden = backbone.embed_tokens(input_ids.gather(1, query))
    cos, sin = backbone.rotary_emb(hidden, position_ids)
    padding = _key_padding(attention_mask, query.shape[1])
    building = cache is None  # the full pass: this call builds the cache
    cache = ContextCache([], []) if cache is None else cache
    for index, layer in enumerate(backbone.layers):
        attn = layer.self_attn
        normed = layer.input_layernorm(hidden)
        shape = (*hidden.shape[:2], -1, attn.head_dim)
        q = attn.q_proj(normed).view(shape).transpose(1, 2)
        k = attn.k_proj(normed).view(shape).transpose(1, 2)
        v = attn.v_proj(normed).view(shape).transpose(1, 2)
        q, k = decoder_rope(q, k, cos, sin)
        k, v = _store(cache, building, index, query, k, v)
        hidden = hidden + attn.o_proj(_attend(q, k, v, padding, attn.scaling))
        hidden = hidden + layer.mlp(layer.post_attention_layernorm(hidden))
    return backbone.norm(hidden), cache


def cacheable(model: PreTrainedModel) -> bool:
    """Whether the manual layer loops above cover this model (else the adapter runs without a cache)."""
    name = type(model).__name__
    config = model.config
    if name == "ModernBertForMaskedLM":
        return True
    if name in ("Qwen2ForCausalLM", "LlamaForCausalLM"):
        # Sliding-window decoders and Qwen3-style per-head norms would need more than this loop does.
        sliding = getattr(config, "use_sliding_window", False)
        return not sliding and not hasattr(model.model.layers[0].self_attn, "q_norm")
    return False
