"""Variable span length: how long a canvas to decode a span on.

The model is trained on canvases of the middle followed by a few end_of_span tokens (training/objective.py:
at most about as many as the middle is long, plus 4), so a canvas much longer than the span is out of
distribution, and one shorter than the span truncates it. Decoding on the full ``max_tokens`` canvas lets
confidence-first unmasking fill it with easy tail tokens and squeeze or stretch the middle.

So the engine first runs one batched forward pass over fully masked canvases of a doubling ladder of
lengths up to the budget (the full canvas included) and reads, for each, where end_of_span becomes likely.
The shortest canvas the span is expected to end inside is the one whose length is in the training range
for that span; the span is then decoded on the estimated length plus a margin.
"""

from __future__ import annotations

import math

import torch

from infill.engine.scoring import banned_token_ids
from infill.models.base import DenoisingModel, SpecialTokens

# Canvases this short are decoded whole: the span tail rule ends them early, and an estimation pass would
# cost about as much as it saves. Also the first rung of the ladder.
CHEAP_CANVAS = 8
# A position more likely end_of_span than not is where the span is expected to end.
END_LIKELY = 0.5


def length_ladder(budget: int) -> list[int]:
    """Canvas lengths the estimation pass tries: CHEAP_CANVAS, doubling, and the budget itself."""
    ladder = []
    length = CHEAP_CANVAS
    while length < budget:
        ladder.append(length)
        length *= 2
    return [*ladder, budget]


def end_of_span_probabilities(
    model: DenoisingModel,
    ids: torch.Tensor,
    attention_mask: torch.Tensor,
    special: SpecialTokens,
) -> torch.Tensor:
    """P(end_of_span) at every position of ``ids (B, T)`` -> (B, T), banned ids excluded as when decoding."""
    with torch.inference_mode():
        logits = model.logits(ids, attention_mask).float()  # (B, T, V)
        logits[..., banned_token_ids(special, ids.device)] = float("-inf")
        return torch.softmax(logits, dim=-1)[..., special.end_of_span_id]


def estimate_span_length(end_probabilities: list[float], minimum: int = 0) -> int:
    """Tokens before the first position where end_of_span is likely (all of them when none is)."""
    for position, probability in enumerate(end_probabilities):
        if probability > END_LIKELY and position >= minimum:
            return position
    return len(end_probabilities)


def canvas_lengths(estimates: list[tuple[int, int]], budget: int) -> list[int]:
    """Canvas lengths to decode on, most promising first, from ``(canvas length, estimated span length)``
    per ladder rung (shortest rung first).

    The first rung the span ends inside gives the estimate; the canvas is the estimate plus half of it and
    2 (the middle of the training range of canvases for such a span), capped at that rung. Then the rung
    itself, the next rung and the full budget, for more candidates.
    """
    rungs = [length for length, _ in estimates]
    index = next((i for i, (length, span) in enumerate(estimates) if span < length), len(estimates) - 1)
    rung, span = estimates[index]
    options = [min(rung, span + math.ceil(span / 2) + 2), rung, *rungs[index + 1 : index + 2], budget]
    lengths: list[int] = []
    for length in options:
        if length not in lengths:
            lengths.append(length)
    return lengths
