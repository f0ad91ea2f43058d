"""What every HTTP completion goes through, whatever its protocol: the client's context, superseding, the
queue bound, the model worker, and the edits turned back into text to insert at the cursor.

The model worker (``infill.worker``) is the LSP server's: the same batching of concurrent requests into shared
forward passes, the same ``should_stop`` polled between denoising steps, the same syntax checks. This module
holds no protocol: ``app.py`` parses and answers, this decides.
"""

from __future__ import annotations

import asyncio
import collections
import itertools
import logging
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from httpserver.wire import ExtraChunk, FimRequest, cut_at_stop
from infill.errors import Cancelled, ModelLoadError
from infill.regions import language_for_path, parse_error_count
from infill.worker import CompletionJob, ModelWorker, SamplerOverrides

if TYPE_CHECKING:
    from infill.infiller import Edit, Infiller

logger = logging.getLogger(__name__)

# Chunks of other files kept per client (llama.vim keeps 16) and clients remembered, least recent dropped.
CHUNKS_PER_CLIENT = 16
CLIENTS_KEPT = 256


class QueueFull(Exception):
    """More requests are waiting for the model than the server takes: answered 503 with Retry-After."""


class NotReady(Exception):
    """The model is still loading: answered 503, as llama.cpp does."""


@dataclass(frozen=True)
class Completion:
    """The texts to insert at the cursor, best first (none when nothing passed the checks)."""

    texts: tuple[str, ...]
    stopped_word: str | None
    predicted_n: int
    elapsed_ms: float


@dataclass(frozen=True)
class Document:
    text: str
    cursor: int
    indent: str  # inserted before the cursor: the answer starts with it
    language: str | None


@dataclass
class _Chunk:
    text: str
    language: str | None
    parses: bool  # a chunk cut mid-string would swallow the document below it: only clean ones go in


@dataclass
class _ClientContext:
    chunks: collections.OrderedDict[str, _Chunk] = field(default_factory=collections.OrderedDict)


@dataclass(eq=False)
class _Pending:
    gone: threading.Event | None  # set when the client hung up
    superseded: bool = False

    def stale(self) -> bool:  # called on the worker thread too: an attribute and an Event read
        return self.superseded or (self.gone is not None and self.gone.is_set())


def insertion_at_cursor(text: str, cursor: int, edit: Edit) -> str | None:
    """The text to insert at ``cursor`` that has ``edit``'s effect, or None when no insertion has it (the
    edit rewrites typed text, or changes what follows the cursor otherwise than by inserting). The
    completion protocols insert at the cursor and keep everything after it; the engine may regenerate the
    rest of a line (closing brackets) or a block from its line start."""
    new_text, start = edit.new_text, edit.start
    if start < cursor:
        typed = text[start:cursor]
        if not new_text.startswith(typed):
            return None
        new_text, start = new_text[len(typed) :], cursor
    after = text[cursor:start] + new_text + text[edit.end :]  # what will follow the cursor
    kept = text[cursor:]
    if not after.endswith(kept):
        return None
    return after[: len(after) - len(kept)] or None


def blank_line_indent(prefix: str, suffix: str) -> str | None:
    """On a line holding nothing (llama.vim sends a whitespace-only line as empty, with ``n_indent: 0``) the
    indentation of the code above; None elsewhere. The answer carries it, or the editor writes at column 0."""
    if (prefix and not prefix.endswith("\n")) or (suffix and not suffix.startswith("\n")):
        return None
    for line in reversed(prefix.splitlines()):
        if line.strip():
            return line[: len(line) - len(line.lstrip(" \t"))]
    return ""


