"""The one model worker of the servers (LSP and HTTP): a thread that owns the Infiller, loads it, batches
completions and runs rewrites. It knows no protocol; each front end turns its requests into jobs here.

The protocol thread never touches the model: it submits work here and awaits the returned future. The
infill package (and with it torch) is imported lazily on this thread, so the server answers ``initialize``
while the model loads.

Staleness is checked three times: before a task runs, between denoising steps (``should_stop``; for a batch
of completions also per request, so one that goes stale leaves the batch and stops costing forward passes),
and before its result is handed back; stale or cancelled work ends with ``Cancelled``.
"""

from __future__ import annotations

import collections
import dataclasses
import logging
import queue
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, InvalidStateError
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Generic, Literal, TypeVar

from infill.errors import Cancelled, InfillError, ModelLoadError

if TYPE_CHECKING:
    from infill.engine.types import DecodeConfig
    from infill.infiller import Edit, Infiller

logger = logging.getLogger(__name__)

T = TypeVar("T")
WorkerState = Literal["idle", "loading", "ready", "busy", "error"]
StatusCallback = Callable[[WorkerState, str | None], None]
StopCheck = Callable[[], bool]
# A rewrite-style task: (infiller, decode config, should_stop) -> result.
ModelCall = Callable[["Infiller", "DecodeConfig", StopCheck], T]


@dataclass(frozen=True)
class ModelSpec:
    """Everything that decides which model the worker holds; a change of it means a reload."""

    model: str | None
    device: str | None
    trust_remote_code: bool
    quantize: str | None = None  # `infill serve --quantize` (infill.models.quantize)


@dataclass(frozen=True)
class SamplerOverrides:
    """User overrides of the model's own sampler defaults (None keeps the model's value)."""

    steps: int | None = None
    threshold: float | None = None


@dataclass(frozen=True)
class CompletionJob:
    """Mirror of ``infill.infiller.CompletionRequest``, built without importing the model stack."""

    text: str
    offset: int
    language: str | None
    mode: Literal["auto", "line", "block", "function"] = "auto"
    max_tokens: int | None = None
    num_candidates: int = 1
    trigger: Literal["automatic", "invoked"] = "invoked"


@dataclass
class _Task(Generic[T]):
    label: str
    is_stale: StopCheck
    overrides: SamplerOverrides
    future: Future[T] = field(default_factory=Future)

    def stale(self) -> bool:
        return self.future.cancelled() or self.is_stale()


@dataclass
class _Complete(_Task["list[Edit]"]):
    job: CompletionJob | None = None


@dataclass
class _Call(_Task[Any]):
    call: ModelCall[Any] | None = None


@dataclass(frozen=True)
class _Load:
    spec: ModelSpec


@dataclass(frozen=True)
class _Threads:
    threads: int | None  # None: auto, by the model's size


_CLOSE = object()


def _settle(future: Future[Any], *, result: Any = None, error: BaseException | None = None) -> None:
    """Resolve a future unless the protocol thread cancelled it meanwhile (then nobody waits for it)."""
    try:
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(result)
    except InvalidStateError:
        pass


