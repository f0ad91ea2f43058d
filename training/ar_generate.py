"""Greedy fill-in-the-middle decoding for the autoregressive peer (a causal LM trained on PSM prompts).

The peer is the baseline the diffusion model is compared with, so it gets the standard treatment: the prompt
is ``<|fim_prefix|> prefix <|fim_suffix|> suffix <|fim_middle|>`` (each piece tokenized on its own, as in
training), decoding is greedy with a KV cache, rows are batched with left padding, and generation stops at
``<|endoftext|>``, at ``max_tokens``, or (line mode) after the first newline. Forward passes are counted per
row: the prompt pass plus one per further token while the row is still generating.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, PreTrainedTokenizerBase

from infill.errors import ContextTooLong, InputError, ModelLoadError
from infill.models import default_dtype, resolve_device
from infill.models.weights import checked_model, pretrained_kwargs, quiet_transformers
from training.eval.generation import GenerationStats, model_family
from training.tokenizer import (
    END_OF_TEXT_TOKEN,
    FIM_MIDDLE_TOKEN,
    FIM_PREFIX_TOKEN,
    FIM_SUFFIX_TOKEN,
    load_code_tokenizer,
)

logger = logging.getLogger(__name__)

FILL_MODES = ("line", "block", "span")


@dataclass(frozen=True)
class _Psm:
    prefix_id: int
    suffix_id: int
    middle_id: int
    end_id: int
    pad_id: int


def _special_ids(tokenizer: PreTrainedTokenizerBase, model_dir: Path) -> _Psm:
    ids: dict[str, int] = {}
    vocab = tokenizer.get_vocab()
    for token in (FIM_PREFIX_TOKEN, FIM_SUFFIX_TOKEN, FIM_MIDDLE_TOKEN, END_OF_TEXT_TOKEN):
        token_id = vocab.get(token)
        if token_id is None:
            raise ModelLoadError(
                f"{model_dir}: the tokenizer has no {token} token, so it cannot do PSM infilling"
            )
        ids[token] = token_id
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else ids[END_OF_TEXT_TOKEN]
    return _Psm(
        ids[FIM_PREFIX_TOKEN], ids[FIM_SUFFIX_TOKEN], ids[FIM_MIDDLE_TOKEN], ids[END_OF_TEXT_TOKEN], pad
    )


def trim_to_budget(prefix: list[int], suffix: list[int], budget: int) -> tuple[list[int], list[int]]:
    """Keep the end of the prefix and the start of the suffix within ``budget`` tokens in all.

    The suffix gets at least a quarter of the budget when both sides are long (the code right after the
    gap constrains it most after the code right before it); unused room on one side goes to the other.
    """
    if len(prefix) + len(suffix) <= budget:
        return prefix, suffix
    suffix_keep = min(len(suffix), max(budget // 4, budget - len(prefix)))
    prefix_keep = budget - suffix_keep
    return (prefix[len(prefix) - prefix_keep :] if prefix_keep else []), suffix[:suffix_keep]


class ARGenerator:
    """``Callable[[Sequence[tuple[str, str]]], list[str]]`` over a PSM causal LM directory, with stats."""

    def __init__(
        self,
        model_dir: str | Path,
        *,
        mode: str = "span",
        max_tokens: int = 64,
        device: str | None = None,
        batch_size: int = 8,
    ) -> None:
        if mode not in FILL_MODES:
            raise InputError(f"unknown fill mode {mode!r} (expected line, block or span)")
        if max_tokens < 1 or batch_size < 1:
            raise InputError("max_tokens and batch_size must be at least 1")
        self.model_dir = Path(model_dir)
        if model_family(self.model_dir) != "psm":
            raise ModelLoadError(
                f"{self.model_dir}: not a PSM causal LM (config.json lacks infill_format psm)"
            )
        if not any(self.model_dir.glob("*.safetensors")):
            raise ModelLoadError(f"{self.model_dir}: no *.safetensors weights (other formats are not loaded)")
        self.device = resolve_device(device)
        # The project tokenizer as saved (AutoTokenizer would pick Qwen2Tokenizer from the config and may
        # rebuild the pre-tokenizer).
        self.tokenizer = load_code_tokenizer(self.model_dir)
        dtype = default_dtype(self.device)
        with quiet_transformers():
            loaded = AutoModelForCausalLM.from_pretrained(
                str(self.model_dir), **pretrained_kwargs(self.device, dtype)
            )
        self.model = checked_model(loaded, self.model_dir)
        self.special = _special_ids(self.tokenizer, self.model_dir)
        self.window = int(getattr(self.model.config, "max_position_embeddings", 2048))
        self.mode = mode
        self.max_tokens = max_tokens
        self.batch_size = batch_size
        self.name = self.model_dir.name
        self.stats = GenerationStats()
        self._newline_cache: dict[int, bool] = {}

    def _has_newline(self, token_id: int) -> bool:
        if token_id not in self._newline_cache:
            self._newline_cache[token_id] = "\n" in self.tokenizer.decode([token_id])
        return self._newline_cache[token_id]

    def _prompt(self, prefix: str, suffix: str) -> list[int]:
        budget = self.window - self.max_tokens - 3  # three FIM sentinels
        if budget < 1:
            raise ContextTooLong(
                f"max_tokens {self.max_tokens} leaves no room in the {self.window}-token window"
            )
        prefix_ids = self.tokenizer.encode(prefix, add_special_tokens=False)
        suffix_ids = self.tokenizer.encode(suffix, add_special_tokens=False)
        prefix_ids, suffix_ids = trim_to_budget(prefix_ids, suffix_ids, budget)
        s = self.special
        return [s.prefix_id, *prefix_ids, s.suffix_id, *suffix_ids, s.middle_id]

    def __call__(self, rows: Sequence[tuple[str, str]]) -> list[str]:
        start = time.perf_counter()
        prompts = [self._prompt(prefix, suffix) for prefix, suffix in rows]
        # Similar lengths share a batch, so little compute goes to padding.
        order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))
        completions: list[str] = [""] * len(rows)
        for first in range(0, len(order), self.batch_size):
            chunk = order[first : first + self.batch_size]
            texts = self._generate([prompts[i] for i in chunk])
            for index, text in zip(chunk, texts, strict=True):
                completions[index] = text
        self.stats.rows += len(rows)
        self.stats.seconds += time.perf_counter() - start
        return completions

    @torch.inference_mode()
    def _generate(self, prompts: list[list[int]]) -> list[str]:
        s = self.special
        batch, width = len(prompts), max(len(p) for p in prompts)
        input_ids = torch.full((batch, width), s.pad_id, dtype=torch.long)
        attention_mask = torch.zeros((batch, width), dtype=torch.long)
        for row, prompt in enumerate(prompts):  # left padding: every row's next token is at column -1
            input_ids[row, width - len(prompt) :] = torch.tensor(prompt)
            attention_mask[row, width - len(prompt) :] = 1
        input_ids, attention_mask = input_ids.to(self.device), attention_mask.to(self.device)
        position_ids = (attention_mask.cumsum(-1) - 1).clamp(min=0)  # (B, T)
        out = self.model(
            input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids, use_cache=True
        )
        passes = [1] * batch
        generated: list[list[int]] = [[] for _ in range(batch)]
        active = [True] * batch
        while True:
            next_ids = out.logits[:, -1, :].argmax(-1)  # (B,)
            for row, token in enumerate(next_ids.tolist()):
                if not active[row]:
                    continue
                if token == s.end_id:
                    active[row] = False
                    continue
                generated[row].append(token)
                if len(generated[row]) >= self.max_tokens or (
                    self.mode == "line" and self._has_newline(token)
                ):
                    active[row] = False
            if not any(active):
                break
            attention_mask = torch.cat([attention_mask, attention_mask.new_ones((batch, 1))], dim=1)
            position_ids = position_ids[:, -1:] + 1  # (B, 1)
            out = self.model(
                input_ids=next_ids[:, None],
                attention_mask=attention_mask,
                position_ids=position_ids,
                past_key_values=out.past_key_values,
                use_cache=True,
            )
            passes = [p + 1 if a else p for p, a in zip(passes, active, strict=True)]
        self.stats.forward_passes += sum(passes)
        self.stats.generated_tokens += sum(len(ids) for ids in generated)
        # A sentinel the model emits by mistake contributes no code text.
        texts = [self.tokenizer.decode(ids, skip_special_tokens=True) for ids in generated]
        if self.mode == "line":
            texts = [text[: text.index("\n") + 1] if "\n" in text else text for text in texts]
        return texts
