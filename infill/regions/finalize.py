"""Make a model's raw fill fit its gap: cut it at the end of its syntactic unit, never repeat the
suffix, and reject it when it makes the file parse worse than leaving the gap empty."""

from __future__ import annotations

import logging

from infill.regions.heuristics import (
    CLOSERS,
    blank_comments,
    bracket_depths,
    first_excess_closer,
    indent_width,
    leading_ws,
    line_start,
    literal_spans,
    missing_closers,
    unclosed_openers,
)
from infill.regions.languages import check_language
from infill.regions.syntax import gap_error_counts

logger = logging.getLogger(__name__)

# Kinds whose region is whole lines of statements: cut at a dedent or an unmatched closing bracket.
MULTI_LINE_KINDS = frozenset({"block", "function", "selection", "region"})
# A candidate tail that repeats the suffix is dropped when it is only these (closing punctuation)...
_CLOSING_PUNCTUATION = frozenset(CLOSERS + ";,\"'`> \t\r\n")
# ...or whole lines, or at least this many characters.
_LONG_REPEAT = 8


def finalize_candidate(
    prefix: str, candidate: str, suffix: str, language: str | None, kind: str
) -> str | None:
    """The part of ``candidate`` to insert between ``prefix`` and ``suffix``, or None when it adds parse
    errors (ERROR + MISSING nodes; bracket errors for unknown languages) compared to the empty gap.

    "line": ends at the first newline (kept only when the gap is whole lines). Multi-line kinds ("block",
    "function", "selection", "region"): end where a line dedents below the fill's indentation or a
    bracket closes what the fill did not open. Any kind: a tail that repeats the start of the suffix
    (closing punctuation, or whole lines) is dropped when that parses no worse. May return "".
    """
    check_language(language)
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
    options: list[str] = []
    for variant in variants:
        options.extend(_without_repeated_suffix(variant, suffix))
        options.append(variant)
    options = list(dict.fromkeys(options))  # preference order, duplicates removed
    baseline, counts = gap_error_counts(prefix, options, suffix, language)
    best_errors = min(counts)
    best = options[counts.index(best_errors)]  # the first (most preferred) of the least broken
    if best_errors > baseline:
        logger.debug(
            "rejected candidate %r: %d parse errors > %d without it", candidate, best_errors, baseline
        )
        return None
    return best


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