class ModelWorker:
    """Owns the Infiller on one thread; see the module docstring."""

    def __init__(self, on_status: StatusCallback, batch_window_s: float = 0.004, max_batch: int = 8) -> None:
        self._on_status = on_status
        self._batch_window_s = batch_window_s
        self._max_batch = max_batch
        self._queue: queue.SimpleQueue[object] = queue.SimpleQueue()
        # Tasks taken off the queue while collecting a batch that did not fit in it, in arrival order.
        self._backlog: collections.deque[object] = collections.deque()
        self._thread: threading.Thread | None = None
        self._infiller: Infiller | None = None
        self._closing = False
        self.state: WorkerState = "idle"
        self.error: str | None = None
        self.spec: ModelSpec | None = None
        self._threads: int | None = None

    # -- called from the protocol thread -------------------------------------------------------------------
    def load(self, spec: ModelSpec) -> None:
        """(Re)load the model; tasks submitted afterwards run on the new one."""
        self.spec = spec
        self._put(_Load(spec))

    def set_threads(self, threads: int | None) -> None:
        """torch's CPU threads for the model (None: auto); torch keeps them per OS thread, so the worker
        thread sets them itself, now if a model is loaded and after every load."""
        self._put(_Threads(threads))

    def complete(
        self, job: CompletionJob, overrides: SamplerOverrides, is_stale: StopCheck, label: str
    ) -> Future[list[Edit]]:
        task = _Complete(label=label, is_stale=is_stale, overrides=overrides, job=job)
        self._put(task)
        return task.future

    def call(
        self, call: ModelCall[T], overrides: SamplerOverrides, is_stale: StopCheck, label: str
    ) -> Future[T]:
        task = _Call(label=label, is_stale=is_stale, overrides=overrides, call=call)
        self._put(task)
        return task.future

    def close(self) -> None:
        """Stop: the running task ends at its next denoising step (``should_stop``), queued ones are
        cancelled, and the thread exits."""
        self._closing = True
        self._put(_CLOSE)

    def _put(self, item: object) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="infill-model-worker", daemon=True)
            self._thread.start()
        self._queue.put(item)

    # -- the worker thread -----------------------------------------------------------------------------------
    def _status(self, state: WorkerState, message: str | None = None) -> None:
        if state == self.state and message is None:
            return
        self.state = state
        try:
            self._on_status(state, message)
        except Exception:
            logger.exception("status callback failed")

    def _next(self, block: bool) -> object | None:
        if self._backlog:
            return self._backlog.popleft()
        try:
            return self._queue.get(block=block)
        except queue.Empty:
            return None

    def _run(self) -> None:
        while True:
            item = self._next(block=False)
            if item is None:
                if self.state == "busy":
                    self._status("ready")
                item = self._next(block=True)
            if item is _CLOSE:
                return
            try:
                self._handle(item)
            except Exception:
                # A bug in one task must not kill the worker: the server has to keep serving.
                logger.exception("model worker task failed")

    def _handle(self, item: object) -> None:
        if isinstance(item, _Load):
            self._load(item.spec)
            return
        if isinstance(item, _Threads):
            self._threads = item.threads
            if self._infiller is not None:
                self._use_threads()
            return
        assert isinstance(item, _Task)
        if self._closing:
            _settle(item.future, error=Cancelled("the server is shutting down"))
            return
        if item.stale():
            _settle(item.future, error=Cancelled("the document changed before the model got to this request"))
            return
        if self._infiller is None:
            _settle(item.future, error=ModelLoadError(self.error or "no model is loaded"))
            return
        self._status("busy")
        if isinstance(item, _Complete):
            self._complete_batch(self._collect_batch(item))
        elif isinstance(item, _Call):
            self._run_call(item)

    def _load(self, spec: ModelSpec) -> None:
        self._infiller = None
        self._status("loading", f"loading model {spec.model or '(default)'}")
        started = time.perf_counter()
        try:
            from infill.infiller import Infiller  # torch comes in here, on this thread only

            self._infiller = Infiller.load(
                spec.model,
                device=spec.device,
                trust_remote_code=spec.trust_remote_code,
                quantize=spec.quantize,
            )
        except InfillError as error:
            self.error = str(error)
        except Exception as error:
            logger.exception("model load failed")
            self.error = f"{type(error).__name__}: {error}"
        if self._infiller is None:
            logger.error("model load failed: %s", self.error)
            self._status("error", self.error)
            return
        self.error = None
        logger.info("model loaded in %.0f ms: %s", (time.perf_counter() - started) * 1000, spec)
        self._use_threads()
        self._status("ready", "model loaded")

    def _use_threads(self) -> None:
        from infill.models.devices import use_threads

        assert self._infiller is not None
        use_threads(self._threads, self._infiller.engine.loaded.model)

    def _collect_batch(self, first: _Complete) -> list[_Complete]:
        """The first completion plus those arriving within the batch window with the same sampler settings."""
        batch = [first]
        deadline = time.monotonic() + self._batch_window_s
        while len(batch) < self._max_batch and not self._backlog:
            try:
                item = self._queue.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                break
            if isinstance(item, _Complete) and item.overrides == first.overrides:
                batch.append(item)
            else:
                self._backlog.append(item)
        return batch

    def _config(self, overrides: SamplerOverrides) -> DecodeConfig:
        assert self._infiller is not None
        config = self._infiller.engine.default_config()
        changes = {name: value for name, value in dataclasses.asdict(overrides).items() if value is not None}
        return dataclasses.replace(config, **changes)

    def _complete_batch(self, batch: Sequence[_Complete]) -> None:
        from infill.infiller import CompletionRequest

        assert self._infiller is not None
        live = [task for task in batch if not task.stale()]
        for task in batch:
            if task not in live:
                _settle(task.future, error=Cancelled("superseded before the model started"))
        if not live:
            return
        requests = [CompletionRequest(**dataclasses.asdict(task.job)) for task in live if task.job]
        config = self._config(live[0].overrides)
        started = time.perf_counter()
        try:
            # A request that goes stale leaves the batch at the next step; the others decode on.
            results = self._infiller.complete_many(
                requests,
                config,
                should_stop=lambda: self._all_stale(live),
                stale=lambda: [self._closing or task.stale() for task in live],
            )
        except Cancelled as error:
            logger.debug(
                "completion id=%s cancelled after %.0f ms (stop flag)",
                ",".join(task.label for task in live),
                (time.perf_counter() - started) * 1000,
            )
            for task in live:
                _settle(task.future, error=error)
            return
        except InfillError as error:
            if len(live) == 1:
                _settle(live[0].future, error=error)
                return
            # One bad request (e.g. too long for the window) must not fail its batch-mates: retry one by one.
            logger.info("batch of %d failed (%s); retrying one by one", len(live), error)
            for task in live:
                self._complete_batch([task])
            return
        except Exception as error:  # a bug below us: fail these requests, keep the worker alive
            logger.exception("completion batch failed")
            for task in live:
                _settle(task.future, error=error)
            return
        elapsed_ms = (time.perf_counter() - started) * 1000
        for task, edits in zip(live, results, strict=True):
            tokens = len(edits[0].tokens) if edits else 0
            # One line per completion, at debug: an editor asks on every pause in typing (issue 16).
            logger.debug(
                "completion id=%s batch=%d candidates=%d tokens=%d max_steps=%d ms=%.0f%s",
                task.label,
                len(live),
                len(edits),
                tokens,
                config.steps,
                elapsed_ms,
                " (stale, dropped)" if task.stale() else "",
            )
            if task.stale():
                _settle(task.future, error=Cancelled("the document changed while the model was working"))
            else:
                _settle(task.future, result=edits)

    def _run_call(self, task: _Call) -> None:
        assert self._infiller is not None and task.call is not None
        started = time.perf_counter()
        try:
            result = task.call(self._infiller, self._config(task.overrides), lambda: self._all_stale([task]))
        except Cancelled as error:
            logger.info(
                "rewrite id=%s cancelled after %.0f ms (stop flag)",
                task.label,
                (time.perf_counter() - started) * 1000,
            )
            _settle(task.future, error=error)
            return
        except InfillError as error:
            _settle(task.future, error=error)
            return
        except Exception as error:
            logger.exception("rewrite %s failed", task.label)
            _settle(task.future, error=error)
            return
        logger.info("rewrite id=%s ms=%.0f", task.label, (time.perf_counter() - started) * 1000)
        if task.stale():
            _settle(task.future, error=Cancelled("the document changed while the model was working"))
        else:
            _settle(task.future, result=result)

    def _all_stale(self, tasks: Sequence[_Task[Any]]) -> bool:
        return self._closing or all(task.stale() for task in tasks)
