"""The real `infill serve` while it is busy: a cancel that lands during decoding, shutdown stopping a running
rewrite and refusing later requests, and a client that goes away mid-answer.

The model here is a random ModernBERT a hundred times the tiny one (``slow_model_dir``): with threshold 1.0
it commits one token per denoising step, so a block takes seconds to decode and a cancel or a shutdown sent
once the worker reports "busy" reliably lands while it decodes. The stop flag's effect is read in the
server's log, which names each request the flag stopped.
"""

from __future__ import annotations

import json
import re
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from lsprotocol import types
from pygls.exceptions import JsonRpcException

from tests.test_lsp_support import LspSession, RawSession, inline_params, serve_argv, server_env

# One token per step for up to 128 tokens: seconds of decoding on the slow model.
SLOW = {"maxTokens": 128, "steps": 1024, "threshold": 1.0, "debounceMs": 0}
BLOCK = "def scale(values):\n    \n\n\nprint(scale([1]))\n"  # line 1 is a block after an opener


@pytest.fixture(scope="module")
def busy(slow_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LspSession]:
    log_file = tmp_path_factory.mktemp("lsp_busy") / "server.log"
    session = LspSession(serve_argv(slow_model_dir, log_file))
    session.log_file = log_file  # type: ignore[attr-defined]
    session.initialize(SLOW)
    yield session
    session.close()


def wait_until_busy(session: LspSession, seen: int) -> None:
    session.wait_for(lambda: any(s["state"] == "busy" for s in session.statuses[seen:]), "busy status")


def log_text(session: LspSession) -> str:
    return session.log_file.read_text()  # type: ignore[attr-defined]


def test_a_cancel_stops_a_completion_that_is_already_decoding(busy: LspSession) -> None:
    uri = "file:///cancel.py"
    busy.open(uri, BLOCK)
    seen = len(busy.statuses)

    async def start() -> Any:
        return busy.client.protocol.send_request_async(
            types.TEXT_DOCUMENT_INLINE_COMPLETION, inline_params(uri, 1, 4), msg_id="decoding"
        )

    pending = busy.run(start())
    wait_until_busy(busy, seen)  # the worker took it: decoding runs now
    cancelled_at = time.monotonic()

    async def cancel() -> None:
        busy.client.protocol.notify(types.CANCEL_REQUEST, types.CancelParams(id="decoding"))

    busy.run(cancel())
    with pytest.raises(JsonRpcException) as raised:
        busy.answer(pending)
    assert raised.value.code == types.LSPErrorCodes.RequestCancelled.value
    busy.wait_for(
        lambda: "completion id=decoding cancelled after" in log_text(busy), "the stop flag's log line"
    )
    assert time.monotonic() - cancelled_at < 60
    # The worker let go of it: it is idle again, not decoding the rest of the block.
    busy.wait_for(lambda: busy.statuses[-1]["state"] == "ready", "the worker back to ready")


def test_shutdown_stops_a_running_rewrite_and_refuses_what_comes_after(busy: LspSession) -> None:
    uri = "file:///rewrite.py"
    body = "".join(f"    value_{i} = value_{i - 1} + {i}\n" for i in range(1, 40))
    busy.open(uri, f"def chain(value_0):\n{body}    return value_39\n")
    seen = len(busy.statuses)
    selection = {"start": {"line": 1, "character": 0}, "end": {"line": 39, "character": 0}}
    rewrite = busy.send(
        "infill/rewrite", {"textDocument": {"uri": uri}, "target": "range", "range": selection}
    )
    wait_until_busy(busy, seen)
    started = time.monotonic()
    assert busy.request(types.SHUTDOWN, None, timeout=30) is None
    with pytest.raises(JsonRpcException) as raised:
        busy.answer(rewrite, timeout=60)
    assert raised.value.code == types.LSPErrorCodes.RequestCancelled.value
    assert time.monotonic() - started < 60
    stopped = re.compile(r"rewrite id=\S+ cancelled after \d+ ms \(stop flag\)")
    busy.wait_for(lambda: stopped.search(log_text(busy)) is not None, "the rewrite's stop flag log line")
    # LSP: after shutdown every request but exit is an InvalidRequest (pygls alone never answers them).
    for method, params in (
        (types.TEXT_DOCUMENT_INLINE_COMPLETION, inline_params(uri, 1, 4)),
        ("infill/rewrite", {"textDocument": {"uri": uri}, "target": "holes"}),
    ):
        with pytest.raises(JsonRpcException) as refused:
            busy.request(method, params, timeout=30)
        assert refused.value.code == -32600
    busy.notify(types.EXIT, None)
    process = busy.client._server
    assert process is not None
    deadline = time.monotonic() + 30
    while process.returncode is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert process.returncode == 0


