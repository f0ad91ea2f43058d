"""The one text-level entry point of the CLI and the language server: regions decide WHERE, the engine WHAT.

Every method takes the full text of a document and returns edits with character offsets into that same
text, so callers never re-derive positions. Candidates come back from the engine best first; each one is
passed through ``regions.finalize_candidate`` (cut at the end of its syntactic unit, suffix duplication
dropped, parse-error check) and only valid, distinct ones are kept.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal, cast

from infill import edit_mode, regions
from infill.engine import InfillEngine
from infill.engine.edit import EditConfig
from infill.engine.types import Candidate, DecodeConfig, FillRequest, FillResult, TokenConfidence
from infill.errors import InputError

logger = logging.getLogger(__name__)

FillMode = Literal["line", "block", "span"]
StopCallback = Callable[[], bool]

# Candidates decoded for a user-invoked completion, a rewrite or a marker fill: the extra ones share the
# forward passes of one batch and give the syntax check something to fall back on. An automatic completion
# decodes one row (the editor asks on every pause in typing) and these only when that one fails the check.
MIN_ENGINE_CANDIDATES = 2
# Canvases an invoked completion decodes however many it shows: the editors show up to three, and decoding as
# many for `infill complete`'s one keeps its best the top of the editor's list (a further canvas can only add
# a better-scoring candidate).
INVOKED_CANDIDATES = 3
# Further canvases decoded for a hole or region none of whose first canvases gave a valid fill.
SPARE_GAP_CANDIDATES = 8
# ...sampled at this temperature when the first ones were greedy (greedy has no further distinct canvases).
SPARE_TEMPERATURE = 0.8
# Budget for a `<|fill|>` hole when the caller gives none.
DEFAULT_HOLE_TOKENS = 64
# A regenerated region may come out somewhat longer than the code it replaces.
REGION_SLACK_TOKENS = 16


@dataclass(frozen=True)
class CompletionRequest:
    text: str
    offset: int  # character offset of the cursor in ``text``
    language: str | None
    mode: Literal["auto", "line", "block", "function"] = "auto"
    max_tokens: int | None = None
    num_candidates: int = 1
    # "automatic": the editor asked on its own (one canvas, more only when it fails the syntax check);
    # "invoked": the user asked (at least INVOKED_CANDIDATES canvases at once).
    trigger: Literal["automatic", "invoked"] = "invoked"


@dataclass(frozen=True)
class Edit:
    """Replace ``text[start:end]`` of the ORIGINAL text with ``new_text``."""

    start: int
    end: int
    new_text: str
    score: float
    tokens: tuple[TokenConfidence, ...] = ()
    # False when no candidate passed the syntax check and the best-scoring raw one was kept (fill_document
    # only: a marker must always be replaced, so the caller gets something to review rather than nothing).
    validated: bool = True


def fill_mode_for(kind: str) -> FillMode:
    """The engine's span mode for a region kind: lines stop at the newline, bodies are blocks."""
    if kind in ("line", "text_line"):
        return "line"
    if kind in ("block", "function", "region"):
        return "block"
    return "span"


def apply_edits(text: str, edits: Sequence[Edit]) -> str:
    """Apply non-overlapping edits (offsets into ``text``) in one pass; text outside them is kept as is."""
    ordered = sorted(edits, key=lambda e: (e.start, e.end))
    pieces: list[str] = []
    cursor = 0
    for edit in ordered:
        if not 0 <= edit.start <= edit.end <= len(text):
            raise InputError(f"edit {edit.start}..{edit.end} lies outside the text (length {len(text)})")
        if edit.start < cursor:
            raise InputError(f"edits overlap at offset {edit.start}")
        pieces.append(text[cursor : edit.start])
        pieces.append(edit.new_text)
        cursor = edit.end
    pieces.append(text[cursor:])
    return "".join(pieces)


def _with_placeholders(
    segments: Sequence[str], marks: Sequence[regions.MarkedRegion], language: str | None
) -> list[str]:
    """``segments`` (text between marks, then each mark's content, alternating) with each hole's content a
    neutral placeholder, chosen hole by hole in the document the holes before it already hold theirs in."""
    judged = list(segments)
    for index, mark in enumerate(marks):
        if mark.kind == "hole":
            prefix, suffix = "".join(judged[: 2 * index + 1]), "".join(judged[2 * index + 2 :])
            judged[2 * index + 1] = regions.neutral_placeholder(prefix, suffix, language)
    return judged


