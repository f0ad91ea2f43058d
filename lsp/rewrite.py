"""The ``infill/rewrite`` request: its params (also the ``data`` of our code actions) and its result.

Wire shape (camelCase): params ``{"textDocument": {"uri"}, "version"?: int, "range"?: Range,
"target": "range" | "function" | "holes"}``; result ``{"edits": [{"range": Range, "newText": str,
"confidence": [{"text": str, "confidence": float}]}]}``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Literal

from lsprotocol import types
from pygls.exceptions import JsonRpcInvalidParams

from infill.line_endings import lf_view
from lsp.text_edits import LineIndex, UnitCounter

if TYPE_CHECKING:
    from infill.engine.types import DecodeConfig
    from infill.infiller import Edit, Infiller

REWRITE_METHOD = "infill/rewrite"
Target = Literal["range", "function", "holes"]
TARGETS: tuple[Target, ...] = ("range", "function", "holes")


@dataclass(frozen=True)
class RewriteParams:
    uri: str
    target: Target
    version: int | None = None
    range: types.Range | None = None

    def to_wire(self) -> dict[str, Any]:
        wire: dict[str, Any] = {"textDocument": {"uri": self.uri}, "target": self.target}
        if self.version is not None:
            wire["version"] = self.version
        if self.range is not None:
            wire["range"] = range_to_wire(self.range)
        return wire


def _invalid(message: str) -> JsonRpcInvalidParams:
    return JsonRpcInvalidParams(f"Invalid params: {message}")


def _position(raw: Any, name: str) -> types.Position:
    if not isinstance(raw, dict):
        raise _invalid(f"{name} must be a position object")
    line, character = raw.get("line"), raw.get("character")
    for value in (line, character):
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise _invalid(f"{name} needs non-negative integer line and character")
    return types.Position(line=line, character=character)


def parse_rewrite_params(raw: Any) -> RewriteParams:
    """Validate the untyped params pygls hands to a custom method; raise InvalidParams with what is wrong."""
    if not isinstance(raw, dict):
        raise _invalid("expected an object")
    document = raw.get("textDocument")
    if not isinstance(document, dict) or not isinstance(document.get("uri"), str):
        raise _invalid("textDocument.uri is required")
    target = raw.get("target", "range" if "range" in raw else None)
    if target not in TARGETS:
        raise _invalid(f"target must be one of {', '.join(TARGETS)}, got {target!r}")
    version = raw.get("version")
    if version is not None and (not isinstance(version, int) or isinstance(version, bool)):
        raise _invalid("version must be an integer")
    range_: types.Range | None = None
    if raw.get("range") is not None:
        if not isinstance(raw["range"], dict):
            raise _invalid("range must be an object")
        range_ = types.Range(
            start=_position(raw["range"].get("start"), "range.start"),
            end=_position(raw["range"].get("end"), "range.end"),
        )
    if target in ("range", "function") and range_ is None:
        raise _invalid(f'target "{target}" needs a range (the selection, or the cursor for "function")')
    return RewriteParams(uri=document["uri"], target=target, version=version, range=range_)


# What the worker runs: (infiller, config, should_stop) -> the edits of the rewrite.
RewriteCall = Callable[["Infiller", "DecodeConfig", Callable[[], bool]], "list[Edit]"]


def rewrite_call(target: Target, text: str, start: int, end: int, language: str | None) -> RewriteCall:
    """The Infiller call for a target, with its offsets already converted from LSP positions. The model sees
    the LF view of ``text`` (as in ``infill rewrite``); the edits come back in offsets of ``text`` and in its
    own line endings."""
    view = lf_view(text)
    lf_text, lf_start, lf_end = view.text, view.lf_offset(start), view.lf_offset(end)

    def run(infiller: Infiller, config: DecodeConfig, should_stop: Callable[[], bool]) -> list[Edit]:
        if target == "holes":
            edits = infiller.fill_document(lf_text, language=language, config=config, should_stop=should_stop)
        else:
            if target == "function":
                edit = infiller.rewrite_function(
                    lf_text, lf_start, language=language, config=config, should_stop=should_stop
                )
            else:
                edit = infiller.rewrite(
                    lf_text, lf_start, lf_end, language=language, config=config, should_stop=should_stop
                )
            edits = [edit] if edit is not None else []
        return [
            replace(
                edit,
                start=view.original_offset(edit.start),
                end=view.original_offset(edit.end),
                new_text=view.original_text(edit.new_text),
            )
            for edit in edits
        ]

    return run


def range_to_wire(range_: types.Range) -> dict[str, Any]:
    return {
        "start": {"line": range_.start.line, "character": range_.start.character},
        "end": {"line": range_.end.line, "character": range_.end.character},
    }


def edits_to_wire(edits: Sequence[Edit], index: LineIndex, codec: UnitCounter) -> dict[str, Any]:
    """The ``infill/rewrite`` result for edits with offsets into ``index.text``."""
    return {
        "edits": [
            {
                "range": range_to_wire(index.range(edit.start, edit.end, codec)),
                "newText": edit.new_text,
                "confidence": [{"text": token.text, "confidence": token.confidence} for token in edit.tokens],
                # False: no candidate passed the syntax check and the best raw one fills a hole (holes only).
                "validated": edit.validated,
            }
            for edit in edits
        ]
    }


def workspace_edit(
    uri: str, version: int, edits: Sequence[Edit], index: LineIndex, codec: UnitCounter, versioned: bool
) -> types.WorkspaceEdit:
    """A WorkspaceEdit for a code action; versioned (documentChanges) when the client supports it, so a client
    refuses to apply it to a document that changed meanwhile."""
    text_edits = [
        types.TextEdit(range=index.range(e.start, e.end, codec), new_text=e.new_text) for e in edits
    ]
    if not versioned:
        return types.WorkspaceEdit(changes={uri: text_edits})
    document = types.OptionalVersionedTextDocumentIdentifier(uri=uri, version=version)
    return types.WorkspaceEdit(
        document_changes=[types.TextDocumentEdit(text_document=document, edits=text_edits)]
    )
