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
from tests.test_lsp_support import LspSession, serve_argv

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
