"""Released diffusion code models (Dream-v0, Dream-Coder-v0, DiffuCoder, LLaDA) from release-shaped
directories: family detection, tokenizers built without remote code, logits equal to an independent
computation, special tokens, sampler defaults, and proof that nothing shipped with a checkpoint is ever
imported.
"""

from __future__ import annotations

import json
import shutil
import sys
import unicodedata
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from transformers import LlamaConfig, LlamaForCausalLM, Qwen2Config, Qwen2ForCausalLM, Qwen2Tokenizer

from infill.errors import ModelLoadError
from infill.models import LoadedModel, load_model
from infill.models.families import family_named
from infill.models.weights import read_safetensors
from tests.release_models import (
    DREAM_REMOTE_FILES,
    LLADA_BLOCK_NAMES,
    LLADA_REMOTE_FILES,
    SENTINEL,
    build_dream_release,
    build_infill_shifted_decoder,
)
from tests.test_models import REMOTE_MODEL_CODE, assert_left_padding_changes_nothing, remote_code_dir

CODE = "def add(a, b):\n    return a + b\n\nclass Point:\n    x = 1  # note é\n"
FAMILY_OF = {"dream-v0": "dream", "dream-coder-v0": "dream", "diffucoder": "diffucoder", "llada": "llada"}
RELEASES = list(FAMILY_OF)


@pytest.fixture(scope="module")
def loaded(release_dirs: dict[str, Path]) -> dict[str, LoadedModel]:
    return {name: load_model(path, device="cpu") for name, path in release_dirs.items()}


def _ids(loaded_model: LoadedModel, text: str = CODE) -> torch.Tensor:
    return torch.tensor([list(loaded_model.special.prefix_ids) + loaded_model.tokenizer.encode(text)])


def _token(loaded_model: LoadedModel, token: str) -> int:
    return loaded_model.tokenizer.hf.convert_tokens_to_ids(token)  # type: ignore[attr-defined]


# --- detection and "no remote code" ---


@pytest.mark.parametrize("release", RELEASES)
def test_each_release_is_detected_as_its_family(release: str, loaded: dict[str, LoadedModel]) -> None:
    assert loaded[release].family == FAMILY_OF[release]
    assert loaded[release].kind == "decoder"


def test_release_layouts_are_the_released_ones(release_dirs: dict[str, Path]) -> None:
    for name in ("dream-v0", "dream-coder-v0", "diffucoder"):
        files = {p.name for p in release_dirs[name].iterdir()}
        assert "tokenizer.json" not in files
        assert {"vocab.json", "merges.txt", "added_tokens.json", "special_tokens_map.json"} <= files
        assert set(DREAM_REMOTE_FILES) <= files and "model.safetensors.index.json" in files
        tokenizer_config = json.loads((release_dirs[name] / "tokenizer_config.json").read_text())
        assert tokenizer_config["auto_map"]["AutoTokenizer"][0] == "tokenization_dream.DreamTokenizer"
    llada_files = {p.name for p in release_dirs["llada"].iterdir()}
    assert {
        "tokenizer.json",
        "tokenizer_config.json",
        "special_tokens_map.json",
        *LLADA_REMOTE_FILES,
    } <= llada_files
    assert any(
        k.startswith("model.transformer.blocks.0.ff_proj") for k in read_safetensors(release_dirs["llada"])
    )


@pytest.mark.parametrize("trust_remote_code", [False, True])
@pytest.mark.parametrize("release", RELEASES)
def test_loads_without_importing_any_file_of_the_checkpoint(
    release: str, trust_remote_code: bool, release_dirs: dict[str, Path], tmp_path: Path
) -> None:
    model_dir = shutil.copytree(release_dirs[release], tmp_path / release_dirs[release].name)
    before = set(sys.modules)
    loaded_model = load_model(model_dir, device="cpu", trust_remote_code=trust_remote_code)
    assert loaded_model.family == FAMILY_OF[release]
    assert not (model_dir / SENTINEL).exists()  # every shipped .py writes it when imported
    new_modules = set(sys.modules) - before
    assert not [m for m in new_modules if "dream" in m.lower() or "llada" in m.lower()]
    assert not [m for m in new_modules if m.startswith("transformers_modules")]


