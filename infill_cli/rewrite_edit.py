"""`infill rewrite --edit PATH...`: edit the code of `infill:begin`/`infill:end` regions in place.

Instead of regenerating a region whole, the model scores the tokens that are there, re-opens only those it
doubts and refills them (infill/engine/edit.py); everything else stays byte for byte. The markers stay too:
editing is a review pass that can run again, and `--check` exits 1 only where the model would change code.
Each region ends one of three ways, and the user is told which: changed, left as it is because the model is
confident in it, or left as it is because what the model proposed does not pass the syntax check.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

from infill.line_endings import lf_view
from infill_cli.fileio import SourceFile, line_column

if TYPE_CHECKING:
    from infill.engine.types import DecodeConfig
    from infill.infiller import Infiller


def edit_source(
    infiller: Infiller, source: SourceFile, language: str | None, config: DecodeConfig, keep_invalid: bool
) -> tuple[str, tuple[int, ...], bool]:
    """``(new text, 1-based lines of regions whose edit failed the check, new text does not parse)``.

    With ``keep_invalid`` a region whose edit failed the check gets it anyway (and the result may not parse).
    """
    from infill import regions
    from infill.infiller import Edit, apply_edits

    view = lf_view(source.text)
    marks = regions.find_fill_markers(view.text, language)
    if any(mark.kind == "hole" for mark in marks):
        print(
            f"infill: {source.path}: --edit edits infill:begin/end regions; <|fill|> holes are left as they "
            "are (fill them with `infill rewrite` without --edit)",
            file=sys.stderr,
        )
    outcomes = infiller.edit_document(view.text, language=language, config=config)
    edits: list[Edit] = []
    unvalidated: list[int] = []
    for outcome in outcomes:
        line = line_column(view.text, outcome.region_start)[0]
        if outcome.reason == "confident":
            print(
                f"infill: {source.path}:{line}: the model is confident in this region; unchanged",
                file=sys.stderr,
            )
        elif outcome.reason == "invalid":
            unvalidated.append(line)
            if keep_invalid:
                edits.append(Edit(outcome.region_start, outcome.region_end, outcome.proposed, 0.0, (), False))
        elif outcome.edit is not None:
            edits.append(outcome.edit)
    new_view = apply_edits(view.text, edits)
    broken = bool(edits) and not regions.document_parses(new_view, language)
    if broken and not keep_invalid:
        # Each edit passed the check with the other regions as written; together they do not: keep the file.
        lines = tuple(line_column(view.text, outcome.region_start)[0] for outcome in outcomes)
        return source.text, lines, False
    original_edits = [view.original_edit(edit) for edit in edits]
    return apply_edits(source.text, original_edits), tuple(unvalidated), broken
