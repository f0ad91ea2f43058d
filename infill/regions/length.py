"""Where a fill ends: the syntactic unit a `<|fill|>` hole stands for, runaway repetition, text that repeats
the suffix, and the shorter prefixes of a candidate to fall back on when the whole of it is not valid code.

A diffusion model fills a canvas of fixed length and rarely stops where the code does (`return <|fill|>`
comes back as ``False\\n\\n\\ndef\\n =...``). These cuts decide how much of what it wrote is the fill;
finalize.py then judges the result with validity.py. All of them are pure text functions: no model, no tree.
"""

from __future__ import annotations

import re
from typing import Literal

from infill.regions.heuristics import (
    bracket_depths,
    first_excess_closer,
    indent_width,
    leading_ws,
    line_start,
    literal_spans,
    unclosed_openers,
)

# What a hole stands for, read from the code around it: "inline" (code before or after it on its line: it ends
# with its expression), "statement" (alone on its line among other statements), "block" (alone on its line as
# the whole body after an opener: it ends at its dedent).
HoleUnit = Literal["inline", "statement", "block"]

# Lexical tokens for cut points and repetition: words, runs of one quote character (a cut never splits `"""`),
# then single punctuation characters.
_TOKEN = re.compile(r"\w+|([\"'`])\1*|[^\w\s]")
# A word that is one piece of three or more characters written twice or more (`pathpath`, `axisaxis`): the
# model stutters. Shorter pieces are real words too often (`dodo`, `__`), and a run of one letter (`xxxx`,
# `FFFF`) is left to the validity check: it is a placeholder or a mask more often than a stutter.
_DOUBLED_WORD = re.compile(r"(_*[A-Za-z]\w{2,}?)\1+")
# A word this many times in a row (`self self self`), or a run of 2..4 tokens holding a word this many times
# (`.axis.axis.axis.axis`), is a stutter; `None, None, None` is not.
_WORD_REPEATS = 3
_RUN_REPEATS = 4
# Shorter prefixes tried when a candidate is not valid as a whole, longest first: each costs a validity check.
MAX_PREFIX_TRIES = 24
# Tokens of the suffix's line that, written by the fill too, mark where the fill began repeating the suffix.
_SUFFIX_ECHO_TOKENS = 2


def hole_unit(prefix: str, suffix: str, language: str | None) -> HoleUnit:
    """The unit of a hole between ``prefix`` and ``suffix`` (see HoleUnit). A gap that starts a line (the
    prefix ends with a line break) is whole lines: a statement, or a block."""
    before = prefix[line_start(prefix, len(prefix)) :]
    if before:
        newline = suffix.find("\n")
        if before.strip() or (suffix if newline < 0 else suffix[:newline]).strip():
            return "inline"
        rest = suffix[newline + 1 :] if newline >= 0 else ""
    else:
        rest = suffix
    above = _previous_code_line(prefix[: len(prefix) - len(before)], language)
    opener = ":" if language == "python" else "{" if language is not None else ":{"
    if above is None or not above.rstrip().endswith(tuple(opener)):
        return "statement"
    # After an opener: the whole body when nothing else of that body follows.
    below = _next_code_line(rest, language)
    body_width = indent_width(before) if before else indent_width(leading_ws(above)) + 1
    if below is None or indent_width(leading_ws(below)) < body_width:
        return "block"
    return "statement"


def cut_inline(prefix: str, candidate: str, language: str | None) -> str:
    """An expression ends with its expression: before the first bracket that closes more than the fill and its
    line opened, and before the first line break outside the brackets the fill opened itself."""
    current_line = prefix[line_start(prefix, len(prefix)) :]
    cut = len(candidate)
    closer = first_excess_closer(candidate, language, unclosed_openers(current_line, language))
    if closer is not None:
        cut = closer
    newline = _first_line_break_at_depth_zero(candidate[:cut], language)
    return candidate[: cut if newline is None else newline]


def cut_statement(prefix: str, candidate: str, language: str | None) -> str:
    """A statement ends at the first line break outside brackets and literals after which the next code line
    is no deeper than the statement's first line (a compound statement keeps its body)."""
    current_line = prefix[line_start(prefix, len(prefix)) :]
    first_code = next((line for line in (current_line + candidate).split("\n") if line.strip()), "")
    base = indent_width(leading_ws(first_code))
    position = 0
    while True:
        newline = _first_line_break_at_depth_zero(candidate, language, position)
        if newline is None:
            return candidate
        # A gap of whole lines keeps the line break that ends its statement.
        end = newline + 1 if not current_line else newline
        if language is not None and language != "python":
            return candidate[:end]  # brace languages: one line; a block's braces keep it together
        below = _next_code_line(candidate[newline + 1 :], language)
        if below is None or indent_width(leading_ws(below)) <= base:
            return candidate[:end]
        position = newline + 1


