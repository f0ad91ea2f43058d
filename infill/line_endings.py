"""An LF view of text with CRLF line endings, and the way back.

Models are trained on LF text, so the CLI and the language server both show the model the LF view of a
document and map its edits back: offsets to the original text, generated newlines to the document's own
line ending. The same document thus gets the same candidates from either, whatever its line endings.
"""

from __future__ import annotations

import bisect
import dataclasses
import re
from dataclasses import dataclass
from typing import Any, TypeVar

# An edit: a dataclass with ``start``, ``end`` (offsets) and ``new_text`` (infill.infiller.Edit).
EditT = TypeVar("EditT", bound=Any)


@dataclass(frozen=True)
class LfView:
    """``text`` with every CRLF turned into LF, and the way back to offsets in the original."""

    text: str
    newline: str  # the original's dominant line ending, used for generated text
    # LF-view offsets of the "\n" of every CRLF that was collapsed, ascending.
    collapsed: tuple[int, ...]

    def original_offset(self, offset: int) -> int:
        # An offset AT a collapsed "\n" maps to before its "\r", so a span ending at a line end stops before
        # the whole line ending, and one starting there takes it whole.
        return offset + bisect.bisect_left(self.collapsed, offset)

    def original_text(self, generated: str) -> str:
        """Generated (LF) text in the file's own line-ending style."""
        return generated.replace("\n", self.newline) if self.newline != "\n" else generated

    def original_edit(self, edit: EditT) -> EditT:
        """An edit of the LF view as an edit of the original: offsets mapped back, generated newlines in the
        file's own style."""
        return dataclasses.replace(
            edit,
            start=self.original_offset(edit.start),
            end=self.original_offset(edit.end),
            new_text=self.original_text(edit.new_text),
        )

    def lf_offset(self, original: int) -> int:
        """The LF-view offset of an offset into the original text (one between a "\r" and its "\n" maps
        to that "\n")."""
        # CRLF number k has its "\r" at original offset collapsed[k] + k; count those before ``original``.
        crlfs = range(len(self.collapsed))
        return original - bisect.bisect_left(crlfs, original, key=lambda k: self.collapsed[k] + k)


def lf_view(text: str) -> LfView:
    collapsed: list[int] = []
    for count, match in enumerate(re.finditer("\r\n", text)):
        collapsed.append(match.start() - count)
    lone_lf = text.count("\n") - len(collapsed)
    newline = "\r\n" if len(collapsed) > lone_lf else "\n"
    return LfView(text.replace("\r\n", "\n"), newline, tuple(collapsed))
