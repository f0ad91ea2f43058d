"""Models and tokenizers to train: from scratch (diffusion ModernBERT, AR Qwen2 peer) or a base to tune
(a masked LM, or a Dream/DiffuCoder/LLaDA-shaped decoder: training/diffusion_decoder.py)."""

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

from infill.errors import InfillError, TrainingError
from infill.models.decoders import make_bidirectional
from infill.models.families import FAMILY_KEY, detect_family
from infill.models.locate import read_config
from training.config import TrainConfig
from training.corpus import SourceFile
from training.diffusion_decoder import DiffusionDecoder, load_diffusion_decoder
from training.tokenizer import load_code_tokenizer, train_code_tokenizer

logger = logging.getLogger(__name__)

TOKENIZER_SAMPLE_CHARS = 3_000_000  # BPE merges settle long before this; more only costs time
# The family (infill.models.families) of a Qwen2-shaped diffusion model with Dream's layout (bidirectional
# attention, the hidden state at i-1 predicts the token at i), as the AR-initialised recipe produces.
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
    """A Qwen2 made bidirectional here (``--from-ar``), whose loss applies Dream's shift itself.

    A shifted base loaded for fine-tuning is a ``DiffusionDecoder`` instead, which realigns the shift in its
    own forward."""
    marked = getattr(model.config, FAMILY_KEY, None) == SHIFTED_DECODER
    return marked and not isinstance(model, DiffusionDecoder)


def _make_shifted(model: Qwen2ForCausalLM) -> Qwen2ForCausalLM:
    """Every attention layer bidirectional, marked as a shifted decoder (and no longer a PSM peer)."""
    model.config.is_causal = False
    model.config.use_cache = False
    make_bidirectional(model)
    setattr(model.config, FAMILY_KEY, SHIFTED_DECODER)
    if hasattr(model.config, "infill_format"):
        delattr(model.config, "infill_format")
    return model


def shifted_decoder_from_ar(path: str | Path) -> tuple[torch.nn.Module, PreTrainedTokenizerBase]:
    """The AR FIM peer's weights as a bidirectional shifted decoder: the start of AR-initialised diffusion."""
    model, tokenizer = load_ar_peer(path)
    return _make_shifted(model), tokenizer


def load_ar_peer(path: str | Path) -> tuple[Qwen2ForCausalLM, PreTrainedTokenizerBase]:
    """The AR FIM peer at ``path`` (checked to be one) and its tokenizer: where ``--from-ar`` starts."""
    path = Path(path)
    if not (path / "config.json").is_file() or not list(path.glob("*.safetensors")):
        raise TrainingError(f"--from-ar {path} is not a model directory with safetensors weights")
    if json.loads((path / "config.json").read_text()).get("infill_format") != "psm":
        raise TrainingError(f"--from-ar {path} is not an AR FIM peer (config.json has no infill_format psm)")
    model = Qwen2ForCausalLM.from_pretrained(str(path), use_safetensors=True, dtype=torch.float32)
    return model, load_tokenizer_from(path)


def load_base_model(path: Path) -> tuple[torch.nn.Module, PreTrainedTokenizerBase]:
    """A diffusion model to fine-tune (safetensors only): our ModernBERT dirs or any native HF masked LM, or a
    decoder-shaped family (Dream, DiffuCoder, LLaDA, our shifted decoder) through
    training.diffusion_decoder."""
    if not (path / "config.json").is_file():
        raise TrainingError(f"base model {path} is not a model directory (no config.json)")
    if not list(path.glob("*.safetensors")):
        raise TrainingError(f"base model {path} has no safetensors weights")
    try:
        config = read_config(path)
        family = detect_family(config, path)
    except InfillError as exc:
        raise TrainingError(f"cannot read base model {path}: {exc}") from exc
    if family is not None and family.is_block_diffusion:
        # Fine-tuning needs the block-diffusion objective (two copies of each sequence, the clean one seen
        # block-causally), which training/ does not implement for released block models yet.
        raise TrainingError(f"cannot fine-tune {path}: {family.title} is a block-diffusion model")
    if family is not None and family.is_decoder:
        return load_diffusion_decoder(path, family, config)
    if family is None or family.backbone != "masked-lm":
        raise TrainingError(
            f"cannot fine-tune {path}: not a masked LM or a decoder family infill runs natively"
        )
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
    """LoRA adapters on the family's target modules (every linear layer of a masked LM; the attention and MLP
    projections of a decoder); the head and embeddings stay frozen."""
    try:
        from peft import LoraConfig, get_peft_model
    except ImportError as exc:
        raise TrainingError("--lora needs peft: pip install 'infill[lora]'") from exc
    if isinstance(model, DiffusionDecoder):
        targets = model.family.lora_targets
        lora = LoraConfig(r=rank, lora_alpha=2 * rank, lora_dropout=0.0, target_modules=list(targets))
        model.model = get_peft_model(model.model, lora)
        return model
    lora = LoraConfig(r=rank, lora_alpha=2 * rank, lora_dropout=0.0, target_modules="all-linear")
    return get_peft_model(model, lora)


def merged(model: torch.nn.Module) -> torch.nn.Module:
    """The plain model to save: LoRA adapters merged into the weights."""
    if isinstance(model, DiffusionDecoder):
        return model.with_merged_lora()
    if hasattr(model, "merge_and_unload"):
        import copy

        return copy.deepcopy(model).merge_and_unload()
    return model
