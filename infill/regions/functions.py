"""The body of the function around an offset: tree-sitter for known languages, indentation and braces
for the rest. The signature (and a Python docstring, the spec the body is written from) stay outside."""

from __future__ import annotations

import re

import tree_sitter

from infill.regions.heuristics import (
    first_excess_closer,
    indent_width,
    leading_ws,
    line_end,
    line_start,
    next_line_start,
    previous_line_end,
)
from infill.regions.languages import check_language
from infill.regions.region import Region, budget
from infill.regions.syntax import SyntaxTree, parse

_JS_FUNCTIONS = frozenset(
    {
        "function_declaration",
        "function_expression",
        "function",
        "arrow_function",
        "method_definition",
        "generator_function_declaration",
        "generator_function",
    }
)
FUNCTION_TYPES: dict[str, frozenset[str]] = {
    "python": frozenset({"function_definition"}),
    "javascript": _JS_FUNCTIONS,
    "typescript": _JS_FUNCTIONS,
    "tsx": _JS_FUNCTIONS,
    "go": frozenset({"function_declaration", "method_declaration", "func_literal"}),
    "rust": frozenset({"function_item", "closure_expression"}),
    "java": frozenset(
        {
            "method_declaration",
            "constructor_declaration",
            "compact_constructor_declaration",
            "lambda_expression",
        }
    ),
    "c": frozenset({"function_definition"}),
    "cpp": frozenset({"function_definition", "lambda_expression"}),
}

# A function header in a language without a grammar: optional modifiers, then a definition keyword.
_HEADER = re.compile(r"^[ \t]*(?:[\w.]+[ \t]+)*?(?:def|defn|defun|fn|fun|func|function|sub|proc|procedure)\b")


def function_region(text: str, offset: int, language: str | None) -> Region | None:
    """The body of the innermost function or method around ``offset``, without its signature;
    None when ``offset`` is not inside one."""
    if check_language(language) is None:
        return _heuristic_function_region(text, offset)
    tree = parse(text, language)
    body = _innermost_body(tree, offset)
    if body is None and offset > 0 and text[offset - 1] != "\n":
        # A cursor at the end of a line (or just after a `}`) sits past the node it belongs to.
        body = _innermost_body(tree, offset - 1)
    if body is None and language == "python":
        body = _python_body_before_blank_line(tree, offset)
    if body is None:
        return None
    if language == "python":
        start, end = _python_body_span(tree, body)
    else:
        close = body.child(body.child_count - 1)
        # While the user types, the closing brace may be a zero-width MISSING node: the body runs to its end.
        body_start, body_end = tree.span(body)
        if close is not None and close.type == "}" and not close.is_missing:
            body_end = tree.char_of(close.start_byte)
        start, end = _brace_body_span(text, body_start, body_end)
    return _function(text, start, end)


def _function(text: str, start: int, end: int) -> Region:
    indent = leading_ws(text[line_start(text, start) : line_end(text, start)])
    return Region(start, end, "function", budget("function", text[start:end]), indent, False)


def _body_of(node: tree_sitter.Node, language: str) -> tree_sitter.Node | None:
    """The block body of a function node; None for bodiless declarations and expression-bodied lambdas."""
    if node.type not in FUNCTION_TYPES[language]:
        return None
    body = node.child_by_field_name("body")
    if body is None:
        return None
    if language == "python":
        return body if body.type == "block" else None
    opening = body.child(0)
    return body if opening is not None and opening.type == "{" else None


def _innermost_body(tree: SyntaxTree, offset: int) -> tree_sitter.Node | None:
    byte = tree.byte_of(offset)
    node: tree_sitter.Node | None = tree.root.descendant_for_byte_range(byte, byte)
    while node is not None:
        body = _body_of(node, tree.language)
        if body is not None:
            return body
        node = node.parent
    return None


