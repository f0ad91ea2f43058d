"""Requests, decoding settings and results of the engine (text in, text out at its edge)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

Strategy = Literal["confidence", "margin", "entropy", "threshold", "blocks"]


@dataclass(frozen=True)
class DecodeConfig:
    """How to unmask a canvas.

    strategy: which masked positions to commit first: highest probability ("confidence"), largest
        top-1 minus top-2 gap ("margin"), lowest entropy ("entropy"); "threshold" commits every position
        whose confidence is above ``threshold`` (at least one per step), so easy spans take few passes;
        "blocks" is semi-autoregressive: left-to-right blocks of ``block_size``, confidence within a block
        (confidence beyond the current block is -inf).
    steps: number of denoising steps for a full canvas (upper bound for "threshold").
    remask: fraction of committed low-confidence tokens that may be remasked per step (0 = never).
    temperature 0 is greedy and deterministic; >0 samples with ``top_p``.
    num_candidates: distinct candidates to return per request (sampling, or several canvas lengths).
    seed: makes sampling reproducible.
    """

    strategy: Strategy = "threshold"
    steps: int = 32
    threshold: float = 0.9
    block_size: int = 16
    remask: float = 0.0
    temperature: float = 0.0
    top_p: float = 0.95
    num_candidates: int = 1
    seed: int | None = None


@dataclass(frozen=True)
class FillRequest:
    """Fill the gap between ``prefix`` and ``suffix`` with at most ``max_tokens`` tokens."""

    prefix: str
    suffix: str
    max_tokens: int = 64
    # "line": the span ends at the first newline (newline kept); "block"/"span": free length.
    mode: Literal["line", "block", "span"] = "span"


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