class CompletionService:
    """The HTTP front end's state: one model worker, per-client context and pending requests."""

    def __init__(self, worker: ModelWorker, max_queue: int) -> None:
        self.worker = worker
        self.max_queue = max_queue
        self._live: set[_Pending] = set()
        self._contexts: collections.OrderedDict[str, _ClientContext] = collections.OrderedDict()
        self._pending: dict[tuple[str, str], _Pending] = {}
        self._labels = itertools.count(1)
        self._model_info: dict[str, Any] | None = None

    # -- model state ---------------------------------------------------------------------------------------
    def check_ready(self) -> None:
        if self.worker.state == "error":
            raise ModelLoadError(f"the model failed to load: {self.worker.error}")
        if self.worker.state in ("idle", "loading"):
            raise NotReady("the model is loading")

    async def model_info(self) -> dict[str, Any]:
        """The loaded model's window and sampler defaults (asked of the worker once)."""
        if self._model_info is None:
            self.check_ready()

            def read(infiller: Infiller, config: Any, should_stop: Any) -> dict[str, Any]:
                loaded = infiller.engine.loaded
                return {
                    "n_ctx": loaded.max_positions,
                    "context_tokens": config.context_tokens or infiller.engine.context_tokens,
                    "steps": config.steps,
                }

            future = self.worker.call(read, SamplerOverrides(), lambda: False, "model-info")
            self._model_info = await asyncio.wrap_future(future)
        return self._model_info

    # -- completions -----------------------------------------------------------------------------------------
    async def complete(
        self, client: str, request: FimRequest, gone: threading.Event | None = None
    ) -> Completion:
        """Complete for one client; Cancelled when a newer request of the same client and document, the
        client hanging up (``gone``) or shutdown overtook it."""
        context = self.remember(client, request.extra)
        if request.n_predict == 0:
            return Completion((), None, 0, 0.0)  # a cache warm-up: the context is kept, the model not asked
        self.check_ready()
        document = self.document(context, request)
        text, cursor, indent = document.text, document.cursor, document.indent
        job = CompletionJob(
            text=text,
            offset=cursor,
            language=document.language,
            max_tokens=max(1, request.n_predict),
            num_candidates=request.n_cmpl,
            trigger="automatic" if request.n_cmpl == 1 else "invoked",
        )
        key = (client, request.filename or "")
        if key in self._pending:
            self._pending[key].superseded = True  # llama.vim asks on every keystroke: the older one is stale
        pending = _Pending(gone)
        # Superseded and abandoned requests leave the worker at its next step: they hold no place in the queue
        waiting = sum(not other.stale() for other in self._live)
        if waiting >= self.max_queue:
            raise QueueFull(f"{waiting} requests are waiting for the model")
        self._pending[key] = pending
        self._live.add(pending)
        label = f"http-{next(self._labels)}"
        started = time.perf_counter()
        try:
            future = self.worker.complete(job, SamplerOverrides(), pending.stale, label)
            edits = await asyncio.wrap_future(future)
        finally:
            self._live.discard(pending)
            if self._pending.get(key) is pending:
                del self._pending[key]
        if pending.stale():
            raise Cancelled("a newer request from this client superseded this one")
        return self._answer(text, cursor, indent, edits, request.stop, time.perf_counter() - started)

    def _answer(
        self, text: str, cursor: int, indent: str, edits: Sequence[Edit], stop: Sequence[str], seconds: float
    ) -> Completion:
        texts: list[str] = []
        stopped: str | None = None
        for edit in edits:
            insertion = insertion_at_cursor(text, cursor, edit)
            if insertion is None:
                continue
            cut, word = cut_at_stop(indent + insertion, stop)
            stopped = word if not texts else stopped  # the best answer's
            if cut and cut not in texts:
                texts.append(cut)
        predicted = len(edits[0].tokens) if edits else 0
        return Completion(tuple(texts), stopped, predicted, seconds * 1000)

    def document(self, context: _ClientContext, request: FimRequest) -> Document:
        """What the model sees: the client's other files above the prefix, the cursor after the prompt (and
        after the indentation a blank line needs)."""
        language = self._language(request, context)
        indent = blank_line_indent(request.prefix + request.prompt, request.suffix) or ""
        before = self._context_text(context, language) + request.prefix + request.prompt + indent
        return Document(before + request.suffix, len(before), indent, language)

    # -- client context --------------------------------------------------------------------------------------
    def remember(self, client: str, chunks: Sequence[ExtraChunk]) -> _ClientContext:
        """The client's context, with these chunks added (the oldest dropped beyond CHUNKS_PER_CLIENT)."""
        context = self._contexts.pop(client, None) or _ClientContext()
        self._contexts[client] = context
        while len(self._contexts) > CLIENTS_KEPT:
            self._contexts.popitem(last=False)
        for chunk in chunks:
            key = f"{chunk.filename}\0{chunk.text}"
            if key in context.chunks:
                context.chunks.move_to_end(key)
                continue
            language = language_for_path(chunk.filename) if chunk.filename else None
            parses = language is None or parse_error_count(chunk.text, language) == 0
            context.chunks[key] = _Chunk(chunk.text, language, parses)
            while len(context.chunks) > CHUNKS_PER_CLIENT:
                context.chunks.popitem(last=False)
        return context

    @staticmethod
    def _language(request: FimRequest, context: _ClientContext) -> str | None:
        """The request's own file name, else the language most of the client's other files are in (llama.vim
        and the Ollama clients send no file name for the document itself)."""
        if request.filename:
            return language_for_path(request.filename)
        counts = collections.Counter(chunk.language for chunk in context.chunks.values() if chunk.language)
        return counts.most_common(1)[0][0] if counts else None

    @staticmethod
    def _context_text(context: _ClientContext, language: str | None) -> str:
        """The client's chunks above the document, oldest first: the canvas keeps the nearest context within
        ``context_tokens``, so the most recent chunk is the last one cut."""
        usable = [
            chunk.text.rstrip("\n") + "\n\n"
            for chunk in context.chunks.values()
            if chunk.parses and chunk.language == language and chunk.text.strip()
        ]
        return "".join(usable)
