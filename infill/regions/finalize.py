"""Make a model's raw fill fit its gap: cut it at the end of its syntactic unit, never repeat the
suffix, keep the surrounding indentation, and reject it when it is not valid code there (validity.py)."""

from __future__ import annotations

import logging
import math

from infill.regions.heuristics import (
    CLOSERS,
    blank_comments,
    bracket_depths,
    detect_indent_unit,
    first_excess_closer,
    indent_width,
    leading_ws,
    line_start,
    literal_spans,
    missing_closers,
    unclosed_openers,
)
from infill.regions.holes import stays_in_literal
from infill.regions.languages import check_language
from infill.regions.length import (
    cut_inline,
    cut_repetition,
    cut_statement,
    cut_suffix_echo,
    hole_unit,
    shorter_prefixes,
)
from infill.regions.validity import first_valid_fill

logger = logging.getLogger(__name__)

# Kinds whose region is whole lines of statements: cut at a dedent or an unmatched closing bracket.
MULTI_LINE_KINDS = frozenset({"block", "function", "selection", "region"})
# A candidate tail that repeats the suffix is dropped when it is only these (closing punctuation)...
_CLOSING_PUNCTUATION = frozenset(CLOSERS + ";,\"'`> \t\r\n")
# ...or whole lines, or at least this many characters.
_LONG_REPEAT = 8
# Kinds of a hole inside a comment or string (holes.LiteralKind): its fill must stay text of that literal.
LITERAL_KINDS = frozenset({"text_line", "text"})
# Text either side of a gap that tells whether the file indents with tabs or spaces.
_STYLE_CHARS = 8_000


def finalize_candidate(
    prefix: str, candidate: str, suffix: str, language: str | None, kind: str, indent: str | None = None
) -> str | None:
    """The fill ``finalize_fill`` chooses, or None."""
    return finalize_fill(prefix, candidate, suffix, language, kind, indent)[0]


def finalize_fill(
    prefix: str, candidate: str, suffix: str, language: str | None, kind: str, indent: str | None = None
) -> tuple[str | None, bool]:
    """The part of ``candidate`` to insert between ``prefix`` and ``suffix``, or None when no variant of it
    is valid there (``validity.first_valid_fill``: no syntax error on or around its lines, none added
    elsewhere, compiled by Python for Python; bracket balance for unknown languages).

    "line": ends at the first newline (kept only when the gap is whole lines). Multi-line kinds ("block",
    "function", "selection", "region"): end where a line dedents below the fill's indentation or a
    bracket closes what the fill did not open; with the region's ``indent``, a fill that starts a line is
    re-indented like the code around it (``keep_indentation``), the model's own indentation kept only as a
    fallback. "span" (a ``<|fill|>`` hole): ends with the unit the hole stands for (length.hole_unit): its
    expression, its statement, or its block at the dedent. Line fills and expressions also end at the first
    stutter (`pathpath`) and before they write the rest of their line again. Any kind: a tail that repeats the
    start of the suffix (closing punctuation, or whole lines) is dropped when that is valid too. "text_line"
    and "text" (a hole in a comment or string, holes.LiteralKind): text of that literal only, on the hole's
    line for "text_line". When no variant is valid, the longest valid prefix at a token boundary is the
    fill. May return "".

    Returns (the fill or None, whether it is such a fallback prefix: callers rank those below whole units).
    """
    check_language(language)
    kind, cut = _cut_to_unit(prefix, candidate, suffix, language, kind)
    options = _in_place(prefix, _options(prefix, cut, suffix, language, kind, indent), suffix, language, kind)
    chosen = first_valid_fill(prefix, options, suffix, language)
    if chosen is not None:
        return options[chosen], False
    # Not valid as a whole: its longest valid prefix (at a token boundary) is the fill, not nothing.
    shorter = [
        option
        for prefix_text in shorter_prefixes(cut, not prefix[line_start(prefix, len(prefix)) :].strip())
        for option in _options(prefix, prefix_text, suffix, language, kind, indent)
        if option.strip()
    ]
    shorter = _in_place(prefix, list(dict.fromkeys(shorter)), suffix, language, kind)
    chosen = first_valid_fill(prefix, shorter, suffix, language, ranked=False)
    if chosen is None:
        logger.debug("rejected candidate %r: no prefix of it is valid code there", candidate)
        return None, False
    return shorter[chosen], True


def _in_place(prefix: str, options: list[str], suffix: str, language: str | None, kind: str) -> list[str]:
    """``options`` that fit a literal's hole: text of that literal, not code after it."""
    if kind not in LITERAL_KINDS:
        return options
    return [option for option in options if stays_in_literal(prefix, option, suffix, language)]


