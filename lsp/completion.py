"""Inline completion without the protocol: what the model is asked for a cursor, and how its edits become
LSP 3.18 inline completion items (range on the cursor's line, text extending the selected completion).

The model sees the LF view of the document (``infill.line_endings``), as with ``infill complete``: a CRLF
document gets the same candidates as the CLI gives for the same file, and multi-line items come back with
the document's own line endings."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from lsprotocol import types

from infill.line_endings import LfView, lf_view
from infill.worker import CompletionJob
from lsp.text_edits import (
    InlineInsertion,
    LineIndex,
    UnitCounter,
    apply_selected_completion,
    context_slice,
    extend_over_selection,
    inline_insertion,
)

if TYPE_CHECKING:
    from infill.infiller import Edit


@dataclass(frozen=True)
class SelectedCompletion:
    """The completion widget's selected item, in document offsets: it would replace ``text[start:end]``."""

    start: int
    end: int
    text: str


@dataclass(frozen=True)
class CompletionPlan:
    """The model's request plus what maps its edits back to the document.

    ``job.text`` is the LF view (``view``) of a slice of the document (with the selected completion applied,
    if any) that starts at ``slice_start`` of that applied text.
    """

    job: CompletionJob
    slice_start: int
    selection: SelectedCompletion | None
    view: LfView


def selected_completion(
    index: LineIndex, cursor: int, info: types.SelectedCompletionInfo | None, codec: UnitCounter
) -> SelectedCompletion | None:
    """The selected completion when it is usable: on the cursor's line and around the cursor."""
    if info is None:
        return None
    start, end = index.offset(info.range.start, codec), index.offset(info.range.end, codec)
    line = index.line_of(cursor)
    if not (start <= cursor <= end and index.line_of(start) == line == index.line_of(end)):
        return None
    return SelectedCompletion(start, end, info.text)


def plan_completion(
    text: str,
    cursor: int,
    selection: SelectedCompletion | None,
    *,
    language: str | None,
    max_tokens: int,
    num_candidates: int,
    trigger: Literal["automatic", "invoked"] = "invoked",
) -> CompletionPlan:
    if selection is not None:
        text, cursor = apply_selected_completion(text, selection.start, selection.end, selection.text)
    window = context_slice(text, cursor)
    view = lf_view(text[window.start : window.end])
    job = CompletionJob(
        text=view.text,
        offset=view.lf_offset(cursor - window.start),
        language=language,
        max_tokens=max_tokens,
        num_candidates=num_candidates,
        trigger=trigger,
    )
    return CompletionPlan(job=job, slice_start=window.start, selection=selection, view=view)


def completion_items(
    plan: CompletionPlan, edits: Sequence[Edit], index: LineIndex, codec: UnitCounter
) -> list[types.InlineCompletionItem]:
    """Distinct items, best first; edits that cannot be shown inline (``inline_insertion``) are dropped."""
    model_text = LineIndex.of(plan.job.text)
    items: list[types.InlineCompletionItem] = []
    seen: set[tuple[int, int, str]] = set()
    for edit in edits:
        insertion = inline_insertion(model_text, plan.job.offset, edit.start, edit.end, edit.new_text)
        if insertion is None:
            continue
        view, shift = plan.view, plan.slice_start
        insertion = InlineInsertion(
            view.original_offset(insertion.start) + shift,
            view.original_offset(insertion.end) + shift,
            view.original_text(insertion.insert_text),
        )
        if plan.selection is not None:
            insertion = extend_over_selection(
                insertion, plan.selection.start, plan.selection.end, plan.selection.text
            )
        key = (insertion.start, insertion.end, insertion.insert_text)
        if key in seen:
            continue
        seen.add(key)
        items.append(
            types.InlineCompletionItem(
                insert_text=insertion.insert_text, range=index.range(insertion.start, insertion.end, codec)
            )
        )
    return items
