"""Models and tokenizers to train: from scratch (diffusion ModernBERT, AR Qwen2 peer) or a base to tune."""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path

import torch
from transformers import (
    AutoModelForMaskedLM,
    AutoTokenizer,
    ModernBertConfig,
    ModernBertForMaskedLM,
    PreTrainedTokenizerBase,
    Qwen2Config,
    Qwen2ForCausalLM,
)

from infill.errors import TrainingError
from training.config import TrainConfig
from training.corpus import SourceFile
from training.tokenizer import load_code_tokenizer, train_code_tokenizer

logger = logging.getLogger(__name__)

TOKENIZER_SAMPLE_CHARS = 3_000_000  # BPE merges settle long before this; more only costs time
# config.json key and value of a Qwen2-shaped diffusion model with Dream's layout (bidirectional attention,
# the hidden state at i-1 predicts the token at i), as the AR-initialised recipe produces.
FAMILY_KEY = "infill_family"
SHIFTED_DECODER = "infill-shifted-decoder"


def new_tokenizer(files: Sequence[SourceFile], vocab_size: int) -> PreTrainedTokenizerBase:
    """Train the code tokenizer on (a prefix of) the training files."""
    texts, total = [], 0
    for f in files:
        if total >= TOKENIZER_SAMPLE_CHARS:
            break
        texts.append(f.text)
        total += len(f.text)
    return train_code_tokenizer(texts, vocab_size=vocab_size)


def build_diffusion_model(config: TrainConfig, tokenizer: PreTrainedTokenizerBase) -> torch.nn.Module:
    """A ModernBERT masked LM sized by the config; every layer global attention (short windows anyway)."""
    model_config = ModernBertConfig(
        vocab_size=len(tokenizer),
        hidden_size=config.hidden_size,
        intermediate_size=config.intermediate_size,
        num_hidden_layers=config.num_layers,
        num_attention_heads=config.num_heads,
        max_position_embeddings=config.max_positions,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        bos_token_id=tokenizer.pad_token_id,
        cls_token_id=tokenizer.pad_token_id,
        sep_token_id=tokenizer.eos_token_id,
        global_attn_every_n_layers=1,
        local_attention=config.max_positions,
        # Training computes the decoder head only on masked positions (the head is most of the FLOPs of
        # a small model with a large vocabulary); inference without labels is unaffected.
        sparse_prediction=True,
        reference_compile=False,
        tie_word_embeddings=True,
    )
    return ModernBertForMaskedLM(model_config)


def build_ar_model(config: TrainConfig, tokenizer: PreTrainedTokenizerBase) -> torch.nn.Module:
    """The AR FIM peer: a causal Qwen2 with the same hidden size, layers, heads and vocabulary."""
    model_config = Qwen2Config(
        vocab_size=len(tokenizer),
        hidden_size=config.hidden_size,
        intermediate_size=config.intermediate_size,
        num_hidden_layers=config.num_layers,
        num_attention_heads=config.num_heads,
        num_key_value_heads=config.num_heads,
        max_position_embeddings=config.max_positions,
        tie_word_embeddings=True,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.convert_tokens_to_ids("<|endoftext|>"),
        eos_token_id=tokenizer.convert_tokens_to_ids("<|endoftext|>"),
    )
    model = Qwen2ForCausalLM(model_config)
    model.config.infill_format = "psm"
    return model


def load_tokenizer_from(path: str | Path) -> PreTrainedTokenizerBase:
    path = Path(path)
    if not (path / "tokenizer.json").is_file():
        raise TrainingError(f"no tokenizer.json in {path}")
    return load_code_tokenizer(path)


def is_shifted_decoder(model: torch.nn.Module) -> bool:
    return getattr(model.config, FAMILY_KEY, None) == SHIFTED_DECODER


def _make_shifted(model: Qwen2ForCausalLM) -> Qwen2ForCausalLM:
    """Every attention layer bidirectional, marked as a shifted decoder (and no longer a PSM peer)."""
    from infill.models.dream import make_bidirectional

    model.config.is_causal = False
    model.config.use_cache = False
    make_bidirectional(model)
    setattr(model.config, FAMILY_KEY, SHIFTED_DECODER)
    if hasattr(model.config, "infill_format"):
        delattr(model.config, "infill_format")
    return model


def shifted_decoder_from_ar(path: str | Path) -> tuple[torch.nn.Module, PreTrainedTokenizerBase]:
    """The AR FIM peer's weights as a bidirectional shifted decoder: the start of AR-initialised diffusion."""
    path = Path(path)
    config = _read_config(path)
    if config.get("infill_format") != "psm":
        raise TrainingError(f"--from-ar {path} is not an AR FIM peer (config.json has no infill_format psm)")
    model = Qwen2ForCausalLM.from_pretrained(str(path), use_safetensors=True, dtype=torch.float32)
    return _make_shifted(model), load_tokenizer_from(path)


def _read_config(path: Path) -> dict:
    if not (path / "config.json").is_file():
        raise TrainingError(f"{path} is not a model directory (no config.json)")
    if not list(path.glob("*.safetensors")):
        raise TrainingError(f"{path} has no safetensors weights")
    return json.loads((path / "config.json").read_text())


def _load_shifted_base(path: Path, config: dict) -> tuple[torch.nn.Module, PreTrainedTokenizerBase]:
    from infill.models.dream import qwen2_config_from_dream

    try:
        qwen = qwen2_config_from_dream(config)
        model = Qwen2ForCausalLM.from_pretrained(
            str(path), config=qwen, use_safetensors=True, dtype=torch.float32
        )
        tokenizer = AutoTokenizer.from_pretrained(str(path))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise TrainingError(f"cannot load base model {path} as a shifted decoder: {exc}") from exc
    return _make_shifted(model), tokenizer


def load_base_model(path: Path) -> tuple[torch.nn.Module, PreTrainedTokenizerBase]:
    """A model to fine-tune: our ModernBERT dirs, our shifted decoders (Dream layout) or any native HF masked
    LM (safetensors only)."""
    config = _read_config(path)
    if config.get(FAMILY_KEY) == SHIFTED_DECODER or str(config.get("model_type", "")).lower() == "dream":
        return _load_shifted_base(path, config)
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(path))
        model = AutoModelForMaskedLM.from_pretrained(str(path), use_safetensors=True, dtype=torch.float32)
    except (OSError, ValueError, KeyError) as exc:
        raise TrainingError(f"cannot load base model {path} as a masked LM: {exc}") from exc
    if tokenizer.mask_token_id is None:
        raise TrainingError(f"base model {path} has no mask token")
    if isinstance(model, ModernBertForMaskedLM):
        model.config.sparse_prediction = True
        model.sparse_prediction = True
    return model, tokenizer


def apply_lora(model: torch.nn.Module, rank: int) -> torch.nn.Module:
    """Wrap every linear layer with LoRA adapters; the head and embeddings stay frozen."""
    try:
        from peft import LoraConfig, get_peft_model
    except ImportError as exc:
        raise TrainingError("--lora needs peft: pip install 'infill[lora]'") from exc
    lora = LoraConfig(r=rank, lora_alpha=2 * rank, lora_dropout=0.0, target_modules="all-linear")
    return get_peft_model(model, lora)


def merged(model: torch.nn.Module) -> torch.nn.Module:
    """The plain model to save: LoRA adapters merged into the weights."""
    if hasattr(model, "merge_and_unload"):
        import copy

        return copy.deepcopy(model).merge_and_unload()
    return model
