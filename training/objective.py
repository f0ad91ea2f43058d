"""Training examples and losses: masked diffusion (MDLM) with span infilling, and the AR FIM peer's PSM.

Diffusion examples come in two shapes, both length T:
  plain: a window of the token stream; every position masked with probability t.
  span:  prefix ids + canvas + suffix ids, canvas = middle ids + k ``<|endofspan|>`` (random k, so the model
         learns where a span ends); only canvas positions are masked (rate t), prefix/suffix stay visible,
         exactly the canvas the engine builds.
The loss (``training.losses``) is MDLM's: cross-entropy on masked positions weighted by 1/t, averaged over
maskable positions.
Every example is a pure function of (seed, step, rank), which makes resuming reproducible without saving
any data-loader state.
"""

from __future__ import annotations

import dataclasses
import itertools
import random
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from transformers import PreTrainedTokenizerBase

from infill.errors import TrainingError
from training.corpus import SourceFile
from training.edit_noise import EditNoise
from training.length_states import LengthStates, length_state_batch
from training.parallel import parallel_map
from training.spans import Span, SpanIndex, index_spans, sample_span
from training.tokenizer import (
    END_OF_SPAN_TOKEN,
    END_OF_TEXT_TOKEN,
    FIM_MIDDLE_TOKEN,
    FIM_PREFIX_TOKEN,
    FIM_SUFFIX_TOKEN,
    MASK_TOKEN,
    PAD_TOKEN,
)

MIN_MASK_RATE = 1e-3  # t is clamped here so the 1/t weight stays finite


@dataclass(frozen=True)
class TokenIds:
    """Special ids, read from the tokenizer in one place."""

    pad: int
    mask: int
    end_of_span: int
    end_of_text: int
    fim_prefix: int
    fim_suffix: int
    fim_middle: int
    # Ids the tokenizer wraps around every sequence (e.g. RoBERTa's <s> ... </s>); empty for ours.
    prefix_ids: tuple[int, ...] = ()
    suffix_ids: tuple[int, ...] = ()

    @classmethod
    def from_tokenizer(cls, tokenizer: PreTrainedTokenizerBase) -> TokenIds:
        """Our tokens by name; for other masked LMs the same roles the model loader resolves."""
        vocab = tokenizer.get_vocab()
        ends = [tokenizer.eos_token_id, tokenizer.sep_token_id, tokenizer.pad_token_id]
        mask = vocab.get(MASK_TOKEN, tokenizer.mask_token_id)
        end_of_span = vocab.get(END_OF_SPAN_TOKEN, next((r for r in ends if r is not None), None))
        pad_role = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else end_of_span
        pad = vocab.get(PAD_TOKEN, pad_role)
        if mask is None or end_of_span is None:
            raise TrainingError("the tokenizer has no mask token or no end-of-sequence/separator token")
        fim = [vocab.get(t, -1) for t in (FIM_PREFIX_TOKEN, FIM_SUFFIX_TOKEN, FIM_MIDDLE_TOKEN)]
        plain = tokenizer("x", add_special_tokens=False)["input_ids"]
        wrapped = tokenizer("x")["input_ids"]
        at = next((i for i in range(len(wrapped)) if wrapped[i : i + len(plain)] == plain), 0)
        return cls(
            pad,
            mask,
            end_of_span,
            vocab.get(END_OF_TEXT_TOKEN, end_of_span),
            *fim,
            prefix_ids=tuple(wrapped[:at]),
            suffix_ids=tuple(wrapped[at + len(plain) :]),
        )


@dataclass
class Batch:
    input_ids: torch.Tensor  # (B, T) long
    attention_mask: torch.Tensor  # (B, T) long, 0 on padding
    labels: torch.Tensor  # (B, T) long, -100 where no loss
    weights: torch.Tensor  # (B, T) float: 1/t on masked positions (diffusion), 1 on targets (AR)
    maskable: int  # positions that could have been masked (the MDLM normaliser)
    row_maskable: torch.Tensor | None = None  # (B,) the same per example (diffusion batches)
    # Block diffusion only: (B, T) position ids and the (B, 1, T, T) bool attention mask (True: may attend).
    position_ids: torch.Tensor | None = None
    attention_4d: torch.Tensor | None = None

    def to(self, device: torch.device) -> Batch:
        def move(tensor: torch.Tensor | None) -> torch.Tensor | None:
            return None if tensor is None else tensor.to(device)

        return Batch(
            self.input_ids.to(device),
            self.attention_mask.to(device),
            self.labels.to(device),
            self.weights.to(device),
            self.maskable,
            self.row_maskable,
            move(self.position_ids),
            move(self.attention_4d),
        )


