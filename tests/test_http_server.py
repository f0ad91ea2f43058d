"""`infill serve --http` as a real process on a real socket: every endpoint of the llama.cpp, Ollama and
OpenAI protocols as their clients read them, and every bad input with its status code, the server alive
after each.

The x model proposes "xxxx" wherever the checks let it, so a completion is recognisable."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.http_support import HttpServer

PREFIX = "def scale(values):\n    total = 0\n"
SUFFIX = "\n    return total\n"
FIELDS = ("content", "timings/prompt_n", "timings/predicted_ms", "truncated", "tokens_cached")


@pytest.fixture(scope="module")
def server(x_model_dir: Path) -> Iterator[HttpServer]:
    running = HttpServer(x_model_dir)
    running.wait_ready()
    yield running
    running.close()


def llama_vim_body(**changes: object) -> dict[str, object]:
    """What llama.vim's fim request sends (autoload/llama.vim), ``model`` and all."""
    body: dict[str, object] = {
        "id_slot": 0,
        "input_prefix": PREFIX,
        "input_suffix": SUFFIX,
        "input_extra": [],
        "prompt": "    total = ",
        "n_predict": 128,
        "stop": [],
        "n_indent": 4,
        "top_k": 40,
        "top_p": 0.90,
        "samplers": ["top_k", "top_p", "infill"],
        "stream": False,
        "cache_prompt": True,
        "t_max_prompt_ms": 500,
        "t_max_predict_ms": 250,
        "model": "",
        "response_fields": list(FIELDS),
    }
    body.update(changes)
    return body


def test_health_props_and_models_answer_as_llama_cpp(server: HttpServer) -> None:
    for path in ("/health", "/v1/health"):
        assert server.request("GET", path).json() == {"status": "ok"}
    props = server.request("GET", "/props").json()
    assert props["default_generation_settings"]["n_ctx"] > 0
    models = server.request("GET", "/v1/models").json()
    assert models["object"] == "list" and models["data"][0]["id"] == "model"


def test_llama_vim_infill_is_one_compact_line_its_regex_reads(server: HttpServer) -> None:
    reply = server.request("POST", "/infill", llama_vim_body(), headers={"Authorization": "Bearer "})
    assert reply.status == 200 and reply.headers["content-type"] == "application/json"
    assert '"content":"' in reply.text and "\n" not in reply.text  # llama.vim: '\v"content"\s*:"' on one line
    answer = reply.json()
    assert set(answer) == set(FIELDS)
    assert answer["content"].startswith("x") and answer["timings/predicted_ms"] > 0


def test_the_full_answer_has_the_fields_llama_vscode_reads(server: HttpServer) -> None:
    body = llama_vim_body(response_fields=None, model="qwen2.5-coder-1.5b", n_cmpl=3)
    answers = server.request("POST", "/infill", body).json()
    assert isinstance(answers, list) and 1 <= len(answers) <= 3
    for index, answer in enumerate(answers):
        assert answer["index"] == index and answer["content"].startswith("x")
        assert answer["generation_settings"]["n_ctx"] > 0 and answer["tokens_cached"] == 0
        assert {"prompt_n", "predicted_n", "predicted_ms"} <= set(answer["timings"])
        assert answer["stop"] is True and answer["stop_type"] in ("eos", "word")


def test_a_cache_warm_up_answers_at_once_with_nothing(server: HttpServer) -> None:
    extra = [{"filename": "util.py", "text": "def helper():\n    return 1\n", "time": 1}]
    body = llama_vim_body(n_predict=0, input_extra=extra, response_fields=[""])
    reply = server.request("POST", "/infill", body)
    assert reply.status == 200 and reply.json() == {}


def test_a_whitespace_only_line_gets_its_indentation_back(server: HttpServer) -> None:
    """llama.vim sends prompt "" and n_indent 0 for a line of spaces: without indentation in the answer, Tab
    would write the code at column 0."""
    body = llama_vim_body(input_prefix="def scale(values):\n", input_suffix="\n", prompt="", n_indent=0)
    content = server.request("POST", "/infill", body).json()["content"]
    assert content.startswith("    x"), content


def test_stop_strings_cut_the_answer(server: HttpServer) -> None:
    answer = server.request("POST", "/infill", llama_vim_body(stop=["xx"], response_fields=None)).json()
    assert answer["content"] in ("", "x")  # the x model writes "xxxx"
    assert answer["stop_type"] == "word" and answer["stopping_word"] == "xx"


def test_completion_streams_server_sent_events(server: HttpServer) -> None:
    prompt = "<|fim_prefix|>" + PREFIX + "    total = <|fim_suffix|>" + SUFFIX + "<|fim_middle|>"
    reply = server.request("POST", "/completion", {"prompt": prompt, "stream": True, "n_predict": 8})
    assert reply.headers["content-type"].startswith("text/event-stream")
    events = [json.loads(line.removeprefix("data: ")) for line in reply.text.split("\n\n") if line]
    assert events[0]["content"].startswith("x") and events[-1]["stop"] is True