def _rows_for(request: CompletionRequest) -> int:
    """Canvases decoded at first for a completion request (see CompletionRequest.trigger)."""
    if request.trigger == "automatic":
        return max(1, request.num_candidates)
    return max(INVOKED_CANDIDATES, request.num_candidates)


def _tokens_for_text(tokens: tuple[TokenConfidence, ...], text: str) -> tuple[TokenConfidence, ...]:
    """The leading tokens that make up ``text`` when finalisation cut the candidate short (or appended
    closers); none when it changed the text otherwise (re-indented it), rather than misspelt ones."""
    kept: list[TokenConfidence] = []
    length = 0
    for token in tokens:
        if length >= len(text):
            break
        kept.append(token)
        length += len(token.text)
    spelled = "".join(token.text for token in kept)
    return tuple(kept) if spelled.startswith(text) or text.startswith(spelled) else ()


@dataclass(frozen=True)
class _Slot:
    """One gap to fill: the engine request plus what finalisation needs to judge its candidates."""

    start: int
    end: int
    request: FillRequest
    kind: str  # Region kind passed to finalize_candidate
    indent: str | None = None  # indentation of the region's first line: fills are re-indented to it
    # The document a fill is judged in, when it is not the one the model sees: (prefix, suffix) with the
    # other holes of the file holding a neutral placeholder (fill_document).
    judged_in: tuple[str, str] | None = None


