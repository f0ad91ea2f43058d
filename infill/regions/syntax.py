"""Parsed text: a tree-sitter tree plus conversions between str indices and UTF-8 byte offsets.

The public API speaks Python str indices (characters); tree-sitter speaks UTF-8 bytes. Every conversion
goes through ``SyntaxTree.byte_of`` / ``SyntaxTree.char_of`` so no caller slices bytes by hand.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass

import tree_sitter

from infill.regions.heuristics import bracket_errors, common_prefix_length
from infill.regions.languages import check_language, parser_for

# Per thread (parsers and trees are not shared between threads): the last few parsed texts. A new text is
# parsed as an edit of the nearest of them (``tree_of``), so an editor's next keystroke, the same document
# with a gap, or a candidate fill costs an incremental re-parse around what changed, not a full parse.
_local = threading.local()
_TREE_CACHE_SIZE = 8
_BRACKET_WINDOW = 8_000  # characters each side of the gap for unknown languages

# Node types (substrings) that mean "inside a string literal" in the bundled grammars ("template"
# would also match C++ templates), and the code islands inside them (`${...}`, f-string `{...}`).
_STRING_TYPES = ("string", "text_block")
_INTERPOLATIONS = frozenset({"template_substitution", "interpolation"})


def encode(text: str) -> bytes:
    # surrogatepass: editor buffers can hold lone surrogates; they must not make parsing fail.
    return text.encode("utf-8", "surrogatepass")


class SyntaxTree:
    """``text`` parsed with the grammar of ``language``."""

    def __init__(self, text: str, language: str) -> None:
        self.text = text
        self.language = language
        self.data = encode(text)
        self._ascii = len(self.data) == len(text)
        self.tree = tree_of(self.data, language)

    @property
    def root(self) -> tree_sitter.Node:
        return self.tree.root_node

    def byte_of(self, offset: int) -> int:
        """UTF-8 byte offset of the str index ``offset``."""
        if self._ascii:
            return offset
        return len(encode(self.text[:offset]))

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
    """``text`` parsed (an edit of this thread's nearest recent parse, see ``tree_of``)."""
    return SyntaxTree(text, language)


def _count_errors(root: tree_sitter.Node) -> int:
    """ERROR and MISSING nodes."""
    return len(error_nodes(root))


def tree_of(data: bytes, language: str) -> tree_sitter.Tree:
    """``data`` (UTF-8) parsed with the grammar of ``language``.

    The thread keeps its last few trees. A text seen before gets its tree back; any other is parsed as one
    edit of the most similar of them (the bytes between their common prefix and common suffix), so that
    tree-sitter re-parses only around the change and reuses the rest: the same tree as a full parse for what
    editors send (tests check it), at a fraction of the cost on large files. In text broken in many places
    tree-sitter's error recovery can differ between the two (seen once in Go after 60 random edits), which
    is why ``validity.document_parses``, the last check before a file is written, parses from scratch.
    """
    cache: OrderedDict[tuple[str, bytes], tree_sitter.Tree] | None = getattr(_local, "trees", None)
    if cache is None:
        cache = _local.trees = OrderedDict()
    key = (language, data)
    tree = cache.get(key)
    if tree is not None:
        cache.move_to_end(key)
        return tree
    nearest: tuple[int, TextEdit, tree_sitter.Tree] | None = None
    for (cached_language, cached_data), cached_tree in cache.items():
        if cached_language == language:
            edit = TextEdit.between(cached_data, data)
            if nearest is None or edit.size < nearest[0]:
                nearest = (edit.size, edit, cached_tree)
    parser = parser_for(language)
    if nearest is None or nearest[0] > len(data) // 2:
        tree = parser.parse(data)
    else:
        _, edit, old = nearest
        edited = old.copy()
        edit.apply(edited)
        tree = parser.parse(data, edited)
    cache[key] = tree
    if len(cache) > _TREE_CACHE_SIZE:
        cache.popitem(last=False)
    return tree


@dataclass(frozen=True)
class TextEdit:
    """One replacement turning ``old`` into ``new`` bytes, as tree-sitter's ``Tree.edit`` takes it."""

    start: int
    old_end: int
    new_end: int
    start_point: tuple[int, int]
    old_end_point: tuple[int, int]
    new_end_point: tuple[int, int]

    @property
    def size(self) -> int:
        """Bytes removed plus bytes written."""
        return (self.old_end - self.start) + (self.new_end - self.start)

    @classmethod
    def between(cls, old: bytes, new: bytes) -> TextEdit:
        """The span between the common prefix and the common suffix of ``old`` and ``new``."""
        start = common_prefix_length(old, new)
        # The common suffix may not reach into the common prefix of either text.
        tail = common_prefix_length(old[start:][::-1], new[start:][::-1])
        old_end, new_end = len(old) - tail, len(new) - tail
        return cls(
            start,
            old_end,
            new_end,
            _point_of(old, start),
            _point_of(old, old_end),
            _point_of(new, new_end),
        )

    def apply(self, tree: tree_sitter.Tree) -> None:
        tree.edit(
            start_byte=self.start,
            old_end_byte=self.old_end,
            new_end_byte=self.new_end,
            start_point=self.start_point,
            old_end_point=self.old_end_point,
            new_end_point=self.new_end_point,
        )


def _point_of(data: bytes, offset: int) -> tuple[int, int]:
    """tree-sitter's point (row, byte column) of byte ``offset``."""
    return data.count(b"\n", 0, offset), offset - (data.rfind(b"\n", 0, offset) + 1)


def _point_after(text: str, start: tuple[int, int]) -> tuple[int, int]:
    """The tree-sitter point (row, byte column) reached by writing ``text`` from point ``start``."""
    newlines = text.count("\n")
    if not newlines:
        return start[0], start[1] + len(encode(text))
    return start[0] + newlines, len(encode(text[text.rfind("\n") + 1 :]))


def gap_error_counts(
    prefix: str, fills: Sequence[str], suffix: str, language: str | None
) -> tuple[int, list[int]]:
    """Parse errors of ``prefix + suffix`` and of ``prefix + fill + suffix`` for every fill."""
    if check_language(language) is None:
        near_prefix, near_suffix = bracket_window(prefix, suffix)
        baseline = bracket_errors(near_prefix + near_suffix)
        return baseline, [bracket_errors(near_prefix + fill + near_suffix) for fill in fills]
    gap = GapParses(prefix, suffix, language)
    return _count_errors(gap.base.root_node), [_count_errors(gap.filled(fill).root_node) for fill in fills]


def bracket_window(prefix: str, suffix: str) -> tuple[str, str]:
    """Whole lines of ``prefix`` and ``suffix`` near the gap. Bracket balance is local: this window judges
    a fill as well as the whole file would, and keeps every check cheap."""
    cut = prefix.rfind("\n", 0, max(0, len(prefix) - _BRACKET_WINDOW)) + 1
    cut_suffix = suffix.find("\n", _BRACKET_WINDOW)
    return prefix[cut:], suffix if cut_suffix < 0 else suffix[:cut_suffix]


class GapParses:
    """One gap between ``prefix`` and ``suffix``: its document (the gap empty) is parsed once, and each fill
    is an edit of that tree followed by an incremental re-parse, which gives the same tree as a full parse at
    a fraction of its cost on large files."""

    def __init__(self, prefix: str, suffix: str, language: str) -> None:
        self.language = language
        self.prefix_data, self.suffix_data = encode(prefix), encode(suffix)
        self.base = tree_of(self.prefix_data + self.suffix_data, language)
        self._start_point = _point_after(prefix, (0, 0))

    def filled(self, fill: str) -> tree_sitter.Tree:
        """The tree of ``prefix + fill + suffix``."""
        fill_data = encode(fill)
        at = len(self.prefix_data)
        edited = self.base.copy()
        edited.edit(
            start_byte=at,
            old_end_byte=at,
            new_end_byte=at + len(fill_data),
            start_point=self._start_point,
            old_end_point=self._start_point,
            new_end_point=_point_after(fill, self._start_point),
        )
        return parser_for(self.language).parse(self.prefix_data + fill_data + self.suffix_data, edited)


def error_nodes(root: tree_sitter.Node) -> list[tree_sitter.Node]:
    """Every ERROR and MISSING node under ``root`` (nested ones too); only subtrees flagged has_error are
    visited."""
    found: list[tree_sitter.Node] = []
    if not root.has_error:
        return found
    stack = [root]
    while stack:
        node = stack.pop()
        if node.is_error or node.is_missing:
            found.append(node)
        stack.extend(child for child in node.children if child.has_error or child.is_missing)
    return found


def parse_error_count(text: str, language: str | None) -> int:
    """Syntax errors in ``text``: tree-sitter ERROR + MISSING nodes, or unbalanced brackets when the
    language is unknown."""
    if check_language(language) is None:
        return bracket_errors(text)
    return parse(text, language).error_count()
