"""Block-diffusion decoding (SDAR's generate.py): token ids in, token ids out, one request at a time.

The prompt and the new tokens sit on blocks of ``b`` absolute positions (block i: positions i*b .. i*b+b-1).
The prompt's whole blocks are computed once into an exact key/value cache (block_model.py), in the same pass
as the first step of the first block; then each block is decoded against that cache: the prompt tokens that
spill into the first block stay, the rest start masked, and each step asks the model for the block's logits
and commits, among the masked positions, every one whose confidence is above ``threshold`` -- or, when fewer
than the step's share are, the ``share`` most confident (the authors' ``low_confidence_dynamic``; the share
is ``get_num_transfer_tokens``: the block's size spread evenly over ``steps`` steps, the remainder first). A
committed block is appended to the cache in the pass of the next block's first step (generate.py spends a
pass of its own on it), and decoding stops after the block in which an end id (or, for a line fill, a
newline) appears, or at ``max_tokens``.

Invariants: committed tokens and prompt tokens are never changed; the mask and banned ids are never
committed (their logits are -inf); every step commits at least one position. Two deliberate differences from
generate.py, both no-ops for its defaults (blocks of 4, 4 steps): the share is capped at the masked count
(generate.py's top-k would otherwise commit prompt tokens again), and banned ids get -inf (the authors'
loop may write any id; infill never writes control tokens into code, and a family's stop ids are folded
into end-of-span at the LM head, stops.py).

Fast-dLLM v2 (BlockDiffusionModel ``shift`` and ``sub_block_size``, its generate without the block cache):
row i of a pass is the prediction of position i + 1, so a block's first token is predicted by the previous
block's last position, in a pass of its own that caches the finished block (or the prompt's blocks), and is
committed before the block's steps; the steps then commit inside one sub-block at a time (the threshold rule
with a share of one).

The dllm project's BD3LM sampler (its Qwen2.5-Coder conversions; BlockDiffusionModel
``ends_blocks_at_prompt``) counts blocks back from the prompt's end instead (it left-pads the prompt to whole
blocks, the pads neither queries nor keys): the prompt's first block is a partial one, nothing spills into
the first new block, and the last new block is cut at ``max_tokens``. Its ``low_confidence`` rule (the
share's most confident positions only) is the threshold rule with a threshold of 1.0, and its schedule is
``linear_schedule`` (BlockDiffusionModel ``schedule`` "linear"): one position a step when a block has as
many steps as positions, as in its evaluation's 32 steps per block of 32.

``PrefixCaches`` keeps the caches of recent prompts (memory-capped, least recently used evicted): a prompt
that starts with the same whole blocks as a recent one (the previous keystroke's) reuses their keys and
values, which is exact because a block's keys depend only on blocks before it (and on where blocks start:
an entry serves prompts of the same phase only).
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

import torch

from infill.engine.scoring import banned_token_ids, choose_tokens, make_generator, token_confidence
from infill.engine.types import DecodeConfig
from infill.errors import Cancelled
from infill.models.base import SpecialTokens
from infill.models.block_model import BlockDiffusionModel
from infill.models.families import PREFIX, SUFFIX
from infill.models.qwen2 import KeyValueCache

logger = logging.getLogger(__name__)

DEFAULT_CACHE_BYTES = 512 * 2**20


@dataclass
class BlockDecodeOutput:
    ids: list[int]  # the new tokens (whole blocks; the caller cuts at the first end id)
    confidences: list[float]  # model probability of each new token when it was committed
    forward_passes: int
    cached_positions: int  # prompt positions whose keys came from PrefixCaches instead of a pass


def transfer_schedule(block_size: int, steps: int) -> list[int]:
    """Positions to commit at each step of a block (generate.py's get_num_transfer_tokens)."""
    base, remainder = divmod(block_size, steps)
    return [base + (1 if step < remainder else 0) for step in range(steps)]


def linear_schedule(block_size: int, steps: int) -> list[int]:
    """The dllm project's get_num_transfer_tokens under its linear scheduler (alpha(t) = 1 - t): each step
    commits the masks left times 1 - (1 - alpha(s)) / (1 - alpha(t)) for its times t > s (the ratio in
    float32, as its scheduler computes it), rounded half to even; steps that commit nothing are dropped."""
    shares, left = [], block_size
    for step in range(steps):
        t = torch.tensor((steps - step) / steps)
        s = torch.tensor((steps - step - 1) / steps)
        kept = ((1 - (1 - s)) / (1 - (1 - t))).item()
        share = min(int(torch.round(torch.tensor(left * (1 - kept), dtype=torch.float64))), left)
        left -= share
        shares.append(share)
        if left == 0:
            break
    return [share for share in shares if share > 0]


class PrefixCaches:
    """Key/value caches of recent prompts' whole blocks, least recently used first out, at most
    ``max_bytes`` together (0 keeps none)."""

    def __init__(self, max_bytes: int = DEFAULT_CACHE_BYTES) -> None:
        self.max_bytes = max_bytes
        # (block phase, ids): a block's keys depend on where the blocks start (BlockDiffusionModel.phase).
        self._entries: OrderedDict[tuple[int, tuple[int, ...]], KeyValueCache] = OrderedDict()

    def lookup(self, ids: list[int], block_size: int, phase: int = 0) -> tuple[int, KeyValueCache | None]:
        """The longest cached run of whole blocks (on the grid of ``phase``) ``ids`` starts with: (its
        length, its cache)."""
        best: tuple[int, KeyValueCache | None, tuple[int, tuple[int, ...]] | None] = (0, None, None)
        for key, cache in self._entries.items():
            if key[0] != phase:
                continue
            shared = (_common_length(key[1], ids) + phase) // block_size * block_size - phase
            if shared > best[0]:
                best = (shared, cache.truncated(shared), key)
        if best[2] is not None:
            self._entries.move_to_end(best[2])
        return best[0], best[1]

    def store(self, ids: list[int], cache: KeyValueCache | None, phase: int = 0) -> None:
        if cache is None or self.max_bytes <= 0 or cache.nbytes() > self.max_bytes:
            return
        # A stored prompt that this one extends is redundant: its blocks are this one's first blocks.
        for older in [k for k in self._entries if k[0] == phase and _common_length(k[1], ids) == len(k[1])]:
            del self._entries[older]
        self._entries[phase, tuple(ids)] = cache
        while sum(c.nbytes() for c in self._entries.values()) > self.max_bytes:
            self._entries.popitem(last=False)

    def __len__(self) -> int:
        return len(self._entries)


def _common_length(a: tuple[int, ...] | list[int], b: list[int]) -> int:
    length = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        length += 1
    return length


@torch.inference_mode()
def block_denoise(
    model: BlockDiffusionModel,
    prompt: list[int],
    max_tokens: int,
    special: SpecialTokens,
    config: DecodeConfig,
    *,
    should_stop: Callable[[], bool] | None = None,
    stop_ids: torch.Tensor | None = None,
    caches: PrefixCaches | None = None,
) -> BlockDecodeOutput:
    """Decode up to ``max_tokens`` new tokens after ``prompt`` (see the module doc).

    ``config``: ``block_steps`` steps per block (0: one per position), ``threshold``, ``temperature``,
    ``top_p``, ``seed``; its ``block_size`` is not used (the model's is what it was trained on).
    ``stop_ids``: ids that end decoding after their block (end-of-span always does)."""
    size = model.block_size
    device = next(model.model.parameters()).device
    mask_id = special.mask_id
    banned = banned_token_ids(special, device)
    ends = torch.tensor([special.end_of_span_id], device=device)
    ends = ends if stop_ids is None else torch.cat([ends, stop_ids.to(device)])
    generator = make_generator(config.seed, device)
    schedule = linear_schedule if model.schedule == "linear" else transfer_schedule
    phase = model.phase(len(prompt))  # blocks that end at the prompt: its first block is a partial one
    # The new tokens: whole blocks (generate.py), or exactly max_tokens (dllm's last block is a partial one).
    total = -(-(len(prompt) + phase + max_tokens) // size) * size - phase
    total = len(prompt) + max_tokens if model.ends_blocks_at_prompt else total
    whole = (len(prompt) + phase) // size * size - phase  # the prompt's whole blocks: cached before decoding
    reused, cache = caches.lookup(prompt[:whole], size, phase) if caches is not None else (0, None)
    if model.shift and whole == len(prompt) and reused == whole > 0:
        reused, cache = whole - size, cache.truncated(whole - size) if cache else None  # see next_first below
    # Ids to append to the cache with the next pass: the prompt's uncached whole blocks, later each
    # committed block (generate.py spends a pass of its own on each, store_kv).
    pending = prompt[reused:whole]
    # A shifted model (Fast-dLLM v2) predicts a block's first token from the hidden state of the last
    # position before it, in a pass of its own that also caches the blocks before: committed first, as its
    # generate does, before any step of the block.
    next_first: torch.Tensor | None = None
    passes = 0
    if model.shift and pending:
        next_first, cache = model.append_blocks(_ids(pending, device), cache)
        passes += 1
        if caches is not None:
            caches.store(prompt[:whole], cache)
        pending = []
    new_ids: list[int] = []
    confidences: list[float] = []
    for start in range(whole, total, size):
        width = min(size, total - start)
        block = torch.full((1, width), mask_id, dtype=torch.long, device=device)
        spill = prompt[start : start + width]
        block[0, : len(spill)] = torch.tensor(spill, dtype=torch.long)
        confidence = torch.ones(width, device=device)
        if next_first is not None and not spill:
            next_first[banned] = float("-inf")
            chosen, probs = choose_tokens(next_first[None], config.temperature, config.top_p, generator)
            block[0, 0], confidence[0] = chosen[0], token_confidence(probs, chosen)[0]
        for lo, hi in _windows(width, model.sub_block_size):
            steps = config.block_steps or hi - lo
            if model.steps_within_budget:  # LLaDA2's generate: steps = min(steps, gen_length // minimal_topk)
                steps = min(steps, max(1, max_tokens))
            for share in schedule(hi - lo, steps):
                masked = block[0] == mask_id
                masked[:lo] = masked[hi:] = False
                if not masked.any():
                    break
                if should_stop is not None and should_stop():
                    raise Cancelled("Cancelled")
                logits, cache = model.block_logits(
                    block, cache, _ids(pending, device) if pending else None, phase=phase
                )
                logits = logits[0]  # (b, V)
                if model.shift:  # row i is the hidden state at i - 1's (row 0 keeps its own: never masked)
                    logits = torch.cat([logits[:1], logits[:-1]])
                passes += 1
                if pending and start == whole and caches is not None:
                    caches.store(prompt[:whole], cache, phase)  # the prompt's blocks, for the next keystroke
                pending = []
                logits[:, banned] = float("-inf")
                chosen, probs = choose_tokens(logits, config.temperature, config.top_p, generator)
                chosen_p = token_confidence(probs, chosen)
                scores = torch.where(masked, chosen_p, float("-inf"))
                confident = scores > config.threshold
                commit = confident
                wanted = min(share, int(masked.sum()))
                if int(confident.sum()) < wanted:
                    commit = torch.zeros_like(masked)
                    commit[scores.topk(wanted).indices] = True
                block[0] = torch.where(commit, chosen, block[0])
                confidence = torch.where(commit, chosen_p, confidence)
        assert not (block[0] == mask_id).any(), "a block's steps commit all of it"
        fresh = slice(len(spill), width)
        new_ids += block[0, fresh].tolist()
        confidences += confidence[fresh].tolist()
        if torch.isin(block[0, fresh], ends).any() or start + width >= total:
            break
        if model.shift:
            next_first, cache = model.append_blocks(block, cache)
            passes += 1
        else:
            pending = block[0].tolist()
    return BlockDecodeOutput(new_ids, confidences, passes, reused)


def _windows(size: int, sub_block_size: int | None) -> list[tuple[int, int]]:
    """The ranges of a block a step may commit in, one after another: its sub-blocks, or the whole block."""
    step = sub_block_size or size
    return [(lo, min(lo + step, size)) for lo in range(0, size, step)]


def _ids(ids: list[int], device: torch.device) -> torch.Tensor:
    return torch.tensor([ids], dtype=torch.long, device=device)


def block_prompt(prefix_ids: list[int], suffix_ids: list[int], special: SpecialTokens) -> list[int]:
    """The ids a block model continues: the tokenizer's leading ids, then the family's layout
    (families.Family.block_prompt) with the prefix and suffix put in; without a layout, the prefix alone. A
    layout that starts with the suffix (an earlier document) is cut to the prefix on when there is none."""
    layout = special.block_prompt or (PREFIX,)
    if not suffix_ids and layout[0] == SUFFIX:
        layout = layout[layout.index(PREFIX) :]
    ids = list(special.prefix_ids)
    for piece in layout:
        ids += prefix_ids if piece == PREFIX else suffix_ids if piece == SUFFIX else [int(piece)]
    return ids


def framing_length(special: SpecialTokens) -> int:
    """How many ids a block prompt adds to the prefix and suffix."""
    return len(special.prefix_ids) + sum(isinstance(piece, int) for piece in special.block_prompt)
