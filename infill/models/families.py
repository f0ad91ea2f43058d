"""Every supported model family as one declarative entry: how to detect it, load it and frame its canvases.

The loader (loader.py, decoders.py), special-token resolution (special_tokens.py), sampler defaults
(sampler_defaults.py) and fine-tuning (training/model_factory.py) all read a family from here; none of them
branches on a family's name. Adding a family (Open-dCoder, SDAR, Fast-dLLM v2...) is adding an entry and a
release-shaped test checkpoint (tests/release_models.py).

Detection (``detect_family``): config.json ``"infill_family"`` names an entry and wins; otherwise the first
entry whose ``model_types``/``architectures`` match and whose ``marker_tokens`` (when it has any) appear among
the tokenizer files' added tokens. Nothing is imported from the model directory to decide.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any, Literal

from infill.errors import ModelLoadError

logger = logging.getLogger(__name__)

# Which module runs a family: Auto masked LMs, a decoder class (bidirectional or block-causal), remote code.
Backbone = Literal["masked-lm", "qwen2", "qwen3", "llama", "llada2-moe", "remote"]
# Which keys a query sees: every real one, or those of its own and earlier blocks (block diffusion).
Attention = Literal["bidirectional", "block-causal"]
TransferSchedule = Literal["even", "linear"]
FAMILY_KEY = "infill_family"

# Mask spellings of common tokenizers, tried after the tokenizer's and config.json's own mask ids.
MASK_SPELLINGS = ("<|mask|>", "<mask>", "[MASK]", "<|mdm_mask|>")
END_OF_SPAN_TOKEN = "<|endofspan|>"  # our own tokenizer's (training/tokenizer.py)
EXPAND_TOKEN = "<|expand|>"  # DreamOn's; ours when trained with length states (training/expand_token.py)
# Qwen2.5's fill-in-the-middle, repository and tool-call tokens: added tokens its tokenizer_config.json does
# not mark special, so nothing else keeps a diffusion sampler from writing them into code.
QWEN25_CONTROL_TOKENS = (
    "<|fim_prefix|>",
    "<|fim_middle|>",
    "<|fim_suffix|>",
    "<|fim_pad|>",
    "<|repo_name|>",
    "<|file_sep|>",
    "<tool_call>",
    "</tool_call>",
)
# Placeholders of a block model's prompt layout (Family.block_prompt): the code before and after the hole.
PREFIX, SUFFIX = "{prefix}", "{suffix}"
DECODER_LORA_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")

# LLaDA (modeling_llada.py, LLaDALlamaBlock) -> transformers LLaMA tensor names. ff_proj is the SwiGLU gate
# (``silu(ff_proj(x)) * up_proj(x)``), attn_out the output projection, ff_out inside a block the down
# projection and at the top the LM head. transformers applies the map on load and reverses it on
# save_pretrained.
_LLADA_BLOCK = r"^model\.transformer\.blocks\.(\d+)\."
LLADA_WEIGHT_NAMES = (
    (_LLADA_BLOCK + r"q_proj\.", r"model.layers.\1.self_attn.q_proj."),
    (_LLADA_BLOCK + r"k_proj\.", r"model.layers.\1.self_attn.k_proj."),
    (_LLADA_BLOCK + r"v_proj\.", r"model.layers.\1.self_attn.v_proj."),
    (_LLADA_BLOCK + r"attn_out\.", r"model.layers.\1.self_attn.o_proj."),
    (_LLADA_BLOCK + r"ff_proj\.", r"model.layers.\1.mlp.gate_proj."),
    (_LLADA_BLOCK + r"up_proj\.", r"model.layers.\1.mlp.up_proj."),
    (_LLADA_BLOCK + r"ff_out\.", r"model.layers.\1.mlp.down_proj."),
    (_LLADA_BLOCK + r"attn_norm\.", r"model.layers.\1.input_layernorm."),
    (_LLADA_BLOCK + r"ff_norm\.", r"model.layers.\1.post_attention_layernorm."),
    (r"^model\.transformer\.wte\.", "model.embed_tokens."),
    (r"^model\.transformer\.ln_f\.", "model.norm."),
    (r"^model\.transformer\.ff_out\.", "lm_head."),
)
# transformers LlamaConfig key <- configuration_llada.py keys, first present non-null wins.
LLADA_CONFIG_KEYS = {
    "hidden_size": ("d_model",),
    "num_attention_heads": ("n_heads",),
    "num_key_value_heads": ("n_kv_heads", "n_heads"),
    "num_hidden_layers": ("n_layers",),
    "intermediate_size": ("mlp_hidden_size",),
    "vocab_size": ("embedding_size", "vocab_size"),
    "max_position_embeddings": ("max_sequence_length",),
    "rms_norm_eps": ("rms_norm_eps",),
    "rope_theta": ("rope_theta",),
    "tie_word_embeddings": ("weight_tying",),
    "bos_token_id": ("bos_token_id",),
    "eos_token_id": ("eos_token_id",),
    "pad_token_id": ("pad_token_id",),
}
# configuration_llada.py defaults for keys a config.json may leave out.
LLADA_CONFIG_DEFAULTS = {"rms_norm_eps": 1e-5, "rope_theta": 10000.0, "weight_tying": True}
# The LLaDA variant LLaMA computes exactly (the released 8B checkpoints); anything else is refused by name.
LLADA_REQUIRED = {
    "block_type": "llama",
    "layer_norm_type": "rms",
    "activation_type": "silu",
    "rope": True,
    "alibi": False,
    "include_bias": False,
    "include_qkv_bias": False,
    "attention_layer_norm": False,
    "scale_logits": False,
    "input_emb_norm": False,
    "block_group_size": 1,
}


@dataclass(frozen=True)
class ModuleLayout:
    """Where a transformers class keeps its trunk and LM head (attribute paths), for positions-only heads."""

    backbone: str
    head: tuple[str, ...]  # applied in order to the trunk's hidden states


# Every decoder backbone's (qwen2, qwen3, llama: qwen2.py's module and transformers' classes alike).
DECODER_LAYOUT = ModuleLayout("model", ("lm_head",))
# Masked LMs, per class: the trunk and the LM head modules (the head's output is the logits). Keyed by class
# name because the "masked-lm" backbone is whichever class transformers' AutoModelForMaskedLM picks for a
# model type (ModernBERT: modernbert.py's module, which has its class name and attribute paths).
MODULE_LAYOUTS = {
    "ModernBertForMaskedLM": ModuleLayout("model", ("head", "decoder")),
    "RobertaForMaskedLM": ModuleLayout("roberta", ("lm_head",)),
    "BertForMaskedLM": ModuleLayout("bert", ("cls",)),
}


@dataclass(frozen=True)
class Family:
    """One model family. Token fields hold spellings; ids are resolved from each checkpoint's tokenizer."""

    name: str  # the config.json "infill_family" value that selects it; printed by `infill doctor`
    title: str
    backbone: Backbone
    # Detection (lower-cased model_type; architectures by prefix); never auto-detected when both are empty.
    model_types: tuple[str, ...] = ()
    # Also every model type transformers' AutoModelForMaskedLM knows (read only when model_types miss:
    # importing transformers' model registry costs seconds, and the bundled model is listed in model_types).
    any_native_masked_lm: bool = False
    architectures: tuple[str, ...] = ()
    marker_tokens: tuple[str, ...] = ()  # added tokens that single out a variant sharing a config layout
    # Loading.
    # The hidden state at i-1 predicts the token at i (Dream, Fast-dLLM v2); realigned by the adapter or the
    # block decoding loop.
    shift: bool = False
    # How to build the tokenizer when there is no tokenizer.json.
    slow_tokenizer: Literal["qwen2"] | None = None
    # transformers config key <- the checkpoint's config keys (first present non-null wins); its defaults; the
    # checkpoint settings the native class computes exactly (anything else is refused by name).
    config_keys: dict[str, tuple[str, ...]] = field(default_factory=dict)
    config_defaults: dict[str, Any] = field(default_factory=dict)
    config_required: dict[str, Any] = field(default_factory=dict)
    weight_names: tuple[tuple[str, str], ...] = ()  # (regex on checkpoint names, transformers name)
    # Special tokens.
    mask_from_config: bool = False  # config.json mask_token_id before the tokenizer's mask token
    mask_tokens: tuple[str, ...] = MASK_SPELLINGS
    mask_id: int | None = None  # the authors' code's own mask id, tried after every spelling
    end_of_span_tokens: tuple[str, ...] = ()  # tried before the tokenizer's eos/sep/pad
    end_of_span_required: bool = False
    bos_tokens: tuple[str, ...] = ()  # tried before the tokenizer's bos role and config bos_token_id
    # Canvas framing: a begin-of-text id before the prefix (a shifted model needs a predecessor for position
    # 0); an end-of-text id after the suffix (DreamOn's infilling format).
    bos_before_prefix: bool = False
    eos_after_suffix: bool = False
    # Added tokens the tokenizer does not mark special but code must never get.
    never_commit: tuple[str, ...] = ()
    # Tokens that end a span as end-of-span does (their probability is merged into it; stops.py).
    stop_tokens: tuple[str, ...] = ()
    # Sampler defaults when generation_config.json has no "infill" entry ("dreamon": the DreamOn eval
    # generator's keys, models/expand_delete.py).
    generation_style: Literal["dream", "dreamon"] | None = None
    # Who decides how long a fill is. None: infill, on a canvas of the request's budget that the span's
    # end-of-span tail ends (engine/length.py). A token here: the model, by expand/delete decoding
    # (engine/expand_delete.py): decoding this token at a masked position makes it two masks, and an
    # end-of-text decoded in the middle is deleted. The token is committable for the family, never banned.
    expand_token: str | None = None
    # Our own families: expand/delete only when the tokenizer has ``expand_token`` (a model trained with
    # ``infill train --length-states``, training/expand_token.py); without it, infill decides as above.
    expand_token_optional: bool = False
    # Fine-tuning.
    lora_targets: tuple[str, ...] | Literal["all-linear"] = "all-linear"
    # Block diffusion (SDAR...): block-causal attention over blocks of config.json "block_size" (else
    # ``block_size``), decoded block after block against an exact prefix key/value cache
    # (infill/engine/block_decoding.py) instead of one bidirectional canvas.
    attention: Attention = "bidirectional"
    block_size: int | None = None
    block_size_keys: tuple[str, ...] = ("block_size",)  # config.json keys that override ``block_size``
    sub_block_size: int | None = None  # a step commits inside one sub-block at a time (Fast-dLLM v2)
    steps_within_budget: bool = False  # a block's steps at most the budget's tokens (LLaDA2's generate)
    # Blocks counted back from the prompt's end, not from position 0 (the dllm project's BD3LM sampler).
    blocks_end_at_prompt: bool = False
    # How a block's positions are shared out over its steps (engine/block_decoding.py): "even" as SDAR's
    # generate.py, "linear" as the dllm project's linear scheduler (rounded shares).
    transfer_schedule: TransferSchedule = "even"
    # Decoding defaults when generation_config.json has no "infill" entry (the authors' recipe).
    decoding_defaults: dict[str, Any] = field(default_factory=dict)
    # A block model's prompt, which its new tokens continue: token spellings and the PREFIX and SUFFIX
    # placeholders, in order (the base model's fill-in-the-middle format, e.g. Seed-Coder's SPM). Empty: the
    # prefix alone. A layout that starts with SUFFIX shows the suffix as an earlier document (for a base model
    # that never saw fill-in-the-middle) and, without a suffix, gives the prefix alone.
    block_prompt: tuple[str, ...] = ()

    @property
    def is_decoder(self) -> bool:
        return self.backbone in ("qwen2", "qwen3", "llama", "llada2-moe")

    @property
    def is_block_diffusion(self) -> bool:
        return self.attention == "block-causal"


