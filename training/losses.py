"""The training losses as modules around the model, so `accelerate` (DDP, autocast, compile) wraps the loss.

``DiffusionObjective``: MDLM's loss. The LM head runs only on the masked positions (at the default size the
vocabulary projection costs as much as two encoder layers per position, and a quarter of the positions
are masked on average); the model's own unweighted loss is never computed. Works for ModernBERT masked LMs
and for shifted decoders (a Qwen2 made bidirectional, Dream's layout: the hidden state at i-1 predicts the
token at i); decoder families loaded for fine-tuning (``training.diffusion_decoder``) give their own
masked-position logits; other masked LMs fall back to their full (B, T, V) logits.

``ARObjective``: next-token cross-entropy of the autoregressive FIM peer.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch.nn import functional as F

from training.objective import Batch

Head = Callable[[torch.Tensor], torch.Tensor]


def unwrap_peft(model: torch.nn.Module) -> torch.nn.Module:
    """The transformers model under a peft wrapper (LoRA layers are injected in place, so they still run)."""
    get_base = getattr(model, "get_base_model", None)
    return get_base() if callable(get_base) else model


def backbone_and_head(model: torch.nn.Module) -> tuple[torch.nn.Module, Head] | None:
    """(encoder/decoder stack giving hidden states, hidden -> logits) where the model splits that way."""
    inner = unwrap_peft(model)
    stack = getattr(inner, "model", None)
    if stack is None:
        return None
    if hasattr(inner, "decoder") and hasattr(inner, "head"):  # ModernBertForMaskedLM
        return stack, lambda hidden: inner.decoder(inner.head(hidden))
    lm_head = getattr(inner, "lm_head", None)
    if isinstance(lm_head, torch.nn.Linear):  # Qwen2ForCausalLM and other decoders
        return stack, lm_head
    return None


@dataclass
class RowStats:
    """Per-example sums over masked positions, (B,) each; the CE sums are 1/t-weighted like the loss."""

    weighted_ce: torch.Tensor
    ce: torch.Tensor  # unweighted
    correct: torch.Tensor
    masked: torch.Tensor
    maskable: torch.Tensor


class DiffusionObjective(torch.nn.Module):
    """MDLM loss: sum over masked positions of CE / t, divided by the number of maskable positions."""

    def __init__(self, model: torch.nn.Module, *, shift: bool = False) -> None:
        super().__init__()
        self.model = model
        self.shift = shift
        split = backbone_and_head(model)
        if shift and split is None:
            raise ValueError("a shifted decoder must expose its decoder stack and lm_head")
        self._split = split is not None

    def predictions(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(logits (N, V) float32, targets (N,), rows (N,)) for the N masked positions of the batch."""
        selected = batch.labels != -100  # (B, T)
        if self.shift:
            assert not selected[:, 0].any(), "a shifted decoder has no prediction for position 0"
        rows = selected.nonzero()[:, 0]
        if hasattr(self.model, "family"):  # training.diffusion_decoder: realigned, (N, V) where labels are
            logits = self.model(batch.input_ids, batch.attention_mask, labels=batch.labels).logits
            return logits.float(), batch.labels[selected], rows
        if not self._split:
            logits = self.model(input_ids=batch.input_ids, attention_mask=batch.attention_mask).logits
            return logits[selected].float(), batch.labels[selected], rows
        stack, head = backbone_and_head(self.model)  # type: ignore[misc]
        if batch.attention_4d is not None:  # block diffusion: the same mask for every layer type
            mask = {"full_attention": batch.attention_4d, "sliding_attention": batch.attention_4d}
            hidden = stack(input_ids=batch.input_ids, attention_mask=mask, position_ids=batch.position_ids)[0]
        else:
            hidden = stack(input_ids=batch.input_ids, attention_mask=_mask_or_none(batch.attention_mask))[0]
        if self.shift:
            # (B, T-1, H): the hidden state at i-1 scores the token at i.
            hidden, selected_from = hidden[:, :-1], selected[:, 1:]
        else:
            selected_from = selected
        return head(hidden[selected_from]).float(), batch.labels[selected], rows

    def forward(self, batch: Batch) -> torch.Tensor:
        logits, targets, _ = self.predictions(batch)
        ce = F.cross_entropy(logits, targets, reduction="none")
        weights = batch.weights[batch.labels != -100]
        return (ce * weights).sum() / max(1, batch.maskable)

    @torch.no_grad()
    def row_stats(self, batch: Batch) -> RowStats:
        """Per-example weighted CE, correct argmax predictions and masked counts (for paired comparisons)."""
        logits, targets, rows = self.predictions(batch)
        weights = batch.weights[batch.labels != -100]
        size = batch.input_ids.shape[0]
        maskable = batch.row_maskable if batch.row_maskable is not None else torch.zeros(size)
        return _row_stats(logits, targets, rows, weights, size, maskable)


class ARObjective(torch.nn.Module):
    """Next-token cross-entropy (the model shifts labels itself)."""

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, batch: Batch) -> torch.Tensor:
        return self.model(
            input_ids=batch.input_ids, attention_mask=batch.attention_mask, labels=batch.labels
        ).loss

    @torch.no_grad()
    def row_stats(self, batch: Batch) -> RowStats:
        """The same per-example sums over the predicted (next) tokens; no weights, every target counts."""
        logits = self.model(input_ids=batch.input_ids, attention_mask=batch.attention_mask).logits
        targets = batch.labels[:, 1:]  # (B, T-1): the logits at i predict the token at i+1
        selected = targets != -100
        rows = selected.nonzero()[:, 0]
        picked = targets[selected]
        counts = selected.sum(1).double().cpu()
        return _row_stats(
            logits[:, :-1][selected].float(), picked, rows, torch.ones_like(picked), len(targets), counts
        )


def _row_stats(
    logits: torch.Tensor,
    targets: torch.Tensor,
    rows: torch.Tensor,
    weights: torch.Tensor,
    size: int,
    maskable: torch.Tensor,
) -> RowStats:
    """Sums per example of the N scored positions: logits (N, V), targets/rows/weights (N,)."""
    ce = F.cross_entropy(logits, targets, reduction="none")

    def per_row(values: torch.Tensor) -> torch.Tensor:
        return torch.zeros(size, dtype=torch.float64).index_add_(0, rows.cpu(), values.double().cpu())

    return RowStats(
        per_row(ce * weights),
        per_row(ce),
        per_row((logits.argmax(-1) == targets).double()),
        per_row(torch.ones_like(targets, dtype=torch.float64)),
        maskable.double().cpu(),
    )


def _mask_or_none(attention_mask: torch.Tensor) -> torch.Tensor | None:
    """No mask when nothing is padding: attention then takes its unmasked (faster) kernel."""
    return None if bool(attention_mask.all()) else attention_mask


def diffusion_loss(model: torch.nn.Module, batch: Batch, *, shift: bool = False) -> torch.Tensor:
    """The MDLM loss of ``model`` on ``batch`` (a one-off ``DiffusionObjective``)."""
    return DiffusionObjective(model, shift=shift)(batch)
