"""The real `infill serve` over stdio with pygls' client and a tiny ModernBERT: completions, rewrites, code
actions, staleness, cancellation, settings, model reloads and failures, and flat memory.

One server process serves the whole module (starting one means importing torch); tests that change settings
restore them. The tiny model is random except for a strong output bias towards the token "x", so it
proposes "xxxx" wherever that parses, whatever the rest of the stack does with near-uniform logits;
assertions are still structural (range at the cursor, on one line, no new parse errors).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from lsprotocol import types
from pygls.exceptions import JsonRpcException

from infill.regions import document_parses
from tests.test_lsp_support import LspSession, client_capabilities, inline_params, rss_kib, serve_argv

# Small canvases and few steps keep each completion to a few tiny forward passes.
BASE_OPTIONS: dict[str, Any] = {"maxTokens": 4, "steps": 4, "debounceMs": 400}
PY = "def add(a, b):\n    return a + b\n\n\nresult = add(1, \n"
FUNC_LINE = 1  # inside add()


@pytest.fixture(scope="module")
def session(x_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LspSession]:
    log_file = tmp_path_factory.mktemp("lsp") / "server.log"
    lsp = LspSession(serve_argv(x_model_dir, log_file))
    lsp.model_dir = x_model_dir  # type: ignore[attr-defined]
    lsp.log_file = log_file  # type: ignore[attr-defined]
    lsp.init_result = lsp.initialize(BASE_OPTIONS)  # type: ignore[attr-defined]
    yield lsp
    lsp.close()


def configure(session: LspSession, **changes: Any) -> None:
    settings = {**BASE_OPTIONS, **changes}
    params = types.DidChangeConfigurationParams(settings={"infill": settings})
    session.notify(types.WORKSPACE_DID_CHANGE_CONFIGURATION, params)


def inline(
    session: LspSession, uri: str, line: int, character: int, **kwargs: Any
) -> list[types.InlineCompletionItem]:
    result = session.request(
        types.TEXT_DOCUMENT_INLINE_COMPLETION, inline_params(uri, line, character, **kwargs)
    )
    assert isinstance(result, types.InlineCompletionList)
    return list(result.items)


def utf16_len(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def apply_item(text: str, item: types.InlineCompletionItem) -> str:
    """Apply an item by UTF-16 columns, independently of the server's conversion code."""
    assert item.range is not None
    lines = text.split("\n")
    line = lines[item.range.start.line]
    units = [utf16_len(line[:i]) for i in range(len(line) + 1)]
    start, end = units.index(item.range.start.character), units.index(item.range.end.character)
    lines[item.range.start.line] = line[:start] + item.insert_text + line[end:]  # type: ignore[operator]
    return "\n".join(lines)


def error_code(call: Any) -> int:
    with pytest.raises(JsonRpcException) as raised:
        call()
    return raised.value.code


def test_initialize_advertises_features_and_loads_the_model_after_answering(session: LspSession) -> None:
    capabilities = session.init_result.capabilities  # type: ignore[attr-defined]
    assert capabilities.inline_completion_provider is not None
    assert capabilities.code_action_provider.resolve_provider is True
    assert capabilities.code_action_provider.code_action_kinds == ("refactor.rewrite",)
    assert capabilities.position_encoding == types.PositionEncodingKind.Utf16
    states = [status["state"] for status in session.statuses]
    assert states[:2] == ["loading", "ready"]
    kinds = [getattr(value, "kind", None) or value.get("kind") for value in session.progress]
    assert kinds[:2] == ["begin", "end"]


def test_invoked_completion_items_sit_at_the_cursor_on_one_line(session: LspSession) -> None:
    uri = "file:///invoked.py"
    session.open(uri, PY)
    line, character = 4, len("result = add(1, ")
    items = inline(session, uri, line, character)
    assert 1 <= len(items) <= 3
    for item in items:
        assert item.range is not None and item.range.start == types.Position(line=line, character=character)
        assert item.range.end.line == line
        assert document_parses(apply_item(PY, item), "python")  # `result = add(1, ` is finished
    log = session.log_file.read_text()  # type: ignore[attr-defined]
    assert "completion id=" in log and "tokens=" in log and "ms=" in log


