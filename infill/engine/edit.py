"""Edit mode: the canvas starts from the existing code, not from masks (pure over token ids, like sampler.py).

One round: score every editable token in place (``score_in_place``: the probability of the current token
when it is masked, in ``groups`` interleaved groups batched as the rows of one forward pass), re-open the
tokens the model doubts (its probability is below ``doubt_ratio`` times that of the best alternative; at most
``max_reopen`` of the region per round, the most doubted first), refill them with the denoising sampler, and
repeat until a round changes nothing or ``rounds`` are spent.

Invariants (asserted when invariants.enabled()):
- a token that is not re-opened is carried over unchanged, with its origin (its index in the input region);
- a held position (``editable`` False: a token holding part of a multi-byte character) is never re-opened;
- a refill that writes end_of_span deletes that position (the region only ever shrinks or keeps its length;
  insertion is left to the length mechanism of the span sampler).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from infill.engine import invariants
from infill.engine.sampler import denoise
from infill.engine.scoring import banned_token_ids
from infill.engine.types import DecodeConfig
from infill.errors import Cancelled
from infill.models.base import DenoisingModel, SpecialTokens


@dataclass(frozen=True)
class EditConfig:
    """How edit mode decides what to re-open.

    groups: scoring rows per forward pass; token i of the region is masked in row ``i % groups`` (more rows:
        each token is judged with more of its neighbours visible, at the cost of a wider batch).
    doubt_ratio: a token is doubted when its probability is below this times that of the best token there.
    max_reopen: most tokens re-opened per round, as a fraction of the region (at least one).
    rounds: most score-and-refill rounds.
    """

    groups: int = 16
    doubt_ratio: float = 0.01
    max_reopen: float = 0.05
    rounds: int = 2


@dataclass
class EditOutput:
    tokens: list[int]  # the region's tokens after editing (end_of_span deletions removed)
    origin: list[int | None]  # per token: its index in the input region, None for a token the model wrote
    confidences: list[float]  # per token: P(token) when it was last scored or written
    first_confidences: list[float]  # per INPUT token: P(token) in the first scoring pass
    rounds: int
    forward_passes: int
    reopened: int  # positions re-opened over all rounds


@dataclass(frozen=True)
class InPlaceScores:
    current: torch.Tensor  # (N,) probability of each region token when it is masked
    best: torch.Tensor  # (N,) probability of the most likely token there
    best_ids: torch.Tensor  # (N,) that token


def score_in_place(
    model: DenoisingModel,
    head: Sequence[int],
    region: Sequence[int],
    tail: Sequence[int],
    special: SpecialTokens,
    groups: int,
    device: torch.device,
) -> InPlaceScores:
    """P(current token) and P(best token) at every region position, each masked in one of ``groups`` rows of
    one forward pass (row r masks region positions r, r + G, ...)."""
    count = len(region)
    rows = max(1, min(groups, count))
    per_row = math.ceil(count / rows)
    ids = torch.tensor([*head, *region, *tail], dtype=torch.long, device=device)
    batch = ids.repeat(rows, 1)  # (G, T)
    # (G, K): region index asked about in each row; short rows repeat their first index (ignored below).
    index = torch.arange(rows)[:, None] + rows * torch.arange(per_row)[None, :]
    real = (index < count).to(device)
    index = torch.where(real, index.to(device), index[:, :1].to(device))
    positions = index + len(head)
    batch.scatter_(1, positions, special.mask_id)
    logits = model.logits(batch, torch.ones_like(batch), positions).float()  # (G, K, V)
    # A masked position may become any token a fill may write, except end of span (deletion is not scored).
    logits[..., banned_token_ids(special, device)] = float("-inf")
    logits[..., special.end_of_span_id] = float("-inf")
    probs = torch.softmax(logits, dim=-1)
    current_ids = torch.tensor(list(region), dtype=torch.long, device=device)[index]
    current = probs.gather(-1, current_ids[..., None]).squeeze(-1)
    best, best_ids = probs.max(dim=-1)
    flat = index[real]
    out_current = torch.empty(count, device=device)
    out_best = torch.empty(count, device=device)
    out_ids = torch.empty(count, dtype=torch.long, device=device)
    out_current[flat] = current[real]
    out_best[flat] = best[real]
    out_ids[flat] = best_ids[real]
    return InPlaceScores(out_current, out_best, out_ids)


def doubted_positions(scores: InPlaceScores, editable: Sequence[bool], config: EditConfig) -> list[int]:
    """Region indices to re-open this round, in position order: the editable tokens below ``doubt_ratio`` of
    the best token's probability, the most doubted ones when more than ``max_reopen`` of the region are."""
    ratio = (scores.current / scores.best.clamp_min(1e-30)).tolist()
    doubted = [i for i, r in enumerate(ratio) if editable[i] and r < config.doubt_ratio]
    doubted.sort(key=lambda i: ratio[i])
    limit = max(1, math.floor(config.max_reopen * len(ratio)))
    return sorted(doubted[:limit])


