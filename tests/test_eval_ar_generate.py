"""Greedy PSM decoding of the autoregressive peer on tiny Qwen2 causal LMs with the project tokenizer."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from transformers import PreTrainedTokenizerFast, Qwen2Config, Qwen2ForCausalLM

from infill.errors import ContextTooLong, ModelLoadError
from tests.tiny_models import CODE_SAMPLES
from training.ar_generate import ARGenerator, trim_to_budget
from training.eval.generation import load_generator, model_family
from training.tokenizer import (
    END_OF_TEXT_TOKEN,
    FIM_MIDDLE_TOKEN,
    FIM_PREFIX_TOKEN,
    FIM_SUFFIX_TOKEN,
    train_code_tokenizer,
)

PREFIX = "def add(a, b):\n"
SUFFIX = "\nprint(add(1, 2))\n"
MIDDLE = "    return a + b\n    pass\n"


def _psm_model(tokenizer: PreTrainedTokenizerFast, window: int = 256) -> Qwen2ForCausalLM:
    config = Qwen2Config(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=1,
        max_position_embeddings=window,
        tie_word_embeddings=False,
        pad_token_id=tokenizer.pad_token_id,
    )
    return Qwen2ForCausalLM(config)


def _save_psm(model: Qwen2ForCausalLM, tokenizer: PreTrainedTokenizerFast, out: Path) -> Path:
    model.save_pretrained(str(out), safe_serialization=True)
    tokenizer.save_pretrained(str(out))
    config = json.loads((out / "config.json").read_text())
    config["infill_format"] = "psm"
    (out / "config.json").write_text(json.dumps(config))
    return out


@pytest.fixture(scope="module")
def random_psm_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(0)
    tokenizer = train_code_tokenizer(CODE_SAMPLES, vocab_size=400)
    return _save_psm(_psm_model(tokenizer, window=128), tokenizer, tmp_path_factory.mktemp("psm_random"))


@pytest.fixture(scope="module")
def trained_psm_dir(tmp_path_factory: pytest.TempPathFactory, one_thread: None) -> Path:
    """A tiny peer overfitted on one PSM example, so it must emit MIDDLE then <|endoftext|>."""
    torch.manual_seed(0)
    tokenizer = train_code_tokenizer(CODE_SAMPLES, vocab_size=400)
    vocab = tokenizer.get_vocab()

    def encode(text: str) -> list[int]:
        return tokenizer.encode(text, add_special_tokens=False)

    ids = [vocab[FIM_PREFIX_TOKEN], *encode(PREFIX), vocab[FIM_SUFFIX_TOKEN], *encode(SUFFIX)]
    ids += [vocab[FIM_MIDDLE_TOKEN], *encode(MIDDLE), vocab[END_OF_TEXT_TOKEN]]
    sequence = torch.tensor([ids])
    model = _psm_model(tokenizer)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-2)
    for _ in range(400):
        loss = model(input_ids=sequence, labels=sequence).loss
        if loss.item() < 1e-3:
            break
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return _save_psm(model.eval(), tokenizer, tmp_path_factory.mktemp("psm_trained"))


def _reference_greedy(generator: ARGenerator, prefix: str, suffix: str) -> str:
    """Greedy decoding without cache, batch or padding: what the batched KV-cache loop must reproduce."""
    ids = torch.tensor([generator._prompt(prefix, suffix)])
    out: list[int] = []
    for _ in range(generator.max_tokens):
        token = int(generator.model(input_ids=ids).logits[0, -1].argmax())
        if token == generator.special.end_id:
            break
        out.append(token)
        ids = torch.cat([ids, torch.tensor([[token]])], dim=1)
    return generator.tokenizer.decode(out, skip_special_tokens=True)


def test_random_model_returns_strings_and_stops_at_max_tokens(random_psm_dir: Path, one_thread: None) -> None:
    generator = ARGenerator(random_psm_dir, max_tokens=6, batch_size=2)
    rows = [(PREFIX, SUFFIX), ("x" * 400, "y" * 400), ("import os\n", "")]
    completions = generator(rows)
    assert len(completions) == 3 and all(isinstance(c, str) for c in completions)
    # A row costs one pass per token, plus one when it ends at <|endoftext|> before the budget.
    stats = generator.stats
    assert stats.rows == 3 and stats.generated_tokens <= 3 * 6
    assert stats.generated_tokens <= stats.forward_passes <= stats.generated_tokens + 3
    # Left padding, batching and the KV cache do not change greedy output (row 2 is trimmed to the window).
    assert completions == [_reference_greedy(generator, p, s) for p, s in rows]


def test_trained_peer_stops_at_end_of_text_and_line_mode_at_newline(trained_psm_dir: Path) -> None:
    span = ARGenerator(trained_psm_dir, mode="span", max_tokens=30)
    assert span([(PREFIX, SUFFIX)]) == [MIDDLE]
    tokens = span.stats.generated_tokens
    assert tokens == len(span.tokenizer.encode(MIDDLE, add_special_tokens=False))
    assert span.stats.forward_passes == tokens + 1  # the prompt pass, then one per token (the last gives EOS)

    line = ARGenerator(trained_psm_dir, mode="line", max_tokens=30)
    assert line([(PREFIX, SUFFIX)]) == ["    return a + b\n"]
    assert line.stats.generated_tokens < tokens

    short = ARGenerator(trained_psm_dir, mode="span", max_tokens=2)
    (text,) = short([(PREFIX, SUFFIX)])
    assert short.stats.generated_tokens == 2 and MIDDLE.startswith(text) and len(text) < len(MIDDLE)


def test_model_family_picks_the_ar_generator(trained_psm_dir: Path, modernbert_dir: Path) -> None:
    assert model_family(trained_psm_dir) == "psm"
    generator = load_generator(trained_psm_dir, mode="block", max_tokens=30)
    assert isinstance(generator, ARGenerator) and generator([(PREFIX, SUFFIX)]) == [MIDDLE]
    with pytest.raises(ModelLoadError, match="not a PSM causal LM"):
        ARGenerator(modernbert_dir)


def test_trim_keeps_the_end_of_the_prefix_and_the_start_of_the_suffix(random_psm_dir: Path) -> None:
    prefix, suffix = list(range(100)), list(range(1000, 1100))
    kept_prefix, kept_suffix = trim_to_budget(prefix, suffix, 40)
    assert kept_prefix == prefix[-30:] and kept_suffix == suffix[:10]
    assert trim_to_budget(prefix[:5], suffix, 40) == (prefix[:5], suffix[:35])
    assert trim_to_budget(prefix, suffix[:3], 40) == (prefix[-37:], suffix[:3])
    assert trim_to_budget(prefix[:5], suffix[:5], 40) == (prefix[:5], suffix[:5])
    with pytest.raises(ContextTooLong):
        ARGenerator(random_psm_dir, max_tokens=126)([(PREFIX, SUFFIX)])