def cut_repetition(text: str) -> str:
    """``text`` up to the first token where the model starts stuttering: a word made of one piece written
    twice (`pathpath`), or a word or a run of two to four tokens repeated in a row (see _WORD_REPEATS)."""
    tokens = [(match.start(), match.group()) for match in _TOKEN.finditer(text)]
    for index, (start, token) in enumerate(tokens):
        doubled = _DOUBLED_WORD.fullmatch(token)
        if doubled is not None and len(set(doubled.group(1).lstrip("_"))) > 1:
            return text[:start].rstrip()
        for size in range(1, 5):
            repeats = _WORD_REPEATS if size == 1 else _RUN_REPEATS
            first = index - size * (repeats - 1)
            if first < 0:
                continue
            run = [word for _, word in tokens[first : index + size]]
            if len(run) < size * repeats or not any(word[0].isalpha() for word in run):
                continue
            pieces = {tuple(run[k : k + size]) for k in range(0, len(run), size)}
            if len(pieces) == 1:
                return text[: tokens[first + size][0]].rstrip()
    return text


def cut_suffix_echo(candidate: str, suffix: str) -> str:
    """``candidate`` up to where it writes the start of the suffix's line again (its first two tokens, at
    least two characters), so a fill in the middle of a line never repeats what follows it."""
    newline = suffix.find("\n")
    rest = (suffix if newline < 0 else suffix[:newline]).strip()
    tokens = [match.group() for match in _TOKEN.finditer(rest)][:_SUFFIX_ECHO_TOKENS]
    if len(tokens) < _SUFFIX_ECHO_TOKENS or len("".join(tokens)) < 2:
        return candidate
    pattern = r"\s*".join(re.escape(token) for token in tokens)
    if tokens[0][0].isalnum() or tokens[0][0] == "_":
        pattern = r"(?<!\w)" + pattern  # a whole word, not the end of a longer one
    match = re.search(pattern, candidate)
    return candidate if match is None else candidate[: match.start()].rstrip(" \t")


def shorter_prefixes(text: str, starts_statement: bool = False) -> list[str]:
    """Prefixes of ``text`` to fall back on, without trailing whitespace and without the empty one; at most
    MAX_PREFIX_TRIES. Whole lines first, longest first (a complete first line beats a torn second one), then
    token boundaries in the first line, longest first. ``starts_statement``: the gap starts its line, where a
    last line of one token (`total` cut from `total = = 1`) is a valid statement no one wants."""
    whole = text.rstrip()
    first_line_end = text.find("\n")
    first_line = text if first_line_end < 0 else text[:first_line_end]
    ends = [end for end in range(len(text) - 1, 0, -1) if text[end] == "\n"]
    ends += sorted({match.end() for match in _TOKEN.finditer(first_line)}, reverse=True)
    prefixes: list[str] = []
    for end in ends:
        prefix = text[:end].rstrip()
        if not prefix.strip() or len(prefix) >= len(whole) or prefix in prefixes:
            continue
        if starts_statement and len(_TOKEN.findall(prefix.rsplit("\n", 1)[-1])) < 2:
            continue
        prefixes.append(prefix)
        if len(prefixes) == MAX_PREFIX_TRIES:
            break
    return prefixes


def _first_line_break_at_depth_zero(text: str, language: str | None, start: int = 0) -> int | None:
    """Offset of the first "\\n" at or after ``start`` outside string literals, comments and brackets that
    ``text`` opened (a closer beyond them counts as depth zero)."""
    literals = literal_spans(text, language)
    depths = list(bracket_depths(text, language))
    index, depth = 0, 0
    position = text.find("\n", start)
    while position >= 0:
        while index < len(depths) and depths[index][0] < position:
            depth = depths[index][1]
            index += 1
        if depth <= 0 and not any(a < position < b for a, b in literals):
            return position
        position = text.find("\n", position + 1)
    return None


def _is_code(line: str, language: str | None) -> bool:
    stripped = line.strip()
    leaders = ("#",) if language == "python" else ("//", "/*", "*") if language is not None else ("#", "//")
    return bool(stripped) and not stripped.startswith(leaders)


def _previous_code_line(text: str, language: str | None) -> str | None:
    return next((line for line in reversed(text.split("\n")) if _is_code(line, language)), None)


def _next_code_line(text: str, language: str | None) -> str | None:
    return next((line for line in text.split("\n") if _is_code(line, language)), None)