def test_a_client_that_goes_away_leaves_one_log_line_and_no_traceback(tmp_path: Path) -> None:
    """What `:qa!` does: the editor stops reading while the server still has answers to write."""
    log_file = tmp_path / "server.log"
    server = subprocess.Popen(
        serve_argv(None, log_file), stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=server_env()
    )
    assert server.stdin is not None and server.stdout is not None

    def send(message: dict[str, Any]) -> None:
        body = json.dumps(message).encode()
        server.stdin.write(b"Content-Length: %d\r\n\r\n" % len(body) + body)  # type: ignore[union-attr]

    try:
        send({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {"capabilities": {}}})
        server.stdin.flush()
        assert server.stdout.readline().startswith(b"Content-Length")  # it answers: it is up
        position = {"line": 0, "character": 0}
        for number in range(1, 51):  # answered after the pipe is gone
            params = {
                "textDocument": {"uri": "file:///gone.py"},
                "position": position,
                "context": {"triggerKind": 1},
            }
            send(
                {"jsonrpc": "2.0", "id": number, "method": "textDocument/inlineCompletion", "params": params}
            )
        server.stdout.close()
        server.stdin.close()
        assert server.wait(timeout=60) == 0
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()
    log = log_file.read_text()
    assert "Traceback" not in log and "BrokenPipeError" not in log, log
    assert log.count("the client closed the connection") == 1, log


def test_serve_accepts_the_stdio_flag_editors_append(tmp_path: Path) -> None:
    session = RawSession(serve_argv(None, tmp_path / "server.log", "--stdio"))
    try:
        answer = session.call("initialize", {"processId": None, "capabilities": {}})
        assert "inlineCompletionProvider" in answer["result"]["capabilities"]
    finally:
        session.close()


def test_log_lines_reach_the_client_as_log_messages_at_their_level(x_model_dir: Path) -> None:
    """Editors show a server's stderr as errors; once the client is there, INFO goes to it as Info. The
    per-completion lines are debug: an editor asks on every pause in typing, and it got 4-5 Info messages
    for each (issue 16)."""
    argv = [*serve_argv(x_model_dir, Path("unused"))]
    argv = argv[: argv.index("--log-file")] + argv[argv.index("--log-file") + 2 :]  # no log file
    session = LspSession(argv)
    try:
        session.initialize({"maxTokens": 4, "steps": 2, "debounceMs": 0})
        session.open("file:///logs.py", "x = \n")
        # The ready status is sent after the load's log lines (model loaded, torch threads).
        session.wait_for(lambda: any(s["state"] == "ready" for s in session.statuses), "the model's load")
        before = len(session.log_messages)
        for _ in range(3):
            params = inline_params("file:///logs.py", 0, 4)
            assert session.request(types.TEXT_DOCUMENT_INLINE_COMPLETION, params) is not None
    finally:
        session.close()
    # A log line is queued on the protocol thread before its completion's answer, so all have arrived.
    per_completion = session.log_messages[before:]
    assert per_completion == [], [m.message for m in per_completion]
    loaded = [m for m in session.log_messages if m.message.startswith("infill.worker: model loaded")]
    assert loaded and {m.type for m in loaded} == {types.MessageType.Info}
    # stderr (editors show it as errors) gets no INFO line: warnings only, before the client is there.
    stderr = session.stderr.decode()
    assert " INFO " not in stderr, stderr