def test_the_sentinel_would_catch_an_import(release_dirs: dict[str, Path], tmp_path: Path) -> None:
    """The remote files really are importable code that leaves a trace: the test above can fail."""
    import importlib.util

    model_dir = shutil.copytree(release_dirs["llada"], tmp_path / "llada")
    spec = importlib.util.spec_from_file_location("modeling_llada_probe", model_dir / "modeling_llada.py")
    assert spec is not None and spec.loader is not None
    with pytest.raises(ImportError):
        spec.loader.exec_module(importlib.util.module_from_spec(spec))
    assert (model_dir / SENTINEL).read_text() == "modeling_llada_probe"


def test_explicit_infill_family_wins_and_unknown_ones_are_refused(
    release_dirs: dict[str, Path], tmp_path: Path
) -> None:
    model_dir = shutil.copytree(release_dirs["diffucoder"], tmp_path / "m")
    config = json.loads((model_dir / "config.json").read_text())
    (model_dir / "config.json").write_text(json.dumps({**config, "infill_family": "dream"}))
    assert load_model(model_dir, device="cpu").family == "dream"
    (model_dir / "config.json").write_text(json.dumps({**config, "infill_family": "dreamish"}))
    with pytest.raises(ModelLoadError, match="Unknown \"infill_family\": 'dreamish'"):
        load_model(model_dir, device="cpu")


# --- tokenizers without remote code ---

TEXTS = [
    CODE,
    "x = '<|mask|>' + \"<|fim_prefix|><tool_call>\"  # <|endoftext|>\r\n",
    "  \n\n\t  y=1;; \u00a0z  \n",
    'name = "héllo wörld 你好 🙂 cafe\u0301"\n',
]


@pytest.mark.parametrize("release", ["dream-v0", "diffucoder"])
def test_dream_tokenizer_gives_the_ids_of_transformers_qwen2_tokenizer(
    release: str, loaded: dict[str, LoadedModel], release_dirs: dict[str, Path]
) -> None:
    ours = loaded[release].tokenizer
    reference = Qwen2Tokenizer.from_pretrained(str(release_dirs[release]))
    assert "vocab.json + merges.txt" in loaded[release].tokenizer_source
    assert ours.vocab_size == len(reference)
    for text in TEXTS:
        expected = reference(text, add_special_tokens=False, split_special_tokens=True)["input_ids"]
        assert ours.encode(text) == expected
        # Qwen2 normalises to NFC, as its own tokenizer does: "e\u0301" comes back as "é".
        nfc = unicodedata.normalize("NFC", text)
        assert ours.decode(expected) == reference.decode(expected, skip_special_tokens=False) == nfc
        if text.isascii():  # token healing reads each token's exact text
            assert "".join(ours.token_text(i) for i in expected) == text
    hf = ours.hf  # type: ignore[attr-defined]
    flags = {token.content: token.special for token in hf.added_tokens_decoder.values()}
    assert flags["<|mask|>"] and flags["<|endoftext|>"] and flags["<|beginoftext|>"]
    assert not flags["<|fim_prefix|>"] and not flags["<tool_call>"]  # as Qwen2.5 ships them
    assert (hf.bos_token, hf.eos_token, hf.mask_token) == ("<|beginoftext|>", "<|endoftext|>", "<|mask|>")


# --- logits: the same numbers as an independent computation ---


