"""What a `<|fill|>` hole sits in, and what stands in a hole while another one is judged.

A hole inside a comment or a string literal is filled with comment or string text: the fill must stay inside
that literal (``stays_in_literal``), and one that ends on the hole's line stays on it. While one fill of a
document with several holes is judged, every other hole holds a neutral placeholder (``neutral_placeholder``:
``...`` in Python, where the code allows it), so that the broken code of an empty hole can neither hide a
broken fill (Python's compiler stops at the first error) nor be blamed on it.
"""

from __future__ import annotations

from typing import Literal

import tree_sitter

from infill.regions.languages import check_language
from infill.regions.syntax import _INTERPOLATIONS, _STRING_TYPES, SyntaxTree, parse
from infill.regions.validity import first_valid_fill

# Kinds of fill for a hole inside a literal: "text_line" when the literal ends on the hole's line (a line
# comment, a one-line string: the fill never breaks the line), "text" when it spans lines (a docstring).
LiteralKind = Literal["text_line", "text"]
# Placeholders tried in order: the first one valid in the hole's place stands in it ("" when none is).
_PLACEHOLDERS = ("...", "0", "pass", "None", "null", "x")


def hole_literal_kind(prefix: str, suffix: str, language: str | None) -> LiteralKind | None:
    """ "text_line" / "text" when a hole between ``prefix`` and ``suffix`` lies inside a comment or a string
    literal (see LiteralKind); None for code, and for languages without a grammar."""
    if check_language(language) is None or not prefix:
        return None
    tree = parse(prefix + suffix, language)
    span = _literal_span(tree, len(prefix))
    if span is None:
        return None
    return "text" if "\n" in tree.text[span[0] : span[1]].rstrip("\n") else "text_line"


def stays_in_literal(prefix: str, fill: str, suffix: str, language: str | None) -> bool:
    """Whether ``fill`` between ``prefix`` and ``suffix`` is text of the literal the gap lies in: that literal
    still ends where it ended, ``len(fill)`` characters later (the fill neither closes nor extends it)."""
    if check_language(language) is None:
        return True
    empty = _literal_span(parse(prefix + suffix, language), len(prefix))
    filled = _literal_span(parse(prefix + fill + suffix, language), len(prefix))
    return empty is not None and filled is not None and filled == (empty[0], empty[1] + len(fill))


def neutral_placeholder(prefix: str, suffix: str, language: str | None) -> str:
    """The first of ``_PLACEHOLDERS`` that is valid code between ``prefix`` and ``suffix`` ("" when none is,
    and in a comment or string, where any text will do)."""
    if hole_literal_kind(prefix, suffix, language) is not None:
        return ""
    chosen = first_valid_fill(prefix, _PLACEHOLDERS, suffix, language, ranked=False)
    return "" if chosen is None else _PLACEHOLDERS[chosen]


def _literal_span(tree: SyntaxTree, offset: int) -> tuple[int, int] | None:
    """(start, end) of the comment or string literal a gap at ``offset`` lies in: the character before the
    gap belongs to it, and it goes on after the gap (a comment may end right there, at its line end)."""
    if offset == 0:
        return None
    node: tree_sitter.Node | None = tree.leaf_at(offset - 1)
    while node is not None:
        start, end = tree.span(node)
        if "comment" in node.type and end >= offset:
            return start, end
        if any(kind in node.type for kind in _STRING_TYPES) and start < offset < end:
            return _outermost_string(tree, node)
        if node.type in _INTERPOLATIONS:
            return None  # code inside an f-string or a template literal
        node = node.parent
    return None


def _outermost_string(tree: SyntaxTree, node: tree_sitter.Node) -> tuple[int, int]:
    """A string's pieces (``string_content``, ``string_start``) are strings too: the span of the whole."""
    while node.parent is not None and any(kind in node.parent.type for kind in _STRING_TYPES):
        node = node.parent
    return tree.span(node)
