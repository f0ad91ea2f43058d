"""A tiny random checkpoint laid out like the dllm project's Tiny-A2D bd3lm conversion of Qwen2.5-Coder
(dllm-hub/Qwen2.5-Coder-0.5B-Instruct-diffusion-bd3lm-v0.1; no downloads).

From the authors' code (dllm's pipelines/a2d/convert.py, models/qwen2/modeling_qwen2.py, utils/models.py):
the conversion saves ``A2DQwen2Config`` (transformers' Qwen2Config under ``model_type "a2d-qwen2"``) built
from the base model's config with its ``architectures`` and ``auto_map`` dropped, the model class
``A2DQwen2LMHeadModel`` (so ``architectures ["A2DQwen2LMHeadModel"]``) and the base tokenizer unchanged;
training adds ``<|mask|>`` as the mask token and saves the tokenizer with it. No ``block_size`` key: the
sampler's 32 comes from the family. Qwen2.5-Coder-0.5B-Instruct's tokenizer roles (eos ``<|im_end|>``, pad
``<|endoftext|>``) and generation_config.json. Not checked against the release's files, which the search
corpus does not hold: a third party's reading of the sibling mdlm checkpoint says it ships a
``modeling_qwen2.py`` (here an ``auto_map`` into it, a file that must never run) and an ``lm_head.weight`` of
its own (here untied, ``tie_word_embeddings`` false; infill follows config.json either way). Sizes shrunk;
biases and norm weights random.
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
    _write_remote_code,
    randomize_weights,
)
from tests.release_sdar import qwen_fast_tokenizer

A2D_ADDED = (*QWEN25_ADDED, ("<|mask|>", True))
A2D_REMOTE_FILES = ("modeling_qwen2.py",)
WEIGHT_STD = 0.3


def build_a2d_bd3lm_release(out: Path, seed: int = 12) -> Path:
    torch.manual_seed(seed)
    out.mkdir(parents=True, exist_ok=True)
    ids = qwen_fast_tokenizer(out, A2D_ADDED)
    tokenizer_config = json.loads((out / "tokenizer_config.json").read_text())
    tokenizer_config["mask_token"] = "<|mask|>"
    _write_json(out / "tokenizer_config.json", tokenizer_config)
    qwen2 = Qwen2Config(vocab_size=_padded(ids["size"]), **TINY_QWEN)
    model = Qwen2ForCausalLM(qwen2)
    randomize_weights(model, WEIGHT_STD)
    _save_sharded(model, out)
    config = {
        "architectures": ["A2DQwen2LMHeadModel"],
        "attention_dropout": 0.0,
        "auto_map": {
            "AutoConfig": "modeling_qwen2.A2DQwen2Config",
            "AutoModel": "modeling_qwen2.A2DQwen2LMHeadModel",
            "AutoModelForMaskedLM": "modeling_qwen2.A2DQwen2LMHeadModel",
        },
        "bos_token_id": ids["<|endoftext|>"],
        "eos_token_id": ids["<|im_end|>"],
        "hidden_act": "silu",
        "hidden_size": qwen2.hidden_size,
        "initializer_range": 0.02,
        "intermediate_size": qwen2.intermediate_size,
        "max_position_embeddings": qwen2.max_position_embeddings,
        "max_window_layers": qwen2.num_hidden_layers,
        "model_type": "a2d-qwen2",
        "num_attention_heads": qwen2.num_attention_heads,
        "num_hidden_layers": qwen2.num_hidden_layers,
        "num_key_value_heads": qwen2.num_key_value_heads,
        "rms_norm_eps": 1e-6,
        "rope_scaling": None,
        "rope_theta": TINY_QWEN["rope_theta"],
        "sliding_window": None,
        "tie_word_embeddings": False,
        "torch_dtype": "bfloat16",
        "transformers_version": "4.57.1",
        "use_cache": True,
        "use_sliding_window": False,
        "vocab_size": qwen2.vocab_size,
    }
    _write_json(out / "config.json", config)
    _write_json(
        out / "generation_config.json",
        {
            "bos_token_id": ids["<|endoftext|>"],
            "do_sample": True,
            "eos_token_id": [ids["<|im_end|>"], ids["<|endoftext|>"]],
            "pad_token_id": ids["<|endoftext|>"],
            "repetition_penalty": 1.1,
            "temperature": 0.7,
            "top_k": 20,
            "top_p": 0.8,
            "transformers_version": "4.57.1",
        },
    )
    _write_remote_code(out, A2D_REMOTE_FILES)
    return out
