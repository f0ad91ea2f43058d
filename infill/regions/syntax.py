"""Parsed text: a tree-sitter tree plus conversions between str indices and UTF-8 byte offsets.

The public API speaks Python str indices (characters); tree-sitter speaks UTF-8 bytes. Every conversion
goes through ``SyntaxTree.byte_of`` / ``SyntaxTree.char_of`` so no caller slices bytes by hand.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Sequence

import tree_sitter

from infill.regions.heuristics import bracket_errors
from infill.regions.languages import check_language, parser_for

# Per thread (parsers and trees are not shared between threads): the last few parsed documents, and
# the last few (language, prefix, suffix) gaps, so that judging several candidates for one gap parses
# the document once and then only re-parses incrementally around each candidate.
_local = threading.local()
_TREE_CACHE_SIZE = 4
_BASE_CACHE_SIZE = 4
_BRACKET_WINDOW = 8_000  # characters each side of the gap for unknown languages

# Node types (substrings) that mean "inside a string literal" in the bundled grammars ("template"
# would also match C++ templates), and the code islands inside them (`${...}`, f-string `{...}`).
_STRING_TYPES = ("string", "text_block")
_INTERPOLATIONS = frozenset({"template_substitution", "interpolation"})


def _encode(text: str) -> bytes:
    # surrogatepass: editor buffers can hold lone surrogates; they must not make parsing fail.
    return text.encode("utf-8", "surrogatepass")


class SyntaxTree:
    """``text`` parsed with the grammar of ``language``."""

    def __init__(self, text: str, language: str) -> None:
        self.text = text
        self.language = language
        self.data = _encode(text)
        self._ascii = len(self.data) == len(text)
        self.tree = parser_for(language).parse(self.data)

    @property
    def root(self) -> tree_sitter.Node:
        return self.tree.root_node

    def byte_of(self, offset: int) -> int:
        """UTF-8 byte offset of the str index ``offset``."""
        if self._ascii:
            return offset
        return len(_encode(self.text[:offset]))

    def char_of(self, byte: int) -> int:
        """str index of the UTF-8 byte offset ``byte`` (node boundaries always fall between characters)."""
        if self._ascii:
            return byte
        try:
            return len(self.data[:byte].decode("utf-8", "surrogatepass"))
        except UnicodeDecodeError:  # a boundary inside invalid UTF-8: count the partial character
            return len(self.data[:byte].decode("utf-8", "replace"))

    def span(self, node: tree_sitter.Node) -> tuple[int, int]:
        """(start, end) of ``node`` in str indices."""
        return self.char_of(node.start_byte), self.char_of(node.end_byte)

    def node_covering(self, start: int, end: int) -> tree_sitter.Node:
        """The smallest named node that covers the str range [start, end)."""
        node = self.root.named_descendant_for_byte_range(self.byte_of(start), self.byte_of(end))
        return node if node is not None else self.root

    def leaf_at(self, offset: int) -> tree_sitter.Node | None:
        """The smallest node holding the character at ``offset`` (None past the end)."""
        if offset >= len(self.text):
            return None
        byte = self.byte_of(offset)
        return self.root.descendant_for_byte_range(byte, byte + 1)

    def in_string(self, offset: int) -> bool:
        """Whether the character at ``offset`` lies inside a string literal."""
        node = self.leaf_at(offset)
        byte = self.byte_of(offset)
        while node is not None:
            if node.type in _INTERPOLATIONS:
                return False
            if node.start_byte < byte and any(kind in node.type for kind in _STRING_TYPES):
                return True
            node = node.parent
        return False

    def comment_at(self, offset: int) -> tree_sitter.Node | None:
        """The comment node holding the character at ``offset``, if any."""
        node = self.leaf_at(offset)
        while node is not None:
            if "comment" in node.type:
                return node
            node = node.parent
        return None

    def error_count(self) -> int:
        return _count_errors(self.root)


def parse(text: str, language: str) -> SyntaxTree:
    """``text`` parsed, reusing this thread's recent parses: an editor asks about one document several
    times in a row (code actions list holes and functions, then resolve one)."""
    cache: OrderedDict[tuple[str, str], SyntaxTree] | None = getattr(_local, "trees", None)
    if cache is None:
        cache = _local.trees = OrderedDict()
    key = (language, text)
    tree = cache.get(key)
    if tree is None:
        tree = cache[key] = SyntaxTree(text, language)
        if len(cache) > _TREE_CACHE_SIZE:
            cache.popitem(last=False)
    else:
        cache.move_to_end(key)
    return tree


def _count_errors(root: tree_sitter.Node) -> int:
    """ERROR and MISSING nodes; only subtrees flagged has_error are visited."""
    if not root.has_error:
        return 0
    count = 0
    stack = [root]
    while stack:
        node = stack.pop()
        if node.is_error or node.is_missing:
            count += 1
        stack.extend(child for child in node.children if child.has_error or child.is_missing)
    return count


def _base_tree(language: str, prefix: str, suffix: str) -> tree_sitter.Tree:
    cache: OrderedDict[tuple[str, str, str], tree_sitter.Tree] | None = getattr(_local, "bases", None)
    if cache is None:
        cache = _local.bases = OrderedDict()
    key = (language, prefix, suffix)
    tree = cache.get(key)
    if tree is None:
        tree = cache[key] = parser_for(language).parse(_encode(prefix + suffix))
        if len(cache) > _BASE_CACHE_SIZE:
            cache.popitem(last=False)
    else:
        cache.move_to_end(key)
    return tree


def _point_after(text: str, start: tuple[int, int]) -> tuple[int, int]:
    """The tree-sitter point (row, byte column) reached by writing ``text`` from point ``start``."""
    newlines = text.count("\n")
    if not newlines:
        return start[0], start[1] + len(_encode(text))
    return start[0] + newlines, len(_encode(text[text.rfind("\n") + 1 :]))


def gap_error_counts(
    prefix: str, fills: Sequence[str], suffix: str, language: str | None
) -> tuple[int, list[int]]:
    """Parse errors of ``prefix + suffix`` and of ``prefix + fill + suffix`` for every fill.

    The gap's document is parsed once; each fill is an edit of that tree followed by an incremental
    re-parse, which gives the same tree as a full parse at a fraction of its cost on large files.
    """
    if check_language(language) is None:
        # Bracket balance is local: a window of whole lines around the gap judges a fill as well as
        # the whole file would, and keeps every check cheap.
        cut = prefix.rfind("\n", 0, max(0, len(prefix) - _BRACKET_WINDOW)) + 1
        near_prefix = prefix[cut:]
        cut = suffix.find("\n", _BRACKET_WINDOW)
        near_suffix = suffix if cut < 0 else suffix[:cut]
        baseline = bracket_errors(near_prefix + near_suffix)
        return baseline, [bracket_errors(near_prefix + fill + near_suffix) for fill in fills]
    base = _base_tree(language, prefix, suffix)
    prefix_data, suffix_data = _encode(prefix), _encode(suffix)
    at = len(prefix_data)
    start_point = _point_after(prefix, (0, 0))
    counts = []
    for fill in fills:
        fill_data = _encode(fill)
        edited = base.copy()
        edited.edit(
            start_byte=at,
            old_end_byte=at,
            new_end_byte=at + len(fill_data),
            start_point=start_point,
            old_end_point=start_point,
            new_end_point=_point_after(fill, start_point),
        )
        tree = parser_for(language).parse(prefix_data + fill_data + suffix_data, edited)
        counts.append(_count_errors(tree.root_node))
    return _count_errors(base.root_node), counts


def parse_error_count(text: str, language: str | None) -> int:
    """Syntax errors in ``text``: tree-sitter ERROR + MISSING nodes, or unbalanced brackets when the
    language is unknown."""
    if check_language(language) is None:
        return bracket_errors(text)
    return parse(text, language).error_count()
