"""The context key/value cache (Fast-dLLM's DualCache: the native modules' forward with ``past``/``at``,
infill/models/adapters.py, kv_cache.py, infill/engine/step_logits.py) on real tiny models: a ModernBERT with
local (sliding-window) layers, Dream's shifted Qwen2 layout and an unshifted LLaMA, each in infill's own
module (modernbert.py, qwen2.py), which the loader runs and which alone takes the cache.

Cached logits equal the full forward pass when the cache was built on the same ids; the sampler gives the
same tokens with the cache refreshed every step as without it (left and right padding, batch > 1); between
refreshes only the block's positions go through the layers.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
import torch
from transformers import ModernBertConfig, ModernBertForMaskedLM, PreTrainedModel

from infill.engine.sampler import denoise
from infill.engine.step_logits import StepLogits
from infill.engine.types import DecodeConfig
from infill.models import load_model
from infill.models.adapters import DecoderAdapter, MaskedLMAdapter
from infill.models.base import SpecialTokens
from infill.models.modernbert import ModernBertConfig as NativeModernBertConfig
from infill.models.modernbert import ModernBertForMaskedLM as NativeModernBert
from infill.models.qwen2 import LlamaForCausalLM as NativeLlama
from infill.models.qwen2 import Qwen2Config as NativeDecoderConfig
from tests.test_forward import llama_adapter, padded_batch

pytestmark = pytest.mark.usefixtures("one_thread")
VOCAB = 300


def local_modernbert(seed: int = 0) -> MaskedLMAdapter:
    """Three layers, the middle one local with a window of +-4 positions: canvases of 19 positions reach
    beyond it, so a cache that ignored the window would attend too far."""
    torch.manual_seed(seed)
    config = ModernBertConfig(
        vocab_size=VOCAB,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=3,
        num_attention_heads=2,
        max_position_embeddings=128,
        global_attn_every_n_layers=2,
        local_attention=8,
        pad_token_id=0,
    )
    assert config.layer_types == ["full_attention", "sliding_attention", "full_attention"]
    return MaskedLMAdapter(native_twin(ModernBertForMaskedLM(config).eval()))


def native_twin(model: PreTrainedModel) -> torch.nn.Module:
    """The transformers model's weights in infill's own module of its backbone (what the loader builds)."""
    config = model.config.to_dict()
    native: torch.nn.Module
    if config["model_type"] == "modernbert":
        parsed = NativeModernBertConfig.from_json(config)
        assert parsed is not None
        native = NativeModernBert(parsed)
    else:
        decoder = NativeDecoderConfig.from_json(config, "llama", any_model_type=True)
        assert decoder is not None
        native = NativeLlama(decoder)
    native.load_state_dict(model.state_dict())
    return native.eval()


@pytest.fixture(scope="module")
def adapters(dream_dir: Path) -> dict[str, MaskedLMAdapter | DecoderAdapter]:
    dream = load_model(dream_dir, device="cpu").model
    assert isinstance(dream, DecoderAdapter)
    llama = DecoderAdapter(native_twin(llama_adapter(VOCAB).model), shift=False)
    return {"modernbert": local_modernbert(), "dream": dream, "llama": llama}


class CountingRows:
    """Counts the positions that go through the first layer's input projection."""

    def __init__(self, adapter: MaskedLMAdapter | DecoderAdapter) -> None:
        layer = adapter.model.model.layers[0]
        projection = layer.attn.Wqkv if hasattr(layer, "attn") else layer.self_attn.q_proj
        self.rows: list[int] = []
        self.handle = projection.register_forward_hook(
            lambda module, inputs, output: self.rows.append(inputs[0].shape[0] * inputs[0].shape[1])
        )


@pytest.mark.parametrize("kind", ["modernbert", "dream", "llama"])
@pytest.mark.parametrize("left", [False, True])
def test_cached_logits_match_the_full_forward_pass(
    adapters: dict[str, MaskedLMAdapter | DecoderAdapter], kind: str, left: bool
) -> None:
    adapter = adapters[kind]
    assert adapter.caches_context
    ids, mask = padded_batch(VOCAB, left)
    positions = torch.tensor([[9, 10, 11, 12], [8, 9, 10, 11]])  # a block in the middle of each row
    expected = adapter.logits(ids, mask, positions)
    counter = CountingRows(adapter)
    built, cache = adapter.logits_with_cache(ids, mask, positions, None)
    assert torch.allclose(built, expected, atol=1e-5)
    cached, cache = adapter.logits_with_cache(ids, mask, positions, cache)
    assert torch.allclose(cached, expected, atol=1e-5), (cached - expected).abs().max()
    counter.handle.remove()
    # The full pass saw every position; the cached one the block (and, shifted, each predecessor) only.
    block = positions.numel() * (2 if kind == "dream" else 1)
    assert counter.rows == [ids.numel(), block]

    # New tokens in the block: the cached pass sees them (its logits move) while the rest stays cached.
    changed = ids.clone()
    changed[0, 9:13] = torch.tensor([5, 6, 7, 8])
    moved, _ = adapter.logits_with_cache(changed, mask, positions, cache)
    assert not torch.allclose(moved, cached, atol=1e-4)


