"""From a decoded span (ids and confidences) to a ranked, deduplicated list of text candidates."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from infill.engine.healing import strip_healed
from infill.engine.types import Candidate, TokenConfidence
from infill.models.base import TextTokenizer


@dataclass(frozen=True)
class ScoredCandidate:
    candidate: Candidate
    generated_tokens: int  # content tokens the model committed (before any line cut)
    # The span ended inside its canvas (an end_of_span, or the newline of a line fill); a span that fills
    # its whole canvas without ending was probably cut short by it.
    ended: bool = True


def span_candidate(
    span_ids: Sequence[int],
    confidences: Sequence[float],
    tokenizer: TextTokenizer,
    end_of_span_id: int,
    removed: str = "",
    line: bool = False,
) -> ScoredCandidate | None:
    """The text of one decoded span: tokens up to the first end_of_span (never included), the healed
    ``removed`` text taken off the start, cut after the first newline when ``line``.

    Score: mean log-probability of the kept tokens and of the end_of_span that closed them, so a candidate
    pays for stopping as well as for its content. None when healing could not be honoured.
    """
    length = list(span_ids).index(end_of_span_id) if end_of_span_id in span_ids else len(span_ids)
    content = list(span_ids[:length])
    token_texts = strip_healed([tokenizer.token_text(i) for i in content], removed)
    text = tokenizer.decode(content)
    if token_texts is None or not text.startswith(removed):
        return None
    text = text[len(removed) :]
    kept = len(content)
    ended = length < len(span_ids) or (line and "\n" in text)
    if line and "\n" in text:
        text = text[: text.index("\n") + 1]
        kept = _tokens_covering(token_texts, len(text))
    scored = list(confidences[:kept])
    if kept == length and length < len(span_ids) and not (line and text.endswith("\n")):
        scored.append(confidences[length])  # the end_of_span that closed the span (a line's is its newline)
    score = sum(math.log(max(c, 1e-12)) for c in scored) / max(1, len(scored))
    tokens = tuple(
        TokenConfidence(text=t, confidence=float(c))
        for t, c in zip(token_texts[:kept], confidences[:kept], strict=True)
        if t
    )
    candidate = Candidate(text=text, score=score, tokens=tokens)
    return ScoredCandidate(candidate, generated_tokens=length, ended=ended)


def newline_token_ids(token_texts: Sequence[str]) -> list[int]:
    """Ids whose text holds a newline: the tokens that end a line fill (the sampler's line stop; the same
    test span_candidate cuts a line at). ``token_texts[i]`` is the text of id i."""
    return [token_id for token_id, text in enumerate(token_texts) if "\n" in text]


def _tokens_covering(token_texts: list[str], chars: int) -> int:
    """How many leading tokens it takes to cover ``chars`` characters of their concatenated text."""
    covered = 0
    for count, text in enumerate(token_texts, start=1):
        covered += len(text)
        if covered >= chars:
            return count
    return len(token_texts)


def rank_candidates(scored: Sequence[ScoredCandidate], limit: int) -> list[ScoredCandidate]:
    """Best score first, one candidate per distinct text, at most ``limit``.

    A candidate that filled its canvas without ending (a spare canvas shorter than the budget cut it short)
    ranks below every one that ended: it is unfinished, and its score never paid for stopping.
    """
    ranked: list[ScoredCandidate] = []
    seen: set[str] = set()
    for item in sorted(scored, key=lambda s: (s.ended, s.candidate.score), reverse=True):
        if item.candidate.text not in seen:
            seen.add(item.candidate.text)
            ranked.append(item)
    return ranked[:limit]
