"""The model call of one denoising step: a full forward pass, or Fast-dLLM's DualCache where the model has a
context key/value cache (``caches_context``, see infill/models/adapters.py) and ``cache_refresh`` > 0.

With the cache, a row gets a full pass (which rebuilds its cache) when it starts a new block, on the first
step, and every ``cache_refresh`` steps; in between only the positions asked about are recomputed,
attending to the cached keys and values of everything else, which are as they were at the last full pass
(so tokens committed outside the block since then, e.g. a span tail, are seen as masks until the next
refresh). ``cache_refresh`` 1 makes every step a full pass.
"""

from __future__ import annotations

from typing import Any

import torch

from infill.models.base import DenoisingModel
from infill.models.kv_cache import KeyValueCache


class StepLogits:
    def __init__(self, model: DenoisingModel, cache_refresh: int) -> None:
        self.model = model
        self.cache_refresh = cache_refresh if getattr(model, "caches_context", False) else 0
        self._cache: KeyValueCache | None = None
        self._since_refresh: list[int] = []  # per row: steps since its last full pass

    def keep_rows(self, kept: list[int], index: torch.Tensor) -> None:
        """Keep only the batch rows ``kept`` (``index`` on the device), each on its own refresh schedule."""
        self._since_refresh = [self._since_refresh[row] for row in kept] if self._since_refresh else []
        if self._cache is not None:
            self._cache = self._cache.rows(index)

    def __call__(
        self, ids: torch.Tensor, attention_mask: torch.Tensor, positions: torch.Tensor, new_block: list[bool]
    ) -> torch.Tensor:
        """Logits (B, W, V) at ``positions (B, W)`` of ``ids (B, T)``; ``new_block[b]``: row b's positions are
        a new block since the last call.

        Each row is refreshed on its own schedule, as if it were decoded alone: a step where only some rows
        refresh runs a full pass over those and a cached pass over the others, so what a row decodes does not
        depend on what it is batched with.
        """
        if not self.cache_refresh:
            return self.model.logits(ids, attention_mask, positions)
        model: Any = self.model
        if self._cache is None:
            self._since_refresh = [self.cache_refresh] * len(new_block)
        refresh = [
            moved or since >= self.cache_refresh
            for moved, since in zip(new_block, self._since_refresh, strict=True)
        ]
        self._since_refresh = [
            1 if fresh else since + 1 for fresh, since in zip(refresh, self._since_refresh, strict=True)
        ]
        if all(refresh) or not any(refresh):
            logits, self._cache = model.logits_with_cache(
                ids, attention_mask, positions, None if all(refresh) else self._cache
            )
            return logits
        assert self._cache is not None
        fresh = torch.tensor([row for row, r in enumerate(refresh) if r], device=ids.device)
        kept = torch.tensor([row for row, r in enumerate(refresh) if not r], device=ids.device)
        fresh_logits, fresh_cache = model.logits_with_cache(
            ids[fresh], attention_mask[fresh], positions[fresh], None
        )
        kept_logits, kept_cache = model.logits_with_cache(
            ids[kept], attention_mask[kept], positions[kept], self._cache.rows(kept)
        )
        self._cache = self._cache.with_rows(fresh, fresh_cache).with_rows(kept, kept_cache)
        logits = fresh_logits.new_empty((len(refresh), *fresh_logits.shape[1:]))
        logits[fresh], logits[kept] = fresh_logits, kept_logits
        return logits
