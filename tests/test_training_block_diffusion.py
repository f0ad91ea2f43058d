"""Block diffusion (BD3-LM): the attention layout, its batches, a few training steps and its decoder."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
import torch

from infill.regions import language_for_path
from tests.test_training_fixtures import SOURCES, make_repo
from tests.tiny_models import CODE_SAMPLES
from training.block_diffusion import CLEAN, CONTEXT, NOISY, PAD, block_attention, block_batch, block_example
from training.config import TrainConfig
from training.corpus import SourceFile
from training.objective import ExampleSource
from training.tokenizer import train_code_tokenizer


@pytest.fixture(scope="module")
def source() -> ExampleSource:
    tokenizer = train_code_tokenizer(CODE_SAMPLES + list(SOURCES.values()), vocab_size=400)
    files = [SourceFile(path, text, language_for_path(path)) for path, text in SOURCES.items()]
    return ExampleSource(files, tokenizer, seq_len=128, span_fraction=0.7)


def test_noisy_blocks_see_context_earlier_clean_blocks_and_themselves() -> None:
    # context of 2, two blocks of 2: clean c0 c0 c1 c1, noisy n0 n0 n1 n1, one padding position.
    segment = torch.tensor([[CONTEXT] * 2 + [CLEAN] * 4 + [NOISY] * 4 + [PAD]])
    block = torch.tensor([[-1, -1, 0, 0, 1, 1, 0, 0, 1, 1, -1]])
    allowed = block_attention(segment, block)[0, 0]
    may = {q: {k for k in range(11) if allowed[q, k]} for q in range(11)}
    assert may[0] == {0, 1}  # context: itself only
    assert may[2] == {0, 1, 2, 3}  # clean block 0: context + itself
    assert may[4] == {0, 1, 2, 3, 4, 5}  # clean block 1: context + clean blocks 0..1
    assert may[6] == {0, 1, 6, 7}  # noisy block 0: context + itself (no clean copy of itself)
    assert may[8] == {0, 1, 2, 3, 8, 9}  # noisy block 1: context + clean block 0 + itself
    assert may[10] == {10}  # padding: itself, and no one attends to it
    assert all(not allowed[q, 10] for q in range(10))


def test_block_batches_mask_only_noisy_copies(source: ExampleSource) -> None:
    batch = block_batch(source, 8, seed=0, step=0, block_size=4)
    masked = batch.input_ids == source.ids.mask
    assert torch.equal(batch.labels != -100, masked)
    assert batch.attention_4d is not None and batch.position_ids is not None
    assert batch.attention_4d.shape == (8, 1, 128, 128)
    rng = random.Random(1)
    spans = 0
    for _ in range(40):
        context, middle = block_example(source, rng, 4)
        assert len(middle) % 4 == 0 and len(context) + 2 * len(middle) <= 128
        if context and context[0] == source.ids.fim_prefix:
            spans += 1
            assert context[-1] == source.ids.fim_middle
    assert spans > 10
    # Clean and noisy copies of a middle position share its position id.
    row = batch.position_ids[0].tolist()
    n = int(batch.attention_mask[0].sum())
    assert sorted(row[:n]) != list(range(n))


def test_trained_block_model_decodes_block_by_block(tmp_path: Path) -> None:
    from training.block_diffusion import BlockDiffusionGenerator
    from training.eval.generation import load_generator, model_family
    from training.trainer import train

    repo = make_repo(tmp_path / "repo", SOURCES)
    out = tmp_path / "block"
    config = TrainConfig(
        repo=str(repo),
        out=str(out),
        objective="block-diffusion",
        from_scratch=True,
        block_size=4,
        vocab_size=320,
        hidden_size=32,
        num_layers=1,
        num_heads=2,
        intermediate_size=64,
        max_positions=128,
        seq_len=128,
        batch_size=2,
        max_steps=3,
        eval_batches=1,
        eval_spans=2,
        heldout_fraction=0.25,
        save_every=100,
        eval_every=100,
        threads=1,
    )
    result = train(config)
    assert (
        result.steps == 3
        and result.heldout_cross_entropy is not None
        and "edit_similarity" in result.span_eval
    )
    assert model_family(out) == "block-diffusion"
    generate = load_generator(out, mode="span", max_tokens=12)
    assert isinstance(generate, BlockDiffusionGenerator)
    (text,) = generate([("def add(a, b):\n    return ", "\n")])
    assert isinstance(text, str)
    # Never more than the budget's blocks, one forward pass at least per block decoded.
    assert 0 < generate.stats.forward_passes <= 12 and generate.stats.generated_tokens <= 12
    # A noisy block's logits do not depend on anything after it (the layout is causal over blocks).
    model = generate.model
    ids = source_ids = torch.randint(10, 300, (1, 2 + 4 + 4))
    segment = torch.tensor([[CONTEXT] * 2 + [CLEAN] * 4 + [NOISY] * 4])
    block = torch.tensor([[-1, -1, 0, 0, 1, 1, 0, 0, 1, 1]])
    mask = block_attention(segment, block)
    positions = torch.tensor([[0, 1, 2, 3, 4, 5, 2, 3, 4, 5]])
    changed = ids.clone()
    changed[0, 4:6] = (changed[0, 4:6] + 1) % 300  # clean block 1 differs
    with torch.no_grad():
        a, b = (
            model.model(
                input_ids=x,
                attention_mask={"full_attention": mask, "sliding_attention": mask},
                position_ids=positions,
            )[0]
            for x in (source_ids, changed)
        )
    assert torch.allclose(a[0, 6:8], b[0, 6:8])  # noisy block 0 is blind to clean block 1
    assert not torch.allclose(a[0, 4:6], b[0, 4:6])  # the changed positions themselves do change
