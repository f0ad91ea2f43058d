"""Expand/delete decoding (DreamOn): the model, not the canvas, decides how long a fill is.

The sequence is ``bos + prefix + [mask] * min_gen_len + suffix + eos`` (the family's framing, canvas.py). Each
step runs the model over the whole sequence, proposes a token for every masked position of the middle, and
commits ``number_transfer_tokens`` of them, the most confident first by the strategy (DreamOn's ``alg``:
maskgit_plus = "confidence", topk_margin = "margin", entropy = "entropy", the confidence computed on the
distribution after temperature, top-p and top-k, as Dream's sampler does). Then, in this order:

- pad_eos_to_right: every position that was masked at the start of the step and lies at or after the first
  end-of-text of the sequence becomes end-of-text;
- delete_eos_token: every such position holding end-of-text is removed (the middle shrinks, the suffix moves
  left);
- expansion: every ``<|expand|>`` in the middle becomes two masks (the middle grows by one).

Expansion is blocked (the expand logit lowered by 1e9, as the authors do) once the middle is ``max_gen_len``
long or has expanded ``max_gen_len`` times. The loop stops when no mask is left or after ``steps`` steps;
masks still left, like every other special token, are dropped from the text (the authors decode with
``skip_special_tokens``). Nothing else is banned: the authors' generator bans nothing else.

This follows DreamLM/DreamOn ``eval/generator.py`` (``batch_generate_with_expand_as_token``). Where their
eval generator and the model's own ``generation_utils.py`` differ, which only matters when a step commits
more than one token, deletion comes before expansion here (as in ``generation_utils.py``: it deletes at the
positions that were masked, not at positions shifted by an expansion), and an expansion that would pass
``max_gen_len`` leaves one mask instead of cutting the suffix off. A long context is trimmed at line
boundaries as for every model (canvas.py), where the authors keep the last ``max_prompt_len`` tokens of the
whole prompt.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from infill.engine.candidates import ScoredCandidate, rank_candidates, span_candidate
from infill.engine.canvas import context_budget, trim_context
from infill.engine.scoring import make_generator
from infill.engine.types import DecodeConfig, FillRequest, FillResult
from infill.errors import Cancelled, InputError
from infill.models.base import DenoisingModel, LoadedModel
from infill.models.expand_delete import ExpandDelete

logger = logging.getLogger(__name__)

EXPAND_STRATEGIES = ("confidence", "margin", "entropy")
BLOCKED = 1e9  # subtracted from the expand logit once the middle may not grow (the authors' value)


@dataclass
class MiddleOutput:
    """The decoded middle: token ids (masks left where the steps ran out) and each one's probability."""

    ids: list[int]
    probabilities: list[float]
    forward_passes: int
    expansions: int
    deletions: int


