"""A tiny random checkpoint laid out like the Fast-dLLM v2 release (Efficient-Large-Model/Fast_dLLM_v2_7B; no
downloads).

From the release's modeling file (its ``Fast_dLLM_QwenForCausalLM``, as copied into a public repository) and
model card: Qwen2.5 weights under Qwen2 names (q/k/v biases, no o_proj bias), ``architectures
["Fast_dLLM_QwenForCausalLM"]``, ``bd_size`` 32 in the config (the training block size; ``generate`` takes
``block_size=32``), mask id 151665 (the first id after Qwen2.5's added tokens) and stop id 151645
(``<|im_end|>``). Not checked against the release's files, which the search corpus does not hold: the
``model_type`` ("fast_dllm_qwen" here), the remote file names, and the mask's spelling (``|<MASK>|`` here).
Qwen2.5-Instruct's tokenizer files (``tokenizer.json``, ``vocab.json``, ``merges.txt``) with Qwen2.5's added
tokens then the mask; sizes shrunk; biases and norm weights random so a dropped one shows in the logits.
"""

from __future__ import annotations

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

FAST_DLLM_ADDED = (*QWEN25_ADDED, ("|<MASK>|", True))
FAST_DLLM_REMOTE_FILES = ("configuration.py", "modeling.py")
WEIGHT_STD = 0.3


def build_fast_dllm_release(out: Path, seed: int = 7, bd_size: int = 32) -> Path:
    """An Efficient-Large-Model/Fast_dLLM_v2_7B-shaped directory with tiny random weights."""
    torch.manual_seed(seed)
    out.mkdir(parents=True, exist_ok=True)
    ids = qwen_fast_tokenizer(out, FAST_DLLM_ADDED)
    qwen2 = Qwen2Config(vocab_size=_padded(ids["size"]), **TINY_QWEN)
    model = Qwen2ForCausalLM(qwen2)
    randomize_weights(model, WEIGHT_STD)
    _save_sharded(model, out)
    config = {
        "architectures": ["Fast_dLLM_QwenForCausalLM"],
        "attention_dropout": 0.0,
        "auto_map": {
            "AutoConfig": "configuration.Fast_dLLM_QwenConfig",
            "AutoModelForCausalLM": "modeling.Fast_dLLM_QwenForCausalLM",
        },
        "bd_size": bd_size,
        "bos_token_id": ids["<|endoftext|>"],
        "eos_token_id": ids["<|im_end|>"],
        "hidden_act": "silu",
        "hidden_size": qwen2.hidden_size,
        "initializer_range": 0.02,
        "intermediate_size": qwen2.intermediate_size,
        "layer_types": ["full_attention"] * qwen2.num_hidden_layers,
        "max_position_embeddings": qwen2.max_position_embeddings,
        "max_window_layers": qwen2.num_hidden_layers,
        "model_type": "fast_dllm_qwen",
        "num_attention_heads": qwen2.num_attention_heads,
        "num_hidden_layers": qwen2.num_hidden_layers,
        "num_key_value_heads": qwen2.num_key_value_heads,
        "rms_norm_eps": 1e-6,
        "rope_scaling": None,
        "rope_theta": TINY_QWEN["rope_theta"],
        "sliding_window": None,
        "tie_word_embeddings": False,
        "torch_dtype": "bfloat16",
        "transformers_version": "4.53.1",
        "use_cache": True,
        "use_sliding_window": False,
        "vocab_size": qwen2.vocab_size,
    }
    _write_json(out / "config.json", config)
    _write_json(
        out / "generation_config.json",
        {
            "bos_token_id": ids["<|endoftext|>"],
            "eos_token_id": [ids["<|im_end|>"], ids["<|endoftext|>"]],
            "pad_token_id": ids["<|endoftext|>"],
            "transformers_version": "4.53.1",
        },
    )
    _write_remote_code(out, FAST_DLLM_REMOTE_FILES)
    return out
