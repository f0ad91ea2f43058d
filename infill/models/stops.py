"""A family's extra stop tokens, folded into end-of-span where the logits are made (the LM head).

DiffuCoder's own demo cuts its output at the first ``<|dlm_pad|>``, instruct checkpoints end a turn with
``<|im_end|>``/``<|eot_id|>``: to the engine all of these mean "the span ends here". The head's
output gets ``logit[end_of_span] = logsumexp(logit[end_of_span], logit[stop ids])`` and the stop ids are
banned (special_tokens.py), so after the sampler's softmax P(end_of_span) is exactly the sum of their
probabilities and every forward path through the head (full, positions-only, cached) sees the same
distribution.
"""

from __future__ import annotations

import logging

import torch

logger = logging.getLogger(__name__)


def merge_stop_logits(model: torch.nn.Module, end_of_span_id: int, stop_ids: tuple[int, ...]) -> bool:
    """Install the merge on ``model``'s output embedding; False (nothing installed) when it has none."""
    if not stop_ids:
        return False
    get_head = getattr(model, "get_output_embeddings", None)
    head = get_head() if callable(get_head) else None
    if not isinstance(head, torch.nn.Module):
        logger.warning("No LM head to merge the stop tokens %s into end-of-span; they stay banned", stop_ids)
        return False
    merged_ids = torch.tensor([end_of_span_id, *stop_ids])

    def merge(
        module: torch.nn.Module, inputs: tuple[torch.Tensor, ...], logits: torch.Tensor
    ) -> torch.Tensor:
        # logits: (..., V); the columns of the stop ids are left as they are (banned downstream).
        ends = logits[..., merged_ids.to(logits.device)].float()  # (..., 1 + S)
        logits[..., end_of_span_id] = torch.logsumexp(ends, dim=-1).to(logits.dtype)
        return logits

    head.register_forward_hook(merge)
    return True
