"""A request that goes stale while its batch decodes leaves the batch at the next denoising step: later
forward passes no longer carry its rows, it ends Cancelled, and its batch-mates decode exactly as alone."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest
import torch

from infill.engine.healing import HealedSpan, HealingConstraint
from infill.engine.sampler import denoise
from infill.engine.types import DecodeConfig
from infill.errors import Cancelled
from infill.models import LoadedModel, load_model
from infill.worker import CompletionJob, ModelWorker, SamplerOverrides
from tests.test_lsp_worker import TIMEOUT_S
from tests.test_sampler import make_batch

# Blocks of 4 with a context cache refreshed every 3 steps: stale rows must leave the cache too.
CONFIG = DecodeConfig(
    strategy="blocks", block_size=4, steps=12, block_steps=0, threshold=1.0, cache_refresh=3
)


class CountingModel:
    """The real model; records the batch size (rows) of every logits call, cached or not."""

    def __init__(self, model: Any) -> None:
        self.model = model
        self.caches_context = model.caches_context
        self.rows: list[int] = []

    def logits(
        self, ids: torch.Tensor, attention_mask: torch.Tensor, positions: torch.Tensor
    ) -> torch.Tensor:
        self.rows.append(len(ids))
        return self.model.logits(ids, attention_mask, positions)

    def logits_with_cache(
        self, ids: torch.Tensor, attention_mask: torch.Tensor, positions: torch.Tensor, cache: Any
    ):
        self.rows.append(len(ids))
        return self.model.logits_with_cache(ids, attention_mask, positions, cache)


@pytest.fixture(scope="module")
def loaded(modernbert_dir: Path) -> LoadedModel:
    return load_model(modernbert_dir)


def decode(loaded: LoadedModel, spans: list[int], **kwargs: Any) -> tuple[Any, CountingModel]:
    ids, editable, attention = make_batch(loaded, spans)
    model = CountingModel(loaded.model)
    return denoise(model, ids, editable, attention, loaded.special, CONFIG, **kwargs), model  # type: ignore[arg-type]


def test_a_row_that_goes_stale_leaves_later_forward_passes_and_the_others_decode_as_alone(
    loaded: LoadedModel,
) -> None:
    assert loaded.model.caches_context
    flipped_at: list[int] = []

    def row_stale(model: CountingModel) -> list[bool]:
        if len(model.rows) >= 2 and not flipped_at:  # after two forward passes of the whole batch
            flipped_at.append(len(model.rows))
        return [False, bool(flipped_at), False]

    spans = [12, 8, 10]
    ids, editable, attention = make_batch(loaded, spans)
    model = CountingModel(loaded.model)
    out = denoise(
        model,  # type: ignore[arg-type]
        ids,
        editable,
        attention,
        loaded.special,
        CONFIG,
        row_stale=lambda: row_stale(model),
    )
    assert flipped_at == [2] and model.rows[:2] == [3, 3]
    later = model.rows[2:]
    assert later and max(later) <= 2  # the stale row is in no forward pass after it went stale
    assert out.dropped == [1]
    assert (out.ids[1][editable[1]] == loaded.special.mask_id).all()  # left undecoded

    never, _ = decode(loaded, spans)
    alone, _ = decode(loaded, [12])
    for row in (0, 2):
        assert torch.equal(out.ids[row], never.ids[row])
        assert torch.equal(out.commit_step[row], never.commit_step[row])
    assert torch.equal(out.ids[0], alone.ids[0])


def test_cancelled_once_every_row_is_stale_before_the_next_forward_pass(loaded: LoadedModel) -> None:
    ids, editable, attention = make_batch(loaded, [12, 8])
    model = CountingModel(loaded.model)
    with pytest.raises(Cancelled):
        denoise(
            model,  # type: ignore[arg-type]
            ids,
            editable,
            attention,
            loaded.special,
            CONFIG,
            row_stale=lambda: [len(model.rows) >= 1, len(model.rows) >= 2],
        )
    assert model.rows == [2, 1]


def test_a_healing_constraint_keeps_the_spans_of_the_kept_rows_renumbered(loaded: LoadedModel) -> None:
    texts: Any = object()
    spans = [HealedSpan(0, 3, 9, "fo"), HealedSpan(2, 4, 8, "ba")]
    kept = HealingConstraint(texts, spans, loaded.special.mask_id).rows([1, 2])
    assert kept.spans == [HealedSpan(1, 4, 8, "ba")]


TEXT = "def add(a, b):\n    return a + b\n\n\nresult = add(1, \n"
OTHER = "def scale(x, factor):\n    return \n"


def test_the_worker_cancels_a_request_gone_stale_mid_batch_and_answers_the_other_as_alone(
    worker: ModelWorker, monkeypatch: pytest.MonkeyPatch
) -> None:
    overrides = SamplerOverrides(steps=16, threshold=1.0)
    keep = CompletionJob(text=TEXT, offset=len(TEXT) - 1, language="python", max_tokens=16)
    drop = CompletionJob(text=OTHER, offset=len(OTHER) - 1, language="python", max_tokens=16)
    alone = worker.complete(keep, overrides, lambda: False, "alone").result(TIMEOUT_S)

    model = worker._infiller.engine.loaded.model  # type: ignore[union-attr]
    rows: list[int] = []
    for name in ("logits", "logits_with_cache"):
        real = getattr(model, name)

        def spy(ids: torch.Tensor, *args: Any, real: Any = real) -> Any:
            rows.append(len(ids))
            return real(ids, *args)

        monkeypatch.setattr(model, name, spy)

    # Hold the worker so that both requests are queued, then batched together.
    release = threading.Event()
    held = worker.call(lambda *_: release.wait(TIMEOUT_S), SamplerOverrides(), lambda: False, "hold")
    flipped_at: list[int] = []

    def stale_after_two_calls() -> bool:
        if len(rows) >= 2 and not flipped_at:
            flipped_at.append(len(rows))
        return bool(flipped_at)

    kept = worker.complete(keep, overrides, lambda: False, "keep")
    dropped = worker.complete(drop, overrides, stale_after_two_calls, "drop")
    release.set()
    held.result(TIMEOUT_S)
    with pytest.raises(Cancelled):
        dropped.result(TIMEOUT_S)
    assert kept.result(TIMEOUT_S) == alone
    later = rows[flipped_at[0] :]
    # Both requests' canvases decoded together (as many each), then only those of "keep".
    assert later and set(later) == {rows[0] // 2} and rows[0] >= 2
