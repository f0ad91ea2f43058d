"""The sampler's view of a canvas: its editable positions as slots, and the slots a step asks logits for.

A row's editable positions, left to right, fill its first slots; a canvas with T positions and at most K
editable positions per row is worked on as (B, K) slots, so no per-step tensor is (B, T, V). Everything
here is dense tensor arithmetic with shapes fixed for the whole decode: no host synchronisation per step.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class Slots:
    positions: torch.Tensor  # (B, K) canvas position of each slot; distinct within a row
    valid: torch.Tensor  # (B, K) bool: the slot is an editable position (else it points at context)
    block: torch.Tensor  # (B, K) long: which block of the row the slot is in (0 for one-block strategies)
    block_width: int  # slots per block; a step asks for logits at one block of each row

    @property
    def count(self) -> int:
        return self.positions.shape[1]

    def rows(self, index: torch.Tensor) -> Slots:
        """The slots of the batch rows ``index`` (the sampler dropping stale rows)."""
        return Slots(self.positions[index], self.valid[index], self.block[index], self.block_width)

    def spread(self, values: torch.Tensor, columns: torch.Tensor, fill: float | bool) -> torch.Tensor:
        """Column values ``(B, W)`` at their slots ``columns (B, W)`` -> (B, K), ``fill`` elsewhere."""
        out = torch.full(self.positions.shape, fill, dtype=values.dtype, device=values.device)
        return out.scatter(1, columns, values)

    def to_canvas(self, values: torch.Tensor, shape: torch.Size, fill: float) -> torch.Tensor:
        """Slot values (B, K) laid out on the canvas (B, T), ``fill`` at every non-editable position."""
        canvas = torch.full(shape, fill, dtype=values.dtype, device=values.device)
        return canvas.scatter(1, self.positions, torch.where(self.valid, values, fill))

    def steps_per_block(self, steps: torch.Tensor, most: int = 0) -> torch.Tensor:
        """(B,) steps each block of a row gets: the row's ``steps (B,)`` shared out over its blocks (LLaDA's
        rule), at most ``most`` (0: no cap), at least one."""
        blocks = torch.where(self.valid, self.block, -1).amax(dim=1) + 1
        shared = steps.to(self.block.device) // blocks.clamp_min(1)
        return (shared.clamp_max(most) if most > 0 else shared).clamp_min(1)


@dataclass
class SlotState:
    """What the sampler has decided per slot, each (B, K)."""

    tokens: torch.Tensor
    confidences: torch.Tensor  # model probability of each token when it was committed
    commit_step: torch.Tensor  # step that committed each slot; -1 while masked

    def rows(self, index: torch.Tensor) -> SlotState:
        return SlotState(self.tokens[index], self.confidences[index], self.commit_step[index])

    def set(
        self, where: torch.Tensor, tokens: torch.Tensor | int, confidences: torch.Tensor | float, step: int
    ) -> None:
        self.tokens = torch.where(where, tokens, self.tokens)
        self.confidences = torch.where(where, confidences, self.confidences)
        self.commit_step = torch.where(where, step, self.commit_step)


def editable_slots(editable: torch.Tensor, block_size: int | None) -> Slots:
    """Slots for ``editable (B, T)``; ``block_size`` None puts the whole span in one block.

    Slots beyond a row's editable count point at distinct non-editable positions of that row (never
    committed), so scattering slot values back into the canvas never writes one position twice.
    """
    counts = editable.sum(dim=1, keepdim=True)  # (B, 1)
    width = int(counts.max())  # the one host read of a decode: it fixes every shape that follows
    order = torch.sort((~editable).to(torch.int8), dim=1, stable=True).indices[:, :width]
    rank = torch.arange(width, device=editable.device).expand_as(order)
    block_width = width if block_size is None else max(1, min(block_size, width))
    return Slots(order, rank < counts, rank // block_width, block_width)


def block_columns(slots: Slots, row_block: torch.Tensor) -> torch.Tensor:
    """(B, W) slot indices of each row's current block ``row_block (B,)``, W = block_width.

    A block that runs past the row's last slot wraps round to its first slots (committed or outside the
    block, so never committed this step): the indices stay distinct and the shape fixed.
    """
    offsets = torch.arange(slots.block_width, device=row_block.device)
    return (row_block.unsqueeze(1) * slots.block_width + offsets) % slots.count


def gather(values: torch.Tensor, columns: torch.Tensor) -> torch.Tensor:
    """``values (B, N)`` at ``columns (B, M)`` -> (B, M)."""
    return values.gather(1, columns)


class CanvasLogits:
    """A step's logits ``(B, W, V)`` as a constraint sees them: indexed ``[row, canvas position]`` like a
    (B, T, V) tensor. A position the step asks about gives its row of logits (a view: in-place edits land in
    the step's logits); any other gives a scratch row whose edits are dropped (it is not decoded this step).
    """

    def __init__(self, logits: torch.Tensor, positions: torch.Tensor, canvas_width: int) -> None:
        self._logits = logits
        self._positions = positions
        self._columns: list[dict[int, int]] | None = None
        self.shape = torch.Size((logits.shape[0], canvas_width, logits.shape[2]))
        self.device = logits.device

    def _column(self, key: tuple[int, int]) -> int | None:
        if not (isinstance(key, tuple) and len(key) == 2 and all(isinstance(k, int) for k in key)):
            raise TypeError("index the step's logits as [row, position] with two ints")
        if self._columns is None:  # one device read, only when a constraint looks at the logits
            self._columns = [{p: c for c, p in enumerate(row)} for row in self._positions.tolist()]
        return self._columns[key[0]].get(key[1])

    def __getitem__(self, key: tuple[int, int]) -> torch.Tensor:
        column = self._column(key)
        if column is None:
            return torch.zeros(self.shape[2], device=self.device)
        return self._logits[key[0], column]

    def __setitem__(self, key: tuple[int, int], value: torch.Tensor) -> None:
        column = self._column(key)
        if column is not None:
            self._logits[key[0], column] = value
