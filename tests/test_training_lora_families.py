"""LoRA fine-tuning (`infill train --base DIR --lora`) of release-shaped Dream and LLaDA checkpoints on the
CPU: the tuned model is saved in the checkpoint's own layout, loads as the same family and fills as before."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from infill.models import load_model
from infill.models.weights import read_safetensors
from tests.test_training_fixtures import SOURCES, make_repo
from training.config import TrainConfig
from training.corpus import SourceFile
from training.model_factory import load_base_model
from training.objective import ExampleSource
from training.trainer import train

TINY_RUN = {
    "seq_len": 64,
    "batch_size": 2,
    "eval_batches": 1,
    "eval_spans": 2,
    "heldout_fraction": 0.25,
    "threads": 1,
    "max_positions": 128,
    "lora_rank": 4,
    "lr": 5e-2,  # a couple of steps must visibly move the merged weights
    "warmup_steps": 1,
}


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_repo(tmp_path_factory.mktemp("lora") / "repo", SOURCES)


@pytest.mark.parametrize("release", ["dream-coder-v0", "llada"])
def test_training_frames_examples_as_the_engine_frames_canvases(
    release: str, release_dirs: dict[str, Path]
) -> None:
    model, tokenizer = load_base_model(release_dirs[release])
    loaded = load_model(release_dirs[release], device="cpu")
    files = [SourceFile(path=p, text=t, language="python") for p, t in SOURCES.items() if p.endswith(".py")]
    ids = ExampleSource(files, tokenizer, seq_len=64).ids
    assert ids.mask == loaded.special.mask_id
    assert ids.end_of_span == loaded.special.end_of_span_id
    assert ids.prefix_ids == loaded.special.prefix_ids  # Dream: <|beginoftext|> first, as on the canvas
    # The training forward is the inference forward: same per-position distributions where labels point.
    text_ids = torch.tensor([[*loaded.special.prefix_ids, *loaded.tokenizer.encode("def add(a, b):\n")]])
    mask = torch.ones_like(text_ids)
    labels = torch.full_like(text_ids, -100)
    labels[0, 2:5] = text_ids[0, 2:5]
    with torch.no_grad():
        trained_view = model(input_ids=text_ids, attention_mask=mask, labels=labels).logits  # (3, V)
    inference_view = loaded.model.logits(text_ids, mask)[0, 2:5]
    keep = [i for i in range(inference_view.shape[-1]) if i != loaded.special.end_of_span_id]  # stops merged
    assert torch.allclose(trained_view[:, keep], inference_view[:, keep], atol=1e-5)


@pytest.mark.parametrize("release", ["dream-coder-v0", "llada"])
def test_lora_fine_tune_keeps_the_release_layout_and_family(
    release: str, release_dirs: dict[str, Path], repo: Path, tmp_path: Path
) -> None:
    base = release_dirs[release]
    out = tmp_path / "tuned"
    config = TrainConfig(
        repo=str(repo),
        out=str(out),
        base=str(base),
        lora=True,
        max_steps=2,
        save_every=2,
        eval_every=100,
        **TINY_RUN,
    )
    result = train(config)
    assert result.steps == 2 and result.heldout_cross_entropy is not None
    assert set(result.base_eval) == set(result.span_eval) == {"exact_match", "edit_similarity", "rows"}
    assert not list(out.glob("adapter_*"))  # LoRA merged into plain weights

    before, after = read_safetensors(base), read_safetensors(out)
    assert set(after) == set(before)  # the release's own tensor names (LLaDA: model.transformer.*)
    changed = {name for name in before if not torch.equal(before[name], after[name])}
    assert changed and all(("proj" in name or "attn_out" in name or "ff_out" in name) for name in changed)
    embedding = "model.transformer.wte.weight" if release == "llada" else "model.embed_tokens.weight"
    assert embedding not in changed  # only the LoRA targets moved

    tuned = load_model(out, device="cpu")
    assert tuned.family == load_model(base, device="cpu").family
    ids = torch.tensor([[*tuned.special.prefix_ids, *tuned.tokenizer.encode("def add(a, b):\n")]])
    assert torch.isfinite(tuned.model.logits(ids, torch.ones_like(ids))).all()
