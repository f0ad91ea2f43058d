"""Next-edit suggestions: after the user changes code, edit mode on the lines around the change proposes an
edit, offered as an inline completion item whose range covers the text it replaces.

How the server runs them (server.py, only with the ``nextEdit`` setting on):
- ``textDocument/didChange`` schedules one for the end of the last change, through ``run_model`` (kind
  "nextEdit") after ``debounceMs`` plus NEXT_EDIT_EXTRA_DEBOUNCE_S: a newer change supersedes it during the
  wait and the worker's stop flag ends it once the document changes again, so the next keystroke cancels it;
- it never blocks a completion: ``textDocument/inlineCompletion`` does not wait for it, and an inline request
  handed to the worker while it runs stops it before its next forward pass (the completion then runs at once);
- a finished suggestion is kept for its document version (dropped at the next change), and the server sends
  ``infill/nextEditReady`` ``{"uri", "version"}`` so an editor can ask for inline completions again; the next
  inline completion at that version whose cursor is within NEXT_EDIT_LINES lines of it gets it as its last
  item, widened to cover the cursor (editors show an inline item only where its range holds the cursor).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from lsprotocol import types

from infill.line_endings import lf_view
from lsp.text_edits import LineIndex, UnitCounter

if TYPE_CHECKING:
    from infill.engine.types import DecodeConfig
    from infill.infiller import Edit, Infiller

NEXT_EDIT_READY = "infill/nextEditReady"
# A next-edit suggestion waits this much longer than a completion after a keystroke, so that the completion
# of that keystroke usually reaches the worker first.
NEXT_EDIT_EXTRA_DEBOUNCE_S = 0.1
# The cursor may be this many lines from a kept suggestion for it to be offered (edit_mode.NEXT_EDIT_LINES).
NEXT_EDIT_LINES = 2


@dataclass(frozen=True)
class NextEdit:
    version: int
    edit: Edit  # offsets into that version's text


class NextEdits:
    """The last finished suggestion per document (one version only)."""

    def __init__(self) -> None:
        self._kept: dict[str, NextEdit] = {}

    def put(self, uri: str, version: int, edit: Edit) -> None:
        self._kept[uri] = NextEdit(version, edit)

    def get(self, uri: str, version: int) -> Edit | None:
        kept = self._kept.get(uri)
        return kept.edit if kept is not None and kept.version == version else None

    def forget(self, uri: str) -> None:
        self._kept.pop(uri, None)


def change_end(params: types.DidChangeTextDocumentParams, index: LineIndex, codec: UnitCounter) -> int | None:
    """Offset in the changed document where its last content change ends (where the user's cursor likely is);
    None for a whole-document replacement (no cursor to go by)."""
    if not params.content_changes:
        return None
    change = params.content_changes[-1]
    if not isinstance(change, types.TextDocumentContentChangePartial):
        return None
    start = index.offset(change.range.start, codec)
    return min(len(index.text), start + len(change.text))


# What the worker runs: (infiller, config, should_stop) -> the suggested edit or None.
NextEditCall = Callable[["Infiller", "DecodeConfig", Callable[[], bool]], "Edit | None"]


def next_edit_call(text: str, offset: int, language: str | None) -> NextEditCall:
    """The Infiller call for a suggestion around ``offset`` of ``text``; the model sees the LF view (as
    everywhere), the edit comes back in offsets of ``text`` and its own line endings."""
    view = lf_view(text)

    def run(infiller: Infiller, config: DecodeConfig, should_stop: Callable[[], bool]) -> Edit | None:
        outcome = infiller.suggest_next_edit(
            view.text, view.lf_offset(offset), language=language, config=config, should_stop=should_stop
        )
        return None if outcome.edit is None else view.original_edit(outcome.edit)

    return run


def next_edit_item(
    edit: Edit, cursor: int, index: LineIndex, codec: UnitCounter
) -> types.InlineCompletionItem | None:
    """The suggestion as an inline completion item for a cursor at ``cursor``: its range covers the replaced
    text and the cursor (the text between them is repeated in insert_text); None when the cursor is more than
    NEXT_EDIT_LINES lines away."""
    text = index.text
    cursor_line = index.line_of(cursor)
    if min(abs(index.line_of(edit.start) - cursor_line), abs(index.line_of(edit.end) - cursor_line)) > (
        NEXT_EDIT_LINES
    ):
        return None
    start, end = min(edit.start, cursor), max(edit.end, cursor)
    insert = text[start : edit.start] + edit.new_text + text[edit.end : end]
    return types.InlineCompletionItem(insert_text=insert, range=index.range(start, end, codec))
