"""DreamOn's length states in the diffusion objective: the model learns to grow and shrink its own canvas.

DreamOn (DreamLM/DreamOn ``src/trainer/sft_expand_dataset.py``) trains a span example as follows, and the
engine's expand/delete decoding (infill/engine/expand_delete.py) is what it prepares a model for:

- the middle is followed by ``k`` end tokens, ``k`` uniform in ``[0, max_delete]`` (64 by default): decoded
  inside the middle, an end token deletes its position, so the model learns to shrink a canvas that is too
  long; every end token is masked (the model must always say "delete here");
- each middle position is masked with probability ``t``; then, left to right, two adjacent masked middle
  positions are merged with probability ``merge_prob``: the first becomes one mask whose target is the expand
  token, the second leaves the sequence. Decoded as expand, a position becomes two masks, so the model learns
  to grow a canvas that is too short.

Unlike the authors' loop, a merged-out position is removed from the sequence (their attention mask hides it,
which with their position ids is the same), and it is not merged again with the next one (theirs can chain a
merge through a hidden position, which drops a token the expand cannot give back).
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

from infill.errors import TrainingError
from infill.models.families import EXPAND_TOKEN

if TYPE_CHECKING:  # objective.py imports this module
    from training.objective import Batch, ExampleSource

MAX_DELETE = 64  # DreamOn's max_delete: end tokens appended after the middle, at most
MERGE_PROB = 0.5  # DreamOn's merge_prob


@dataclass(frozen=True)
class LengthStates:
    """The option: ids of the expand, end (delete) and mask tokens, and DreamOn's two rates."""

    expand: int
    end: int
    mask: int
    max_delete: int = MAX_DELETE
    merge_prob: float = MERGE_PROB

    @classmethod
    def from_vocab(cls, vocab: dict[str, int], end: int, mask: int) -> LengthStates:
        expand = vocab.get(EXPAND_TOKEN)
        if expand is None:
            raise TrainingError(f"length states need an {EXPAND_TOKEN} token in the tokenizer")
        return cls(expand=expand, end=end, mask=mask)


@dataclass(frozen=True)
class StatedCanvas:
    """A canvas after masking and merging: what the model sees, and the targets where it is scored."""

    inputs: list[int]
    targets: list[int | None]  # None: not scored (kept visible)
    merges: int
    deletes: int


def state_canvas(
    middle: list[int], deletes: int, rate: float, states: LengthStates, rng: random.Random
) -> StatedCanvas:
    """Mask ``middle + [end] * deletes`` at ``rate`` (every end token masked), then merge adjacent masked
    middle positions into expand slots (see the module doc)."""
    masked = [rng.random() < rate for _ in middle]
    inputs: list[int] = []
    targets: list[int | None] = []
    merges = 0
    i = 0
    while i < len(middle):
        if not masked[i]:
            inputs.append(middle[i])
            targets.append(None)
            i += 1
        elif i + 1 < len(middle) and masked[i + 1] and rng.random() < states.merge_prob:
            inputs.append(states.mask)
            targets.append(states.expand)
            merges += 1
            i += 2
        else:
            inputs.append(states.mask)
            targets.append(middle[i])
            i += 1
    inputs += [states.mask] * deletes
    targets += [states.end] * deletes
    return StatedCanvas(inputs, targets, merges, deletes)


def length_state_example(
    source: ExampleSource, states: LengthStates, rate: float, rng: random.Random, room: int
) -> tuple[list[int], list[int | None], range]:
    """(ids, targets, canvas positions) of one span example of at most ``room`` tokens: prefix + stated
    canvas + suffix."""
    prefix, middle, suffix, _ = source.sample_gap(rng)
    middle = middle[: room // 2]
    deletes = rng.randint(0, max(0, min(states.max_delete, room - len(middle) - 1)))
    canvas = state_canvas(middle, deletes, rate, states, rng)
    if not any(target is not None for target in canvas.targets):  # nothing masked: score one position
        canvas = state_canvas(middle, max(1, deletes), rate, states, rng)
    prefix, suffix = source._fit_context(rng, prefix, suffix, room - len(canvas.inputs))
    ids = prefix + canvas.inputs + suffix
    targets: list[int | None] = [None] * len(prefix) + canvas.targets + [None] * len(suffix)
    return ids, targets, range(len(prefix), len(prefix) + len(canvas.inputs))


def length_state_batch(
    source: ExampleSource,
    states: LengthStates,
    rng: random.Random,
    rates: list[float],
    generator: torch.Generator,
) -> Batch:
    """A diffusion batch whose span examples carry DreamOn's states; plain windows stay plain MDLM.

    One example per mask rate in ``rates`` (the caller's stratified rates). Weights are 1/t on the scored
    positions masked at rate t and 1 on the end tokens (masked always); the normaliser counts the canvas
    positions, as in the plain objective. With the source's edit noise, unmasked canvas positions get
    plausible wrong tokens to undo, as in the plain objective.
    """
    from training.objective import Batch

    T = source.seq_len
    before, after = list(source.ids.prefix_ids), list(source.ids.suffix_ids)
    room = T - len(before) - len(after)
    input_ids = torch.full((len(rates), T), source.ids.pad, dtype=torch.long)
    attention = torch.zeros_like(input_ids)
    labels = torch.full_like(input_ids, -100)
    weights = torch.zeros(input_ids.shape)
    maskable = torch.zeros(len(rates), dtype=torch.long)
    canvas = torch.zeros(input_ids.shape, dtype=torch.bool)
    for b, rate in enumerate(rates):
        if rng.random() < source.span_fraction:
            ids, targets, positions = length_state_example(source, states, rate, rng, room)
            maskable[b] = len(positions)
            canvas[b, positions.start + len(before) : positions.stop + len(before)] = True
        else:
            window = source._window(rng, room)
            hidden = [rng.random() < rate for _ in window]
            if not any(hidden):
                hidden[rng.randrange(len(hidden))] = True
            ids = [states.mask if h else token for token, h in zip(window, hidden, strict=True)]
            targets = [token if h else None for token, h in zip(window, hidden, strict=True)]
            maskable[b] = len(window)
            canvas[b, len(before) : len(before) + len(window)] = True
        ids = before + ids + after
        targets = [None] * len(before) + targets + [None] * len(after)
        input_ids[b, : len(ids)] = torch.tensor(ids)
        attention[b, : len(ids)] = 1
        for position, target in enumerate(targets):
            if target is not None:
                labels[b, position] = target
                # 1/t undoes masking at rate t; an end token is masked always, so its weight is 1 (at
                # 1/t the many always-masked ends of low-t examples swamp the loss, and the model learned
                # to call every mask an end: P(end) ~0.9 at the first of 4 masks after 700 steps).
                weights[b, position] = 1.0 if target == states.end else 1.0 / rate
    if source.edit_noise is not None:
        candidates = canvas & (labels == -100)
        input_ids, labels, weights = source.edit_noise.corrupt(
            input_ids, labels, weights, candidates, generator
        )
    return Batch(input_ids, attention, labels, weights, int(maskable.sum()), maskable)