_DREAM_BASE = {
    "backbone": "qwen2",
    "model_types": ("dream",),
    "architectures": ("DreamModel",),
    "shift": True,
    "slow_tokenizer": "qwen2",
    "mask_from_config": True,
    "bos_before_prefix": True,
    "never_commit": QWEN25_CONTROL_TOKENS,
    "generation_style": "dream",
    "lora_targets": DECODER_LORA_TARGETS,
}

FAMILIES: tuple[Family, ...] = (
    # Our own models first: selected by config.json "infill_family" only.
    Family(
        name="infill-masked",
        title="infill masked diffusion model (ModernBERT, our tokenizer)",
        backbone="masked-lm",
        end_of_span_tokens=(END_OF_SPAN_TOKEN,),
        end_of_span_required=True,
        expand_token=EXPAND_TOKEN,
        expand_token_optional=True,
    ),
    Family(
        name="infill-shifted-decoder",
        title="infill shifted diffusion decoder (Qwen2 shape, bidirectional, Dream's shift, our tokenizer)",
        backbone="qwen2",
        shift=True,
        end_of_span_tokens=(END_OF_SPAN_TOKEN,),
        end_of_span_required=True,
        # <|endoftext|> separates files in our training stream: the natural predecessor of a file's first
        # token.
        bos_tokens=("<|endoftext|>",),
        bos_before_prefix=True,
        expand_token=EXPAND_TOKEN,
        expand_token_optional=True,
        lora_targets=DECODER_LORA_TARGETS,
    ),
    Family(
        name="infill-block-decoder",
        title="infill block-diffusion decoder (Qwen2 shape, block-causal, Fast-dLLM v2's shift, our tokens)",
        backbone="qwen2",
        attention="block-causal",
        block_size=8,  # config.json "block_size" (training/block_decoder.py writes it)
        # Started from the AR FIM peer, it keeps the AR head's meaning (training/block_decoder.py): the
        # hidden state at i - 1 predicts position i; a block's first token is the AR prediction from the
        # block before.
        shift=True,
        end_of_span_tokens=(END_OF_SPAN_TOKEN,),
        end_of_span_required=True,
        # The trainer's block decoding rule: one step per position at most, every position above 0.9 at once.
        decoding_defaults={"block_steps": 0, "threshold": 0.9, "temperature": 0.0},
        # Suffix first, then the prefix, which the middle continues token for token (FIM's SPM order, the
        # training layout too: training/block_decoder.py reads it from here). The peer's PSM order put the
        # suffix between a partial line and its rest, which a small model learnt to skip (BENCHMARKS.md,
        # "Block diffusion for the bundle"); suffix first, a keystroke also changes only the prompt's end.
        block_prompt=("<|fim_suffix|>", SUFFIX, "<|fim_prefix|>", PREFIX),
        lora_targets=DECODER_LORA_TARGETS,
    ),
    # Released checkpoints. Variants sharing Dream's config layout come first (their marker tokens decide).
    Family(
        name="diffucoder",
        title="DiffuCoder (apple; Dream architecture on Qwen2.5-Coder, <|dlm_pad|> padding)",
        marker_tokens=("<|dlm_pad|>",),
        # apple/ml-diffucoder's demo cuts the output at the first <|dlm_pad|>; <|im_end|> ends instruct turns.
        stop_tokens=("<|dlm_pad|>", "<|im_end|>"),
        **_DREAM_BASE,
    ),
    Family(
        name="dreamon",
        title="DreamOn (Dream-Coder with variable-length infilling)",
        marker_tokens=(EXPAND_TOKEN,),
        # DreamOn's infilling prompt is bos + prefix + masks + suffix + eos, decoded as its authors' generator
        # does (engine/expand_delete.py). No stop tokens: their generator merges none into end-of-text.
        eos_after_suffix=True,
        expand_token=EXPAND_TOKEN,
        **{**_DREAM_BASE, "generation_style": "dreamon"},
    ),
    Family(
        name="dream",
        title="Dream / Dream-Coder (Dream-org; Qwen2 weights, bidirectional, shifted logits)",
        stop_tokens=("<|im_end|>",),
        **_DREAM_BASE,
    ),
    Family(
        name="llada",
        title="LLaDA (GSAI-ML; LLaMA-shaped, bidirectional, unshifted logits)",
        backbone="llama",
        model_types=("llada",),
        architectures=("LLaDAModelLM",),
        config_keys=LLADA_CONFIG_KEYS,
        config_defaults=LLADA_CONFIG_DEFAULTS,
        config_required=LLADA_REQUIRED,
        weight_names=LLADA_WEIGHT_NAMES,
        mask_from_config=True,
        stop_tokens=("<|eot_id|>",),  # the Instruct checkpoints end a turn with it, then pad with eos
        lora_targets=DECODER_LORA_TARGETS,
    ),
    Family(
        name="sdar",
        title="SDAR (JetAstra; Qwen3 weights, block diffusion over blocks of 4, block-causal attention)",
        backbone="qwen3",
        model_types=("sdar",),
        architectures=("SDARForCausalLM",),
        attention="block-causal",
        block_size=4,  # generate.py's --block_length; released configs may lack "block_size"
        mask_tokens=("<|MASK|>",),  # id 151669 in the release; config.json may lack mask_token_id
        mask_from_config=True,
        # generate.py stops after the block holding an end id: 151643 <|endoftext|>, 151645 <|im_end|>.
        stop_tokens=("<|endoftext|>", "<|im_end|>"),
        never_commit=(*QWEN25_CONTROL_TOKENS, "<tool_response>", "</tool_response>", "<think>", "</think>"),
        # generate.py's defaults, greedy as the authors' evaluation: 4 denoising steps per block,
        # low_confidence_dynamic (every masked position above 0.85, else the most confident one).
        decoding_defaults={"block_steps": 4, "threshold": 0.85, "temperature": 0.0},
        # Qwen3 (SDAR's base) was never trained on fill-in-the-middle, nor was SDAR: the suffix goes before
        # the prefix as an earlier document, where it can only inform names, not be continued. Unmeasured
        # on real weights here (README).
        block_prompt=(SUFFIX, "<|endoftext|>", PREFIX),
        lora_targets=DECODER_LORA_TARGETS,
    ),
    Family(
        name="stable-diffcoder",
        title="Stable-DiffCoder (ByteDance-Seed; Seed-Coder's LLaMA weights, block diffusion, blocks of 4)",
        backbone="llama",
        # config.json keeps model_type "llama": only the architecture singles it out.
        architectures=("StableDiffcoderForCausalLM",),
        attention="block-causal",
        block_size=4,  # the model card's block_length
        # generate_block's default mask_id is 5; the spelling is a third party's, not checked against the
        # release.
        mask_tokens=("<[MASK_TOKEN]>",),
        mask_id=5,
        # The model card's call: steps = gen_length over blocks of 4 (4 steps a block), threshold=None (the
        # schedule's top-k only: nothing is strictly above 1.0), temperature 0, low_confidence. generate_block
        # stops after the block holding eos_id (the tokenizer's eos, end of span here).
        decoding_defaults={"block_steps": 4, "threshold": 1.0, "temperature": 0.0},
        # Seed-Coder was pretrained with fill-in-the-middle in SPM order (its technical report: FIM ratio 0.5,
        # 0.1 in continued pretraining); whether Stable-DiffCoder's block-diffusion stage kept FIM samples its
        # release does not say. Unmeasured on real weights here (README).
        block_prompt=("<[fim-suffix]>", SUFFIX, "<[fim-prefix]>", PREFIX, "<[fim-middle]>"),
        never_commit=("<[fim-suffix]>", "<[fim-prefix]>", "<[fim-middle]>"),
        lora_targets=DECODER_LORA_TARGETS,
    ),
    Family(
        name="fast-dllm-v2",
        title="Fast-dLLM v2 (NVlabs; Qwen2.5 weights, block diffusion over blocks of 32, shifted logits)",
        backbone="qwen2",
        architectures=("Fast_dLLM_QwenForCausalLM",),
        attention="block-causal",
        block_size=32,  # generate's block_size; config.json's "bd_size" (training's) when present
        block_size_keys=("block_size", "bd_size"),
        sub_block_size=8,  # the model card's small_block_size
        # Token shift: the hidden state at i - 1 predicts position i; a block's first token comes from the
        # previous block's last position, committed before the block's steps (its generate).
        shift=True,
        mask_tokens=("|<MASK>|",),  # spelling unchecked against the release; generate's mask_id is 151665
        mask_id=151665,
        stop_tokens=("<|im_end|>", "<|endoftext|>"),  # generate's stop_token is 151645, <|im_end|>
        never_commit=QWEN25_CONTROL_TOKENS,
        # The model card's call: threshold 0.9 (every masked position of the sub-block above it, else the
        # most confident one), greedy.
        decoding_defaults={"block_steps": 0, "threshold": 0.9, "temperature": 0.0},
        # Qwen2.5-7B-Instruct (its base) was not trained on fill-in-the-middle (Qwen2.5-Coder was): the suffix
        # goes first as an earlier document, as for SDAR. Unmeasured on real weights here.
        block_prompt=(SUFFIX, "<|endoftext|>", PREFIX),
        lora_targets=DECODER_LORA_TARGETS,
    ),
    # LLaDA2.x (inclusionAI; modeling_llada2_moe.py's LLaDA2MoeModelLM.generate): Ling 2.0's MoE decoder
    # (llada2_moe.py), block diffusion over blocks of 32. Token spellings are the Ling tokenizer's as third
    # parties use them (generate's eos_id 156892 <|endoftext|>, mask_id 156895), not checked against the
    # release's tokenizer files.
    Family(
        name="llada2",
        title="LLaDA2.x (inclusionAI; Ling 2.0 MoE weights, block diffusion over blocks of 32)",
        backbone="llada2-moe",
        model_types=("llada2_moe",),
        architectures=("LLaDA2MoeModelLM",),
        attention="block-causal",
        block_size=32,  # generate's block_length; the release's config.json has no block size
        weight_names=((r"^model\.word_embeddings\.", "model.embed_tokens."),),
        mask_tokens=("<|mask|>",),
        mask_id=156895,
        # generate stops after the block holding eos_id (156892) and cuts after it.
        end_of_span_tokens=("<|endoftext|>",),
        never_commit=("<role>", "</role>", "<|role_end|>"),  # Ling's chat-turn tokens
        # generate's defaults, greedy: 32 steps per block of 32 (the schedule's share is one position per
        # step), every masked position above 0.95 confidence, else the most confident ones; and its
        # steps = min(steps, gen_length // minimal_topk) with minimal_topk 1: a budget of 8 tokens takes 8
        # steps a block, 4 positions each.
        decoding_defaults={"block_steps": 32, "threshold": 0.95, "temperature": 0.0},
        steps_within_budget=True,
        # Whether Ling 2.0 (LLaDA2.0's base) was pretrained with fill-in-the-middle its release does not
        # say, and LLaDA2.0's diffusion training is on plain text and chat: the suffix goes first as an
        # earlier document, as for SDAR. Unmeasured on real weights here (README).
        block_prompt=(SUFFIX, "<|endoftext|>", PREFIX),
    ),
    # The dllm project's Tiny-A2D bd3lm conversions of Qwen2.5-Coder (A2DQwen2LMHeadModel: transformers'
    # Qwen2 with the causal mask replaced by the one its sampler passes). Their BD3LM sampler
    # (dllm/core/samplers/bd3lm.py) left-pads the prompt to whole blocks, so blocks end where the prompt
    # ends; its tokenizer adds "<|mask|>" (dllm/utils/models.py) and stops after the block holding eos
    # (<|im_end|> for the Instruct base: end of span here). The mdlm conversions carry the same config.json
    # (model_type "a2d-qwen2", no block size) and cannot be told apart from it: they are not supported.
    Family(
        name="a2d-bd3lm",
        title="dllm Tiny-A2D bd3lm (Qwen2.5-Coder weights, block diffusion over blocks of 32)",
        backbone="qwen2",
        model_types=("a2d-qwen2",),
        architectures=("A2DQwen2LMHeadModel",),
        attention="block-causal",
        block_size=32,  # the evaluation's block_size (eval.sh, BD3LMSamplerConfig)
        blocks_end_at_prompt=True,
        transfer_schedule="linear",
        mask_tokens=("<|mask|>",),
        never_commit=QWEN25_CONTROL_TOKENS,
        # eval.sh's call: max_new_tokens=256, steps=256 over blocks of 32 (32 steps a block, one position
        # each), remasking low_confidence (top-k only: nothing is strictly above 1.0), temperature 0.
        decoding_defaults={"block_steps": 32, "threshold": 1.0, "temperature": 0.0},
        # Qwen2.5-Coder was pretrained with fill-in-the-middle in PSM order and the conversion keeps its
        # tokenizer; the A2D fine-tuning (chat data, no FIM) may have weakened it. Unmeasured on real weights.
        block_prompt=("<|fim_prefix|>", PREFIX, "<|fim_suffix|>", SUFFIX, "<|fim_middle|>"),
        lora_targets=DECODER_LORA_TARGETS,
    ),
    # Open-dCoder (Open-dLLM's eval_infill.py, generation_utils.py): a Qwen2.5-Coder checkpoint under
    # transformers' own config (model_type "qwen2"), so the tokenizer's added "[MASK]" (its sample.py's
    # spelling; not checked against the release) is what singles it out. Bidirectional (is_causal=False),
    # logits shifted as Dream's (row 0 keeps its own), infilling canvas prefix + masks + suffix with no bos.
    # Decoded as its authors' evaluation does (eval_infill.py, run_eval.sh): p2 path planning
    # (engine/path_planning.py), 64 steps, temperature 0.6, top-p 0.95.
    Family(
        name="open-dcoder",
        title="Open-dCoder (Open-dLLM; Qwen2.5-Coder weights, bidirectional, shifted logits)",
        backbone="qwen2",
        model_types=("qwen2",),
        marker_tokens=("[MASK]",),
        shift=True,
        never_commit=QWEN25_CONTROL_TOKENS,
        decoding_defaults={"strategy": "p2", "steps": 64, "temperature": 0.6, "top_p": 0.95},
        lora_targets=DECODER_LORA_TARGETS,
    ),
    # Any masked LM transformers implements natively (ModernBERT, RoBERTa/CodeBERT, BERT...).
    Family(
        name="masked-lm",
        title="masked LM (transformers' own class)",
        backbone="masked-lm",
        model_types=("modernbert",),
        any_native_masked_lm=True,
        end_of_span_tokens=(END_OF_SPAN_TOKEN,),
    ),
)
# Anything else that ships its own code (auto_map), loaded only with trust_remote_code.
REMOTE = Family(
    name="remote", title="remote code shipped with the checkpoint", backbone="remote", mask_from_config=True
)
_BY_NAME = {family.name: family for family in (*FAMILIES, REMOTE)}


