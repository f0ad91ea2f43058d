"""The server's pure helpers (UTF-16 positions, inline items, settings, rewrite params) and import hygiene."""

from __future__ import annotations

import subprocess
import sys

import pytest
from lsprotocol import types
from pygls.exceptions import JsonRpcInvalidParams
from pygls.workspace.position_codec import PositionCodec

from lsp.completion import SelectedCompletion, completion_items, plan_completion, selected_completion
from lsp.rewrite import edits_to_wire, parse_rewrite_params, workspace_edit
from lsp.settings import ServerSettings, model_spec, parse_settings
from lsp.text_edits import (
    CHUNK,
    LineIndex,
    PositionOutOfRange,
    apply_content_change,
    context_slice,
    inline_insertion,
)

UTF16 = PositionCodec(types.PositionEncodingKind.Utf16)
UTF8 = PositionCodec(types.PositionEncodingKind.Utf8)


def pos(line: int, character: int) -> types.Position:
    return types.Position(line=line, character=character)


def test_positions_count_utf16_code_units_for_emoji_and_cjk() -> None:
    text = 'x = "😋"  # 漢字\r\nprint(x)\rend\n'
    index = LineIndex.of(text)
    # "😋" is one Python character but two UTF-16 code units; CJK characters are one unit each.
    closing_quote = text.index('"', 5)
    assert index.offset(pos(0, 7), UTF16) == closing_quote
    assert index.position(closing_quote, UTF16) == pos(0, 7)
    assert index.position(closing_quote, UTF8) == pos(0, 9)
    assert index.offset(pos(0, 13), UTF16) == text.index("字")
    # \r\n and a lone \r both end lines (LSP rules); a column past the end means the end of the line.
    assert index.offset(pos(1, 0), UTF16) == text.index("print")
    assert index.offset(pos(2, 0), UTF16) == text.index("end")
    assert index.offset(pos(0, 999), UTF16) == text.index("\r\n")
    for offset in range(len(text) + 1):
        if text[offset - 1 : offset + 1] != "\r\n":  # the middle of a line break has no position
            assert index.offset(index.position(offset, UTF16), UTF16) == offset


def test_chunked_line_index_agrees_with_every_line_start() -> None:
    # Several chunks, CRLF and LF mixed (no lone CR: the chunked path), emoji, empty lines, a chunk-long line.
    parts = [f"line {i} 😋\r\n" if i % 3 else f"x{i}\n\n" for i in range(4000)] + ["y" * CHUNK + "\n", "tail"]
    text = "".join(parts)
    index = LineIndex.of(text)
    assert index.starts is None and len(index.chunk_breaks) > 4
    starts = [0] + [i + 1 for i, char in enumerate(text) if char == "\n"]
    assert index.line_count == len(starts)
    for line in [*range(0, len(starts), 97), len(starts) - 2, len(starts) - 1]:
        assert index.line_start(line) == starts[line]
        content = text[starts[line] : starts[line + 1] if line + 1 < len(starts) else len(text)]
        assert index.line_end(line) == starts[line] + len(content.rstrip("\r\n"))
    for offset in range(0, len(text) + 1, 101):
        assert index.line_of(offset) == text.count("\n", 0, offset)
        assert index.offset(index.position(offset, UTF16), UTF16) == offset or text[offset - 1] == "\r"


def test_form_feed_is_not_a_line_break() -> None:
    # str.splitlines would split here and disagree with every client about line numbers.
    index = LineIndex.of("a\x0cb\nc")
    assert index.offset(pos(1, 0), UTF16) == 4


def test_content_changes_follow_lsp_lines() -> None:
    text = "a\x0cb\r\nc 😋 d\n"
    insert = types.TextDocumentContentChangePartial(
        range=types.Range(start=pos(1, 5), end=pos(1, 6)), text="X"
    )
    assert apply_content_change(text, insert, UTF16) == "a\x0cb\r\nc 😋 X\n"  # emoji: 2 columns
    past_end = types.TextDocumentContentChangePartial(
        range=types.Range(start=pos(9, 0), end=pos(9, 0)), text="!"
    )
    assert apply_content_change(text, past_end, UTF16) == text + "!"
    assert (
        apply_content_change(text, types.TextDocumentContentChangeWholeDocument(text="new"), UTF16) == "new"
    )


