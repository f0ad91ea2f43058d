"""The key/value cache the native backbones' forward passes take (qwen2.py, modernbert.py), one type for both
of its uses:

- appending (block diffusion's exact prefix cache, block_model.py): new positions follow the cached ones,
  and with ``store`` the cache comes back longer;
- replacing (Fast-dLLM's DualCache over a bidirectional canvas, engine/step_logits.py): the cache holds every
  position of the canvas as the last full pass saw it, new positions are written into their own slots
  (``at``) and attend over all of it, so only the block being decoded goes through the layers.

Shapes: per layer keys/values (B, kv heads, P, D) (keys after norm and RoPE); positions, real (B, P).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class KeyValueCache:
    """Keys and values of P positions per layer, their position ids and which of them are real tokens (None:
    all; padding keys of a cached canvas are never attended). Immutable: storing returns a new cache, so a
    caller may keep a prefix's cache and extend copies of it."""

    keys: tuple[torch.Tensor, ...]
    values: tuple[torch.Tensor, ...]
    positions: torch.Tensor
    real: torch.Tensor | None = None

    @property
    def length(self) -> int:
        return self.positions.shape[1]

    def key_real(self) -> torch.Tensor:
        """(B, P) bool: which cached positions may be attended."""
        return torch.ones_like(self.positions, dtype=torch.bool) if self.real is None else self.real

    def truncated(self, length: int) -> KeyValueCache:
        """The cache of the first ``length`` positions (a block-causal prefix's keys do not depend on what
        follows it)."""
        return KeyValueCache(
            tuple(k[:, :, :length] for k in self.keys),
            tuple(v[:, :, :length] for v in self.values),
            self.positions[:, :length],
            None if self.real is None else self.real[:, :length],
        )

    def rows(self, index: torch.Tensor) -> KeyValueCache:
        """The cache of the batch rows ``index`` (for decoding some rows on their own)."""
        return KeyValueCache(
            tuple(k[index] for k in self.keys),
            tuple(v[index] for v in self.values),
            self.positions[index],
            None if self.real is None else self.real[index],
        )

    def with_rows(self, index: torch.Tensor, part: KeyValueCache) -> KeyValueCache:
        """This cache with the batch rows ``index`` replaced by ``part`` (the cache of those rows)."""

        def put(mine: torch.Tensor, theirs: torch.Tensor) -> torch.Tensor:
            return mine.index_put((index,), theirs)

        return KeyValueCache(
            tuple(put(k, p) for k, p in zip(self.keys, part.keys, strict=True)),
            tuple(put(v, p) for v, p in zip(self.values, part.values, strict=True)),
            put(self.positions, part.positions),
            put(self.key_real(), part.key_real()),
        )

    def nbytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in (*self.keys, *self.values))


def layer_keys(cached: torch.Tensor | None, new: torch.Tensor, at: torch.Tensor | None) -> torch.Tensor:
    """A layer's keys (or values) attended over: the ``new`` (B, kv heads, T, D) alone, after ``cached``
    (B, kv heads, P, D), or written into ``cached`` at slots ``at`` (B, T) (a copy: the cache stays as it
    was)."""
    if cached is None:
        return new
    if at is None:
        return torch.cat([cached, new], dim=2)
    return cached.scatter(2, at[:, None, :, None].expand_as(new), new)


def attend(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    allowed: torch.Tensor,
    past: tuple[torch.Tensor, torch.Tensor] | None,
    at: torch.Tensor | None,
    scale: float,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Every native attention's core: the new keys and values (B, kv heads, T, D) joined to ``past``'s as
    ``layer_keys`` does, then scaled dot-product attention of ``q`` (B, heads, T, D) over the ``allowed``
    ones (grouped-query when there are fewer kv heads). Returns (B, heads, T, D) and the keys and values."""
    keys = layer_keys(None if past is None else past[0], k, at)
    values = layer_keys(None if past is None else past[1], v, at)
    gqa = q.shape[1] != keys.shape[1]
    out = F.scaled_dot_product_attention(q, keys, values, attn_mask=allowed, scale=scale, enable_gqa=gqa)
    return out, keys, values


def cached_keys(
    past: KeyValueCache | None,
    position_ids: torch.Tensor,
    real: torch.Tensor,
    at: torch.Tensor | None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, S) position ids and realness of every key the new positions (``position_ids``, ``real`` (B, T))
    attend to: themselves, after ``past``, or ``past``'s own (``at``: the new ones replace some of them)."""
    if past is None:
        return position_ids, real
    if at is not None:
        return past.positions, past.key_real()
    return torch.cat([past.positions, position_ids], dim=1), torch.cat([past.key_real(), real], dim=1)
