"""A backbone is one module: the context cache (Fast-dLLM's DualCache) runs through the native modules' own
forward pass (qwen2.py, modernbert.py), and no other module of infill computes attention.

The bundled model's cached steps are checked through the engine with a spy on qwen2.py's forward; the
released Dream-family and LLaDA layouts, which the loader now runs in qwen2.py too, are checked against
transformers' classes (decoders.py) to 1e-4.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch

import infill
from infill.engine import InfillEngine
from infill.engine.types import DecodeConfig, FillRequest
from infill.models import load_model
from infill.models.adapters import DecoderAdapter
from infill.models.decoders import load_decoder
from infill.models.families import family_named
from infill.models.loader import load_decoder_model
from infill.models.qwen2 import Qwen2Model
from tests.test_forward import padded_batch

pytestmark = pytest.mark.usefixtures("one_thread")
BACKBONE_MODULES = {"qwen2.py", "modernbert.py", "llada2_moe.py"}


def test_the_bundled_models_cached_steps_run_through_qwen2s_forward(monkeypatch: pytest.MonkeyPatch) -> None:
    loaded = load_model(device="cpu")  # the bundled shifted decoder, cache_refresh in its defaults
    assert loaded.model.caches_context  # type: ignore[attr-defined]
    calls: list[tuple[bool, bool, bool]] = []  # (given a cache, writing into its slots, storing)
    forward = Qwen2Model.forward

    def spy(self: Qwen2Model, *args: Any, **kwargs: Any) -> Any:
        calls.append(
            (kwargs.get("past") is not None, kwargs.get("at") is not None, kwargs.get("store", False))
        )
        return forward(self, *args, **kwargs)

    monkeypatch.setattr(Qwen2Model, "forward", spy)
    config = DecodeConfig(strategy="blocks", steps=8, block_size=4, block_steps=4, cache_refresh=8)
    result = InfillEngine(loaded).fill(
        [FillRequest("def add(a, b):\n    return ", "\n", max_tokens=8)], config
    )
    assert result[0].forward_passes > 2  # type: ignore[attr-defined]
    refreshes = [c for c in calls if not c[0]]
    cached = [c for c in calls if c[0]]
    assert refreshes and all(c[2] for c in refreshes), "each refresh builds the cache in the forward pass"
    assert cached and all(c[1] for c in cached), "cached steps write the block into the cache's slots"


def test_attention_is_computed_in_the_backbone_modules_only() -> None:
    """The forward pass of a backbone exists once: no layer loop over attention weights elsewhere."""
    package = Path(infill.__file__).parent
    texts = {path.name: path.read_text(encoding="utf-8") for path in package.rglob("*.py")}
    projecting = {
        name
        for name, text in texts.items()
        if any(call in text for call in (".q_proj(", ".Wqkv(", ".query_key_value("))
    }
    assert projecting == BACKBONE_MODULES
    # The attention itself over the cached keys is one function every backbone calls (kv_cache.attend).
    assert {name for name, text in texts.items() if "scaled_dot_product_attention" in text} == {"kv_cache.py"}
    assert not (package / "models" / "context_cache.py").exists()


@pytest.mark.parametrize("release", ["dream-v0", "dream-coder-v0", "diffucoder", "llada"])
@pytest.mark.parametrize("left", [False, True])
def test_released_decoders_run_natively_with_transformers_logits(
    release_dirs: dict[str, Path], release: str, left: bool
) -> None:
    model_dir = release_dirs[release]
    loaded = load_model(model_dir, device="cpu")
    assert isinstance(loaded.model, DecoderAdapter) and loaded.model.caches_context
    assert type(loaded.model.model).__module__ == "infill.models.qwen2"
    family = family_named(loaded.family)
    config, cpu = json.loads((model_dir / "config.json").read_text()), torch.device("cpu")
    # Before load_model's stop-token merge, which edits the LM head.
    ours = DecoderAdapter(
        load_decoder_model(model_dir, family, config, cpu, torch.float32), shift=family.shift
    )
    reference = load_decoder(model_dir, family, config, cpu, torch.float32)
    assert type(reference).__module__.startswith("transformers.")
    theirs = DecoderAdapter(reference, shift=family.shift)
    ids, mask = padded_batch(reference.config.vocab_size, left)
    real = mask.bool()
    got, expected = ours.logits(ids, mask), theirs.logits(ids, mask)
    assert got.shape == expected.shape
    assert (got[real] - expected[real]).abs().max() <= 1e-4, release
