"""Tokenizer round trip, span sampling, and the MDLM / span-infilling / FIM examples and losses."""

from __future__ import annotations

import random

import pytest
import torch
from transformers import ModernBertConfig, ModernBertForMaskedLM

from infill.regions import language_for_path
from tests.test_training_fixtures import SOURCES
from tests.tiny_models import CODE_SAMPLES
from training.corpus import SourceFile
from training.losses import diffusion_loss
from training.objective import ExampleSource, TokenIds
from training.spans import index_spans, sample_span
from training.tokenizer import train_code_tokenizer


@pytest.fixture(scope="module")
def tokenizer():
    return train_code_tokenizer(CODE_SAMPLES + list(SOURCES.values()), vocab_size=500)


@pytest.fixture(scope="module")
def files() -> list[SourceFile]:
    return [SourceFile(path, text, language_for_path(path)) for path, text in SOURCES.items()]


def test_tokenizer_round_trip_and_line_boundaries(tokenizer) -> None:
    texts = [*SOURCES.values(), "s = 'héllo wörld ✓'\n\tindented()\r\n", "  \n\n   x\n"]
    for text in texts:
        assert tokenizer.decode(tokenizer.encode(text, add_special_tokens=False)) == text
    # Newlines are isolated: whole lines tokenize the same alone as inside the file (line infilling).
    text = SOURCES["pkg/mod_alpha.py"]
    whole = tokenizer.encode(text, add_special_tokens=False)
    by_line = [
        i for line in text.splitlines(keepends=True) for i in tokenizer.encode(line, add_special_tokens=False)
    ]
    assert whole == by_line
    ids = TokenIds.from_tokenizer(tokenizer)
    assert len({ids.pad, ids.mask, ids.end_of_span, ids.end_of_text, ids.fim_prefix, ids.fim_middle}) == 6


def test_spans_follow_syntax_and_lines(files) -> None:
    text = files[0].text
    index = index_spans(text, "python")
    assert index.functions and index.nodes
    for span in index.nodes + index.functions:
        assert span.start == 0 or text[span.start - 1] == "\n"  # whole lines
        assert text[span.end - 1] == "\n"
    bodies = {text[s.start : s.end] for s in index.functions}
    assert "        self.count += step\n        return self.count\n" in bodies
    rng = random.Random(0)
    kinds = {sample_span(text, index, rng).kind for _ in range(300)}
    assert kinds == {"line", "lines", "node", "function", "random"}


def test_mask_rate_and_weights(tokenizer, files) -> None:
    source = ExampleSource(files, tokenizer, seq_len=96, span_fraction=0.0)
    mask_id = source.ids.mask
    errors = []
    for step in range(4):
        batch = source.diffusion_batch(32, seed=1, step=step)
        masked = batch.input_ids == mask_id
        # Loss exactly on the masked positions, weight 1/t there and 0 elsewhere.
        assert torch.equal(batch.labels != -100, masked)
        assert torch.all(batch.weights[~masked] == 0)
        t = 1.0 / batch.weights[masked.any(1)].max(1).values  # every row has >= 1 masked position
        assert torch.all((t > 0) & (t <= 1))
        row_weights = batch.weights.max(1).values
        assert torch.allclose(batch.weights[masked], row_weights.unsqueeze(1).expand_as(masked)[masked])
        fraction = masked.float().sum(1) / batch.attention_mask.sum(1)
        errors.extend((fraction - t).abs().tolist())
    assert sum(errors) / len(errors) < 0.06  # binomial noise at T=96 is ~0.04


def test_span_examples_have_visible_context_and_end_of_span_tail(tokenizer, files) -> None:
    source = ExampleSource(files, tokenizer, seq_len=128, span_fraction=1.0)
    eos = source.ids.end_of_span
    rng = random.Random(3)
    with_tail = 0
    for _ in range(60):
        ids, maskable = source.diffusion_example(rng)
        assert len(ids) <= 128
        canvas = [i for i, m in enumerate(maskable) if m]
        assert canvas == list(range(canvas[0], canvas[-1] + 1))  # one contiguous canvas
        canvas_ids = [ids[i] for i in canvas]
        if eos in canvas_ids:
            first = canvas_ids.index(eos)
            assert all(i == eos for i in canvas_ids[first:])  # the tail is end-of-span only
            with_tail += 1
        assert eos not in [ids[i] for i, m in enumerate(maskable) if not m]
    assert with_tail > 30
    batch = source.diffusion_batch(16, seed=0, step=0)
    masked = batch.input_ids == source.ids.mask
    assert batch.maskable < int(batch.attention_mask.sum())  # prefix/suffix never maskable
    assert torch.equal(batch.labels != -100, masked)


