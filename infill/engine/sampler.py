"""The pure denoising loop: token ids in, token ids out (no tokenizer, no text), after LLaDA's generate.py.

Invariants (stated here, tested in tests/test_sampler.py, asserted each step when invariants.enabled()):
- a committed token is carried over unchanged, except by remasking (config.remask > 0), which only returns
  the lowest-probability non-end-of-span tokens of the current block to the mask before the block's last step,
  and by the "p2" strategy (path_planning.py), which may mask any committed token of the span again;
- the mask token and every id in ``special.banned_ids`` (pad, cls/bos, unk...) can never be committed (their
  logits are -inf); end_of_span never is banned, even where it doubles as pad (Dream);
- span tail: end_of_span is never committed at or before committed content of its span, and once a position
  holds end_of_span every later position of the span that was masked at the start of the step is
  end_of_span after it (content proposed in the same step included);
- line stop: in a ``line_rows`` row the same holds after the first newline-bearing token (``newline_ids``,
  from the tokenizer via the engine): every later masked position becomes end_of_span in the same step, so
  nothing after the first newline is ever decoded;
- each step asks the model for logits at one block of slots per row (slots.py), never at the whole canvas,
  and commits at least one position ("p2" may commit none: path_planning.py). The only host read per step
  is the loop's own "anything left, and which rows started a new block?" (the second answer tells the
  context cache to refresh, step_logits.py).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch

from infill.engine import invariants
from infill.engine.path_planning import path_planning_step, proposal_confidence
from infill.engine.scoring import (
    banned_token_ids,
    choose_tokens,
    least_likely,
    make_generator,
    position_scores,
    take_top,
    token_confidence,
)
from infill.engine.slots import CanvasLogits, SlotState, block_columns, editable_slots, gather
from infill.engine.spans import after_stop, before_content, span_segments
from infill.engine.step_logits import StepLogits
from infill.engine.types import DecodeConfig
from infill.errors import Cancelled
from infill.models.base import DenoisingModel, SpecialTokens

logger = logging.getLogger(__name__)

# constrain(ids (B, T), logits (B, T, V), priority (B, T)) edits logits and priority in place before tokens
# are chosen: -inf logits forbid tokens, +inf priority forces a position this step, -inf priority holds it
# (a masked position stays masked this step; a committed one is never remasked this step). ``logits`` is a
# slots.CanvasLogits: only the positions asked about this step hold logits (edits elsewhere are dropped).
Constraint = Callable[[torch.Tensor, CanvasLogits, torch.Tensor], None]


@dataclass
class DenoiseOutput:
    ids: torch.Tensor  # (B, T) every editable position committed
    confidences: torch.Tensor  # (B, T) model probability of each token when it was committed; 1 elsewhere
    commit_step: torch.Tensor  # (B, T) step (0-based) that committed each editable position; -1 elsewhere
    forward_passes: int
    dropped: list[int] = field(default_factory=list)  # rows dropped as stale (row_stale): ids left masked


def denoise(
    model: DenoisingModel,
    input_ids: torch.Tensor,
    editable: torch.Tensor,
    attention_mask: torch.Tensor,
    special: SpecialTokens,
    config: DecodeConfig,
    *,
    should_stop: Callable[[], bool] | None = None,
    row_stale: Callable[[], Sequence[bool]] | None = None,
    constrain: Constraint | None = None,
    row_steps: torch.Tensor | None = None,
    line_rows: torch.Tensor | None = None,
    newline_ids: torch.Tensor | None = None,
) -> DenoiseOutput:
    """Fill every ``editable`` position of ``input_ids (B, T)`` by iterative unmasking (see module doc).

    Each step commits, per row, ``ceil(masked in block / steps left for the block)`` positions of the current
    block (a block gets its share of the row's steps, at most ``config.block_steps``), the highest-scoring by
    ``config.strategy``; "threshold" and "blocks" also commit every position
    of the block whose confidence is >= ``config.threshold``. Non-"blocks" strategies use one block.
    ``should_stop`` is checked before every forward pass and raises Cancelled. ``row_steps (B,)`` overrides
    config.steps per row; ``line_rows (B,)`` marks rows that end at their first newline.
    ``row_stale()`` (one flag per row of ``input_ids``), checked with should_stop, drops the rows that went
    stale from every later forward pass (the others decode as before); they are listed in ``dropped`` and
    left masked, and Cancelled is raised once every row is stale. A constraint without ``rows`` (see
    healing.HealingConstraint.rows) keeps every row in the batch.
    """
    device = input_ids.device
    mask_id, eos = special.mask_id, special.end_of_span_id
    ids = torch.where(editable, mask_id, input_ids)
    slots = editable_slots(editable, config.block_size if config.strategy == "blocks" else None)
    tokens = gather(ids, slots.positions)  # (B, K): the slots' tokens; ids is their image on the canvas
    state = SlotState(tokens, torch.ones(tokens.shape, device=device), torch.full_like(tokens, -1))
    passes = 0
    banned = banned_token_ids(special, device)
    generator = make_generator(config.seed, device)
    segment = gather(span_segments(editable), slots.positions) * slots.valid
    line = slots.valid & (False if line_rows is None else line_rows.to(device)[:, None])
    newlines = (torch.zeros(0, dtype=torch.long) if newline_ids is None else newline_ids).to(device)
    steps_per_block = slots.steps_per_block(
        torch.full((len(ids),), config.steps) if row_steps is None else row_steps, config.block_steps
    )
    current_block = torch.full((len(ids),), -1, dtype=torch.long, device=device)
    step_logits = StepLogits(model, config.cache_refresh)
    steps_left = torch.zeros_like(current_block)
    full_ids, alive = ids, list(range(len(ids)))  # alive: the input row of each row still decoded
    droppable = row_stale is not None and (constrain is None or hasattr(constrain, "rows"))
    with torch.inference_mode():
        while slots.count > 0:
            if droppable and row_stale is not None:
                stale = row_stale()
                live = [row for row, original in enumerate(alive) if not stale[original]]
                if not live:
                    raise Cancelled("Cancelled")
                if len(live) < len(alive):
                    # Drop the stale rows from every per-row tensor the loop carries (ids, attention mask,
                    # slots, decisions, schedule, context cache, constraint): no forward pass pays for them.
                    index = torch.tensor(live, device=device)
                    ids, attention_mask = ids[index], attention_mask[index]
                    segment, line = segment[index], line[index]
                    steps_per_block, current_block = steps_per_block[index], current_block[index]
                    steps_left, slots, state = steps_left[index], slots.rows(index), state.rows(index)
                    step_logits.keep_rows(live, index)
                    constrain = constrain.rows(live) if constrain is not None else None  # type: ignore[attr-defined]
                    alive = [alive[row] for row in live]
            masked = slots.valid & (state.tokens == mask_id)
            # Each row works on the block of its leftmost masked slot; a new block restarts its steps.
            row_block = torch.where(masked, slots.block, slots.count).amin(dim=1)
            new_block = row_block != current_block
            left, *moved = torch.cat([masked.any()[None], new_block]).tolist()  # the one host read per step
            if not left:
                break
            if should_stop is not None and should_stop():
                raise Cancelled("Cancelled")
            steps_left = torch.where(new_block, steps_per_block, steps_left).clamp_min(1)
            current_block = row_block
            columns = block_columns(slots, row_block)  # (B, W) the slots asked about this step
            in_block = gather(masked, columns)
            positions = gather(slots.positions, columns)

            logits = step_logits(ids, attention_mask, positions, new_block=moved).float()  # (B, W, V)
            passes += 1
            logits[..., banned] = float("-inf")
            content = slots.valid & ~masked & (state.tokens != eos)
            early = gather(before_content(content, segment), columns)
            logits[..., eos] = logits[..., eos].masked_fill(early, float("-inf"))
            priority = torch.zeros(ids.shape, device=device)  # (B, T)
            if constrain is not None:
                constrain(ids, CanvasLogits(logits, positions, ids.shape[1]), priority)
            priority = priority.gather(1, positions)  # (B, W)

            flat, probs = choose_tokens(logits.flatten(0, 1), config.temperature, config.top_p, generator)
            chosen = flat.view(positions.shape)
            confidence = token_confidence(probs, flat).view(positions.shape)
            score = position_scores(probs, flat, config.strategy).view(positions.shape)
            score = torch.where(in_block, score + priority, float("-inf"))
            count = num_transfer_tokens(in_block.sum(dim=1), steps_left)
            if config.strategy in ("threshold", "blocks"):
                confident = in_block & (confidence >= config.threshold) & (priority >= 0)
                count = torch.maximum(count, confident.sum(dim=1))
            commit = take_top(score, count)  # (B, W)
            again = None  # committed slots masked again this step
            if config.strategy == "p2":
                proposal = proposal_confidence(logits.flatten(0, 1), flat, config.temperature, config.top_p)
                span = gather(slots.valid, columns)
                commit, again = path_planning_step(
                    proposal.view(positions.shape), span, in_block, priority, steps_left, steps_per_block
                )
            previous = state.tokens
            state.set(
                slots.spread(commit, columns, False),
                slots.spread(chosen, columns, mask_id),
                slots.spread(confidence, columns, 0.0),
                passes - 1,
            )
            # Span tail and line stop: masked slots after a stop token become end_of_span.
            stops = (state.tokens == eos) | (line & torch.isin(state.tokens, newlines))
            state.set(masked & (state.tokens != eos) & after_stop(stops, segment), eos, 1.0, passes - 1)

            steps_left = steps_left - 1
            remasked = torch.zeros_like(masked)
            if again is not None:
                remasked = slots.spread(again, columns, False)
                state.set(remasked, mask_id, 1.0, -1)
            elif config.remask > 0:
                earlier = gather(slots.valid & ~masked & (slots.block == row_block[:, None]), columns)
                earlier &= gather(state.tokens != eos, columns) & (steps_left > 0)[:, None]
                earlier &= priority > float("-inf")  # held by the constraint (e.g. a healed chain)
                again = least_likely(
                    probs.view(*positions.shape, -1), gather(state.tokens, columns), earlier, config.remask
                )
                remasked = slots.spread(again, columns, False)
                state.set(remasked, mask_id, 1.0, -1)
            ids = ids.scatter(1, slots.positions, state.tokens)
            if invariants.enabled():
                kept = ~masked & ~remasked
                assert commit.any() or again is not None, "a denoising step must commit at least one position"
                assert torch.equal(state.tokens[kept], previous[kept]), "committed tokens are carried over"
    rows = torch.tensor(alive, device=device)
    if invariants.enabled():
        assert not (editable[rows] & (ids == mask_id)).any(), "every editable position is committed"
        assert not torch.isin(ids[editable[rows]], banned).any(), "no banned id is committed"
    confidences = slots.to_canvas(state.confidences, ids.shape, 1.0)
    commit_step = slots.to_canvas(state.commit_step, ids.shape, -1)
    dropped = sorted(set(range(len(full_ids))) - set(alive))
    if dropped:  # the kept rows back at their input rows; the dropped ones as they started, all masked
        ids = full_ids.index_copy(0, rows, ids)
        confidences = torch.ones(full_ids.shape, device=device).index_copy(0, rows, confidences)
        commit_step = torch.full_like(full_ids, -1).index_copy(0, rows, commit_step)
    return DenoiseOutput(ids, confidences, commit_step, passes, dropped)


def num_transfer_tokens(masked: torch.Tensor, steps_left: torch.Tensor) -> torch.Tensor:
    """Positions to commit this step, per row: ``ceil(masked / steps_left)``.

    Over a block's steps this reproduces LLaDA's precomputed get_num_transfer_tokens schedule (an even share,
    the remainder on the first steps: 10 over 4 steps is 3, 3, 2, 2); recomputed each step, it re-spreads
    the work when the span tail or remasking changes how many positions are left, and the last step always
    commits everything that remains.
    """
    return (masked + steps_left - 1) // steps_left
