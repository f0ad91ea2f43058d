"""A tiny random checkpoint laid out like the Stable-DiffCoder releases (ByteDance-Seed/Stable-DiffCoder-8B-
Base/-Instruct; no downloads).

From the release as its code shows it (the model card's ``generate`` call; the modeling file's
``StableDiffcoderForCausalLM(LlamaForCausalLM)`` with ``generate_block``, default ``mask_id=5``): LLaMA
weights under transformers' LLaMA names (no attention or MLP biases, no head norms), config ``model_type
"llama"`` (as a third-party loader of the release states) with ``architectures
["StableDiffcoderForCausalLM"]`` and an ``auto_map`` into the modeling file, neither ``block_size`` nor
``mask_token_id``; Seed-Coder-8B's sizes shrunk (its rope_theta 500000, rms_norm_eps 1e-6, grouped-query
heads). Not checked against the release's files, which the search corpus does not hold: the remote file
names, the tokenizer's special tokens other than the mask at id 5 and Seed-Coder's FIM spellings
(``<[fim-suffix]>``, ``<[fim-prefix]>``, ``<[fim-middle]>``, from its technical report), and their order.
The special tokens come first in the vocabulary (id 5 is the mask), a byte-level BPE follows, and the fast
tokenizer puts the begin-of-sentence token before every sequence, as LLaMA-3-style tokenizers do.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from tokenizers import AddedToken, Regex, Tokenizer, processors
from tokenizers import pre_tokenizers as pre
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast
from transformers.models.qwen2.tokenization_qwen2 import PRETOKENIZE_REGEX

from tests.release_models import (
    TINY_QWEN,
    _padded,
    _save_sharded,
    _train_bpe,
    _write_json,
    _write_remote_code,
    randomize_weights,
)

BOS, PAD, EOS, MASK = "<[begin▁of▁sentence]>", "<[PAD▁TOKEN]>", "<[end▁of▁sentence]>", "<[MASK_TOKEN]>"
# Ids 0.. in this order: the mask lands on generate_block's default id 5.
SEED_SPECIALS = (BOS, PAD, EOS, "<[fim-prefix]>", "<[fim-middle]>", MASK, "<[fim-suffix]>", "<[UNK▁TOKEN]>")
STABLE_DIFFCODER_REMOTE_FILES = ("modeling_stable_diffcoder.py",)
WEIGHT_STD = 0.2  # larger makes the MLPs swamp bias_towards_x's dimension (no head norms here)


def _special(content: str) -> dict[str, object]:
    return {"content": content, "lstrip": False, "normalized": False, "rstrip": False, "single_word": False,
            "special": True}  # fmt: skip


def _seed_tokenizer(out: Path) -> dict[str, int]:
    """Seed-Coder-style fast tokenizer files; returns the special tokens' ids and the size."""
    split = pre.Split(Regex(PRETOKENIZE_REGEX), behavior="isolated")
    bpe = _train_bpe(pre.Sequence([split, pre.ByteLevel(add_prefix_space=False, use_regex=False)]), None)
    # The same BPE with the specials first: ids 0..7, the text vocabulary after them.
    data = json.loads(bpe.to_str())
    vocab = {token: i + len(SEED_SPECIALS) for token, i in data["model"]["vocab"].items()}
    data["model"]["vocab"] = {**{token: i for i, token in enumerate(SEED_SPECIALS)}, **vocab}
    tokenizer = Tokenizer.from_str(json.dumps(data))
    tokenizer.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in SEED_SPECIALS])
    tokenizer.post_processor = processors.TemplateProcessing(
        single=f"{BOS} $A", pair=f"{BOS} $A {BOS} $B", special_tokens=[(BOS, 0)]
    )
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        bos_token=BOS,
        eos_token=EOS,
        pad_token=PAD,
        clean_up_tokenization_spaces=False,
    )
    fast.save_pretrained(str(out))
    _write_json(
        out / "tokenizer_config.json",
        {
            "add_bos_token": True,
            "add_eos_token": False,
            "added_tokens_decoder": {str(i): _special(token) for i, token in enumerate(SEED_SPECIALS)},
            "bos_token": BOS,
            "clean_up_tokenization_spaces": False,
            "eos_token": EOS,
            "model_max_length": 8192,
            "pad_token": PAD,
            "tokenizer_class": "PreTrainedTokenizerFast",
        },
    )
    return {token: i for i, token in enumerate(SEED_SPECIALS)} | {"size": tokenizer.get_vocab_size()}


def build_stable_diffcoder_release(out: Path, seed: int = 5) -> Path:
    """A ByteDance-Seed/Stable-DiffCoder-8B-Base-shaped directory with tiny random weights."""
    torch.manual_seed(seed)
    out.mkdir(parents=True, exist_ok=True)
    ids = _seed_tokenizer(out)
    sizes = {**TINY_QWEN, "rope_theta": 500_000.0}
    llama = LlamaConfig(vocab_size=_padded(ids["size"]), attention_bias=False, mlp_bias=False, **sizes)
    model = LlamaForCausalLM(llama)
    randomize_weights(model, WEIGHT_STD)
    _save_sharded(model, out)
    config = {
        "architectures": ["StableDiffcoderForCausalLM"],
        "attention_bias": False,
        "attention_dropout": 0.0,
        "auto_map": {"AutoModelForCausalLM": "modeling_stable_diffcoder.StableDiffcoderForCausalLM"},
        "bos_token_id": ids[BOS],
        "eos_token_id": ids[EOS],
        "pad_token_id": ids[PAD],
        "hidden_act": "silu",
        "hidden_size": llama.hidden_size,
        "initializer_range": 0.009882118,
        "intermediate_size": llama.intermediate_size,
        "max_position_embeddings": llama.max_position_embeddings,
        "mlp_bias": False,
        "model_type": "llama",
        "num_attention_heads": llama.num_attention_heads,
        "num_hidden_layers": llama.num_hidden_layers,
        "num_key_value_heads": llama.num_key_value_heads,
        "pretraining_tp": 1,
        "rms_norm_eps": 1e-6,
        "rope_scaling": None,
        "rope_theta": 500_000.0,
        "tie_word_embeddings": False,
        "torch_dtype": "bfloat16",
        "transformers_version": "4.46.2",
        "use_cache": True,
        "vocab_size": llama.vocab_size,
    }
    _write_json(out / "config.json", config)
    _write_json(
        out / "generation_config.json",
        {
            "bos_token_id": ids[BOS],
            "eos_token_id": ids[EOS],
            "pad_token_id": ids[PAD],
            "transformers_version": "4.46.2",
        },
    )
    _write_remote_code(out, STABLE_DIFFCODER_REMOTE_FILES)
    return out
