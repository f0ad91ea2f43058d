"""A tiny random checkpoint laid out like the LLaDA2.0 releases (inclusionAI/LLaDA2.0-mini; no downloads).

From the release's ``modeling_llada2_moe.py`` (as copied into public repositories) and config.json as third
parties quote it: ``architectures ["LLaDA2MoeModelLM"]``, ``model_type "llada2_moe"``, an ``auto_map`` into
``configuration_llada2_moe.py``/``modeling_llada2_moe.py``, Ling 2.0's MoE keys (``num_experts``,
``num_experts_per_tok``, ``num_shared_experts``, ``n_group``/``topk_group``, ``routed_scaling_factor``,
``score_function "sigmoid"``, ``first_k_dense_replace``, ``partial_rotary_factor`` 0.5, ``use_qk_norm``...),
no block size and no mask id (generate's defaults: blocks of 32, mask 156895, eos 156892). Tensor names are
the modeling file's (``model.word_embeddings``, ``attention.query_key_value``/``query_layernorm``/
``key_layernorm``/``dense``, ``mlp.gate.weight``/``expert_bias``, ``mlp.experts.E.*``,
``mlp.shared_experts.*``; layer 0 a dense ``mlp.gate_proj``...). The tokenizer is a byte-level BPE
``tokenizer.json`` (PreTrainedTokenizerFast, no remote tokenizer code) with Ling's specials; their order and
the spelling ``<|mask|>`` are not checked against the release's files, which the search corpus does not
hold. Shrunk: sizes, three layers (one dense), 8 experts in 4 groups, 2 groups and 2 experts per token, one
shared expert; ``expert_bias`` random, so choosing experts by the biased scores and weighting them by the
unbiased ones both show in the logits.
"""

from __future__ import annotations

from pathlib import Path

import torch
from tokenizers import AddedToken, Regex, pre_tokenizers
from transformers import PreTrainedTokenizerFast

from tests.release_models import (
    _added_decoder,
    _padded,
    _save_sharded,
    _train_bpe,
    _write_json,
    _write_remote_code,
    randomize_tensors,
)

# Ling's specials in id order (<|startoftext|> 156891, <|endoftext|> 156892, ..., <|mask|> 156895), then the
# chat-turn tokens.
LLADA2_ADDED = (
    ("<|startoftext|>", True),
    ("<|endoftext|>", True),
    ("[CLS]", True),
    ("[gMASK]", True),
    ("<|mask|>", True),
    ("<role>", True),
    ("</role>", True),
    ("<|role_end|>", True),
)
LLADA2_REMOTE_FILES = ("configuration_llada2_moe.py", "modeling_llada2_moe.py")
WEIGHT_STD = 0.3
# GPT-4-style pre-tokenization, as Ling's tokenizer.json splits text before its byte-level BPE.
_SPLIT = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+"
    r"|\s+(?!\S)|\s+"
)
TINY_LLADA2 = {
    "hidden_size": 32,
    "intermediate_size": 64,
    "num_hidden_layers": 3,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "head_dim": 16,
    "moe_intermediate_size": 16,
    "num_experts": 8,
    "num_experts_per_tok": 2,
    "num_shared_experts": 1,
    "n_group": 4,
    "topk_group": 2,
    "first_k_dense_replace": 1,
}


def _tokenizer(out: Path) -> dict[str, int]:
    pre = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(_SPLIT), behavior="isolated"),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    bpe = _train_bpe(pre, None)
    first = bpe.get_vocab_size()
    bpe.add_tokens([AddedToken(t, special=special, normalized=False) for t, special in LLADA2_ADDED])
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=bpe, clean_up_tokenization_spaces=False)
    tokenizer.save_pretrained(str(out))
    roles = {
        "bos_token": "<|startoftext|>",
        "cls_token": "[CLS]",
        "eos_token": "<|endoftext|>",
        "mask_token": "<|mask|>",
        "pad_token": "<|endoftext|>",
    }
    _write_json(
        out / "tokenizer_config.json",
        {
            "add_bos_token": False,
            "add_eos_token": False,
            "added_tokens_decoder": _added_decoder(LLADA2_ADDED, first),
            **roles,
            "chat_template": "{% for m in messages %}<role>{{ m.role | upper }}</role>{{ m.content }}"
            "<|role_end|>{% endfor %}{% if add_generation_prompt %}<role>ASSISTANT</role>{% endif %}",
            "clean_up_tokenization_spaces": False,
            "fast_tokenizer": True,
            "gmask_token": "[gMASK]",
            "model_max_length": 32768,
            "tokenizer_class": "PreTrainedTokenizerFast",
        },
    )
    _write_json(out / "special_tokens_map.json", roles)
    return {content: first + i for i, (content, _) in enumerate(LLADA2_ADDED)} | {
        "size": first + len(LLADA2_ADDED)
    }