def test_a_block_on_an_empty_indented_line_starts_at_the_cursor(session: LspSession) -> None:
    uri = "file:///block.py"
    text = "def scale(values):\n    \n\n\nprint(scale([1]))\n"
    session.open(uri, text)
    items = inline(session, uri, 1, 4)
    assert items
    for item in items:
        assert item.range == types.Range(
            start=types.Position(line=1, character=4), end=types.Position(line=1, character=4)
        )
        assert not item.insert_text.startswith((" ", "\t"))  # type: ignore[union-attr]


def test_automatic_trigger_gives_one_item(session: LspSession) -> None:
    uri = "file:///automatic.py"
    session.open(uri, PY)
    items = inline(session, uri, 4, len("result = add(1, "), automatic=True)
    assert len(items) == 1


def test_positions_are_utf16_in_lines_with_emoji_and_cjk(session: LspSession) -> None:
    uri = "file:///emoji.py"
    prefix = 'label = add("😋 漢字 🎉", '
    text = f"{prefix}\nother = 1\n"
    session.open(uri, text)
    items = inline(session, uri, 0, utf16_len(prefix))
    assert items
    for item in items:
        assert item.range is not None and item.range.start.character == utf16_len(prefix) == len(prefix) + 2
        assert apply_item(text, item).startswith(prefix + item.insert_text)  # type: ignore[operator]
    # A rewrite of `add(` after the emoji comes back in UTF-16 columns too: its range starts on a character
    # boundary of the line, counted in UTF-16 code units.
    selection = types.Range(
        start=types.Position(line=0, character=8), end=types.Position(line=0, character=11)
    )
    result = session.request(
        "infill/rewrite", {"textDocument": {"uri": uri}, "target": "range", "range": _wire(selection)}
    )
    boundaries = {utf16_len(prefix[:i]) for i in range(len(prefix) + 1)}
    for edit in result["edits"]:
        assert edit["range"]["start"]["character"] in boundaries


def _wire(range_: types.Range) -> dict[str, Any]:
    return {
        "start": {"line": range_.start.line, "character": range_.start.character},
        "end": {"line": range_.end.line, "character": range_.end.character},
    }


def test_items_extend_the_selected_completion(session: LspSession) -> None:
    uri = "file:///selected.py"
    text = "import os\n\nvalue = add(os.pa\n"
    session.open(uri, text)
    selected = types.SelectedCompletionInfo(
        range=types.Range(
            start=types.Position(line=2, character=15), end=types.Position(line=2, character=17)
        ),
        text="path",
    )
    items = inline(session, uri, 2, 17, selected=selected)
    assert items
    for item in items:
        assert item.insert_text.startswith("path")  # type: ignore[union-attr]
        assert item.range is not None and item.range.start == selected.range.start
        assert item.range.end.line == 2 and item.range.end.character >= selected.range.end.character


