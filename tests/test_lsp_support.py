"""Drivers for the REAL `infill serve` process, shared by the test_lsp_* files.

``LspSession``: pygls' language client on a background event loop (typed requests, server->client
requests answered as an editor would). ``RawSession``: hand-framed JSON-RPC over the same stdio, for
malformed input and for watching every message the server writes.
"""

from __future__ import annotations

import asyncio
import json
import os
import queue
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any, TypeVar

from lsprotocol import types
from pygls.lsp.client import BaseLanguageClient

from lsp.protocol import plain_json_converter

T = TypeVar("T")
REPO_ROOT = Path(__file__).resolve().parents[1]
# Generous: importing torch on a loaded 2-core machine alone can take half a minute.
TIMEOUT_S = 120.0


def serve_argv(model_dir: Path | str | None, log_file: Path, *extra: str) -> list[str]:
    argv = [sys.executable, "-m", "infill_cli.main", "serve", "--device", "cpu", "--log-file", str(log_file)]
    if model_dir is not None:
        argv += ["--model", str(model_dir)]
    return argv + list(extra)


def server_env(**overrides: str) -> dict[str, str]:
    env = dict(os.environ)
    env.pop("INFILL_MODEL", None)
    # One torch thread: on a shared 2-core machine OpenMP spinning makes a tiny forward pass 50x slower.
    env["OMP_NUM_THREADS"] = "1"
    env.update(overrides)
    return env


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def client_capabilities() -> types.ClientCapabilities:
    return types.ClientCapabilities(
        window=types.WindowClientCapabilities(work_done_progress=True),
        workspace=types.WorkspaceClientCapabilities(
            configuration=True, workspace_edit=types.WorkspaceEditClientCapabilities(document_changes=True)
        ),
        text_document=types.TextDocumentClientCapabilities(
            inline_completion=types.InlineCompletionClientCapabilities(),
            code_action=types.CodeActionClientCapabilities(
                resolve_support=types.ClientCodeActionResolveOptions(properties=["edit"])
            ),
        ),
    )