def test_positions_outside_the_document_are_rejected() -> None:
    index = LineIndex.of("one\ntwo")
    with pytest.raises(PositionOutOfRange):
        index.offset(pos(2, 0), UTF16)


def test_inline_insertion_never_deletes_typed_text_and_stays_on_one_line() -> None:
    text = "value = pri\nnext_line()\n"
    index = LineIndex.of(text)
    cursor = text.index("\n")
    # Token healing regenerated "pri": it is dropped from the insertion, which then starts at the cursor.
    healed = inline_insertion(index, cursor, cursor - 3, cursor, "print(x)")
    assert healed is not None and (healed.start, healed.end, healed.insert_text) == (cursor, cursor, "nt(x)")
    assert inline_insertion(index, cursor, cursor - 3, cursor, "len(x)") is None
    # A block regenerated from the line start: the typed indentation stays, the item starts at the cursor.
    blank = "def f():\n    \n"
    indented = inline_insertion(LineIndex.of(blank), 13, 9, 13, "  pass\n    return 1")
    assert indented is not None and (indented.start, indented.insert_text) == (13, "pass\n    return 1")
    # Replacing past the end of the cursor's line cannot be an inline item.
    assert inline_insertion(index, cursor, cursor, cursor + 5, "x") is None
    # A multi-line block inserted at the cursor is fine: its range is still on one line.
    block = inline_insertion(index, cursor, cursor, cursor, "nt(1)\n    more()")
    assert block is not None and block.insert_text.count("\n") == 1


def test_items_extend_the_selected_completion() -> None:
    text = "import os\nos.pa\n"
    index = LineIndex.of(text)
    cursor = text.index("os.pa") + 5
    info = types.SelectedCompletionInfo(range=index.range(cursor - 2, cursor, UTF16), text="path")
    selection = selected_completion(index, cursor, info, UTF16)
    assert selection == SelectedCompletion(cursor - 2, cursor, "path")
    plan = plan_completion(text, cursor, selection, language="python", max_tokens=8, num_candidates=1)
    assert plan.job.text == "import os\nos.path\n" and plan.job.offset == cursor + 2

    class FakeEdit:  # the shape of infill.infiller.Edit (offsets into the planned text)
        start = end = plan.job.offset
        new_text = ".join('a', 'b')"
        tokens = ()

    (item,) = completion_items(plan, [FakeEdit()], index, UTF16)
    assert item.insert_text == "path.join('a', 'b')"
    assert item.range == info.range  # covers the selected range exactly, on one line


def test_crlf_documents_are_planned_in_lf_and_items_come_back_in_crlf() -> None:
    text = "def scale(values):\r\n    \r\n\r\nprint(scale([1]))\r\n"
    index = LineIndex.of(text)
    cursor = text.index("\r\n    ") + len("\r\n    ")
    plan = plan_completion(text, cursor, None, language="python", max_tokens=8, num_candidates=1)
    assert plan.job.text == text.replace("\r\n", "\n")  # what `infill complete` shows the model too
    assert plan.job.offset == cursor - 1

    class FakeEdit:  # the shape of infill.infiller.Edit (offsets into the planned LF text)
        start = end = plan.job.offset
        new_text = "total = 0\n    for v in values:\n        total += v\n    return total"
        tokens = ()

    (item,) = completion_items(plan, [FakeEdit()], index, UTF16)
    assert item.insert_text == FakeEdit.new_text.replace("\n", "\r\n")
    assert item.range == index.range(cursor, cursor, UTF16)


def test_lf_offsets_map_both_ways() -> None:
    from infill.line_endings import lf_view

    text = "a\r\nbc\r\n\r\nd\ne\r\n"
    view = lf_view(text)
    for offset in range(len(text) + 1):
        if text[offset - 1 : offset] != "\r":  # not between a "\r" and its "\n"
            assert view.original_offset(view.lf_offset(offset)) == offset
    assert view.lf_offset(text.index("bc")) == view.text.index("bc")


