"""Pure helpers between LSP positions and Python string offsets, and between engine edits and LSP items.

Positions are converted with the document's position codec (UTF-16 by default): a column counts code units of
the client's encoding, never Python characters, so an emoji before the cursor shifts the offset by one
character but two columns. Lines are split the LSP way (``\\n``, ``\\r\\n``, ``\\r`` only), not with
``str.splitlines`` (which also splits at form feeds and U+2028 and would disagree with the client).
"""

from __future__ import annotations

import bisect
import re
from dataclasses import dataclass
from typing import Protocol

from lsprotocol import types

_LINE_BREAK = re.compile(r"\r\n|\r|\n")


class UnitCounter(Protocol):
    """What we use of pygls' PositionCodec: how many client code units a string takes."""

    def client_num_units(self, string: str) -> int: ...


class PositionOutOfRange(ValueError):
    """A client position names a line the document does not have."""


# Line breaks are counted per chunk of this many characters: indexing a 5 MB document costs a few hundred
# C-level str.count calls instead of a Python object per line, and finding a line scans at most one chunk.
CHUNK = 1 << 14


@dataclass(frozen=True)
class LineIndex:
    """Line <-> offset lookups over ``text`` with LSP line breaks (``\\n``, ``\\r\\n``, ``\\r``).

    Built once per document version on the protocol thread, so it must be cheap for big files: for text whose
    line breaks are all ``\\n`` or ``\\r\\n`` only newline counts per chunk are kept (``chunk_breaks[i]`` =
    newlines in ``text[: i * CHUNK]``); text with a lone ``\\r`` keeps every line start (``starts``).
    """

    text: str
    chunk_breaks: tuple[int, ...] = ()
    starts: tuple[int, ...] | None = None

    @classmethod
    def of(cls, text: str) -> LineIndex:
        if "\r" in text and text.count("\r") != text.count("\r\n"):
            return cls(text, starts=(0, *(match.end() for match in _LINE_BREAK.finditer(text))))
        breaks = [0]
        for chunk_start in range(0, len(text), CHUNK):
            breaks.append(breaks[-1] + text.count("\n", chunk_start, chunk_start + CHUNK))
        return cls(text, chunk_breaks=tuple(breaks))

    @property
    def line_count(self) -> int:
        return len(self.starts) if self.starts is not None else self.chunk_breaks[-1] + 1

    def line_start(self, line: int) -> int:
        if self.starts is not None:
            return self.starts[line]
        if line == 0:
            return 0
        # The line starts after the line-th newline: it lies in the chunk where the running count reaches it.
        chunk = bisect.bisect_left(self.chunk_breaks, line) - 1
        position, remaining = chunk * CHUNK - 1, line - self.chunk_breaks[chunk]
        for _ in range(remaining):
            position = self.text.index("\n", position + 1)
        return position + 1

    def line_end(self, line: int) -> int:
        """Offset of the end of ``line``'s content (before its line break)."""
        start = self.line_start(line)
        end = self.line_start(line + 1) if line + 1 < self.line_count else len(self.text)
        while end > start and self.text[end - 1] in "\r\n":
            end -= 1
        return end

    def line_of(self, offset: int) -> int:
        if self.starts is not None:
            return bisect.bisect_right(self.starts, offset) - 1
        chunk = min(offset // CHUNK, len(self.chunk_breaks) - 1)
        return self.chunk_breaks[chunk] + self.text.count("\n", chunk * CHUNK, offset)

    def offset(self, position: types.Position, codec: UnitCounter) -> int:
        """Offset of a client position; a column past the end of its line means the end of the line (LSP)."""
        if position.line < 0 or position.character < 0 or position.line >= self.line_count:
            raise PositionOutOfRange(
                f"position {position.line}:{position.character} is outside the document "
                f"({self.line_count} lines)"
            )
        start, end = self.line_start(position.line), self.line_end(position.line)
        content = self.text[start:end]
        if content.isascii():
            return start + min(position.character, len(content))
        units = 0
        for index, char in enumerate(content):
            if units >= position.character:
                return start + index
            units += codec.client_num_units(char)
        # A column inside the last character's surrogate pair or past the line's end.
        return end

    def position(self, offset: int, codec: UnitCounter) -> types.Position:
        offset = max(0, min(offset, len(self.text)))
        line = self.line_of(offset)
        return types.Position(
            line=line, character=codec.client_num_units(self.text[self.line_start(line) : offset])
        )

    def range(self, start: int, end: int, codec: UnitCounter) -> types.Range:
        return types.Range(start=self.position(start, codec), end=self.position(end, codec))


def apply_content_change(text: str, change: types.TextDocumentContentChangeEvent, codec: UnitCounter) -> str:
    """The document after one didChange content change (a change past the end applies at the end)."""
    if not isinstance(change, types.TextDocumentContentChangePartial):
        return change.text
    index = LineIndex.of(text)
    start, end = (
        _offset_or_end(index, position, codec) for position in (change.range.start, change.range.end)
    )
    return text[: min(start, end)] + change.text + text[max(start, end) :]


def _offset_or_end(index: LineIndex, position: types.Position, codec: UnitCounter) -> int:
    try:
        return index.offset(position, codec)
    except PositionOutOfRange:
        return len(index.text)


@dataclass(frozen=True)
class InlineInsertion:
    """An inline completion in offsets: replace ``text[start:end]`` (within one line) with ``insert_text``."""

    start: int
    end: int
    insert_text: str


def inline_insertion(
    index: LineIndex, cursor: int, start: int, end: int, new_text: str
) -> InlineInsertion | None:
    """Turn an engine edit into an insertion that starts at the cursor and ends on the cursor's line.

    The engine may re-generate text before the cursor (token healing, a block from the line start): that
    part must match what is already typed (or be indentation) and is dropped, so an item never deletes typed
    text. An edit that replaces text past the cursor's
    line cannot be shown inline (an inline range lies on one line) and gives None, as does an empty insertion.
    """
    if start < cursor:
        typed = index.text[start:cursor]
        if new_text.startswith(typed):
            new_text = new_text[len(typed) :]
        elif not typed.strip(" \t"):
            # A block region starts at the line start, so the engine rewrites the indentation the user typed:
            # the user's indentation wins; the block's own first-line indentation goes.
            new_text = new_text.lstrip(" \t")
        else:
            return None
        start = cursor
    elif start > cursor:
        # Text between the cursor and the edit stays as it is: insert it again in front.
        new_text, start = index.text[cursor:start] + new_text, cursor
    end = max(end, cursor)
    if end > index.line_end(index.line_of(cursor)):
        return None
    if not new_text or new_text == index.text[start:end]:
        return None
    return InlineInsertion(start, end, new_text)


def apply_selected_completion(text: str, sel_start: int, sel_end: int, sel_text: str) -> tuple[str, int]:
    """The document as it will read once the completion widget's selected item is accepted, and the cursor
    after it: inline completions are computed there and then extended back (``extend_over_selection``)."""
    return text[:sel_start] + sel_text + text[sel_end:], sel_start + len(sel_text)


def extend_over_selection(
    insertion: InlineInsertion, sel_start: int, sel_end: int, sel_text: str
) -> InlineInsertion:
    """Map an insertion computed on the selected-completion text back onto the real document.

    The spec requires the item to extend the selected completion: its text starts with the selected text and
    its range covers the selected range. ``insertion`` is in offsets of the applied text, starting at the
    cursor there (sel_start + len(sel_text)); text after it is the original text after ``sel_end``.
    """
    cursor_after = sel_start + len(sel_text)
    end = sel_end + (insertion.end - cursor_after)
    return InlineInsertion(sel_start, end, sel_text + insertion.insert_text)


@dataclass(frozen=True)
class ContextSlice:
    """A window of a large document around the cursor; offsets inside it are shifted by ``start``."""

    start: int
    end: int


def context_slice(text: str, cursor: int, before: int = 48_000, after: int = 16_000) -> ContextSlice:
    """The part of the document the engine needs for a completion, cut at line starts.

    The model sees far less than this (its window is a few thousand tokens); the slice only keeps region
    picking and tokenization of a multi-megabyte file from scanning all of it on every keystroke.
    """
    if len(text) <= before + after:
        return ContextSlice(0, len(text))
    start = max(0, cursor - before)
    if start > 0:
        newline = text.find("\n", start, cursor)
        start = newline + 1 if newline >= 0 else start
    end = min(len(text), cursor + after)
    if end < len(text):
        newline = text.rfind("\n", cursor, end)
        end = newline + 1 if newline >= 0 else end
    return ContextSlice(start, end)
