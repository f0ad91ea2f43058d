"""InfillEngine: text in, text out for gaps between a prefix and a suffix.

Per request: trim the context to the context cap, heal a word cut by the cursor, optionally estimate the
span length with one forward pass (DecodeConfig.estimate_length; never for line fills), then decode one or
more canvases (batched across requests) with the pure sampler and rank the resulting texts.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import TypeVar, get_args

import torch

from infill.engine.block_decoding import PrefixCaches, block_denoise, block_prompt, framing_length
from infill.engine.candidates import ScoredCandidate, newline_token_ids, rank_candidates, span_candidate
from infill.engine.canvas import Canvas, Context, build_canvas, context_budget, stack_canvases, trim_context
from infill.engine.expand_delete import fill_expand_delete
from infill.engine.healing import HealedSpan, HealingConstraint, TokenTexts, heal_prefix
from infill.engine.length import (
    CHEAP_CANVAS,
    canvas_lengths,
    end_of_span_probabilities,
    estimate_span_length,
    growing_lengths,
    length_ladder,
    next_growing_length,
    unestimated_lengths,
)
from infill.engine.sampler import denoise
from infill.engine.types import DecodeConfig, FillRequest, FillResult, Strategy
from infill.errors import Cancelled, InputError, ModelLoadError
from infill.models import LoadedModel, load_model
from infill.models.adapters import parameter_count
from infill.models.block_model import BlockDiffusionModel

logger = logging.getLogger(__name__)

_Item = TypeVar("_Item")

# Context (prefix + suffix tokens) shown to the model when neither the caller nor generation_config.json
# sets context_tokens: every pass attends over all of it, so bigger models get less (a 7B model with
# 2,000 tokens of context is what Fast-dLLM's numbers are for); small models take their whole window.
CONTEXT_TOKENS_BY_SIZE = ((100_000_000, 8192), (2_000_000_000, 4096))
LARGE_MODEL_CONTEXT_TOKENS = 2048


def default_context_tokens(parameters: int | None) -> int:
    """The context cap for a model of ``parameters`` (unknown: treated as large)."""
    for below, tokens in CONTEXT_TOKENS_BY_SIZE:
        if parameters is not None and parameters < below:
            return tokens
    return LARGE_MODEL_CONTEXT_TOKENS


@dataclass(frozen=True)
class _Prepared:
    """A request with its context trimmed and its cut word healed."""

    request: FillRequest
    context: Context
    removed: str  # healed text: the completion must start with it (and it is dropped from the result)
    # Longest canvas: max_tokens plus the healed tokens, whose prefix positions it takes over (so it fits).
    span_budget: int


@dataclass(frozen=True)
class _Row:
    """One canvas to decode: which request it serves and how long its span is."""

    request: int
    span_length: int
    steps: int  # config.steps is for a full max_tokens canvas: a shorter one keeps the tokens per step
    estimated: bool = False  # the length came from the length estimate (so an overflow is retried)
    grows: bool = False  # a canvas_share canvas: an overflow is retried on twice the canvas (length.py)


# Each decoded canvas with its candidate (None when it could not honour token healing).
_Decoded = list[tuple[_Row, ScoredCandidate | None]]


@dataclass
class _Job:
    """One call of fill: its prepared requests, settings, cancellation and the results being filled in."""

    prepared: list[_Prepared]
    config: DecodeConfig
    should_stop: Callable[[], bool] | None
    stale: Callable[[], Sequence[bool]] | None = None  # per request: its decoding may stop (see fill)
    results: list[FillResult] = field(init=False)

    def __post_init__(self) -> None:
        self.results = [FillResult() for _ in self.prepared]

    def check_stop(self) -> None:
        if self.should_stop is not None and self.should_stop():
            raise Cancelled("Cancelled")

    def count_passes(self, requests: set[int], passes: int) -> None:
        for request in requests:
            self.results[request].forward_passes += passes


class InfillEngine:
    """Owns a loaded model; ``fill`` turns FillRequests into ranked text candidates."""

    def __init__(self, loaded: LoadedModel, *, max_batch_rows: int = 16) -> None:
        self.loaded = loaded
        self.max_batch_rows = max_batch_rows
        # Built with the engine, not on the first completion: for a 150k vocabulary it takes a moment.
        self.token_texts = TokenTexts(loaded.tokenizer, loaded.special)
        # The tokens that end a line fill (the sampler's line stop), from the tokenizer, in one place.
        self.newline_ids = torch.tensor(newline_token_ids(self.token_texts.texts), dtype=torch.long)
        self.context_tokens = default_context_tokens(parameter_count(loaded.model))
        # Block-diffusion models decode block by block (block_decoding.py), each request on its own, with
        # their prompts' key/value caches kept between calls (the previous keystroke's prefix is reused).
        self.block_model = loaded.model if isinstance(loaded.model, BlockDiffusionModel) else None
        self.prefix_caches = PrefixCaches()

    @classmethod
    def from_pretrained(
        cls,
        model: str | Path | None = None,
        *,
        device: str | None = None,
        trust_remote_code: bool = False,
        quantize: str | None = None,
    ) -> InfillEngine:
        return cls(load_model(model, device=device, trust_remote_code=trust_remote_code, quantize=quantize))

    def default_config(self) -> DecodeConfig:
        """DecodeConfig() updated with the sampler defaults stored with the weights."""
        known = {f.name for f in fields(DecodeConfig)}
        defaults = dict(self.loaded.generation_defaults)
        for key in sorted(set(defaults) - known):
            logger.warning("Ignoring unknown generation default %r of model %s", key, self.loaded.name)
            del defaults[key]
        config = replace(DecodeConfig(context_tokens=self.context_tokens), **defaults)
        try:
            check_config(config)
        except InputError as exc:
            raise ModelLoadError(f"Bad generation defaults in model {self.loaded.name}: {exc}") from exc
        return config

    def fill(
        self,
        requests: Sequence[FillRequest],
        config: DecodeConfig | None = None,
        should_stop: Callable[[], bool] | None = None,
        stale: Callable[[], Sequence[bool]] | None = None,
    ) -> list[FillResult]:
        """One FillResult per request, candidates best first; raises Cancelled when should_stop() is true.

        ``stale()`` (one flag per request), checked between denoising steps, drops a stale request's
        canvases from the batch, so the others stop paying for it; its result has no candidates (the caller
        answers it Cancelled). Block and expand/delete models decode request by request and ignore it.

        FillResult.forward_passes counts the passes a request went through (shared with the requests
        batched with it); generated_tokens the content tokens of its best candidate.
        """
        config = config if config is not None else self.default_config()
        check_config(config)
        if self.loaded.expand_delete is not None:  # the model decides each fill's length itself
            for request in requests:
                check_request(request)
            return fill_expand_delete(self.loaded, self.context_tokens, requests, config, should_stop)
        started = time.perf_counter()
        job = _Job([self._prepare(request, config) for request in requests], config, should_stop, stale)
        rows = self._plan_rows(job, self._estimate_lengths(job))
        decoded = self._decode_rows(job, rows, seed_offset=0)
        retries = self._retries(job, decoded)
        planned = len(rows)
        while retries:  # at most once for an estimate; for a growing canvas, until it reaches the budget
            retried = {row.request for row in retries}
            decoded = [(r, c) for r, c in decoded if c is not None and (c.ended or r.request not in retried)]
            again = self._decode_rows(job, retries, seed_offset=planned)
            planned += len(retries)
            decoded += again
            retries = self._retries(job, again)
        elapsed_ms = (time.perf_counter() - started) * 1000
        for index, result in enumerate(job.results):
            mine = [candidate for row, candidate in decoded if row.request == index and candidate]
            wanted = job.prepared[index].request.num_candidates or config.num_candidates
            ranked = rank_candidates(mine, wanted)
            result.candidates = [item.candidate for item in ranked]
            result.generated_tokens = ranked[0].generated_tokens if ranked else 0
            result.elapsed_ms = elapsed_ms
        logger.debug(  # per request: at debug, or a server logs every keystroke
            "fill: %d requests, %d canvases, %d tokens, %d forward passes, %.0f ms",
            len(requests),
            planned,
            sum(r.generated_tokens for r in job.results),
            max((r.forward_passes for r in job.results), default=0),
            elapsed_ms,
        )
        return job.results

    def _prepare(self, request: FillRequest, config: DecodeConfig) -> _Prepared:
        check_request(request)
        loaded = self.loaded
        cap = config.context_tokens if config.context_tokens is not None else self.context_tokens
        budget = min(cap, context_budget(loaded.special, request.max_tokens, loaded.max_positions))
        if self.block_model is not None:  # the last block may run past max_tokens; the prompt's framing
            budget = max(0, budget - self.block_model.block_size - framing_length(loaded.special))
        context = trim_context(request.prefix, request.suffix, loaded.tokenizer.encode, budget)
        # Healing constrains canvas positions of the bidirectional sampler; a block model continues the
        # prefix's tokens as they are.
        prefix_ids, removed = (
            heal_prefix(context.prefix_ids, self.token_texts)
            if self.block_model is None
            else (context.prefix_ids, "")
        )
        healed_tokens = len(context.prefix_ids) - len(prefix_ids)
        return _Prepared(
            request, replace(context, prefix_ids=prefix_ids), removed, request.max_tokens + healed_tokens
        )

    def _estimate_lengths(self, job: _Job) -> list[list[tuple[int, int]] | None]:
        """Per request, ``(canvas length, estimated span length)`` for each rung of its length ladder, from
        one batched forward pass over fully masked canvases (see length.py); None where not estimated
        (estimate_length off, line fills, canvases too short to be worth it)."""
        probes = [
            (i, length)
            for i, item in enumerate(job.prepared)
            if job.config.estimate_length
            and self.block_model is None
            and item.request.mode != "line"
            and item.span_budget > CHEAP_CANVAS
            for length in length_ladder(item.span_budget)
        ]
        probed = {i for i, _ in probes}
        estimates: list[list[tuple[int, int]] | None] = [
            [] if i in probed else None for i in range(len(job.prepared))
        ]
        special = self.loaded.special
        for chunk in _chunks(probes, self.max_batch_rows):
            job.check_stop()
            canvases = [self._canvas(job.prepared[i], length) for i, length in chunk]
            ids, attention_mask, editable = stack_canvases(canvases, special, self.loaded.device)
            end_probs = end_of_span_probabilities(self.loaded.model, ids, attention_mask, editable, special)
            for row, (i, length) in enumerate(chunk):
                span = end_probs[row, :length].tolist()
                minimum = 1 if job.prepared[i].removed else 0  # a healed span holds at least the healed text
                rungs = estimates[i]
                assert rungs is not None
                rungs.append((length, estimate_span_length(span, minimum)))
            job.count_passes({i for i, _ in chunk}, 1)
        return estimates

    def _plan_rows(self, job: _Job, estimates: list[list[tuple[int, int]] | None]) -> list[_Row]:
        """The canvases to decode: greedy decodes distinct lengths (the estimate's, else the full budget
        then shorter ones), sampling draws every candidate; a request's first ``skip_candidates`` are left
        out."""
        config = job.config
        rows: list[_Row] = []
        for i, item in enumerate(job.prepared):
            rungs = estimates[i]
            budget = item.span_budget
            # A block model's span ends where it stops: one budget, never grown.
            grows = rungs is None and config.canvas_share < 1 and item.request.mode != "line"
            grows = grows and self.block_model is None
            if grows:
                lengths = growing_lengths(budget, config.canvas_share)[:1]
            else:
                lengths = unestimated_lengths(budget) if rungs is None else canvas_lengths(rungs, budget)
            if self.block_model is not None:
                lengths = [budget]
            skip = item.request.skip_candidates
            end = skip + (item.request.num_candidates or config.num_candidates)
            # Greedy decoding of one length always gives the same text: only distinct lengths add candidates.
            if config.temperature <= 0:
                end = min(end, len(lengths))
            for k in range(skip, end):
                length = lengths[k % len(lengths)]
                steps = math.ceil(config.steps * length / budget)
                rows.append(_Row(i, length, steps, estimated=rungs is not None, grows=grows))
        return rows

    def _retries(self, job: _Job, decoded: _Decoded) -> list[_Row]:
        """Canvases to decode again, longer: a span that filled its estimated or growing canvas without
        ending was probably cut short by it. An estimate is retried on the full budget, a growing canvas on
        the next of its growing_lengths (greedy: one retry per request, and none where a full-budget canvas
        was decoded already). Shorter canvases planned without an estimate are alternatives, not estimates:
        they are not retried."""
        done = {row.request for row, _ in decoded if row.span_length == job.prepared[row.request].span_budget}
        retries: list[_Row] = []
        for row, candidate in decoded:
            retried = row.estimated or row.grows
            if candidate is None or candidate.ended or not retried or row.request in done:
                continue
            if job.config.temperature <= 0:
                done.add(row.request)
            budget = job.prepared[row.request].span_budget
            length = next_growing_length(row.span_length, budget) if row.grows else budget
            steps = math.ceil(job.config.steps * length / budget)
            retries.append(_Row(row.request, length, steps, grows=row.grows))
        return retries

    def _decode_rows(self, job: _Job, rows: list[_Row], seed_offset: int) -> _Decoded:
        """Decode ``rows`` in batches of at most max_batch_rows (each batch has its own seed)."""
        decoded: _Decoded = []
        for index, chunk in enumerate(_chunks(rows, self.max_batch_rows)):
            seed = None if job.config.seed is None else job.config.seed + seed_offset + index
            decoded += self._decode(job, chunk, replace(job.config, seed=seed))
        return decoded

    def _canvas(self, item: _Prepared, span_length: int) -> Canvas:
        return build_canvas(item.context, span_length, self.loaded.special)

    def _decode(self, job: _Job, rows: list[_Row], config: DecodeConfig) -> _Decoded:
        """Decode ``rows`` in one batch of shared forward passes (block models: one after another)."""
        special = self.loaded.special
        if self.block_model is not None:
            return [(row, self._decode_blocks(job, row, config)) for row in rows]
        items = [job.prepared[row.request] for row in rows]
        canvases = [self._canvas(item, row.span_length) for item, row in zip(items, rows, strict=True)]
        ids, attention_mask, editable = stack_canvases(canvases, special, self.loaded.device)
        healed = [
            HealedSpan(index, canvas.span_start, canvas.span_start + canvas.span_length, item.removed)
            for index, (item, canvas) in enumerate(zip(items, canvases, strict=True))
            if item.removed
        ]
        constraint = HealingConstraint(self.token_texts, healed, special.mask_id) if healed else None
        stale = job.stale

        def row_stale() -> list[bool]:
            assert stale is not None
            flags = stale()
            return [bool(flags[row.request]) for row in rows]

        out = denoise(
            self.loaded.model,
            ids,
            editable,
            attention_mask,
            special,
            config,
            should_stop=job.should_stop,
            row_stale=None if stale is None else row_stale,
            constrain=constraint,
            row_steps=torch.tensor([row.steps for row in rows]),
            line_rows=torch.tensor([item.request.mode == "line" for item in items]),
            newline_ids=self.newline_ids,
        )
        job.count_passes({row.request for row in rows}, out.forward_passes)
        decoded: _Decoded = []
        for index, (row, item, canvas) in enumerate(zip(rows, items, canvases, strict=True)):
            if index in out.dropped:  # stale: left undecoded, no candidate
                decoded.append((row, None))
                continue
            span = slice(canvas.span_start, canvas.span_start + canvas.span_length)
            candidate = span_candidate(
                out.ids[index, span].tolist(),
                out.confidences[index, span].tolist(),
                self.loaded.tokenizer,
                special.end_of_span_id,
                removed=item.removed,
                line=item.request.mode == "line",
            )
            if candidate is None:
                logger.debug("Dropped a candidate that does not continue the healed text %r", item.removed)
            decoded.append((row, candidate))
        return decoded

    def _decode_blocks(self, job: _Job, row: _Row, config: DecodeConfig) -> ScoredCandidate | None:
        assert self.block_model is not None
        item = job.prepared[row.request]
        special = self.loaded.special
        line = item.request.mode == "line"
        prompt = block_prompt(item.context.prefix_ids, item.context.suffix_ids, special)
        out = block_denoise(
            self.block_model,
            prompt,
            row.span_length,
            special,
            config,
            should_stop=job.should_stop,
            stop_ids=self.newline_ids if line else None,
            caches=self.prefix_caches,
        )
        job.count_passes({row.request}, out.forward_passes)
        logger.debug(
            "block fill: %d prompt tokens, %d of them from the prefix cache, %d passes",
            len(prompt),
            out.cached_positions,
            out.forward_passes,
        )
        span = out.ids[: row.span_length]
        return span_candidate(
            span, out.confidences[: row.span_length], self.loaded.tokenizer, special.end_of_span_id, line=line
        )


# Counts and sizes that shape or index tensors (a block size of 8.5 would fail deep inside the sampler).
_INTEGER_SETTINGS = ("steps", "block_size", "block_steps", "num_candidates", "cache_refresh")
_OPTIONAL_INTEGER_SETTINGS = ("seed", "context_tokens")


def check_request(request: FillRequest) -> None:
    """Raise InputError for a FillRequest no decoding can honour."""
    if request.max_tokens < 1:
        raise InputError(f"max_tokens must be at least 1, not {request.max_tokens}")
    if (request.num_candidates is not None and request.num_candidates < 1) or request.skip_candidates < 0:
        raise InputError("a request needs num_candidates >= 1 and skip_candidates >= 0")


def check_config(config: DecodeConfig) -> None:
    """Raise InputError for a DecodeConfig the sampler cannot honour."""
    problems: list[str] = []
    not_numbers = ("strategy", "seed", "estimate_length", "context_tokens")
    numbers = {f.name: getattr(config, f.name) for f in fields(config) if f.name not in not_numbers}
    for name, value in numbers.items():
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise InputError(f"Bad decoding settings: {name} must be a number, not {value!r}")
    for name in (*_INTEGER_SETTINGS, *_OPTIONAL_INTEGER_SETTINGS):
        value = getattr(config, name)
        if value is None and name in _OPTIONAL_INTEGER_SETTINGS:
            continue
        if isinstance(value, bool) or not isinstance(value, int):
            raise InputError(f"Bad decoding settings: {name} must be an integer, not {value!r}")
    if not isinstance(config.estimate_length, bool):
        raise InputError(
            f"Bad decoding settings: estimate_length must be true or false, not {config.estimate_length!r}"
        )
    if config.strategy not in get_args(Strategy):
        problems.append(f"unknown strategy {config.strategy!r} (choose from {', '.join(get_args(Strategy))})")
    if config.steps < 1:
        problems.append(f"steps must be at least 1, not {config.steps}")
    if config.block_size < 1:
        problems.append(f"block_size must be at least 1, not {config.block_size}")
    if config.block_steps < 0:
        problems.append(f"block_steps must be >= 0, not {config.block_steps}")
    if not 0 < config.threshold <= 1:
        problems.append(f"threshold must be in (0, 1], not {config.threshold}")
    if not 0 <= config.remask < 1:
        problems.append(f"remask must be in [0, 1), not {config.remask}")
    if config.temperature < 0:
        problems.append(f"temperature must be >= 0, not {config.temperature}")
    if not 0 < config.top_p <= 1:
        problems.append(f"top_p must be in (0, 1], not {config.top_p}")
    if config.num_candidates < 1:
        problems.append(f"num_candidates must be at least 1, not {config.num_candidates}")
    if config.cache_refresh < 0:
        problems.append(f"cache_refresh must be >= 0, not {config.cache_refresh}")
    if not 0 < config.canvas_share <= 1:
        problems.append(f"canvas_share must be in (0, 1], not {config.canvas_share}")
    if config.context_tokens is not None and config.context_tokens < 0:
        problems.append(f"context_tokens must be >= 0, not {config.context_tokens}")
    if problems:
        raise InputError("Bad decoding settings: " + "; ".join(problems))


def _chunks(items: list[_Item], size: int) -> list[list[_Item]]:
    return [items[start : start + size] for start in range(0, len(items), max(1, size))]
