"""Per-position scores and token choice for the denoising loop: pure tensor helpers, no model, no text."""

from __future__ import annotations

import torch

from infill.engine.types import Strategy
from infill.models.base import SpecialTokens


def banned_token_ids(special: SpecialTokens, device: torch.device) -> torch.Tensor:
    """Ids whose logits are -inf on the canvas: the mask and ``special.banned_ids``, never end_of_span
    (Dream's pad is its end of span, and ending the span must stay possible)."""
    return torch.tensor(
        sorted({special.mask_id, *special.banned_ids} - {special.end_of_span_id}), device=device
    )


def make_generator(seed: int | None, device: torch.device) -> torch.Generator | None:
    """A seeded generator on ``device`` (sampling reproducible per seed); None means torch's global RNG."""
    if seed is None:
        return None
    generator = torch.Generator(device=device)
    generator.manual_seed(seed)
    return generator


def choose_tokens(
    logits: torch.Tensor, temperature: float, top_p: float, generator: torch.Generator | None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Pick one token per row of ``logits (N, V)``; return ``(tokens (N,), probs (N, V))``.

    ``probs`` is the model's untempered distribution: confidences and scores are always model
    probabilities, temperature and top-p only change which token is drawn. Temperature 0 is argmax
    (deterministic; ties go to the lowest id).
    """
    probs = torch.softmax(logits, dim=-1)
    if temperature <= 0:
        return logits.argmax(dim=-1), probs
    tempered = torch.softmax(logits / temperature, dim=-1)
    if top_p < 1.0:
        tempered = _top_p_filter(tempered, top_p)
    tokens = torch.multinomial(tempered, num_samples=1, generator=generator).squeeze(-1)
    return tokens, probs


def _top_p_filter(probs: torch.Tensor, top_p: float) -> torch.Tensor:
    """Keep the smallest set of most likely tokens whose mass reaches ``top_p`` (the top token always)."""
    sorted_probs, order = probs.sort(dim=-1, descending=True)
    mass_before = sorted_probs.cumsum(dim=-1) - sorted_probs
    sorted_probs = sorted_probs.masked_fill(mass_before >= top_p, 0.0)
    return torch.zeros_like(probs).scatter(-1, order, sorted_probs)


def position_scores(probs: torch.Tensor, tokens: torch.Tensor, strategy: Strategy) -> torch.Tensor:
    """How sure the model is at each position, higher first: ``probs (N, V), tokens (N,) -> (N,)``.

    confidence/threshold/blocks: probability of the chosen token; margin: top-1 minus top-2 probability;
    entropy: negative entropy of the distribution.
    """
    if strategy == "margin":
        top2 = probs.topk(2, dim=-1).values
        return top2[:, 0] - top2[:, 1]
    if strategy == "entropy":
        return (probs * torch.log(probs.clamp_min(1e-12))).sum(dim=-1)
    return token_confidence(probs, tokens)


def token_confidence(probs: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
    """Probability of ``tokens (N,)`` under ``probs (N, V)``."""
    return probs.gather(-1, tokens.unsqueeze(-1)).squeeze(-1)


def take_top(scores: torch.Tensor, count: torch.Tensor) -> torch.Tensor:
    """Boolean (B, T): the ``count[b]`` highest ``scores[b]`` of each row (-inf never chosen, +inf first).

    A stable sort keeps greedy decoding deterministic when scores tie (the leftmost position wins).
    """
    order = torch.sort(scores, dim=1, descending=True, stable=True).indices
    positions = torch.arange(scores.shape[1], device=scores.device).expand_as(order)
    ranks = torch.empty_like(order).scatter_(1, order, positions)
    return (ranks < count.unsqueeze(1)) & (scores > float("-inf"))


def least_likely(
    probs: torch.Tensor, tokens: torch.Tensor, candidates: torch.Tensor, fraction: float
) -> torch.Tensor:
    """Remasking: per row, ``floor(fraction * candidates)`` of the ``candidates (B, W)`` whose ``tokens
    (B, W)`` the model now finds least likely by ``probs (B, W, V)``, as a (B, W) bool."""
    likelihood = probs.gather(-1, tokens.unsqueeze(-1)).squeeze(-1)
    scores = torch.where(candidates, -likelihood, float("-inf"))
    return take_top(scores, (candidates.sum(dim=1) * fraction).floor().long())