def test_context_slice_cuts_big_documents_at_line_starts() -> None:
    text = "".join(f"line_{i} = {i}\n" for i in range(50_000))
    cursor = len(text) // 2
    window = context_slice(text, cursor)
    assert window.start < cursor < window.end and window.end - window.start <= 64_000
    assert text[window.start - 1] == "\n" and text[window.end - 1] == "\n"
    assert context_slice("short", 2) == type(window)(0, 5)


def test_settings_fall_back_per_value_and_report_each_problem() -> None:
    settings, problems = parse_settings(
        {
            "infill": {
                "maxTokens": -3,
                "steps": 8,
                "threshold": 2,
                "device": "cpu",
                "debounceMs": True,
                "threads": 0,
                "x": 1,
            }
        }
    )
    assert settings == ServerSettings(steps=8, device="cpu")
    assert [problem.split(":")[0] for problem in problems] == [
        "maxTokens",
        "threshold",
        "debounceMs",
        "threads",
    ]
    assert parse_settings({"threads": 3})[0].threads == 3
    assert parse_settings({"threads": None}) == (ServerSettings(), [])
    assert parse_settings(None) == (ServerSettings(), [])
    assert parse_settings([1])[1] == ["settings must be an object, got list"]
    wire = ServerSettings().to_wire()
    assert parse_settings(wire) == (ServerSettings(), [])
    assert sorted(wire) == sorted(
        [
            "model",
            "device",
            "maxTokens",
            "steps",
            "threshold",
            "debounceMs",
            "disabledLanguages",
            "trustRemoteCode",
            "threads",
            "nextEdit",
        ]
    )


def test_every_setting_is_described_for_serve_help() -> None:
    from lsp.settings import SETTING_HELP, WIRE_NAMES, settings_help

    assert list(SETTING_HELP) == list(WIRE_NAMES)
    assert all(name in settings_help() for name in WIRE_NAMES)


def test_model_spec_prefers_client_then_cli_flags() -> None:
    assert model_spec(ServerSettings(), "/cli", "cpu").model == "/cli"
    assert model_spec(ServerSettings(model="/client"), "/cli", None).model == "/client"
    assert model_spec(ServerSettings(device="auto"), None, "cpu").device == "cpu"
    assert model_spec(ServerSettings(device="cuda"), None, "cpu").device == "cuda"


def test_rewrite_params_are_validated() -> None:
    here = {"line": 1, "character": 2}
    params = parse_rewrite_params(
        {
            "textDocument": {"uri": "file:///a.py"},
            "target": "function",
            "range": {"start": here, "end": here},
            "version": 3,
        }
    )
    assert (params.target, params.version, params.range.start) == ("function", 3, pos(1, 2))
    assert parse_rewrite_params(params.to_wire()) == params
    assert parse_rewrite_params({"textDocument": {"uri": "u"}, "target": "holes"}).range is None
    for bad in (
        None,
        {"target": "holes"},
        {"textDocument": {"uri": "u"}, "target": "everything"},
        {"textDocument": {"uri": "u"}, "target": "range"},
        {"textDocument": {"uri": "u"}, "target": "holes", "version": "7"},
        {"textDocument": {"uri": "u"}, "range": {"start": {"line": -1, "character": 0}, "end": {}}},
    ):
        with pytest.raises(JsonRpcInvalidParams):
            parse_rewrite_params(bad)


def test_rewrite_result_says_which_edits_passed_the_syntax_check() -> None:
    from infill.infiller import Edit

    text = "a = <|fill|>\nb = <|fill|>\n"
    first, second = text.index("<|fill|>"), text.rindex("<|fill|>")
    edits = [
        Edit(first, first + len("<|fill|>"), "1", 0.9),
        Edit(second, second + len("<|fill|>"), "(", 0.1, validated=False),
    ]
    wire = edits_to_wire(edits, LineIndex.of(text), UTF16)
    assert [edit["validated"] for edit in wire["edits"]] == [True, False]
    assert [edit["range"]["start"] for edit in wire["edits"]] == [
        {"line": 0, "character": 4},
        {"line": 1, "character": 4},
    ]


