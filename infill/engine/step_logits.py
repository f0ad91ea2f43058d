"""The model call of one denoising step: a full forward pass, or Fast-dLLM's DualCache where the model has a
context key/value cache (``caches_context``, see infill/models/context_cache.py) and ``cache_refresh`` > 0.

With the cache, a step is a full pass (which rebuilds the cache) when any row starts a new block, on the
first step, and every ``cache_refresh`` steps; in between only the positions asked about are recomputed,
attending to the cached keys and values of everything else, which are as they were at the last full pass
(so tokens committed outside the block since then, e.g. a span tail, are seen as masks until the next
refresh). ``cache_refresh`` 1 makes every step a full pass.
"""

from __future__ import annotations

import torch

from infill.models.base import DenoisingModel


class StepLogits:
    def __init__(self, model: DenoisingModel, cache_refresh: int) -> None:
        self.model = model
        self.cache_refresh = cache_refresh if getattr(model, "caches_context", False) else 0
        self._cache: object | None = None
        self._since_refresh = 0

    def __call__(
        self, ids: torch.Tensor, attention_mask: torch.Tensor, positions: torch.Tensor, new_block: bool
    ) -> torch.Tensor:
        """Logits (B, W, V) at ``positions (B, W)`` of ``ids (B, T)``; ``new_block``: some row's positions
        are a new block since the last call."""
        if not self.cache_refresh:
            return self.model.logits(ids, attention_mask, positions)
        if new_block or self._since_refresh >= self.cache_refresh:
            self._cache, self._since_refresh = None, 0
        logits, self._cache = self.model.logits_with_cache(  # type: ignore[attr-defined]
            ids, attention_mask, positions, self._cache
        )
        self._since_refresh += 1
        return logits
