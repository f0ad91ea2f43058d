"""The Region the engine fills, and how many tokens each kind of region may take."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Literal

RegionKind = Literal["line", "block", "function", "span", "selection"]

# Canvas budgets per kind: a line is short, a block a few statements, a function body longer.
DEFAULT_MAX_TOKENS: dict[str, int] = {"line": 48, "block": 128, "function": 256, "span": 64, "selection": 128}
# Regenerating existing code may need as many tokens as it has; code runs ~3 characters per token, so
# half its characters (plus slack) is generous. Never more than this:
_MAX_REWRITE_TOKENS = 1024


@dataclass(frozen=True)
class Region:
    """``text[start:end]`` (str indices) is what gets replaced by the fill."""

    start: int
    end: int
    kind: RegionKind
    max_tokens: int
    indent: str  # indentation of the region's first line (for block fills)
    stop_at_newline: bool  # True for "line": the completion ends at the end of the current line


def budget(kind: RegionKind, old_text: str = "", cap: int | None = None) -> int:
    """Token budget for a region of ``kind`` replacing ``old_text``, never above the caller's ``cap``."""
    tokens = DEFAULT_MAX_TOKENS[kind]
    if old_text.strip():
        tokens = max(tokens, min(_MAX_REWRITE_TOKENS, len(old_text) // 2 + 16))
    return tokens if cap is None else min(tokens, cap)


def capped(region: Region, cap: int | None) -> Region:
    if cap is None or region.max_tokens <= cap:
        return region
    return dataclasses.replace(region, max_tokens=cap)