class LspSession:
    """pygls' client driving a server process; every call blocks until the answer (or TIMEOUT_S)."""

    def __init__(self, argv: list[str], env: dict[str, str] | None = None) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._thread.start()
        # Plain dicts for custom messages (infill/status, infill/rewrite results), as editors see them.
        self.client = BaseLanguageClient("infill-tests", "0", converter_factory=plain_json_converter)
        self.statuses: list[dict[str, Any]] = []
        self.messages: list[types.ShowMessageParams] = []
        self.log_messages: list[types.LogMessageParams] = []
        self.stderr = bytearray()  # what the server wrote to stderr so far
        self.progress: list[Any] = []
        self.configuration: Any = None  # answer to workspace/configuration
        self._register_handlers()
        self.run(self.client.start_io(*argv, env=env or server_env(), cwd=str(REPO_ROOT)))
        self.loop.call_soon_threadsafe(self._drain_stderr)

    def _register_handlers(self) -> None:
        @self.client.feature("infill/status")
        def on_status(params: dict[str, Any]) -> None:  # (an `Any` annotation makes pygls pass the client)
            self.statuses.append(params)

        @self.client.feature(types.WINDOW_SHOW_MESSAGE)
        def on_message(params: types.ShowMessageParams) -> None:
            self.messages.append(params)

        @self.client.feature(types.WINDOW_LOG_MESSAGE)
        def on_log_message(params: types.LogMessageParams) -> None:
            self.log_messages.append(params)

        @self.client.feature(types.PROGRESS)
        def on_progress(params: types.ProgressParams) -> None:
            self.progress.append(params.value)

        @self.client.feature(types.WINDOW_WORK_DONE_PROGRESS_CREATE)
        def on_create(params: types.WorkDoneProgressCreateParams) -> None:
            return None

        @self.client.feature(types.WORKSPACE_CONFIGURATION)
        def on_configuration(params: types.ConfigurationParams) -> list[Any]:
            return [self.configuration for _ in params.items]

    def _drain_stderr(self) -> None:
        # An unread stderr pipe fills up and blocks the server.
        process = self.client._server
        if process is not None and process.stderr is not None:
            stderr = process.stderr

            async def drain() -> None:
                while chunk := await stderr.read(65536):
                    self.stderr += chunk

            self.loop.create_task(drain())

    @property
    def pid(self) -> int:
        assert self.client._server is not None
        return self.client._server.pid

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = TIMEOUT_S) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def request(self, method: str, params: Any, timeout: float = TIMEOUT_S) -> Any:
        return self.run(self._request(method, params), timeout)

    async def _request(self, method: str, params: Any) -> Any:
        return await self.client.protocol.send_request_async(method, params)

    def send(self, method: str, params: Any) -> asyncio.Future[Any]:
        """Start a request without waiting; ``answer(future)`` collects it."""

        async def start() -> asyncio.Future[Any]:
            return self.client.protocol.send_request_async(method, params)

        return self.run(start())

    def answer(self, future: asyncio.Future[Any], timeout: float = TIMEOUT_S) -> Any:
        async def wait() -> Any:
            return await future

        return self.run(wait(), timeout)

    def notify(self, method: str, params: Any) -> None:
        async def send() -> None:
            self.client.protocol.notify(method, params)

        self.run(send())

    def initialize(
        self,
        options: dict[str, Any] | None = None,
        wait_ready: bool = True,
        capabilities: types.ClientCapabilities | None = None,
    ) -> types.InitializeResult:
        params = types.InitializeParams(
            capabilities=capabilities or client_capabilities(),
            process_id=os.getpid(),
            initialization_options=options,
        )
        result = self.request(types.INITIALIZE, params)
        self.notify(types.INITIALIZED, types.InitializedParams())
        if wait_ready:
            self.wait_for(
                lambda: any(s["state"] in ("ready", "error") for s in self.statuses), "model status"
            )
        return result

    def wait_for(self, condition: Callable[[], bool], what: str, timeout: float = TIMEOUT_S) -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            if time.monotonic() > deadline:
                raise TimeoutError(f"timed out waiting for {what}")
            time.sleep(0.01)

    def open(self, uri: str, text: str, language_id: str = "python", version: int = 1) -> None:
        item = types.TextDocumentItem(uri=uri, language_id=language_id, version=version, text=text)
        self.notify(types.TEXT_DOCUMENT_DID_OPEN, types.DidOpenTextDocumentParams(text_document=item))

    def change(self, uri: str, version: int, text: str, range_: types.Range | None = None) -> None:
        """Incremental change of ``range_`` (or a full replacement when None)."""
        change: Any = (
            types.TextDocumentContentChangeWholeDocument(text=text)
            if range_ is None
            else types.TextDocumentContentChangePartial(range=range_, text=text)
        )
        document = types.VersionedTextDocumentIdentifier(uri=uri, version=version)
        params = types.DidChangeTextDocumentParams(text_document=document, content_changes=[change])
        self.notify(types.TEXT_DOCUMENT_DID_CHANGE, params)

    def close(self) -> None:
        try:
            self.request(types.SHUTDOWN, None, timeout=10)
            self.notify(types.EXIT, None)
            process = self.client._server
            if process is not None and process.stdin is not None:
                self.loop.call_soon_threadsafe(process.stdin.close)  # as editors do after exit
            deadline = time.monotonic() + 10
            while process is not None and process.returncode is None and time.monotonic() < deadline:
                time.sleep(0.02)
        except Exception:
            pass
        finally:
            process = self.client._server
            if process is not None and process.returncode is None:
                process.kill()
            self.loop.call_soon_threadsafe(self.loop.stop)