def _reference_decoder(model_dir: Path) -> tuple[torch.nn.Module, bool]:
    """(the checkpoint's weights in a plain transformers module built from config.json by hand, shifted?)"""
    config = json.loads((model_dir / "config.json").read_text())
    weights = read_safetensors(model_dir)
    if config["model_type"] == "llada":
        reference: torch.nn.Module = LlamaForCausalLM(
            LlamaConfig(
                vocab_size=config["embedding_size"],
                hidden_size=config["d_model"],
                intermediate_size=config["mlp_hidden_size"],
                num_hidden_layers=config["n_layers"],
                num_attention_heads=config["n_heads"],
                num_key_value_heads=config["n_kv_heads"],
                rope_theta=config["rope_theta"],
                rms_norm_eps=config["rms_norm_eps"],
                max_position_embeddings=config["max_sequence_length"],
                tie_word_embeddings=False,
            )
        )
        renamed = {}
        for name, tensor in weights.items():
            name = name.replace("model.transformer.wte.", "model.embed_tokens.")
            name = name.replace("model.transformer.ln_f.", "model.norm.")
            name = name.replace("model.transformer.ff_out.", "lm_head.")
            for llada, ours in LLADA_BLOCK_NAMES.items():
                name = name.replace(f".{llada}.", f".{ours}.").replace(
                    "model.transformer.blocks.", "model.layers."
                )
            renamed[name] = tensor
        weights, shifted = renamed, False
    else:
        reference = Qwen2ForCausalLM(
            Qwen2Config(
                vocab_size=config["vocab_size"],
                hidden_size=config["hidden_size"],
                intermediate_size=config["intermediate_size"],
                num_hidden_layers=config["num_hidden_layers"],
                num_attention_heads=config["num_attention_heads"],
                num_key_value_heads=config["num_key_value_heads"],
                rope_theta=config["rope_theta"],
                rms_norm_eps=config["rms_norm_eps"],
                max_position_embeddings=config["max_position_embeddings"],
                tie_word_embeddings=False,
            )
        )
        shifted = True
    reference.load_state_dict(weights, strict=True)
    return reference.eval(), shifted


@pytest.mark.parametrize("release", RELEASES)
def test_logits_are_the_bidirectional_forward_of_a_plain_transformers_module(
    release: str, loaded: dict[str, LoadedModel], release_dirs: dict[str, Path]
) -> None:
    loaded_model = loaded[release]
    reference, shifted = _reference_decoder(release_dirs[release])
    ids = _ids(loaded_model)
    seq = ids.shape[1]
    with torch.no_grad():
        # An all-visible additive 4D mask: bidirectional by construction, whatever the is_causal flags say.
        raw = reference(input_ids=ids, attention_mask=torch.zeros(1, 1, seq, seq), use_cache=False).logits
        causal = reference(input_ids=ids, use_cache=False).logits
    assert not torch.allclose(raw, causal, atol=1e-4)  # the reference really is bidirectional
    expected = torch.cat([raw[:, :1], raw[:, :-1]], dim=1) if shifted else raw.clone()
    special = loaded_model.special
    # The family's stop tokens are merged into end-of-span: logsumexp of their raw logits.
    ends = [special.end_of_span_id, *special.stop_ids]
    expected[..., special.end_of_span_id] = torch.logsumexp(expected[..., ends], dim=-1)
    got = loaded_model.model.logits(ids, torch.ones_like(ids))
    assert torch.allclose(got, expected, atol=1e-5), (got - expected).abs().max()