def _cut_to_unit(
    prefix: str, candidate: str, suffix: str, language: str | None, kind: str
) -> tuple[str, str]:
    """(kind to finalise as, ``candidate`` cut where its unit ends): a line at its first stutter and before it
    repeats the rest of its line; a hole as what it stands for (length.hole_unit), a body hole as a block."""
    if kind == "text_line":  # a line comment or one-line string: a line break would end it
        return kind, candidate.split("\n", 1)[0].rstrip("\r")
    if kind == "line":
        newline = candidate.find("\n")
        first = candidate if newline < 0 else candidate[:newline]
        cut = cut_suffix_echo(cut_repetition(first), suffix)
        return kind, candidate if cut == first else cut
    if kind != "span":
        return kind, candidate
    unit = hole_unit(prefix, suffix, language)
    if unit == "block":
        return "block", cut_repetition(candidate)
    if unit == "statement":
        return kind, cut_repetition(cut_statement(prefix, candidate, language))
    return kind, cut_suffix_echo(cut_repetition(cut_inline(prefix, candidate, language)), suffix)


def _options(
    prefix: str, candidate: str, suffix: str, language: str | None, kind: str, indent: str | None
) -> list[str]:
    """The texts ``candidate`` may be written as, in preference order (see finalize_candidate)."""
    if kind == "line":
        # A line may close what its own line opened; a cut at the first extra closer wins only when it
        # parses better (the lexer cannot see that the line is, say, inside a comment or a string).
        current_line = prefix[line_start(prefix, len(prefix)) :]
        allowance = unclosed_openers(current_line, language)
        variants = []
        for line in _line_variants(prefix, candidate, suffix):
            closer = first_excess_closer(line, language, allowance)
            variants += [line, line[:closer]] if closer is not None else [line]
            if not line.endswith("\n") and (not suffix or suffix.startswith(("\n", "\r\n"))):
                # The line region swallows closing brackets after the cursor; a fill that forgot to
                # write them again gets them back when (and only when) that parses better.
                variants.append(line + missing_closers(current_line + line, language))
    else:
        cut = _cut_block(prefix, candidate, language) if kind in MULTI_LINE_KINDS else candidate
        variants = [_fit_line_ends(prefix, cut, suffix, kind)]
        if kind in MULTI_LINE_KINDS and indent is not None and _at_line_start(prefix):
            variants.insert(0, keep_indentation(prefix, variants[0], suffix, language, indent))
    current_line = prefix[line_start(prefix, len(prefix)) :]
    if current_line and not current_line.strip():
        # The gap sits in its line's indentation: the model's own leading blanks would add to it (a block's
        # later lines keep theirs: the dedent cut and the checks judge them where they land).
        variants += [variant.lstrip(" \t") for variant in variants]
    options: list[str] = []
    for variant in variants:
        options.extend(_without_repeated_suffix(variant, suffix))
        options.append(variant)
    return list(dict.fromkeys(options))  # preference order, duplicates removed


def _at_line_start(prefix: str) -> bool:
    return not prefix or prefix.endswith("\n")


def _line_variants(prefix: str, candidate: str, suffix: str) -> list[str]:
    """The first line of ``candidate``, with and without its newline, the likelier one first: the
    newline belongs to the fill when the gap is a whole line (the suffix starts the next line)."""
    whole_line_gap = _at_line_start(prefix) and bool(suffix) and not suffix.startswith(("\n", "\r\n"))
    newline = candidate.find("\n")
    if newline < 0:
        return [candidate + "\n", candidate] if whole_line_gap and candidate.strip() else [candidate]
    bare = candidate[:newline].rstrip("\r")
    kept = candidate[: newline + 1]
    if suffix.split("\n", 1)[0].strip():
        return [bare]  # code follows on the line: a line break would split it
    return [kept, bare] if whole_line_gap else [bare, kept]


def _cut_block(prefix: str, candidate: str, language: str | None) -> str:
    """Cut at the first closing bracket that closes more than the fill opened (plus what the cursor's
    line left open) and, where indentation is syntax (Python, unknown languages), before the first code
    line that dedents below the fill's first line."""
    current_line = prefix[line_start(prefix, len(prefix)) :]
    if current_line.strip():  # the fill continues a code line: that line sets the indentation
        base = indent_width(leading_ws(current_line))
        allowance = unclosed_openers(current_line, language)
    else:
        first_code = next((line for line in (current_line + candidate).split("\n") if line.strip()), "")
        base = indent_width(leading_ws(first_code))
        allowance = 0
    cut = len(candidate)
    if language is None or language == "python":
        dedent = _first_dedent(candidate, language, base, allowance)
        cut = cut if dedent is None else dedent
    closer = first_excess_closer(candidate[:cut], language, allowance)
    if closer is not None:
        line_begin = line_start(candidate, closer)
        # A lone `}` line goes whole; a closer after code on its line is cut just before it.
        cut = line_begin if not candidate[line_begin:closer].strip() else closer
    return candidate[:cut]