def test_code_action_edits_carry_unchecked_fills_only_as_edits_needing_confirmation() -> None:
    from infill.infiller import Edit

    text = "a = <|fill|>\nb = <|fill|>\n"
    first, second = text.index("<|fill|>"), text.rindex("<|fill|>")
    checked = Edit(first, first + len("<|fill|>"), "1", 0.9)
    unchecked = Edit(second, second + len("<|fill|>"), "(", 0.1, validated=False)
    index = LineIndex.of(text)
    # Neovim 0.11 (no documentChanges, no annotations): the unchecked fill is left out.
    plain = workspace_edit("u", 3, [checked, unchecked], index, UTF16, versioned=False, annotations=False)
    assert plain.left_out == (unchecked,) and plain.edit is not None and plain.edit.changes is not None
    assert [edit.new_text for edit in plain.edit.changes["u"]] == ["1"]
    only_unchecked = workspace_edit("u", 3, [unchecked], index, UTF16, versioned=True, annotations=False)
    assert only_unchecked.edit is None and only_unchecked.left_out == (unchecked,)
    # Annotations need documentChanges: a client with both gets it, marked as needing confirmation.
    annotated = workspace_edit("u", 3, [checked, unchecked], index, UTF16, versioned=True, annotations=True)
    assert annotated.left_out == () and annotated.edit is not None
    assert annotated.edit.document_changes is not None and annotated.edit.change_annotations is not None
    edits = annotated.edit.document_changes[0].edits  # type: ignore[union-attr]
    assert [type(edit).__name__ for edit in edits] == ["TextEdit", "AnnotatedTextEdit"]
    assert annotated.edit.change_annotations[edits[1].annotation_id].needs_confirmation  # type: ignore[union-attr]
    # Nothing unchecked: no annotations at all.
    only_checked = workspace_edit("u", 3, [checked], index, UTF16, versioned=True, annotations=True)
    assert only_checked.edit is not None and only_checked.edit.change_annotations is None


def test_lsp_modules_do_not_import_torch_or_transformers() -> None:
    code = (
        "import sys, lsp.server, infill.worker, lsp.completion, lsp.actions, infill_cli.serve\n"
        "heavy = sorted(m for m in ('torch', 'transformers') if m in sys.modules)\n"
        "print(','.join(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    assert out.stdout.strip() == ""


@pytest.mark.parametrize("host", ["0.0.0.0", "192.168.1.10", "example.com"])
def test_serve_refuses_non_loopback_hosts(host: str) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "infill_cli.main", "serve", "--tcp", "--host", host, "--port", "7777"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 2
    assert out.stdout == ""
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and "loopback" in lines[0]


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--tcp"], "--port"),
        (["--port", "7777"], "--tcp"),
        (["--log-file", "/nonexistent-dir/server.log"], "log file"),
    ],
)
def test_serve_rejects_unusable_options_in_one_line(args: list[str], expected: str) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "infill_cli.main", "serve", *args],
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )
    lines = out.stderr.strip().splitlines()
    assert out.returncode == 2 and out.stdout == ""
    assert len(lines) == 1 and expected in lines[0]


@pytest.mark.parametrize("loop_state", ["no loop yet", "closed while logging"])
def test_client_log_fallback_gets_only_what_its_level_lets_through(
    loop_state: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without a client, INFO lines must not reach stderr (editors show it as errors): also when the loop
    closes between the handler's check and its call."""
    import asyncio
    import io
    import logging

    from lsp.client_log import ClientLogHandler
    from lsp.server import InfillLanguageServer

    server = InfillLanguageServer()
    if loop_state == "closed while logging":
        loop = asyncio.new_event_loop()
        loop.close()
        monkeypatch.setattr(loop, "is_closed", lambda: False)  # still open when the handler looked
        server.loop = loop
    stderr = io.StringIO()
    fallback = logging.StreamHandler(stderr)
    fallback.setLevel(logging.WARNING)
    handler = ClientLogHandler(server, fallback)
    for level, message in ((logging.INFO, "completion id=1"), (logging.WARNING, "model slow")):
        handler.emit(logging.makeLogRecord({"name": "infill.worker", "levelno": level, "msg": message}))
    assert "model slow" in stderr.getvalue() and "completion id=1" not in stderr.getvalue()
