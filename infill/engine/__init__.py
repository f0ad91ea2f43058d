"""The infilling engine: canvas, token healing, the pure denoising sampler, span length and ranking.

``InfillEngine`` is imported lazily so that ``infill.engine.types`` stays importable without torch
(the language server and infill.models read the request/config types).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from infill.engine.engine import InfillEngine

__all__ = ["InfillEngine"]


def __getattr__(name: str) -> object:
    if name == "InfillEngine":
        from infill.engine.engine import InfillEngine

        return InfillEngine
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
