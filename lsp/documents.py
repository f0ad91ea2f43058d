"""Open documents as the server works on them: an immutable snapshot of one version, and the bookkeeping of
requests in flight per document."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from lsprotocol import types
from pygls.workspace import TextDocument

from infill import regions
from lsp.text_edits import LineIndex


@dataclass
class PendingRequest:
    """One in-flight request per (kind, document); a newer one marks the older superseded."""

    superseded: bool = False


@dataclass(frozen=True)
class DocumentSnapshot:
    """An open document at one version, with its line index and the client's position codec."""

    uri: str
    version: int
    language_id: str
    language: str | None  # infill.regions language name; None = unknown (line heuristics)
    index: LineIndex
    codec: Any  # pygls PositionCodec (client_num_units)

    @property
    def text(self) -> str:
        return self.index.text

    def offset(self, position: types.Position) -> int:
        return self.index.offset(position, self.codec)


def snapshot_of(uri: str, document: TextDocument, cached: LineIndex | None) -> DocumentSnapshot:
    """Snapshot a pygls document; ``cached`` is reused while the text is the same string object (pygls makes a
    new string per change), so a 5 MB document is indexed once per version, not once per request."""
    source = document.source
    index = cached if cached is not None and cached.text is source else LineIndex.of(source)
    language_id = document.language_id or ""
    language = regions.language_for_lsp_id(language_id) if language_id else None
    if language is None and document.path:
        language = regions.language_for_path(document.path)
    assert document.version is not None
    return DocumentSnapshot(uri, document.version, language_id, language, index, document.position_codec)