def test_rewrite_targets_return_edits_with_confidence(session: LspSession) -> None:
    uri = "file:///rewrite.py"
    text = "def add(a, b):\n    total = a + b\n    return total\n\n\nx = <|fill|>\n"
    session.open(uri, text, version=3)
    here = {"start": {"line": FUNC_LINE, "character": 6}, "end": {"line": FUNC_LINE, "character": 6}}
    function = session.request(
        "infill/rewrite", {"textDocument": {"uri": uri}, "version": 3, "target": "function", "range": here}
    )
    holes = session.request("infill/rewrite", {"textDocument": {"uri": uri}, "target": "holes"})
    assert function["edits"] and all(edit["validated"] for edit in function["edits"] + holes["edits"])
    (hole,) = holes["edits"]  # every marker gets an edit, covering the marker so it disappears
    assert hole["range"]["start"] == {"line": 5, "character": 4}
    assert hole["range"]["end"]["line"] == 5 and hole["range"]["end"]["character"] >= len("x = <|fill|>")
    for edit in function["edits"] + holes["edits"]:
        assert isinstance(edit["newText"], str) and isinstance(edit["validated"], bool)
        assert all(
            isinstance(token["text"], str) and 0.0 <= token["confidence"] <= 1.0
            for token in edit["confidence"]
        )
    for edit in function["edits"]:
        assert edit["range"]["start"]["line"] >= 1 and edit["range"]["end"]["line"] <= 3
    outside = {"start": {"line": 5, "character": 0}, "end": {"line": 5, "character": 0}}
    nothing = session.request(
        "infill/rewrite", {"textDocument": {"uri": uri}, "target": "function", "range": outside}
    )
    assert nothing == {"edits": [], "reason": "noFunction"}


def test_edits_after_a_form_feed_land_on_the_clients_line(session: LspSession) -> None:
    # str.splitlines (what pygls uses) breaks lines at form feeds; LSP clients do not.
    uri = "file:///formfeed.py"
    session.open(uri, "x = 1  # \x0c page break\ny = 2\n", version=1)
    at = types.Range(start=types.Position(line=1, character=4), end=types.Position(line=1, character=5))
    session.change(uri, 2, "<|fill|>", at)
    holes = session.request("infill/rewrite", {"textDocument": {"uri": uri}, "version": 2, "target": "holes"})
    assert [edit["range"]["start"] for edit in holes["edits"]] == [{"line": 1, "character": 4}]


def test_rewrite_errors_are_json_rpc_errors(session: LspSession) -> None:
    uri = "file:///rewrite_errors.py"
    session.open(uri, PY, version=5)
    here = {"start": {"line": 1, "character": 0}, "end": {"line": 1, "character": 5}}

    def rewrite(params: dict[str, Any]) -> Any:
        return lambda: session.request("infill/rewrite", params)

    assert (
        error_code(rewrite({"textDocument": {"uri": uri}, "version": 4, "target": "range", "range": here}))
        == -32801
    )
    assert error_code(rewrite({"textDocument": {"uri": "file:///nope.py"}, "target": "holes"})) == -32602
    assert error_code(rewrite({"textDocument": {"uri": uri}, "target": "everything"})) == -32602
    far = {"start": {"line": 99, "character": 0}, "end": {"line": 99, "character": 1}}
    assert error_code(rewrite({"textDocument": {"uri": uri}, "target": "range", "range": far})) == -32602


def _code_actions(
    session: LspSession, uri: str, start: tuple[int, int], end: tuple[int, int], only: Any = None
) -> Any:
    params = types.CodeActionParams(
        text_document=types.TextDocumentIdentifier(uri=uri),
        range=types.Range(start=types.Position(*start), end=types.Position(*end)),
        context=types.CodeActionContext(diagnostics=[], only=only),
    )
    return session.request(types.TEXT_DOCUMENT_CODE_ACTION, params)


