"""The three completion protocols' request bodies as one ``FimRequest``, and their answers, without a server.

llama.cpp (``/infill``, ``/completion``), Ollama (``/api/generate``) and OpenAI (``/v1/completions``) all ask
for the text between a prefix and a suffix; they differ in field names, the FIM template a client may have
applied itself (Ollama ``raw``), and how the answer is shaped. Unknown fields are ignored (llama.vscode sends
a ``model`` naming some other model; llama.vim sends ``samplers`` and ``cache_prompt``). Everything a client
sends is checked here and a bad value is a ``WireError`` naming the field, answered with 400.

``t_max_predict_ms`` needs nothing here: llama.cpp stops at that limit only once the text holds a newline, so
a fill is never cut empty (llama.vim caches an empty answer for good); a diffusion fill is decoded as a whole,
its first line known only when all of it is, so every fill runs to its end.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

# The most tokens one request may ask for (the LSP server's own ceiling for maxTokens).
MAX_PREDICT = 1024
# Tokens asked for when a client sends no n_predict / num_predict / max_tokens (the LSP server's default).
DEFAULT_PREDICT = 64
MAX_CANDIDATES = 8
# llama.vim sends up to 16 chunks of up to 64 lines; more is a client we do not know, kept within bounds.
MAX_EXTRA_CHUNKS = 32
MAX_STOP_STRINGS = 16

# FIM templates clients apply themselves (Continue with Ollama ``raw: true``): (prefix, suffix, middle) marks
# of Qwen2.5-Coder/StarCoder2-style, StarCoder and CodeLlama prompts, and the space CodeLlama puts around its
# marks ("<PRE> {prefix} <SUF>{suffix} <MID>").
FIM_TEMPLATES = (
    ("<|fim_prefix|>", "<|fim_suffix|>", "<|fim_middle|>", ""),
    ("<fim_prefix>", "<fim_suffix>", "<fim_middle>", ""),
    ("<PRE>", "<SUF>", "<MID>", " "),
)


class WireError(ValueError):
    """A request body that no protocol accepts; the message names the field."""


@dataclass(frozen=True)
class ExtraChunk:
    """Context from another file (llama.vim's ring buffer of yanked, read and edited lines)."""

    filename: str
    text: str


@dataclass(frozen=True)
class FimRequest:
    """One completion: the model writes at the end of ``prefix + prompt``, before ``suffix``."""

    prefix: str
    suffix: str
    prompt: str = ""  # the cursor's line up to the cursor (llama.cpp's ``prompt`` of /infill)
    extra: tuple[ExtraChunk, ...] = ()
    n_predict: int = DEFAULT_PREDICT  # 0: cache warm-up only, the model is not asked
    n_cmpl: int = 1
    stop: tuple[str, ...] = ()
    stream: bool = False
    response_fields: tuple[str, ...] = ()
    filename: str | None = None  # not sent by the known clients; when given it names the language


def compact_json(value: Any) -> str:
    """One line, no spaces: llama.vim's regex wants ``"content":"`` exactly."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def parse_body(raw: bytes) -> dict[str, Any]:
    try:
        body = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise WireError(f"the body is not valid JSON: {error}") from error
    if not isinstance(body, dict):
        raise WireError("the body must be a JSON object")
    return body


def _text(body: Mapping[str, Any], name: str, default: str = "") -> str:
    value = body.get(name, default)
    if value is None:
        return default
    if not isinstance(value, str):
        raise WireError(f"{name} must be a string")
    return value


def _int(body: Mapping[str, Any], name: str, default: int, low: int, high: int) -> int:
    value = body.get(name, default)
    if value is None:
        return default
    if not isinstance(value, int) or isinstance(value, bool):
        raise WireError(f"{name} must be an integer")
    if value < 0 and low >= 0:
        return default if name in ("n_predict", "num_predict") else low  # llama.cpp: -1 means "no limit"
    if not low <= value <= high:
        raise WireError(f"{name} must be in [{low}, {high}]")
    return value


def _flag(body: Mapping[str, Any], name: str, default: bool) -> bool:
    value = body.get(name, default)
    if not isinstance(value, bool):
        raise WireError(f"{name} must be true or false")
    return value


def _stop(value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise WireError("stop must be a string or a list of strings")
    if len(value) > MAX_STOP_STRINGS:
        raise WireError(f"stop takes at most {MAX_STOP_STRINGS} strings")
    return tuple(item for item in value if item)


def _extra(value: Any) -> tuple[ExtraChunk, ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        raise WireError("input_extra must be a list of {filename, text} objects")
    chunks: list[ExtraChunk] = []
    for item in value[-MAX_EXTRA_CHUNKS:]:
        if not isinstance(item, dict) or not isinstance(item.get("text", ""), str):
            raise WireError("input_extra must be a list of {filename, text} objects")
        filename = item.get("filename", "")
        chunks.append(ExtraChunk(filename if isinstance(filename, str) else "", item.get("text", "")))
    return tuple(chunks)


def llama_request(body: Mapping[str, Any], *, infill: bool) -> FimRequest:
    """``/infill`` (input_prefix, prompt, input_suffix, input_extra) or ``/completion`` (prompt only)."""
    fields = body.get("response_fields") or []
    if not isinstance(fields, list) or not all(isinstance(name, str) for name in fields):
        raise WireError("response_fields must be a list of strings")
    if infill:
        prefix, prompt, suffix = (
            _text(body, "input_prefix"),
            _text(body, "prompt"),
            _text(body, "input_suffix"),
        )
    else:
        prompt = body.get("prompt", "")
        if not isinstance(prompt, str):
            raise WireError("prompt must be a string (token arrays are not supported)")
        prefix, suffix = _prefix_and_suffix(prompt, "")
        prompt = ""
    return FimRequest(
        prefix=prefix,
        suffix=suffix,
        prompt=prompt,
        extra=_extra(body.get("input_extra")),
        n_predict=_int(body, "n_predict", DEFAULT_PREDICT, 0, MAX_PREDICT),
        n_cmpl=_int(body, "n_cmpl", 1, 1, MAX_CANDIDATES),
        stop=_stop(body.get("stop")),
        stream=_flag(body, "stream", False),
        response_fields=tuple(fields),
        filename=_text(body, "filename") or None,
    )


def ollama_request(body: Mapping[str, Any]) -> FimRequest:
    """``/api/generate``: prompt + suffix, or (``raw``) a prompt the client put in a FIM template itself."""
    options = body.get("options")
    options = {} if options is None else options
    if not isinstance(options, dict):
        raise WireError("options must be an object")
    prefix, suffix = _prefix_and_suffix(_text(body, "prompt"), _text(body, "suffix"))
    return FimRequest(
        prefix=prefix,
        suffix=suffix,
        n_predict=_int(options, "num_predict", DEFAULT_PREDICT, 0, MAX_PREDICT),
        stop=_stop(options.get("stop")),
        stream=_flag(body, "stream", True),  # Ollama streams unless told not to
    )


def openai_request(body: Mapping[str, Any]) -> FimRequest:
    """``/v1/completions`` with ``suffix`` (OpenAI's legacy completions; Continue's openai provider)."""
    prompt = body.get("prompt", "")
    if isinstance(prompt, list) and len(prompt) == 1 and isinstance(prompt[0], str):
        prompt = prompt[0]
    if not isinstance(prompt, str):
        raise WireError("prompt must be a string")
    prefix, suffix = _prefix_and_suffix(prompt, _text(body, "suffix"))
    return FimRequest(
        prefix=prefix,
        suffix=suffix,
        n_predict=_int(body, "max_tokens", DEFAULT_PREDICT, 0, MAX_PREDICT),
        n_cmpl=_int(body, "n", 1, 1, MAX_CANDIDATES),
        stop=_stop(body.get("stop")),
        stream=_flag(body, "stream", False),
    )


def _prefix_and_suffix(prompt: str, suffix: str) -> tuple[str, str]:
    """A prompt in a FIM template carries its own suffix; otherwise the prompt is the prefix."""
    return split_fim_prompt(prompt) or (prompt, suffix)


def split_fim_prompt(prompt: str) -> tuple[str, str] | None:
    """(prefix, suffix) of a prompt in one of FIM_TEMPLATES (prefix-suffix-middle order); None otherwise."""
    for begin, hole, middle, space in FIM_TEMPLATES:
        marks = [re.escape(mark) for mark in (begin + space, space + hole, space + middle)]
        match = re.fullmatch(rf"(?s)(.*?){marks[0]}(.*?){marks[1]}(.*?){marks[2]}\s?", prompt)
        if match is not None:
            # Anything before the prefix mark (a repo name, file separators) is context that belongs above it.
            head, prefix, suffix = match.groups()
            head = re.sub(r"<\|?(repo_name|file_sep)\|?>", "\n", head).lstrip("\n")
            return head + prefix, suffix
    return None


def cut_at_stop(text: str, stop: Sequence[str]) -> tuple[str, str | None]:
    """``text`` up to the first stop string, and the one it stopped at."""
    cut, word = len(text), None
    for candidate in stop:
        at = text.find(candidate)
        if 0 <= at < cut:
            cut, word = at, candidate
    return text[:cut], word


def select_fields(answer: Mapping[str, Any], fields: Sequence[str]) -> dict[str, Any]:
    """llama.cpp's ``response_fields``: only these, a nested field named by its path (``timings/prompt_n``)
    and sent flat under that name; a path that names nothing is left out (``[""]`` gives ``{}``)."""
    if not fields:
        return dict(answer)
    picked: dict[str, Any] = {}
    for path in fields:
        value: Any = answer
        for part in path.split("/"):
            if not isinstance(value, Mapping) or part not in value:
                break
            value = value[part]
        else:
            picked[path] = value
    return picked


@dataclass(frozen=True)
class Timings:
    """llama.cpp's ``timings``. A diffusion model has no separate prompt phase (the context is part of every
    denoising pass), so the prompt counts are 0 and all the model's time is prediction."""

    predicted_n: int
    predicted_ms: float

    def to_wire(self) -> dict[str, float]:
        per_token = self.predicted_ms / self.predicted_n if self.predicted_n else 0.0
        return {
            "prompt_n": 0,
            "prompt_ms": 0.0,
            "prompt_per_token_ms": 0.0,
            "prompt_per_second": 0.0,
            "predicted_n": self.predicted_n,
            "predicted_ms": round(self.predicted_ms, 3),
            "predicted_per_token_ms": round(per_token, 3),
            "predicted_per_second": round(1000.0 / per_token, 3) if per_token else 0.0,
        }
