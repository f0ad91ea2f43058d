"""Which region to fill for a cursor (``pick_cursor_region``) or a selection (``expand_selection``)."""

from __future__ import annotations

import tree_sitter

from infill.errors import InputError
from infill.regions.functions import function_region
from infill.regions.heuristics import (
    CLOSERS,
    OPENERS,
    blank_comments,
    bracket_positions,
    detect_indent_unit,
    indent_width,
    leading_ws,
    line_end,
    line_number,
    line_start,
    next_line_start,
)
from infill.regions.languages import check_language, is_brace_language, line_comment_leaders
from infill.regions.region import Region, budget, capped
from infill.regions.syntax import SyntaxTree, parse

MODES = ("auto", "line", "block", "function")


def pick_cursor_region(
    text: str, offset: int, language: str | None, mode: str = "auto", max_tokens: int | None = None
) -> Region:
    """The region to fill for a cursor at ``offset``.

    "auto": a whole block when the cursor sits on a blank line right after a block opener (a Python line
    ending in ``:``, a brace line ending in ``{``), otherwise the rest of the line. "line" / "block" force
    the kind; "function" is the body of the enclosing function. ``max_tokens`` caps the kind's budget.
    """
    check_language(language)
    _check_offset(text, offset)
    if mode not in MODES:
        raise InputError(f"unknown completion mode {mode!r}: expected one of {', '.join(MODES)}")
    if max_tokens is not None and max_tokens < 1:
        raise InputError(f"max_tokens must be positive, got {max_tokens}")
    if mode == "function":
        region = function_region(text, offset, language)
        if region is None:
            raise InputError(f"line {line_number(text, offset)}: the cursor is not inside a function")
        return capped(region, max_tokens)
    if mode in ("auto", "block"):
        block = _block_after_opener(text, offset, language)
        if block is not None:
            return capped(block, max_tokens)
    if mode == "block":
        return capped(_block_at_cursor(text, offset), max_tokens)
    return capped(_rest_of_line(text, offset), max_tokens)


def _check_offset(text: str, offset: int) -> None:
    if not 0 <= offset <= len(text):
        raise InputError(f"offset {offset} is outside the text (0..{len(text)})")


def _rest_of_line(text: str, offset: int) -> Region:
    """From the cursor to the end of the line when only whitespace and closing brackets follow (they
    are regenerated); otherwise an insertion at the cursor that keeps the rest of the line as suffix."""
    end = line_end(text, offset)
    if text[offset:end].strip(" \t" + CLOSERS):
        end = offset
    indent = leading_ws(text[line_start(text, offset) : end])
    return Region(offset, end, "line", budget("line"), indent, True)


def _block_at_cursor(text: str, offset: int) -> Region:
    """A forced multi-line fill where no opener precedes: a blank line is filled whole at the
    indentation of the code above; elsewhere it starts at the cursor like a line fill."""
    start, end = line_start(text, offset), line_end(text, offset)
    if not text[start:end].strip():
        indent = leading_ws(text[start:end]) or leading_ws(_previous_code_line(text, start) or "")
        return Region(start, end, "block", budget("block"), indent, False)
    line = _rest_of_line(text, offset)
    return Region(line.start, line.end, "block", budget("block"), line.indent, False)


def _previous_code_line(text: str, start: int) -> str | None:
    """The nearest non-blank line above the line starting at ``start``."""
    while start > 0:
        start = line_start(text, start - 1)
        line = text[start : line_end(text, start)]
        if line.strip():
            return line
    return None


def _block_after_opener(text: str, offset: int, language: str | None) -> Region | None:
    start, end = line_start(text, offset), line_end(text, offset)
    if text[start:end].strip():
        return None
    opener_start = start
    while opener_start > 0:
        opener_start = line_start(text, opener_start - 1)
        if text[opener_start : line_end(text, opener_start)].strip():
            break
    else:
        return None
    last = _last_code_char(text, opener_start, language)
    openers = ":" if language == "python" else "{" if is_brace_language(language) else ":{"
    if last is None or text[last] not in openers:
        return None
    opener_width = indent_width(leading_ws(text[opener_start:last]))
    line_ws = text[start:end]
    if indent_width(line_ws) > opener_width:
        indent = line_ws  # the editor (or the user) already indented the line
    else:
        indent = _next_deeper_indent(text, end, opener_width)
        if indent is None:
            indent = leading_ws(text[opener_start:last]) + detect_indent_unit(text, language)
    return Region(start, end, "block", budget("block"), indent, False)


