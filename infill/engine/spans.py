"""Span structure on a canvas, vectorised: which editable run a position belongs to, and where it ends.

A row may hold several spans (contiguous runs of editable positions); the tail rules work per span. The
helpers take any (B, N) layout whose segment ids grow along a row: canvas positions or the sampler's slots.
"""

from __future__ import annotations

import torch


def span_segments(editable: torch.Tensor) -> torch.Tensor:
    """(B, T) long: 1, 2, ... for each contiguous run of editable positions in a row, 0 elsewhere."""
    starts = editable & ~torch.nn.functional.pad(editable[:, :-1], (1, 0), value=False)
    return starts.long().cumsum(dim=1) * editable


def after_stop(is_stop: torch.Tensor, segment: torch.Tensor) -> torch.Tensor:
    """(B, N) bool: strictly after a stop token (end_of_span, or a line's newline) of the same span."""
    hit = torch.where(is_stop & (segment > 0), segment, 0)
    latest_before = torch.nn.functional.pad(hit[:, :-1], (1, 0)).cummax(dim=1).values
    return (latest_before == segment) & (segment > 0)


def before_content(is_content: torch.Tensor, segment: torch.Tensor) -> torch.Tensor:
    """(B, N) bool: at or before a committed content token of the same span."""
    beyond = segment.shape[1] + 1  # more than any segment id; a constant, so no device read
    earliest = torch.where(is_content, segment, beyond).flip(1).cummin(dim=1).values.flip(1)
    return (earliest == segment) & (segment > 0)
