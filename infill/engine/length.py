"""Variable span length: how long a canvas to decode a span on.

The model is trained on canvases of the middle followed by a few end_of_span tokens (training/objective.py:
at most about as many as the middle is long, plus 4), so a canvas much longer than the span is out of
distribution, and one shorter than the span truncates it. Decoding on the full ``max_tokens`` canvas lets
confidence-first unmasking fill it with easy tail tokens and squeeze or stretch the middle.

So the engine can first run one batched forward pass over fully masked canvases of a doubling ladder of
lengths up to the budget (the full canvas included) and reads, for each, where end_of_span becomes likely.
The shortest canvas the span is expected to end inside is the one whose length is in the training range
for that span; the span is then decoded on the estimated length plus a margin.

An estimate counts only when the next rung confirms it: a model that knows the span's length puts the end at
the same place when the canvas doubles, while a weak one puts it about halfway along whatever canvas it gets
(its prior over the end_of_span tail), and trusting the first rung would then cut every span to a couple of
tokens. With no confirmed rung the span is decoded on the full budget, where the tail rule ends it.

The pass is off unless DecodeConfig.estimate_length is set, and never spent on line fills (their newline
ends them): for a model whose estimates do not confirm it only costs time (see BENCHMARKS.md).
"""

from __future__ import annotations

import math

import torch

from infill.engine.scoring import banned_token_ids
from infill.engine.slots import editable_slots
from infill.models.base import DenoisingModel, LoadedModel, SpecialTokens
from infill.models.block_model import BlockDiffusionModel

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
    editable: torch.Tensor,
    special: SpecialTokens,
) -> torch.Tensor:
    """P(end_of_span) at the editable positions of ``ids (B, T)``, left to right -> (B, K) (K: the most
    editable positions of any row; a shorter row's extra columns are meaningless), banned ids excluded as
    when decoding. Logits are computed at those positions only."""
    slots = editable_slots(editable, None)
    with torch.inference_mode():
        logits = model.logits(ids, attention_mask, slots.positions).float()  # (B, K, V)
        logits[..., banned_token_ids(special, ids.device)] = float("-inf")
        return torch.softmax(logits, dim=-1)[..., special.end_of_span_id]


def growing_lengths(budget: int, share: float) -> list[int]:
    """Canvases a growing span is decoded on, in order (DecodeConfig.canvas_share): ``share`` of the budget
    (at least CHEAP_CANVAS, at most the budget), then doubling until the budget. A model trained with
    end_of_span tails of up to the middle's length writes at least about half of whatever canvas it gets, so
    a full-budget canvas makes short fills long; a span that fills its canvas without ending was cut short,
    and gets the next one."""
    lengths = [min(budget, max(CHEAP_CANVAS, round(budget * share)))]
    while lengths[-1] < budget:
        lengths.append(next_growing_length(lengths[-1], budget))
    return lengths


def next_growing_length(length: int, budget: int) -> int:
    return min(budget, 2 * length)


def unestimated_lengths(budget: int) -> list[int]:
    """Canvas lengths without an estimate, most promising first: the full budget (the span's tail rule or
    line stop ends it), then the shorter rungs of the ladder, longest first, for more greedy candidates."""
    return [budget, *reversed(length_ladder(budget)[:-1])]


def estimate_span_length(end_probabilities: list[float], minimum: int = 0) -> int:
    """Tokens before the first position where end_of_span is likely (all of them when none is)."""
    for position, probability in enumerate(end_probabilities):
        if probability > END_LIKELY and position >= minimum:
            return position
    return len(end_probabilities)


def canvas_lengths(estimates: list[tuple[int, int]], budget: int) -> list[int]:
    """Canvas lengths to decode on, most promising first, from ``(canvas length, estimated span length)``
    per ladder rung (shortest rung first).

    The first rung the span ends inside, with the estimate confirmed by a neighbouring rung, gives the
    estimate; the canvas is the estimate plus half of it and 2 (the middle of the training range of canvases
    for such a span), capped at that rung. Then the rung itself, the next rung and the full budget, for more
    candidates. With no confirmed rung: the full budget first, then what the first rung ending would give.
    """
    rungs = [length for length, _ in estimates]
    ending = [i for i, (length, span) in enumerate(estimates) if span < length]
    confirmed = [i for i in ending if _confirmed(estimates, i)]
    index = confirmed[0] if confirmed else ending[0] if ending else len(estimates) - 1
    rung, span = estimates[index]
    options = [min(rung, span + math.ceil(span / 2) + 2), rung, *rungs[index + 1 : index + 2], budget]
    if not confirmed and ending:
        options.insert(0, budget)
    lengths: list[int] = []
    for length in options:
        if length not in lengths:
            lengths.append(length)
    return lengths


def _agree(a: int, b: int) -> bool:
    return abs(a - b) <= max(2, min(a, b) // 4)


def _confirmed(estimates: list[tuple[int, int]], index: int) -> bool:
    """The span estimate at ``index`` is repeated by the next rung (the last rung: not contradicted by the one
    before, which either agrees or expected the span to run past its own end)."""
    span = estimates[index][1]
    if index + 1 < len(estimates):
        return _agree(span, estimates[index + 1][1])
    if index == 0:
        return True
    previous_length, previous_span = estimates[index - 1]
    return previous_span >= previous_length or _agree(span, previous_span)


def describe_length(loaded: LoadedModel, estimate_length: bool, canvas_share: float = 1.0) -> str:
    """One line for `infill doctor`: who decides how long this model's fills are, and with which settings."""
    end = repr(loaded.tokenizer.token_text(loaded.special.end_of_span_id))
    if loaded.expand_delete is not None:
        settings = loaded.expand_delete.settings
        expand = repr(loaded.tokenizer.token_text(loaded.expand_delete.expand_id))
        return (
            f"decided by the model: expand/delete decoding from {settings.min_gen_len} masks up to "
            f"{settings.max_gen_len} tokens ({expand} adds a mask, {end} deletes one)"
        )
    if isinstance(loaded.model, BlockDiffusionModel):  # SDAR...: the engine decodes it block by block
        return (
            f"decided by the model, block by block: blocks of {loaded.model.block_size} tokens left to right "
            f"until it writes {end} or the token budget (--max-tokens) runs out"
        )
    if estimate_length:
        return (
            f"searched: canvas lengths tried in one pass before decoding, the span ends at its first {end} "
            "(estimate_length on; line fills end at their newline)"
        )
    if canvas_share < 1:
        return (
            f"grown: a canvas of {canvas_share:g} of the token budget, doubled while the span fills it "
            f"without ending; the span ends at its first {end} (canvas_share; line fills: at their newline)"
        )
    return (
        f"a fixed canvas of the token budget (--max-tokens): the span ends at its first {end} "
        "(estimate_length off; line fills end at their newline)"
    )