def _tensor_shapes(c: dict[str, int], vocab: int) -> dict[str, tuple[int, ...]]:
    """Every tensor of modeling_llada2_moe.py's LLaDA2MoeModelLM, by name."""
    hidden, dim = c["hidden_size"], c["head_dim"]
    heads, kv_heads = c["num_attention_heads"], c["num_key_value_heads"]
    shapes: dict[str, tuple[int, ...]] = {
        "model.word_embeddings.weight": (vocab, hidden),
        "model.norm.weight": (hidden,),
        "lm_head.weight": (vocab, hidden),
    }

    def mlp(prefix: str, inner: int) -> None:
        shapes[prefix + "gate_proj.weight"] = (inner, hidden)
        shapes[prefix + "up_proj.weight"] = (inner, hidden)
        shapes[prefix + "down_proj.weight"] = (hidden, inner)

    for layer in range(c["num_hidden_layers"]):
        p = f"model.layers.{layer}."
        shapes[p + "input_layernorm.weight"] = (hidden,)
        shapes[p + "post_attention_layernorm.weight"] = (hidden,)
        shapes[p + "attention.query_key_value.weight"] = ((heads + 2 * kv_heads) * dim, hidden)
        shapes[p + "attention.query_layernorm.weight"] = (dim,)
        shapes[p + "attention.key_layernorm.weight"] = (dim,)
        shapes[p + "attention.dense.weight"] = (hidden, heads * dim)
        if layer < c["first_k_dense_replace"]:
            mlp(p + "mlp.", c["intermediate_size"])
            continue
        shapes[p + "mlp.gate.weight"] = (c["num_experts"], hidden)
        shapes[p + "mlp.gate.expert_bias"] = (c["num_experts"],)
        for expert in range(c["num_experts"]):
            mlp(f"{p}mlp.experts.{expert}.", c["moe_intermediate_size"])
        mlp(p + "mlp.shared_experts.", c["moe_intermediate_size"] * c["num_shared_experts"])
    return shapes


def build_llada2_release(out: Path, seed: int = 5) -> Path:
    """An inclusionAI/LLaDA2.0-mini-shaped directory with tiny random weights."""
    torch.manual_seed(seed)
    out.mkdir(parents=True, exist_ok=True)
    ids = _tokenizer(out)
    vocab = _padded(ids["size"])
    state = {name: torch.empty(shape) for name, shape in _tensor_shapes(TINY_LLADA2, vocab).items()}
    randomize_tensors(state.items(), WEIGHT_STD)
    with torch.no_grad():  # the router's selection bias: the size of the sigmoid scores' spread
        for name, tensor in state.items():
            if name.endswith("expert_bias"):
                tensor.normal_(0.0, 0.2)
    _save_sharded(torch.nn.Module(), out, state)
    config = {
        "architectures": ["LLaDA2MoeModelLM"],
        "attention_dropout": 0.0,
        "auto_map": {
            "AutoConfig": "configuration_llada2_moe.LLaDA2MoeConfig",
            "AutoModel": "modeling_llada2_moe.LLaDA2MoeModel",
            "AutoModelForCausalLM": "modeling_llada2_moe.LLaDA2MoeModelLM",
        },
        "dtype": "bfloat16",
        "embedding_dropout": 0.0,
        "hidden_act": "silu",
        "initializer_range": 0.02,
        "max_position_embeddings": 512,
        "max_window_layers": TINY_LLADA2["num_hidden_layers"],
        "model_type": "llada2_moe",
        "moe_router_enable_expert_bias": True,
        "norm_head": False,
        "norm_softmax": False,
        "norm_topk_prob": True,
        "output_dropout": 0.0,
        "output_router_logits": False,
        "pad_token_id": ids["<|endoftext|>"],
        "partial_rotary_factor": 0.5,
        "rms_norm_eps": 1e-06,
        "rope_scaling": None,
        "rope_theta": 600000,
        "rotary_dim": TINY_LLADA2["head_dim"] // 2,
        "routed_scaling_factor": 2.5,
        "router_dtype": "fp32",
        "score_function": "sigmoid",
        "tie_word_embeddings": False,
        "transformers_version": "4.56.1",
        "use_bias": False,
        "use_cache": False,
        "use_qk_norm": True,
        "use_qkv_bias": False,
        "use_rmsnorm": True,
        "using_split_qkv_in_self_attention": False,
        "vocab_size": vocab,
        **TINY_LLADA2,
    }
    _write_json(out / "config.json", dict(sorted(config.items())))
    _write_json(
        out / "generation_config.json",
        {
            "bos_token_id": ids["<|startoftext|>"],
            "eos_token_id": ids["<|endoftext|>"],
            "pad_token_id": ids["<|endoftext|>"],
            "transformers_version": "4.56.1",
        },
    )
    _write_remote_code(out, LLADA2_REMOTE_FILES)
    return out