def test_code_actions_are_listed_cheaply_and_resolved_to_versioned_edits(session: LspSession) -> None:
    uri = "file:///actions.py"
    text = "def add(a, b):\n    total = a + b\n    return total\n\n\nx = <|fill|>\n"
    session.open(uri, text, version=7)
    actions = _code_actions(session, uri, (1, 4), (1, 17))
    titles = {"Fill holes", "Rewrite selection", "Rewrite function"}
    assert {action.title for action in actions} == {
        *titles,
        "Edit selection in place",
        "Edit function in place",
    }
    assert all(action.kind == "refactor.rewrite" and action.edit is None for action in actions)
    for action in [action for action in actions if action.title in titles]:  # edit mode: test_lsp_edit.py
        resolved = session.request(types.CODE_ACTION_RESOLVE, action)
        assert resolved.edit is not None, action.title  # the x model's fills are valid code here
        (change,) = resolved.edit.document_changes
        assert change.text_document.uri == uri and change.text_document.version == 7
        assert change.edits
    # No selection, no markers, outside a function: nothing to offer; a filter for other kinds: nothing.
    session.open("file:///plain.py", "x = 1\n")
    assert _code_actions(session, "file:///plain.py", (0, 0), (0, 0)) == ()
    assert _code_actions(session, uri, (1, 4), (1, 17), only=[types.CodeActionKind.QuickFix]) == ()
    assert len(_code_actions(session, uri, (1, 4), (1, 17), only=[types.CodeActionKind.Refactor])) == 5
    # Unbalanced markers: Fill holes is offered greyed out with the reason.
    session.open("file:///broken.py", "# infill:begin\nx = 1\n")
    (broken,) = _code_actions(session, "file:///broken.py", (0, 0), (0, 0))
    assert broken.title == "Fill holes" and broken.disabled is not None and "1" in broken.disabled.reason


# The x model fills a hole with `xxxx`: valid after `x = `, never after `value = 1 ` (the editors' e2e file).
CHECKED_AND_UNCHECKED = "x = <|fill|>\nvalue = 1 <|fill|>\n"


def _resolve_fill_holes(session: LspSession, uri: str) -> types.CodeAction:
    session.open(uri, CHECKED_AND_UNCHECKED)
    (action,) = [a for a in _code_actions(session, uri, (0, 0), (0, 0)) if a.title == "Fill holes"]
    return session.request(types.CODE_ACTION_RESOLVE, action)


def test_fill_holes_leaves_out_unchecked_fills_for_a_client_that_cannot_confirm(session: LspSession) -> None:
    """Neovim's vim.lsp.buf.code_action() applies a resolved edit unasked: an unchecked fill never goes in."""
    before = len(session.messages)
    resolved = _resolve_fill_holes(session, "file:///unchecked_plain.py")
    assert resolved.edit is not None and resolved.edit.change_annotations is None
    (change,) = resolved.edit.document_changes
    (edit,) = change.edits  # the checked fill only
    assert edit.range.start.line == 0 and set(edit.new_text) == {"x"}
    assert not isinstance(edit, types.AnnotatedTextEdit)
    session.wait_for(lambda: len(session.messages) > before, "the left-out warning")
    warning = session.messages[-1]
    assert warning.type == types.MessageType.Warning
    assert "left out 1 fill(s) that did not pass the syntax check (line 2)" in warning.message


def test_fill_holes_asks_for_confirmation_of_unchecked_fills_where_the_client_can(
    x_model_dir: Path, tmp_path: Path
) -> None:
    """A client that supports change annotations (VS Code) gets the unchecked fill as an AnnotatedTextEdit
    whose annotation needs confirmation, so it previews it instead of applying it."""
    capabilities = client_capabilities()
    assert capabilities.workspace is not None and capabilities.workspace.workspace_edit is not None
    capabilities.workspace.workspace_edit.change_annotation_support = types.ChangeAnnotationsSupportOptions(
        groups_on_label=True
    )
    lsp = LspSession(serve_argv(x_model_dir, tmp_path / "server.log"))
    try:
        lsp.initialize(BASE_OPTIONS, capabilities=capabilities)
        resolved = _resolve_fill_holes(lsp, "file:///unchecked_annotated.py")
    finally:
        lsp.close()
    assert resolved.edit is not None and resolved.edit.change_annotations is not None
    (change,) = resolved.edit.document_changes
    checked, unchecked = sorted(change.edits, key=lambda edit: edit.range.start.line)
    assert not isinstance(checked, types.AnnotatedTextEdit) and checked.range.start.line == 0
    assert isinstance(unchecked, types.AnnotatedTextEdit) and unchecked.range.start.line == 1
    annotation = resolved.edit.change_annotations[unchecked.annotation_id]
    assert annotation.needs_confirmation is True and "syntax check" in (annotation.description or "")


