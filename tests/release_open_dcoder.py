"""A tiny random checkpoint laid out like Open-dCoder (fredzzp/open-dcoder-0.5B; no downloads).

From the authors' code (Open-dLLM's sample.py, eval_infill.py, veomni's Qwen2 generation_utils.py): Qwen2.5-
Coder-0.5B weights under transformers' Qwen2 names and config (``model_type "qwen2"``, ``architectures
["Qwen2ForCausalLM"]``, tied embeddings as the 0.5B), Qwen2.5's tokenizer with a ``[MASK]`` mask token (the
spelling sample.py adds when the tokenizer has none; the release's own spelling is not checked, the search
corpus does not hold its files). No remote code. Sizes shrunk; biases and norm weights random.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from transformers import Qwen2Config, Qwen2ForCausalLM

from tests.release_models import (
    QWEN25_ADDED,
    TINY_QWEN,
    _padded,
    _save_sharded,
    _write_json,
    randomize_weights,
)
from tests.release_sdar import qwen_fast_tokenizer

OPEN_DCODER_ADDED = (*QWEN25_ADDED, ("[MASK]", True))
WEIGHT_STD = 0.3


def build_open_dcoder_release(out: Path, seed: int = 8) -> Path:
    torch.manual_seed(seed)
    out.mkdir(parents=True, exist_ok=True)
    ids = qwen_fast_tokenizer(out, OPEN_DCODER_ADDED)
    tokenizer_config = json.loads((out / "tokenizer_config.json").read_text())
    tokenizer_config.update(eos_token="<|endoftext|>", mask_token="[MASK]")  # a base model's roles
    _write_json(out / "tokenizer_config.json", tokenizer_config)
    sizes = {**TINY_QWEN, "tie_word_embeddings": True}
    qwen2 = Qwen2Config(vocab_size=_padded(ids["size"]), **sizes)
    model = Qwen2ForCausalLM(qwen2)
    randomize_weights(model, WEIGHT_STD)
    state = {k: v.contiguous() for k, v in model.state_dict().items() if k != "lm_head.weight"}
    _save_sharded(model, out, state)
    config = {
        "architectures": ["Qwen2ForCausalLM"],
        "attention_dropout": 0.0,
        "bos_token_id": ids["<|endoftext|>"],
        "eos_token_id": ids["<|endoftext|>"],
        "hidden_act": "silu",
        "hidden_size": qwen2.hidden_size,
        "initializer_range": 0.02,
        "intermediate_size": qwen2.intermediate_size,
        "max_position_embeddings": qwen2.max_position_embeddings,
        "max_window_layers": qwen2.num_hidden_layers,
        "model_type": "qwen2",
        "num_attention_heads": qwen2.num_attention_heads,
        "num_hidden_layers": qwen2.num_hidden_layers,
        "num_key_value_heads": qwen2.num_key_value_heads,
        "pad_token_id": ids["<|endoftext|>"],
        "rms_norm_eps": 1e-6,
        "rope_scaling": None,
        "rope_theta": TINY_QWEN["rope_theta"],
        "sliding_window": None,
        "tie_word_embeddings": True,
        "torch_dtype": "bfloat16",
        "use_cache": True,
        "use_sliding_window": False,
        "vocab_size": qwen2.vocab_size,
    }
    _write_json(out / "config.json", config)
    return out
