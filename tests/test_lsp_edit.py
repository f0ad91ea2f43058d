"""`infill/rewrite` with ``"mode": "edit"`` and the reasons of an empty result, over stdio with pygls' client
against the real `infill serve` (``edit_model_dir``: sure of EDIT_CLEAN_LINE, rejects any other token there
and writes " b" in its place)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from lsprotocol import types
from pygls.exceptions import JsonRpcException

from tests.conftest import EDIT_CLEAN_LINE
from tests.test_lsp_support import LspSession, inline_params, serve_argv

CLEAN = "def add(a, b):\n" + EDIT_CLEAN_LINE + "\n\nprint(add(1, 2))\n"
PLANTED = CLEAN.replace("a + b\n", "a + x\n")
INSIDE = {"start": {"line": 1, "character": 6}, "end": {"line": 1, "character": 6}}
OUTSIDE = {"start": {"line": 4, "character": 0}, "end": {"line": 4, "character": 0}}


@pytest.fixture(scope="module")
def session(edit_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LspSession]:
    lsp = LspSession(serve_argv(edit_model_dir, tmp_path_factory.mktemp("lsp_edit") / "server.log"))
    lsp.initialize({})
    yield lsp
    lsp.close()


def rewrite(session: LspSession, uri: str, target: str, range_: dict[str, Any], mode: str) -> Any:
    params = {"textDocument": {"uri": uri}, "target": target, "range": range_, "mode": mode}
    return session.request("infill/rewrite", params)


def test_edit_mode_changes_only_the_doubted_token(session: LspSession) -> None:
    uri = "file:///planted.py"
    session.open(uri, PLANTED)
    result = rewrite(session, uri, "function", INSIDE, "edit")
    assert result["reason"] == "changed"
    (edit,) = result["edits"]
    column = PLANTED.splitlines()[1].index(" x")
    assert edit["range"]["start"]["line"] == edit["range"]["end"]["line"] == 1
    assert column <= edit["range"]["start"]["character"] < edit["range"]["end"]["character"] <= column + 2
    line = PLANTED.splitlines()[1]
    start, end = edit["range"]["start"]["character"], edit["range"]["end"]["character"]
    assert line[:start] + edit["newText"] + line[end:] == EDIT_CLEAN_LINE.rstrip("\n")
    assert edit["validated"] is True and edit["confidence"]
    # The planted token is marked as one the model doubts, and nothing the model is sure of is.
    assert [mark["range"] for mark in result["lowConfidence"]] == [
        {"start": {"line": 1, "character": column}, "end": {"line": 1, "character": column + 2}}
    ]
    # The same in the selection's edit mode.
    selection = {"start": {"line": 1, "character": 0}, "end": {"line": 2, "character": 0}}
    assert rewrite(session, uri, "range", selection, "edit")["edits"] == result["edits"]


def test_the_three_empty_answers_are_told_apart(session: LspSession) -> None:
    uri = "file:///reasons.py"
    session.open(uri, CLEAN)
    assert rewrite(session, uri, "function", INSIDE, "edit") == {
        "edits": [],
        "reason": "confident",
        "lowConfidence": [],
    }
    for mode in ("edit", "regenerate"):
        assert rewrite(session, uri, "function", OUTSIDE, mode)["reason"] == "noFunction"
    holes = session.request("infill/rewrite", {"textDocument": {"uri": uri}, "target": "holes"})
    assert holes == {"edits": [], "reason": "noHoles"}
    # The model doubts ")" and writes " b" there: `return a + b b` does not parse, so nothing is proposed.
    broken_uri = "file:///broken.py"
    session.open(broken_uri, CLEAN.replace("a + b\n", "a + b)\n"))
    line = {"start": {"line": 1, "character": 0}, "end": {"line": 2, "character": 0}}
    broken = rewrite(session, broken_uri, "range", line, "edit")
    assert broken["edits"] == [] and broken["reason"] == "noValidEdit"


def test_edit_mode_for_holes_is_an_invalid_params_error(session: LspSession) -> None:
    uri = "file:///holes.py"
    session.open(uri, CLEAN)
    with pytest.raises(JsonRpcException) as raised:
        session.request("infill/rewrite", {"textDocument": {"uri": uri}, "target": "holes", "mode": "edit"})
    assert raised.value.code == -32602
    with pytest.raises(JsonRpcException) as raised:
        rewrite(session, uri, "function", INSIDE, "rewrite-harder")
    assert raised.value.code == -32602


def test_edit_function_in_place_code_action(session: LspSession) -> None:
    uri = "file:///action.py"
    session.open(uri, PLANTED, version=3)
    params = types.CodeActionParams(
        text_document=types.TextDocumentIdentifier(uri=uri),
        range=types.Range(start=types.Position(line=1, character=6), end=types.Position(line=1, character=6)),
        context=types.CodeActionContext(diagnostics=[]),
    )
    actions = session.request(types.TEXT_DOCUMENT_CODE_ACTION, params)
    (action,) = [action for action in actions if action.title == "Edit function in place"]
    resolved = session.request(types.CODE_ACTION_RESOLVE, action)
    assert resolved.edit is not None
    (change,) = resolved.edit.document_changes
    (text_edit,) = change.edits
    assert text_edit.range.start.line == 1 and text_edit.new_text.strip() in ("b", "")


@pytest.fixture(scope="module")
def next_edit_session(
    edit_model_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[LspSession, list[dict[str, Any]]]]:
    """A server with next-edit suggestions on, and the infill/nextEditReady notifications it sent so far. The
    debounce is long enough that a change sent right after another lands inside its window."""
    lsp = LspSession(serve_argv(edit_model_dir, tmp_path_factory.mktemp("lsp_next") / "server.log"))
    ready: list[dict[str, Any]] = []

    @lsp.client.feature("infill/nextEditReady")
    def on_ready(params: Any) -> None:
        ready.append(params)

    lsp.initialize({"nextEdit": True, "debounceMs": 300})
    yield lsp, ready
    lsp.close()


def _range(line: int, start: int, end: int) -> types.Range:
    return types.Range(
        start=types.Position(line=line, character=start), end=types.Position(line=line, character=end)
    )


def _apply(text: str, item: types.InlineCompletionItem) -> str:
    """Apply an item by (ASCII) line and column, independently of the server's conversion code."""
    assert item.range is not None and isinstance(item.insert_text, str)
    lines = text.splitlines(keepends=True)

    def offset(position: types.Position) -> int:
        return sum(len(line) for line in lines[: position.line]) + position.character

    return text[: offset(item.range.start)] + item.insert_text + text[offset(item.range.end) :]


