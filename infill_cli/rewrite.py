"""`infill rewrite PATH...`: fill `<|fill|>` holes and regenerate `infill:begin`/`infill:end` regions.

Default output is a unified diff on stdout; `--in-place` writes each file atomically; `--check` exits 1 when
anything would change. Exit code 3 (EXIT_UNFILLED, before 1) when a hole or region got no checked fill: each
such gap is named on stderr with its line and why. Bytes outside holes and regions never change: the model
works on an LF view of the file and its edits are mapped back to the original offsets (CRLF, missing final
newline and all).

Files in languages without a grammar (e.g. `.xyz`) are still processed, with a notice: markers are found with
`#`, `//` and `--` comments and candidates are checked with bracket balance instead of a parser.

Never writes code that does not parse: a gap no valid candidate fills keeps its markers and old code (with a
warning naming its line), fills are checked again together once all are in, and a file that parsed before is
never left unparseable. `--keep-invalid` writes the best raw candidate anyway, and says so loudly.
"""

from __future__ import annotations

import argparse
import difflib
import logging
import sys
from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from infill.errors import MarkerError
from infill.line_endings import lf_view
from infill_cli.common import (
    EXIT_UNFILLED,
    add_decode_options,
    add_model_options,
    check_model,
    decode_config,
    load_infiller,
    unknown_language_notice,
)
from infill_cli.fileio import SourceFile, check_writable, line_column, read_source, write_atomic

if TYPE_CHECKING:
    from infill.engine.types import DecodeConfig
    from infill.infiller import Edit, Infiller

logger = logging.getLogger(__name__)

NO_NEWLINE_MARKER = "\\ No newline at end of file\n"


def rewrite_command_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "rewrite",
        help="fill <|fill|> holes and regenerate infill:begin/end regions in files",
        description=(
            "Fill every `<|fill|>` hole and regenerate the code between every `infill:begin` and "
            "`infill:end` comment (the markers are removed). Prints a unified diff unless --in-place or "
            "--check is given. Nothing outside holes and regions changes."
        ),
    )
    parser.add_argument("paths", nargs="+", metavar="PATH", help="source files to rewrite")
    action = parser.add_mutually_exclusive_group()
    action.add_argument(
        "-i",
        "--in-place",
        action="store_true",
        help="write the files (atomically; refused for a file that changed while the model ran)",
    )
    action.add_argument("--check", action="store_true", help="write nothing; exit 1 if any file would change")
    parser.add_argument(
        "--keep-invalid",
        action="store_true",
        help="where no candidate passes the syntax check, write the best-scoring one anyway, leaving code "
        "that does not parse (default: leave that hole or region as it is and warn)",
    )
    add_model_options(parser)
    add_decode_options(
        parser,
        max_tokens_help="token budget per hole or region (default: 64 per hole, "
        "regions: the length of their old code plus some slack)",
    )
    parser.set_defaults(func=rewrite_command)
    return parser


@dataclass(frozen=True)
class _Rewritten:
    source: SourceFile
    new_text: str
    unvalidated_lines: tuple[int, ...]  # 1-based lines of gaps no candidate filled with valid syntax
    broken: bool  # new_text does not parse (only ever with --keep-invalid)


def rewrite_command(args: argparse.Namespace) -> int:
    from infill import regions

    # Read and validate every file (and where it will be written, and the model directory) before loading
    # the model: bad input fails fast and nothing is written.
    pending: list[tuple[SourceFile, str | None]] = []
    nothing_to_do: list[SourceFile] = []
    for path in args.paths:
        source = read_source(path)
        language = regions.language_for_path(source.path)
        try:
            marks = regions.find_fill_markers(lf_view(source.text).text, language)
        except MarkerError as error:
            raise MarkerError(f"{source.path}: {error}") from None
        if marks:
            if args.in_place:
                check_writable(source.path)
            pending.append((source, language))
        else:
            nothing_to_do.append(source)
    for source in nothing_to_do:
        print(
            f"infill: {source.path}: no <|fill|> holes or infill:begin/end regions; nothing to do",
            file=sys.stderr,
        )
    if not pending:
        return 0
    check_model(args)
    for source, language in pending:
        if language is None:
            unknown_language_notice(source.path)

    infiller = load_infiller(args)
    config = decode_config(args, infiller)
    changed = unfilled = False
    for source, language in pending:
        result = _rewrite_source(infiller, source, language, config, args.max_tokens, args.keep_invalid)
        outcome = "kept the best-scoring one" if args.keep_invalid else "left it unchanged"
        for line in result.unvalidated_lines:
            unfilled = True
            print(
                f"infill: warning: {source.path}:{line}: no candidate passed the syntax check; {outcome}",
                file=sys.stderr,
            )
        if result.broken:
            print(
                f"infill: WARNING: {source.path}: --keep-invalid: the result does not parse "
                f"(unchecked code at line{'s' if len(result.unvalidated_lines) > 1 else ''} "
                f"{', '.join(map(str, result.unvalidated_lines))})",
                file=sys.stderr,
            )
        if result.new_text == source.text:
            continue
        changed = True
        if args.check:
            print(f"infill: would rewrite {source.path}", file=sys.stderr)
        elif args.in_place:
            write_atomic(source.path, result.new_text.encode("utf-8"), unchanged_since=source)
            print(f"infill: rewrote {source.path}", file=sys.stderr)
        else:
            sys.stdout.writelines(unified_diff(source.text, result.new_text, str(source.path)))
            sys.stdout.flush()
    if unfilled:
        return EXIT_UNFILLED
    return 1 if args.check and changed else 0


