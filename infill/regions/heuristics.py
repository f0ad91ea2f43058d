"""Line and bracket heuristics: what every language gets, and all an unknown language gets.

Offsets are Python str indices. The bracket scanner skips string literals and comments well enough for
counting brackets (it does not tokenize any language exactly).
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from infill.regions.languages import default_indent_unit, line_comment_leaders

OPENERS = "([{"
CLOSERS = ")]}"
_MATCH = {")": "(", "]": "[", "}": "{"}
# A Rust/C-family char literal ('x', '\n', '\u{1F600}'); a lone quote elsewhere is a Rust lifetime.
_CHAR_LITERAL = re.compile(r"'(?:\\u\{[0-9a-fA-F]+\}|\\.[^'\n]{0,8}?|[^\\'\n])'")


def line_start(text: str, offset: int) -> int:
    return text.rfind("\n", 0, offset) + 1


def line_end(text: str, offset: int) -> int:
    """Offset of the end of the line holding ``offset``, before its "\\n" (and a "\\r" before that)."""
    end = text.find("\n", offset)
    if end < 0:
        return len(text)
    return end - 1 if end > offset and text[end - 1] == "\r" else end


def previous_line_end(text: str, begin: int) -> int:
    """End of the line before the line that starts at ``begin`` (> 0)."""
    return line_end(text, line_start(text, begin - 1))


def next_line_start(text: str, offset: int) -> int:
    """Start of the line after the one holding ``offset`` (len(text) on the last line)."""
    end = text.find("\n", offset)
    return len(text) if end < 0 else end + 1


def leading_ws(line: str) -> str:
    return line[: len(line) - len(line.lstrip(" \t"))]


def indent_width(ws: str) -> int:
    return len(ws.expandtabs(4))


def line_number(text: str, offset: int) -> int:
    """1-based line number of ``offset``."""
    return text.count("\n", 0, offset) + 1


def detect_indent_unit(text: str, language: str | None) -> str:
    """One indentation step as the file itself uses it (tabs, or the smallest space step)."""
    steps: dict[int, int] = {}
    previous = 0
    for line in text.splitlines():
        if not line.strip():
            continue
        ws = leading_ws(line)
        if ws.startswith("\t"):
            return "\t"
        width = len(ws)
        if width > previous:
            steps[width - previous] = steps.get(width - previous, 0) + 1
        previous = width
    if not steps:
        return default_indent_unit(language)
    # The most common positive step (ties: the smaller), so one odd continuation line does not decide.
    step = max(sorted(steps), key=lambda s: steps[s])
    return " " * step


def _comment_starts(text: str, i: int, leaders: tuple[str, ...], known_language: bool) -> bool:
    for leader in leaders:
        if text.startswith(leader, i):
            # In an unknown language "#" and "--" may be operators; only take them after whitespace.
            return known_language or leader == "//" or i == 0 or text[i - 1] in " \t\n"
    return False


def code_positions(text: str, language: str | None) -> Iterator[int]:
    """Offsets of characters that are code: not inside string literals or comments."""
    leaders = line_comment_leaders(language)
    block_comments = language != "python"
    i, n = 0, len(text)
    in_block_comment = False
    while i < n:
        ch = text[i]
        if in_block_comment:
            if text.startswith("*/", i):
                in_block_comment = False
                i += 2
            else:
                i += 1
            continue
        if block_comments and text.startswith("/*", i):
            in_block_comment = True
            i += 2
            continue
        if ch in "#/-" and _comment_starts(text, i, leaders, language is not None):
            i = line_end(text, i)
            continue
        if ch in "\"'`":
            if ch == "'" and language in ("rust", "c", "cpp", "java", "go"):
                literal = _CHAR_LITERAL.match(text, i)
                if literal is None:  # a Rust lifetime or a stray quote: plain code
                    yield i
                    i += 1
                else:
                    i = literal.end()
                continue
            close = _string_end(text, i, ch)
            if close is None:
                yield i
                i += 1
            else:
                i = close
            continue
        yield i
        i += 1


def _string_end(text: str, start: int, quote: str) -> int | None:
    """End offset of the string literal opening at ``start``; None when it does not close on its line
    (backtick templates may span lines)."""
    i = start + 1
    n = len(text)
    while i < n:
        ch = text[i]
        if ch == "\\":
            i += 2
            continue
        if ch == quote:
            return i + 1
        if ch == "\n" and quote != "`":
            return None
        i += 1
    return None


def bracket_errors(text: str, language: str | None = None) -> int:
    """Mismatched or unmatched brackets outside strings and comments: a parse-error proxy."""
    stack: list[str] = []
    errors = 0
    for i in code_positions(text, language):
        ch = text[i]
        if ch in OPENERS:
            stack.append(ch)
        elif ch in CLOSERS:
            if stack and stack[-1] == _MATCH[ch]:
                stack.pop()
            else:
                errors += 1
    return errors + len(stack)


def bracket_depths(text: str, language: str | None) -> Iterator[tuple[int, int]]:
    """(offset, depth after it) for every bracket in code positions; depth starts at 0."""
    depth = 0
    for i in code_positions(text, language):
        ch = text[i]
        if ch in OPENERS:
            depth += 1
            yield i, depth
        elif ch in CLOSERS:
            depth -= 1
            yield i, depth


def first_excess_closer(text: str, language: str | None, allowance: int = 0) -> int | None:
    """Offset of the first closing bracket that closes more than ``text`` opened plus ``allowance``."""
    for i, depth in bracket_depths(text, language):
        if depth < -allowance:
            return i
    return None


def unclosed_openers(text: str, language: str | None) -> int:
    """Opening brackets in ``text`` that ``text`` itself never closes (e.g. ``foo(a,`` -> 1)."""
    open_count = 0
    for i in code_positions(text, language):
        if text[i] in OPENERS:
            open_count += 1
        elif text[i] in CLOSERS and open_count:
            open_count -= 1
    return open_count
