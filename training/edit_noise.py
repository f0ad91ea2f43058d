"""Edit noise for the diffusion objective (issue 15, item 2; after Seed Diffusion's edit-based corruption).

MDLM only ever asks the model about masked positions, so it never learns to judge a token it can see, which is
what edit mode needs (its in-place scores, infill/engine/edit.py). With ``--edit-noise F`` a share F of the
canvas positions an example leaves unmasked get a plausible WRONG token instead of their own: another
identifier of the same example, a swapped operator (``<``/``<=``/``>``/``>=``, ``==``/``!=``, ``+``/``-``,
``*``/``/``), an integer digit off by one, ``and``/``or``, ``True``/``False``. Those positions get the
original token as their label (weight 1, where masked ones weigh 1/t), so the model learns to put it back.
Replacement tables come from the tokenizer's own spellings (with and without a leading blank), never from
hard-coded ids. Only training examples get it; held-out losses stay plain MDLM so runs stay comparable.
"""

from __future__ import annotations

import keyword
import re
from collections.abc import Mapping
from dataclasses import dataclass

import torch
from transformers import PreTrainedTokenizerBase

from infill.errors import TrainingError

# Tokens that are confused with one another in real bugs; each swaps for another of its group.
SWAP_GROUPS: tuple[tuple[str, ...], ...] = (
    ("<", "<=", ">", ">="),
    ("==", "!="),
    ("+", "-"),
    ("*", "/"),
    ("and", "or"),
    ("True", "False"),
)
_IDENTIFIER = re.compile(r" ?[A-Za-z_][A-Za-z0-9_]*")


@dataclass(frozen=True)
class EditNoise:
    """The share of unmasked canvas positions to corrupt, and what each token may become."""

    fraction: float
    swaps: Mapping[int, tuple[int, ...]]  # token id -> plausible wrong replacements (operators, literals...)
    identifiers: frozenset[int]  # identifier tokens: each may become another identifier of the same example

    @classmethod
    def from_tokenizer(cls, tokenizer: PreTrainedTokenizerBase, fraction: float) -> EditNoise:
        if not 0 < fraction < 1:
            raise TrainingError(f"edit noise must be a share in (0, 1), not {fraction}")
        vocab = tokenizer.get_vocab()

        def single_token(text: str) -> int | None:
            ids = tokenizer(text, add_special_tokens=False)["input_ids"]
            return ids[0] if len(ids) == 1 else None

        swaps: dict[int, tuple[int, ...]] = {}
        groups = [*SWAP_GROUPS, *((str(d), str(d + 1)) for d in range(9))]
        for group in groups:
            for blank in ("", " "):
                spelled = {text: single_token(blank + text) for text in group}
                found = [token for token in spelled.values() if token is not None]
                for token in found:
                    others = tuple(other for other in found if other != token)
                    if others:
                        swaps[token] = tuple(sorted({*swaps.get(token, ()), *others}))
        identifiers = frozenset(
            token
            for token in vocab.values()
            if (text := tokenizer.decode([token]))
            and _IDENTIFIER.fullmatch(text)
            and not keyword.iskeyword(text.strip())
            and text.strip() not in ("True", "False", "None")
        )
        return cls(fraction, swaps, identifiers)

    def corrupt(
        self,
        noisy: torch.Tensor,
        labels: torch.Tensor,
        weights: torch.Tensor,
        candidates: torch.Tensor,
        generator: torch.Generator,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(noisy, labels, weights)`` with a ``fraction`` of the ``candidates (B, T)`` (unmasked canvas
        positions) replaced by a wrong token, labelled with the original at weight 1. Positions without a
        plausible replacement stay as they are."""
        noisy, labels, weights = noisy.clone(), labels.clone(), weights.clone()
        drawn = candidates & (torch.rand(noisy.shape, generator=generator) < self.fraction)
        for row, column in drawn.nonzero().tolist():
            token = int(noisy[row, column])
            options = self.swaps.get(token, ())
            if not options and token in self.identifiers:
                in_row = {int(t) for t in noisy[row][candidates[row]].tolist()}
                options = tuple(sorted(t for t in in_row & self.identifiers if t != token))
            if not options:
                continue
            choice = int(torch.randint(len(options), (1,), generator=generator))
            noisy[row, column] = options[choice]
            labels[row, column] = token
            weights[row, column] = 1.0
        return noisy, labels, weights
