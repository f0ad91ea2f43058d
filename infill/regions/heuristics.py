"""Line and bracket heuristics: what every language gets, and all an unknown language gets.

Offsets are Python str indices. The bracket scanner skips string literals and comments well enough for
counting brackets (it does not tokenize any language exactly).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterator
from functools import cache

from infill.regions.languages import default_indent_unit

OPENERS = "([{"
CLOSERS = ")]}"
_MATCH = {")": "(", "]": "[", "}": "{"}


def common_prefix_length(a: str | bytes, b: str | bytes) -> int:
    """Length of the longest common prefix of two texts of one type: a binary search over slice comparisons
    (memcmp in C, not a loop over characters)."""
    low, high = 0, min(len(a), len(b))
    while low < high:
        middle = (low + high + 1) // 2
        if a[low:middle] == b[low:middle]:
            low = middle
        else:
            high = middle - 1
    return low


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
    """One indentation step as the file itself uses it: the usual step into a block (from the nearest
    shallower line above to the line after a block opener, ``:`` in Python, ``{`` elsewhere), so comments
    and aligned continuation lines do not count; tabs when most such steps are tabs."""
    steps: Counter[int] = Counter()
    tab_steps = 0
    widths: list[int] = []  # of the code lines so far
    opens = False
    openers = ":" if language == "python" else "{" if language is not None else ":{"
    for line in text.splitlines():
        code = line.rstrip()
        if not code or code.lstrip().startswith(_COMMENT_STARTS):
            continue
        ws = leading_ws(code)
        width = indent_width(ws)
        if opens:
            # The statement that opened the block may have started lines above (aligned parameters).
            shallower = next((w for w in reversed(widths[-50:]) if w < width), None)
            if shallower is not None and ws.startswith("\t"):
                tab_steps += 1
            elif shallower is not None:
                steps[width - shallower] += 1
        widths.append(width)
        opens = code.endswith(openers)
    if tab_steps > sum(steps.values()):
        return "\t"
    if not steps:
        return default_indent_unit(language)
    # The most common step (ties: the smaller).
    return " " * max(sorted(steps), key=lambda step: steps[step])


_COMMENT_STARTS = ("#", "//", "/*", "*", "--")


@cache
def _lexer(language: str | None) -> re.Pattern[str]:
    """One alternation that finds, left to right, the comments, string literals and brackets of a text;
    everything else is skipped by the regex engine. A quote that never closes (on its line, for most
    quotes) matches nothing and so counts as code."""
    comments = []
    if language is None:
        # In an unknown language "#" and "--" may be operators; only take them after whitespace.
        comments += [r"//[^\n]*", r"(?:(?<=\s)|^)(?:#|--)[^\n]*", r"/\*[\s\S]*?(?:\*/|\Z)"]
    elif language == "python":
        comments += [r"#[^\n]*"]
    else:
        comments += [r"//[^\n]*", r"/\*[\s\S]*?(?:\*/|\Z)"]
    # Escaped newlines continue a literal; only some literals may hold a raw newline.
    strings = [r'"(?:\\[\s\S]|[^"\\\n])*"', r"`(?:\\[\s\S]|[^`\\])*`"]
    if language == "python":
        strings = [r'"""[\s\S]*?(?:"""|\Z)', r"'''[\s\S]*?(?:'''|\Z)", *strings]
    elif language == "rust":
        strings = [r'b?r(?P<hashes>#*)"[\s\S]*?"(?P=hashes)', r'"(?:\\[\s\S]|[^"\\])*"', *strings[1:]]
    elif language == "java":
        strings = [r'"""[\s\S]*?(?:"""|\Z)', *strings]
    elif language == "cpp":
        strings = [r'R"(?P<delimiter>[^()\\\s]{0,16})\([\s\S]*?\)(?P=delimiter)"', *strings]
    if language in ("rust", "c", "cpp", "java", "go"):
        # A char literal ('x', '\n', '\u{1F600}'); any other quote is a Rust lifetime: plain code.
        strings.append(r"'(?:\\u\{[0-9a-fA-F]+\}|\\.[^'\n]{0,8}?|[^\\'\n])'")
    else:
        strings.append(r"'(?:\\[\s\S]|[^'\\\n])*'")
    alternatives = [
        f"(?P<comment>{'|'.join(comments)})",
        f"(?:{'|'.join(strings)})",
        r"(?P<bracket>[()\[\]{}])",
    ]
    return re.compile("|".join(alternatives), re.MULTILINE)


def bracket_positions(text: str, language: str | None) -> Iterator[int]:
    """Offsets of the brackets in ``text`` that are code (outside string literals and comments)."""
    for match in _lexer(language).finditer(text):
        if match.lastgroup == "bracket":
            yield match.start()


def literal_spans(text: str, language: str | None) -> list[tuple[int, int]]:
    """(start, end) of the string literals and comments in ``text``, in order."""
    return [match.span() for match in _lexer(language).finditer(text) if match.lastgroup != "bracket"]


def blank_comments(text: str, language: str | None) -> str:
    """``text`` with its comments replaced by spaces (offsets unchanged)."""
    parts, position = [], 0
    for match in _lexer(language).finditer(text):
        if match.lastgroup == "comment":
            parts += [text[position : match.start()], " " * (match.end() - match.start())]
            position = match.end()
    parts.append(text[position:])
    return "".join(parts)


def bracket_errors(text: str, language: str | None = None) -> int:
    """Mismatched or unmatched brackets outside strings and comments: a parse-error proxy."""
    stack: list[str] = []
    errors = 0
    for i in bracket_positions(text, language):
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
    for i in bracket_positions(text, language):
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
    return len(missing_closers(text, language))


def missing_closers(text: str, language: str | None) -> str:
    """The closing brackets that would close ``text``'s unclosed openers, innermost first."""
    stack: list[str] = []
    for i in bracket_positions(text, language):
        ch = text[i]
        if ch in OPENERS:
            stack.append(ch)
        elif stack and stack[-1] == _MATCH[ch]:
            stack.pop()
    return "".join(CLOSERS[OPENERS.index(ch)] for ch in reversed(stack))