def _llada_reference_forward(model_dir: Path, ids: torch.Tensor) -> torch.Tensor:
    """LLaDA's forward as GSAI-ML's modeling_llada.py computes it (LLaDALlamaBlock, RMSLayerNorm,
    RotaryEmbedding with rotate_half over two halves, non-causal sdpa, silu(ff_proj(x)) * up_proj(x)), in
    plain torch."""
    config = json.loads((model_dir / "config.json").read_text())
    w = read_safetensors(model_dir)
    heads, kv_heads, d_model = config["n_heads"], config["n_kv_heads"], config["d_model"]
    head_dim = d_model // heads
    eps, theta = config["rms_norm_eps"], config["rope_theta"]

    def rms(x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        x32 = x.float()
        return weight * (x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + eps)).to(x.dtype)

    def rotate_half(t: torch.Tensor) -> torch.Tensor:
        b, nh, seq, hs = t.shape
        x1, x2 = t.view(b, nh, seq, 2, hs // 2).unbind(dim=-2)
        return torch.cat((-x2, x1), dim=-1)

    seq = ids.shape[1]
    inv_freq = 1.0 / (theta ** (torch.arange(0, head_dim, 2, dtype=torch.float) / head_dim))
    freqs = torch.einsum("i,j->ij", torch.arange(seq, dtype=torch.float), inv_freq)
    positions = torch.cat((freqs, freqs), dim=-1)
    sin, cos = positions.sin()[None, None], positions.cos()[None, None]
    x = w["model.transformer.wte.weight"][ids]  # (B, T, C)
    for layer in range(config["n_layers"]):
        block = f"model.transformer.blocks.{layer}."
        h = rms(x, w[block + "attn_norm.weight"])
        q = (h @ w[block + "q_proj.weight"].T).view(1, seq, heads, head_dim).transpose(1, 2)
        k = (h @ w[block + "k_proj.weight"].T).view(1, seq, kv_heads, head_dim).transpose(1, 2)
        v = (h @ w[block + "v_proj.weight"].T).view(1, seq, kv_heads, head_dim).transpose(1, 2)
        q, k = q * cos + rotate_half(q) * sin, k * cos + rotate_half(k) * sin
        k = k.repeat_interleave(heads // kv_heads, dim=1)
        v = v.repeat_interleave(heads // kv_heads, dim=1)
        attended = F.scaled_dot_product_attention(q, k, v, is_causal=False)  # (B, nh, T, hs)
        x = x + attended.transpose(1, 2).reshape(1, seq, d_model) @ w[block + "attn_out.weight"].T
        h = rms(x, w[block + "ff_norm.weight"])
        gated = F.silu(h @ w[block + "ff_proj.weight"].T) * (h @ w[block + "up_proj.weight"].T)
        x = x + gated @ w[block + "ff_out.weight"].T
    return rms(x, w["model.transformer.ln_f.weight"]) @ w["model.transformer.ff_out.weight"].T


def test_llada_logits_follow_modeling_llada(
    loaded: dict[str, LoadedModel], release_dirs: dict[str, Path]
) -> None:
    loaded_model = loaded["llada"]
    ids = _ids(loaded_model)
    with torch.no_grad():
        expected = _llada_reference_forward(release_dirs["llada"], ids)
    got = loaded_model.model.logits(ids, torch.ones_like(ids))
    untouched = [i for i in range(got.shape[-1]) if i != loaded_model.special.end_of_span_id]
    assert torch.allclose(got[..., untouched], expected[..., untouched], atol=1e-4)


@pytest.mark.parametrize("release", ["dream-coder-v0", "llada"])
def test_left_padding_gives_the_same_logits(release: str, loaded: dict[str, LoadedModel]) -> None:
    assert_left_padding_changes_nothing(loaded[release], _ids(loaded[release])[0], padding=3)


# --- special tokens, framing, stops ---


@pytest.mark.parametrize("release", ["dream-v0", "dream-coder-v0", "diffucoder"])
def test_dream_family_special_tokens(
    release: str, loaded: dict[str, LoadedModel], release_dirs: dict[str, Path]
) -> None:
    loaded_model = loaded[release]
    special = loaded_model.special
    config = json.loads((release_dirs[release] / "config.json").read_text())
    assert special.mask_id == config["mask_token_id"] == _token(loaded_model, "<|mask|>")
    assert special.end_of_span_id == _token(loaded_model, "<|endoftext|>")
    assert special.prefix_ids == (_token(loaded_model, "<|beginoftext|>"),) and special.suffix_ids == ()
    # Qwen2.5's FIM and tool-call tokens are not special in its tokenizer, but are never committed.
    for control in ("<|fim_prefix|>", "<|fim_middle|>", "<|fim_suffix|>", "<tool_call>", "<|file_sep|>"):
        assert _token(loaded_model, control) in special.banned_ids
    assert _token(loaded_model, "<|im_end|>") in special.stop_ids
    assert set(special.stop_ids) <= set(special.banned_ids)
    assert special.end_of_span_id not in special.banned_ids
    assert set(range(loaded_model.tokenizer.vocab_size, 448)) <= set(special.banned_ids)  # embedding padding


def test_diffucoder_ends_spans_at_dlm_pad(
    loaded: dict[str, LoadedModel], release_dirs: dict[str, Path]
) -> None:
    loaded_model = loaded["diffucoder"]
    special, dlm_pad = loaded_model.special, _token(loaded_model, "<|dlm_pad|>")
    assert special.pad_id == dlm_pad and dlm_pad in special.stop_ids and dlm_pad in special.banned_ids
    ids = _ids(loaded_model)
    probs = loaded_model.model.logits(ids, torch.ones_like(ids)).softmax(-1)
    allowed = torch.ones(probs.shape[-1], dtype=torch.bool)
    allowed[list(special.banned_ids)] = False
    # What the sampler sees: after banning, P(end of span) is P(eos) + P(<|dlm_pad|>) + P(<|im_end|>).
    renormalised = probs * allowed / (probs * allowed).sum(-1, keepdim=True)
    reference, _ = _reference_decoder(release_dirs["diffucoder"])
    with torch.no_grad():
        raw = reference(input_ids=ids, attention_mask=torch.zeros(1, 1, ids.shape[1], ids.shape[1])).logits
    raw_probs = torch.cat([raw[:, :1], raw[:, :-1]], dim=1).softmax(-1)
    ends = [special.end_of_span_id, *special.stop_ids]
    kept = allowed.clone()
    kept[ends] = True
    expected = raw_probs[..., ends].sum(-1) / (raw_probs * kept).sum(-1)
    assert torch.allclose(renormalised[..., special.end_of_span_id], expected, atol=1e-5)


def test_llada_special_tokens(loaded: dict[str, LoadedModel], release_dirs: dict[str, Path]) -> None:
    loaded_model = loaded["llada"]
    special = loaded_model.special
    config = json.loads((release_dirs["llada"] / "config.json").read_text())
    assert special.mask_id == config["mask_token_id"] == _token(loaded_model, "<|mdm_mask|>")
    assert special.end_of_span_id == config["eos_token_id"] == _token(loaded_model, "<|endoftext|>")
    assert special.prefix_ids == () and special.suffix_ids == ()  # unshifted: no predecessor needed
    assert special.stop_ids == (_token(loaded_model, "<|eot_id|>"),)
    assert {special.mask_id, _token(loaded_model, "<|startoftext|>")} <= set(special.banned_ids)
    assert loaded_model.max_positions == config["max_sequence_length"]


def test_dreamon_frames_the_suffix_with_eos_and_may_commit_expand(tmp_path: Path) -> None:
    loaded_model = load_model(
        build_dream_release(tmp_path / "DreamOn-v0-7B", variant="dreamon"), device="cpu"
    )
    special = loaded_model.special
    assert loaded_model.family == "dreamon"
    assert special.prefix_ids == (_token(loaded_model, "<|beginoftext|>"),)
    assert special.suffix_ids == (_token(loaded_model, "<|endoftext|>"),)
    # DreamOn decides its length by expansion (tests/test_expand_delete.py): <|expand|> must be committable.
    assert _token(loaded_model, "<|expand|>") not in special.banned_ids
    assert loaded_model.expand_delete is not None
    assert loaded_model.expand_delete.expand_id == _token(loaded_model, "<|expand|>")


def test_our_shifted_decoder_family(tmp_path: Path) -> None:
    loaded_model = load_model(build_infill_shifted_decoder(tmp_path / "ours"), device="cpu")
    special = loaded_model.special
    assert (loaded_model.family, loaded_model.kind, loaded_model.tokenizer_source) == (
        "infill-shifted-decoder",
        "decoder",
        "tokenizer.json",
    )
    assert special.end_of_span_id == _token(loaded_model, "<|endofspan|>")
    assert special.mask_id == _token(loaded_model, "<|mask|>")
    assert special.prefix_ids == (_token(loaded_model, "<|endoftext|>"),)
    assert loaded_model.model.shift  # type: ignore[attr-defined]


def test_our_masked_family_key_loads_the_bundled_layout_as_before(
    modernbert_dir: Path, tmp_path: Path
) -> None:
    plain = load_model(modernbert_dir, device="cpu")
    model_dir = shutil.copytree(modernbert_dir, tmp_path / "m")
    config = json.loads((model_dir / "config.json").read_text())
    (model_dir / "config.json").write_text(json.dumps({**config, "infill_family": "infill-masked"}))
    keyed = load_model(model_dir, device="cpu")
    assert (plain.family, keyed.family) == ("masked-lm", "infill-masked")
    assert plain.special == keyed.special
    ids = torch.tensor([plain.tokenizer.encode(CODE)])
    assert torch.equal(
        plain.model.logits(ids, torch.ones_like(ids)), keyed.model.logits(ids, torch.ones_like(ids))
    )


# --- sampler defaults from the checkpoint's own generation_config.json ---


def test_dream_generation_config_becomes_decoding_defaults(tmp_path: Path) -> None:
    generation = {
        "alg": "entropy",
        "steps": 256,
        "temperature": 0.4,
        "top_p": 0.95,
        "alg_temp": 0.0,
        "eps": 1e-3,
    }
    model_dir = build_dream_release(tmp_path / "d", variant="diffucoder", generation=generation)
    loaded_model = load_model(model_dir, device="cpu")
    assert loaded_model.generation_defaults == {
        "strategy": "entropy",
        "steps": 256,
        "temperature": 0.4,
        "top_p": 0.95,
    }
    from infill.engine import InfillEngine

    config = InfillEngine(loaded_model).default_config()
    assert (config.strategy, config.steps, config.temperature) == ("entropy", 256, 0.4)
    # An "infill" entry is ours and wins over the checkpoint's own settings.
    data = json.loads((model_dir / "generation_config.json").read_text())
    (model_dir / "generation_config.json").write_text(json.dumps({**data, "infill": {"strategy": "margin"}}))
    assert load_model(model_dir, device="cpu").generation_defaults == {"strategy": "margin"}


def test_generation_settings_without_a_counterpart_are_left_to_infill(tmp_path: Path) -> None:
    model_dir = build_dream_release(tmp_path / "d", generation={"alg": "origin", "top_k": 50})
    assert load_model(model_dir, device="cpu").generation_defaults == {}


def test_llada_generation_config_holds_no_sampler_settings(loaded: dict[str, LoadedModel]) -> None:
    assert loaded["llada"].generation_defaults == {}


# --- refusals ---


@pytest.mark.parametrize(("key", "value"), [("include_bias", True), ("block_type", "sequential")])
def test_llada_variants_llama_cannot_compute_are_refused_by_name(
    key: str, value: object, release_dirs: dict[str, Path], tmp_path: Path
) -> None:
    model_dir = shutil.copytree(release_dirs["llada"], tmp_path / "m")
    config = json.loads((model_dir / "config.json").read_text())
    (model_dir / "config.json").write_text(json.dumps({**config, key: value}))
    with pytest.raises(ModelLoadError, match=f"{key}={value!r}") as info:
        load_model(model_dir, device="cpu")
    assert "\n" not in str(info.value)


def test_every_family_entry_is_reachable() -> None:
    for name in (
        "dream",
        "diffucoder",
        "dreamon",
        "llada",
        "masked-lm",
        "infill-masked",
        "infill-shifted-decoder",
    ):
        assert family_named(name).name == name


def test_remote_code_written_for_transformers_4_fails_with_one_line_naming_the_change(
    modernbert_dir: Path, tmp_path: Path
) -> None:
    # Written as for transformers 4 (as LLaDA's modeling_llada.py is): no post_init() call.
    old_code = REMOTE_MODEL_CODE.replace("        self.post_init()\n", "")
    assert old_code != REMOTE_MODEL_CODE
    model_dir = remote_code_dir(
        modernbert_dir, tmp_path / "old", model_code=old_code, transformers_version="4.46.3"
    )
    with pytest.raises(ModelLoadError, match="--trust-remote-code"):
        load_model(model_dir, device="cpu")
    with pytest.raises(ModelLoadError) as info:
        load_model(model_dir, device="cpu", trust_remote_code=True)
    message = str(info.value)
    assert "\n" not in message
    assert "written for transformers 4.46.3" in message and "post_init()" in message
    assert "all_tied_weights_keys" in message


@pytest.mark.parametrize("release", RELEASES)
def test_each_release_says_how_its_fill_length_is_decided(
    release: str, loaded: dict[str, LoadedModel]
) -> None:
    from infill.engine.length import describe_length

    loaded_model = loaded[release]
    end = loaded_model.tokenizer.token_text(loaded_model.special.end_of_span_id)
    assert loaded_model.expand_delete is None  # only DreamOn decides its own length (test_expand_delete.py)
    line = describe_length(loaded_model, False)
    assert line.startswith("a fixed canvas") and repr(end) in line and "\n" not in line
    assert describe_length(loaded_model, True).startswith("searched")
    assert describe_length(loaded_model, False, 0.33).startswith("grown: a canvas of 0.33 of the token")
