"""What the engine sees of a model: token-id logits, special ids and a tokenizer, nothing else."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, Protocol

import torch

from infill.models.expand_delete import ExpandDelete

# How the model is run: a masked LM, a decoder made bidirectional (shifted or not), or remote code.
ModelKind = Literal["masked_lm", "decoder", "remote"]


@dataclass(frozen=True)
class SpecialTokens:
    """Token ids the engine needs, resolved once from tokenizer/config in infill.models (never hard-coded).

    mask_id: the id every editable canvas position starts as; the sampler never commits it.
    end_of_span_id: the token a model emits after the middle of a span; every canvas position after the
        first committed end_of_span is end_of_span too (the span's tail). For our own models it is
        ``<|endofspan|>``; for Dream it is ``<|endoftext|>``; for other masked LMs the tokenizer's
        sep/eos/pad token.
    pad_id: used to pad sequences of different lengths in a batch (attention_mask is 0 there).
    prefix_ids / suffix_ids: special ids a model expects around the whole sequence (e.g. [CLS] ... [SEP]).
    banned_ids: ids never committed on the canvas (mask, pad, bos/cls, unk, other specials, the family's
        control tokens such as Qwen2.5's FIM tokens, and the stop ids).
    stop_ids: ids that end a span as end_of_span does (DiffuCoder's <|dlm_pad|>, instruct models' end of
        turn); the loader adds their probability to end_of_span's logit and they are banned, so the engine
        only ever sees end_of_span.
    """

    mask_id: int
    end_of_span_id: int
    pad_id: int
    prefix_ids: tuple[int, ...] = ()
    suffix_ids: tuple[int, ...] = ()
    banned_ids: tuple[int, ...] = ()
    stop_ids: tuple[int, ...] = ()
    # A block model's prompt layout (families.Family.block_prompt): token ids and the "{prefix}" and
    # "{suffix}" placeholders; empty: the prefix alone.
    block_prompt: tuple[int | str, ...] = ()


class TextTokenizer(Protocol):
    """The text side of a model: plain token ids, no special tokens added."""

    def encode(self, text: str) -> list[int]: ...

    def decode(self, ids: list[int]) -> str: ...

    def token_text(self, token_id: int) -> str:
        """The exact text one token contributes when decoded in context (for token healing)."""
        ...

    @property
    def vocab_size(self) -> int: ...


class DenoisingModel(Protocol):
    """Logits over the vocabulary at chosen positions of a (partly masked) sequence.

    ``logits(input_ids (B, T), attention_mask (B, T), positions (B, K)) -> (B, K, V)`` float32, where
    ``[:, k]`` is the distribution of the token AT position ``positions[:, k]`` (adapters of shifted models
    such as Dream realign inside). The engine asks only for the positions it decodes, so no (B, T, V)
    tensor is needed on the request path. ``positions`` None means every position (B, T, V): for tests
    and tools.
    """

    def logits(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor, positions: torch.Tensor | None = None
    ) -> torch.Tensor: ...


@dataclass
class LoadedModel:
    """A model directory ready for the engine."""

    model: DenoisingModel
    tokenizer: TextTokenizer
    special: SpecialTokens
    kind: ModelKind
    device: torch.device
    dtype: torch.dtype
    max_positions: int
    name: str
    # The families.py entry that loaded it ("dream", "llada", "masked-lm"...) and where its tokenizer came
    # from.
    family: str = "masked-lm"
    tokenizer_source: str = "tokenizer.json"
    # Sampler defaults stored with the weights (generation_config.json "infill" keys, or the checkpoint's own
    # generation settings translated), e.g. {"steps": 32, "strategy": "threshold", "threshold": 0.9}.
    generation_defaults: dict[str, object] = field(default_factory=dict)
    # Set for a family whose model decides the fill's length by expand/delete decoding (families.py
    # expand_token): the engine then decodes with engine/expand_delete.py.
    expand_delete: ExpandDelete | None = None