def _last_code_char(text: str, line_begin: int, language: str | None) -> int | None:
    """Offset of the last non-blank code character of a line (trailing comments skipped); None when the
    line is all comment, or its end lies inside a multi-line string or comment."""
    code = blank_comments(text[line_begin : line_end(text, line_begin)], language).rstrip()
    if not code.strip():
        return None
    last = line_begin + len(code) - 1
    if language is not None and text[last] in ":{":
        # Only a would-be opener is worth a parse (completions run on every pause in typing).
        tree = parse(text, language)
        if tree.in_string(last) or tree.comment_at(last):
            return None
    return last


def _next_deeper_indent(text: str, position: int, opener_width: int) -> str | None:
    """Indentation of the next non-blank line when it is deeper than the opener (an existing block)."""
    while position < len(text):
        position = next_line_start(text, position)
        line = text[position : line_end(text, position)]
        if line.strip():
            ws = leading_ws(line)
            return ws if indent_width(ws) > opener_width else None
    return None


def expand_selection(text: str, start: int, end: int, language: str | None) -> Region:
    """Grow ``[start, end)`` to the smallest run of complete syntactic nodes (statements) that covers
    it, as whole lines (the final newline stays outside)."""
    check_language(language)
    _check_offset(text, start)
    _check_offset(text, end)
    if end < start:
        start, end = end, start
    selected = text[start:end]
    trimmed_start = start + len(selected) - len(selected.lstrip())
    trimmed_end = end - (len(selected) - len(selected.rstrip()))
    if trimmed_start >= trimmed_end:
        trimmed_start = trimmed_end = start
    if language is None:
        span_start, span_end = _balanced_lines(text, trimmed_start, trimmed_end)
    else:
        # The region is whole lines anyway, so every node on the selected lines is part of the question.
        first_line = text[line_start(text, trimmed_start) : line_end(text, trimmed_start)]
        last_line_end = line_end(text, trimmed_end)
        line_code_start = line_start(text, trimmed_start) + len(leading_ws(first_line))
        line_code_end = len(text[:last_line_end].rstrip())
        if line_code_start < line_code_end:
            trimmed_start, trimmed_end = line_code_start, line_code_end
        span_start, span_end = _enclosing_nodes(parse(text, language), trimmed_start, trimmed_end)
    region_start, region_end = line_start(text, span_start), line_end(text, span_end)
    indent = leading_ws(text[region_start:region_end])
    old = text[region_start:region_end]
    return Region(region_start, region_end, "selection", budget("selection", old), indent, False)


def _enclosing_nodes(tree: SyntaxTree, start: int, end: int) -> tuple[int, int]:
    node = tree.node_covering(start, end)
    start_byte, end_byte = tree.byte_of(start), tree.byte_of(end)
    while True:
        children = [child for child in node.named_children if _overlaps(child, start_byte, end_byte)]
        if len(children) >= 2 and _starts_line(tree, children[0]) and _ends_line(tree, children[-1]):
            first, last = tree.span(children[0])[0], tree.span(children[-1])[1]
            # The children's lines must hold the whole selection (not, say, the parent's closing brace),
            # and be a run of siblings rather than a body and the clauses after it (try: ... except:).
            if (
                line_start(tree.text, first) <= start
                and line_end(tree.text, last) >= end
                and _never_dedents(tree, children)
            ):
                return first, last
        if node.parent is None:  # the root: its overlapping children, or the selection itself
            if children:
                return tree.span(children[0])[0], tree.span(children[-1])[1]
            return start, end
        if _line_aligned(tree, node):
            return tree.span(node)
        node = node.parent


