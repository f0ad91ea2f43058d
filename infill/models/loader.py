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
from infill.models.base import DenoisingModel, LoadedModel, ModelKind
from infill.models.devices import default_dtype, resolve_device
from infill.models.dream import load_dream
from infill.models.locate import check_model_files, read_config, read_generation_defaults, resolve_model_dir
from infill.models.masked_lm import is_native_masked_lm, load_masked_lm, masked_lm_max_positions
from infill.models.remote import load_remote
from infill.models.special_tokens import resolve_special_tokens
from infill.models.text_tokenizer import HFTextTokenizer, load_tokenizer
from infill.models.weights import quiet_transformers

logger = logging.getLogger(__name__)

# A tokenizer's model_max_length above this is transformers' "no limit" placeholder, not a real window.
_SANE_MAX_LENGTH = 1_000_000
# Keys other families use for their window when max_position_embeddings is absent (LLaDA, GPT-2...).
_WINDOW_KEYS = ("max_position_embeddings", "max_sequence_length", "n_positions", "seq_length")


def detect_kind(config: dict[str, Any]) -> ModelKind | None:
    """Which adapter a config.json needs; None when it is neither a native masked LM nor a Dream model."""
    model_type = str(config.get("model_type", "")).lower()
    architectures = [str(a) for a in config.get("architectures") or []]
    if model_type == "dream" or any(a.startswith(("Dream", "DiffuCoder")) for a in architectures):
        return "dream"
    if is_native_masked_lm(config):
        return "masked_lm"
    return None


def load_model(
    model: str | Path | None = None,
    *,
    device: str | None = None,
    trust_remote_code: bool = False,
    dtype: torch.dtype | None = None,
) -> LoadedModel:
    """Load a local Hugging Face layout directory (explicit > INFILL_MODEL > bundled default)."""
    started = time.perf_counter()
    model_dir = resolve_model_dir(model)
    config = read_config(model_dir)
    check_model_files(model_dir)
    kind = detect_kind(config)
    if kind is None:
        kind = _remote_kind_or_refuse(config, model_dir, trust_remote_code)
    torch_device = resolve_device(device)
    torch_dtype = dtype or default_dtype(torch_device)
    hf_tokenizer = load_tokenizer(model_dir, trust_remote_code=trust_remote_code and kind == "remote")

    adapter: DenoisingModel
    with quiet_transformers():
        if kind == "masked_lm":
            adapter = load_masked_lm(model_dir, torch_device, torch_dtype)
            positions = masked_lm_max_positions(config)
        elif kind == "dream":
            adapter = load_dream(model_dir, config, torch_device, torch_dtype)
            positions = config.get("max_position_embeddings")
        else:
            adapter = load_remote(model_dir, config, torch_device, torch_dtype)
            positions = next((config[k] for k in _WINDOW_KEYS if isinstance(config.get(k), int)), None)

    model_vocab = _logits_width(adapter, config, len(hf_tokenizer))
    if len(hf_tokenizer) > model_vocab:
        raise ModelLoadError(
            f"The tokenizer in {model_dir} has {len(hf_tokenizer)} tokens but the model only {model_vocab}"
        )
    loaded = LoadedModel(
        model=adapter,
        tokenizer=HFTextTokenizer(hf_tokenizer),
        special=resolve_special_tokens(hf_tokenizer, config, kind, model_vocab),
        kind=kind,
        device=torch_device,
        dtype=torch_dtype,
        max_positions=_window(positions, hf_tokenizer.model_max_length, model_dir),
        name=model_dir.name,
        generation_defaults=read_generation_defaults(
            model_dir, {f.name for f in dataclasses.fields(DecodeConfig)}
        ),
    )
    logger.info(
        "Loaded %s model %s on %s (%s) in %.1f s",
        kind,
        model_dir,
        torch_device,
        str(torch_dtype).removeprefix("torch."),
        time.perf_counter() - started,
    )
    return loaded


def _remote_kind_or_refuse(config: dict[str, Any], model_dir: Path, trust_remote_code: bool) -> ModelKind:
    what = ", ".join(config.get("architectures") or []) or config.get("model_type") or "unknown"
    if config.get("infill_format") == "psm":
        raise ModelLoadError(
            f"{model_dir} is an autoregressive fill-in-the-middle model ({what}), not a diffusion model: "
            "evaluate it with training.ar_generate"
        )
    if not config.get("auto_map"):
        raise ModelLoadError(
            f"Unsupported model in {model_dir} ({what}): infill needs a masked LM or a Dream-family model"
        )
    if not trust_remote_code:
        raise ModelLoadError(
            f"The model in {model_dir} ({what}) needs its own Python code to load: "
            "pass --trust-remote-code if you trust the files in that directory"
        )
    return "remote"


def _logits_width(adapter: DenoisingModel, config: dict[str, Any], tokenizer_size: int) -> int:
    """How many ids the model scores (its output embedding rows may exceed the tokenizer)."""
    hf_model = getattr(adapter, "model", None)
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
