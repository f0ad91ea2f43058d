"""The Starlette application: llama.cpp's, Ollama's and OpenAI's completion endpoints over one model worker.

Every handler reads and checks its body (``wire.py``), hands a ``FimRequest`` to the ``CompletionService`` and
shapes its ``Completion`` the way its protocol's clients read it. All JSON is compact and on one line
(llama.vim finds the answer with a regex that wants ``"content":"``). Errors are JSON objects with the status
as ``code``: 400 bad body, 401 key, 404 path, 409 superseded, 413 body too large, 500 model failed to load,
503 loading or queue full (with ``Retry-After``).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import logging
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator
from datetime import UTC, datetime
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from httpserver import wire
from httpserver.service import Completion, CompletionService, NotReady, QueueFull
from infill import __version__
from infill.errors import Cancelled, InfillError, ModelLoadError
from infill.worker import ModelSpec, ModelWorker, WorkerState

logger = logging.getLogger(__name__)

# Far above what llama.vim sends (16 chunks of 64 lines), far below what would hurt the server.
MAX_BODY_BYTES = 4 * 1024 * 1024
# Requests waiting for or in the model before new ones get 503 (the worker batches 8 at a time).
MAX_QUEUE = 64
# Paths a load balancer probes without a key.
OPEN_PATHS = frozenset({"/health", "/v1/health"})
# Ollama's template syntax: Continue enables fill-in-the-middle only when the template mentions .Suffix.
OLLAMA_TEMPLATE = "{{- if .Suffix }}<|fim_prefix|>{{ .Prompt }}<|fim_suffix|>{{ .Suffix }}<|fim_middle|>{{- else }}{{ .Prompt }}{{- end }}"  # noqa: E501


class ApiError(Exception):
    def __init__(self, status: int, message: str, kind: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.kind, self.headers = status, message, kind, headers or {}


def json_response(value: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(wire.compact_json(value), status, headers, media_type="application/json")


def error_response(path: str, error: ApiError) -> Response:
    # Ollama's clients read {"error": "message"}; llama.cpp's and OpenAI's an object with code and type.
    body: Any = (
        error.message
        if path.startswith("/api/")
        else {
            "code": error.status,
            "message": error.message,
            "type": error.kind,
        }
    )
    return json_response({"error": body}, error.status, error.headers)


class ApiKeyMiddleware:
    """``Authorization: Bearer KEY`` (or ``X-Api-Key``) on every path but the health probes, compared in
    constant time."""

    def __init__(self, app: ASGIApp, api_key: str | None) -> None:
        self.app, self.key = app, api_key.encode() if api_key else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.key is None or scope["type"] != "http" or scope["path"] in OPEN_PATHS:
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        given = headers.get(b"authorization", b"").removeprefix(b"Bearer ").strip() or headers.get(
            b"x-api-key", b""
        )
        if hmac.compare_digest(given, self.key):
            await self.app(scope, receive, send)
            return
        response = error_response(
            scope["path"], ApiError(401, "invalid or missing API key", "authentication_error")
        )
        await response(scope, receive, send)


@contextlib.contextmanager
def service_errors() -> Iterator[None]:
    """The service's exceptions as the status codes clients act on."""
    try:
        yield
    except QueueFull as error:
        raise ApiError(503, str(error), "unavailable_error", {"Retry-After": "1"}) from error
    except NotReady as error:
        raise ApiError(503, "Loading model", "unavailable_error", {"Retry-After": "5"}) from error
    except Cancelled as error:
        raise ApiError(409, str(error), "cancelled") from error
    except ModelLoadError as error:
        raise ApiError(500, str(error), "server_error") from error
    except InfillError as error:  # the request cannot be served as asked (too long for the window...)
        raise ApiError(400, str(error).splitlines()[0], "invalid_request_error") from error


