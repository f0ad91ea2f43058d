"""Token healing: a cursor inside a word (``def fo|``) or after a blank (``x = |``, the most common cursor
position) must not force the model to continue a broken token.

The prefix's trailing word-like tokens are taken off the canvas and their text ("removed") becomes a
constraint on the first span positions: a token there must either start with the removed text, or be a
proper prefix of it, and then the next position continues with the remainder. The engine drops the removed
text from the result again, so the completion starts exactly at the cursor.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Callable
from dataclasses import dataclass, replace

import torch

from infill.engine.slots import CanvasLogits
from infill.models.base import SpecialTokens, TextTokenizer

# A token that may be the start of a longer one: optional leading blank, then word characters; or one blank
# alone (``x = `` ends in a lone " " token, which code tokenizers glue to the next word: " 42", " foo").
# Longer runs of blanks (indentation) stay: a blank has no shorter token to stand for it, so healing a single
# one costs no forward pass, while an indentation run would be decided piece by piece.
_WORDISH = re.compile(r"[ \t]?\w+|[ \t]")
# Each healed token may cost a forward pass (a token that is a proper prefix is decided alone); a word
# is rarely split into more pieces than this.
MAX_HEALED_TOKENS = 3


class TokenTexts:
    """The text of every token id (built once per engine) and lookups by text for healing."""

    def __init__(self, tokenizer: TextTokenizer, special: SpecialTokens) -> None:
        self.texts = [tokenizer.token_text(i) for i in range(tokenizer.vocab_size)]
        unusable = {special.mask_id, special.end_of_span_id, special.pad_id, *special.banned_ids}
        pairs = sorted((text, i) for i, text in enumerate(self.texts) if text and i not in unusable)
        self._sorted_texts = [text for text, _ in pairs]
        self._sorted_ids = [i for _, i in pairs]

    def text(self, token_id: int) -> str:
        """The token's text; empty for ids beyond the tokenizer (padding rows of the embedding)."""
        return self.texts[token_id] if token_id < len(self.texts) else ""

    def starting_with(self, text: str) -> list[int]:
        """Ids whose text starts with ``text`` (a contiguous run of the sorted texts)."""
        low = bisect.bisect_left(self._sorted_texts, text)
        high = low
        while high < len(self._sorted_texts) and self._sorted_texts[high].startswith(text):
            high += 1
        return self._sorted_ids[low:high]

    def proper_prefixes_of(self, text: str) -> list[int]:
        """Ids whose text is a non-empty proper prefix of ``text``."""
        found: list[int] = []
        for end in range(1, len(text)):
            low = bisect.bisect_left(self._sorted_texts, text[:end])
            high = bisect.bisect_right(self._sorted_texts, text[:end])
            found.extend(self._sorted_ids[low:high])
        return found


def heal_prefix(prefix_ids: list[int], texts: TokenTexts) -> tuple[list[int], str]:
    """Split off the word being typed at the end of the prefix: ``(kept ids, removed text)``.

    Backs up over trailing tokens while together they still read as one word (``def ad`` tokenizes as
    ``def`` `` a`` ``d``; the model knows the word as `` add``, so `` a`` and ``d`` both go), at most
    MAX_HEALED_TOKENS of them.
    """
    removed = ""
    count = 0
    for token in reversed(prefix_ids[-MAX_HEALED_TOKENS:]):
        text = texts.text(token)
        if not _WORDISH.fullmatch(text + removed):
            break
        removed = text + removed
        count += 1
    return prefix_ids[: len(prefix_ids) - count], removed


def strip_healed(token_texts: list[str], removed: str) -> list[str] | None:
    """The tokens' texts with ``removed`` taken off their start; None when they do not start with it."""
    out: list[str] = []
    rest = removed
    for text in token_texts:
        if rest:
            if text.startswith(rest):
                text, rest = text[len(rest) :], ""
            elif rest.startswith(text):
                text, rest = "", rest[len(text) :]
            else:
                return None
        out.append(text)
    return None if rest else out


@dataclass(frozen=True)
class HealedSpan:
    row: int
    start: int  # first span position
    end: int  # one past the last span position
    removed: str


class HealingConstraint:
    """The sampler's ``constrain`` hook for healed rows (see sampler.Constraint).

    Walks each healed span from its start over committed tokens consuming the removed text, and restricts
    the first still-masked position to tokens consistent with what remains. When a proper prefix is
    allowed there, that position is decided alone this step (later span positions held), so the next
    position is always constrained by the remainder of the token actually chosen.
    """

    def __init__(self, texts: TokenTexts, spans: list[HealedSpan], mask_id: int) -> None:
        self.texts = texts
        self.spans = spans
        self.mask_id = mask_id
        self._whole: dict[str, list[int]] = {}
        self._partial: dict[str, list[int]] = {}

    def rows(self, kept: list[int]) -> HealingConstraint:
        """This constraint for the batch of rows ``kept`` only (row ``kept[i]`` becomes row i)."""
        new_row = {row: index for index, row in enumerate(kept)}
        spans = [replace(span, row=new_row[span.row]) for span in self.spans if span.row in new_row]
        kept_constraint = HealingConstraint(self.texts, spans, self.mask_id)
        kept_constraint._whole, kept_constraint._partial = self._whole, self._partial
        return kept_constraint

    def __call__(
        self, ids: torch.Tensor, logits: CanvasLogits | torch.Tensor, priority: torch.Tensor
    ) -> None:
        """``logits`` indexed [row, canvas position] (the sampler's CanvasLogits, or a (B, T, V) tensor)."""
        for span in self.spans:
            span_ids = ids[span.row, span.start : span.end].tolist()  # one device read per span
            offset, rest = self._pending(span_ids, span.removed)
            # The committed tokens of the chain are held: remasking one would let a new token there disagree
            # with the later ones, which were chosen to continue it.
            chain_end = min(span.end, span.start + offset + (0 if rest else 1))
            priority[span.row, span.start : chain_end] = float("-inf")
            if not rest:
                continue
            position = span.start + offset
            next_masked = offset + 1 < len(span_ids) and span_ids[offset + 1] == self.mask_id
            whole = self._cached(self._whole, rest, self.texts.starting_with)
            partial = self._cached(self._partial, rest, self.texts.proper_prefixes_of) if next_masked else []
            if not whole and not partial:
                continue  # nothing can continue the removed text; the engine drops such candidates
            keep = torch.full((logits.shape[-1],), float("-inf"), device=logits.device)
            keep[torch.tensor(whole + partial, device=logits.device)] = 0.0
            logits[span.row, position] += keep
            if partial:
                priority[span.row, position] = float("inf")
                priority[span.row, position + 1 : span.end] = float("-inf")

    def _pending(self, span_ids: list[int], removed: str) -> tuple[int, str]:
        """Offset in the span of the healing chain's first masked position, and the removed text still to
        produce there ("" once the chain is complete)."""
        rest = removed
        for offset, token in enumerate(span_ids):
            if token == self.mask_id:
                return offset, rest
            text = self.texts.text(token)
            if text.startswith(rest) or not text or not rest.startswith(text):
                return offset, ""
            rest = rest[len(text) :]
        return len(span_ids), ""

    @staticmethod
    def _cached(cache: dict[str, list[int]], rest: str, lookup: Callable[[str], list[int]]) -> list[int]:
        if rest not in cache:
            cache[rest] = lookup(rest)
        return cache[rest]
