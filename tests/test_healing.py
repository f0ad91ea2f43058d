"""Token healing (infill/engine/healing.py) on the real tiny tokenizer and model: a trailing blank is healed,
and the committed tokens of a healing chain are held so that remasking cannot return one of them."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from infill.engine.healing import HealedSpan, HealingConstraint, TokenTexts, heal_prefix
from infill.engine.sampler import denoise
from infill.engine.types import DecodeConfig
from infill.models import LoadedModel, load_model


@pytest.fixture(scope="module")
def loaded(modernbert_dir: Path) -> LoadedModel:
    return load_model(modernbert_dir)


@pytest.fixture(scope="module")
def texts(loaded: LoadedModel) -> TokenTexts:
    return TokenTexts(loaded.tokenizer, loaded.special)


@pytest.mark.parametrize(
    ("prefix", "removed"),
    [
        ("x = ", " "),  # the most common cursor: after "= ", the model must not see a lone " " token
        ("foo(a, ", " "),
        ("def ad", " ad"),
        ("x = (", ""),
    ],
)
def test_a_trailing_blank_is_healed_like_a_cut_word(
    loaded: LoadedModel, texts: TokenTexts, prefix: str, removed: str
) -> None:
    kept, healed = heal_prefix(loaded.tokenizer.encode(prefix), texts)
    assert healed == removed
    assert "".join(texts.text(i) for i in kept) + healed == prefix


def test_the_committed_tokens_of_a_healing_chain_are_held(loaded: LoadedModel, texts: TokenTexts) -> None:
    mask = loaded.special.mask_id
    (partial,) = loaded.tokenizer.encode(" a")
    (rest,) = loaded.tokenizer.encode("d")
    constraint = HealingConstraint(texts, [HealedSpan(0, 1, 5, " add")], mask)
    ids = torch.tensor([[0, partial, rest, mask, mask]])  # " a" then "d" committed, "d" still to come
    logits = torch.zeros(1, 5, len(texts.texts))
    priority = torch.zeros(1, 5)
    constraint(ids, logits, priority)
    assert (priority[0, 1:3] == float("-inf")).all()  # the chain so far: never remasked
    allowed = {texts.texts[i] for i in torch.nonzero(logits[0, 3] == 0).flatten().tolist()}
    assert allowed and all(token.startswith("d") or "d".startswith(token) for token in allowed)


def test_remasking_never_returns_a_held_position(loaded: LoadedModel) -> None:
    """The sampler honours a hold on a committed position even when remasking would take nearly all."""
    special = loaded.special
    prefix = [*special.prefix_ids, *loaded.tokenizer.encode("def add(a, b):\n    return")]
    suffix = [*loaded.tokenizer.encode("\n"), *special.suffix_ids]
    span = 12
    ids = torch.tensor([[*prefix, *[special.mask_id] * span, *suffix]])
    editable = torch.zeros(ids.shape, dtype=torch.bool)
    editable[0, len(prefix) : len(prefix) + span] = True
    held = len(prefix)  # the first span position, as the first token of a healing chain
    seen: list[int] = []  # the held position's token at every step (the mask id while masked)

    def hold_once_committed(state: torch.Tensor, logits: torch.Tensor, priority: torch.Tensor) -> None:
        seen.append(int(state[0, held]))
        if seen[-1] != special.mask_id:
            priority[0, held] = float("-inf")

    config = DecodeConfig(strategy="confidence", steps=12, remask=0.9)
    out = denoise(
        loaded.model, ids, editable, torch.ones_like(ids), special, config, constrain=hold_once_committed
    )
    committed = [step for step, token in enumerate(seen) if token != special.mask_id]
    assert committed and len(seen) - committed[0] >= 2, "committed early, still visible to later steps"
    after = seen[committed[0] :]
    assert special.mask_id not in after, f"returned to the mask after it was committed: {seen}"
    assert len(set(after)) == 1 and int(out.ids[0, held]) == after[0]