def special_tokens() -> SpecialTokens:
    return SpecialTokens(mask_id=3, end_of_span_id=2, pad_id=0, banned_ids=(0, 1, 3))


def canvas_batch(left: bool) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Two canvases (spans of 12 and 7 masks between random context), padded on the left or the right."""
    generator = torch.Generator().manual_seed(5)
    ids = torch.randint(4, VOCAB, (2, 26), generator=generator)
    mask = torch.ones_like(ids)
    editable = torch.zeros_like(ids, dtype=torch.bool)
    editable[0, 6:18] = True
    short = slice(11, 18) if left else slice(6, 13)
    editable[1, short] = True
    if left:
        mask[1, :5] = 0
    else:
        mask[1, 21:] = 0
    ids[mask == 0] = 0
    return ids, mask, editable


@pytest.mark.parametrize("kind", ["modernbert", "dream", "llama"])
@pytest.mark.parametrize("left", [False, True])
@pytest.mark.parametrize("strategy", ["blocks", "threshold"])
def test_refreshing_every_step_gives_the_same_tokens_as_no_cache(
    adapters: dict[str, MaskedLMAdapter | DecoderAdapter], kind: str, left: bool, strategy: str
) -> None:
    ids, mask, editable = canvas_batch(left)
    config = DecodeConfig(strategy=strategy, steps=8, block_size=4, threshold=0.2)  # type: ignore[arg-type]
    plain = denoise(adapters[kind], ids, editable, mask, special_tokens(), config)
    cached = denoise(adapters[kind], ids, editable, mask, special_tokens(), replace(config, cache_refresh=1))
    assert plain.forward_passes > 2
    assert torch.equal(cached.ids, plain.ids)
    assert torch.equal(cached.commit_step, plain.commit_step)


class CountingCalls:
    """An adapter that records, per step, whether it was a full pass (no cache given)."""

    def __init__(self, adapter: MaskedLMAdapter | DecoderAdapter) -> None:
        self.adapter = adapter
        self.caches_context = True
        self.full: list[bool] = []

    def logits(self, *args: torch.Tensor) -> torch.Tensor:
        raise AssertionError("with a cache every step goes through logits_with_cache")

    def logits_with_cache(self, ids, mask, positions, cache):  # type: ignore[no-untyped-def]
        self.full.append(cache is None)
        return self.adapter.logits_with_cache(ids, mask, positions, cache)


def test_the_cache_is_refreshed_at_each_new_block_and_every_n_steps(
    adapters: dict[str, MaskedLMAdapter | DecoderAdapter],
) -> None:
    ids, mask, editable = canvas_batch(left=False)
    one_row = (ids[:1], mask[:1], editable[:1])  # a span of 12: three blocks of 4, four steps each
    config = DecodeConfig(strategy="blocks", steps=12, block_size=4, threshold=1.0, cache_refresh=100)
    model = CountingCalls(adapters["llama"])
    out = denoise(model, one_row[0], one_row[2], one_row[1], special_tokens(), config)  # type: ignore[arg-type]
    assert out.forward_passes == 12 and model.full == [True, False, False, False] * 3
    model.full.clear()
    denoise(model, one_row[0], one_row[2], one_row[1], special_tokens(), replace(config, cache_refresh=2))  # type: ignore[arg-type]
    assert model.full == [True, False] * 6
    # A model without a cache, or cache_refresh 0, takes plain full passes.
    assert StepLogits(adapters["llama"], 0).cache_refresh == 0
    assert StepLogits(object(), 4).cache_refresh == 0  # type: ignore[arg-type]


@pytest.mark.parametrize("release", ["llada", "dream-coder-v0"])
def test_release_shaped_checkpoints_decode_the_same_with_the_cache(
    release_dirs: dict[str, Path], release: str
) -> None:
    from infill.engine import InfillEngine
    from infill.engine.types import FillRequest

    loaded = load_model(release_dirs[release], device="cpu")
    assert getattr(loaded.model, "caches_context", False), "LLaDA (LLaMA) and Dream (Qwen2) take the cache"
    engine = InfillEngine(loaded)
    requests = [
        FillRequest("def add(a, b):\n    ", "\n\nprint(add(1, 2))\n", max_tokens=10),
        FillRequest("x = [1, 2", "]\n", max_tokens=6, mode="line"),
    ]
    config = DecodeConfig(strategy="blocks", steps=6, block_size=4, threshold=0.3)
    plain = engine.fill(requests, config)
    cached = engine.fill(requests, replace(config, cache_refresh=1))
    assert [r.best.text if r.best else None for r in cached] == [
        r.best.text if r.best else None for r in plain
    ]