def inline_params(
    uri: str,
    line: int,
    character: int,
    *,
    automatic: bool = False,
    selected: types.SelectedCompletionInfo | None = None,
) -> types.InlineCompletionParams:
    kind = (
        types.InlineCompletionTriggerKind.Automatic
        if automatic
        else types.InlineCompletionTriggerKind.Invoked
    )
    return types.InlineCompletionParams(
        context=types.InlineCompletionContext(trigger_kind=kind, selected_completion_info=selected),
        text_document=types.TextDocumentIdentifier(uri=uri),
        position=types.Position(line=line, character=character),
    )


class RawSession:
    """Hand-framed JSON-RPC over the server's stdio; a reader thread collects every message it writes."""

    def __init__(self, argv: list[str], env: dict[str, str] | None = None) -> None:
        self.process = subprocess.Popen(
            argv,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env=env or server_env(),
            cwd=str(REPO_ROOT),
        )
        self.inbox: queue.Queue[dict[str, Any]] = queue.Queue()
        self.seen: list[dict[str, Any]] = []
        self._next_id = 0
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        stdout = self.process.stdout
        assert stdout is not None
        while True:
            length = 0
            while True:
                line = stdout.readline()
                if not line:
                    return
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":")[1])
                if line in (b"\r\n", b"\n"):
                    break
            message = json.loads(stdout.read(length))
            if "method" in message and "id" in message:  # a server->client request: answer like an editor
                self.send({"jsonrpc": "2.0", "id": message["id"], "result": None})
            self.inbox.put(message)

    def send_bytes(self, body: bytes) -> None:
        stdin = self.process.stdin
        assert stdin is not None
        stdin.write(b"Content-Length: %d\r\n\r\n" % len(body) + body)
        stdin.flush()

    def send(self, message: Any) -> None:
        self.send_bytes(json.dumps(message).encode())

    def request(self, method: str, params: Any) -> int:
        self._next_id += 1
        self.send({"jsonrpc": "2.0", "id": self._next_id, "method": method, "params": params})
        return self._next_id

    def notify(self, method: str, params: Any) -> None:
        self.send({"jsonrpc": "2.0", "method": method, "params": params})

    def wait(self, condition: Callable[[dict[str, Any]], bool], timeout: float = TIMEOUT_S) -> dict[str, Any]:
        for message in self.seen:
            if condition(message):
                self.seen.remove(message)
                return message
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError("no matching message from the server")
            message = self.inbox.get(timeout=remaining)
            if condition(message):
                return message
            self.seen.append(message)

    def response(self, msg_id: int | None, timeout: float = TIMEOUT_S) -> dict[str, Any]:
        return self.wait(lambda m: "method" not in m and m.get("id") == msg_id, timeout)

    def call(self, method: str, params: Any, timeout: float = TIMEOUT_S) -> dict[str, Any]:
        return self.response(self.request(method, params), timeout)

    def initialize(self, options: dict[str, Any] | None = None) -> dict[str, Any]:
        capabilities = {"window": {"workDoneProgress": True}, "workspace": {"configuration": False}}
        result = self.call(
            "initialize", {"processId": None, "capabilities": capabilities, "initializationOptions": options}
        )
        self.notify("initialized", {})
        self.wait(lambda m: m.get("method") == "infill/status" and m["params"]["state"] in ("ready", "error"))
        return result

    def open(self, uri: str, text: str, language_id: str = "python", version: int = 1) -> None:
        item = {"uri": uri, "languageId": language_id, "version": version, "text": text}
        self.notify("textDocument/didOpen", {"textDocument": item})

    def inline(self, uri: str, line: int, character: int, automatic: bool = False) -> int:
        return self.request(
            "textDocument/inlineCompletion",
            {
                "textDocument": {"uri": uri},
                "position": {"line": line, "character": character},
                "context": {"triggerKind": 2 if automatic else 1},
            },
        )

    def close(self) -> None:
        try:
            self.call("shutdown", None, timeout=10)
            self.notify("exit", None)
            self.process.wait(timeout=10)
        except Exception:
            pass
        finally:
            if self.process.poll() is None:
                self.process.kill()
                self.process.wait()
