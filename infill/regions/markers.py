"""Fill markers written in a file: ``<|fill|>`` holes and ``infill:begin`` / ``infill:end`` regions.

A region is delimited by two line comments, each alone on its line (``# infill:begin`` in Python,
``// infill:begin`` in brace languages; ``#``, ``//`` and ``--`` when the language is unknown). The whole
marker lines belong to the region so that replacing ``text[start:end]`` removes them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from infill.errors import MarkerError
from infill.regions.heuristics import leading_ws, line_end, line_start, next_line_start, previous_line_end
from infill.regions.languages import check_language, line_comment_leaders
from infill.regions.syntax import SyntaxTree, parse

HOLE = "<|fill|>"
_MARKER_WORD = re.compile(r"infill:(begin|end)\b")
_ANY_MARK = re.compile(r"infill:(?:begin|end)\b|" + re.escape(HOLE))


@dataclass(frozen=True)
class MarkedRegion:
    """``text[start:end]`` is the whole marked thing, markers included (they are removed by the fill);
    ``text[fill_start:fill_end]`` is what lies between the markers (old code; empty for a hole, where
    fill_start == fill_end == start). A region spans whole lines from the ``infill:begin`` line to the
    end of the ``infill:end`` line, its newline excluded. ``indent``: a hole's line's indentation; a
    region's old code's first line's (the begin marker's when it holds no code)."""

    start: int
    end: int
    fill_start: int
    fill_end: int
    kind: Literal["hole", "region"]
    indent: str


@dataclass(frozen=True)
class _Open:
    line: int  # 1-based
    start: int
    indent: str


def find_fill_markers(text: str, language: str | None) -> list[MarkedRegion]:
    """All holes and begin/end regions in ``text``, in order; MarkerError (with the 1-based line) for
    unbalanced, nested or reversed markers and for holes inside a region."""
    check_language(language)
    own_line = _own_line_marker(line_comment_leaders(language))
    tree: SyntaxTree | None = None  # parsed only when a marker-like line needs it
    found: list[MarkedRegion] = []
    opened: _Open | None = None
    number, counted_to = 1, 0
    for position in _candidate_lines(text):
        number += text.count("\n", counted_to, position)
        counted_to = position
        end = line_end(text, position)
        line = text[position:end]
        if tree is None and language is not None and "infill:" in line:
            tree = parse(text, language)
        marker = _marker_on_line(line, position, number, own_line, tree)
        holes = [position + m.start() for m in re.finditer(re.escape(HOLE), line)]
        if marker is not None and holes:
            raise MarkerError(f"line {number}: {HOLE} on an infill:{marker} marker line")
        if marker == "begin":
            if opened is not None:
                raise MarkerError(
                    f"line {number}: infill:begin inside the infill:begin region opened on line {opened.line}"
                )
            opened = _Open(number, position, leading_ws(line))
        elif marker == "end":
            if opened is None:
                raise MarkerError(f"line {number}: infill:end without infill:begin")
            # Whole lines, the end marker's newline outside (like every multi-line region).
            fill_start = next_line_start(text, opened.start)
            fill_end = max(fill_start, previous_line_end(text, position))
            old_code = (line for line in text[fill_start:fill_end].split("\n") if line.strip())
            indent = leading_ws(next(old_code, opened.indent))  # the old code's, else the marker's
            found.append(MarkedRegion(opened.start, end, fill_start, fill_end, "region", indent))
            opened = None
        for hole in holes:
            if opened is not None:
                raise MarkerError(
                    f"line {number}: {HOLE} inside the infill:begin region opened on line {opened.line}"
                )
            found.append(MarkedRegion(hole, hole + len(HOLE), hole, hole, "hole", leading_ws(line)))
    if opened is not None:
        raise MarkerError(f"line {opened.line}: infill:begin without infill:end")
    return found


def _candidate_lines(text: str) -> list[int]:
    """Start offsets of the lines holding a hole or a marker word, in order (each line once)."""
    starts = {line_start(text, match.start()) for match in _ANY_MARK.finditer(text)}
    return sorted(starts)


def _own_line_marker(leaders: tuple[str, ...]) -> re.Pattern[str]:
    alternatives = "|".join(re.escape(leader) for leader in leaders)
    # Doc-comment variants (///, ##) are accepted: the leader may repeat its last character.
    return re.compile(rf"^([ \t]*)(?:{alternatives})+[!/]?[ \t]*infill:(begin|end)\b")


def _marker_on_line(
    line: str, position: int, number: int, own_line: re.Pattern[str], tree: SyntaxTree | None
) -> str | None:
    """ "begin"/"end" when ``line`` is a marker comment; None otherwise. A marker comment after code on
    the same line is an error: removing its line would delete that code."""
    match = own_line.match(line)
    if match is not None:
        comment_start = position + len(match.group(1))
        if tree is not None:
            if tree.in_string(comment_start):
                return None  # a marker-looking line inside a string literal is data, not a marker
            comment = tree.comment_at(comment_start)
            if comment is not None and tree.span(comment)[0] < comment_start:
                return None  # ...and inside a block comment it is documentation
        return match.group(2)
    if tree is None:
        return None
    for word in _MARKER_WORD.finditer(line):
        comment = tree.comment_at(position + word.start())
        if comment is None:
            continue
        comment_start = tree.span(comment)[0]
        if comment_start >= position and own_line.match(line[comment_start - position :]):
            raise MarkerError(f"line {number}: infill:{word.group(1)} must be on a line of its own")
    return None
