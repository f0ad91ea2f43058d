"""AR-initialised block diffusion the engine decodes: the AR FIM peer made block-causal (Fast-dLLM v2).

``infill train --objective block-diffusion --from-ar PEER`` starts from the peer's Qwen2 weights and trains
them as a block-diffusion model in the layout ``infill/engine/block_decoding.py`` decodes with its exact
prefix cache (family ``infill-block-decoder``): blocks of ``block_size`` absolute positions (block i holds
positions i*b .. i*b+b-1), every position attending to its own block and the blocks before it, the
family's prompt (``<|fim_suffix|> suffix <|fim_prefix|> prefix``, families.py) continued by the middle.
(The from-scratch ``block-diffusion`` objective, training/block_diffusion.py, is BD3-LM with a bidirectional
context and its own decoder; the engine's prefix cache needs the context block-causal too.)

One example, n positions, laid out as the clean sequence and then a noisy copy of the whole blocks from the
one the middle starts in to the end (BD3-LM's vectorised training):

    clean: context + middle (positions 0..n-1), block-causal
    noisy: the same blocks (positions s..n-1), each masked position seeing the clean blocks before its own
           and its own noisy block

Token shift, as Fast-dLLM v2 and the AR peer it starts from: the hidden state at i - 1 predicts position i.
Inside a noisy block that is the noisy position before; a block's first position has no predecessor in its
block, so it is never masked, and its token is learnt autoregressively from the last position of the clean
block before it (a label on the clean copy) -- exactly what the decoding loop does: a pass over the committed
block predicts the next block's first token, committed before the block's denoising steps. Only the middle
(positions >= the context's length) is masked; a prompt token in the middle's first block stays, as the
decoding loop leaves the prompt's spill into the first block. Mask rates are BD3-LM's clipped [0.3, 0.8].
"""

from __future__ import annotations

import random

import torch
from transformers import Qwen2ForCausalLM

from infill.errors import TrainingError
from infill.models.families import FAMILY_KEY, PREFIX, SUFFIX, family_named
from training.block_diffusion import CLEAN, CLIPPED_RATES, MAX_MIDDLE_BLOCKS, NOISY, PAD, block_attention
from training.objective import Batch, ExampleSource, example_rng

BLOCK_DECODER = "infill-block-decoder"  # the family (infill.models.families) the engine decodes it as


def is_block_decoder(model: torch.nn.Module) -> bool:
    return getattr(model.config, FAMILY_KEY, None) == BLOCK_DECODER


def block_decoder_from_ar(model: Qwen2ForCausalLM, block_size: int) -> Qwen2ForCausalLM:
    """The AR FIM peer ``model`` marked as a block decoder of ``block_size`` (its weights unchanged: the
    block-causal attention comes with every batch, ``attention_4d``)."""
    model.config.use_cache = False
    setattr(model.config, FAMILY_KEY, BLOCK_DECODER)
    model.config.block_size = block_size
    if hasattr(model.config, "infill_format"):
        delattr(model.config, "infill_format")
    return model


def framed_context(source: ExampleSource, prefix: list[int], suffix: list[int]) -> list[int]:
    """The prompt the middle continues, in the family's layout (``Family.block_prompt``: one source for
    training and the engine's ``block_prompt``)."""
    ids: list[int] = []
    for piece in family_named(BLOCK_DECODER).block_prompt:
        ids += prefix if piece == PREFIX else suffix if piece == SUFFIX else [_token_id(source, piece)]
    return ids


def _token_id(source: ExampleSource, token: str) -> int:
    token_id = source.tokenizer.get_vocab().get(token)
    if token_id is None:
        raise TrainingError(f"the tokenizer has no {token} token, which frames a block decoder's prompt")
    return token_id


