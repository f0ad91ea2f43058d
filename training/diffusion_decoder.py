"""Fine-tuning a decoder-shaped diffusion model (Dream, DiffuCoder, LLaDA, our shifted decoder).

``DiffusionDecoder`` shows the trainer what it expects of a masked LM: ``forward(input_ids, attention_mask,
labels)`` returning ``.logits`` where a row is the distribution of the token AT its position (Dream's shift
realigned, as infill.models.adapters does at inference), computed only where ``labels`` has a target: (N, V),
which spares the (B, T, 152k) logits of a full Qwen vocabulary. Weights are saved under the checkpoint's own
names (transformers reverses the family's weight-name map) with its own config.json, so the result loads as
the same family.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import torch
from tokenizers.processors import TemplateProcessing
from transformers import PreTrainedModel, PreTrainedTokenizerFast
from transformers.modeling_outputs import MaskedLMOutput

from infill.errors import InfillError, TrainingError
from infill.models.adapters import predecessor_index
from infill.models.decoders import load_decoder
from infill.models.families import DECODER_LAYOUT, Family
from infill.models.special_tokens import resolve_special_tokens
from infill.models.tokenizer_files import load_transformers_tokenizer


class DiffusionDecoder(torch.nn.Module):
    def __init__(self, model: torch.nn.Module, family: Family, source_dir: Path) -> None:
        super().__init__()
        self.model = model  # a transformers decoder, or a peft model around one
        self.family = family
        self.source_dir = source_dir

    @property
    def config(self) -> Any:
        return self.model.config

    def transformers_model(self) -> PreTrainedModel:
        """The transformers model (LoRA layers, when any, are injected into it in place)."""
        get_base = getattr(self.model, "get_base_model", None)
        return get_base() if callable(get_base) else self.model

    def forward(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor, labels: torch.Tensor | None = None
    ) -> MaskedLMOutput:
        hf = self.transformers_model()
        layout = DECODER_LAYOUT
        # Positions count real tokens only, as at inference (adapters.DecoderAdapter).
        position_ids = (attention_mask.long().cumsum(-1) - 1).clamp(min=0)
        trunk = getattr(hf, layout.backbone)
        hidden = trunk(
            input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids, use_cache=False
        ).last_hidden_state  # (B, T, H)
        if self.family.shift:  # the state before each position predicts it
            source = predecessor_index(attention_mask)[..., None].expand_as(hidden)
            hidden = torch.gather(hidden, 1, source)
        if labels is not None:
            hidden = hidden[labels != -100]  # (N, H): only where the loss looks
        for name in layout.head:
            hidden = getattr(hf, name)(hidden)
        return MaskedLMOutput(logits=hidden)

    def with_merged_lora(self) -> DiffusionDecoder:
        """A copy with LoRA merged into plain weights (self when there is no LoRA)."""
        if not hasattr(self.model, "merge_and_unload"):
            return self
        return DiffusionDecoder(copy.deepcopy(self.model).merge_and_unload(), self.family, self.source_dir)

    def save_pretrained(self, out: str | Path, **kwargs: Any) -> None:
        out = Path(out)
        self.transformers_model().save_pretrained(str(out), **kwargs)
        # The checkpoint's own config.json: family detection, its keys and special ids stay as released.
        # One change: a vocabulary grown in training (length states add <|expand|>: training/expand_token.py).
        config = json.loads((self.source_dir / "config.json").read_text())
        vocab = self.transformers_model().get_input_embeddings().weight.shape[0]
        if config.get("vocab_size", vocab) != vocab:
            config["vocab_size"] = vocab
        (out / "config.json").write_text(json.dumps(config, indent=2) + "\n")


def load_diffusion_decoder(
    path: Path, family: Family, config: dict[str, Any]
) -> tuple[DiffusionDecoder, PreTrainedTokenizerFast]:
    """The decoder in float32 on the CPU (accelerate moves it) and its tokenizer with the roles training
    reads."""
    try:
        tokenizer, _ = load_transformers_tokenizer(path, family, trust_remote_code=False)
        model = load_decoder(path, family, config, torch.device("cpu"), torch.float32)
        special = resolve_special_tokens(
            tokenizer, config, family, model.get_output_embeddings().out_features
        )
    except InfillError as exc:
        raise TrainingError(f"cannot load base model {path}: {exc}") from exc
    # training.objective reads the mask and end-of-span roles from the tokenizer and frames every example with
    # the ids its post-processor adds: give it the ones infill decodes with.
    tokenizer.mask_token = tokenizer.convert_ids_to_tokens(special.mask_id)
    tokenizer.eos_token = tokenizer.convert_ids_to_tokens(special.end_of_span_id)
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.convert_ids_to_tokens(special.pad_id)
    if special.prefix_ids or special.suffix_ids:
        tokenizer.backend_tokenizer.post_processor = _framing(
            tokenizer, special.prefix_ids, special.suffix_ids
        )
    return DiffusionDecoder(model, family, path), tokenizer


def _framing(tokenizer: PreTrainedTokenizerFast, before: tuple[int, ...], after: tuple[int, ...]) -> Any:
    tokens = {i: tokenizer.convert_ids_to_tokens(i) for i in (*before, *after)}
    head = " ".join(tokens[i] for i in before)
    tail = " ".join(tokens[i] for i in after)
    single = " ".join(part for part in (head, "$A", tail) if part)
    pair = " ".join(part for part in (head, "$A", "$B", tail) if part)
    return TemplateProcessing(single=single, pair=pair, special_tokens=[(t, i) for i, t in tokens.items()])
