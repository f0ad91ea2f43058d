"""Which rewrite code actions a document offers at a range. Listing is cheap (no model): the edit itself is
computed in ``codeAction/resolve``."""

from __future__ import annotations

from dataclasses import dataclass

from infill import regions
from infill.errors import MarkerError
from lsp.rewrite import Mode, Target

ACTION_KIND = "refactor.rewrite"
# Cheap textual pre-check before asking regions to parse markers properly.
MARKER_HINTS = ("<|fill|>", "infill:begin", "infill:end")


@dataclass(frozen=True)
class OfferedAction:
    title: str
    target: Target
    # Why the action cannot run (shown greyed out by clients that support it), e.g. unbalanced markers.
    disabled_reason: str | None = None
    mode: Mode = "regenerate"


def offered_actions(text: str, start: int, end: int, language: str | None) -> list[OfferedAction]:
    """Fill holes (only when the document has markers), Rewrite selection and Edit selection in place
    (non-empty range), Rewrite function and Edit function in place (inside a function). Offsets are into
    ``text``."""
    actions: list[OfferedAction] = []
    if any(hint in text for hint in MARKER_HINTS):
        try:
            if regions.find_fill_markers(text, language):
                actions.append(OfferedAction("Fill holes", "holes"))
        except MarkerError as error:
            actions.append(OfferedAction("Fill holes", "holes", disabled_reason=str(error)))
    if end > start:
        actions.append(OfferedAction("Rewrite selection", "range"))
        actions.append(OfferedAction("Edit selection in place", "range", mode="edit"))
    if regions.function_region(text, start, language) is not None:
        actions.append(OfferedAction("Rewrite function", "function"))
        actions.append(OfferedAction("Edit function in place", "function", mode="edit"))
    return actions
