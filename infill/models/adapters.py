"""The forward pass the engine calls: per-position logits of a loaded transformers model, float32.

Loading (which classes, which weights, which special ids) lives in the family loaders (masked_lm.py,
dream.py, remote.py); this module only turns a loaded module into ``DenoisingModel.logits``.
"""

from __future__ import annotations

import torch
from transformers import PreTrainedModel


class MaskedLMAdapter:
    """``logits(input_ids (B, T), attention_mask (B, T), positions (B, K)) -> (B, K, V)`` float32, unshifted.

    Also serves remote-code models, which may return a plain tuple whose first item is the logits.
    """

    def __init__(self, model: PreTrainedModel) -> None:
        self.model = model

    def logits(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor, positions: torch.Tensor | None = None
    ) -> torch.Tensor:
        with torch.inference_mode():
            out = self.model(input_ids=input_ids, attention_mask=attention_mask)
        logits = getattr(out, "logits", None)
        if logits is None:
            logits = out[0]
        assert logits.shape[:2] == input_ids.shape, "the model must give one row of logits per position"
        # float32 so that softmax confidences are comparable across dtypes (bf16 rounds them coarsely).
        if positions is None:
            return logits.float()
        return gather_positions(logits, positions).float()


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

    def logits(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor, positions: torch.Tensor | None = None
    ) -> torch.Tensor:
        # Positions count real tokens only, so left and right padding give the same logits.
        position_ids = (attention_mask.long().cumsum(-1) - 1).clamp(min=0)
        with torch.inference_mode():
            raw = self.model(
                input_ids=input_ids,
                attention_mask=attention_mask,
                position_ids=position_ids,
                use_cache=False,
            ).logits  # (B, T, V): with shift, raw[:, i] predicts the next attended token
        if positions is None:
            positions = every_position(input_ids)
        if self.shift:
            positions = predecessor_index(attention_mask).gather(1, positions)
        return gather_positions(raw, positions).float()


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
