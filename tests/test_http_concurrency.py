"""A team on one server: a newer request of the same client supersedes the older, a client hanging up stops
the model, a full queue answers 503 with Retry-After; and the CLI's checks before anything loads.

The slow model decodes one token per step (threshold 1.0 over 1024 steps, stored with its weights as a
released model's defaults are), so a 128-token request runs for seconds and the tests can act while it does.
The server's debug log says when the model starts a batch ("model busy") and when it stops one."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.http_support import HttpServer, Reply
from tests.test_lsp_support import TIMEOUT_S, server_env

BODY = {"input_prefix": "def f():\n", "prompt": "    return ", "input_suffix": "\n", "n_predict": 128}


@pytest.fixture(scope="module")
def slow_server(slow_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[HttpServer]:
    model = tmp_path_factory.mktemp("slow_http") / "model"
    shutil.copytree(slow_model_dir, model)
    (model / "generation_config.json").write_text(json.dumps({"infill": {"steps": 1024, "threshold": 1.0}}))
    running = HttpServer(model, "--max-queue", "1", env={"INFILL_LOG_LEVEL": "DEBUG"})
    running.wait_ready()
    yield running
    running.close()


def wait_for_line(server: HttpServer, seen: int, needle: str) -> None:
    """Until the server logs a line holding ``needle`` (the reader thread appends each line it reads)."""
    deadline = time.monotonic() + TIMEOUT_S
    while not any(needle in line for line in server.lines[seen:]):
        assert server.process.poll() is None, "".join(server.lines)
        assert time.monotonic() < deadline, f"no {needle!r} in:\n" + "".join(server.lines[seen:])
        time.sleep(0.05)


def wait_until_idle(server: HttpServer) -> int:
    """Until the worker's last status line is "model ready" (a test's "model busy" is then its own); the
    number of lines read so far."""
    deadline = time.monotonic() + TIMEOUT_S
    while True:
        seen = len(server.lines)
        states = [line for line in server.lines[:seen] if "httpserver.app: model " in line]
        if states and "httpserver.app: model ready" in states[-1]:
            return seen
        assert time.monotonic() < deadline, "the worker did not go idle:\n" + "".join(server.lines)
        time.sleep(0.05)


def in_background(call: Callable[[], Reply]) -> tuple[threading.Thread, list[Reply]]:
    replies: list[Reply] = []
    thread = threading.Thread(target=lambda: replies.append(call()), daemon=True)
    thread.start()
    return thread, replies


def test_a_newer_request_of_the_same_client_supersedes_the_older(slow_server: HttpServer) -> None:
    seen = wait_until_idle(slow_server)
    thread, first = in_background(lambda: slow_server.request("POST", "/infill", BODY))
    wait_for_line(slow_server, seen, "model busy")
    second = slow_server.request("POST", "/infill", {**BODY, "n_predict": 2})
    thread.join(TIMEOUT_S)
    assert first and first[0].status == 409 and first[0].json()["error"]["type"] == "cancelled"
    assert second.status == 200 and "content" in second.json()
    assert slow_server.alive()


def test_a_client_hanging_up_stops_the_model(slow_server: HttpServer) -> None:
    seen = wait_until_idle(slow_server)
    body = json.dumps(BODY).encode()
    with socket.create_connection(("127.0.0.1", slow_server.port), timeout=TIMEOUT_S) as connection:
        head = f"POST /infill HTTP/1.1\r\nHost: x\r\nContent-Length: {len(body)}\r\n\r\n".encode()
        connection.sendall(head + body)
        wait_for_line(slow_server, seen, "model busy")
    wait_for_line(slow_server, seen, "cancelled after")  # the worker's line: stopped at a denoising step
    assert slow_server.alive()


def test_a_full_queue_answers_503_with_retry_after(slow_server: HttpServer) -> None:
    seen = wait_until_idle(slow_server)
    thread, first = in_background(lambda: slow_server.request("POST", "/infill", BODY))
    wait_for_line(slow_server, seen, "model busy")
    other = slow_server.request("POST", "/infill", BODY, headers={"X-Client-Id": "someone else"})
    assert other.status == 503 and other.headers["retry-after"] == "1"
    assert other.json()["error"]["code"] == 503
    slow_server.request("POST", "/infill", {**BODY, "n_predict": 1})  # supersedes the long one
    thread.join(TIMEOUT_S)
    assert first and first[0].status == 409
    assert slow_server.alive()


def test_health_and_completions_answer_503_while_the_model_loads(x_model_dir: Path) -> None:
    """uvicorn listens before the worker has imported torch (seconds): clients hear "loading", not silence."""
    server = HttpServer(x_model_dir)
    try:
        health = server.request("GET", "/health")
        completion = server.request("POST", "/infill", BODY)
        server.wait_ready()
    finally:
        server.close()
    assert health.status == 503 and health.json()["error"] == {
        "code": 503,
        "message": "Loading model",
        "type": "unavailable_error",
    }
    assert completion.status == 503 and completion.headers["retry-after"] == "5"


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    argv = [sys.executable, "-m", "infill_cli.main", "serve", "--http", *args]
    return subprocess.run(argv, capture_output=True, text=True, timeout=TIMEOUT_S, env=server_env())


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--host", "0.0.0.0"), "--api-key"),
        (("--host", "0.0.0.0", "--insecure-no-api-key", "--model", "/no/such/dir"), "not found"),
        (("--port", "70000"), "--port"),
        (("--model", "/no/such/dir"), "not found"),
        (("--tcp",), "--http excludes"),
        (("--max-queue", "0"), "--max-queue"),
    ],
)
def test_the_cli_refuses_bad_options_before_loading_anything(args: tuple[str, ...], message: str) -> None:
    done = run_cli(*args)
    assert done.returncode == 2
    lines = done.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("infill: error: ") and message in lines[0], done.stderr


def test_the_lsp_server_refuses_the_http_only_options() -> None:
    argv = [sys.executable, "-m", "infill_cli.main", "serve", "--api-key", "k"]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=TIMEOUT_S, env=server_env())
    assert done.returncode == 2 and "only used with --http" in done.stderr