def _python_body_before_blank_line(tree: SyntaxTree, offset: int) -> tree_sitter.Node | None:
    """A Python block ends at its last statement, so a cursor on a blank line below it is outside the
    node; it still belongs to the function when it is indented deeper than the ``def`` line."""
    text = tree.text
    start = line_start(text, offset)
    if text[start : line_end(text, offset)].strip():
        return None
    cursor_width = indent_width(text[start : line_end(text, offset)])
    probe = start - 1
    while probe > 0 and not text[line_start(text, probe) : probe].strip():
        probe = line_start(text, probe) - 1
    if probe <= 0:
        return None
    body = _innermost_body(tree, probe - 1)
    node = body.parent if body is not None else None
    while node is not None:
        body = _body_of(node, "python")
        if body is not None:
            def_start = tree.span(node)[0]
            if cursor_width > indent_width(leading_ws(text[line_start(text, def_start) : def_start])):
                return body
        node = node.parent  # dedented out of this function; maybe still inside an enclosing one
    return None


def _python_body_span(tree: SyntaxTree, body: tree_sitter.Node) -> tuple[int, int]:
    """Whole lines of a Python block (the last newline outside), after a leading docstring: the
    docstring is kept as the spec the body is written from."""
    text = tree.text
    start, end = tree.span(body)
    statements = body.named_children
    first = statements[0] if statements else None
    if (
        first is not None
        and first.type == "expression_statement"
        and first.named_child_count == 1
        and first.named_children[0].type == "string"
    ):
        if len(statements) == 1:  # a stub: insert after the docstring's line, before its newline
            after_doc = line_end(text, tree.span(first)[1])
            return after_doc, after_doc
        start = tree.span(statements[1])[0]
    if not text[line_start(text, start) : start].strip():
        start = line_start(text, start)  # the body starts on its own line: take its indentation too
    return start, line_end(text, end)


def _brace_body_span(text: str, open_brace: int, close_brace: int) -> tuple[int, int]:
    """Between the braces; whole lines (from the first to the last non-blank one, the last newline
    outside) when ``{`` ends its line and ``}`` starts its line, so the fill never has to reproduce the
    brace lines' layout."""
    start, end = open_brace + 1, close_brace
    if text[start : line_end(text, start)].strip() or "\n" not in text[start:end]:
        return start, end
    first = next_line_start(text, start)
    close_line = line_start(text, end)
    if text[close_line:end].strip():  # `... }` on a code line: keep that line's text up to the brace
        return first, end
    if close_line == first:  # no line in between: insert after the `{`
        return line_end(text, start), line_end(text, start)
    last = previous_line_end(text, close_line)
    if not text[first:last].strip():  # only blank lines: fill the first one
        return first, line_end(text, first)
    while not text[first : line_end(text, first)].strip():
        first = next_line_start(text, first)
    while not text[line_start(text, last) : last].strip():
        last = previous_line_end(text, line_start(text, last))
    return first, last


def _heuristic_function_region(text: str, offset: int) -> Region | None:
    """Nearest header line above ``offset`` whose body (brace-delimited, else indented) holds it."""
    header = line_start(text, offset)
    while True:
        line = text[header : line_end(text, header)]
        if _HEADER.match(line):
            span = _heuristic_body(text, header)
            if span is not None and (header <= offset <= span[1]):
                return _function(text, *span)
        if header == 0:
            return None
        header = line_start(text, header - 1)


def _heuristic_body(text: str, header: int) -> tuple[int, int] | None:
    header_end = line_end(text, header)
    header_line = text[header:header_end]
    brace = header_line.rfind("{")
    if brace >= 0 and not header_line[brace + 1 :].strip():
        open_brace = header + brace
        close = first_excess_closer(text[open_brace + 1 :], None)
        if close is None:
            return None
        return _brace_body_span(text, open_brace, open_brace + 1 + close)
    header_width = indent_width(leading_ws(header_line))
    start = next_line_start(text, header)
    end = start
    position = start
    while position < len(text):
        line = text[position : line_end(text, position)]
        if line.strip():
            if indent_width(leading_ws(line)) <= header_width:
                break
            end = line_end(text, position)
        position = next_line_start(text, position)
    if end == start:
        return None
    return start, end