def _index_file(file: SourceFile) -> SpanIndex:
    return index_spans(file.text, file.language)


def _newlines_are_token_boundaries(tokenizer: PreTrainedTokenizerBase) -> bool:
    """True when text split after or before a newline tokenizes as the two halves do on their own."""
    probe = "def f(x):\n    return  x\n\n\tpass  \n  y = 'é'\n"
    whole = tokenizer(probe, add_special_tokens=False)["input_ids"]
    for cut in (i + k for i, ch in enumerate(probe) if ch == "\n" for k in (0, 1)):
        halves = tokenizer([probe[:cut], probe[cut:]], add_special_tokens=False)["input_ids"]
        if halves[0] + halves[1] != whole:
            return False
    return True


def example_rng(seed: int, step: int, rank: int, stream: str) -> random.Random:
    return random.Random(f"{seed}:{step}:{rank}:{stream}")


class ExampleSource:
    """Pre-tokenized files plus their span indexes; draws diffusion or AR batches."""

    def __init__(
        self,
        files: Sequence[SourceFile],
        tokenizer: PreTrainedTokenizerBase,
        seq_len: int,
        span_fraction: float = 0.6,
        workers: int = 1,
        *,
        shifted: bool = False,
        length_states: bool = False,
        edit_noise: float = 0.0,
    ) -> None:
        """``shifted``: examples for a shifted decoder start with <|endoftext|> (as the engine's canvas does
        for that family), so every maskable position has a predecessor whose hidden state predicts it.
        ``length_states``: span examples carry DreamOn's expand and delete states (length_states.py; the
        tokenizer needs an <|expand|> token).
        ``edit_noise``: share of unmasked canvas positions of diffusion examples given a plausible wrong token
        whose original the model learns (training/edit_noise.py; 0: none)."""
        if not files:
            raise ValueError("ExampleSource needs at least one file")
        self.tokenizer = tokenizer
        self.ids = TokenIds.from_tokenizer(tokenizer)
        if shifted and not self.ids.prefix_ids:
            self.ids = dataclasses.replace(self.ids, prefix_ids=(self.ids.end_of_text,))
        self.seq_len = seq_len
        self.span_fraction = span_fraction
        self.length_states = (
            LengthStates.from_vocab(tokenizer.get_vocab(), self.ids.end_of_span, self.ids.mask)
            if length_states
            else None
        )
        self.edit_noise = EditNoise.from_tokenizer(tokenizer, edit_noise) if edit_noise > 0 else None
        self.files = list(files)
        # recipe: a GPU run's corpus is hundreds of MB; parsing it for spans is spread over ``workers``.
        self.indexes: list[SpanIndex] = list(parallel_map(_index_file, self.files, workers, chunksize=16))
        encoded = tokenizer(
            [f.text for f in self.files], add_special_tokens=False, return_offsets_mapping=True
        )
        # One packed stream of every file, separated by <|endoftext|>: plain examples are windows of it.
        # file_start[i]: where file i begins in the stream; token_starts[i]: each token's first character.
        pieces, self.file_start, self.token_starts = [], [], []
        offset = 0
        for ids, offsets in zip(encoded["input_ids"], encoded["offset_mapping"], strict=True):
            self.file_start.append(offset)
            self.token_starts.append(np.array([a for a, _ in offsets], dtype=np.int64))
            pieces.extend((ids, [self.ids.end_of_text]))
            offset += len(ids) + 1
        self.stream = np.fromiter(itertools.chain.from_iterable(pieces), dtype=np.int64)
        self.tokens = int(self.stream.size)
        # With newlines isolated (our tokenizer), a newline is always a token boundary: the context around a
        # gap is cut from the file's tokens and only the partial lines at the gap's edges are tokenized.
        self.cut_at_newlines = _newlines_are_token_boundaries(tokenizer)
        lengths = np.array([len(f.text) for f in self.files], dtype=np.float64)
        self.file_weights = (lengths / lengths.sum()).tolist()

    # -- pieces -------------------------------------------------------------------------------------
    def _window(self, rng: random.Random, length: int) -> list[int]:
        start = rng.randrange(max(1, self.tokens - length))
        return self.stream[start : start + length].tolist()

    def sample_gap(self, rng: random.Random) -> tuple[list[int], list[int], list[int], Span]:
        """(prefix ids, middle ids, suffix ids, span) for a span drawn from a length-weighted file.

        Prefix and suffix are tokenized on their own, as the engine does (at most ``seq_len`` tokens each,
        nearest the gap), and so is the middle.
        """
        index = rng.choices(range(len(self.files)), weights=self.file_weights)[0]
        text = self.files[index].text
        span = sample_span(text, self.indexes[index], rng)
        if not self.cut_at_newlines:
            return (*self._tokenize_gap(text, span), span)
        # The last line start at or before the gap and the first newline at or after its end are token
        # boundaries: whole-file tokens outside them, fresh tokens for the partial lines and the middle.
        line_start = text.rfind("\n", 0, span.start) + 1
        line_end = text.find("\n", span.end)
        line_end = len(text) if line_end < 0 else line_end
        head, middle, tail = self._encode(
            [text[line_start : span.start], text[span.start : span.end], text[span.end : line_end]]
        )
        starts, base = self.token_starts[index], self.file_start[index]
        before = base + int(np.searchsorted(starts, line_start, side="left"))
        after = base + int(np.searchsorted(starts, line_end, side="left"))
        end = base + len(starts)
        keep = self.seq_len
        prefix = self.stream[max(base, before - keep) : before].tolist() + head
        suffix = tail + self.stream[after : min(end, after + keep)].tolist()
        return prefix[-keep:], middle, suffix[:keep], span

    def _tokenize_gap(self, text: str, span: Span) -> tuple[list[int], list[int], list[int]]:
        """The general path: tokenize a window of characters on either side of the gap."""
        context_chars = self.seq_len * 8
        prefix, middle, suffix = self._encode(
            [
                text[max(0, span.start - context_chars) : span.start],
                text[span.start : span.end],
                text[span.end : span.end + context_chars],
            ]
        )
        return prefix, middle, suffix

    def _encode(self, texts: list[str]) -> list[list[int]]:
        return self.tokenizer(texts, add_special_tokens=False)["input_ids"]

    def _fit_context(self, rng: random.Random, prefix: list[int], suffix: list[int], budget: int) -> tuple:
        suffix_keep = min(len(suffix), rng.randint(budget // 4, budget))
        prefix_keep = min(len(prefix), budget - suffix_keep)
        suffix_keep = min(len(suffix), budget - prefix_keep)
        return prefix[len(prefix) - prefix_keep :], suffix[:suffix_keep]

    # -- diffusion ----------------------------------------------------------------------------------
    def diffusion_example(self, rng: random.Random) -> tuple[list[int], list[bool]]:
        """(ids, maskable) for one example; maskable marks the positions MDLM may mask (the canvas)."""
        before, after = list(self.ids.prefix_ids), list(self.ids.suffix_ids)
        ids, maskable = self._diffusion_inner(rng, self.seq_len - len(before) - len(after))
        return before + ids + after, [False] * len(before) + maskable + [False] * len(after)

    def _diffusion_inner(self, rng: random.Random, T: int) -> tuple[list[int], list[bool]]:
        if rng.random() >= self.span_fraction:
            ids = self._window(rng, T)
            return ids, [True] * len(ids)
        prefix, middle, suffix, _ = self.sample_gap(rng)
        middle = middle[: T // 2]
        # The engine's canvas is longer than most spans: random extra end-of-span tail.
        extra = rng.randint(0, max(4, min(T // 4, len(middle) + 4)))
        canvas = middle + [self.ids.end_of_span] * extra
        if not canvas:
            canvas = [self.ids.end_of_span]
        prefix, suffix = self._fit_context(rng, prefix, suffix, T - len(canvas))
        ids = prefix + canvas + suffix
        maskable = [False] * len(prefix) + [True] * len(canvas) + [False] * len(suffix)
        return ids, maskable

    def diffusion_batch(self, batch_size: int, seed: int, step: int, rank: int = 0) -> Batch:
        rng = example_rng(seed, step, rank, "diffusion")
        gen = torch.Generator().manual_seed(rng.getrandbits(62))
        # Stratified mask rates across the batch (MDLM's low-discrepancy sampler): lower loss variance.
        offset = rng.random()
        rates = [max(MIN_MASK_RATE, ((offset + i / batch_size) % 1.0)) for i in range(batch_size)]
        if self.length_states is not None:
            return length_state_batch(self, self.length_states, rng, rates, gen)
        T = self.seq_len
        input_ids = torch.full((batch_size, T), self.ids.pad, dtype=torch.long)
        attention = torch.zeros((batch_size, T), dtype=torch.long)
        maskable = torch.zeros((batch_size, T), dtype=torch.bool)
        for b in range(batch_size):
            ids, can_mask = self.diffusion_example(rng)
            input_ids[b, : len(ids)] = torch.tensor(ids)
            attention[b, : len(ids)] = 1
            maskable[b, : len(ids)] = torch.tensor(can_mask)
        t = torch.tensor(rates).unsqueeze(1)  # (B, 1)
        masked = (torch.rand((batch_size, T), generator=gen) < t) & maskable
        # Every example contributes: force one masked position where the draw masked none.
        for b in range(batch_size):
            if not masked[b].any():
                choices = maskable[b].nonzero().flatten()
                masked[b, choices[torch.randint(len(choices), (1,), generator=gen)]] = True
        labels = torch.where(masked, input_ids, torch.full_like(input_ids, -100))
        weights = masked.float() / t
        noisy = torch.where(masked, torch.full_like(input_ids, self.ids.mask), input_ids)
        if self.edit_noise is not None:
            noisy, labels, weights = self.edit_noise.corrupt(noisy, labels, weights, maskable & ~masked, gen)
        return Batch(noisy, attention, labels, weights, int(maskable.sum()), maskable.sum(1))

    def gap_batches(self, gaps: Sequence[tuple[str, str, str]], batch_size: int) -> list[Batch]:
        """One example per (prefix, middle, suffix) text gap, framed as a training span example: the context
        around a canvas of exactly the middle's tokens and one end-of-span, all of it masked. Scored by
        ``row_stats``: how well a model predicts this very answer (a repository's names, say) in place."""
        before, after = list(self.ids.prefix_ids), list(self.ids.suffix_ids)
        budget = self.seq_len - len(before) - len(after)
        rows: list[tuple[list[int], list[bool]]] = []
        for prefix_text, middle_text, suffix_text in gaps:
            prefix, middle, suffix = self._encode([prefix_text, middle_text, suffix_text])
            canvas = [*middle[: budget // 2], self.ids.end_of_span]
            room = budget - len(canvas)
            suffix = suffix[: max(room // 2, room - len(prefix))]
            prefix = prefix[len(prefix) - min(len(prefix), room - len(suffix)) :]
            ids = before + prefix + canvas + suffix + after
            context = [False] * len(before + prefix), [False] * len(suffix + after)
            rows.append((ids, context[0] + [True] * len(canvas) + context[1]))
        batches = []
        for start in range(0, len(rows), batch_size):
            chunk = rows[start : start + batch_size]
            input_ids = torch.full((len(chunk), self.seq_len), self.ids.pad, dtype=torch.long)
            attention = torch.zeros_like(input_ids)
            masked = torch.zeros_like(input_ids, dtype=torch.bool)
            for b, (ids, can_mask) in enumerate(chunk):
                input_ids[b, : len(ids)], attention[b, : len(ids)] = torch.tensor(ids), 1
                masked[b, : len(ids)] = torch.tensor(can_mask)
            labels = torch.where(masked, input_ids, torch.full_like(input_ids, -100))
            noisy = torch.where(masked, torch.full_like(input_ids, self.ids.mask), input_ids)
            batches.append(Batch(noisy, attention, labels, masked.float(), int(masked.sum()), masked.sum(1)))
        return batches

    # -- autoregressive FIM peer ----------------------------------------------------------------------
    def fim_example(self, rng: random.Random) -> list[int]:
        """PSM: <|fim_prefix|> prefix <|fim_suffix|> suffix <|fim_middle|> middle <|endoftext|>."""
        T = self.seq_len
        if rng.random() >= self.span_fraction:
            return self._window(rng, T)
        prefix, middle, suffix, _ = self.sample_gap(rng)
        middle = middle[: T // 2] if len(middle) > T // 2 else [*middle, self.ids.end_of_text]
        prefix, suffix = self._fit_context(rng, prefix, suffix, T - len(middle) - 3)
        return [self.ids.fim_prefix, *prefix, self.ids.fim_suffix, *suffix, self.ids.fim_middle, *middle]

    def ar_batch(self, batch_size: int, seed: int, step: int, rank: int = 0) -> Batch:
        rng = example_rng(seed, step, rank, "diffusion")  # same stream name: same spans as the diffusion run
        T = self.seq_len
        input_ids = torch.full((batch_size, T), self.ids.pad, dtype=torch.long)
        attention = torch.zeros((batch_size, T), dtype=torch.long)
        for b in range(batch_size):
            ids = self.fim_example(rng)
            input_ids[b, : len(ids)] = torch.tensor(ids)
            attention[b, : len(ids)] = 1
        labels = torch.where(attention.bool(), input_ids, torch.full_like(input_ids, -100))
        return Batch(input_ids, attention, labels, attention.float(), int(attention.sum()))
