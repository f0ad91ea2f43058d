"""The forward pass the engine calls: logits of a loaded transformers model at chosen positions, float32.

Loading (which classes, which weights, which special ids) lives in the family loaders; this module only turns
a loaded module into ``DenoisingModel.logits``. The backbone runs over the whole canvas, the LM head only on
the positions asked for: for a 152k vocabulary the head over every position would be the biggest tensor of a
pass.

Adapters of infill's own modules (modernbert.py, qwen2.py) also offer ``logits_with_cache``, Fast-dLLM's
DualCache (engine/step_logits.py): a full pass keeps every layer's keys and values of the canvas; a cached
pass runs only the block being decoded through the module's own forward, its keys and values written into
their slots of that cache (kv_cache.py) and its queries attending over all of it, so everything else is seen
as it was at the last full pass. With the cache refreshed on the same ids a cached pass gives the full pass's
logits within float tolerance (tests/test_context_cache.py). A model loaded through transformers' classes
(a config the native modules do not cover) runs without the cache.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:  # importing any transformers model class costs seconds: only types here
    from transformers import PreTrainedModel

from infill.models.families import DECODER_LAYOUT, module_layout
from infill.models.kv_cache import KeyValueCache
from infill.models.modernbert import ModernBertForMaskedLM
from infill.models.qwen2 import Qwen2ForCausalLM


class MaskedLMAdapter:
    """``logits(input_ids (B, T), attention_mask (B, T), positions (B, K)) -> (B, K, V)`` float32, unshifted.

    Also serves remote-code models, which may return a plain tuple whose first item is the logits.
    """

    def __init__(self, model: PreTrainedModel) -> None:
        self.model = model
        # Trunk and head modules of the class (families.MODULE_LAYOUTS); None: run whole and gather.
        layout = module_layout(model)
        self._backbone = getattr(model, layout.backbone) if layout else None
        self._head = [getattr(model, name) for name in layout.head] if layout else []
        self.caches_context = isinstance(model, ModernBertForMaskedLM)

    def logits(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor, positions: torch.Tensor | None = None
    ) -> torch.Tensor:
        with torch.inference_mode():
            if positions is not None and self._backbone is not None:
                hidden = self._backbone(input_ids=input_ids, attention_mask=attention_mask)[0]  # (B, T, H)
                return _apply(self._head, gather_positions(hidden, positions))
            out = self.model(input_ids=input_ids, attention_mask=attention_mask)
        logits = getattr(out, "logits", None)
        if logits is None:
            logits = out[0]
        assert logits.shape[:2] == input_ids.shape, "the model must give one row of logits per position"
        # float32 so that softmax confidences are comparable across dtypes (bf16 rounds them coarsely).
        return (logits if positions is None else gather_positions(logits, positions)).float()

    def logits_with_cache(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        positions: torch.Tensor,
        cache: KeyValueCache | None,
    ) -> tuple[torch.Tensor, KeyValueCache]:
        """Logits at ``positions (B, K)`` and the context cache: a full pass building it when ``cache`` is
        None, else only ``positions`` recomputed against it. Needs ``caches_context``."""
        assert self.caches_context, "only infill's own modules take a cache"
        with torch.inference_mode():
            if cache is None:
                hidden, cache = self.model.model(input_ids, attention_mask, store=True)
                hidden = gather_positions(hidden, positions)
            else:
                hidden, cache = self.model.model(
                    input_ids.gather(1, positions), past=cache, at=positions, store=True
                )
            assert cache is not None
            return _apply(self._head, hidden), cache


class DecoderAdapter:
    """A decoder-shaped model (Qwen2, LLaMA...) run with bidirectional attention.

    ``logits(input_ids (B, T), attention_mask (B, T), positions (B, K)) -> (B, K, V)`` float32. With
    ``shift`` (Dream, DiffuCoder: the hidden state at i-1 predicts the token at i) the rows are realigned
    so that the logits for position i are the distribution of the token AT i, taken from the previous
    attended position (padding skipped); the first real position has no predecessor and gets its own raw
    logits (what Dream's own sampler does). That row is not a real prediction: keep position 0 of a canvas
    non-editable.
    """

    def __init__(self, model: PreTrainedModel, *, shift: bool = True) -> None:
        self.model = model
        self.shift = shift
        self.caches_context = isinstance(model, Qwen2ForCausalLM)

    def logits(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor, positions: torch.Tensor | None = None
    ) -> torch.Tensor:
        position_ids = real_token_positions(attention_mask)
        rows = self._hidden_rows(
            attention_mask, every_position(input_ids) if positions is None else positions
        )
        with torch.inference_mode():
            hidden = getattr(self.model, DECODER_LAYOUT.backbone)(
                input_ids=input_ids,
                attention_mask=attention_mask,
                position_ids=position_ids,
                use_cache=False,
            ).last_hidden_state  # (B, T, H): with shift, hidden[:, i] predicts the next attended token
            return self._head(gather_positions(hidden, rows))

    def logits_with_cache(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        positions: torch.Tensor,
        cache: KeyValueCache | None,
    ) -> tuple[torch.Tensor, KeyValueCache]:
        """As MaskedLMAdapter.logits_with_cache. With ``shift`` a cached pass recomputes each position's
        predecessor too: its hidden state gives the logits, and its keys see the block's new tokens."""
        assert self.caches_context, "only infill's own modules take a cache"
        rows = self._hidden_rows(attention_mask, positions)  # (B, K) where the logits come from
        backbone = getattr(self.model, DECODER_LAYOUT.backbone)
        with torch.inference_mode():
            if cache is None:
                position_ids = real_token_positions(attention_mask)
                hidden, cache = backbone(input_ids, attention_mask, position_ids, store=True)
                assert cache is not None
                return self._head(gather_positions(hidden, rows)), cache
            query = torch.cat([rows, positions], dim=1) if self.shift else positions
            hidden, cache = backbone(input_ids.gather(1, query), past=cache, at=query, store=True)
            assert cache is not None
            return self._head(hidden[:, : rows.shape[1]]), cache

    def _head(self, hidden: torch.Tensor) -> torch.Tensor:
        return _apply([getattr(self.model, name) for name in DECODER_LAYOUT.head], hidden)

    def _hidden_rows(self, attention_mask: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        """(B, K) positions whose hidden states give the logits of ``positions``."""
        return predecessor_index(attention_mask).gather(1, positions) if self.shift else positions


def _apply(modules: list[Callable[[torch.Tensor], torch.Tensor]], hidden: torch.Tensor) -> torch.Tensor:
    for module in modules:
        hidden = module(hidden)
    return hidden.float()


def real_token_positions(attention_mask: torch.Tensor) -> torch.Tensor:
    """(B, T) position ids that count real tokens only (left padding gets 0, right padding the last real
    token's), so that left and right padding give a decoder the same positions."""
    return (attention_mask.long().cumsum(-1) - 1).clamp(min=0)


def every_position(input_ids: torch.Tensor) -> torch.Tensor:
    """(B, T) positions 0..T-1 of every row: what ``positions=None`` means (tests and tools, not requests)."""
    return torch.arange(input_ids.shape[1], device=input_ids.device).expand_as(input_ids)


def gather_positions(values: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
    """``values (B, T, D)`` at ``positions (B, K)`` -> (B, K, D)."""
    return values.gather(1, positions.unsqueeze(-1).expand(-1, -1, values.shape[-1]))


def parameter_count(model: object) -> int | None:
    """Parameters of the torch module behind an adapter (or a wrapper of one); None when there is none."""
    for _ in range(4):  # adapter -> module, or a test's recording wrapper -> adapter -> module
        if isinstance(model, torch.nn.Module):
            return sum(parameter.numel() for parameter in model.parameters())
        model = getattr(model, "model", None)
    return None


def predecessor_index(attention_mask: torch.Tensor) -> torch.Tensor:
    """(B, T) index of the previous attended position, or the position itself when it has none.

    With right padding this is ``[0, 0, 1, 2, ...]``; with left padding the first real token maps to itself
    instead of to a padding row.
    """
    seq = attention_mask.shape[1]
    positions = torch.arange(seq, device=attention_mask.device).expand_as(attention_mask)
    attended = torch.where(attention_mask.bool(), positions, torch.full_like(positions, -1))
    before = torch.cat([torch.full_like(attended[:, :1], -1), attended[:, :-1]], dim=1).cummax(dim=1).values
    return torch.where(before >= 0, before, positions)