def family_named(name: str) -> Family:
    try:
        return _BY_NAME[name]
    except KeyError:
        known = ", ".join(sorted(_BY_NAME))
        raise ModelLoadError(f'Unknown "{FAMILY_KEY}": {name!r} in config.json (known: {known})') from None


def detect_family(config: dict[str, Any], model_dir: Path) -> Family | None:
    """The family config.json (and the tokenizer files' added tokens) describe; None when none matches."""
    explicit = config.get(FAMILY_KEY)
    if explicit is not None:
        return family_named(str(explicit))
    model_type = str(config.get("model_type", "")).lower()
    architectures = [str(a) for a in config.get("architectures") or []]
    added: set[str] | None = None
    for family in FAMILIES:
        typed = model_type in family.model_types or (
            family.any_native_masked_lm and model_type in native_masked_lm_types()
        )
        named = bool(family.architectures) and any(a.startswith(family.architectures) for a in architectures)
        if not (typed or named):
            continue
        if family.marker_tokens:
            added = added if added is not None else added_token_names(model_dir)
            if not added.intersection(family.marker_tokens):
                continue
        return family
    return None


@cache
def native_masked_lm_types() -> frozenset[str]:
    """Model types transformers has a native masked-LM class for (ModernBERT, RoBERTa, BERT...)."""
    from transformers.models.auto.modeling_auto import MODEL_FOR_MASKED_LM_MAPPING_NAMES

    return frozenset(MODEL_FOR_MASKED_LM_MAPPING_NAMES)


def added_token_names(model_dir: Path) -> set[str]:
    """Contents of the added tokens the tokenizer files declare (read as JSON; nothing is imported)."""
    names: set[str] = set()
    for file, read in (
        ("added_tokens.json", lambda data: data.keys()),
        (
            "tokenizer_config.json",
            lambda data: (t.get("content") for t in data.get("added_tokens_decoder", {}).values()),
        ),
        ("tokenizer.json", lambda data: (t.get("content") for t in data.get("added_tokens", []))),
    ):
        path = model_dir / file
        if not path.is_file():
            continue
        try:
            names.update(str(n) for n in read(json.loads(path.read_text(encoding="utf-8"))))
        except (OSError, UnicodeDecodeError, ValueError, AttributeError, TypeError) as exc:
            logger.warning("Could not read the added tokens of %s: %s", path, exc)
    return names


def module_layout(model: object) -> ModuleLayout | None:
    """Trunk and LM head of a loaded masked LM (None for classes infill does not know)."""
    return MODULE_LAYOUTS.get(type(model).__name__)
