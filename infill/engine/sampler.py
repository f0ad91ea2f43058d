"""The pure denoising loop: token ids in, token ids out (no tokenizer, no text), after LLaDA's generate.py.

Invariants, checked in the loop:
- a committed token is carried over unchanged, except by remasking (config.remask > 0), which only returns
  the lowest-probability non-end-of-span tokens of the current block to the mask before the block's last step;
- the mask token and every id in ``special.banned_ids`` (pad, cls/bos, unk...) can never be committed (their
  logits are -inf); end_of_span never is banned, even where it doubles as pad (Dream);
- span tail: once a position holds end_of_span, every later editable position of the same span is
  end_of_span too (committed in the same step), and end_of_span is never committed before committed content.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

import torch

from infill.engine.scoring import (
    banned_token_ids,
    choose_tokens,
    make_generator,
    position_scores,
    take_top,
    token_confidence,
)
from infill.engine.spans import after_end_of_span, before_content, span_segments
from infill.engine.types import DecodeConfig
from infill.errors import Cancelled
from infill.models.base import DenoisingModel, SpecialTokens

logger = logging.getLogger(__name__)

# constrain(ids (B, T), logits (B, T, V), priority (B, T)) edits logits and priority in place before tokens
# are chosen: -inf logits forbid tokens, +inf priority forces a position this step, -inf priority holds it
# (a masked position stays masked this step; a committed one is never remasked this step).
Constraint = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], None]


@dataclass
class DenoiseOutput:
    ids: torch.Tensor  # (B, T) every editable position committed
    confidences: torch.Tensor  # (B, T) model probability of each token when it was committed; 1 elsewhere
    commit_step: torch.Tensor  # (B, T) step (0-based) that committed each editable position; -1 elsewhere
    forward_passes: int


def denoise(
    model: DenoisingModel,
    input_ids: torch.Tensor,
    editable: torch.Tensor,
    attention_mask: torch.Tensor,
    special: SpecialTokens,
    config: DecodeConfig,
    should_stop: Callable[[], bool] | None = None,
    constrain: Constraint | None = None,
    row_steps: torch.Tensor | None = None,
) -> DenoiseOutput:
    """Fill every ``editable`` position of ``input_ids (B, T)`` by iterative unmasking (see module doc).

    Each step commits, per row, ``num_transfer_tokens`` positions of the current block, the highest-scoring
    ones by ``config.strategy``; "threshold" commits at least that many and
    every position whose confidence is >= ``config.threshold``. Non-"blocks" strategies use one block.
    ``should_stop`` is checked before every forward pass and raises Cancelled. ``row_steps (B,)`` overrides
    config.steps per row (the engine scales steps to each row's canvas length).
    """
    ids = input_ids.clone()
    ids[editable] = special.mask_id
    batch, _ = ids.shape
    device = ids.device
    eos = special.end_of_span_id
    banned = banned_token_ids(special, device)
    generator = make_generator(config.seed, device)
    segment = span_segments(editable)
    rank = editable.long().cumsum(dim=1) - 1
    steps = torch.full((batch,), config.steps, device=device) if row_steps is None else row_steps.to(device)
    if config.strategy == "blocks":
        block = torch.where(editable, rank // max(1, config.block_size), 0)
        blocks_per_row = (editable.sum(dim=1) + config.block_size - 1) // max(1, config.block_size)
        steps_per_block = (steps // blocks_per_row.clamp_min(1)).clamp_min(1)
    else:
        block = torch.zeros_like(rank)
        steps_per_block = steps.clamp_min(1)
    confidences = torch.ones(ids.shape, device=device)
    commit_step = torch.full(ids.shape, -1, dtype=torch.long, device=device)
    current_block = torch.full((batch,), -1, dtype=torch.long, device=device)
    steps_left = torch.zeros(batch, dtype=torch.long, device=device)
    passes = 0
    with torch.inference_mode():
        while True:
            masked = editable & (ids == special.mask_id)
            if not masked.any():
                break
            if should_stop is not None and should_stop():
                raise Cancelled("Cancelled")
            # Each row works on the block of its leftmost masked position; a new block restarts its steps.
            row_block = torch.where(masked, block, block.max() + 1).min(dim=1).values
            steps_left = torch.where(row_block != current_block, steps_per_block, steps_left).clamp_min(1)
            current_block = row_block
            in_block = masked & (block == row_block.unsqueeze(1))

            logits = model.logits(ids, attention_mask).float()  # (B, T, V); a no-op for float32 adapters
            passes += 1
            logits[..., banned] = float("-inf")
            content = editable & ~masked & (ids != eos)
            logits[..., eos] = logits[..., eos].masked_fill(before_content(content, segment), float("-inf"))
            priority = torch.zeros(ids.shape, device=device)
            if constrain is not None:
                constrain(ids, logits, priority)

            tokens, probs = choose_tokens(logits[masked], config.temperature, config.top_p, generator)
            proposal = torch.full_like(ids, special.mask_id)
            proposal[masked] = tokens
            proposal_conf = torch.zeros(ids.shape, device=device)
            proposal_conf[masked] = token_confidence(probs, tokens)
            eos_prob = torch.zeros(ids.shape, device=device)
            eos_prob[masked] = probs[:, eos]
            score = torch.full(ids.shape, float("-inf"), device=device)
            score[masked] = position_scores(probs, tokens, config.strategy)
            score = torch.where(in_block, score + priority, float("-inf"))

            count = num_transfer_tokens(in_block.sum(dim=1), steps_left)
            if config.strategy == "threshold":
                confident = in_block & (proposal_conf >= config.threshold) & (priority >= 0)
                count = torch.maximum(count, confident.sum(dim=1))
            commit = take_top(score, count)
            assert commit.any(), "a denoising step must commit at least one position"
            previous = ids.clone()
            ids[commit] = proposal[commit]
            confidences[commit] = proposal_conf[commit]
            commit_step[commit] = passes - 1

            # The span tail: everything after an end_of_span committed now becomes end_of_span, content
            # proposed this step included (earlier content is protected by the logit ban above).
            tail = masked & (ids != eos) & after_end_of_span(ids == eos, segment)
            ids[tail] = eos
            confidences[tail] = eos_prob[tail]
            commit_step[tail] = passes - 1

            steps_left = steps_left - 1
            remasked = torch.zeros_like(editable)
            if config.remask > 0:
                in_current = (
                    editable & ~masked & (block == row_block.unsqueeze(1)) & (priority > float("-inf"))
                )
                remasked = _remask(logits, ids, in_current, steps_left, eos, config.remask)
                ids[remasked] = special.mask_id
                commit_step[remasked] = -1
            kept = ~masked & ~remasked
            assert torch.equal(ids[kept], previous[kept]), "committed tokens must be carried over unchanged"
    assert not (editable & (ids == special.mask_id)).any() and not torch.isin(ids[editable], banned).any()
    return DenoiseOutput(ids=ids, confidences=confidences, commit_step=commit_step, forward_passes=passes)


def num_transfer_tokens(masked: torch.Tensor, steps_left: torch.Tensor) -> torch.Tensor:
    """Positions to commit this step, per row: ``ceil(masked / steps_left)``.

    Over a block's steps this reproduces LLaDA's precomputed get_num_transfer_tokens schedule (an even share,
    the remainder on the first steps: 10 over 4 steps is 3, 3, 2, 2); recomputed each step, it re-spreads
    the work when the span tail or remasking changes how many positions are left, and the last step always
    commits everything that remains.
    """
    return (masked + steps_left - 1) // steps_left


def _remask(
    logits: torch.Tensor,
    ids: torch.Tensor,
    committed: torch.Tensor,
    steps_left: torch.Tensor,
    eos: int,
    fraction: float,
) -> torch.Tensor:
    """Positions to return to the mask (B, T): per row, ``floor(fraction * candidates)`` of the tokens
    ``committed`` in earlier steps of the current block (end_of_span excluded: the span tail stays put)
    that the model now finds least likely, and only while the block has steps left to re-predict them."""
    candidates = committed & (ids != eos) & (steps_left > 0).unsqueeze(1)
    current = torch.full(ids.shape, float("-inf"), device=ids.device)
    probs = torch.softmax(logits[candidates], dim=-1)
    current[candidates] = -token_confidence(probs, ids[candidates])
    return take_top(current, (candidates.sum(dim=1) * fraction).floor().long())