def _first_dedent(candidate: str, language: str | None, base: int, allowance: int) -> int | None:
    """Start of the first line (after the first) that is code, outside brackets, strings and comments,
    and indented less than ``base``. Brace languages never need this: leaving the block closes a brace,
    and their labels, preprocessor lines and raw strings sit at any indentation."""
    literals = literal_spans(candidate, language)
    depths = list(bracket_depths(candidate, language))  # (offset, depth after it)
    depth_index, depth = 0, allowance
    position = candidate.find("\n") + 1
    while 0 < position < len(candidate):
        while depth_index < len(depths) and depths[depth_index][0] < position:
            depth = allowance + depths[depth_index][1]
            depth_index += 1
        end = candidate.find("\n", position)
        line = candidate[position : end if end >= 0 else len(candidate)]
        is_code = bool(blank_comments(line, language).strip())
        inside = depth > 0 or any(start < position < stop for start, stop in literals)
        if is_code and not inside and indent_width(leading_ws(line)) < base:
            return position
        position = end + 1 if end >= 0 else len(candidate)
    return None


def _fit_line_ends(prefix: str, candidate: str, suffix: str, kind: str) -> str:
    """Multi-line regions end at a line end with the newline in the suffix: drop the fill's trailing
    newline there; where the suffix instead starts a line of its own, end the fill with one."""
    if suffix.startswith(("\n", "\r\n")):
        return candidate.rstrip()
    if kind in MULTI_LINE_KINDS and suffix and _at_line_start(prefix) and candidate.strip():
        return candidate if candidate.endswith("\n") else candidate + "\n"
    return candidate


def _without_repeated_suffix(candidate: str, suffix: str) -> list[str]:
    """``candidate`` minus a tail that equals the start of ``suffix``, longest first; only tails that are
    closing punctuation (``)``, ``});``...), whole lines or long count, so a shared short identifier
    stays."""
    shortened = []
    for size in range(min(len(candidate), len(suffix)), 0, -1):
        overlap = suffix[:size]
        if not candidate.endswith(overlap) or not overlap.strip():
            continue
        ends_line = overlap.endswith("\n") or size == len(suffix) or suffix[size] in "\r\n"
        starts_line = overlap.startswith("\n") or size == len(candidate) or candidate[-size - 1] == "\n"
        whole_lines = ends_line and starts_line
        # An identifier the fill ends with may start the suffix too; a longer adjacent repeat is a stutter.
        long_repeat = len(overlap.strip()) >= _LONG_REPEAT
        if whole_lines or long_repeat or set(overlap) <= _CLOSING_PUNCTUATION:
            shortened.append(candidate[:-size])
    return shortened


def keep_indentation(prefix: str, fill: str, suffix: str, language: str | None, indent: str) -> str:
    """``fill`` (whole lines) indented like the code around it: its first code line at ``indent``, each later
    line as many levels deeper as it was in the fill, in the file's own indentation (tabs or spaces), and
    whitespace-only lines emptied. Lines that start inside a string literal or a comment are left alone, as
    are lines indented less than the fill's first line."""
    literals = literal_spans(fill, language)
    lines = fill.split("\n")
    free: list[bool] = []  # the line starts outside every literal
    start = 0
    for line in lines:
        free.append(not any(a < start < b for a, b in literals))
        start += len(line) + 1
    code = [number for number, line in enumerate(lines) if free[number] and line.strip()]
    if not code:
        return "\n".join("" if ok else line for line, ok in zip(lines, free, strict=True))
    base = indent_width(leading_ws(lines[code[0]]))
    depths = {number: indent_width(leading_ws(lines[number])) - base for number in code}
    step = math.gcd(*depths.values())
    step = step if step >= 2 else 4  # the fill's own indentation step
    file_unit = detect_indent_unit(_near(prefix, suffix), language)
    tabs = "\t" in indent if indent else file_unit == "\t"
    unit = "\t" if tabs else file_unit if file_unit != "\t" else "    "
    for number, line in enumerate(lines):
        if not free[number]:
            continue
        if number not in depths:
            lines[number] = ""  # whitespace only
        elif depths[number] >= 0:
            levels, rest = divmod(depths[number], step)
            lines[number] = indent + unit * levels + " " * rest + line.lstrip(" \t")
    return "\n".join(lines)


def _near(prefix: str, suffix: str) -> str:
    """Whole lines either side of a gap, enough to see the file's indentation style."""
    start = prefix.find("\n", max(0, len(prefix) - _STYLE_CHARS)) + 1 if len(prefix) > _STYLE_CHARS else 0
    end = suffix.rfind("\n", 0, _STYLE_CHARS) if len(suffix) > _STYLE_CHARS else len(suffix)
    return prefix[start:] + suffix[: max(end, 0)]