async def read_json(request: Request) -> dict[str, Any]:
    too_large = ApiError(413, f"the body is larger than {MAX_BODY_BYTES} bytes", "invalid_request_error")
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        raise too_large
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_BODY_BYTES:
            raise too_large
    try:
        return wire.parse_body(bytes(body))
    except wire.WireError as error:
        raise ApiError(400, str(error), "invalid_request_error") from error


def client_of(request: Request) -> str:
    """Who is asking, for superseding and for the context kept between requests: the key, the peer address
    and the user agent (``X-Client-Id`` tells apart clients behind one proxy or on one host)."""
    parts = [
        request.headers.get("authorization", ""),
        request.client.host if request.client else "",
        request.headers.get("user-agent", ""),
        request.headers.get("x-client-id", ""),
    ]
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:16]


async def _watch_disconnect(request: Request, gone: threading.Event) -> None:
    """Set ``gone`` when the client hangs up (llama.vim kills curl on the next keystroke, Continue aborts):
    the model stops at its next denoising step."""
    while True:
        message = await request.receive()
        if message["type"] == "http.disconnect":
            gone.set()
            return


class InfillApp:
    """Routes and their handlers; state lives in the ``CompletionService``."""

    def __init__(self, service: CompletionService, model_name: str) -> None:
        self.service = service
        self.model_name = model_name

    async def complete(self, request: Request, fim: wire.FimRequest) -> Completion:
        gone = threading.Event()
        watcher = asyncio.create_task(_watch_disconnect(request, gone))
        try:
            with service_errors():
                return await self.service.complete(client_of(request), fim, gone)
        finally:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher

    # -- health and model ------------------------------------------------------------------------------------
    async def health(self, request: Request) -> Response:
        with service_errors():
            self.service.check_ready()
        return json_response({"status": "ok"})

    async def _info(self) -> dict[str, Any]:
        with service_errors():
            return await self.service.model_info()

    async def props(self, request: Request) -> Response:
        info = await self._info()
        settings = {"n_ctx": info["n_ctx"], "n_predict": wire.DEFAULT_PREDICT, "steps": info["steps"]}
        return json_response(
            {
                "default_generation_settings": {**settings, "params": settings},
                "total_slots": 1,
                "model_path": self.model_name,
                "build_info": f"infill {__version__}",
            }
        )

    async def models(self, request: Request) -> Response:
        info = await self._info()
        model = {"id": self.model_name, "object": "model", "created": 0, "owned_by": "infill"}
        return json_response({"object": "list", "data": [{**model, "meta": {"n_ctx_train": info["n_ctx"]}}]})

    # -- llama.cpp -------------------------------------------------------------------------------------------
    async def infill(self, request: Request) -> Response:
        return await self._llama(request, infill=True)

    async def completion(self, request: Request) -> Response:
        return await self._llama(request, infill=False)

    async def _llama(self, request: Request, *, infill: bool) -> Response:
        fim = _parsed(wire.llama_request, await read_json(request), infill=infill)
        done = await self.complete(request, fim)
        n_ctx = (await self._info())["n_ctx"] if fim.n_predict else 0
        answers = [
            self._llama_answer(fim, done, i, text, n_ctx) for i, text in enumerate(done.texts or ("",))
        ]
        if fim.stream:
            chunks = [{"index": a["index"], "content": a["content"], "stop": False} for a in answers]
            final = [{**a, "content": ""} for a in answers]
            return _sse((*chunks, *final), done_marker=False)
        answers = [wire.select_fields(answer, fim.response_fields) for answer in answers]
        return json_response(answers if fim.n_cmpl > 1 else answers[0])

    def _llama_answer(
        self, fim: wire.FimRequest, done: Completion, index: int, text: str, n_ctx: int
    ) -> dict[str, Any]:
        timings = wire.Timings(done.predicted_n, done.elapsed_ms).to_wire()
        return {
            "index": index,
            "content": text,
            "tokens": [],
            "id_slot": 0,
            "stop": True,
            "model": self.model_name,
            "tokens_predicted": done.predicted_n,
            "tokens_evaluated": 0,
            "generation_settings": {"n_ctx": n_ctx, "n_predict": fim.n_predict},
            "prompt": "",
            "has_new_line": "\n" in text,
            "truncated": False,
            "stop_type": "word" if done.stopped_word else "eos",
            "stopping_word": done.stopped_word or "",
            "tokens_cached": 0,
            "timings": timings,
        }

    # -- Ollama ----------------------------------------------------------------------------------------------
    async def ollama_generate(self, request: Request) -> Response:
        body = await read_json(request)
        fim = _parsed(wire.ollama_request, body)
        now = datetime.now(UTC).isoformat().replace("+00:00", "Z")
        head = {"model": body.get("model") or self.model_name, "created_at": now}
        if not fim.prefix and not fim.suffix:  # Ollama's way of asking it to load the model
            await self._info()  # 503 while loading, 500 when the load failed
            return json_response({**head, "response": "", "done": True, "done_reason": "load"})
        done = await self.complete(request, fim)
        text = done.texts[0] if done.texts else ""
        final = {
            **head,
            "response": "",
            "done": True,
            "done_reason": "stop",
            "total_duration": int(done.elapsed_ms * 1e6),
            "load_duration": 0,
            "prompt_eval_count": 0,
            "prompt_eval_duration": 0,
            "eval_count": done.predicted_n,
            "eval_duration": int(done.elapsed_ms * 1e6),
        }
        if not fim.stream:
            return json_response({**final, "response": text})
        lines = [{**head, "response": text, "done": False}] if text else []
        return StreamingResponse(
            _lines(wire.compact_json(item) + "\n" for item in (*lines, final)),
            media_type="application/x-ndjson",
        )

    async def ollama_show(self, request: Request) -> Response:
        await read_json(request)  # name or model: there is one model, whatever it is called
        info = await self._info()
        return json_response(
            {
                "template": OLLAMA_TEMPLATE,
                "parameters": f"num_ctx {info['n_ctx']}",
                "modelfile": f'FROM {self.model_name}\nTEMPLATE """{OLLAMA_TEMPLATE}"""\n',
                "details": {
                    "format": "safetensors",
                    "family": "infill",
                    "parameter_size": "",
                    "quantization_level": "",
                },
                "model_info": {"general.architecture": "infill", "infill.context_length": info["n_ctx"]},
                "capabilities": ["completion", "insert"],
            }
        )

    async def ollama_tags(self, request: Request) -> Response:
        model = {
            "name": self.model_name,
            "model": self.model_name,
            "modified_at": "1970-01-01T00:00:00Z",
            "size": 0,
            "digest": "",
            "details": {"format": "safetensors", "family": "infill"},
        }
        return json_response({"models": [model]})

    # -- OpenAI ----------------------------------------------------------------------------------------------
    async def openai_completions(self, request: Request) -> Response:
        fim = _parsed(wire.openai_request, await read_json(request))
        done = await self.complete(request, fim)
        head = {
            "id": f"cmpl-{time.time_ns():x}",
            "object": "text_completion",
            "created": int(time.time()),
            "model": self.model_name,
        }
        texts = done.texts or ("",)
        choices = [
            {"text": text, "index": i, "logprobs": None, "finish_reason": "stop"}
            for i, text in enumerate(texts)
        ]
        if not fim.stream:
            usage = {
                "prompt_tokens": 0,
                "completion_tokens": done.predicted_n,
                "total_tokens": done.predicted_n,
            }
            return json_response({**head, "choices": choices, "usage": usage})
        deltas = [{**head, "choices": [{**c, "finish_reason": None}]} for c in choices if c["text"]]
        finals = [{**head, "choices": [{**c, "text": ""}]} for c in choices]
        return _sse((*deltas, *finals), done_marker=True)


