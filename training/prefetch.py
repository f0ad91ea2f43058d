"""Training batches drawn ahead of the optimizer by worker processes, in step order.

On a GPU the model step takes milliseconds and drawing a batch in Python (span sampling, tokenizing the
gap, masking) takes longer, so batches come from ``data_workers`` processes through a torch DataLoader.
Every batch is a pure function of (seed, index, rank) (``training/objective.py``), so the stream is exactly
what the single-process loop draws, with or without workers: resuming and comparisons stay reproducible.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator

import torch
from torch.utils.data import DataLoader, Dataset

from training.objective import Batch

# draw(batch_size, seed, index, rank) -> Batch: an ExampleSource method, or block_diffusion.block_batch bound
# to a source
Draw = Callable[[int, int, int, int], Batch]


class _BatchByIndex(Dataset):
    """Batch number ``index`` of the stream; the DataLoader's workers inherit the source by fork."""

    def __init__(self, draw: Draw, batch_size: int, seed: int, rank: int) -> None:
        self.draw, self.batch_size, self.seed, self.rank = draw, batch_size, seed, rank

    def __getitem__(self, index: int) -> Batch:
        return self.draw(self.batch_size, self.seed, index, self.rank)


def _as_is(batch: Batch) -> Batch:
    return batch


def _quiet_worker(_: int) -> None:
    torch.set_num_threads(1)  # each worker draws one batch at a time; many threads only contend


def batch_stream(
    draw: Draw, *, batch_size: int, seed: int, rank: int, start: int, workers: int
) -> Iterator[Batch]:
    """Batches ``start``, ``start + 1``, ... forever; drawn here when ``workers`` is 0."""
    dataset = _BatchByIndex(draw, batch_size, seed, rank)
    if workers <= 0:
        return (dataset[index] for index in itertools.count(start))
    loader = DataLoader(
        dataset,
        batch_size=None,  # each item is already a batch
        sampler=itertools.count(start),
        num_workers=workers,
        prefetch_factor=4,
        worker_init_fn=_quiet_worker,
        collate_fn=_as_is,
        multiprocessing_context="fork" if "fork" in torch.multiprocessing.get_all_start_methods() else None,
    )
    return iter(loader)