def test_a_change_during_a_pending_completion_makes_it_empty(session: LspSession) -> None:
    uri = "file:///stale.py"
    session.open(uri, PY, version=1)
    pending = session.send(types.TEXT_DOCUMENT_INLINE_COMPLETION, inline_params(uri, 4, 16, automatic=True))
    edit = types.Range(start=types.Position(line=4, character=16), end=types.Position(line=4, character=16))
    session.change(uri, 2, "2, ", edit)
    assert list(session.answer(pending).items) == []
    # The request for the new text is served normally.
    assert len(inline(session, uri, 4, 19, automatic=True)) == 1


def test_a_newer_request_supersedes_the_older_one(session: LspSession) -> None:
    uri = "file:///superseded.py"
    session.open(uri, PY)
    older = session.send(types.TEXT_DOCUMENT_INLINE_COMPLETION, inline_params(uri, 4, 16, automatic=True))
    newer = session.send(types.TEXT_DOCUMENT_INLINE_COMPLETION, inline_params(uri, 4, 16, automatic=True))
    assert list(session.answer(older).items) == []
    assert len(session.answer(newer).items) == 1


def test_a_cancel_during_the_debounce_window_answers_request_cancelled(session: LspSession) -> None:
    """(A cancel that lands while the model decodes: test_lsp_lifecycle.py.)"""
    uri = "file:///cancel.py"
    session.open(uri, PY)

    async def send_and_cancel() -> Any:
        protocol = session.client.protocol
        future = protocol.send_request_async(
            types.TEXT_DOCUMENT_INLINE_COMPLETION,
            inline_params(uri, 4, 16, automatic=True),
            msg_id="cancel-me",
        )
        protocol.notify(types.CANCEL_REQUEST, types.CancelParams(id="cancel-me"))
        try:
            return await future
        except JsonRpcException as error:
            return error.code

    assert session.run(send_and_cancel()) == types.LSPErrorCodes.RequestCancelled.value


