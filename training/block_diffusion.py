"""Block diffusion (BD3-LM) for infilling: autoregressive over blocks of the middle, masked diffusion inside.

Layout of one example (T positions, right-padded), the context first as in PSM so the middle can grow:

    C = <|fim_prefix|> prefix <|fim_suffix|> suffix <|fim_middle|>      context, clean
    X = middle + <|endofspan|>..., a whole number of blocks of ``block_size``
    C + X (clean) + X' (X with each position masked with probability t)

BD3-LM's vectorised training: noisy block b attends to the context, the clean blocks before b and itself;
clean block b attends to the context and the clean blocks up to b; the context to itself. Noisy and clean
copies of a block share position ids. Every block is trained in one pass; the loss is MDLM's on X', with
mask rates clipped to [0.3, 0.8] as BD3-LM does (lower variance).

Decoding (``BlockDiffusionGenerator``) runs the same mask: context + committed blocks + one masked block,
denoised with the engine's default rule (commit every position at least 90% sure, at least the most
confident one per step; end-of-span only at the leftmost open position), block after block, until a block
holds ``<|endofspan|>`` or the budget is spent. No length estimate is needed: the span ends where the model
ends it. Plain windows (the rest of the mix) are a
random-length clean context followed by blocks of the stream.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Sequence
from pathlib import Path

import torch

from training.objective import Batch, ExampleSource, TokenIds, example_rng
from training.tokenizer import load_code_tokenizer

CONTEXT, CLEAN, NOISY, PAD = 0, 1, 2, 3
MAX_MIDDLE_BLOCKS = 8
CLIPPED_RATES = (0.3, 0.8)


def block_attention(segment: torch.Tensor, block: torch.Tensor) -> torch.Tensor:
    """(B, T) segment kinds and block indices -> (B, 1, T, T) bool, True where query row may attend key."""
    q_seg, k_seg = segment[:, :, None], segment[:, None, :]
    q_blk, k_blk = block[:, :, None], block[:, None, :]
    allowed = (k_seg == CONTEXT) & (q_seg != PAD)
    allowed |= (q_seg == CLEAN) & (k_seg == CLEAN) & (k_blk <= q_blk)
    allowed |= (q_seg == NOISY) & (k_seg == CLEAN) & (k_blk < q_blk)
    allowed |= (q_seg == NOISY) & (k_seg == NOISY) & (k_blk == q_blk)
    size = segment.shape[1]
    allowed |= torch.eye(size, dtype=torch.bool, device=segment.device)  # padding rows see themselves only
    return allowed[:, None]


def _layout(context: list[int], middle: list[int], block_size: int) -> tuple[list[int], list[int], list[int]]:
    """(segments, blocks, positions) of context + clean middle + noisy middle."""
    c, m = len(context), len(middle)
    blocks = [j // block_size for j in range(m)]
    segments = [CONTEXT] * c + [CLEAN] * m + [NOISY] * m
    return segments, [-1] * c + blocks + blocks, list(range(c)) + [c + j for j in range(m)] * 2


def block_example(source: ExampleSource, rng: random.Random, block_size: int) -> tuple[list[int], list[int]]:
    """(context ids, middle ids): the middle a whole number of blocks, ending in end-of-span when it fits."""
    T, ids = source.seq_len, source.ids
    max_middle = min(MAX_MIDDLE_BLOCKS * block_size, (T // 3) // block_size * block_size)
    if rng.random() >= source.span_fraction:
        window = source._window(rng, T)
        middle_len = rng.randint(1, max_middle // block_size) * block_size
        context_len = min(len(window) - middle_len, T - 2 * middle_len)
        return window[:context_len], window[context_len : context_len + middle_len]
    prefix, middle, suffix, _ = source.sample_gap(rng)
    middle = [*middle, ids.end_of_span]
    middle += [ids.end_of_span] * (-len(middle) % block_size)
    middle = middle[:max_middle]
    budget = T - 2 * len(middle) - 3
    prefix, suffix = source._fit_context(rng, prefix, suffix, budget)
    return [ids.fim_prefix, *prefix, ids.fim_suffix, *suffix, ids.fim_middle], middle


def block_batch(
    source: ExampleSource, batch_size: int, seed: int, step: int, rank: int = 0, *, block_size: int = 8
) -> Batch:
    rng = example_rng(seed, step, rank, "block-diffusion")
    gen = torch.Generator().manual_seed(rng.getrandbits(62))
    offset = rng.random()
    T, pad, mask = source.seq_len, source.ids.pad, source.ids.mask
    input_ids = torch.full((batch_size, T), pad, dtype=torch.long)
    segments = torch.full((batch_size, T), PAD, dtype=torch.long)
    blocks = torch.full((batch_size, T), -1, dtype=torch.long)
    positions = torch.zeros((batch_size, T), dtype=torch.long)
    for b in range(batch_size):
        context, middle = block_example(source, rng, block_size)
        seg, blk, pos = _layout(context, middle, block_size)
        n = len(seg)
        input_ids[b, :n] = torch.tensor(context + middle + middle)
        segments[b, :n], blocks[b, :n] = torch.tensor(seg), torch.tensor(blk)
        positions[b, :n] = torch.tensor(pos)
    # BD3-LM's clipped schedule: t in [0.3, 0.8]. A block has few positions, so at small t the 1/t weight of
    # its one or two masked tokens swamps the batch (unclipped, training barely moves off the unigram loss).
    low, high = CLIPPED_RATES
    rates = torch.tensor([low + (high - low) * ((offset + i / batch_size) % 1.0) for i in range(batch_size)])
    rates = rates[:, None]
    noisy = segments == NOISY
    masked = (torch.rand((batch_size, T), generator=gen) < rates) & noisy
    for b in range(batch_size):
        if not masked[b].any():
            choices = noisy[b].nonzero().flatten()
            masked[b, choices[torch.randint(len(choices), (1,), generator=gen)]] = True
    labels = torch.where(masked, input_ids, torch.full_like(input_ids, -100))
    return Batch(
        torch.where(masked, torch.full_like(input_ids, mask), input_ids),
        (segments != PAD).long(),
        labels,
        masked.float() / rates,
        int(noisy.sum()),
        noisy.sum(1),
        position_ids=positions,
        attention_4d=block_attention(segments, blocks),
    )


class BlockDiffusionGenerator:
    """``Callable[[Sequence[tuple[str, str]]], list[str]]`` over a block-diffusion model dir, row by row."""

    def __init__(
        self, model_dir: str | Path, *, mode: str = "span", max_tokens: int = 64, threshold: float = 0.9
    ) -> None:
        from training.eval.generation import GenerationStats
        from training.model_factory import load_base_model

        self.model, _ = load_base_model(Path(model_dir))
        self.model.eval()
        self.tokenizer = load_code_tokenizer(Path(model_dir))
        self.ids = TokenIds.from_tokenizer(self.tokenizer)
        self.block_size = int(getattr(self.model.config, "infill_block_size", 8))
        self.window = int(self.model.config.max_position_embeddings)
        self.mode, self.max_tokens, self.threshold = mode, max_tokens, threshold
        self.stats = GenerationStats()
        specials = set(self.tokenizer.all_special_ids) - {self.ids.end_of_span}
        self.banned = torch.tensor(sorted(specials))
        self.newlines = {i for i in range(len(self.tokenizer)) if "\n" in self.tokenizer.decode([i])}

    def __call__(self, rows: Sequence[tuple[str, str]]) -> list[str]:
        started = time.perf_counter()
        out = [self._fill(prefix, suffix) for prefix, suffix in rows]
        self.stats.rows += len(rows)
        self.stats.seconds += time.perf_counter() - started
        return out

    @torch.no_grad()
    def _fill(self, prefix: str, suffix: str) -> str:
        from training.ar_generate import trim_to_budget

        ids, L = self.ids, self.block_size
        blocks = math.ceil(self.max_tokens / L)
        encode = self.tokenizer
        pre, suf = encode([prefix, suffix], add_special_tokens=False)["input_ids"]
        pre, suf = trim_to_budget(pre, suf, self.window - blocks * L - 3)
        context = [ids.fim_prefix, *pre, ids.fim_suffix, *suf, ids.fim_middle]
        middle: list[int] = []
        for _ in range(blocks):
            middle += self._denoise_block(context, middle)
            ended = ids.end_of_span in middle or (self.mode == "line" and self.newlines & set(middle))
            if ended:
                break
        if ids.end_of_span in middle:
            middle = middle[: middle.index(ids.end_of_span)]
        self.stats.generated_tokens += len(middle)
        text = self.tokenizer.decode(middle[: self.max_tokens])
        return text.split("\n", 1)[0] if self.mode == "line" else text

    def _denoise_block(self, context: list[int], committed: list[int]) -> list[int]:
        L, c, m = self.block_size, len(context), len(committed)
        block = [self.ids.mask] * L
        segments = torch.tensor([[CONTEXT] * c + [CLEAN] * m + [NOISY] * L])
        block_index = torch.tensor([[-1] * c + [j // L for j in range(m)] + [m // L] * L])
        positions = torch.arange(c + m + L)[None]
        attention = block_attention(segments, block_index)
        while self.ids.mask in block:
            input_ids = torch.tensor([context + committed + block])
            hidden = self.model.model(
                input_ids=input_ids,
                attention_mask={"full_attention": attention, "sliding_attention": attention},
                position_ids=positions,
            )[0]
            logits = self.model.decoder(self.model.head(hidden[0, c + m :])).float()
            logits[:, self.banned] = -math.inf
            open_ = torch.tensor([t == self.ids.mask for t in block])
            # End-of-span only at the leftmost open position: the end is decided in reading order. Committed
            # by confidence anywhere, the padding-like end-of-span fills a weak model's block from the right.
            later = open_.clone()
            later[int(open_.nonzero()[0])] = False
            logits[later, self.ids.end_of_span] = -math.inf
            self.stats.forward_passes += 1
            probs, tokens = logits.softmax(-1).max(-1)
            probs = torch.where(open_, probs, torch.full_like(probs, -1.0))
            commit = (probs >= self.threshold) & open_
            commit[probs.argmax()] = True
            block = [int(tokens[j]) if commit[j] else block[j] for j in range(L)]
        return block
