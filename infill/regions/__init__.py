"""Tree-sitter regions: which region to fill for a cursor or selection and how many tokens it may take,
``<|fill|>`` holes and ``infill:begin`` / ``infill:end`` regions, cutting a candidate at the end of its
syntactic unit without repeating the suffix, and rejecting candidates that are not valid code there
(``fill_is_valid``: no syntax error on or around the fill's lines, none added elsewhere, and for Python
compiled by Python itself).

Offsets are Python str indices everywhere in this API. Knows nothing about models.
"""

from infill.regions.finalize import finalize_candidate, finalize_fill
from infill.regions.functions import function_region
from infill.regions.holes import hole_literal_kind, neutral_placeholder
from infill.regions.languages import LANGUAGES, language_for_lsp_id, language_for_path
from infill.regions.markers import HOLE, MarkedRegion, find_fill_markers
from infill.regions.picker import expand_selection, pick_cursor_region
from infill.regions.region import DEFAULT_MAX_TOKENS, Region
from infill.regions.syntax import parse_error_count
from infill.regions.validity import document_parses, fill_is_valid

__all__ = [
    "DEFAULT_MAX_TOKENS",
    "HOLE",
    "LANGUAGES",
    "MarkedRegion",
    "Region",
    "document_parses",
    "expand_selection",
    "fill_is_valid",
    "finalize_candidate",
    "finalize_fill",
    "find_fill_markers",
    "function_region",
    "hole_literal_kind",
    "language_for_lsp_id",
    "language_for_path",
    "neutral_placeholder",
    "parse_error_count",
    "pick_cursor_region",
]
