"""Tiny random checkpoints laid out exactly like the released diffusion code models (no downloads).

What each builder copies from the release (file names, config keys, tokenizer files, special tokens) and what
it shrinks (hidden sizes, layers, the BPE vocabulary; special ids keep their order after the text vocabulary):

- Dream-v0 (Dream-org/Dream-v0-Base-7B) and Dream-Coder-v0 (Dream-org/Dream-Coder-v0-Base-7B): Qwen2 weights
  under Qwen2 names, config ``model_type "Dream"``, ``architectures ["DreamModel"]``, an ``auto_map`` into
  ``configuration_dream.py``/``modeling_dream.py``; the slow ``DreamTokenizer`` files only (``vocab.json``,
  ``merges.txt``, ``added_tokens.json``, ``special_tokens_map.json``, a ``tokenizer_config.json`` whose
  ``auto_map`` names ``tokenization_dream.DreamTokenizer``), no ``tokenizer.json``. Qwen2.5's added tokens in
  Qwen2.5's order and with its special flags (the FIM and tool-call tokens are *not* special), then Dream's
  ``<|beginoftext|>`` and ``<|mask|>``; the embedding has padding rows past the tokenizer (152064 vs 151667).
- DiffuCoder (apple/DiffuCoder-7B-Base): the Dream layout plus ``<|dlm_pad|>``, the tokenizer's pad token.
- LLaDA (GSAI-ML/LLaDA-8B-Base): config keys of ``configuration_llada.py`` (d_model, n_heads, mlp_hidden_size,
  block_type "llama", ...), weights under ``model.transformer.*`` names, a fast ``tokenizer.json`` with
  ``<|startoftext|>``, ``<|endoftext|>``, the chat tokens and ``<|mdm_mask|>``.

Every remote-code ``.py`` file of a release is present, and importing it writes ``REMOTE_CODE_RAN`` beside it
and raises: a test that loads the directory and then finds no such file knows none of them ran.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

import torch
from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers
from transformers import LlamaConfig, LlamaForCausalLM, Qwen2Config, Qwen2ForCausalLM
from transformers.models.qwen2.tokenization_qwen2 import PRETOKENIZE_REGEX

from tests.tiny_models import CODE_SAMPLES

SENTINEL = "REMOTE_CODE_RAN"
# A real file with a cursor after ``result = `` (line 5, column 10): what every family's CLI test completes.
SCALE_SOURCE = "def scale(values):\n    return values\n\n\nresult = \n"
REMOTE_CODE = (
    "import pathlib\n"
    f"pathlib.Path(__file__).with_name({SENTINEL!r}).write_text(__name__)\n"
    "raise ImportError('infill must never import the code shipped with a checkpoint')\n"
)
# Qwen2.5's added tokens in id order, with the special flags of its tokenizer_config.json.
QWEN25_ADDED = (
    ("<|endoftext|>", True),
    ("<|im_start|>", True),
    ("<|im_end|>", True),
    ("<|object_ref_start|>", True),
    ("<|object_ref_end|>", True),
    ("<|box_start|>", True),
    ("<|box_end|>", True),
    ("<|quad_start|>", True),
    ("<|quad_end|>", True),
    ("<|vision_start|>", True),
    ("<|vision_end|>", True),
    ("<|vision_pad|>", True),
    ("<|image_pad|>", True),
    ("<|video_pad|>", True),
    ("<tool_call>", False),
    ("</tool_call>", False),
    ("<|fim_prefix|>", False),
    ("<|fim_middle|>", False),
    ("<|fim_suffix|>", False),
    ("<|fim_pad|>", False),
    ("<|repo_name|>", False),
    ("<|file_sep|>", False),
)
DREAM_ADDED = (*QWEN25_ADDED, ("<|beginoftext|>", True), ("<|mask|>", True))
DIFFUCODER_ADDED = (*DREAM_ADDED, ("<|dlm_pad|>", True))
# DreamOn-v0: Dream-Coder's tokens plus its length-control tokens (spellings as in its paper; not checked
# against the release files, which the search corpus does not hold).
DREAMON_ADDED = (*DREAM_ADDED, ("<|expand|>", True), ("<|delete|>", True))
VARIANT_ADDED = {
    "dream-v0": DREAM_ADDED,
    "dream-coder": DREAM_ADDED,
    "diffucoder": DIFFUCODER_ADDED,
    "dreamon": DREAMON_ADDED,
}
DREAM_REMOTE_FILES = (
    "configuration_dream.py",
    "modeling_dream.py",
    "generation_utils.py",
    "tokenization_dream.py",
)
LLADA_REMOTE_FILES = ("configuration_llada.py", "modeling_llada.py")
TEXT_VOCAB = 400


def _write_json(path: Path, data: object) -> None:
    path.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def _train_bpe(
    pre_tokenizer: pre_tokenizers.PreTokenizer, normalizer: normalizers.Normalizer | None
) -> Tokenizer:
    tokenizer = Tokenizer(models.BPE())
    if normalizer is not None:
        tokenizer.normalizer = normalizer
    tokenizer.pre_tokenizer = pre_tokenizer
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=TEXT_VOCAB, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False
    )
    tokenizer.train_from_iterator(CODE_SAMPLES, trainer=trainer)
    return tokenizer


def _added_decoder(added: tuple[tuple[str, bool], ...], first_id: int) -> dict[str, dict[str, object]]:
    entry = {"lstrip": False, "normalized": False, "rstrip": False, "single_word": False}
    return {
        str(first_id + i): {"content": content, **entry, "special": special}
        for i, (content, special) in enumerate(added)
    }


def write_dream_tokenizer_files(out: Path, added: tuple[tuple[str, bool], ...], pad_token: str) -> int:
    """The slow DreamTokenizer files (no tokenizer.json); returns the tokenizer's size."""
    qwen2 = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(PRETOKENIZE_REGEX), behavior="isolated"),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    bpe = _train_bpe(qwen2, normalizers.NFC())
    bpe.model.save(str(out))  # vocab.json + merges.txt ("#version: 0.2" header, as Qwen2's)
    first = bpe.get_vocab_size()
    names = [content for content, _ in added]
    _write_json(out / "added_tokens.json", {content: first + i for i, content in enumerate(names)})
    specials = [content for content, special in added if special]
    roles = {"bos_token": "<|beginoftext|>", "eos_token": "<|endoftext|>", "pad_token": pad_token}
    roles["mask_token"] = "<|mask|>"
    additional = [t for t in specials if t not in roles.values()]
    _write_json(out / "special_tokens_map.json", {"additional_special_tokens": additional, **roles})
    _write_json(
        out / "tokenizer_config.json",
        {
            "add_bos_token": False,
            "add_prefix_space": False,
            "added_tokens_decoder": _added_decoder(added, first),
            "additional_special_tokens": additional,
            "auto_map": {"AutoTokenizer": ["tokenization_dream.DreamTokenizer", None]},
            **roles,
            "chat_template": "{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n"
            "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}",
            "clean_up_tokenization_spaces": False,
            "errors": "replace",
            "model_max_length": 131072,
            "split_special_tokens": False,
            "tokenizer_class": "DreamTokenizer",
            "unk_token": None,
        },
    )
    return first + len(added)


