"""Whether a fill may be written: it leaves no syntax error on or around its own lines, adds no error
anywhere else, and (Python) compiles.

The rule is absolute where the fill is. Comparing with the document whose gap is left empty is not enough:
that document is usually broken right there (``folder = `` does not parse), so a broken fill would count as
"no worse". So an error on the fill's lines is always the fill's; so is one on the next code line (an
unfinished expression swallows it) unless that line is broken without the fill's lines too. Further away,
errors the file already had (an unfinished function below, an unclosed bracket far above) neither reject a
fill nor excuse it: there the fill is compared with the empty gap.

tree-sitter-python accepts what Python rejects (unexpected indents, mixed tabs and spaces, an empty block),
so a Python fill is also compiled by Python itself: the top-level statements around it plus the next one
(where a bad indent shows). An error reported there is the fill's when it lies on the fill's lines or the next
code line, or further down when a neutral ``pass`` in the fill's place does not fail the same way.

Files in languages without a grammar only get the bracket-balance comparison.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import tree_sitter

from infill.regions.heuristics import bracket_errors
from infill.regions.languages import check_language, parser_for
from infill.regions.syntax import GapParses, bracket_window, encode, error_nodes, tree_of


@dataclass(frozen=True)
class _Window:
    """Bytes of the filled document the fill answers for: from the start of the gap's line to the end of the
    line where the fill ends."""

    start: int
    end: int


def first_valid_fill(
    prefix: str, fills: Sequence[str], suffix: str, language: str | None, *, ranked: bool = True
) -> int | None:
    """Index of the fill to write between ``prefix`` and ``suffix``, or None when no fill is valid.

    ``fills`` come in preference order; among the valid ones the fewest parse errors in the whole document
    wins (a fill may also mend an error), then the earliest. ``ranked=False``: the earliest valid one, judged
    one by one (a long list of fallbacks, longest first, costs only what it takes to reach a valid one).
    """
    if check_language(language) is None:
        near_prefix, near_suffix = bracket_window(prefix, suffix)
        baseline = bracket_errors(near_prefix + near_suffix)
        counts = [bracket_errors(near_prefix + fill + near_suffix) for fill in fills]
        passing = [(count if ranked else 0, index) for index, count in enumerate(counts) if count <= baseline]
        return min(passing)[1] if passing else None
    gap = GapParses(prefix, suffix, language)
    base_errors = error_nodes(gap.base.root_node)
    known_starts = {(node.start_byte, node.is_missing) for node in base_errors}
    # Errors of the document without the fill's lines at all, by whether the fill ends its last line.
    without_lines: dict[bool, set[tuple[int, bool]]] = {}
    passed: list[tuple[int, int, bytes, _Window, tree_sitter.Tree]] = []
    for index, fill in enumerate(fills):
        tree = gap.filled(fill)
        fill_data = encode(fill)
        window = _window(gap.prefix_data, fill_data, gap.suffix_data)
        errors = error_nodes(tree.root_node)
        if len(errors) > len(base_errors):
            continue  # more errors than without it: it broke something, wherever that shows
        if any(_belongs_to_fill(node, window, known_starts) for node in errors):
            continue
        data = gap.prefix_data + fill_data + gap.suffix_data
        next_line = _next_code_line_span(data, window.end)
        if next_line is not None:
            on_next = [node for node in errors if next_line[0] <= node.start_byte <= next_line[1]]
            if on_next:
                ends_line = fill_data.endswith(b"\n")
                if ends_line not in without_lines:
                    without_lines[ends_line] = _errors_without_lines(gap, window, ends_line)
                shift = window.end + 1 - window.start  # bytes the fill's lines take, with their newline
                if any(
                    (node.start_byte - shift, node.is_missing) not in without_lines[ends_line]
                    for node in on_next
                ):
                    continue
        if ranked:
            passed.append((len(errors), index, fill_data, window, tree))
        elif _accepted(gap, fill_data, window, tree):
            return index
    for _, index, fill_data, window, tree in sorted(passed, key=lambda item: item[:2]):
        if _accepted(gap, fill_data, window, tree):
            return index
    return None


def _accepted(gap: GapParses, fill_data: bytes, window: _Window, tree: tree_sitter.Tree) -> bool:
    """The last word on a fill tree-sitter passed: Python's compiler, for Python."""
    if gap.language != "python":
        return True
    data = gap.prefix_data + fill_data + gap.suffix_data
    # The indentation the code before the fill gives its first line; None when the fill starts its line.
    given = gap.prefix_data[window.start :] if window.start < len(gap.prefix_data) else None
    return _python_accepts(data, window, tree.root_node, None if given is None else _indent(given))


