"""A REAL `infill serve --http` process on a free port, and a plain HTTP client for it (stdlib only)."""

from __future__ import annotations

import http.client
import json
import queue
import re
import subprocess
import sys
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.test_lsp_support import TIMEOUT_S, server_env


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    text: str

    def json(self) -> Any:
        return json.loads(self.text)


class HttpServer:
    """``infill serve --http --port 0``; the port is read from uvicorn's startup line on stderr."""

    def __init__(self, model_dir: Path, *extra: str, env: Mapping[str, str] | None = None) -> None:
        argv = [sys.executable, "-m", "infill_cli.main", "serve", "--http", "--port", "0", "--device", "cpu"]
        self.process = subprocess.Popen(
            [*argv, "--model", str(model_dir), *extra],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            env=server_env(**(env or {})),
        )
        self.lines: list[str] = []
        ports: queue.Queue[int] = queue.Queue()

        def read_stderr() -> None:
            assert self.process.stderr is not None
            for line in self.process.stderr:
                self.lines.append(line)
                found = re.search(r"running on http://[\d.]+:(\d+)", line)
                if found:
                    ports.put(int(found.group(1)))

        threading.Thread(target=read_stderr, daemon=True).start()
        try:
            self.port = ports.get(timeout=TIMEOUT_S)
        except queue.Empty:
            self.close()
            raise RuntimeError("the server did not start:\n" + "".join(self.lines)) from None

    def wait_ready(self) -> None:
        """Until /health says ok (it answers 503 while the model loads)."""
        deadline = time.monotonic() + TIMEOUT_S
        while self.request("GET", "/health").status != 200:
            assert self.process.poll() is None, "".join(self.lines)
            assert time.monotonic() < deadline, "the model did not load:\n" + "".join(self.lines)
            time.sleep(0.1)

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        raw: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        timeout: float = TIMEOUT_S,
    ) -> Reply:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            data = raw if raw is not None else None if body is None else json.dumps(body).encode()
            connection.request(method, path, body=data, headers=dict(headers or {}))
            response = connection.getresponse()
            return Reply(response.status, dict(response.getheaders()), response.read().decode())
        finally:
            connection.close()

    def alive(self) -> bool:
        return self.process.poll() is None and self.request("GET", "/health").status == 200

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