def _write_remote_code(out: Path, names: tuple[str, ...]) -> None:
    for name in names:
        (out / name).write_text(REMOTE_CODE)


def _save_sharded(model: torch.nn.Module, out: Path, state: dict[str, torch.Tensor] | None = None) -> None:
    """model-0000i-of-0000n.safetensors + model.safetensors.index.json, as the 7B releases ship."""
    from safetensors.torch import save_file

    state = state if state is not None else {k: v.contiguous() for k, v in model.state_dict().items()}
    names = sorted(state)
    shards = [names[: len(names) // 2], names[len(names) // 2 :]]
    weight_map = {}
    for i, shard in enumerate(shards, start=1):
        file = f"model-{i:05d}-of-{len(shards):05d}.safetensors"
        save_file({k: state[k].clone() for k in shard}, str(out / file), metadata={"format": "pt"})
        weight_map.update(dict.fromkeys(shard, file))
    total = sum(t.numel() * t.element_size() for t in state.values())
    _write_json(
        out / "model.safetensors.index.json", {"metadata": {"total_size": total}, "weight_map": weight_map}
    )


# The shrunk sizes of the Qwen-shaped releases (Dream's Qwen2, SDAR's Qwen3).
TINY_QWEN = {
    "hidden_size": 32,
    "intermediate_size": 64,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "max_position_embeddings": 512,
    "rope_theta": 1_000_000.0,
    "rms_norm_eps": 1e-6,
    "tie_word_embeddings": False,
}


def randomize_weights(model: torch.nn.Module, weight_std: float) -> None:
    """Norm weights that are not ones (a skipped norm changes the logits) and other weights larger than the
    0.02 init (so greedy decoding does not repeat one token throughout)."""
    randomize_tensors(model.named_parameters(), weight_std)


def randomize_tensors(named: Iterable[tuple[str, torch.Tensor]], weight_std: float) -> None:
    """randomize_weights's rule on named tensors (a checkpoint written without a model class)."""
    with torch.no_grad():
        for name, tensor in named:
            if "norm" in name:
                tensor.uniform_(0.5, 1.5)
            else:
                tensor.normal_(0.0, weight_std)


def _padded(size: int, multiple: int = 64) -> int:
    return -(-size // multiple) * multiple


def build_dream_release(
    out: Path,
    *,
    variant: str = "dream-v0",
    seed: int = 0,
    generation: dict[str, object] | None = None,
) -> Path:
    """A Dream-v0, Dream-Coder-v0 (``"dream-coder"``), DiffuCoder (``"diffucoder"``) or DreamOn directory."""
    torch.manual_seed(seed)
    out.mkdir(parents=True, exist_ok=True)
    added = VARIANT_ADDED[variant]
    pad_token = "<|dlm_pad|>" if variant == "diffucoder" else "<|endoftext|>"
    tokenizer_size = write_dream_tokenizer_files(out, added, pad_token)
    first = tokenizer_size - len(added)
    ids = {content: first + i for i, (content, _) in enumerate(added)}
    qwen = Qwen2Config(vocab_size=_padded(tokenizer_size), **TINY_QWEN)
    model = Qwen2ForCausalLM(qwen)
    _save_sharded(model, out)
    config = {
        "architectures": ["DreamModel"],
        "attention_dropout": 0.0,
        "auto_map": {
            "AutoConfig": "configuration_dream.DreamConfig",
            "AutoModel": "modeling_dream.DreamModel",
        },
        # Dream-Coder's config names <|beginoftext|> as bos; Dream-v0 and DiffuCoder name <|endoftext|>.
        "bos_token_id": ids["<|beginoftext|>"]
        if variant in ("dream-coder", "dreamon")
        else ids["<|endoftext|>"],
        "eos_token_id": ids["<|endoftext|>"],
        "hidden_act": "silu",
        "hidden_size": qwen.hidden_size,
        "initializer_range": 0.02,
        "intermediate_size": qwen.intermediate_size,
        "mask_token_id": ids["<|mask|>"],
        "max_position_embeddings": qwen.max_position_embeddings,
        "max_window_layers": qwen.num_hidden_layers,
        "model_type": "Dream",
        "num_attention_heads": qwen.num_attention_heads,
        "num_hidden_layers": qwen.num_hidden_layers,
        "num_key_value_heads": qwen.num_key_value_heads,
        "pad_token_id": ids["<|endoftext|>"],
        "rms_norm_eps": 1e-6,
        "rope_scaling": None,
        "rope_theta": 1_000_000.0,
        "sliding_window": None,
        "tie_word_embeddings": False,
        "torch_dtype": "bfloat16",
        "transformers_version": "4.46.2",
        "use_cache": True,
        "use_sliding_window": False,
        "vocab_size": qwen.vocab_size,
    }
    _write_json(out / "config.json", config)
    generation_config = {
        "_from_model_config": True,
        "bos_token_id": config["bos_token_id"],
        "eos_token_id": config["eos_token_id"],
        "pad_token_id": config["pad_token_id"],
        "mask_token_id": config["mask_token_id"],
        "transformers_version": "4.46.2",
    }
    generation_config.update(generation or {})
    _write_json(out / "generation_config.json", generation_config)
    _write_remote_code(out, DREAM_REMOTE_FILES)
    return out


# LLaDA's added tokens (GSAI-ML/LLaDA-8B-Base tokenizer.json), in id order after the text vocabulary; the
# release has reserved tokens in between (mask 126336 sits after eos 126081), kept here as a gap of unused
# ids.
LLADA_ADDED = ("<|startoftext|>", "<|endoftext|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>")
LLADA_MASK = "<|mdm_mask|>"


def _llada_tokenizer(out: Path) -> dict[str, int]:
    from transformers import PreTrainedTokenizerFast

    bpe = _train_bpe(pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True), None)
    reserved = [f"<|reserved_token_{i}|>" for i in range(12)]  # unused ids between the specials, as released
    bpe.add_special_tokens(reserved[:8] + list(LLADA_ADDED) + reserved[8:] + [LLADA_MASK])
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=bpe,
        bos_token="<|startoftext|>",
        eos_token="<|endoftext|>",
        clean_up_tokenization_spaces=False,
        model_max_length=4096,
    )
    tokenizer.save_pretrained(str(out))
    vocab = tokenizer.get_vocab()
    # The release's tokenizer_config.json and special_tokens_map.json are transformers 4's format.
    added = [(t.content, t.special) for _, t in sorted(tokenizer.added_tokens_decoder.items())]
    roles = {"bos_token": "<|startoftext|>", "eos_token": "<|endoftext|>"}
    _write_json(
        out / "tokenizer_config.json",
        {
            "added_tokens_decoder": _added_decoder(tuple(added), vocab[added[0][0]]),
            **roles,
            "chat_template": "{% set loop_messages = messages %}{% for message in loop_messages %}"
            "{% if loop.index0 == 0 %}{{ bos_token }}{% endif %}<|start_header_id|>{{ message['role'] }}"
            "<|end_header_id|>\n\n{{ message['content'] | trim }}<|eot_id|>{% endfor %}",
            "clean_up_tokenization_spaces": False,
            "model_max_length": 1000000000000000019884624838656,
            "tokenizer_class": "PreTrainedTokenizerFast",
        },
    )
    _write_json(out / "special_tokens_map.json", roles)
    return {t: vocab[t] for t in (*LLADA_ADDED, LLADA_MASK)} | {"size": len(tokenizer)}


# LLaDA block tensor names -> transformers LLaMA names (modeling_llada.py's LLaDALlamaBlock: act(ff_proj(x)) *
# up_proj(x), so ff_proj is the SwiGLU gate; attn_out is o_proj; ff_out inside a block is down_proj).
LLADA_BLOCK_NAMES = {
    "q_proj": "self_attn.q_proj",
    "k_proj": "self_attn.k_proj",
    "v_proj": "self_attn.v_proj",
    "attn_out": "self_attn.o_proj",
    "ff_proj": "mlp.gate_proj",
    "up_proj": "mlp.up_proj",
    "ff_out": "mlp.down_proj",
    "attn_norm": "input_layernorm",
    "ff_norm": "post_attention_layernorm",
}


def llada_state_dict(llama: LlamaForCausalLM) -> dict[str, torch.Tensor]:
    """A LLaMA module's weights under LLaDA's release names."""
    state = {}
    for i, _ in enumerate(llama.model.layers):
        for llada, ours in LLADA_BLOCK_NAMES.items():
            state[f"model.transformer.blocks.{i}.{llada}.weight"] = llama.get_parameter(
                f"model.layers.{i}.{ours}.weight"
            )
    state["model.transformer.wte.weight"] = llama.model.embed_tokens.weight
    state["model.transformer.ln_f.weight"] = llama.model.norm.weight
    state["model.transformer.ff_out.weight"] = llama.lm_head.weight
    return {k: v.detach().contiguous() for k, v in state.items()}


def build_llada_release(out: Path, seed: int = 0) -> Path:
    """A GSAI-ML/LLaDA-8B-Base-shaped directory with tiny random weights."""
    torch.manual_seed(seed)
    out.mkdir(parents=True, exist_ok=True)
    ids = _llada_tokenizer(out)
    vocab = _padded(ids["size"])
    llama = LlamaForCausalLM(
        LlamaConfig(
            vocab_size=vocab,
            hidden_size=32,
            intermediate_size=96,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=4,
            max_position_embeddings=512,
            rope_theta=500_000.0,
            rms_norm_eps=1e-5,
            tie_word_embeddings=False,
        )
    )
    with torch.no_grad():  # non-trivial norm weights, so a swapped norm would show in the logits
        for name, param in llama.named_parameters():
            if "norm" in name:
                param.uniform_(0.5, 1.5)
    _save_sharded(llama, out, llada_state_dict(llama))
    config = {
        "activation_type": "silu",
        "alibi": False,
        "alibi_bias_max": 8.0,
        "architectures": ["LLaDAModelLM"],
        "attention_dropout": 0.0,
        "attention_layer_norm": False,
        "attention_layer_norm_with_affine": True,
        "auto_map": {
            "AutoConfig": "configuration_llada.LLaDAConfig",
            "AutoModelForCausalLM": "modeling_llada.LLaDAModelLM",
            "AutoModel": "modeling_llada.LLaDAModelLM",
        },
        "bias_for_layer_norm": False,
        "block_group_size": 1,
        "block_type": "llama",
        "d_model": 32,
        "embedding_dropout": 0.0,
        "embedding_size": vocab,
        "eos_token_id": ids["<|endoftext|>"],
        "flash_attention": False,
        "include_bias": False,
        "include_qkv_bias": False,
        "init_cutoff_factor": None,
        "init_device": "meta",
        "init_fn": "mitchell",
        "init_std": 0.02,
        "input_emb_norm": False,
        "layer_norm_type": "rms",
        "layer_norm_with_affine": True,
        "mask_token_id": ids[LLADA_MASK],
        "max_sequence_length": 512,
        "mlp_hidden_size": 96,
        "mlp_ratio": 4,
        "model_type": "llada",
        "multi_query_attention": None,
        "n_heads": 4,
        "n_kv_heads": 4,
        "n_layers": 2,
        "pad_token_id": ids["<|endoftext|>"],
        "precision": "amp_bf16",
        "residual_dropout": 0.0,
        "rms_norm_eps": 1e-5,
        "rope": True,
        "rope_full_precision": True,
        "rope_theta": 500_000.0,
        "scale_logits": False,
        "transformers_version": "4.46.3",
        "use_cache": False,
        "vocab_size": vocab,
        "weight_tying": False,
    }
    _write_json(out / "config.json", config)
    _write_json(
        out / "generation_config.json",
        {
            "_from_model_config": True,
            "bos_token_id": ids["<|startoftext|>"],
            "eos_token_id": ids["<|endoftext|>"],
            "pad_token_id": ids["<|endoftext|>"],
            "transformers_version": "4.46.3",
        },
    )
    _write_remote_code(out, LLADA_REMOTE_FILES)
    return out


# Embedding and LM-head tensor names of each release layout.
_EMBEDDING_AND_HEAD = {
    "qwen2": ("model.embed_tokens.weight", "lm_head.weight"),
    "llada": ("model.transformer.wte.weight", "model.transformer.ff_out.weight"),
    "llada2_moe": ("model.word_embeddings.weight", "lm_head.weight"),
}


def token_id_in_files(model_dir: Path, token: str) -> int:
    """A text token's id, read from vocab.json or tokenizer.json (not through any tokenizer class)."""
    if (model_dir / "vocab.json").is_file():
        return json.loads((model_dir / "vocab.json").read_text())[token]
    return json.loads((model_dir / "tokenizer.json").read_text())["model"]["vocab"][token]


def bias_towards_x(src: Path, out: Path) -> Path:
    """A copy of a release-shaped checkpoint that proposes the token "x" wherever it is asked.

    Every token embedding gets a large constant in hidden dimension 0, which survives the (random, small)
    layers and every RMSNorm as a large positive value; the LM head row of "x" reads that dimension. The rest
    of the network is untouched, so the fill still goes through the whole real model and stack. " x" reads
    it a little less: where only a token starting with a blank may come (after a healed trailing blank,
    `x = |`), the fill still starts with "x".
    """
    import shutil

    from safetensors.torch import load_file, save_file

    shutil.copytree(src, out)
    # Which release it is, by its remote modeling file (present, never imported).
    layout = next((k for k in ("llada2_moe", "llada") if (out / f"modeling_{k}.py").exists()), "qwen2")
    embedding, head = _EMBEDDING_AND_HEAD[layout]
    x_id, blank_x_id = token_id_in_files(out, "x"), token_id_in_files(out, "Ġx")
    tied = json.loads((out / "config.json").read_text()).get("tie_word_embeddings", False)
    for shard in sorted(out.glob("model-*.safetensors")):
        weights = load_file(str(shard))
        if embedding in weights:
            weights[embedding][:, 0] = 8.0
            if tied:  # the embedding is the LM head (Open-dCoder): its "x" rows read dimension 0 much harder
                weights[embedding][x_id, 0] = 40.0
                weights[embedding][blank_x_id, 0] = 30.0
        if head in weights:
            weights[head][x_id, 0] = 12.0
            weights[head][blank_x_id, 0] = 10.0
        save_file(weights, str(shard), metadata={"format": "pt"})
    return out


def build_infill_shifted_decoder(out: Path, seed: int = 0) -> Path:
    """What our pipeline exports for a shifted diffusion decoder: Qwen2 weights, our BPE (tokenizer.json),
    config.json ``"infill_family": "infill-shifted-decoder"``."""
    from training.tokenizer import train_code_tokenizer

    torch.manual_seed(seed)
    tokenizer = train_code_tokenizer(CODE_SAMPLES, vocab_size=TEXT_VOCAB)
    model = Qwen2ForCausalLM(
        Qwen2Config(
            vocab_size=len(tokenizer),
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=4,
            max_position_embeddings=256,
            tie_word_embeddings=True,
            pad_token_id=tokenizer.pad_token_id,
        )
    )
    model.config.infill_family = "infill-shifted-decoder"
    model.save_pretrained(str(out), safe_serialization=True)
    tokenizer.save_pretrained(str(out))
    return out


def cli_completion(model_dir: Path, folder: Path, capsys: object, *options: str) -> str:
    """``infill complete`` at ``result = `` of a real file in ``folder`` (``--max-tokens 6`` on the CPU, plus
    ``options``), through the CLI's own ``main``: what it printed, after checking it exited 0."""
    from infill_cli.main import main

    path = folder / "scale.py"
    path.write_text(SCALE_SOURCE)
    capsys.readouterr()  # type: ignore[attr-defined]  # only this command's output
    argv = ["complete", f"{path}:5:10", "--model", str(model_dir), "--max-tokens", "6", "--device", "cpu"]
    assert main([*argv, *options]) == 0
    return capsys.readouterr().out.rstrip("\n")  # type: ignore[attr-defined]
