"""`infill complete PATH:LINE:COL`: print the completion the model proposes at a position.

Plain output is the completion text (a newline is added when it does not end with one); with `-n N` each
alternative gets a header line; `--json` gives exact texts, scores and the replaced range. When no candidate
passes the syntax check, the exit code is 3 (EXIT_UNFILLED) with a line on stderr saying so. Files in
languages without a grammar are completed with line heuristics (and a notice saying so).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from infill.line_endings import lf_view
from infill_cli.common import (
    EXIT_UNFILLED,
    add_decode_options,
    add_model_options,
    check_model,
    decode_config,
    load_infiller,
    positive_int,
    unknown_language_notice,
)
from infill_cli.fileio import Position, line_column, offset_of, parse_position, read_source

if TYPE_CHECKING:
    from infill.infiller import Edit


def complete_command_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "complete",
        help="print the completion at PATH:LINE:COL",
        description="Complete the code at a position (1-based line and column; columns count characters).",
    )
    parser.add_argument("position", metavar="PATH:LINE:COL", help="file and 1-based cursor position")
    parser.add_argument(
        "--mode",
        choices=("auto", "line", "block", "function"),
        default="auto",
        help="what to fill: auto (rest of line, or a block after an opener), line, block, function body",
    )
    parser.add_argument(
        "-n", "--candidates", type=positive_int, default=1, metavar="N", help="print up to N alternatives"
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object with every candidate")
    add_model_options(parser)
    add_decode_options(parser, max_tokens_help="token budget of the completion (default: chosen by region)")
    parser.set_defaults(func=complete_command)
    return parser


def complete_command(args: argparse.Namespace) -> int:
    # Validate the position before anything heavy is imported or loaded: bad input fails in a blink.
    position = parse_position(args.position)
    source = read_source(position.path)
    text = lf_view(source.text).text
    offset = offset_of(text, position)

    from infill import regions

    language = regions.language_for_path(source.path)
    check_model(args)
    if language is None:
        unknown_language_notice(source.path)

    from infill.infiller import CompletionRequest

    infiller = load_infiller(args)
    request = CompletionRequest(
        text=text,
        offset=offset,
        language=language,
        mode=args.mode,
        max_tokens=args.max_tokens,
        num_candidates=args.candidates,
    )
    edits = infiller.complete(request, decode_config(args, infiller))

    if args.json:
        print(
            json.dumps(
                json_report(source.path, position, language, args.mode, text, edits),
                ensure_ascii=False,
                indent=2,
            )
        )
    elif edits:
        sys.stdout.write(plain_report(edits, numbered=args.candidates > 1))
    if not edits:
        print(
            f"infill: {source.path}:{position.line}:{position.column}: no completion: no candidate the model "
            "wrote there (nor any prefix of one) passed the syntax check",
            file=sys.stderr,
        )
        return EXIT_UNFILLED
    return 0


def plain_report(edits: Sequence[Edit], *, numbered: bool) -> str:
    """Each completion on its own lines; with ``numbered``, a header line before each."""
    parts: list[str] = []
    for index, edit in enumerate(edits, start=1):
        if numbered:
            parts.append(f"--- candidate {index} of {len(edits)} (score {edit.score:.3f}) ---\n")
        parts.append(edit.new_text if edit.new_text.endswith("\n") else edit.new_text + "\n")
    return "".join(parts)


def json_report(
    path: Path, position: Position, language: str | None, mode: str, text: str, edits: Sequence[Edit]
) -> dict[str, object]:
    """Exact texts and scores, with the replaced range as 1-based line/column in the file's LF view."""

    def where(offset: int) -> dict[str, int]:
        line, column = line_column(text, offset)
        return {"line": line, "column": column}

    return {
        "path": str(path),
        "line": position.line,
        "column": position.column,
        "language": language,
        "mode": mode,
        "candidates": [
            {"text": e.new_text, "score": e.score, "start": where(e.start), "end": where(e.end)}
            for e in edits
        ],
    }
