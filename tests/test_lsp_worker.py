"""The model worker in-process with a real Infiller on the tiny ModernBERT: batching, the stop flag between
denoising steps, staleness, and load failures."""

from __future__ import annotations

import logging
import threading
from concurrent.futures import Future
from typing import Any

import pytest

from infill.errors import Cancelled, ModelLoadError
from infill.worker import CompletionJob, ModelSpec, ModelWorker, SamplerOverrides
from tests.conftest import StatusLog

TEXT = "def add(a, b):\n    return a + b\n\n\nresult = add(1, \n"
TIMEOUT_S = 120


def job(max_tokens: int = 4) -> CompletionJob:
    return CompletionJob(text=TEXT, offset=len(TEXT) - 1, language="python", max_tokens=max_tokens)


def never_stale() -> bool:
    return False


def test_concurrent_completions_share_one_batch(
    worker: ModelWorker, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="infill.worker")
    overrides = SamplerOverrides(steps=4)
    futures = [worker.complete(job(), overrides, never_stale, f"req-{i}") for i in range(4)]
    results = [future.result(TIMEOUT_S) for future in futures]
    assert all(isinstance(edits, list) for edits in results)
    batches = [
        int(r.message.split("batch=")[1].split()[0])
        for r in caplog.records
        if "completion id=req-" in r.message
    ]
    assert len(batches) == 4 and max(batches) >= 2  # the first may run alone; the rest arrive while it runs


def test_the_stop_flag_is_honoured_between_denoising_steps(worker: ModelWorker) -> None:
    # Threshold 1.0 commits one token per step on the random model, so 32 tokens take about 32 steps.
    overrides = SamplerOverrides(steps=32, threshold=1.0)
    checks = 0

    def count_checks() -> bool:
        nonlocal checks
        checks += 1
        return False

    worker.complete(job(max_tokens=32), overrides, count_checks, "full").result(TIMEOUT_S)
    assert checks >= 10  # asked between steps, not only before and after
    checks = 0

    def stale_after_five_checks() -> bool:
        nonlocal checks
        checks += 1
        return checks > 5

    future: Future[Any] = worker.complete(job(max_tokens=32), overrides, stale_after_five_checks, "stop-me")
    with pytest.raises(Cancelled):
        future.result(TIMEOUT_S)
    assert checks <= 7  # stopped at the next check instead of running the remaining steps


def test_stale_work_never_reaches_the_model(worker: ModelWorker) -> None:
    future = worker.complete(job(), SamplerOverrides(), lambda: True, "stale")
    with pytest.raises(Cancelled):
        future.result(TIMEOUT_S)


def test_rewrite_calls_run_on_the_worker_thread(worker: ModelWorker) -> None:
    def call(infiller: Any, config: Any, should_stop: Any) -> str:
        return threading.current_thread().name

    assert (
        worker.call(call, SamplerOverrides(), never_stale, "call").result(TIMEOUT_S) == "infill-model-worker"
    )


def test_a_failed_load_fails_tasks_with_its_message() -> None:
    status = StatusLog()
    failing = ModelWorker(status)
    failing.load(ModelSpec("/nonexistent/model", "cpu", False))
    status.wait_for("error")
    try:
        assert failing.state == "error" and failing.error
        with pytest.raises(ModelLoadError, match="nonexistent"):
            failing.complete(job(), SamplerOverrides(), never_stale, "x").result(TIMEOUT_S)
        assert [state for state, _ in status.states] == ["loading", "error"]
    finally:
        failing.close()


def test_a_failing_call_fails_its_future_and_the_worker_goes_on(worker: ModelWorker) -> None:
    def broken(infiller: Any, config: Any, should_stop: Any) -> None:
        raise RuntimeError("bug below the server")

    with pytest.raises(RuntimeError, match="bug below"):
        worker.call(broken, SamplerOverrides(), never_stale, "broken").result(TIMEOUT_S)
    assert (
        worker.complete(job(), SamplerOverrides(steps=4), never_stale, "after").result(TIMEOUT_S) is not None
    )


def _worker_threads(worker: ModelWorker) -> int:
    """torch's thread count as the worker thread sees it (torch keeps it per OS thread)."""
    import torch

    return worker.call(lambda *_: torch.get_num_threads(), SamplerOverrides(), never_stale, "threads").result(
        TIMEOUT_S
    )


def test_the_worker_thread_runs_the_model_with_the_threads_setting(worker: ModelWorker) -> None:
    from infill.models.devices import auto_threads

    # Auto for the tiny model: one thread (or OMP_NUM_THREADS, which the test run may set).
    assert _worker_threads(worker) == auto_threads(1_000)
    try:
        worker.set_threads(2)
        assert _worker_threads(worker) == 2
    finally:
        worker.set_threads(None)
    assert _worker_threads(worker) == auto_threads(1_000)
