"""Decoder-shaped diffusion LMs (Dream, DiffuCoder, LLaDA, our shifted decoder): their config.json read as the
family's backbone config, and transformers' own classes for the configs qwen2.py does not cover (and for
fine-tuning, training/diffusion_decoder.py).

These checkpoints are Qwen2 or LLaMA weights trained with full bidirectional attention; they ship remote code
(auto_map) that is never run: config.json is read as JSON and translated into Qwen2/LLaMA config keys by the
family's key map (families.py), the weights are loaded under transformers' names (LLaDA's renamed by the
family's weight map) and every attention layer is made non-causal. transformers is imported only when its
classes are used.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from infill.errors import ModelLoadError
from infill.models.families import FAMILY_KEY, Family
from infill.models.locate import describe_error
from infill.models.weights import checked_model, pretrained_kwargs, quiet_transformers

if TYPE_CHECKING:
    from transformers import PretrainedConfig, PreTrainedModel

logger = logging.getLogger(__name__)

# Keys of a checkpoint's config.json that name its remote code or would make transformers look for it.
_REMOTE_KEYS = ("auto_map", "architectures", "model_type", "transformers_version", FAMILY_KEY)


def _classes(backbone: str) -> tuple[type[PretrainedConfig], type[PreTrainedModel]]:
    from transformers import LlamaConfig, LlamaForCausalLM, Qwen2Config, Qwen2ForCausalLM

    classes = {"qwen2": (Qwen2Config, Qwen2ForCausalLM), "llama": (LlamaConfig, LlamaForCausalLM)}
    return classes[backbone]  # type: ignore[return-value]


def decoder_fields(family: Family, config: dict[str, Any]) -> dict[str, Any]:
    """The checkpoint's config.json as the config keys of the family's backbone (transformers' names, which
    qwen2.py reads too); refuses variants the backbone does not compute by name."""
    if not family.config_keys:
        return {k: v for k, v in config.items() if k not in _REMOTE_KEYS}
    unsupported = {k: config.get(k) for k, v in family.config_required.items() if config.get(k, v) != v}
    if unsupported:
        details = ", ".join(f"{k}={v!r}" for k, v in unsupported.items())
        raise ModelLoadError(
            f"This {family.title} variant is not one infill runs natively ({details}); "
            "only the released layout is supported"
        )
    merged = {**family.config_defaults, **config}
    fields = {}
    for key, sources in family.config_keys.items():
        value = next((merged[s] for s in sources if merged.get(s) is not None), None)
        if value is not None:
            fields[key] = value
    return fields


def decoder_config(family: Family, config: dict[str, Any]) -> PretrainedConfig:
    """The checkpoint's config.json as the bidirectional transformers config of the family's backbone."""
    config_class, model_class = _classes(family.backbone)
    hf_config = config_class(**decoder_fields(family, config))
    hf_config.is_causal = False  # transformers then builds bidirectional (padding-only) attention masks
    hf_config.use_cache = False
    hf_config.architectures = [model_class.__name__]
    return hf_config


def make_bidirectional(model: torch.nn.Module) -> None:
    """Attention modules carry their own is_causal flag, which sdpa/flash use when the mask is skipped."""
    for module in model.modules():
        if hasattr(module, "is_causal"):
            module.is_causal = False


def load_decoder(
    model_dir: Path, family: Family, config: dict[str, Any], device: torch.device, dtype: torch.dtype
) -> PreTrainedModel:
    """The family's transformers decoder with the directory's weights, bidirectional, in eval mode."""
    hf_config = decoder_config(family, config)
    _, model_class = _classes(family.backbone)
    kwargs = pretrained_kwargs(device, dtype)
    if family.weight_names:
        kwargs["key_mapping"] = dict(family.weight_names)
    try:
        with quiet_transformers():
            loaded = model_class.from_pretrained(str(model_dir), config=hf_config, **kwargs)
    except Exception as exc:  # safetensors, OSError, ValueError...: all mean the directory is unusable
        message = f"Could not load the {family.name} model in {model_dir}: {describe_error(exc)}"
        raise ModelLoadError(message) from exc
    model = checked_model(loaded, model_dir)
    make_bidirectional(model)
    return model
