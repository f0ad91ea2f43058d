"""The ``infill/rewrite`` request: its params (also the ``data`` of our code actions) and its result.

Wire shape (camelCase): params ``{"textDocument": {"uri"}, "version"?: int, "range"?: Range,
"target": "range" | "function" | "holes", "mode"?: "regenerate" | "edit"}``; result ``{"edits": [{"range":
Range, "newText": str, "confidence": [{"text": str, "confidence": float}], "validated": bool}], "reason":
Reason}``, and in edit mode ``"lowConfidence": [{"range": Range, "confidence": float}]``: the tokens of the
code as it stands that the model finds unlikely (what an editor can mark).

``mode`` "edit" (targets range and function) keeps the code and changes only the tokens the model doubts
(infill/engine/edit.py); "regenerate" (the default) writes the region anew.

``reason`` says why ``edits`` is what it is, so an editor can tell the user: "changed" (edits to apply),
"noFunction" (target function: the cursor is in no function), "noHoles" (target holes: no markers),
"noValidEdit" (nothing the model proposed passed the syntax check), "confident" (edit mode: the model would
change nothing). These are answers, not errors: a JSON-RPC error means the request itself was wrong (bad
params, a document not open or changed meanwhile).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Literal

from lsprotocol import types
from pygls.exceptions import JsonRpcInvalidParams

from infill import regions
from infill.line_endings import lf_view
from lsp.text_edits import LineIndex, UnitCounter

if TYPE_CHECKING:
    from infill.engine.types import DecodeConfig
    from infill.infiller import Edit, Infiller

REWRITE_METHOD = "infill/rewrite"
Target = Literal["range", "function", "holes"]
TARGETS: tuple[Target, ...] = ("range", "function", "holes")
Mode = Literal["regenerate", "edit"]
MODES: tuple[Mode, ...] = ("regenerate", "edit")
Reason = Literal["changed", "noFunction", "noHoles", "noValidEdit", "confident"]
# What a client tells the user when a rewrite gives no edit, by reason (the same words in both editors).
NO_EDIT_MESSAGES: dict[str, str] = {
    "noFunction": "the cursor is not inside a function",
    "noHoles": "no holes (<|fill|> or infill:begin/infill:end) to fill",
    "noValidEdit": "nothing the model proposed passed the syntax check",
    "confident": "the model is confident in this code; nothing to change",
    "changed": "no edit",
}
# A token of the code as it stands is reported in lowConfidence below this probability.
LOW_CONFIDENCE = 0.1


@dataclass(frozen=True)
class RewriteParams:
    uri: str
    target: Target
    version: int | None = None
    range: types.Range | None = None
    mode: Mode = "regenerate"

    def to_wire(self) -> dict[str, Any]:
        wire: dict[str, Any] = {"textDocument": {"uri": self.uri}, "target": self.target, "mode": self.mode}
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
    mode = raw.get("mode", "regenerate")
    if mode not in MODES:
        raise _invalid(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
    if mode == "edit" and target == "holes":
        raise _invalid('mode "edit" edits a range or a function; holes are filled with mode "regenerate"')
    return RewriteParams(uri=document["uri"], target=target, version=version, range=range_, mode=mode)


@dataclass(frozen=True)
class RewriteOutcome:
    """Edits with offsets into the document, why they are what they are, and (edit mode) the doubted
    tokens of the code as it stands as ``(start, end, confidence)``."""

    edits: list[Edit]
    reason: Reason
    low_confidence: tuple[tuple[int, int, float], ...] = ()


# What the worker runs: (infiller, config, should_stop) -> the outcome of the rewrite.
RewriteCall = Callable[["Infiller", "DecodeConfig", Callable[[], bool]], RewriteOutcome]


def rewrite_call(
    target: Target, text: str, start: int, end: int, language: str | None, mode: Mode = "regenerate"
) -> RewriteCall:
    """The Infiller call for a target, with its offsets already converted from LSP positions. The model sees
    the LF view of ``text`` (as in ``infill rewrite``); the edits come back in offsets of ``text`` and in its
    own line endings."""
    view = lf_view(text)
    lf_text, lf_start, lf_end = view.text, view.lf_offset(start), view.lf_offset(end)

    def run(infiller: Infiller, config: DecodeConfig, should_stop: Callable[[], bool]) -> RewriteOutcome:
        outcome = _run_target(infiller, config, should_stop)
        return replace(
            outcome,
            edits=[view.original_edit(edit) for edit in outcome.edits],
            low_confidence=tuple(
                (view.original_offset(s), view.original_offset(e), c) for s, e, c in outcome.low_confidence
            ),
        )

    def _run_target(
        infiller: Infiller, config: DecodeConfig, should_stop: Callable[[], bool]
    ) -> RewriteOutcome:
        if target == "function" and regions.function_region(lf_text, lf_start, language) is None:
            return RewriteOutcome([], "noFunction")
        if mode == "edit":
            if target == "function":
                edited = infiller.edit_function(
                    lf_text, lf_start, language=language, config=config, should_stop=should_stop
                )
                assert edited is not None, "function_region found the function above"
            else:
                edited = infiller.edit_region(
                    lf_text, lf_start, lf_end, language=language, config=config, should_stop=should_stop
                )
            doubted = tuple(
                (s.start, s.end, s.confidence)
                for s in edited.original_confidences
                if s.confidence < LOW_CONFIDENCE
            )
            reason: Reason = {"changed": "changed", "confident": "confident", "invalid": "noValidEdit"}[
                edited.reason
            ]
            return RewriteOutcome([edited.edit] if edited.edit else [], reason, doubted)
        if target == "holes":
            edits = infiller.fill_document(lf_text, language=language, config=config, should_stop=should_stop)
            # Every marker gets an edit (an unchecked one at worst): none means there are no markers.
            return RewriteOutcome(edits, "changed" if edits else "noHoles")
        if target == "function":
            edit = infiller.rewrite_function(
                lf_text, lf_start, language=language, config=config, should_stop=should_stop
            )
        else:
            edit = infiller.rewrite(
                lf_text, lf_start, lf_end, language=language, config=config, should_stop=should_stop
            )
        return RewriteOutcome(
            [edit] if edit is not None else [], "changed" if edit is not None else "noValidEdit"
        )

    return run


def range_to_wire(range_: types.Range) -> dict[str, Any]:
    return {
        "start": {"line": range_.start.line, "character": range_.start.character},
        "end": {"line": range_.end.line, "character": range_.end.character},
    }


def outcome_to_wire(
    outcome: RewriteOutcome, mode: Mode, index: LineIndex, codec: UnitCounter
) -> dict[str, Any]:
    """The ``infill/rewrite`` result for an outcome with offsets into ``index.text``."""
    wire = {**edits_to_wire(outcome.edits, index, codec), "reason": outcome.reason}
    if mode == "edit":
        wire["lowConfidence"] = [
            {"range": range_to_wire(index.range(start, end, codec)), "confidence": confidence}
            for start, end, confidence in outcome.low_confidence
        ]
    return wire


def edits_to_wire(edits: Sequence[Edit], index: LineIndex, codec: UnitCounter) -> dict[str, Any]:
    """The edits of an ``infill/rewrite`` result, with offsets into ``index.text``."""
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


# The change annotation of a fill no candidate passed the syntax check for (code actions only).
UNCHECKED_ANNOTATION = "infill.unchecked"


@dataclass(frozen=True)
class ActionEdit:
    """What a code action applies: ``edit`` (None when nothing is left) and the unchecked fills it leaves
    out because the client cannot be asked before applying them."""

    edit: types.WorkspaceEdit | None
    left_out: tuple[Edit, ...] = ()


def workspace_edit(
    uri: str,
    version: int,
    edits: Sequence[Edit],
    index: LineIndex,
    codec: UnitCounter,
    *,
    versioned: bool,
    annotations: bool,
) -> ActionEdit:
    """The WorkspaceEdit of a code action.

    Versioned (documentChanges) when the client supports it, so it refuses to apply the edit to a document
    that changed meanwhile. A plain client applies a code action's edit without asking (Neovim's
    ``vim.lsp.buf.code_action()``), so a fill that is not ``validated`` goes in only as an AnnotatedTextEdit
    whose ChangeAnnotation needs confirmation, for clients that support change annotations (VS Code then
    shows the refactor preview); other clients do not get it at all (``left_out``).
    """
    annotated = versioned and annotations
    kept = [edit for edit in edits if edit.validated or annotated]
    left_out = tuple(edit for edit in edits if edit not in kept)
    if not kept:
        return ActionEdit(None, left_out)
    text_edits: list[types.TextEdit | types.AnnotatedTextEdit] = []
    for edit in kept:
        range_ = index.range(edit.start, edit.end, codec)
        if edit.validated:
            text_edits.append(types.TextEdit(range=range_, new_text=edit.new_text))
        else:
            text_edits.append(
                types.AnnotatedTextEdit(
                    range=range_, new_text=edit.new_text, annotation_id=UNCHECKED_ANNOTATION
                )
            )
    if not versioned:
        return ActionEdit(types.WorkspaceEdit(changes={uri: text_edits}), left_out)  # type: ignore[dict-item]
    document = types.OptionalVersionedTextDocumentIdentifier(uri=uri, version=version)
    unchecked = any(not edit.validated for edit in kept)
    return ActionEdit(
        types.WorkspaceEdit(
            document_changes=[types.TextDocumentEdit(text_document=document, edits=text_edits)],
            change_annotations={UNCHECKED_ANNOTATION: UNCHECKED_CHANGE} if unchecked else None,
        ),
        left_out,
    )


UNCHECKED_CHANGE = types.ChangeAnnotation(
    label="infill: unchecked fill",
    needs_confirmation=True,
    description="No candidate for this hole passed the syntax check: this fill may not parse.",
)
