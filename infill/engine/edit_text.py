"""Edit mode at the engine's text edge: a region of existing code in, the region as the model edits it out.

The region is tokenized on its own and every token is tied to the characters it spells, so the text that
comes back is assembled from the ORIGINAL characters of every token the model kept and the decoded text of
the tokens it wrote: untouched code is byte-identical by construction. A token that spells no whole
characters (part of a multi-byte character) is grouped with its neighbours into one piece and held.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from infill.engine.canvas import context_budget, trim_context
from infill.engine.edit import EditConfig, edit_in_place
from infill.engine.engine import InfillEngine
from infill.engine.types import DecodeConfig
from infill.errors import InputError
from infill.models.base import TextTokenizer

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class EditRequest:
    """Edit ``region``, which sits between ``prefix`` and ``suffix``."""

    prefix: str
    region: str
    suffix: str


@dataclass(frozen=True)
class TokenSpan:
    """``text[start:end]`` is one token (or one held piece), with the model's probability of it."""

    start: int
    end: int
    confidence: float


@dataclass(frozen=True)
class EditedRegion:
    text: str  # the region after editing; the request's region itself when nothing changed
    confidences: tuple[TokenSpan, ...]  # over ``text``
    # Over the ORIGINAL region: P(each token) when it was masked, from the first scoring pass (what the
    # model doubts in the code as it stands, even where its own proposal is not used).
    original_confidences: tuple[TokenSpan, ...]
    changed_tokens: int  # tokens written or deleted
    rounds: int
    forward_passes: int
    elapsed_ms: float


@dataclass(frozen=True)
class _Pieces:
    """Region tokens tied to characters: token i spells ``region[start[i]:end[i]]``; a token inside a
    multi-token piece spells the whole piece if it is the piece's first token and nothing otherwise."""

    start: list[int]
    end: list[int]
    editable: list[bool]


def _pieces(region: str, ids: Sequence[int], tokenizer: TextTokenizer) -> _Pieces | None:
    """The characters of each token, or None when the tokens do not spell ``region`` exactly."""
    starts: list[int] = []
    ends: list[int] = []
    editable: list[bool] = []
    cursor = 0
    group: list[int] = []
    for token in ids:
        group.append(token)
        text = tokenizer.token_text(token) if len(group) == 1 else tokenizer.decode(group)
        if "\ufffd" in text and "\ufffd" not in region[cursor : cursor + len(text)]:
            continue  # part of a character: the piece goes on
        if not region.startswith(text, cursor):
            return None
        whole = len(group) == 1
        for k in range(len(group)):
            # The piece's first token spells all of it; the others spell nothing, at its end.
            starts.append(cursor if k == 0 else cursor + len(text))
            ends.append(cursor + len(text))
            editable.append(whole)
        cursor += len(text)
        group = []
    if group or cursor != len(region):
        return None
    return _Pieces(starts, ends, editable)


def edit_region_text(
    engine: InfillEngine,
    request: EditRequest,
    decode: DecodeConfig | None = None,
    config: EditConfig | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> EditedRegion:
    """Edit mode on one region (see infill/engine/edit.py); raises ContextTooLong for a region larger than
    the model's window."""
    started = time.perf_counter()
    config = config or EditConfig()
    check_edit_config(config)
    decode = decode or engine.default_config()
    loaded = engine.loaded
    tokenizer = loaded.tokenizer
    ids = tokenizer.encode(request.region)
    pieces = _pieces(request.region, ids, tokenizer)
    if not ids or pieces is None:
        return EditedRegion(request.region, (), (), 0, 0, 0, (time.perf_counter() - started) * 1000)
    cap = decode.context_tokens if decode.context_tokens is not None else engine.context_tokens
    budget = min(cap, context_budget(loaded.special, len(ids), loaded.max_positions))
    context = trim_context(request.prefix, request.suffix, tokenizer.encode, budget)
    special = loaded.special
    out = edit_in_place(
        loaded.model,
        [*special.prefix_ids, *context.prefix_ids],
        ids,
        [*context.suffix_ids, *special.suffix_ids],
        special,
        config,
        decode,
        editable=pieces.editable,
        device=loaded.device,
        should_stop=should_stop,
    )
    original = tuple(
        TokenSpan(s, e, c)
        for s, e, c in zip(pieces.start, pieces.end, out.first_confidences, strict=True)
        if e > s
    )
    text, spans = _assemble(request.region, pieces, out.tokens, out.origin, out.confidences, tokenizer)
    kept = sum(origin is not None for origin in out.origin)
    edited = EditedRegion(
        text=text,
        confidences=spans,
        original_confidences=original,
        changed_tokens=(len(ids) - kept) + (len(out.tokens) - kept),
        rounds=out.rounds,
        forward_passes=out.forward_passes,
        elapsed_ms=(time.perf_counter() - started) * 1000,
    )
    logger.info(
        "edit: %d tokens, %d re-opened, %d changed, %d rounds, %d forward passes, %.0f ms",
        len(ids),
        out.reopened,
        edited.changed_tokens,
        edited.rounds,
        edited.forward_passes,
        edited.elapsed_ms,
    )
    return edited


def _assemble(
    region: str,
    pieces: _Pieces,
    tokens: list[int],
    origin: list[int | None],
    confidences: list[float],
    tokenizer: TextTokenizer,
) -> tuple[str, tuple[TokenSpan, ...]]:
    """The edited text (original characters for kept tokens, decoded text for written runs) and its spans."""
    parts: list[str] = []
    spans: list[TokenSpan] = []
    length = 0
    i = 0
    while i < len(tokens):
        source = origin[i]
        if source is not None:
            piece = region[pieces.start[source] : pieces.end[source]]
            if piece:
                spans.append(TokenSpan(length, length + len(piece), confidences[i]))
            parts.append(piece)
            length += len(piece)
            i += 1
            continue
        run_end = i
        while run_end < len(tokens) and origin[run_end] is None:
            run_end += 1
        run = tokens[i:run_end]
        written = tokenizer.decode(run)
        texts = [tokenizer.token_text(t) for t in run]
        if "".join(texts) == written:
            for token_text, confidence in zip(texts, confidences[i:run_end], strict=True):
                if token_text:
                    spans.append(TokenSpan(length, length + len(token_text), confidence))
                length += len(token_text)
        else:
            spans.append(TokenSpan(length, length + len(written), min(confidences[i:run_end])))
            length += len(written)
        parts.append(written)
        i = run_end
    return "".join(parts), tuple(spans)


def check_edit_config(config: EditConfig) -> None:
    """Raise InputError for an EditConfig edit mode cannot honour."""
    problems: list[str] = []
    for name in ("groups", "rounds"):
        value = getattr(config, name)
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            problems.append(f"{name} must be an integer >= 1, not {value!r}")
    if not 0 < config.doubt_ratio < 1:
        problems.append(f"doubt_ratio must be in (0, 1), not {config.doubt_ratio}")
    if not 0 < config.max_reopen <= 1:
        problems.append(f"max_reopen must be in (0, 1], not {config.max_reopen}")
    if problems:
        raise InputError("Bad edit settings: " + "; ".join(problems))