def fill_is_valid(prefix: str, fill: str, suffix: str, language: str | None) -> bool:
    """Whether ``fill`` may be written between ``prefix`` and ``suffix`` (see the module docstring)."""
    return first_valid_fill(prefix, [fill], suffix, language) == 0


def document_parses(text: str, language: str | None) -> bool:
    """No syntax error anywhere in ``text``: no ERROR or MISSING node (balanced brackets for unknown
    languages) and, for Python, compiled by Python itself."""
    if check_language(language) is None:
        return bracket_errors(text) == 0
    data = encode(text)
    # A fresh parse, not an edit of a cached tree: this is the last word before a file is written.
    if error_nodes(parser_for(language).parse(data).root_node):
        return False
    return language != "python" or _compile_error(data) is None


def _window(prefix_data: bytes, fill_data: bytes, suffix_data: bytes) -> _Window:
    start = prefix_data.rfind(b"\n") + 1
    end = len(prefix_data) + len(fill_data)
    if fill_data.endswith(b"\n"):
        end -= 1  # a whole-line fill: its last line ends at its own newline
    else:  # the fill's last line goes on into the suffix
        newline = suffix_data.find(b"\n")
        end += newline if newline >= 0 else len(suffix_data)
    return _Window(start, end)


def _next_code_line_span(data: bytes, after: int) -> tuple[int, int] | None:
    """(start, end) bytes of the first line after the one ending at ``after`` that is not blank."""
    start = after + 1
    while start < len(data):
        end = data.find(b"\n", start)
        end = len(data) if end < 0 else end
        if data[start:end].strip():
            return start, end
        start = end + 1
    return None


def _errors_without_lines(gap: GapParses, window: _Window, fill_ends_line: bool) -> set[tuple[int, bool]]:
    """(start, is_missing) of every error in the document with the fill's lines removed whole: the prefix up
    to the gap's line, then the suffix after the line the fill ends on. The same for every fill that ends (or
    does not end) its last line, since the fill goes with its lines."""
    head = gap.prefix_data[: window.start]
    if fill_ends_line:
        tail = gap.suffix_data
    else:
        newline = gap.suffix_data.find(b"\n")
        tail = b"" if newline < 0 else gap.suffix_data[newline + 1 :]
    tree = tree_of(head + tail, gap.language)
    return {(node.start_byte, node.is_missing) for node in error_nodes(tree.root_node)}


def _belongs_to_fill(node: tree_sitter.Node, window: _Window, known_starts: set[tuple[int, bool]]) -> bool:
    """An error on the fill's lines is always the fill's; one that encloses them (the fill broke the
    statement around it) is the fill's unless the empty gap had an error starting at the same place."""
    start, end = node.start_byte, node.end_byte
    if start < window.start and end > window.end:
        return (start, node.is_missing) not in known_starts
    if start == end:  # a MISSING node
        return window.start <= start <= window.end
    return start <= window.end and end > window.start


# -- Python: the real compiler ----------------------------------------------------------------------------


