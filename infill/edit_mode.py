"""Edit mode over documents: which region to edit, whether the model's edit may be written, and the edit.

``Infiller.edit_region`` / ``edit_function`` / ``edit_document`` delegate here. The engine edits the region's
tokens in place (infill/engine/edit.py); this module only judges the result: an edit that does not pass the
syntax check (``fill_is_valid`` around it, and a document that parsed before must still parse) is not
proposed, and the outcome says so (``reason``), apart from "the model is confident in the code as it is".
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Literal

from infill import regions
from infill.engine.types import TokenConfidence
from infill.regions.heuristics import common_prefix_length

if TYPE_CHECKING:
    from infill.engine.edit import EditConfig
    from infill.engine.edit_text import TokenSpan
    from infill.engine.engine import InfillEngine
    from infill.engine.types import DecodeConfig
    from infill.infiller import Edit

# "changed": ``edit`` is the model's edit; "confident": the model doubts nothing it would change (the code is
# left as it is); "invalid": what the model proposed does not pass the syntax check (left as it is).
EditReason = Literal["changed", "confident", "invalid"]


@dataclass(frozen=True)
class EditOutcome:
    region_start: int
    region_end: int
    reason: EditReason
    # The smallest replacement (offsets into the original text) that turns the region into the model's
    # version; None unless reason == "changed".
    edit: Edit | None
    proposed: str  # the region as the model edited it (even when it did not pass the check)
    # (start, end, confidence) over the document as it reads after ``edit`` (the original without one).
    confidences: tuple[TokenSpan, ...]
    # The same over the original document: how sure the model is of each token of the code as it stands.
    original_confidences: tuple[TokenSpan, ...]


def edit_span(
    engine: InfillEngine,
    text: str,
    start: int,
    end: int,
    language: str | None,
    *,
    prefix: str | None = None,
    suffix: str | None = None,
    decode: DecodeConfig | None = None,
    config: EditConfig | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> EditOutcome:
    """Edit ``text[start:end]`` in place. ``prefix``/``suffix`` override what the model sees around it
    (``edit_document`` shows the document without its markers); the check always uses them too."""
    from infill.engine.edit_text import EditRequest, edit_region_text
    from infill.infiller import Edit

    before = text[:start] if prefix is None else prefix
    after = text[end:] if suffix is None else suffix
    old = text[start:end]
    edited = edit_region_text(engine, EditRequest(before, old, after), decode, config, should_stop)
    original = tuple(
        replace(s, start=s.start + start, end=s.end + start) for s in edited.original_confidences
    )
    if edited.text == old:
        return EditOutcome(start, end, "confident", None, old, original, original)
    valid = "\ufffd" not in edited.text and regions.fill_is_valid(before, edited.text, after, language)
    if valid and regions.document_parses(before + old + after, language):
        valid = regions.document_parses(before + edited.text + after, language)
    if not valid:
        return EditOutcome(start, end, "invalid", None, edited.text, original, original)
    head = common_prefix_length(old, edited.text)
    tail = common_prefix_length(old[head:][::-1], edited.text[head:][::-1])
    new_text = edited.text[head : len(edited.text) - tail]
    spans = tuple(replace(s, start=s.start + start, end=s.end + start) for s in edited.confidences)
    # The tokens that spell new_text: those overlapping it, cut to it.
    new_end = len(edited.text) - tail
    tokens = tuple(
        TokenConfidence(edited.text[max(s.start, head) : min(s.end, new_end)], s.confidence)
        for s in edited.confidences
        if s.start < new_end and s.end > head
    )
    mean = sum(s.confidence for s in edited.confidences) / max(1, len(edited.confidences))
    edit = Edit(start + head, end - tail, new_text, mean, tokens)
    return EditOutcome(start, end, "changed", edit, edited.text, spans, original)


# Lines above and below the cursor's a next-edit suggestion may touch.
NEXT_EDIT_LINES = 2


def lines_around(text: str, offset: int, lines: int = NEXT_EDIT_LINES) -> tuple[int, int]:
    """``[start, end)`` of the whole lines from ``lines`` above the cursor's line to ``lines`` below it (the
    last one's newline included)."""
    start = text.rfind("\n", 0, offset) + 1
    for _ in range(lines):
        if start == 0:
            break
        start = text.rfind("\n", 0, start - 1) + 1
    end = offset
    for _ in range(lines + 1):
        newline = text.find("\n", end)
        if newline < 0:
            return start, len(text)
        end = newline + 1
    return start, end


def edit_marked_regions(
    engine: InfillEngine,
    text: str,
    language: str | None,
    *,
    decode: DecodeConfig | None = None,
    config: EditConfig | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> list[EditOutcome]:
    """Edit the code of every infill:begin/end region in place (its markers stay: editing is a review pass
    one can run again). Each region sees the document without any markers, other regions as written;
    ``<|fill|>`` holes are not edit mode's business and are left alone (and seen empty)."""
    every = regions.find_fill_markers(text, language)
    marks = [mark for mark in every if mark.kind == "region"]
    outcomes: list[EditOutcome] = []
    for mark in marks:
        prefix = _without_markers(text, 0, mark.fill_start, every)
        suffix = _without_markers(text, mark.fill_end, len(text), every)
        outcomes.append(
            edit_span(
                engine,
                text,
                mark.fill_start,
                mark.fill_end,
                language,
                prefix=prefix,
                suffix=suffix,
                decode=decode,
                config=config,
                should_stop=should_stop,
            )
        )
    return outcomes


def _without_markers(text: str, start: int, end: int, marks: Sequence[regions.MarkedRegion]) -> str:
    """``text[start:end]`` with every marker in it removed (a region's own code kept, a hole emptied)."""
    pieces: list[str] = []
    cursor = start
    for mark in sorted(marks, key=lambda m: m.start):
        if mark.end <= start or mark.start >= end:
            continue
        pieces.append(text[cursor : max(cursor, mark.start)])
        if mark.kind == "region":
            keep_from, keep_to = max(mark.fill_start, start), min(mark.fill_end, end)
            pieces.append(text[keep_from:keep_to] if keep_from < keep_to else "")
        cursor = min(end, mark.end)
    pieces.append(text[cursor:end])
    return "".join(pieces)
