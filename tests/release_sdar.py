"""A tiny random checkpoint laid out like the SDAR releases (JetLM/SDAR-8B-Chat; no downloads).

Copied from the release (as its model card, generate.py and modeling_sdar.py describe it; the config keys
beyond those the modeling file reads are from memory of the release, not checked against its files, which
the search corpus does not hold): Qwen3 weights under Qwen3 names (``self_attn.q_norm``/``k_norm``, no
attention biases), config ``model_type "sdar"``, ``architectures ["SDARForCausalLM"]``, an ``auto_map`` into
``configuration_sdar.py``/``modeling_sdar.py``, SDAR's training-only keys (``fuse_cross_entropy``,
``micro_forward``...), and neither ``block_size`` nor ``mask_token_id`` (the loader falls back to the family's
4 and the ``<|MASK|>`` spelling); Qwen3's tokenizer files (``tokenizer.json``, ``vocab.json``, ``merges.txt``,
a ``tokenizer_config.json`` naming ``Qwen2Tokenizer``) with Qwen3's added tokens in Qwen3's order and then
``<|MASK|>``; Qwen3's ``generation_config.json`` (sampling settings and end ids only). Shrunk: hidden sizes,
layers, the BPE vocabulary (special ids keep their order after it). ``head_dim`` is set apart from
hidden/heads, as in Qwen3, and the norm weights are not ones, so a dropped q/k norm shows in the logits.
"""

from __future__ import annotations

from pathlib import Path

import torch
from tokenizers import AddedToken, Regex, normalizers, pre_tokenizers
from transformers import PreTrainedTokenizerFast, Qwen3Config, Qwen3ForCausalLM
from transformers.models.qwen2.tokenization_qwen2 import PRETOKENIZE_REGEX

from tests.release_models import (
    QWEN25_ADDED,
    TINY_QWEN,
    _added_decoder,
    _padded,
    _save_sharded,
    _train_bpe,
    _write_json,
    _write_remote_code,
    randomize_weights,
)

QWEN3_ADDED = (
    *QWEN25_ADDED,
    ("<tool_response>", False),
    ("</tool_response>", False),
    ("<think>", False),
    ("</think>", False),
)
SDAR_ADDED = (*QWEN3_ADDED, ("<|MASK|>", True))
WEIGHT_STD = 0.3
SDAR_REMOTE_FILES = ("configuration_sdar.py", "modeling_sdar.py", "fused_linear_diffusion_cross_entropy.py")


def qwen_fast_tokenizer(out: Path, added: tuple[tuple[str, bool], ...] = SDAR_ADDED) -> dict[str, int]:
    """Qwen's fast tokenizer files with ``added`` (default: Qwen3's and SDAR's mask token); returns the added
    tokens' ids and the size."""
    qwen2 = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(PRETOKENIZE_REGEX), behavior="isolated"),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    bpe = _train_bpe(qwen2, normalizers.NFC())
    bpe.model.save(str(out))  # vocab.json + merges.txt, shipped beside tokenizer.json as Qwen3's are
    first = bpe.get_vocab_size()
    bpe.add_tokens([AddedToken(t, special=special, normalized=False) for t, special in added])
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=bpe, clean_up_tokenization_spaces=False)
    tokenizer.save_pretrained(str(out))
    roles = {"eos_token": "<|im_end|>", "pad_token": "<|endoftext|>"}
    _write_json(
        out / "tokenizer_config.json",
        {
            "add_bos_token": False,
            "add_prefix_space": False,
            "added_tokens_decoder": _added_decoder(added, first),
            "additional_special_tokens": ["<|im_start|>", "<|im_end|>"],
            "bos_token": None,
            "chat_template": "{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n"
            "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}",
            "clean_up_tokenization_spaces": False,
            **roles,
            "errors": "replace",
            "model_max_length": 131072,
            "split_special_tokens": False,
            "tokenizer_class": "Qwen2Tokenizer",
            "unk_token": None,
        },
    )
    _write_json(
        out / "special_tokens_map.json", {"additional_special_tokens": ["<|im_start|>", "<|im_end|>"]}
    )
    return {content: first + i for i, (content, _) in enumerate(added)} | {"size": first + len(added)}


def build_sdar_release(out: Path, seed: int = 4) -> Path:
    """A JetLM/SDAR-8B-Chat-shaped directory with tiny random weights."""
    torch.manual_seed(seed)
    out.mkdir(parents=True, exist_ok=True)
    ids = qwen_fast_tokenizer(out)
    qwen3 = Qwen3Config(vocab_size=_padded(ids["size"]), head_dim=16, **TINY_QWEN)
    model = Qwen3ForCausalLM(qwen3)
    randomize_weights(model, WEIGHT_STD)
    _save_sharded(model, out)
    config = {
        "architectures": ["SDARForCausalLM"],
        "attention_bias": False,
        "attention_dropout": 0.0,
        "auto_map": {
            "AutoConfig": "configuration_sdar.SDARConfig",
            "AutoModel": "modeling_sdar.SDARModel",
            "AutoModelForCausalLM": "modeling_sdar.SDARForCausalLM",
        },
        "bos_token_id": ids["<|endoftext|>"],
        "debug": False,
        "eos_token_id": ids["<|endoftext|>"],
        "ep_size": 1,
        "fuse_cross_entropy": True,
        "head_dim": qwen3.head_dim,
        "hidden_act": "silu",
        "hidden_size": qwen3.hidden_size,
        "initializer_range": 0.02,
        "intermediate_size": qwen3.intermediate_size,
        "max_position_embeddings": qwen3.max_position_embeddings,
        "max_window_layers": qwen3.num_hidden_layers,
        "micro_forward": False,
        "model_type": "sdar",
        "num_attention_heads": qwen3.num_attention_heads,
        "num_hidden_layers": qwen3.num_hidden_layers,
        "num_key_value_heads": qwen3.num_key_value_heads,
        "rms_norm_eps": 1e-6,
        "rope_scaling": None,
        "rope_theta": 1_000_000.0,
        "skip_checkpoint": False,
        "sliding_window": None,
        "tie_word_embeddings": False,
        "torch_dtype": "bfloat16",
        "transformers_version": "4.52.4",
        "use_cache": True,
        "use_deepep": False,
        "use_sliding_window": False,
        "vocab_size": qwen3.vocab_size,
    }
    _write_json(out / "config.json", config)
    _write_json(
        out / "generation_config.json",
        {
            "bos_token_id": ids["<|endoftext|>"],
            "do_sample": True,
            "eos_token_id": [ids["<|im_end|>"], ids["<|endoftext|>"]],
            "pad_token_id": ids["<|endoftext|>"],
            "temperature": 0.6,
            "top_k": 20,
            "top_p": 0.95,
            "transformers_version": "4.52.4",
        },
    )
    _write_remote_code(out, SDAR_REMOTE_FILES)
    return out
