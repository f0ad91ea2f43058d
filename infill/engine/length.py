"""Variable span length: how long a canvas to decode a span on.

The model is trained to emit the middle followed by end_of_span up to the end of the canvas. Decoding on
the full ``max_tokens`` canvas lets confidence-first unmasking fill it with easy tail tokens and truncate
the middle, so one forward pass over the fully masked canvas estimates the length from the end_of_span
probabilities first, and the span is decoded on a canvas of that length plus a margin.
"""

from __future__ import annotations

import torch

from infill.engine.scoring import banned_token_ids
from infill.models.base import DenoisingModel, SpecialTokens

# Canvases this short are decoded whole: the span tail rule ends them early anyway, and an estimation
# pass would cost about as much as it saves.
CHEAP_CANVAS = 8
# A position more likely end_of_span than not is where the span is expected to end.
END_LIKELY = 0.5


def end_of_span_probabilities(
    model: DenoisingModel,
    ids: torch.Tensor,
    attention_mask: torch.Tensor,
    special: SpecialTokens,
) -> torch.Tensor:
    """P(end_of_span) at every position of ``ids (B, T)`` -> (B, T), banned ids excluded as when decoding."""
    with torch.inference_mode():
        logits = model.logits(ids, attention_mask)  # (B, T, V)
        logits[..., banned_token_ids(special, ids.device)] = float("-inf")
        return torch.softmax(logits, dim=-1)[..., special.end_of_span_id]


def estimate_span_length(end_probabilities: list[float], minimum: int = 0) -> int:
    """Tokens before the first position where end_of_span is likely (all of them when none is)."""
    for position, probability in enumerate(end_probabilities):
        if probability > END_LIKELY and position >= minimum:
            return position
    return len(end_probabilities)


def canvas_lengths(estimate: int, max_tokens: int) -> list[int]:
    """Canvas lengths to try, most promising first: the estimate plus a margin (an estimate from a fully
    masked canvas is rough), then the full budget, then wider and tighter guesses."""
    margin = max(2, estimate // 4)
    options = [estimate + margin, max_tokens, 2 * estimate + margin, max(1, estimate)]
    lengths: list[int] = []
    for length in options:
        length = min(max_tokens, length)
        if length not in lengths:
            lengths.append(length)
    return lengths
