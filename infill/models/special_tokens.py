"""The one place special token ids are resolved (from the tokenizer and config.json, never hard-coded)."""

from __future__ import annotations

import logging
from typing import Any

from transformers import PreTrainedTokenizerFast

from infill.errors import ModelLoadError
from infill.models.base import ModelKind, SpecialTokens

logger = logging.getLogger(__name__)

# Our own tokenizer's end-of-span token (training/tokenizer.py); preferred over eos when present.
END_OF_SPAN_TOKEN = "<|endofspan|>"
# Mask spellings of common tokenizers, for tokenizers that do not declare a mask_token.
MASK_SPELLINGS = ("<|mask|>", "<mask>", "[MASK]", "<|mdm_mask|>")
# Any text, to see which special ids the tokenizer wraps around a sequence.
_PROBE_TEXT = "x = 1"


def resolve_special_tokens(
    tokenizer: PreTrainedTokenizerFast, config: dict[str, Any], kind: ModelKind, model_vocab_size: int
) -> SpecialTokens:
    """Mask, end of span, pad, the ids wrapped around a sequence and the ids never to commit.

    Dream/remote models name their mask in config.json (mask_token_id) first; masked LMs in the tokenizer.
    End of span: for masked LMs ``<|endofspan|>`` when the vocabulary has it (our models); otherwise eos
    (Dream: ``<|endoftext|>``), else sep, else pad.
    ``model_vocab_size`` is the width of the model's logits: ids beyond the tokenizer (embedding padding
    rows, e.g. Qwen's 152064 vs 151665) are banned because they decode to nothing.
    """
    vocab = tokenizer.get_vocab()
    config_mask = config.get("mask_token_id")
    mask_candidates = [tokenizer.mask_token_id, config_mask]
    if kind != "masked_lm":
        mask_candidates.reverse()
    mask_candidates += [vocab.get(spelling) for spelling in MASK_SPELLINGS]
    mask_id = _first_id(mask_candidates)
    if mask_id is None:
        raise ModelLoadError("The model has no mask token (neither the tokenizer nor config.json names one)")
    if mask_id >= model_vocab_size:
        raise ModelLoadError(f"The mask token id {mask_id} is outside the model's {model_vocab_size} logits")
    ours = vocab.get(END_OF_SPAN_TOKEN) if kind == "masked_lm" else None
    end_of_span_id = _first_id(
        [
            ours,
            tokenizer.eos_token_id,
            _config_id(config, "eos_token_id"),
            tokenizer.sep_token_id,
            tokenizer.pad_token_id,
            _config_id(config, "pad_token_id"),
        ]
    )
    pad_id = _first_id([tokenizer.pad_token_id, _config_id(config, "pad_token_id"), end_of_span_id])
    if end_of_span_id is None or pad_id is None:
        raise ModelLoadError("The model has no end-of-sequence, separator or padding token to end spans with")
    prefix_ids, suffix_ids = _wrapping_ids(tokenizer)
    if kind == "dream" and not prefix_ids:
        # Dream predicts position i from position i-1, so position 0 has no prediction of its own; a leading
        # bos (its begin-of-text token, or <|endoftext|>, the document separator of its pretraining) keeps
        # every editable position after a real predecessor.
        bos = _first_id([tokenizer.bos_token_id, _config_id(config, "bos_token_id")])
        prefix_ids = (bos,) if bos is not None else ()
    specials = {mask_id, pad_id, *prefix_ids, *suffix_ids}
    specials.update(i for i, token in tokenizer.added_tokens_decoder.items() if token.special)
    for role_id in (tokenizer.bos_token_id, tokenizer.cls_token_id, tokenizer.unk_token_id):
        if role_id is not None:
            specials.add(role_id)
    specials.update(range(len(tokenizer), model_vocab_size))
    # Dream's pad, bos and eos are all <|endoftext|>: ending the span must stay possible.
    specials.discard(end_of_span_id)
    if mask_id == end_of_span_id:
        raise ModelLoadError("The model's mask token is also its end-of-span token")
    special = SpecialTokens(
        mask_id=mask_id,
        end_of_span_id=end_of_span_id,
        pad_id=pad_id,
        prefix_ids=prefix_ids,
        suffix_ids=suffix_ids,
        banned_ids=tuple(sorted(specials)),
    )
    logger.debug("Special tokens: %s", special)
    return special


def _first_id(candidates: list[Any]) -> int | None:
    for candidate in candidates:
        if isinstance(candidate, int) and candidate >= 0:
            return candidate
    return None


def _config_id(config: dict[str, Any], key: str) -> int | None:
    value = config.get(key)
    # Some configs list several eos ids; the first is the canonical one.
    if isinstance(value, list):
        value = value[0] if value else None
    return value if isinstance(value, int) else None


def _wrapping_ids(tokenizer: PreTrainedTokenizerFast) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """Ids the tokenizer's post-processor puts before and after a sequence (e.g. <s> ... </s>)."""
    plain = tokenizer(_PROBE_TEXT, add_special_tokens=False)["input_ids"]
    wrapped = tokenizer(_PROBE_TEXT, add_special_tokens=True)["input_ids"]
    for start in range(len(wrapped) - len(plain) + 1):
        if wrapped[start : start + len(plain)] == plain:
            return tuple(wrapped[:start]), tuple(wrapped[start + len(plain) :])
    logger.warning("Tokenizer changes the text when adding special tokens; using no prefix/suffix ids")
    return (), ()