def aligned_example(source: ExampleSource, rng: random.Random, block_size: int) -> tuple[list[int], int]:
    """(context + middle ids, context length): the middle runs to the end of a block (absolute positions),
    a span's middle ending in end-of-span (then end-of-span to the block's end) when it fits."""
    T, ids, L = source.seq_len, source.ids, block_size
    max_middle = min(MAX_MIDDLE_BLOCKS * L, (T // 3) // L * L)
    # Clean sequence + noisy copy of the middle's blocks fit T: with the middle at most ``wanted`` + L - 1
    # long and the noisy copy at most ``wanted`` + 2L - 2, a context up to T - 2 * wanted - 3L + 3 fits.
    if rng.random() >= source.span_fraction:
        wanted = rng.randint(1, max_middle // L) * L
        window = source._window(rng, T)
        context_len = T - 2 * wanted - 3 * L + 3
        end = -(-(context_len + wanted) // L) * L
        return window[:end], context_len
    prefix, middle, suffix, _ = source.sample_gap(rng)
    middle = [*middle, ids.end_of_span]
    wanted = min(len(middle), max_middle)
    framing = len(framed_context(source, [], []))
    prefix, suffix = source._fit_context(rng, prefix, suffix, T - 2 * wanted - 3 * L + 3 - framing)
    context = framed_context(source, prefix, suffix)
    end = -(-(len(context) + wanted) // L) * L
    middle = (middle + [ids.end_of_span] * L)[: end - len(context)]
    return context + middle, len(context)


def aligned_block_batch(
    source: ExampleSource, batch_size: int, seed: int, step: int, rank: int = 0, *, block_size: int = 8
) -> Batch:
    """A batch of ``aligned_example``s laid out clean + noisy (module doc), labels shifted by one position."""
    rng = example_rng(seed, step, rank, "block-decoder")
    gen = torch.Generator().manual_seed(rng.getrandbits(62))
    offset = rng.random()
    T, L, pad, mask = source.seq_len, block_size, source.ids.pad, source.ids.mask
    input_ids = torch.full((batch_size, T), pad, dtype=torch.long)
    labels = torch.full((batch_size, T), -100, dtype=torch.long)
    weights = torch.zeros((batch_size, T))
    segments = torch.full((batch_size, T), PAD, dtype=torch.long)
    blocks = torch.full((batch_size, T), -1, dtype=torch.long)
    positions = torch.zeros((batch_size, T), dtype=torch.long)
    low, high = CLIPPED_RATES
    row_maskable = torch.zeros(batch_size, dtype=torch.long)
    for b in range(batch_size):
        sequence, context_len = aligned_example(source, rng, L)
        n, start = len(sequence), context_len // L * L
        noisy = n - start
        assert n + noisy <= T, "aligned_example keeps the clean sequence and its noisy copy within seq_len"
        pos = torch.arange(n)
        clean_ids = torch.tensor(sequence)
        noisy_pos = pos[start:]
        # Maskable: middle positions that are not a block's first (those are learnt from the clean copy).
        maskable = (noisy_pos >= context_len) & (noisy_pos % L != 0)
        rate = low + (high - low) * ((offset + b / batch_size) % 1.0)
        masked = (torch.rand(noisy, generator=gen) < rate) & maskable
        if not masked.any() and maskable.any():
            choices = maskable.nonzero().flatten()
            masked[choices[torch.randint(len(choices), (1,), generator=gen)]] = True
        noisy_ids = torch.where(masked, torch.full_like(noisy_pos, mask), clean_ids[start:])
        input_ids[b, :n], input_ids[b, n : n + noisy] = clean_ids, noisy_ids
        segments[b, :n], segments[b, n : n + noisy] = CLEAN, NOISY
        blocks[b, :n], blocks[b, n : n + noisy] = pos // L, noisy_pos // L
        positions[b, :n], positions[b, n : n + noisy] = pos, noisy_pos
        # The denoising targets, on the noisy copy (weight 1/t, MDLM), and every middle block's first token
        # on the clean copy (weight 1: an AR prediction from the clean block before; position 0 has none).
        labels[b, n : n + noisy] = torch.where(masked, clean_ids[start:], -100)
        weights[b, n : n + noisy] = masked.float() / rate
        first = (pos >= max(1, context_len)) & (pos % L == 0)
        labels[b, :n] = torch.where(first, clean_ids, -100)
        weights[b, :n] = first.float()
        row_maskable[b] = int(maskable.sum() + first.sum())
    return Batch(
        input_ids,
        (segments != PAD).long(),
        labels,
        weights,
        int(row_maskable.sum()),
        row_maskable,
        position_ids=positions,
        attention_4d=block_attention(segments, blocks),
    )