def _rewrite_source(
    infiller: Infiller,
    source: SourceFile,
    language: str | None,
    config: DecodeConfig,
    max_tokens: int | None,
    keep_invalid: bool,
) -> _Rewritten:
    from infill import regions
    from infill.infiller import Edit, apply_edits

    view = lf_view(source.text)
    edits = infiller.fill_document(view.text, language=language, config=config, max_tokens=max_tokens)
    if not keep_invalid:
        # Never write code that does not parse: such a gap keeps its markers and its old code. Each fill was
        # judged with the other holes holding a placeholder, so judge them again side by side.
        valid = _valid_together(view.text, edits, language)
        edits = [edit if edit in valid else replace(edit, validated=False) for edit in edits]
    unvalidated = tuple(line_column(view.text, e.start)[0] for e in edits if not e.validated)
    written = edits if keep_invalid else [edit for edit in edits if edit.validated]
    new_view = apply_edits(view.text, written)
    broken = not regions.document_parses(new_view, language)
    if broken and not keep_invalid and regions.document_parses(view.text, language):
        # The file parsed before (regions only, no holes): whatever broke it, it stays as it was.
        unvalidated = tuple(line_column(view.text, e.start)[0] for e in edits)
        written, broken = [], False
    # Map LF-view edits back onto the original text; generated newlines follow the file's own style.
    original_edits = [
        Edit(
            view.original_offset(edit.start),
            view.original_offset(edit.end),
            view.original_text(edit.new_text),
            edit.score,
            edit.tokens,
            edit.validated,
        )
        for edit in written
    ]
    return _Rewritten(source, apply_edits(source.text, original_edits), unvalidated, broken and keep_invalid)


def _valid_together(text: str, edits: list[Edit], language: str | None) -> list[Edit]:
    """The validated ``edits`` that are still valid code with all the others applied. An edit that is not is
    dropped (dropping one may mend another, so this repeats). A hole without a fill (never validated, or
    dropped) holds a neutral placeholder meanwhile: its marker or its empty place would be a syntax error that
    can hide another fill's (Python's compiler stops at the first one)."""
    from infill import regions
    from infill.infiller import apply_edits

    kept = sorted((edit for edit in edits if edit.validated), key=lambda edit: edit.start)
    idle = [edit for edit in edits if not edit.validated and text[edit.start : edit.end] == regions.HOLE]
    while kept:
        applied_edits = sorted(kept + _stand_ins(text, kept, idle, language), key=lambda edit: edit.start)
        applied = apply_edits(text, applied_edits)
        shift, failing = 0, None
        for edit in applied_edits:
            start = edit.start + shift
            end = start + len(edit.new_text)
            if edit in kept and not regions.fill_is_valid(
                applied[:start], edit.new_text, applied[end:], language
            ):
                failing = edit
                break
            shift += len(edit.new_text) - (edit.end - edit.start)
        if failing is None:
            return kept
        kept.remove(failing)
        if text[failing.start : failing.end] == regions.HOLE:
            idle.append(failing)
    return kept


def _stand_ins(text: str, kept: list[Edit], holes: list[Edit], language: str | None) -> list[Edit]:
    """``holes`` each holding ``regions.neutral_placeholder``, chosen in order of place with ``kept`` applied,
    the holes before it holding theirs and the ones after it empty."""
    from infill import regions
    from infill.infiller import apply_edits

    gap = "\x00gap\x00"  # marks the hole being judged; no source text holds a NUL
    ordered = sorted(holes, key=lambda edit: edit.start)
    standing = [replace(hole, new_text="") for hole in ordered]
    for index, hole in enumerate(standing):
        others = kept + standing[:index] + standing[index + 1 :]
        before, after = apply_edits(text, [*others, replace(hole, new_text=gap)]).split(gap)
        standing[index] = replace(hole, new_text=regions.neutral_placeholder(before, after, language))
    return standing


def unified_diff(old: str, new: str, path: str) -> Iterable[str]:
    """A `git apply`/`patch`-compatible diff, including the no-newline-at-end-of-file marker."""
    for line in difflib.unified_diff(_lines(old), _lines(new), f"a/{path}", f"b/{path}"):
        if line.endswith("\n"):
            yield line
        else:
            yield line + "\n"
            yield NO_NEWLINE_MARKER


def _lines(text: str) -> list[str]:
    """Lines split at "\\n" only (str.splitlines would also split at form feeds and U+2028)."""
    parts = text.split("\n")
    lines = [part + "\n" for part in parts[:-1]]
    if parts[-1]:
        lines.append(parts[-1])
    return lines