def test_a_crlf_document_gets_the_clis_candidates(
    session: LspSession, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The same CRLF file through `infill complete` and through the server: the same candidates. The bundled
    model writes what its context suggests (shown "\r" tokens, it writes other text: a server that did that
    gave none of the CLI's candidates), and inside a comment any one line it writes is valid code."""
    from infill.models.locate import BUNDLED_MODEL_DIR
    from infill_cli.main import main

    text = "import os\r\n\r\n\r\ndef main():\r\n    # read the config file and \r\n    return os.getcwd()\r\n"
    (tmp_path / "crlf.py").write_bytes(text.encode())
    monkeypatch.chdir(tmp_path)
    assert main(["complete", "crlf.py:5:32", "-n", "3", "--json", "--model", str(BUNDLED_MODEL_DIR)]) == 0
    cli = [candidate["text"] for candidate in json.loads(capsys.readouterr().out)["candidates"]]
    assert cli, "the bundled model writes some words into the comment"

    uri = "file:///crlf.py"
    session.open(uri, text)
    reloaded = len(session.statuses)
    # The CLI's settings: the model's own decoding defaults and the line region's budget.
    configure(session, model=str(BUNDLED_MODEL_DIR), steps=None, maxTokens=48)
    try:
        session.wait_for(lambda: any(s["state"] == "ready" for s in session.statuses[reloaded:]), "reload")
        items = inline(session, uri, 4, len("    # read the config file and "))
    finally:
        reloaded = len(session.statuses)
        configure(session, model=str(session.model_dir))  # type: ignore[attr-defined]
        session.wait_for(lambda: any(s["state"] == "ready" for s in session.statuses[reloaded:]), "reload")
    assert [item.insert_text for item in items] == cli


def test_bad_positions_and_documents_give_empty_results(session: LspSession) -> None:
    uri = "file:///bad.py"
    session.open(uri, PY)
    assert inline(session, uri, 500, 0) == []  # past the last line
    assert inline(session, "file:///never-opened.py", 0, 0) == []
    items = inline(session, uri, 4, 400)  # past the end of the line: the end of the line (LSP)
    assert all(item.range.start.character == len("result = add(1, ") for item in items)  # type: ignore[union-attr]
    binary = "file:///binary.py"
    session.open(binary, "x = 1\n\x00\x01\x02 data\x00\ny = ")
    assert inline(session, binary, 2, 4) == []
    assert (
        error_code(
            lambda: session.request("infill/rewrite", {"textDocument": {"uri": binary}, "target": "holes"})
        )
        == -32602
    )


def test_document_closed_mid_request_gives_an_empty_result(session: LspSession) -> None:
    uri = "file:///closing.py"
    session.open(uri, PY)
    pending = session.send(types.TEXT_DOCUMENT_INLINE_COMPLETION, inline_params(uri, 4, 16, automatic=True))
    session.notify(
        types.TEXT_DOCUMENT_DID_CLOSE, types.DidCloseTextDocumentParams(types.TextDocumentIdentifier(uri))
    )
    assert list(session.answer(pending).items) == []


def test_a_5_mb_file_is_served(session: LspSession) -> None:
    uri = "file:///big.py"
    body = "".join(f"def function_{i}(x):\n    return x + {i}\n\n" for i in range(150_000))
    text = body + "value = function_7(\n"
    assert len(text) > 5_000_000
    session.open(uri, text)
    last = text.count("\n") - 1
    started = time.monotonic()
    items = inline(session, uri, last, len("value = function_7("))
    assert time.monotonic() - started < 30
    assert items
    for item in items:
        assert item.range is not None and item.range.start.line == last == item.range.end.line
        assert item.insert_text.endswith(")")  # type: ignore[union-attr]
    blank = 3 * 70_000 + 2  # the blank line after function_70000: a statement fits there
    middle = inline(session, uri, blank, 0)
    assert middle
    assert all(item.range.start.line == blank == item.range.end.line for item in middle)  # type: ignore[union-attr]
    session.notify(
        types.TEXT_DOCUMENT_DID_CLOSE, types.DidCloseTextDocumentParams(types.TextDocumentIdentifier(uri))
    )


def test_invalid_settings_warn_once_and_disabled_languages_get_nothing(session: LspSession) -> None:
    uri = "file:///disabled.py"
    session.open(uri, PY)
    before = len(session.messages)
    configure(session, maxTokens="lots", disabledLanguages=["python"])
    session.wait_for(lambda: len(session.messages) > before, "settings warning")
    (warning,) = session.messages[before:]
    assert warning.type == types.MessageType.Warning and "maxTokens" in warning.message
    try:
        assert inline(session, uri, 4, 16) == []
        assert _code_actions(session, uri, (1, 4), (1, 10)) == ()
    finally:
        configure(session)
    assert inline(session, uri, 4, 16)
    assert len(session.messages) == before + 1


def test_a_model_that_fails_to_load_is_reported_once_and_the_server_keeps_serving(
    session: LspSession,
) -> None:
    uri = "file:///reload.py"
    session.open(uri, PY)
    statuses, messages = len(session.statuses), len(session.messages)
    configure(session, model="/nonexistent/model/dir")
    session.wait_for(lambda: any(s["state"] == "error" for s in session.statuses[statuses:]), "error status")
    errors = [s for s in session.statuses[statuses:] if s["state"] == "error"]
    assert len(errors) == 1 and errors[0]["message"]
    try:
        assert inline(session, uri, 4, 16) == []
        here = {"start": {"line": 1, "character": 0}, "end": {"line": 1, "character": 5}}
        with pytest.raises(JsonRpcException) as raised:
            session.request(
                "infill/rewrite", {"textDocument": {"uri": uri}, "target": "range", "range": here}
            )
        assert raised.value.code == -32803 and errors[0]["message"] in raised.value.message
        assert inline(session, uri, 4, 16) == []  # still serving
        shown = [m for m in session.messages[messages:] if m.type == types.MessageType.Error]
        assert len(shown) == 1 and "failed to load" in shown[0].message
    finally:
        # Back to the working model (given explicitly: a change of model means a reload).
        reloaded = len(session.statuses)
        configure(session, model=str(session.model_dir))  # type: ignore[attr-defined]
        session.wait_for(lambda: any(s["state"] == "ready" for s in session.statuses[reloaded:]), "reload")
    assert inline(session, uri, 4, 16)


def test_memory_stays_flat_over_a_thousand_requests(session: LspSession) -> None:
    """1000 cheap requests (a disabled language: the whole protocol path, no model) and 240 real
    completions (waves over 8 documents, so none is superseded and the worker batches them)."""
    uri = "file:///memory.txt"
    session.open(uri, "some plain text\n" * 50, language_id="plaintext")
    documents = [f"file:///memory_{i}.py" for i in range(8)]
    for document in documents:
        session.open(document, PY)
    configure(session, disabledLanguages=["plaintext"])

    def cheap(count: int) -> None:
        futures = [
            session.send(types.TEXT_DOCUMENT_INLINE_COMPLETION, inline_params(uri, i % 50, 3))
            for i in range(count)
        ]
        assert all(not session.answer(future).items for future in futures)

    def real(waves: int) -> None:
        for _ in range(waves):
            futures = [
                session.send(types.TEXT_DOCUMENT_INLINE_COMPLETION, inline_params(doc, 4, 16))
                for doc in documents
            ]
            assert all(session.answer(future).items for future in futures)

    try:
        cheap(300)  # warm-up: caches, allocator pools, torch kernels
        real(10)
        before = rss_kib(session.pid)
        cheap(1000)
        real(30)
        growth_kib = rss_kib(session.pid) - before
    finally:
        configure(session)
    assert growth_kib < 8 * 1024, f"RSS grew by {growth_kib} KiB over 1000 + 240 requests"


# One snippet per supported language; "‸" marks the cursor, where an identifier completes valid code.
LANGUAGE_SNIPPETS = {
    "python": "def f(x):\n    return ‸\n",
    "javascript": "function f(x) {\n  return ‸;\n}\n",
    "typescript": "function f(x: number): number {\n  return ‸;\n}\n",
    "typescriptreact": "function f(x: number): number {\n  return ‸;\n}\n",
    "go": "package main\n\nfunc f(x int) int {\n\treturn ‸\n}\n",
    "rust": "fn f(x: i32) -> i32 {\n    let y = ‸;\n    y\n}\n",
    "java": "class A {\n    int f(int x) {\n        return ‸;\n    }\n}\n",
    "c": "int f(int x) {\n    return ‸;\n}\n",
    "cpp": "int f(int x) {\n    return ‸;\n}\n",
}


@pytest.mark.parametrize("language_id", sorted(LANGUAGE_SNIPPETS))
def test_every_supported_language_gets_a_valid_model_completion_at_the_cursor(
    session: LspSession, language_id: str
) -> None:
    from infill.regions import language_for_lsp_id

    marked = LANGUAGE_SNIPPETS[language_id]
    text = marked.replace("‸", "")
    before = marked[: marked.index("‸")]
    line, character = before.count("\n"), len(before.rsplit("\n", 1)[-1])
    uri = f"file:///every_language/{language_id}"
    session.open(uri, text, language_id=language_id)
    items = inline(session, uri, line, character)
    assert items, f"no completion for {language_id}"
    grammar = language_for_lsp_id(language_id)
    for item in items:
        assert item.range is not None and item.range.start == types.Position(line=line, character=character)
        assert item.range.end.line == line
        assert isinstance(item.insert_text, str) and "x" in item.insert_text  # the model's favourite token
        completed = apply_item(text, item)
        assert completed != text
        assert document_parses(completed, grammar)
