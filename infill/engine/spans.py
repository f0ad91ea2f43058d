"""Span structure on a canvas, vectorised: which editable run a position belongs to, and where it ends.

A row may hold several spans (contiguous runs of editable positions); the tail rule works per span.
"""

from __future__ import annotations

import torch


def span_segments(editable: torch.Tensor) -> torch.Tensor:
    """(B, T) long: 1, 2, ... for each contiguous run of editable positions in a row, 0 elsewhere."""
    starts = editable & ~torch.nn.functional.pad(editable[:, :-1], (1, 0), value=False)
    return starts.long().cumsum(dim=1) * editable


def after_end_of_span(is_eos: torch.Tensor, segment: torch.Tensor) -> torch.Tensor:
    """(B, T) bool: at or after an end_of_span of the same span (segment ids grow along a row)."""
    latest = torch.where(is_eos & (segment > 0), segment, 0).cummax(dim=1).values
    return (latest == segment) & (segment > 0)


def before_content(is_content: torch.Tensor, segment: torch.Tensor) -> torch.Tensor:
    """(B, T) bool: at or before a committed content token of the same span."""
    beyond = int(segment.max()) + 1
    earliest = torch.where(is_content, segment, beyond).flip(1).cummin(dim=1).values.flip(1)
    return (earliest == segment) & (segment > 0)