def test_ollama_show_enables_fim_and_generate_streams_ndjson(server: HttpServer) -> None:
    shown = server.request("POST", "/api/show", {"name": "whatever"}).json()
    assert ".Suffix" in shown["template"]  # Continue uses fill-in-the-middle only then
    assert server.request("GET", "/api/tags").json()["models"][0]["name"] == "model"
    prompt = PREFIX + "    total = "
    body = {"model": "qwen", "prompt": prompt, "suffix": SUFFIX, "options": {"num_predict": 8}}
    reply = server.request("POST", "/api/generate", body)
    lines = [json.loads(line) for line in reply.text.splitlines()]
    assert reply.headers["content-type"] == "application/x-ndjson"
    assert lines[-1]["done"] is True and all(line["done"] is False for line in lines[:-1])
    assert "".join(line["response"] for line in lines).startswith("x")


def test_ollama_raw_prompts_in_a_fim_template_are_split(server: HttpServer) -> None:
    raw = f"<|fim_prefix|>{PREFIX}    total = <|fim_suffix|>{SUFFIX}<|fim_middle|>"
    answer = server.request("POST", "/api/generate", {"prompt": raw, "raw": True, "stream": False}).json()
    assert answer["done"] is True and answer["response"].startswith("x")
    assert "fim" not in answer["response"]


def test_openai_completions_with_suffix_stream_and_not(server: HttpServer) -> None:
    body = {"model": "x", "prompt": PREFIX + "    total = ", "suffix": SUFFIX, "max_tokens": 8}
    answer = server.request("POST", "/v1/completions", body).json()
    assert answer["object"] == "text_completion" and answer["choices"][0]["text"].startswith("x")
    reply = server.request("POST", "/v1/completions", {**body, "stream": True})
    assert ": ping" not in reply.text and reply.text.endswith("data: [DONE]\n\n")
    events = [json.loads(block[6:]) for block in reply.text.split("\n\n") if block and "[DONE]" not in block]
    assert "".join(event["choices"][0]["text"] for event in events).startswith("x")
    assert events[-1]["choices"][0]["finish_reason"] == "stop"
    fim = server.request("POST", "/v1/fim/completions", body).json()  # Mistral/DeepSeek-style FIM path
    assert fim["choices"][0]["text"].startswith("x")


@pytest.mark.parametrize(
    ("method", "path", "raw", "status"),
    [
        ("POST", "/infill", b"{not json", 400),
        ("POST", "/infill", b"[1, 2]", 400),
        ("POST", "/infill", b"\xff\xfe", 400),
        ("POST", "/infill", json.dumps({"input_prefix": 3}).encode(), 400),
        ("POST", "/infill", json.dumps({"n_predict": "many"}).encode(), 400),
        ("POST", "/infill", json.dumps({"n_cmpl": 99}).encode(), 400),
        ("POST", "/infill", json.dumps({"input_extra": "text"}).encode(), 400),
        ("POST", "/api/generate", json.dumps({"options": []}).encode(), 400),
        ("POST", "/v1/completions", json.dumps({"prompt": [1, 2, 3]}).encode(), 400),
        ("POST", "/infill", b"{" + b" " * (5 * 1024 * 1024) + b"}", 413),
        ("GET", "/nope", None, 404),
        ("GET", "/infill", None, 405),
    ],
)
def test_bad_input_gets_its_status_and_an_error_object(
    server: HttpServer, method: str, path: str, raw: bytes | None, status: int
) -> None:
    reply = server.request(method, path, raw=raw, headers={"Content-Type": "application/json"})
    assert reply.status == status, reply.text
    error = reply.json()["error"]
    message = error if path.startswith("/api/") else error["message"]
    assert isinstance(message, str) and message
    if not path.startswith("/api/"):
        assert error["code"] == status
    assert server.alive()


def test_an_api_key_is_required_and_checked(x_model_dir: Path) -> None:
    keyed = HttpServer(x_model_dir, "--api-key", "s3cret")
    try:
        keyed.wait_ready()  # /health is open for load balancers
        body = llama_vim_body()
        for headers in ({}, {"Authorization": "Bearer "}, {"Authorization": "Bearer wrong"}):
            reply = keyed.request("POST", "/infill", body, headers=headers)
            assert reply.status == 401 and reply.json()["error"]["code"] == 401
        assert keyed.request("GET", "/api/tags").status == 401
        ok = keyed.request("POST", "/infill", body, headers={"Authorization": "Bearer s3cret"})
        assert ok.status == 200 and ok.json()["content"].startswith("x")
        assert keyed.alive()
    finally:
        keyed.close()
