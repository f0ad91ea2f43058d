"""load_model: a model directory in, a LoadedModel the engine can use out."""

from __future__ import annotations

import dataclasses
import logging
import time
from pathlib import Path
from typing import Any

import torch

from infill.engine.types import DecodeConfig
from infill.errors import ModelLoadError
from infill.models.adapters import DecoderAdapter, MaskedLMAdapter
from infill.models.base import DenoisingModel, LoadedModel, ModelKind
from infill.models.block_model import BlockDiffusionModel
from infill.models.decoders import decoder_fields, load_decoder
from infill.models.devices import default_dtype, resolve_device
from infill.models.expand_delete import load_expand_delete
from infill.models.families import REMOTE, Family, detect_family
from infill.models.llada2_moe import load_llada2_moe
from infill.models.locate import check_model_files, read_config, resolve_model_dir
from infill.models.masked_lm import load_masked_lm, masked_lm_max_positions
from infill.models.quantize import check_quantization, quantize_linear_layers
from infill.models.qwen2 import Qwen2ForCausalLM, load_qwen2
from infill.models.sampler_defaults import read_generation_defaults
from infill.models.special_tokens import resolve_special_tokens
from infill.models.stops import merge_stop_logits
from infill.models.text_tokenizer import HFTextTokenizer
from infill.models.tokenizer_files import load_tokenizer
from infill.models.weights import checked_model

logger = logging.getLogger(__name__)

# A tokenizer's model_max_length above this is transformers' "no limit" placeholder, not a real window.
_SANE_MAX_LENGTH = 1_000_000
# Keys other families use for their window when max_position_embeddings is absent (LLaDA, GPT-2...).
_WINDOW_KEYS = ("max_position_embeddings", "max_sequence_length", "n_positions", "seq_length")


def family_or_refuse(config: dict[str, Any], model_dir: Path, trust_remote_code: bool) -> Family:
    """The model's family (families.py); remote code only on opt-in; one-line refusals otherwise."""
    family = detect_family(config, model_dir)
    if family is not None:
        return family
    what = ", ".join(config.get("architectures") or []) or config.get("model_type") or "unknown"
    if config.get("infill_format") == "psm":
        raise ModelLoadError(
            f"{model_dir} is an autoregressive fill-in-the-middle model ({what}), not a diffusion model: "
            "evaluate it with training.ar_generate"
        )
    if not config.get("auto_map"):
        raise ModelLoadError(
            f"Unsupported model in {model_dir} ({what}): infill runs masked LMs and the Dream, DiffuCoder, "
            "LLaDA, SDAR, Stable-DiffCoder and LLaDA2 families"
        )
    if not trust_remote_code:
        raise ModelLoadError(
            f"The model in {model_dir} ({what}) needs its own Python code to load: "
            "pass --trust-remote-code if you trust the files in that directory"
        )
    return REMOTE


def load_model(
    model: str | Path | None = None,
    *,
    device: str | None = None,
    trust_remote_code: bool = False,
    dtype: torch.dtype | None = None,
    quantize: str | None = None,
) -> LoadedModel:
    """Load a local Hugging Face layout directory (explicit > INFILL_MODEL > bundled default); ``quantize``
    "int8": its Linear layers in int8 (CPU, models up to 2B; quantize.py)."""
    started = time.perf_counter()
    model_dir = resolve_model_dir(model)
    config = read_config(model_dir)
    check_model_files(model_dir)
    family = family_or_refuse(config, model_dir, trust_remote_code)
    torch_device = resolve_device(device)
    check_quantization(quantize, torch_device, model_dir)
    torch_dtype = dtype or default_dtype(torch_device)
    hf_tokenizer, tokenizer_source = load_tokenizer(model_dir, family, trust_remote_code=trust_remote_code)

    # transformers is imported only by the loaders that need it (ModernBERT and our shifted decoder do not:
    # masked_lm.py, load_decoder_model).
    hf_model: torch.nn.Module
    adapter: DenoisingModel | None = None
    if family.backbone == "masked-lm":
        hf_model = load_masked_lm(model_dir, config, torch_device, torch_dtype)
        positions = masked_lm_max_positions(config)
    elif family.is_block_diffusion:
        hf_model, adapter = load_block_model(model_dir, family, config, torch_device, torch_dtype)
        positions = hf_model.config.max_position_embeddings
    elif family.is_decoder:
        hf_model = load_decoder_model(model_dir, family, config, torch_device, torch_dtype)
        positions = hf_model.config.max_position_embeddings
    else:
        from infill.models.remote import load_remote

        hf_model = load_remote(model_dir, config, torch_device, torch_dtype)
        positions = next((config[k] for k in _WINDOW_KEYS if isinstance(config.get(k), int)), None)
    kind: ModelKind = (
        "masked_lm" if family.backbone == "masked-lm" else "decoder" if family.is_decoder else "remote"
    )
    if adapter is None:
        adapter = (
            DecoderAdapter(hf_model, shift=family.shift) if family.is_decoder else MaskedLMAdapter(hf_model)
        )

    model_vocab = _logits_width(hf_model, config, len(hf_tokenizer))
    if len(hf_tokenizer) > model_vocab:
        raise ModelLoadError(
            f"The tokenizer in {model_dir} has {len(hf_tokenizer)} tokens but the model only {model_vocab}"
        )
    special = resolve_special_tokens(hf_tokenizer, config, family, model_vocab)
    merge_stop_logits(hf_model, special.end_of_span_id, special.stop_ids)
    expand_delete = load_expand_delete(model_dir, family, hf_tokenizer, special, model_vocab)
    if quantize is not None:  # after the stop-token merge, which edits the float LM head
        quantize_linear_layers(hf_model, quantize)
    loaded = LoadedModel(
        model=adapter,
        tokenizer=HFTextTokenizer(hf_tokenizer),
        special=special,
        kind=kind,
        device=torch_device,
        dtype=torch_dtype,
        max_positions=_window(positions, hf_tokenizer.model_max_length, model_dir),
        name=model_dir.name,
        family=family.name,
        tokenizer_source=tokenizer_source,
        generation_defaults=read_generation_defaults(
            model_dir, {f.name for f in dataclasses.fields(DecodeConfig)}, family
        ),
        expand_delete=expand_delete,
    )
    logger.info(
        "Loaded %s model %s on %s (%s) in %.1f s",
        family.name,
        model_dir,
        torch_device,
        str(torch_dtype).removeprefix("torch."),
        time.perf_counter() - started,
    )
    return loaded


