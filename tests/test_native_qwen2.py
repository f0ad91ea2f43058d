"""The plain-torch shifted decoder (infill/models/qwen2.py) against transformers' Qwen2 made bidirectional
as decoders.py builds it: the same shifted logits (padded or not), the same tokens with the context cache as
transformers' full passes, the configs it does not cover left to transformers, and a cold `infill complete`
on our shifted-decoder layout that never imports transformers."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
from transformers import Qwen2Config, Qwen2ForCausalLM

from infill.engine.sampler import denoise
from infill.engine.types import DecodeConfig
from infill.errors import ModelLoadError
from infill.models import load_model
from infill.models.adapters import DecoderAdapter
from infill.models.base import SpecialTokens
from infill.models.decoders import load_decoder
from infill.models.families import family_named
from infill.models.qwen2 import Qwen2Config as NativeConfig
from infill.models.qwen2 import load_qwen2
from infill.models.weights import checked_model
from tests.release_models import build_infill_shifted_decoder

pytestmark = pytest.mark.usefixtures("one_thread")
VOCAB = 97
FAMILY = family_named("infill-shifted-decoder")

# Variants of our export: the AR peer's shape (tied head, kv heads = heads), grouped-query attention with
# another RoPE base and norm epsilon, an untied head, and the RoPE base as a top-level key (older configs).
CONFIGS: dict[str, dict[str, Any]] = {
    "ours": {},
    "gqa theta eps": {
        "num_key_value_heads": 2,
        "rope_parameters": {"rope_type": "default", "rope_theta": 1_000_000.0},
        "rms_norm_eps": 1e-5,
    },
    "untied": {"tie_word_embeddings": False},
}


def save_shifted_decoder(out: Path, seed: int = 0, **changes: Any) -> Path:
    """A tiny Qwen2 in our export layout (config.json ``infill_family``, safetensors), with every norm and
    bias moved off its initial value so that a forgotten one shows in the logits."""
    torch.manual_seed(seed)
    settings: dict[str, Any] = {
        "vocab_size": VOCAB,
        "hidden_size": 32,
        "intermediate_size": 48,
        "num_hidden_layers": 3,
        "num_attention_heads": 4,
        "num_key_value_heads": 4,
        "max_position_embeddings": 64,
        "tie_word_embeddings": True,
        "pad_token_id": 0,
        **changes,
    }
    model = Qwen2ForCausalLM(Qwen2Config(**settings)).eval()
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.add_(torch.randn_like(parameter) * 0.1)
    model.config.infill_family = "infill-shifted-decoder"
    model.config.is_causal = False
    model.save_pretrained(str(out), safe_serialization=True)
    return out


def _config(model_dir: Path) -> dict[str, Any]:
    return json.loads((model_dir / "config.json").read_text())


def native_and_reference(model_dir: Path) -> tuple[DecoderAdapter, DecoderAdapter]:
    """(qwen2.py's model, transformers' as decoders.py builds it), both behind the shifted adapter."""
    config, cpu = _config(model_dir), torch.device("cpu")
    loaded = load_qwen2(model_dir, config, cpu, torch.float32)
    assert loaded is not None, "the native path refused a config it should cover"
    native = checked_model(loaded, model_dir)
    assert type(native).__module__ == "infill.models.qwen2"
    reference = load_decoder(model_dir, FAMILY, config, cpu, torch.float32)
    assert type(reference).__module__.startswith("transformers.")
    return DecoderAdapter(native, shift=True), DecoderAdapter(reference, shift=True)


def batches() -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    generator = torch.Generator().manual_seed(3)
    ids = torch.randint(1, VOCAB, (2, 21), generator=generator)
    full = torch.ones_like(ids)
    right, left = full.clone(), full.clone()
    right[1, 14:] = 0
    left[1, :6] = 0
    return {"unpadded": (ids, full), "right": (ids * right, right), "left": (ids * left, left)}


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_native_shifted_logits_equal_transformers(name: str, tmp_path: Path) -> None:
    native, reference = native_and_reference(save_shifted_decoder(tmp_path / "m", **CONFIGS[name]))
    for padding, (ids, mask) in batches().items():
        got, expected = native.logits(ids, mask), reference.logits(ids, mask)
        assert got.shape == expected.shape == (2, 21, VOCAB)
        real = mask.bool()
        assert (got[real] - expected[real]).abs().max() <= 1e-5, (name, padding)
        positions = torch.tensor([[3, 4, 5, 11], [8, 9, 10, 12]])  # real in every row
        diff = native.logits(ids, mask, positions) - reference.logits(ids, mask, positions)
        assert diff.abs().max() <= 1e-5, (name, padding)


def test_a_top_level_rope_theta_is_read_as_transformers_reads_it(tmp_path: Path) -> None:
    model_dir = save_shifted_decoder(tmp_path / "m")
    config = _config(model_dir)
    del config["rope_parameters"]
    config["rope_theta"] = 500.0  # far from the default, so ignoring it moves the logits
    (model_dir / "config.json").write_text(json.dumps(config))
    parsed = NativeConfig.from_json(config)
    assert parsed is not None and parsed.rope_theta == 500.0
    native, reference = native_and_reference(model_dir)
    ids, mask = batches()["right"]
    assert (native.logits(ids, mask) - reference.logits(ids, mask))[mask.bool()].abs().max() <= 1e-5


def special_tokens() -> SpecialTokens:
    return SpecialTokens(mask_id=3, end_of_span_id=2, pad_id=0, banned_ids=(0, 1, 3))


@pytest.mark.parametrize("left", [False, True])
def test_cached_decoding_gives_the_same_tokens_as_transformers(tmp_path: Path, left: bool) -> None:
    """Our module with the context cache refreshed every step against transformers' full passes (its
    classes take no cache: only the native modules do)."""
    native, reference = native_and_reference(save_shifted_decoder(tmp_path / "m", **CONFIGS["gqa theta eps"]))
    assert native.caches_context and not reference.caches_context
    generator = torch.Generator().manual_seed(5)
    ids = torch.randint(4, VOCAB, (2, 26), generator=generator)
    mask, editable = torch.ones_like(ids), torch.zeros_like(ids, dtype=torch.bool)
    editable[0, 6:18] = True
    editable[1, slice(11, 18) if left else slice(6, 13)] = True
    mask[1, slice(0, 5) if left else slice(21, None)] = 0
    ids[mask == 0] = 0
    config = DecodeConfig(strategy="threshold", steps=8, block_size=4, threshold=0.2, cache_refresh=1)
    ours = denoise(native, ids, editable, mask, special_tokens(), config)
    theirs = denoise(reference, ids, editable, mask, special_tokens(), config)
    assert ours.forward_passes > 2
    assert not (ours.ids[editable] == 3).any(), "every masked position got a token"
    assert torch.equal(ours.ids, theirs.ids)
    assert torch.equal(ours.commit_step, theirs.commit_step)


def test_the_loader_runs_our_family_and_released_ones_natively(tmp_path: Path, dream_dir: Path) -> None:
    ours = load_model(build_infill_shifted_decoder(tmp_path / "ours"), device="cpu")
    assert ours.family == "infill-shifted-decoder"
    assert type(ours.model.model).__module__ == "infill.models.qwen2"  # type: ignore[attr-defined]
    assert ours.model.caches_context  # type: ignore[attr-defined]
    assert ours.max_positions == 256
    dream = load_model(dream_dir, device="cpu")  # a released family on Qwen2 weights: the same module
    assert type(dream.model.model).__module__ == "infill.models.qwen2"  # type: ignore[attr-defined]
    assert dream.model.caches_context  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    "change",
    [
        {"rope_scaling": {"rope_type": "linear", "factor": 2.0}},
        {"rope_parameters": {"rope_type": "linear", "factor": 2.0, "rope_theta": 10000.0}},
        {"use_sliding_window": True, "sliding_window": 8},
        {"layer_types": ["full_attention", "sliding_attention"]},
        {"hidden_act": "gelu"},
        {"architectures": ["Qwen2ForSequenceClassification"]},
        {"model_type": "llama"},
    ],
)
def test_configs_the_native_path_does_not_cover_go_to_transformers(
    change: dict[str, Any], tmp_path: Path
) -> None:
    model_dir = build_infill_shifted_decoder(tmp_path / "ours")
    config = {**_config(model_dir), **change}
    assert NativeConfig.from_json(_config(model_dir)) is not None
    assert NativeConfig.from_json(config) is None
    if "architectures" in change or "model_type" in change:
        return
    (model_dir / "config.json").write_text(json.dumps(config))
    loaded = load_model(model_dir, device="cpu")
    assert loaded.family == "infill-shifted-decoder"
    assert type(loaded.model.model).__module__.startswith("transformers.")  # type: ignore[attr-defined]


def test_native_weights_that_do_not_fit_are_refused(tmp_path: Path) -> None:
    model_dir = save_shifted_decoder(tmp_path / "m", tie_word_embeddings=False)
    config = {**_config(model_dir), "intermediate_size": 40}
    loaded = load_qwen2(model_dir, config, torch.device("cpu"), torch.float32)
    assert loaded is not None
    with pytest.raises(ModelLoadError, match=r"do not match its config\.json"):
        checked_model(loaded, model_dir)


# What a cold completion with our shifted decoder does not need (test_native_modernbert.py: ModernBERT's).
HEAVY = ("transformers", "torch._dynamo", "sympy", "accelerate")


def test_a_cold_complete_with_our_shifted_decoder_does_not_import_transformers(tmp_path: Path) -> None:
    model_dir = build_infill_shifted_decoder(tmp_path / "ours")
    source = tmp_path / "stats.py"
    source.write_text("def mean(xs):\n    total = sum(xs)\n    return \n")
    code = (
        f"import sys\nHEAVY = {HEAVY!r}\n"
        "from infill_cli.main import main\n"
        "from infill.models import load_model\n"
        f"loaded = load_model({str(model_dir)!r}, device='cpu')\n"
        "print('MODULE', type(loaded.model.model).__module__, loaded.family)\n"
        f"argv = ['complete', {str(source)!r} + ':3:12', '--device', 'cpu', '--model', {str(model_dir)!r}]\n"
        "code = main(argv)\n"
        "heavy = [m for m in HEAVY if m in sys.modules]\n"
        "print('HEAVY', code, ','.join(heavy))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert "MODULE infill.models.qwen2 infill-shifted-decoder" in lines, out.stdout
    # 0: a completion; 3 (EXIT_UNFILLED): the random tiny model's completion failed the check. Either way the
    # whole path ran; what matters here is the list of heavy modules after it, which must be empty.
    assert lines[-1] in ("HEAVY 0 ", "HEAVY 3 "), out.stdout


def test_the_bundled_model_runs_natively_and_matches_transformers() -> None:
    """The shipped default is one of our AR-initialised shifted decoders: it loads through qwen2.py (no
    transformers on the request path) and gives transformers' logits on real code."""
    from infill.models import BUNDLED_MODEL_DIR

    assert _config(BUNDLED_MODEL_DIR)["infill_family"] == "infill-shifted-decoder"
    loaded = load_model(BUNDLED_MODEL_DIR, device="cpu")
    assert type(loaded.model.model).__module__ == "infill.models.qwen2"  # type: ignore[attr-defined]
    native, reference = native_and_reference(BUNDLED_MODEL_DIR)
    ids = torch.tensor([loaded.tokenizer.encode("def add(a, b):\n    return a + b\n" * 6)])
    mask = torch.ones_like(ids)
    assert (native.logits(ids, mask) - reference.logits(ids, mask)).abs().max() <= 1e-4
