"""The HTTP front end's pure parts: request parsing, FIM templates, response_fields, the edit turned into an
insertion, the blank-line indentation, and the context kept per client."""

from __future__ import annotations

import subprocess
import sys

import pytest

from httpserver import wire
from httpserver.service import CHUNKS_PER_CLIENT, CompletionService, blank_line_indent, insertion_at_cursor
from infill.infiller import Edit
from infill.worker import ModelWorker


@pytest.mark.parametrize(
    "template",
    [
        "<|fim_prefix|>{p}<|fim_suffix|>{s}<|fim_middle|>",
        "<fim_prefix>{p}<fim_suffix>{s}<fim_middle>",
        "<PRE> {p} <SUF>{s} <MID>",
    ],
)
def test_fim_templates_split_into_prefix_and_suffix(template: str) -> None:
    prompt = template.format(p="def f(x):\n    return ", s="\n\nprint(f(1))\n")
    assert wire.split_fim_prompt(prompt) == ("def f(x):\n    return ", "\n\nprint(f(1))\n")
    assert wire.split_fim_prompt("def f(x):\n    return ") is None


def test_a_repo_header_before_the_fim_prefix_stays_above_it() -> None:
    prompt = "<|repo_name|>demo\n<|file_sep|>a.py\n<|fim_prefix|>x = <|fim_suffix|>\n<|fim_middle|>"
    prefix, suffix = wire.split_fim_prompt(prompt) or ("", "")
    assert prefix.endswith("a.py\nx = ") and "<|" not in prefix and suffix == "\n"


def test_response_fields_are_flat_paths_and_an_unknown_one_is_left_out() -> None:
    answer = {"content": "x", "timings": {"prompt_n": 0, "predicted_ms": 3.0}}
    assert wire.select_fields(answer, ["content", "timings/predicted_ms"]) == {
        "content": "x",
        "timings/predicted_ms": 3.0,
    }
    assert wire.select_fields(answer, [""]) == {}
    assert wire.select_fields(answer, []) == answer


def test_compact_json_has_no_space_after_the_colon() -> None:
    assert wire.compact_json({"content": "é x"}) == '{"content":"é x"}'


def test_llama_defaults_and_limits() -> None:
    request = wire.llama_request({"input_prefix": "a", "n_predict": -1, "t_max_predict_ms": 1}, infill=True)
    assert request.n_predict == wire.DEFAULT_PREDICT and request.prefix == "a"
    with pytest.raises(wire.WireError, match="n_predict"):
        wire.llama_request({"n_predict": 5000}, infill=True)
    with pytest.raises(wire.WireError, match="stream"):
        wire.llama_request({"stream": "yes"}, infill=True)


@pytest.mark.parametrize(
    ("text", "cursor", "edit", "expected"),
    [
        ("f(|)", 2, Edit(2, 3, "a)", 0.0), "a"),  # the closer the region regenerated is kept, not doubled
        ("f(|)", 2, Edit(2, 3, "a]", 0.0), None),  # it would have to replace the ")": no insertion
        ("    x = |", 8, Edit(0, 8, "    x = 1", 0.0), "1"),  # typed text re-generated is dropped
        ("    x = |", 8, Edit(0, 8, "    y = 1", 0.0), None),  # typed text changed: not an insertion
        ("ab|cd", 2, Edit(3, 3, "Z", 0.0), None),  # an insertion after "c": not at the cursor
        ("ab|", 2, Edit(2, 2, "cd", 0.0), "cd"),
        ("ab|", 2, Edit(2, 2, "", 0.0), None),
    ],
)
def test_an_edit_becomes_the_text_inserted_at_the_cursor(
    text: str, cursor: int, edit: Edit, expected: str | None
) -> None:
    plain = text.replace("|", "")
    assert insertion_at_cursor(plain, cursor, edit) == expected


def test_a_blank_line_takes_the_indentation_of_the_code_above() -> None:
    assert blank_line_indent("def f():\n    a = 1\n", "\nreturn\n") == "    "
    assert blank_line_indent("def f():\n    a = 1\n\n", "") == "    "
    assert blank_line_indent("", "") == ""
    assert blank_line_indent("def f():\n    a = ", "\n") is None  # not a blank line
    assert blank_line_indent("x\n", "rest\n") is None


def test_context_is_kept_per_client_and_only_clean_chunks_of_the_language_go_in() -> None:
    service = CompletionService(ModelWorker(lambda state, message: None), max_queue=4)
    clean = wire.ExtraChunk("util.py", "def helper():\n    return 42\n")
    broken = wire.ExtraChunk("cut.py", 'def g():\n    s = """never closed\n')
    other = wire.ExtraChunk("main.go", "package main\n")
    context = service.remember("alice", [clean, broken, other])
    request = wire.FimRequest(prefix="def f():\n    return ", suffix="\n")
    document = service.document(context, request)
    assert document.language == "python"  # most of alice's files are Python
    assert document.text.startswith("def helper():\n    return 42\n\n") and '"""' not in document.text
    assert "package main" not in document.text
    assert document.text[document.cursor :] == "\n" and document.text[: document.cursor].endswith("return ")
    # Kept between requests: a request without chunks still gets them; another client does not.
    assert "helper" in service.document(service.remember("alice", []), request).text
    assert "helper" not in service.document(service.remember("bob", []), request).text
    many = [wire.ExtraChunk(f"m{i}.py", f"v{i} = {i}\n") for i in range(CHUNKS_PER_CLIENT + 3)]
    kept = service.document(service.remember("alice", many), request).text
    assert "helper" not in kept and f"v{CHUNKS_PER_CLIENT + 2} = " in kept and "v2 = " not in kept


def test_the_http_package_imports_neither_torch_nor_the_lsp_front_end() -> None:
    code = (
        "import sys, httpserver.app, httpserver.service, httpserver.wire\n"
        "bad = sorted(m for m in ('torch', 'transformers', 'pygls', 'lsp') if m in sys.modules)\n"
        "print(','.join(bad))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    assert out.stdout.strip() == ""
