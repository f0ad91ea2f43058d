"""Where training spans come from: the same shapes of gap the editor asks the model to fill.

Per file we precompute line-aligned spans of tree-sitter nodes (statements, blocks) and function bodies;
at sampling time we add rest-of-line spans, runs of whole lines and random character spans. Offsets are
character offsets into the file's text; ``text[start:end]`` is the middle to regenerate.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from infill.regions.languages import parser_for

MAX_NODE_LINES = 30
MAX_NODE_CHARS = 1600
# Sampling weights per kind of span. A probe found line-aligned spans matter most, so they dominate.
SPAN_KIND_WEIGHTS = {"line": 0.3, "lines": 0.25, "node": 0.2, "function": 0.1, "random": 0.15}
_NODE_SUFFIXES = ("statement", "definition", "declaration", "block", "clause", "_item", "expression")
_FUNCTION_TYPES = ("function", "method")


@dataclass(frozen=True)
class Span:
    start: int
    end: int
    kind: str  # "line" | "lines" | "node" | "function" | "random"


@dataclass(frozen=True)
class SpanIndex:
    """Precomputed structure of one file: line starts and the line-aligned syntactic spans."""

    line_starts: tuple[int, ...]  # offset of every line's first character; last entry = len(text)
    nodes: tuple[Span, ...]
    functions: tuple[Span, ...]


def _line_starts(text: str) -> tuple[int, ...]:
    starts = [0]
    starts.extend(i + 1 for i, ch in enumerate(text) if ch == "\n")
    if starts[-1] != len(text):
        starts.append(len(text))
    return tuple(starts)


def _line_aligned(text: str, start: int, end: int) -> tuple[int, int] | None:
    """Expand [start, end) to whole lines when only whitespace lies outside it on its first/last line."""
    line_start = text.rfind("\n", 0, start) + 1
    if text[line_start:start].strip():
        return None
    newline = text.find("\n", end)
    line_end = len(text) if newline < 0 else newline + 1
    if text[end:line_end].strip():
        return None
    return line_start, line_end


def _body_lines(text: str, body_start: int, body_end: int) -> tuple[int, int] | None:
    """The whole lines strictly inside a function body (between `{` and `}`, or under a Python `def:`)."""
    first = (
        text.find("\n", body_start) + 1 if text[body_start] == "{" else text.rfind("\n", 0, body_start) + 1
    )
    last = (
        text.rfind("\n", 0, body_end) + 1 if text[body_end - 1] == "}" else text.find("\n", body_end - 1) + 1
    )
    if last <= 0:
        last = len(text)
    if first <= 0 or last <= first or not text[first:last].strip():
        return None
    return first, last


def index_spans(text: str, language: str | None) -> SpanIndex:
    """Parse ``text`` with tree-sitter and collect its line-aligned node spans and function bodies."""
    nodes: list[Span] = []
    functions: list[Span] = []
    parser = parser_for(language) if language else None
    if parser is not None:
        data = text.encode("utf-8")
        # tree-sitter reports byte offsets; map them back to character offsets once per file.
        char_of_byte = _byte_to_char(text, data)
        stack = [parser.parse(data).root_node]
        while stack:
            node = stack.pop()
            stack.extend(node.named_children)
            if node.has_error:
                continue
            start, end = char_of_byte[node.start_byte], char_of_byte[node.end_byte]
            lines = node.end_point[0] - node.start_point[0] + 1
            too_big = lines > MAX_NODE_LINES or end - start > MAX_NODE_CHARS
            if too_big and not any(t in node.type for t in _FUNCTION_TYPES):
                continue
            if (
                node.type.endswith(_NODE_SUFFIXES)
                and lines <= MAX_NODE_LINES
                and end - start <= MAX_NODE_CHARS
            ):
                aligned = _line_aligned(text, start, end)
                if aligned is not None:
                    nodes.append(Span(*aligned, "node"))
            body = node.child_by_field_name("body")
            if body is not None and any(t in node.type for t in _FUNCTION_TYPES):
                inner = _body_lines(text, char_of_byte[body.start_byte], char_of_byte[body.end_byte])
                if inner is not None and inner[1] - inner[0] <= MAX_NODE_CHARS * 2:
                    functions.append(Span(*inner, "function"))
    return SpanIndex(_line_starts(text), tuple(nodes), tuple(functions))


def _byte_to_char(text: str, data: bytes) -> list[int]:
    if len(data) == len(text):
        return list(range(len(text) + 1))
    table = [0] * (len(data) + 1)
    offset = 0
    for i, ch in enumerate(text):
        width = len(ch.encode("utf-8"))
        for k in range(width):
            table[offset + k] = i
        offset += width
    table[len(data)] = len(text)
    return table


def sample_span(text: str, index: SpanIndex, rng: random.Random, max_chars: int = 1200) -> Span:
    """One span of a randomly chosen kind; falls back to simpler kinds when a file has none of a kind."""
    kinds = list(SPAN_KIND_WEIGHTS)
    kind = rng.choices(kinds, weights=[SPAN_KIND_WEIGHTS[k] for k in kinds])[0]
    pool = {"node": index.nodes, "function": index.functions}.get(kind)
    if pool:
        span = rng.choice(pool)
        if span.end - span.start <= max_chars:
            return span
        kind = "lines"
    starts = index.line_starts
    n_lines = len(starts) - 1
    if kind in ("lines", "node", "function") and n_lines >= 1:
        first = rng.randrange(n_lines)
        count = min(n_lines - first, rng.choice((1, 1, 2, 3, 4, 6, 8)))
        end = starts[first + count]
        while end - starts[first] > max_chars and count > 1:
            count -= 1
            end = starts[first + count]
        return Span(starts[first], end, "lines")
    if kind == "line" and n_lines >= 1:
        line = rng.randrange(n_lines)
        line_start, next_start = starts[line], starts[line + 1]
        line_end = next_start - 1 if text[next_start - 1 : next_start] == "\n" else next_start
        content = len(text[line_start:line_end]) - len(text[line_start:line_end].lstrip())
        # The cursor sits after the indentation or somewhere inside the line's code.
        start = rng.randint(line_start + content, max(line_start + content, line_end - 1))
        return Span(start, max(start, line_end), "line")
    start = rng.randrange(max(1, len(text)))
    return Span(start, min(len(text), start + rng.randint(1, min(200, max_chars))), "random")
