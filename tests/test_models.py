"""infill.models: loading every tiny model kind, special ids, adapters and every refusal."""

from __future__ import annotations

from pathlib import Path

import torch

from infill.models import LoadedModel, load_model


def _logits(loaded: LoadedModel, text: str) -> torch.Tensor:
    ids = torch.tensor([loaded.tokenizer.encode(text)], device=loaded.device)
    return loaded.model.logits(ids, torch.ones_like(ids))


def test_modernbert_loads_and_gives_per_position_logits(modernbert_dir: Path) -> None:
    loaded = load_model(modernbert_dir, device="cpu")
    logits = _logits(loaded, "def add(a, b):\n    return a + b\n")
    assert loaded.kind == "masked_lm"
    assert logits.shape[0] == 1 and logits.shape[2] == loaded.tokenizer.vocab_size
    assert logits.dtype == torch.float32 and torch.isfinite(logits).all()
