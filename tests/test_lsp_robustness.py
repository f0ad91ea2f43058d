"""Malformed input over raw JSON-RPC framing: every bad message gets a proper error (or, for notifications,
nothing) and the server keeps serving. Also `infill serve --tcp` on loopback.

No model is loaded here (the client never sends `initialized` and only asks about unknown documents), so
these servers start without importing torch.
"""

from __future__ import annotations

import json
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.test_lsp_support import RawSession, serve_argv, server_env

UNKNOWN_DOC = {"uri": "file:///never-opened.py"}


@pytest.fixture(scope="module")
def raw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RawSession]:
    log_file = tmp_path_factory.mktemp("lsp_raw") / "server.log"
    session = RawSession(serve_argv(None, log_file))
    answer = session.call("initialize", {"processId": None, "capabilities": {}})
    assert "capabilities" in answer["result"]
    yield session
    session.close()


def assert_alive(raw: RawSession) -> None:
    response = raw.call(
        "textDocument/inlineCompletion",
        {"textDocument": UNKNOWN_DOC, "position": {"line": 0, "character": 0}, "context": {"triggerKind": 1}},
    )
    assert response["result"] == {"items": []}


def error_of(response: dict[str, Any]) -> int:
    assert "result" not in response, response
    return response["error"]["code"]


@pytest.mark.parametrize(
    "body", [b'{"jsonrpc": "2.0", "id": 1, "method": ', b"not json at all", b'{"text": "\xff\xfe"}']
)
def test_unparsable_bodies_get_a_parse_error_with_a_null_id(raw: RawSession, body: bytes) -> None:
    raw.send_bytes(body)
    assert error_of(raw.response(None)) == -32700
    assert_alive(raw)


@pytest.mark.parametrize(
    ("message", "expected_id"),
    [
        ([1, 2, 3], None),
        (42, None),
        ({"id": 7, "method": "initialize"}, 7),
        ({"jsonrpc": "1.0", "id": 8, "method": "shutdown"}, 8),
    ],
)
def test_json_that_is_not_json_rpc_gets_invalid_request(
    raw: RawSession, message: Any, expected_id: Any
) -> None:
    raw.send_bytes(json.dumps(message).encode())
    assert error_of(raw.response(expected_id)) == -32600
    assert_alive(raw)


def test_unknown_methods(raw: RawSession) -> None:
    assert error_of(raw.call("infill/noSuchMethod", {"x": 1})) == -32601
    raw.notify("infill/noSuchNotification", {"x": 1})  # ignored, no answer
    raw.notify(
        "textDocument/didChange",
        {"textDocument": {"uri": "file:///x.py", "version": 2}, "contentChanges": []},
    )
    assert_alive(raw)
    assert not [m for m in raw.seen if "id" in m and "method" not in m]  # nothing answered the notifications


@pytest.mark.parametrize(
    "params",
    [
        {
            "textDocument": UNKNOWN_DOC,
            "position": {"line": -1, "character": 0},
            "context": {"triggerKind": 1},
        },
        {"textDocument": UNKNOWN_DOC, "position": {"line": "one"}, "context": {"triggerKind": 1}},
        "hello",
        None,
    ],
)
def test_invalid_params_are_answered_with_the_request_id(raw: RawSession, params: Any) -> None:
    assert error_of(raw.call("textDocument/inlineCompletion", params)) == -32602
    assert_alive(raw)


def test_rewrite_with_malformed_params_is_invalid_params(raw: RawSession) -> None:
    for params in (
        [],
        {"textDocument": 3},
        {"textDocument": UNKNOWN_DOC, "target": "holes", "version": True},
    ):
        assert error_of(raw.call("infill/rewrite", params)) == -32602
    assert error_of(raw.call("infill/rewrite", {"textDocument": UNKNOWN_DOC, "target": "holes"})) == -32602
    assert_alive(raw)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _read_message(stream: Any) -> dict[str, Any]:
    length = 0
    while (line := stream.readline()) not in (b"\r\n", b""):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":")[1])
    return json.loads(stream.read(length))


def test_tcp_on_loopback_speaks_lsp(tmp_path: Path) -> None:
    port = _free_port()
    argv = serve_argv(None, tmp_path / "server.log", "--tcp", "--port", str(port))
    server = subprocess.Popen(argv, env=server_env(), stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                connection = socket.create_connection(("127.0.0.1", port), timeout=60)
                break
            except OSError:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise
                time.sleep(0.1)
        with connection, connection.makefile("rb") as stream:
            body = json.dumps(
                {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {"capabilities": {}}}
            )
            connection.sendall(b"Content-Length: %d\r\n\r\n%s" % (len(body), body.encode()))
            answer = _read_message(stream)
        assert answer["id"] == 1 and "inlineCompletionProvider" in answer["result"]["capabilities"]
        assert server.stdout is not None and server.poll() is None
    finally:
        server.kill()
        server.wait()
    assert server.stdout.read() == b""  # stdout stays clean in TCP mode


def test_requests_before_initialize_and_exit_without_shutdown(tmp_path: Path) -> None:
    session = RawSession(serve_argv(None, tmp_path / "server.log"))
    try:
        early = session.call("infill/rewrite", {"textDocument": UNKNOWN_DOC, "target": "holes"})
        assert error_of(early) == -32002  # ServerNotInitialized
        session.call("initialize", {"processId": None, "capabilities": {}})
        session.notify("exit", None)
        assert session.process.wait(timeout=30) == 1
    finally:
        session.close()