def edit_in_place(
    model: DenoisingModel,
    head: Sequence[int],
    region: Sequence[int],
    tail: Sequence[int],
    special: SpecialTokens,
    config: EditConfig,
    decode: DecodeConfig,
    *,
    editable: Sequence[bool] | None = None,
    device: torch.device | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> EditOutput:
    """Edit ``region`` between ``head`` and ``tail`` (token ids; see the module doc for the rounds).

    ``editable[i]`` False holds region token i. ``should_stop`` is checked before every forward pass.
    """
    device = device or torch.device("cpu")
    tokens = list(region)
    origin: list[int | None] = list(range(len(tokens)))
    can_edit = [True] * len(tokens) if editable is None else list(editable)
    assert len(can_edit) == len(tokens), "one editable flag per region token"
    confidences = [1.0] * len(tokens)
    first_confidences: list[float] | None = None
    passes = rounds = reopened_total = 0
    eos = special.end_of_span_id

    def check_stop() -> None:
        if should_stop is not None and should_stop():
            raise Cancelled("Cancelled")

    while tokens and rounds < config.rounds:
        check_stop()
        with torch.inference_mode():
            scores = score_in_place(model, head, tokens, tail, special, config.groups, device)
        passes += 1
        confidences = scores.current.tolist()
        if first_confidences is None:
            first_confidences = confidences
        reopen = doubted_positions(scores, can_edit, config)
        if not reopen:
            break
        rounds += 1
        reopened_total += len(reopen)
        check_stop()
        ids = torch.tensor([[*head, *tokens, *tail]], dtype=torch.long, device=device)
        open_mask = torch.zeros_like(ids, dtype=torch.bool)
        open_mask[0, [len(head) + i for i in reopen]] = True
        out = denoise(
            model,
            ids,
            open_mask,
            torch.ones_like(ids),
            special,
            decode,
            should_stop=should_stop,
            row_steps=torch.tensor([len(reopen)]),
        )
        passes += out.forward_passes
        written = out.ids[0, len(head) : len(head) + len(tokens)].tolist()
        written_confidence = out.confidences[0, len(head) : len(head) + len(tokens)].tolist()
        changed = False
        new_tokens: list[int] = []
        new_origin: list[int | None] = []
        new_confidences: list[float] = []
        new_can_edit: list[bool] = []
        reopened = set(reopen)
        for i, token in enumerate(written):
            if i in reopened:
                if token == eos:
                    changed = True
                    continue  # deleted
                if token != tokens[i]:
                    changed = True
                    new_origin.append(None)
                else:
                    new_origin.append(origin[i])
                new_confidences.append(written_confidence[i])
            else:
                if invariants.enabled():
                    assert token == tokens[i], "a token that is not re-opened is carried over"
                new_origin.append(origin[i])
                new_confidences.append(confidences[i])
            new_tokens.append(token)
            new_can_edit.append(can_edit[i])
        tokens, origin, confidences, can_edit = new_tokens, new_origin, new_confidences, new_can_edit
        if not changed:
            break
    return EditOutput(
        tokens, origin, confidences, first_confidences or confidences, rounds, passes, reopened_total
    )