def _parsed(parse: Callable[..., wire.FimRequest], body: dict[str, Any], **options: Any) -> wire.FimRequest:
    try:
        return parse(body, **options)
    except wire.WireError as error:
        raise ApiError(400, str(error), "invalid_request_error") from error


async def _lines(lines: Iterable[str]) -> AsyncIterator[str]:
    for line in lines:
        yield line


def _sse(events: Iterable[dict[str, Any]], *, done_marker: bool) -> StreamingResponse:
    """Server-sent events, one ``data:`` line each; no ``: ping`` comments (Continue reads one as the end)."""
    lines = [f"data: {wire.compact_json(event)}\n\n" for event in events]
    if done_marker:
        lines.append("data: [DONE]\n\n")
    return StreamingResponse(_lines(lines), media_type="text/event-stream")


def _log_status(state: WorkerState, message: str | None) -> None:
    # busy/ready flip with every batch: debug, like the per-completion lines.
    level = logging.DEBUG if state in ("busy", "ready") and message is None else logging.INFO
    logger.log(level, "model %s%s", state, f": {message}" if message else "")


def create_app(
    spec: ModelSpec, *, api_key: str | None = None, model_name: str | None = None, max_queue: int = MAX_QUEUE
) -> ASGIApp:
    """The application, its model loading in the background from startup (health answers 503 till then)."""
    worker = ModelWorker(_log_status)
    handlers = InfillApp(CompletionService(worker, max_queue), model_name or "infill")

    def route(path: str, handler: Callable[[Request], Awaitable[Response]], method: str) -> Route:
        async def endpoint(request: Request) -> Response:
            try:
                return await handler(request)
            except ApiError as error:
                return error_response(request.url.path, error)
            except Exception:  # a bug below us: this request fails with an error object, the server goes on
                logger.exception("%s %s failed", request.method, request.url.path)
                return error_response(request.url.path, ApiError(500, "internal error", "server_error"))

        return Route(path, endpoint, methods=[method])

    routes = [
        route("/health", handlers.health, "GET"),
        route("/v1/health", handlers.health, "GET"),
        route("/props", handlers.props, "GET"),
        route("/models", handlers.models, "GET"),
        route("/v1/models", handlers.models, "GET"),
        route("/infill", handlers.infill, "POST"),
        route("/completion", handlers.completion, "POST"),
        route("/completions", handlers.completion, "POST"),
        route("/api/generate", handlers.ollama_generate, "POST"),
        route("/api/show", handlers.ollama_show, "POST"),
        route("/api/tags", handlers.ollama_tags, "GET"),
        route("/v1/completions", handlers.openai_completions, "POST"),
        # The FIM endpoint of Mistral's and DeepSeek's OpenAI-style APIs (prompt + suffix, same answer), which
        # Continue's OpenAI adapter calls for providers it knows to support FIM.
        route("/v1/fim/completions", handlers.openai_completions, "POST"),
    ]

    async def http_error(request: Request, error: Exception) -> Response:
        assert isinstance(error, HTTPException)
        kind = "not_found_error" if error.status_code == 404 else "invalid_request_error"
        return error_response(request.url.path, ApiError(error.status_code, str(error.detail), kind))

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        worker.load(spec)
        yield
        worker.close()

    app = Starlette(routes=routes, exception_handlers={HTTPException: http_error}, lifespan=lifespan)
    return ApiKeyMiddleware(app, api_key)


def serve(
    spec: ModelSpec, host: str, port: int, *, api_key: str | None, model_name: str, max_queue: int = MAX_QUEUE
) -> None:
    import uvicorn  # only `infill serve --http` needs it

    app = create_app(spec, api_key=api_key, model_name=model_name, max_queue=max_queue)
    # No access log: an editor asks on every pause in typing; the worker logs each completion at debug.
    uvicorn.run(app, host=host, port=port, access_log=False, log_config=None, timeout_graceful_shutdown=2)
