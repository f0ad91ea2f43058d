"""One ordered ``map`` over worker processes, for corpus steps that run once over hundreds of MB of text."""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor
from typing import TypeVar

T = TypeVar("T")
R = TypeVar("R")


def default_workers() -> int:
    """Every core the process may use (a GPU machine's 16, a laptop's 8, a shared CI box's 2)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def parallel_map(
    fn: Callable[[T], R], items: Sequence[T], workers: int = 1, chunksize: int = 64
) -> Iterable[R]:
    """``map(fn, items)`` in order; in ``workers`` processes when more than one (``fn`` must be top-level).

    Fork where the platform has it: the workers inherit the imported modules instead of importing them again.
    """
    if workers <= 1 or len(items) < 2:
        return map(fn, items)
    methods = multiprocessing.get_all_start_methods()
    context = multiprocessing.get_context("fork" if "fork" in methods else None)
    with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
        return list(pool.map(fn, items, chunksize=max(1, chunksize)))