class Infiller:
    """Combines tree-sitter regions and the diffusion engine; holds no per-document state."""

    def __init__(self, engine: InfillEngine) -> None:
        self.engine = engine

    @classmethod
    def load(
        cls,
        model: str | Path | None = None,
        *,
        device: str | None = None,
        trust_remote_code: bool = False,
        quantize: str | None = None,
    ) -> Infiller:
        engine = InfillEngine.from_pretrained(
            model, device=device, trust_remote_code=trust_remote_code, quantize=quantize
        )
        return cls(engine)

    # ----------------------------------------------------------------------------------------- plumbing

    def _config(self, config: DecodeConfig | None, num_candidates: int) -> DecodeConfig:
        base = config if config is not None else self.engine.default_config()
        return replace(base, num_candidates=max(num_candidates, base.num_candidates, MIN_ENGINE_CANDIDATES))

    def _run(
        self, slots: Sequence[_Slot], config: DecodeConfig, should_stop: StopCallback | None
    ) -> list[FillResult]:
        if not slots:
            return []
        results = self.engine.fill([slot.request for slot in slots], config, should_stop=should_stop)
        assert len(results) == len(slots), "the engine returns one FillResult per request"
        return results

    def _valid_edits(self, slot: _Slot, candidates: Sequence[Candidate], language: str | None) -> list[Edit]:
        """Finalised, syntax-checked, distinct candidates as edits, best first (whole before cut back)."""
        ranked: list[tuple[bool, Edit]] = []  # (cut back to a valid prefix, edit)
        seen: set[str] = set()
        for candidate in candidates:
            prefix, suffix = slot.judged_in or (slot.request.prefix, slot.request.suffix)
            text, shortened = regions.finalize_fill(
                prefix, candidate.text, suffix, language, slot.kind, slot.indent
            )
            # U+FFFD means the span decoded to invalid UTF-8 (stray byte tokens): never code anyone wants.
            if text is None or not text.strip() or text in seen or "\ufffd" in text:
                continue
            seen.add(text)
            tokens = candidate.tokens if text == candidate.text else _tokens_for_text(candidate.tokens, text)
            ranked.append((shortened, Edit(slot.start, slot.end, text, candidate.score, tokens)))
        # A candidate valid as its whole unit beats one that had to be cut back to a valid prefix.
        ranked.sort(key=lambda item: (item[0], -item[1].score))
        return [edit for _, edit in ranked]

    def _region_slot(self, text: str, region: regions.Region) -> _Slot:
        request = FillRequest(
            prefix=text[: region.start],
            suffix=text[region.end :],
            max_tokens=region.max_tokens,
            mode=fill_mode_for(region.kind),
        )
        return _Slot(region.start, region.end, request, region.kind, region.indent)

    def _regeneration_budget(self, old_code: str, at_least: int = 0) -> int:
        """Tokens for code that replaces ``old_code``: its length plus slack, within half the model's window
        (the other half is context; a span alone larger than the window is ContextTooLong)."""
        old_tokens = len(self.engine.loaded.tokenizer.encode(old_code))
        wanted = max(at_least, old_tokens + old_tokens // 4 + REGION_SLACK_TOKENS)
        return min(wanted, max(1, self.engine.loaded.max_positions // 2))

    def _regenerate_slot(self, text: str, region: regions.Region) -> _Slot:
        """Like _region_slot, but the old code is masked and its token length sets the budget."""
        budget = self._regeneration_budget(text[region.start : region.end], region.max_tokens)
        slot = self._region_slot(text, region)
        return replace(slot, request=replace(slot.request, max_tokens=budget))

    # ------------------------------------------------------------------------------------ completions

    def complete(
        self,
        request: CompletionRequest,
        config: DecodeConfig | None = None,
        should_stop: StopCallback | None = None,
    ) -> list[Edit]:
        """Completions at the cursor, best first; [] when no candidate survives the syntax check."""
        return self.complete_many([request], config, should_stop)[0]

    def complete_many(
        self,
        requests: Sequence[CompletionRequest],
        config: DecodeConfig | None = None,
        should_stop: StopCallback | None = None,
        stale: Callable[[], Sequence[bool]] | None = None,
    ) -> list[list[Edit]]:
        """complete() for many cursors in one batched engine call (and a second one for the automatic
        requests whose one canvas gave nothing that passes the syntax check). ``stale()``, one flag per
        request, drops a request that went stale from the batch (InfillEngine.fill): [] and no retry."""
        if not requests:
            return []
        for request in requests:
            if not 0 <= request.offset <= len(request.text):
                raise InputError(
                    f"cursor offset {request.offset} is outside the text (length {len(request.text)})"
                )
        slots = [
            self._region_slot(
                r.text, regions.pick_cursor_region(r.text, r.offset, r.language, r.mode, r.max_tokens)
            )
            for r in requests
        ]
        config = config if config is not None else self.engine.default_config()
        rows = [_rows_for(r) for r in requests]
        first = [replace(slot.request, num_candidates=count) for slot, count in zip(slots, rows, strict=True)]
        kept = self._checked(requests, slots, self._fill(first, config, should_stop, stale))
        # An automatic completion whose one canvas failed the check gets the spare ones after all.
        gone = stale() if stale is not None else [False] * len(requests)
        again = [
            i for i, r in enumerate(requests) if r.trigger == "automatic" and not kept[i] and not gone[i]
        ]
        if again:
            retried = [
                replace(slots[i].request, num_candidates=MIN_ENGINE_CANDIDATES, skip_candidates=rows[i])
                for i in again
            ]
            results = self._fill(
                retried, config, should_stop, None if stale is None else lambda: [stale()[i] for i in again]
            )
            checked = self._checked([requests[i] for i in again], [slots[i] for i in again], results)
            for i, edits in zip(again, checked, strict=True):
                kept[i] = edits
        logger.debug(
            "complete: %d request(s), regions %s, candidates kept %s, %d retried",
            len(requests),
            [slot.kind for slot in slots],
            [len(edits) for edits in kept],
            len(again),
        )
        return kept

    def _fill(
        self,
        requests: Sequence[FillRequest],
        config: DecodeConfig,
        should_stop: StopCallback | None,
        stale: Callable[[], Sequence[bool]] | None,
    ) -> list[FillResult]:
        # ``stale`` only when there is one: engines that do not drop stale requests keep working.
        more = {} if stale is None else {"stale": stale}
        return self.engine.fill(requests, config, should_stop=should_stop, **more)

    def _checked(
        self, requests: Sequence[CompletionRequest], slots: Sequence[_Slot], results: Sequence[FillResult]
    ) -> list[list[Edit]]:
        assert len(results) == len(slots), "the engine returns one FillResult per request"
        return [
            self._valid_edits(slot, result.candidates, r.language)[: r.num_candidates]
            for slot, result, r in zip(slots, results, requests, strict=True)
        ]

    # --------------------------------------------------------------------------------------- rewrites

    def rewrite(
        self,
        text: str,
        start: int,
        end: int,
        *,
        language: str | None,
        config: DecodeConfig | None = None,
        should_stop: StopCallback | None = None,
    ) -> Edit | None:
        """Regenerate the syntactic region enclosing ``text[start:end]``; None when nothing valid came out."""
        _check_selection(text, start, end)
        return self._regenerate(
            text, regions.expand_selection(text, start, end, language), language, config, should_stop
        )

    def rewrite_function(
        self,
        text: str,
        offset: int,
        *,
        language: str | None,
        config: DecodeConfig | None = None,
        should_stop: StopCallback | None = None,
    ) -> Edit | None:
        """Regenerate the body of the function around ``offset``; None outside a function or when invalid."""
        region = regions.function_region(text, offset, language)
        if region is None:
            return None
        return self._regenerate(text, region, language, config, should_stop)

    def _regenerate(
        self,
        text: str,
        region: regions.Region,
        language: str | None,
        config: DecodeConfig | None,
        should_stop: StopCallback | None,
    ) -> Edit | None:
        slot = self._regenerate_slot(text, region)
        (result,) = self._run([slot], self._config(config, 1), should_stop)
        edits = self._valid_edits(slot, result.candidates, language)
        return edits[0] if edits else None

    # ------------------------------------------------------------------------------- edit mode (edit_mode.py)

    def edit_region(
        self,
        text: str,
        start: int,
        end: int,
        *,
        language: str | None,
        config: DecodeConfig | None = None,
        edit_config: EditConfig | None = None,
        should_stop: StopCallback | None = None,
    ) -> edit_mode.EditOutcome:
        """Edit ``text[start:end]`` in place (an empty range: the statements around it); the outcome says
        whether the model changed it, found nothing to change, or proposed code that fails the check."""
        _check_selection(text, start, end)
        if start == end:
            region = regions.expand_selection(text, start, end, language)
            start, end = region.start, region.end
        return edit_mode.edit_span(
            self.engine,
            text,
            start,
            end,
            language,
            decode=config,
            config=edit_config,
            should_stop=should_stop,
        )

    def edit_function(
        self,
        text: str,
        offset: int,
        *,
        language: str | None,
        config: DecodeConfig | None = None,
        edit_config: EditConfig | None = None,
        should_stop: StopCallback | None = None,
    ) -> edit_mode.EditOutcome | None:
        """Edit the body of the function around ``offset`` in place; None outside any function."""
        region = regions.function_region(text, offset, language)
        if region is None:
            return None
        return self.edit_region(
            text,
            region.start,
            region.end,
            language=language,
            config=config,
            edit_config=edit_config,
            should_stop=should_stop,
        )

    def suggest_next_edit(
        self,
        text: str,
        offset: int,
        *,
        language: str | None,
        config: DecodeConfig | None = None,
        edit_config: EditConfig | None = None,
        should_stop: StopCallback | None = None,
    ) -> edit_mode.EditOutcome:
        """A next-edit suggestion: edit mode on the lines around the cursor (edit_mode.NEXT_EDIT_LINES)."""
        if not 0 <= offset <= len(text):
            raise InputError(f"cursor offset {offset} is outside the text (length {len(text)})")
        start, end = edit_mode.lines_around(text, offset)
        return self.edit_region(
            text,
            start,
            end,
            language=language,
            config=config,
            edit_config=edit_config,
            should_stop=should_stop,
        )

    def edit_document(
        self,
        text: str,
        *,
        language: str | None,
        config: DecodeConfig | None = None,
        edit_config: EditConfig | None = None,
        should_stop: StopCallback | None = None,
    ) -> list[edit_mode.EditOutcome]:
        """Edit every infill:begin/end region in place (markers kept), one outcome per region."""
        return edit_mode.edit_marked_regions(
            self.engine, text, language, decode=config, config=edit_config, should_stop=should_stop
        )

    # ----------------------------------------------------------------------------------------- markers

    def fill_document(
        self,
        text: str,
        *,
        language: str | None,
        config: DecodeConfig | None = None,
        should_stop: StopCallback | None = None,
        max_tokens: int | None = None,
    ) -> list[Edit]:
        """Fill every `<|fill|>` hole and regenerate every infill:begin/end region in one batched call.

        Each gap sees the rest of the document as written, minus all markers (other regions keep their old
        code). Its candidates are judged with every other hole holding a neutral placeholder
        (``regions.neutral_placeholder``), so the empty holes' broken code neither hides nor excuses a broken
        fill; a hole inside a comment or string is filled with text of that literal. The edits span the
        markers, so ``apply_edits`` removes them. Every marker gets an edit: when no candidate passes the
        syntax check the best-scoring raw one is used and ``validated`` is False.
        """
        marks = regions.find_fill_markers(text, language)
        if not marks:
            return []
        # The document as the model sees it around any one gap: holes vanish, regions keep their old code.
        # segments = [before m0, kept m0, between m0 and m1, kept m1, ..., after the last mark]
        segments: list[str] = []
        cursor = 0
        for mark in marks:
            segments.append(text[cursor : mark.start])
            segments.append(text[mark.fill_start : mark.fill_end] if mark.kind == "region" else "")
            cursor = mark.end
        segments.append(text[cursor:])
        judged = _with_placeholders(segments, marks, language)
        slots: list[_Slot] = []
        for index, mark in enumerate(marks):
            prefix = "".join(segments[: 2 * index + 1])
            suffix = "".join(segments[2 * index + 2 :])
            if mark.kind == "region":
                budget = max_tokens or self._regeneration_budget(text[mark.fill_start : mark.fill_end])
                kind = "region"
            else:
                budget = max_tokens or DEFAULT_HOLE_TOKENS
                kind = regions.hole_literal_kind(prefix, suffix, language) or "span"
            request = FillRequest(prefix=prefix, suffix=suffix, max_tokens=budget, mode=fill_mode_for(kind))
            around = ("".join(judged[: 2 * index + 1]), "".join(judged[2 * index + 2 :]))
            slots.append(_Slot(mark.start, mark.end, request, kind, mark.indent, around))
        config = self._config(config, 1)
        results = self._run(slots, config, should_stop)
        checked = [
            self._valid_edits(slot, result.candidates, language)
            for slot, result in zip(slots, results, strict=True)
        ]
        # A gap none of whose canvases gave a valid fill gets spare canvases (further lengths) before it is
        # given up: one more batched call, for those gaps only.
        again = [index for index, valid in enumerate(checked) if not valid]
        if again:
            spares = [
                replace(
                    slots[index],
                    request=replace(
                        slots[index].request,
                        num_candidates=SPARE_GAP_CANDIDATES,
                        skip_candidates=config.num_candidates,
                    ),
                )
                for index in again
            ]
            # Greedy decoding has only as many distinct canvases as lengths: the spares are drawn (seeded).
            spare_config = config
            if config.temperature <= 0:
                spare_config = replace(config, temperature=SPARE_TEMPERATURE, seed=config.seed or 0)
            for index, result in zip(again, self._run(spares, spare_config, should_stop), strict=True):
                checked[index] = self._valid_edits(slots[index], result.candidates, language)
        edits: list[Edit] = []
        for slot, result, valid in zip(slots, results, checked, strict=True):
            if valid:
                edits.append(valid[0])
                continue
            best = result.best
            logger.info(
                "no candidate for the gap at offset %d passed the syntax check; keeping the best raw one",
                slot.start,
            )
            raw = best.text if best is not None else ""
            if slot.request.suffix.startswith("\n"):
                raw = raw.rstrip()  # the line break after the gap is already in the suffix
            edits.append(Edit(slot.start, slot.end, raw, best.score if best else float("-inf"), (), False))
        return edits

    # ------------------------------------------------------------------------------------- benchmarks

    def fill_batch(
        self,
        rows: Sequence[tuple[str, str]],
        *,
        mode: str = "span",
        max_tokens: int = 64,
        config: DecodeConfig | None = None,
        progress: Callable[[int], None] | None = None,
        batch_size: int = 16,
    ) -> list[str]:
        """The best completion for each (prefix, suffix) row: exactly the text that goes between them.

        No region picking and no syntax check (rows carry no language): this is the raw model, as the
        evaluation harness compares it with an autoregressive peer. Rows are batched by length (less
        padding per forward pass) and returned in input order. ``progress`` gets the number of rows finished
        after each device batch.
        """
        if mode not in ("line", "block", "span"):
            raise InputError(f"unknown fill mode {mode!r} (expected line, block or span)")
        if batch_size < 1:
            raise InputError(f"batch size must be at least 1, got {batch_size}")
        fill_mode = cast(FillMode, mode)
        base = config if config is not None else self.engine.default_config()
        config = replace(base, num_candidates=1)
        by_length = sorted(range(len(rows)), key=lambda i: len(rows[i][0]) + len(rows[i][1]))
        completions = [""] * len(rows)
        for first in range(0, len(rows), batch_size):
            chunk = by_length[first : first + batch_size]
            requests = [
                FillRequest(prefix=rows[i][0], suffix=rows[i][1], max_tokens=max_tokens, mode=fill_mode)
                for i in chunk
            ]
            for i, result in zip(chunk, self.engine.fill(requests, config), strict=True):
                best = result.best
                completions[i] = best.text if best is not None else ""
            if progress is not None:
                progress(len(chunk))
        return completions


def _check_selection(text: str, start: int, end: int) -> None:
    """A rewrite's or an edit's selection must lie within the text, start before end."""
    if not 0 <= start <= end <= len(text):
        raise InputError(f"selection {start}..{end} is outside the text (length {len(text)})")