def load_decoder_model(
    model_dir: Path, family: Family, config: dict[str, Any], device: torch.device, dtype: torch.dtype
) -> torch.nn.Module:
    """A decoder family's bidirectional model: qwen2.py's (no transformers import) where it covers the
    config, the family's key and weight maps applied, else transformers' class (decoders.py)."""
    fields = decoder_fields(family, config)
    native = load_qwen2(
        model_dir,
        fields,
        device,
        dtype,
        family.backbone,
        any_model_type=True,
        weight_names=family.weight_names,
        what=f"{family.name} model",
    )
    if native is not None:
        return checked_model(native, model_dir)
    logger.info("config.json in %s is not one qwen2.py covers: loading it with transformers", model_dir)
    return load_decoder(model_dir, family, config, device, dtype)


def load_block_model(
    model_dir: Path, family: Family, config: dict[str, Any], device: torch.device, dtype: torch.dtype
) -> tuple[Qwen2ForCausalLM, BlockDiffusionModel]:
    """A block-diffusion family's native module (qwen2.py, or llada2_moe.py for LLaDA2.x; no transformers
    class has block-causal attention) and its adapter; the block size is config.json's "block_size", else
    the family's."""
    key = next((k for k in family.block_size_keys if k in config), None)
    block_size = config[key] if key is not None else family.block_size
    if isinstance(block_size, bool) or not isinstance(block_size, int) or block_size < 1:
        raise ModelLoadError(f'"{key}" in {model_dir / "config.json"} must be a positive integer')
    if family.backbone == "llada2-moe":  # its own module (llada2_moe.py), on qwen2.py's forward pass
        what = f"{family.name} model"
        names = family.weight_names
        native = load_llada2_moe(model_dir, config, device, dtype, weight_names=names, what=what)
    else:
        assert family.backbone in ("qwen2", "qwen3", "llama"), "block diffusion runs on qwen2.py's module"
        native = load_qwen2(model_dir, config, device, dtype, family.backbone, any_model_type=True)
    if native is None:
        raise ModelLoadError(
            f"This {family.title} variant is not one infill runs natively (scaled RoPE, sliding windows, "
            "another activation or quantized weights); only the released layout is supported"
        )
    model = checked_model(native, model_dir)
    sub_block = (
        family.sub_block_size if family.sub_block_size and family.sub_block_size < block_size else None
    )
    return model, BlockDiffusionModel(
        model,
        block_size,
        shift=family.shift,
        sub_block_size=sub_block,
        steps_within_budget=family.steps_within_budget,
        ends_blocks_at_prompt=family.blocks_end_at_prompt,
        schedule=family.transfer_schedule,
    )


def _logits_width(hf_model: torch.nn.Module, config: dict[str, Any], tokenizer_size: int) -> int:
    """How many ids the model scores (its output embedding rows may exceed the tokenizer)."""
    get_output = getattr(hf_model, "get_output_embeddings", None)
    output = get_output() if callable(get_output) else None
    if isinstance(output, torch.nn.Linear):
        return output.out_features
    vocab = config.get("vocab_size")
    return vocab if isinstance(vocab, int) else tokenizer_size


def _window(positions: object, tokenizer_max: object, model_dir: Path) -> int:
    candidates = [p for p in (positions, tokenizer_max) if isinstance(p, int) and 0 < p <= _SANE_MAX_LENGTH]
    if not candidates:
        raise ModelLoadError(f"config.json in {model_dir} does not say how many positions the model takes")
    return min(candidates)
