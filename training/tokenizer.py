"""Byte-level BPE tokenizer for code, trained with `tokenizers`.

Newlines are isolated before byte-level splitting, so every line starts on a token boundary: a span of whole
lines tokenizes exactly as it does inside the whole file, which is what line- and block-infilling need.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import PreTrainedTokenizerFast

PAD_TOKEN = "<|pad|>"
MASK_TOKEN = "<|mask|>"
END_OF_SPAN_TOKEN = "<|endofspan|>"
END_OF_TEXT_TOKEN = "<|endoftext|>"
FIM_PREFIX_TOKEN = "<|fim_prefix|>"
FIM_SUFFIX_TOKEN = "<|fim_suffix|>"
FIM_MIDDLE_TOKEN = "<|fim_middle|>"
SPECIAL_TOKENS = (
    PAD_TOKEN,
    MASK_TOKEN,
    END_OF_SPAN_TOKEN,
    END_OF_TEXT_TOKEN,
    FIM_PREFIX_TOKEN,
    FIM_SUFFIX_TOKEN,
    FIM_MIDDLE_TOKEN,
)


def train_code_tokenizer(texts: Iterable[str], vocab_size: int = 8192) -> PreTrainedTokenizerFast:
    """Train a byte-level BPE on ``texts``; special tokens take the first ids in SPECIAL_TOKENS order."""
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(r"\n"), behavior="isolated"),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True),
        ]
    )
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(texts, trainer=trainer)
    return wrap_tokenizer(tokenizer)


def wrap_tokenizer(tokenizer: Tokenizer) -> PreTrainedTokenizerFast:
    """HF wrapper whose special-token roles the model loader reads (mask, pad, eos = end of span)."""
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        mask_token=MASK_TOKEN,
        pad_token=PAD_TOKEN,
        eos_token=END_OF_SPAN_TOKEN,
        additional_special_tokens=[END_OF_TEXT_TOKEN, FIM_PREFIX_TOKEN, FIM_SUFFIX_TOKEN, FIM_MIDDLE_TOKEN],
        clean_up_tokenization_spaces=False,
    )


def load_code_tokenizer(model_dir: Path) -> PreTrainedTokenizerFast:
    return PreTrainedTokenizerFast.from_pretrained(str(model_dir))
