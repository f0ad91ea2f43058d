"""Requests, decoding settings and results of the engine (text in, text out at its edge)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

Strategy = Literal["confidence", "margin", "entropy", "threshold", "blocks", "p2"]


@dataclass(frozen=True)
class DecodeConfig:
    """How to unmask a canvas.

    strategy: which masked positions to commit first: highest probability ("confidence"), largest
        top-1 minus top-2 gap ("margin"), lowest entropy ("entropy"); "threshold" commits every position
        whose confidence is at least ``threshold`` (and at least the step schedule's share), so easy spans
        take few passes; "blocks" is semi-autoregressive: left-to-right blocks of ``block_size``, and within
        the current block the threshold rule (Fast-dLLM; confidence beyond the current block is -inf); "p2"
        is Open-dLLM's path planning, which also masks committed tokens again (engine/path_planning.py).
    steps: number of denoising steps for a full canvas, shared out over its blocks; an upper bound for
        "threshold" and "blocks" (a step commits at least ``ceil(masked in block / steps left for it)``;
        steps >= block_size per block gives Fast-dLLM's "at least one per step").
    block_steps: the most steps one block gets (0: no cap). ``steps`` is per canvas of ``max_tokens``, so its
        share per block depends on the budget; a cap keeps the tokens committed per step the same for a
        32-token line and a 96-token block (the bundled model is best at 2 steps per block of 8,
        BENCHMARKS.md).
    threshold: the confidence at or above which "threshold" and "blocks" commit a position at once
        (1.0 turns the rule off for "blocks").
    remask: fraction of committed low-confidence tokens that may be remasked per step (0 = never).
    temperature 0 is greedy and deterministic; >0 samples with ``top_p``.
    num_candidates: distinct candidates to return per request (sampling, or several canvas lengths).
    seed: makes sampling reproducible.
    estimate_length: run the length-estimation pass (length.py) before decoding block and span fills
        (line fills never: their newline ends them); off, a span is decoded on its full budget and its
        end-of-span tail ends it.
    canvas_share: below 1, a block or span fill is first decoded on a canvas of that share of its budget
        (at least 8 tokens); a span that fills its canvas without ending is decoded again on twice the canvas,
        up to the budget (length.py, ``growing_lengths``). 1 decodes on the whole budget at once. Set with the
        weights for models that write about as much as their canvas holds (the bundled model: BENCHMARKS.md).
    cache_refresh: 0 decodes every step with a full forward pass; N > 0 uses the context key/value cache
        (Fast-dLLM's DualCache) where the model has one: a full pass when a row starts a new block and
        at least every N steps, in between only the current block is recomputed.
    context_tokens: most prefix + suffix tokens shown to the model (None: a default for the model's size,
        see engine.default_context_tokens); never more than the model's window allows.

    Block-diffusion models (SDAR; engine/block_decoding.py) read only ``block_steps`` (steps per block, 0: one
    per position), ``threshold`` (commit what is strictly above it), ``temperature``/``top_p``/``seed`` and
    ``context_tokens``: their block size is the model's own, and they decode one canvas per request.
    """

    strategy: Strategy = "threshold"
    steps: int = 32
    threshold: float = 0.9
    block_size: int = 16
    block_steps: int = 0
    remask: float = 0.0
    temperature: float = 0.0
    top_p: float = 0.95
    num_candidates: int = 1
    seed: int | None = None
    estimate_length: bool = False
    canvas_share: float = 1.0
    cache_refresh: int = 0
    context_tokens: int | None = None


@dataclass(frozen=True)
class FillRequest:
    """Fill the gap between ``prefix`` and ``suffix`` with at most ``max_tokens`` tokens."""

    prefix: str
    suffix: str
    max_tokens: int = 64
    # "line": the span ends at the first newline (newline kept); "block"/"span": free length.
    mode: Literal["line", "block", "span"] = "span"
    # Canvases to decode for this request: None takes DecodeConfig.num_candidates. ``skip_candidates``
    # leaves out the first ones of the plan (decoded already by an earlier call that found none usable).
    num_candidates: int | None = None
    skip_candidates: int = 0


@dataclass(frozen=True)
class TokenConfidence:
    text: str
    confidence: float


@dataclass(frozen=True)
class Candidate:
    text: str
    # Mean log-probability of the committed tokens (higher is better); used to rank candidates.
    score: float
    tokens: tuple[TokenConfidence, ...] = ()


@dataclass
class FillResult:
    candidates: list[Candidate] = field(default_factory=list)
    forward_passes: int = 0
    generated_tokens: int = 0
    elapsed_ms: float = 0.0

    @property
    def best(self) -> Candidate | None:
        return self.candidates[0] if self.candidates else None
