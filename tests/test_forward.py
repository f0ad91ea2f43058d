"""The forward pass the engine calls (infill/models/adapters.py) on real tiny models of every kind: logits at
chosen positions equal transformers' own full forward pass at those positions, with left and right padding,
batch > 1, and the shifted (Dream) and unshifted (LLaDA-style) decoder layouts."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM

from infill.models import LoadedModel, load_model
from infill.models.adapters import DecoderAdapter, MaskedLMAdapter, predecessor_index
from infill.models.base import DenoisingModel
from infill.models.decoders import make_bidirectional

pytestmark = pytest.mark.usefixtures("one_thread")


def llama_adapter(vocab: int = 300, seed: int = 0) -> DecoderAdapter:
    """A tiny LLaMA run bidirectionally and unshifted, as the loader runs LLaDA (decoders.py)."""
    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=vocab,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=256,
    )
    config.is_causal = False
    model = LlamaForCausalLM(config).eval()
    make_bidirectional(model)
    return DecoderAdapter(model, shift=False)


@pytest.fixture(scope="module")
def adapters(modernbert_dir: Path, roberta_dir: Path, dream_dir: Path) -> dict[str, DenoisingModel]:
    loaded: dict[str, LoadedModel] = {
        name: load_model(path, device="cpu")
        for name, path in (("modernbert", modernbert_dir), ("roberta", roberta_dir), ("dream", dream_dir))
    }
    return {**{name: item.model for name, item in loaded.items()}, "llama": llama_adapter()}


def padded_batch(vocab: int, left: bool, low: int = 5) -> tuple[torch.Tensor, torch.Tensor]:
    """Two rows of random ids (19 and 13 real tokens), padded on the left or the right."""
    generator = torch.Generator().manual_seed(3)
    ids = torch.randint(low, vocab, (2, 19), generator=generator)
    mask = torch.ones_like(ids)
    if left:
        mask[1, :6] = 0
    else:
        mask[1, 13:] = 0
    return ids, mask


def reference_logits(adapter: DenoisingModel, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """(B, T, V) from the transformers module's own forward pass, realigned as the adapter promises."""
    model = adapter.model  # type: ignore[attr-defined]
    with torch.inference_mode():
        if isinstance(adapter, MaskedLMAdapter):
            return model(input_ids=ids, attention_mask=mask).logits.float()
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        raw = model(
            input_ids=ids, attention_mask=mask, position_ids=positions, use_cache=False
        ).logits.float()
    assert isinstance(adapter, DecoderAdapter)
    if not adapter.shift:
        return raw
    source = predecessor_index(mask)
    return torch.gather(raw, 1, source[..., None].expand_as(raw))


@pytest.mark.parametrize("kind", ["modernbert", "roberta", "dream", "llama"])
@pytest.mark.parametrize("left", [False, True])
def test_logits_at_positions_match_the_full_forward_pass(
    adapters: dict[str, DenoisingModel], kind: str, left: bool
) -> None:
    adapter = adapters[kind]
    vocab = adapter.model.config.vocab_size  # type: ignore[attr-defined]
    ids, mask = padded_batch(vocab, left)
    positions = torch.tensor([[2, 3, 4, 11, 12], [7, 8, 9, 10, 11]])
    got = adapter.logits(ids, mask, positions)
    assert got.shape == (2, 5, vocab) and got.dtype == torch.float32
    full = reference_logits(adapter, ids, mask)
    expected = full.gather(1, positions[..., None].expand(-1, -1, vocab))
    assert torch.allclose(got, expected, atol=1e-5), (got - expected).abs().max()
    # positions=None is every position (tests and tools): the same (B, T, V) as the module's own pass.
    assert torch.allclose(adapter.logits(ids, mask), full, atol=1e-5)


class CountingHead(torch.nn.Module):
    """Wraps an LM head's last linear layer and remembers how many rows it was given."""

    def __init__(self, inner: torch.nn.Module) -> None:
        super().__init__()
        self.inner = inner
        self.rows: list[int] = []

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        self.rows.append(hidden.shape[0] * hidden.shape[1])
        return self.inner(hidden)


@pytest.mark.parametrize("kind", ["modernbert", "roberta", "dream", "llama"])
def test_the_lm_head_runs_on_the_asked_positions_only(
    kind: str, modernbert_dir: Path, roberta_dir: Path, dream_dir: Path
) -> None:
    directories = {"modernbert": modernbert_dir, "roberta": roberta_dir, "dream": dream_dir}
    adapter = llama_adapter() if kind == "llama" else load_model(directories[kind], device="cpu").model
    model = adapter.model  # type: ignore[attr-defined]
    if kind == "modernbert":
        model.decoder = counting = CountingHead(model.decoder)
    elif kind == "roberta":
        model.lm_head.decoder = counting = CountingHead(model.lm_head.decoder)
    else:
        model.lm_head = counting = CountingHead(model.lm_head)
    if isinstance(adapter, MaskedLMAdapter):
        adapter = MaskedLMAdapter(model)  # picks up the wrapped head
    ids, mask = padded_batch(model.config.vocab_size, left=False)
    adapter.logits(ids, mask, torch.tensor([[4, 5, 6], [1, 2, 3]]))
    assert counting.rows == [6]  # 2 rows x 3 positions, not 2 x 19
