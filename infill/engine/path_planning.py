"""Open-dLLM's "p2" (path planning) step for the canvas sampler (sampler.py, strategy "p2"): pure tensors.

Written from ``_mdm_sample``'s ``alg == "p2"`` branch (veomni/models/transformers/qwen2/generation_utils.py,
as Open-dCoder's eval_infill.py calls it). Unlike the other strategies it may take back committed tokens: at
step i of S (0-based) every position of the span, masked or committed, is ranked by the confidence of the
token the model proposes for it now, and all but the ``floor(m * (1 - (i + 1) / S))`` least confident of the
span's m positions are kept: a kept masked position takes its proposal, a kept committed one keeps its token,
and a committed one that is not kept is masked again. So after step i exactly that many positions are masked,
whatever was committed before, and the last step commits everything. A step may commit nothing new (the kept
positions are the committed ones). The confidence is the proposal's probability under the distribution it was
drawn from (``sample_tokens``: the logits over the temperature, when above 0, then cut to ``top_p``), not the
model's raw probability that infill's other strategies rank by.

infill's own rules stay around it (sampler.py): banned ids and an early end of span get -inf logits before
the proposal, the span tail and the line stop fill the masks after an end of span or newline, and a
constraint's priority still forces (+inf) or holds (-inf) a position: a held committed position is kept.
"""

from __future__ import annotations

import torch

from infill.engine.scoring import _top_p_filter, take_top, token_confidence


def proposal_confidence(
    logits: torch.Tensor, tokens: torch.Tensor, temperature: float, top_p: float
) -> torch.Tensor:
    """(N,) probability of ``tokens (N,)`` under ``logits (N, V)`` over ``temperature`` (when above 0) cut to
    ``top_p`` (when below 1) and renormalised: sample_tokens' confidence."""
    probs = torch.softmax(logits / temperature if temperature > 0 else logits, dim=-1)
    if top_p < 1.0:
        probs = _top_p_filter(probs, top_p)
        probs = probs / probs.sum(dim=-1, keepdim=True)
    return token_confidence(probs, tokens)


def path_planning_step(
    confidence: torch.Tensor,
    valid: torch.Tensor,
    masked: torch.Tensor,
    priority: torch.Tensor,
    steps_left: torch.Tensor,
    steps: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(commit, remask), each (B, W) bool, for one step over a row's span slots.

    ``confidence`` (B, W): of each slot's proposal; ``valid``: the slots of the span; ``masked``: those still
    masked; ``priority``: the constraint's (+inf forces, -inf holds); ``steps_left`` (B,): steps left for
    the row including this one, of ``steps`` (B,) in all, so this is step ``steps - steps_left``."""
    kappa = (steps - steps_left + 1).double() / steps.double()  # (i + 1) / steps, a Python float there
    span = valid.sum(dim=1)
    to_mask = (span.float() * (1.0 - kappa).float()).floor().long().clamp(min=0)
    keep_count = span - torch.minimum(to_mask, span)
    committed = valid & ~masked
    held = committed & (priority == float("-inf"))
    score = torch.where(valid, confidence + priority, float("-inf"))
    score = torch.where(held, float("inf"), score)
    keep = take_top(score, keep_count)
    return keep & masked, committed & ~keep
