"""The one place special token ids are resolved: the family's spellings, the tokenizer's roles,
config.json."""

from __future__ import annotations

import logging
from typing import Any

from infill.errors import ModelLoadError
from infill.models.base import SpecialTokens
from infill.models.families import PREFIX, SUFFIX, Family
from infill.models.tokenizer_json import FastTokenizer

logger = logging.getLogger(__name__)

# Any text, to see which special ids the tokenizer wraps around a sequence.
_PROBE_TEXT = "x = 1"


def resolve_special_tokens(
    tokenizer: FastTokenizer, config: dict[str, Any], family: Family, model_vocab_size: int
) -> SpecialTokens:
    """Mask, end of span, pad, the ids framing a canvas, the ids never to commit and the extra stop ids.

    Mask: config.json mask_token_id first for families that name it there (Dream, LLaDA), else the tokenizer's
    mask token; then the family's spellings. End of span: the family's spellings (``<|endofspan|>`` for our
    models), else eos (Dream: ``<|endoftext|>``), else sep, else pad. ``model_vocab_size`` is the width of the
    model's logits: ids beyond the tokenizer (embedding padding rows, e.g. Qwen's 152064 vs 151667) are banned
    because they decode to nothing.
    """
    vocab = tokenizer.get_vocab()
    mask_candidates = [tokenizer.mask_token_id, _config_id(config, "mask_token_id")]
    if family.mask_from_config:
        mask_candidates.reverse()
    spelled = [vocab.get(spelling) for spelling in family.mask_tokens]
    mask_id = _first_id([*mask_candidates, *spelled, family.mask_id])
    if mask_id is None:
        raise ModelLoadError("The model has no mask token (neither the tokenizer nor config.json names one)")
    if mask_id >= model_vocab_size:
        raise ModelLoadError(f"The mask token id {mask_id} is outside the model's {model_vocab_size} logits")
    named_end = _first_id([vocab.get(spelling) for spelling in family.end_of_span_tokens])
    if named_end is None and family.end_of_span_required:
        raise ModelLoadError(
            f"The tokenizer has no end-of-span token ({', '.join(family.end_of_span_tokens)})"
        )
    end_of_span_id = _first_id(
        [
            named_end,
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
    if family.bos_before_prefix and not prefix_ids:
        # A shifted model predicts position i from position i-1, so position 0 has no prediction of its own; a
        # leading begin-of-text id keeps every editable position after a real predecessor.
        bos = _first_id(
            [
                *(vocab.get(spelling) for spelling in family.bos_tokens),
                tokenizer.bos_token_id,
                _config_id(config, "bos_token_id"),
            ]
        )
        prefix_ids = (bos,) if bos is not None else ()
    if family.eos_after_suffix and not suffix_ids:
        eos = _first_id([tokenizer.eos_token_id, _config_id(config, "eos_token_id")])
        suffix_ids = (eos,) if eos is not None else ()
    stop_ids = tuple(
        sorted({i for i in (vocab.get(t) for t in family.stop_tokens) if i is not None} - {end_of_span_id})
    )
    specials = {mask_id, pad_id, *prefix_ids, *suffix_ids, *stop_ids}
    specials.update(i for i, token in tokenizer.added_tokens_decoder.items() if token.special)
    specials.update(i for i in (vocab.get(t) for t in family.never_commit) if i is not None)
    for role_id in (tokenizer.bos_token_id, tokenizer.cls_token_id, tokenizer.unk_token_id):
        if role_id is not None:
            specials.add(role_id)
    specials.update(range(len(tokenizer), model_vocab_size))
    # Dream's pad, bos and eos are all <|endoftext|>: ending the span must stay possible. A family that
    # decides its length by expansion must be able to commit its expand token.
    specials.discard(end_of_span_id)
    if family.expand_token is not None:
        specials.discard(vocab.get(family.expand_token))
    if mask_id == end_of_span_id:
        raise ModelLoadError("The model's mask token is also its end-of-span token")
    special = SpecialTokens(
        mask_id=mask_id,
        end_of_span_id=end_of_span_id,
        pad_id=pad_id,
        prefix_ids=prefix_ids,
        suffix_ids=suffix_ids,
        banned_ids=tuple(sorted(specials)),
        stop_ids=stop_ids,
        block_prompt=_block_prompt(vocab, family),
    )
    logger.debug("Special tokens: %s", special)
    return special


def _block_prompt(vocab: dict[str, int], family: Family) -> tuple[int | str, ...]:
    """The family's block prompt layout with its token spellings as this tokenizer's ids."""
    layout: list[int | str] = []
    for piece in family.block_prompt:
        if piece in (PREFIX, SUFFIX):
            layout.append(piece)
        elif (token_id := vocab.get(piece)) is not None:
            layout.append(token_id)
        else:
            raise ModelLoadError(f"The tokenizer has no {piece} token, which frames this model's prompt")
    return tuple(layout)


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


def _wrapping_ids(tokenizer: FastTokenizer) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """Ids the tokenizer's post-processor puts before and after a sequence (e.g. <s> ... </s>)."""
    plain = tokenizer(_PROBE_TEXT, add_special_tokens=False)["input_ids"]
    wrapped = tokenizer(_PROBE_TEXT, add_special_tokens=True)["input_ids"]
    for start in range(len(wrapped) - len(plain) + 1):
        if wrapped[start : start + len(plain)] == plain:
            return tuple(wrapped[:start]), tuple(wrapped[start + len(plain) :])
    logger.warning("Tokenizer changes the text when adding special tokens; using no prefix/suffix ids")
    return (), ()
