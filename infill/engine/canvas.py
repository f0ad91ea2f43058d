"""The token sequence a request is decoded on: context trimmed to the model's window, then the masked span.

ids = special.prefix_ids + prefix_ids + [mask] * n + suffix_ids + special.suffix_ids
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

import torch

from infill.errors import ContextTooLong
from infill.models.base import SpecialTokens

logger = logging.getLogger(__name__)

# Share of the context budget the prefix gets when both sides are longer than the window; the code just
# before the cursor says more about the span than the code after it.
PREFIX_SHARE = 2 / 3


@dataclass(frozen=True)
class Context:
    """The prefix and suffix ids kept for a request, and how many lines were dropped from each side."""

    prefix_ids: list[int]
    suffix_ids: list[int]
    dropped_prefix_lines: int = 0
    dropped_suffix_lines: int = 0


@dataclass(frozen=True)
class Canvas:
    ids: list[int]
    span_start: int  # index of the first masked position in ids
    span_length: int


def context_budget(special: SpecialTokens, span_length: int, max_positions: int) -> int:
    """Tokens left for prefix + suffix once the span and the model's own special ids are placed."""
    fixed = len(special.prefix_ids) + len(special.suffix_ids) + span_length
    if fixed > max_positions:
        raise ContextTooLong(
            f"A span of {span_length} tokens does not fit the model's window of {max_positions} tokens"
        )
    return max_positions - fixed


def build_canvas(context: Context, span_length: int, special: SpecialTokens) -> Canvas:
    head = [*special.prefix_ids, *context.prefix_ids]
    ids = [*head, *[special.mask_id] * span_length, *context.suffix_ids, *special.suffix_ids]
    return Canvas(ids=ids, span_start=len(head), span_length=span_length)


def trim_context(prefix: str, suffix: str, encode: Callable[[str], list[int]], budget: int) -> Context:
    """Keep the lines nearest the span within ``budget`` tokens: whole lines of the prefix are dropped from
    the top and of the suffix from the bottom. The budget is split PREFIX_SHARE / rest, and what one side
    does not need goes to the other. A line next to the span that is too long for its side's share (e.g.
    minified code) is cut at a token boundary, keeping the tokens nearest the span."""
    prefix_lines = prefix.splitlines(keepends=True)[::-1]  # nearest line first
    suffix_lines = suffix.splitlines(keepends=True)
    prefix_costs = _line_costs(prefix_lines, encode, budget)
    suffix_costs = _line_costs(suffix_lines, encode, budget)
    prefix_budget = _prefix_budget(sum(prefix_costs), sum(suffix_costs), budget)
    while True:
        keep_prefix = _fitting(prefix_costs, prefix_budget)
        if keep_prefix or not prefix_lines:
            prefix_ids = encode("".join(prefix_lines[:keep_prefix][::-1]))
        else:
            line_ids = encode(prefix_lines[0])
            prefix_ids = line_ids[max(0, len(line_ids) - prefix_budget) :]
        keep_suffix = _fitting(suffix_costs, budget - len(prefix_ids))
        if keep_suffix or not suffix_lines:
            suffix_ids = encode("".join(suffix_lines[:keep_suffix]))
        else:
            suffix_ids = encode(suffix_lines[0])[: budget - len(prefix_ids)]
        # Lines tokenized one by one may count a little differently than joined; shrink until it fits.
        if len(prefix_ids) + len(suffix_ids) <= budget:
            break
        if keep_suffix > 0 and (keep_prefix == 0 or len(suffix_ids) * 2 > len(prefix_ids)):
            suffix_costs = suffix_costs[: keep_suffix - 1]
        else:
            prefix_costs = prefix_costs[: keep_prefix - 1]
            prefix_budget = sum(prefix_costs)
    context = Context(
        prefix_ids, suffix_ids, len(prefix_lines) - keep_prefix, len(suffix_lines) - keep_suffix
    )
    if context.dropped_prefix_lines or context.dropped_suffix_lines:
        logger.debug(
            "Context trimmed to %d tokens: dropped %d prefix and %d suffix lines",
            len(prefix_ids) + len(suffix_ids),
            context.dropped_prefix_lines,
            context.dropped_suffix_lines,
        )
    return context


def _line_costs(lines: list[str], encode: Callable[[str], list[int]], budget: int) -> list[int]:
    """Token counts of ``lines`` in order, stopping after the first line that no longer fits ``budget``
    (so only the neighbourhood of the span is tokenized, however long the file)."""
    costs: list[int] = []
    total = 0
    for line in lines:
        costs.append(len(encode(line)))
        total += costs[-1]
        if total > budget:
            break
    return costs


def _prefix_budget(prefix_wants: int, suffix_wants: int, budget: int) -> int:
    """The prefix's share of ``budget``: a side needing less than its share leaves the rest to the other."""
    prefix_share = round(budget * PREFIX_SHARE)
    if suffix_wants <= budget - prefix_share:
        return budget - suffix_wants
    return min(prefix_wants, prefix_share)


def _fitting(costs: list[int], budget: int) -> int:
    """How many leading lines fit in ``budget`` tokens."""
    total = 0
    for count, cost in enumerate(costs):
        total += cost
        if total > budget:
            return count
    return len(costs)


def stack_canvases(
    canvases: list[Canvas], special: SpecialTokens, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(ids, attention_mask, editable)``, each (B, T): canvases left-aligned and right-padded with
    special.pad_id (attention 0), so every real token keeps its position whatever the batch."""
    width = max(len(canvas.ids) for canvas in canvases)
    ids = torch.full((len(canvases), width), special.pad_id, dtype=torch.long)
    attention_mask = torch.zeros_like(ids)
    editable = torch.zeros(ids.shape, dtype=torch.bool)
    for row, canvas in enumerate(canvases):
        ids[row, : len(canvas.ids)] = torch.tensor(canvas.ids)
        attention_mask[row, : len(canvas.ids)] = 1
        editable[row, canvas.span_start : canvas.span_start + canvas.span_length] = True
    return ids.to(device), attention_mask.to(device), editable.to(device)
