"""Tree-sitter regions: which region to fill for a cursor or selection and how many tokens it may take,
``<|fill|>`` holes and ``infill:begin`` / ``infill:end`` regions, cutting a candidate at the end of its
syntactic unit without repeating the suffix, and rejecting candidates that add parse errors.

Offsets are Python str indices everywhere in this API. Knows nothing about models.
"""

from infill.regions.finalize import finalize_candidate
from infill.regions.functions import function_region
from infill.regions.languages import LANGUAGES, language_for_lsp_id, language_for_path
from infill.regions.markers import HOLE, MarkedRegion, find_fill_markers
from infill.regions.picker import expand_selection, pick_cursor_region
from infill.regions.region import DEFAULT_MAX_TOKENS, Region
from infill.regions.syntax import parse_error_count

__all__ = [
    "DEFAULT_MAX_TOKENS",
    "HOLE",
    "LANGUAGES",
    "MarkedRegion",
    "Region",
    "expand_selection",
    "finalize_candidate",
    "find_fill_markers",
    "function_region",
    "language_for_lsp_id",
    "language_for_path",
    "parse_error_count",
    "pick_cursor_region",
]