def test_diffusion_loss_is_weighted_ce_on_masked_positions(tokenizer, files) -> None:
    torch.manual_seed(0)
    config = ModernBertConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=1,
        num_attention_heads=2,
        max_position_embeddings=128,
        pad_token_id=tokenizer.pad_token_id,
        global_attn_every_n_layers=1,
        local_attention=128,
        reference_compile=False,
    )
    source = ExampleSource(files, tokenizer, seq_len=64, span_fraction=0.5)
    batch = source.diffusion_batch(4, seed=0, step=0)
    for sparse in (False, True):
        config.sparse_prediction = sparse
        model = ModernBertForMaskedLM(config).eval()
        torch.manual_seed(1)
        model.load_state_dict(ModernBertForMaskedLM(config).state_dict())
        loss = diffusion_loss(model, batch)
        logits = model(input_ids=batch.input_ids, attention_mask=batch.attention_mask).logits  # (B, T, V)
        ce = torch.nn.functional.cross_entropy(
            logits.transpose(1, 2), batch.labels.clamp(min=0), reduction="none"
        )
        expected = (ce * batch.weights).sum() / batch.maskable
        assert torch.allclose(loss, expected, atol=1e-4)


def test_fim_examples_are_psm(tokenizer, files) -> None:
    source = ExampleSource(files, tokenizer, seq_len=128, span_fraction=1.0)
    ids = source.ids
    batch = source.ar_batch(8, seed=0, step=0)
    for row, attention in zip(batch.input_ids.tolist(), batch.attention_mask.tolist(), strict=True):
        row = row[: sum(attention)]
        assert row[0] == ids.fim_prefix
        assert row.index(ids.fim_prefix) < row.index(ids.fim_suffix) < row.index(ids.fim_middle)
    assert torch.equal(batch.labels == -100, batch.attention_mask == 0)
    # The AR peer sees the same spans as the diffusion model at the same step (same data).
    rng_a, rng_b = random.Random(5), random.Random(5)
    assert source.sample_gap(rng_a)[1] == source.sample_gap(rng_b)[1]


def test_gap_batches_mask_exactly_the_answer_in_its_context(tokenizer, files) -> None:
    """The report's names_* cross-entropy scores these: the answer and one end-of-span, masked in place."""
    source = ExampleSource(files, tokenizer, seq_len=64, span_fraction=1.0)
    ids = source.ids
    prefix, middle = "def area(width, height):\n    return ", "width * height"
    suffix = "\n\nprint(area(2, 3))\n"
    long_prefix = "x = 1\n" * 200  # far more context than the window: the nearest tokens are kept
    batches = source.gap_batches([(prefix, middle, suffix), (long_prefix, middle, suffix)] * 3, batch_size=4)
    assert [b.input_ids.shape for b in batches] == [(4, 64), (2, 64)]
    encode = lambda text: tokenizer(text, add_special_tokens=False)["input_ids"]  # noqa: E731
    answer = [*encode(middle), ids.end_of_span]
    first = batches[0]
    row = first.input_ids[0][first.attention_mask[0].bool()].tolist()
    start = len(encode(prefix))
    assert row == encode(prefix) + [ids.mask] * len(answer) + encode(suffix)
    assert first.labels[0][first.labels[0] != -100].tolist() == answer
    assert first.row_maskable.tolist() == [len(answer)] * 4 and first.weights.sum() == 4 * len(answer)
    assert (first.labels[0, start : start + len(answer)] == torch.tensor(answer)).all()
    clipped = first.input_ids[1][first.attention_mask[1].bool()].tolist()
    assert len(clipped) == 64 and clipped[-len(encode(suffix)) :] == encode(suffix)
    assert first.labels[1][first.labels[1] != -100].tolist() == answer