def propose(
    logits: torch.Tensor,
    strategy: str,
    temperature: float,
    top_p: float,
    top_k: int | None,
    generator: torch.Generator | None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``logits (K, V)`` of the masked positions -> ``(confidence, token, probability of token)``, each (K,).

    Temperature scales and top-p / top-k filter the logits before the softmax, and the confidence is read
    from that distribution (Dream's sampler): at temperature 0 the token is its argmax.
    """
    if temperature > 0:
        logits = logits / temperature
    if top_p < 1:
        logits = _top_p(logits, top_p)
    if top_k is not None:
        kth = torch.topk(logits, min(top_k, logits.shape[-1])).values[..., -1:]
        logits = logits.masked_fill(logits < kth, torch.finfo(logits.dtype).min)
    probs = torch.softmax(logits, dim=-1)
    if temperature > 0:
        tokens = torch.multinomial(probs, 1, generator=generator).squeeze(-1)
        chosen = probs.gather(-1, tokens[:, None]).squeeze(-1)
    else:
        chosen, tokens = probs.max(dim=-1)
    if strategy == "margin":
        top2 = torch.sort(probs, dim=-1, descending=True).values
        return top2[:, 0] - top2[:, 1], tokens, chosen
    if strategy == "entropy":
        return (probs * torch.log(probs + 1e-10)).sum(dim=-1), tokens, chosen
    return chosen, tokens, chosen


def _top_p(logits: torch.Tensor, top_p: float) -> torch.Tensor:
    """Keep the most likely tokens until their mass passes ``top_p`` (the one that passes it included)."""
    ordered, order = torch.sort(logits, descending=True)
    past = torch.softmax(ordered, dim=-1).cumsum(dim=-1) > top_p
    drop = torch.zeros_like(past)
    drop[..., 1:] = past[..., :-1]  # the token that crosses top_p stays
    removed = torch.zeros_like(drop).scatter(-1, order, drop)
    return logits.masked_fill(removed, torch.finfo(logits.dtype).min)


def commit_order(
    confidence: torch.Tensor, count: int, alg_temp: float, generator: torch.Generator | None
) -> list[int]:
    """Which of the K masked positions to commit: the ``count`` most confident, or drawn from
    softmax(confidence / alg_temp) when alg_temp > 0."""
    count = min(count, confidence.shape[0])
    if alg_temp > 0:
        weights = torch.softmax(confidence / alg_temp, dim=-1)
        return torch.multinomial(weights, count, generator=generator).tolist()
    return torch.topk(confidence, count).indices.tolist()


def decode_middle(
    model: DenoisingModel,
    prefix_ids: Sequence[int],
    suffix_ids: Sequence[int],
    mask_id: int,
    expand_delete: ExpandDelete,
    config: DecodeConfig,
    max_gen_len: int,
    *,
    generator: torch.Generator | None = None,
    should_stop: Callable[[], bool] | None = None,
    device: torch.device | None = None,
) -> MiddleOutput:
    """Decode the middle between ``prefix_ids`` (bos included) and ``suffix_ids`` (eos included); see the
    module doc. ``max_gen_len`` is the settings' cap already combined with the request's budget."""
    settings = expand_delete.settings
    expand_id, delete_id = expand_delete.expand_id, expand_delete.delete_id
    head = len(prefix_ids)
    middle = [mask_id] * min(settings.min_gen_len, max_gen_len)
    probabilities = [1.0] * len(middle)
    expand_budget = settings.max_gen_len
    passes = expansions = deletions = 0
    for _ in range(config.steps):
        masked = [i for i, token in enumerate(middle) if token == mask_id]
        if not masked:
            break
        if should_stop is not None and should_stop():
            raise Cancelled("Cancelled")
        ids = torch.tensor([[*prefix_ids, *middle, *suffix_ids]], device=device)
        positions = torch.tensor([[head + i for i in masked]], device=device)
        with torch.inference_mode():
            logits = model.logits(ids, torch.ones_like(ids), positions)[0]
        logits = logits.float().clone()  # (K, V); a normal tensor again, edited below
        passes += 1
        if len(middle) >= max_gen_len or expand_budget <= 0:
            logits[:, expand_id] -= BLOCKED
        confidence, tokens, chosen = propose(
            logits, config.strategy, config.temperature, config.top_p, settings.top_k, generator
        )
        for k in commit_order(confidence, settings.number_transfer_tokens, settings.alg_temp, generator):
            middle[masked[k]] = int(tokens[k])
            probabilities[masked[k]] = float(chosen[k])
        if settings.pad_eos_to_right:
            sequence = [*prefix_ids, *middle, *suffix_ids]
            if delete_id in sequence:
                first = sequence.index(delete_id) - head
                for i in masked:
                    if i >= first:
                        middle[i] = delete_id
        if settings.delete_eos_token:
            doomed = {i for i in masked if middle[i] == delete_id}
            middle = [token for i, token in enumerate(middle) if i not in doomed]
            probabilities = [p for i, p in enumerate(probabilities) if i not in doomed]
            deletions += len(doomed)
        if expand_id in middle:
            middle, probabilities, grown = _expand(middle, probabilities, expand_id, mask_id, max_gen_len)
            expansions += grown
            expand_budget -= grown
    return MiddleOutput(middle, probabilities, passes, expansions, deletions)


def _expand(
    middle: list[int], probabilities: list[float], expand_id: int, mask_id: int, max_gen_len: int
) -> tuple[list[int], list[float], int]:
    """Each expand token -> two masks, left to right while the middle stays within ``max_gen_len`` (past it,
    one mask). Returns the new middle, its probabilities and how many positions it grew by."""
    room = max_gen_len - len(middle)
    grown = 0
    ids: list[int] = []
    probs: list[float] = []
    for token, probability in zip(middle, probabilities, strict=True):
        if token != expand_id:
            ids.append(token)
            probs.append(probability)
            continue
        width = 2 if grown < room else 1
        grown += width - 1
        ids += [mask_id] * width
        probs += [1.0] * width
    return ids, probs, grown


def check_expand_delete_config(config: DecodeConfig) -> None:
    if config.strategy not in EXPAND_STRATEGIES:
        raise InputError(
            f"Bad decoding settings: a model that decides its length decodes with strategy "
            f"{', '.join(EXPAND_STRATEGIES)}, not {config.strategy!r}"
        )


def fill_expand_delete(
    loaded: LoadedModel,
    context_tokens: int,
    requests: Sequence[FillRequest],
    config: DecodeConfig,
    should_stop: Callable[[], bool] | None = None,
) -> list[FillResult]:
    """InfillEngine.fill for a model with expand/delete decoding: one sequence at a time (the middle's
    length differs per request and changes every step), candidates ranked as the engine ranks them.

    No token healing: the authors' generator encodes the prefix as it is. A line fill is cut after its first
    newline once decoded. Greedy decoding gives one candidate; sampling one per seed.
    """
    expand_delete = loaded.expand_delete
    assert expand_delete is not None, "fill_expand_delete needs a model that decides its length"
    check_expand_delete_config(config)
    special = loaded.special
    started = time.perf_counter()
    results: list[FillResult] = []
    for request in requests:
        max_gen_len = min(expand_delete.settings.max_gen_len, request.max_tokens)
        cap = config.context_tokens if config.context_tokens is not None else context_tokens
        budget = min(cap, context_budget(special, max_gen_len, loaded.max_positions))
        context = trim_context(request.prefix, request.suffix, loaded.tokenizer.encode, budget)
        prefix_ids = [*special.prefix_ids, *context.prefix_ids]
        suffix_ids = [*context.suffix_ids, *special.suffix_ids]
        wanted = request.num_candidates or config.num_candidates
        # Greedy decoding has one candidate; a request skipping it (decoded by an earlier call) gets none.
        end = 1 if config.temperature <= 0 else request.skip_candidates + wanted
        result = FillResult()
        scored: list[ScoredCandidate] = []
        for k in range(request.skip_candidates, end):
            seed = None if config.seed is None else config.seed + k
            out = decode_middle(
                loaded.model,
                prefix_ids,
                suffix_ids,
                special.mask_id,
                expand_delete,
                config,
                max_gen_len,
                generator=make_generator(seed, loaded.device),
                should_stop=should_stop,
                device=loaded.device,
            )
            result.forward_passes += out.forward_passes
            logger.debug(
                "expand/delete: %d tokens, %d expansions, %d deletions, %d passes",
                len(out.ids),
                out.expansions,
                out.deletions,
                out.forward_passes,
            )
            skipped = expand_delete.skipped_ids
            kept = [(t, p) for t, p in zip(out.ids, out.probabilities, strict=True) if t not in skipped]
            ids = [t for t, _ in kept] + [special.end_of_span_id]
            candidate = span_candidate(
                ids,
                [p for _, p in kept] + [1.0],
                loaded.tokenizer,
                special.end_of_span_id,
                line=request.mode == "line",
            )
            if candidate is not None:
                scored.append(candidate)
        ranked = rank_candidates(scored, wanted)
        result.candidates = [item.candidate for item in ranked]
        result.generated_tokens = ranked[0].generated_tokens if ranked else 0
        results.append(result)
    elapsed_ms = (time.perf_counter() - started) * 1000
    for result in results:
        result.elapsed_ms = elapsed_ms
    logger.info(
        "fill (expand/delete): %d requests, %d tokens, %d forward passes, %.0f ms",
        len(requests),
        sum(r.generated_tokens for r in results),
        sum(r.forward_passes for r in results),
        elapsed_ms,
    )
    return results