def test_a_change_gets_a_next_edit_suggestion_the_next_keystroke_cancels(
    next_edit_session: tuple[LspSession, list[dict[str, Any]]],
) -> None:
    session, ready = next_edit_session
    # Plain text made of the one line the model is sure of: every token around the change is one it keeps.
    uri = "file:///typed.txt"
    session.open(uri, EDIT_CLEAN_LINE * 5, language_id="plaintext", version=1)
    line = EDIT_CLEAN_LINE
    # The user types " y" over " a" and, right away (inside the debounce window), " x" over " b" on line 2.
    session.change(uri, 2, " y", _range(2, line.index(" a"), line.index(" a") + 2))
    session.change(uri, 3, " x", _range(2, line.index(" b"), line.index(" b") + 2))
    typed_line = line.replace(" a", " y").replace(" b", " x")
    typed = line * 2 + typed_line + line * 2
    session.wait_for(lambda: any(params["version"] == 3 for params in ready), "a next-edit suggestion")
    # The first change's suggestion was cancelled by the second keystroke: only version 3 got one.
    assert ready == [{"uri": uri, "version": 3}]
    cursor = line.index(" b") + 2
    result = session.request(
        types.TEXT_DOCUMENT_INLINE_COMPLETION, inline_params(uri, 2, cursor, automatic=True)
    )
    suggestions = [
        item for item in result.items if item.range is not None and item.range.start.character < cursor
    ]
    assert len(suggestions) == 1
    (suggestion,) = suggestions
    # Its range covers the text it replaces and the cursor; applied, it replaces doubted tokens with " b" and
    # changes nothing else.
    assert suggestion.range is not None
    assert suggestion.range.start.line == suggestion.range.end.line == 2
    assert suggestion.range.start.character <= cursor <= suggestion.range.end.character
    after = _apply(typed, suggestion).splitlines(keepends=True)
    assert after[:2] == [line, line] and after[3:] == [line, line]
    assert after[2] in (line.replace(" a", " y"), line.replace(" b", " x"), line.replace(" a", " b"))
    # A suggestion is offered only at its version: after the next change (which leaves nothing to doubt, so
    # no new suggestion can come) it is gone.
    session.change(uri, 4, line.rstrip("\n"), _range(2, 0, len(typed_line) - 1))
    later = session.request(
        types.TEXT_DOCUMENT_INLINE_COMPLETION, inline_params(uri, 2, cursor, automatic=True)
    )
    assert not [
        item for item in later.items if item.range is not None and item.range.start.character < cursor
    ]