def _overlaps(node: tree_sitter.Node, start_byte: int, end_byte: int) -> bool:
    if start_byte == end_byte:
        return node.start_byte <= start_byte <= node.end_byte
    return node.start_byte < end_byte and node.end_byte > start_byte


def _never_dedents(tree: SyntaxTree, nodes: list[tree_sitter.Node]) -> bool:
    """No node starts a line indented less than the first node's line."""
    text = tree.text

    def indent_of(node: tree_sitter.Node) -> int:
        begin = line_start(text, tree.char_of(node.start_byte))
        return indent_width(leading_ws(text[begin : line_end(text, begin)]))

    first = indent_of(nodes[0])
    return all(indent_of(node) >= first for node in nodes[1:] if _starts_line(tree, node))


def _line_aligned(tree: SyntaxTree, node: tree_sitter.Node) -> bool:
    return _starts_line(tree, node) and _ends_line(tree, node)


def _starts_line(tree: SyntaxTree, node: tree_sitter.Node) -> bool:
    node_start = tree.char_of(node.start_byte)
    return not tree.text[line_start(tree.text, node_start) : node_start].strip()


def _ends_line(tree: SyntaxTree, node: tree_sitter.Node) -> bool:
    """Only whitespace follows ``node`` on its line, give or take a ``;``/``,`` and a trailing comment."""
    node_end = tree.char_of(node.end_byte)
    rest = tree.text[node_end : line_end(tree.text, node_end)].strip().lstrip(";,").strip()
    return not rest or rest.startswith((*line_comment_leaders(tree.language), "/*"))


def _balanced_lines(text: str, start: int, end: int) -> tuple[int, int]:
    """Whole lines around [start, end), grown until brackets balance and an indented block is whole."""
    first, last = line_start(text, start), line_end(text, end)
    for _ in range(100):  # every pass only grows the span; stop when a pass changes nothing
        grown_last = _balance_forward(text, first, last)
        grown_first = _balance_backward(text, first, grown_last)
        grown_last = _indented_block_end(text, grown_first, grown_last)
        if (grown_first, grown_last) == (first, last):
            break
        first, last = grown_first, grown_last
    return first, last


def _balance_forward(text: str, first: int, last: int) -> int:
    """The first line end at or after ``last`` where every bracket opened since ``first`` is closed (the
    end of the text when that never happens). One lazy scan, however far it has to go."""
    open_count = 0
    for position in bracket_positions(text[first:], None):
        position += first
        if position >= last and open_count == 0:
            break
        if text[position] in OPENERS:
            open_count += 1
        elif open_count:
            open_count -= 1
            if open_count == 0 and position >= last:
                last = line_end(text, position)
    return len(text) if open_count else last


_BACKWARD_WINDOW = 50_000  # characters before the span that may hold the openers of its closers


def _balance_backward(text: str, first: int, last: int) -> int:
    """The last line start at or before ``first`` from which no bracket closed before ``last`` is left
    unopened (the start of the window searched when that never happens)."""
    window = max(0, first - _BACKWARD_WINDOW)
    close_count = 0
    for position in reversed(list(bracket_positions(text[window:last], None))):
        position += window
        if position < first and close_count == 0:
            break
        if text[position] in CLOSERS:
            close_count += 1
        elif close_count:
            close_count -= 1
            if close_count == 0 and position < first:
                first = line_start(text, position)
    return line_start(text, window) if close_count else first


def _indented_block_end(text: str, first: int, last: int) -> int:
    """``last`` moved past the following lines that are deeper than the span's first line (the span cut an
    indented block in half); blank lines inside the block go along."""
    first_width = indent_width(leading_ws(text[first : line_end(text, first)]))
    position = last
    while position < len(text):
        position = next_line_start(text, position)
        line = text[position : line_end(text, position)]
        if not line.strip():
            continue
        if indent_width(leading_ws(line)) <= first_width:
            break
        last = line_end(text, position)
    return last