def _python_accepts(data: bytes, window: _Window, root: tree_sitter.Node, given_indent: bytes | None) -> bool:
    """``given_indent``: the fill's first line starts in the prefix, with this indentation before the fill;
    blanks the fill itself adds to it are the fill's (an empty indented line filled with `   x` is judged at
    the column the fill puts `x`, not the one the line had)."""
    unit_start, unit_end = _compile_unit(data, window, root)
    unit = data[unit_start:unit_end]
    error = _compile_error(unit)
    if error is None or error.lineno is None:
        return True
    first = data.count(b"\n", unit_start, window.start) + 1  # the fill's lines, 1-based within the unit
    last = data.count(b"\n", unit_start, window.end) + 1
    if error.lineno < first:
        return True  # an error above the fill, which the compiler met before reaching it
    if first < error.lineno <= last:
        return False  # on a line only the fill wrote
    # On the fill's first line or below it (a bad indent shows on the next line; an empty block above shows
    # on the line after it): the fill's error unless a neutral line in its place fails the same way there.
    neutral_error = _compile_error(_neutralised(unit, first, last, given_indent))
    shifted = first if error.lineno == first else error.lineno - (last - first)
    return neutral_error is not None and (type(neutral_error), neutral_error.lineno) == (type(error), shifted)


def _compile_unit(data: bytes, window: _Window, root: tree_sitter.Node) -> tuple[int, int]:
    """Bytes of the top-level statements that hold the fill's lines, plus the next statement: they compile
    on their own, and a fill that breaks indentation shows at the latest on the line after it."""
    children = [child for child in root.children if child.type != "comment"]
    if not children:
        return 0, len(data)
    first = next((i for i, child in enumerate(children) if child.end_byte > window.start), len(children) - 1)
    last = max((i for i, child in enumerate(children) if child.start_byte <= window.end), default=first)
    last = min(max(first, last) + 1, len(children) - 1)
    start = min(children[first].start_byte, window.start)
    return data.rfind(b"\n", 0, start) + 1, max(children[last].end_byte, window.end)


def _compile_error(source: bytes) -> SyntaxError | None:
    """The SyntaxError (IndentationError, TabError...) compiling ``source`` raises, if any."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # SyntaxWarnings (invalid escapes...) are not errors
        try:
            compile(source, "<fill>", "exec", dont_inherit=True)
        except SyntaxError as error:
            return error
        except (ValueError, RecursionError, MemoryError, OverflowError):
            return None  # null bytes, absurd nesting: nothing the fill can be judged on
    return None


def _neutralised(unit: bytes, first: int, last: int, given_indent: bytes | None) -> bytes:
    """``unit`` with lines first..last (1-based) replaced by one neutral line: ``pass``, or ``if 1:`` where a
    block follows (the next code line is deeper, or the given line ends with ``:``). Its indentation is
    ``given_indent`` when the line was given; otherwise what the code above asks for (deeper after an
    opener)."""
    line_given = given_indent is not None
    lines = unit.split(b"\n")
    above = next((line for line in reversed(lines[: first - 1]) if _is_code(line)), b"")
    below = next((line for line in lines[last:] if _is_code(line)), None)
    if given_indent is not None:
        indent = given_indent
    elif above.rstrip().endswith(b":"):
        indent = _indent(above) + b"    "
        if below is not None and _width(_indent(below)) > _width(_indent(above)):
            indent = _indent(below)
    else:
        indent = _indent(above)
    # A given line keeps its shape (`if x >|` + `1:` stays an opener); whole lines the fill wrote do not.
    opens = (line_given and lines[last - 1].rstrip().endswith(b":")) or (
        below is not None and _width(_indent(below)) > _width(indent)
    )
    return b"\n".join([*lines[: first - 1], indent + (b"if 1:" if opens else b"pass"), *lines[last:]])


def _is_code(line: bytes) -> bool:
    stripped = line.strip()
    return bool(stripped) and not stripped.startswith(b"#")


def _indent(line: bytes) -> bytes:
    return line[: len(line) - len(line.lstrip(b" \t"))]


def _width(indent: bytes) -> int:
    return len(indent.expandtabs(4))
