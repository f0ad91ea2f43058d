"""AR-initialised block diffusion (``--objective block-diffusion --from-ar``): the training layout computes
what the engine's block decoding loop computes, and the trained model fills through the engine."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
import torch
from transformers import Qwen2Config, Qwen2ForCausalLM

from infill.engine import InfillEngine
from infill.engine.block_decoding import block_prompt
from infill.engine.types import FillRequest
from infill.models import load_model
from infill.models.block_model import BlockDiffusionModel
from infill.regions import language_for_path
from tests.test_training_fixtures import SOURCES, make_repo
from tests.test_training_trainer import TINY
from training.block_decoder import aligned_block_batch, block_decoder_from_ar, framed_context
from training.config import TrainConfig
from training.corpus import SourceFile
from training.losses import DiffusionObjective
from training.objective import ExampleSource
from training.tokenizer import load_code_tokenizer
from training.trainer import train

BUNDLED = Path(__file__).resolve().parents[1] / "infill" / "default_model"
BLOCK = 4


@pytest.fixture(scope="module")
def source() -> ExampleSource:
    tokenizer = load_code_tokenizer(BUNDLED)
    files = [SourceFile(path, text, language_for_path(path)) for path, text in SOURCES.items()]
    return ExampleSource(files, tokenizer, seq_len=96, span_fraction=0.7)


def _block_decoder_dir(source: ExampleSource, out: Path) -> tuple[Qwen2ForCausalLM, BlockDiffusionModel]:
    """A random AR peer in the trainer's shape made a block decoder, saved, and loaded by the engine."""
    torch.manual_seed(0)
    tokenizer = source.tokenizer
    config = Qwen2Config(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=2,
        max_position_embeddings=128,
        tie_word_embeddings=True,
    )
    model = block_decoder_from_ar(Qwen2ForCausalLM(config), BLOCK).eval()
    model.save_pretrained(str(out), safe_serialization=True)
    tokenizer.save_pretrained(str(out))
    saved = json.loads((out / "config.json").read_text())
    (out / "config.json").write_text(json.dumps({**saved, "mask_token_id": tokenizer.mask_token_id}))
    loaded = load_model(out, device="cpu")
    assert isinstance(loaded.model, BlockDiffusionModel) and loaded.model.shift
    assert loaded.model.block_size == BLOCK and loaded.family == "infill-block-decoder"
    return model, loaded.model


def test_training_layout_scores_what_the_decoding_loop_computes(
    source: ExampleSource, tmp_path: Path
) -> None:
    """Every training target's logits (transformers' Qwen2, the batch's block mask) equal the engine's: the
    masked positions from a block pass against the exact prefix cache (shifted rows), each block's first
    token from the pass that appends the block before it. Fails when the training mask lets a block see a
    later block or its own clean copy, or when its blocks are not the engine's absolute ones."""
    model, engine_model = _block_decoder_dir(source, tmp_path / "bd")
    # The prompt is framed as the engine frames it (the family entry's layout), the prefix last.
    special = load_model(tmp_path / "bd", device="cpu").special
    prefix, suffix = source.tokenizer(["def f(x):\n    return ", "\n\nf(1)\n"], add_special_tokens=False)[
        "input_ids"
    ]
    framed = framed_context(source, prefix, suffix)
    assert framed == block_prompt(prefix, suffix, special) and framed[-len(prefix) :] == prefix
    batch = aligned_block_batch(source, 6, seed=0, step=3, block_size=BLOCK)
    with torch.no_grad():
        logits, targets, rows = DiffusionObjective(model, shift=True).predictions(batch)
    checked = firsts = 0
    for b in range(batch.input_ids.shape[0]):
        real = int(batch.attention_mask[b].sum())
        positions = batch.position_ids[b, :real]
        # The clean copy holds positions 0..n-1; the noisy copy starts again at its first block.
        n = int((positions != torch.arange(real)).nonzero()[0])
        segments = real
        clean = batch.input_ids[b, :n]
        noisy = batch.input_ids[b, n:segments]
        start = n - noisy.shape[0]
        assert start % BLOCK == 0 and torch.equal(batch.position_ids[b, n:segments], torch.arange(start, n))
        expected: list[torch.Tensor] = []
        for p in range(n):  # AR targets on the clean copy: a block's first token
            if batch.labels[b, p] != -100:
                assert p % BLOCK == 0
                tail, _ = engine_model.append_blocks(clean[None, :p], None)
                expected.append(tail)
                firsts += 1
        cache = engine_model.prefill(clean[None, :start])
        for lo in range(start, n, BLOCK):
            block = noisy[lo - start : lo - start + BLOCK][None]
            block_rows, _ = engine_model.block_logits(block, cache)
            for j in range(BLOCK):
                if batch.labels[b, n + lo - start + j] != -100:
                    assert j > 0 and block[0, j] == source.ids.mask
                    expected.append(block_rows[0, j - 1])  # shifted: the row before predicts position j
            cache = engine_model.prefill(clean[None, lo : lo + BLOCK], cache)
        mine = logits[rows == b]
        assert len(expected) == mine.shape[0]
        if expected:
            assert torch.allclose(torch.stack(expected), mine, atol=1e-4)
        checked += len(expected)
    assert checked > 20 and firsts > 0
    assert (batch.labels[batch.input_ids == source.ids.mask] != -100).all()
    assert targets.shape[0] == checked


def test_block_decoder_trains_from_the_ar_peer_and_fills_through_the_engine(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """--objective block-diffusion --from-ar: the peer's weights, trained further, written as a model dir
    the engine detects as a block model and decodes against its prefix cache (the next keystroke reuses
    it)."""
    from safetensors.torch import load_file

    repo = make_repo(tmp_path / "repo", SOURCES)
    common = {**TINY, "repo": str(repo), "save_every": 100, "eval_every": 100, "seq_len": 96}
    peer = tmp_path / "peer"
    train(
        TrainConfig(
            out=str(peer),
            objective="ar-fim",
            from_scratch=True,
            tokenizer=str(BUNDLED),
            max_steps=2,
            **common,
        )
    )
    out = tmp_path / "block"
    result = train(
        TrainConfig(
            out=str(out),
            objective="block-diffusion",
            from_ar=str(peer),
            block_size=BLOCK,
            max_steps=2,
            **common,
        )
    )
    assert result.steps == 2 and result.heldout_cross_entropy is not None and result.span_eval["rows"] > 0
    config = json.loads((out / "config.json").read_text())
    assert config["infill_family"] == "infill-block-decoder" and config["block_size"] == BLOCK
    assert "infill_format" not in config
    before, after = load_file(str(peer / "model.safetensors")), load_file(str(out / "model.safetensors"))
    name = "model.layers.0.mlp.up_proj.weight"
    assert 0 < (before[name] - after[name]).abs().max() < 0.1
    engine = InfillEngine.from_pretrained(out, device="cpu")
    assert isinstance(engine.loaded.model, BlockDiffusionModel) and engine.loaded.model.block_size == BLOCK
    prefix = "def area(width, height):\n    result = width * height\n    return "
    request = FillRequest(prefix, "\n\nprint(area(2, 3))\n", max_tokens=8)
    config_defaults = engine.default_config()
    assert (config_defaults.block_steps, config_defaults.threshold) == (0, 0.9)
    (cold,) = engine.fill([request], config_defaults)
    assert cold.forward_passes > 0 and len(engine.prefix_caches) == 1
    caplog.clear()
    with caplog.at_level(logging.DEBUG, logger="infill.engine.engine"):
        (warm,) = engine.fill([request], config_defaults)
    (line,) = [r.getMessage() for r in caplog.records if r.getMessage().startswith("block fill:")]
    assert int(line.split(", ")[1].split()[0]) > 0  # the prompt's blocks came from the cache
    assert [c.text for c in warm.candidates] == [c.text for c in cold.candidates]  # and it is exact
    assert warm.forward_passes <= cold.forward_passes


def test_block_objective_needs_a_start_and_room_for_its_blocks(tmp_path: Path) -> None:
    from infill.errors import TrainingError

    config = TrainConfig(out=str(tmp_path / "x"), repo=".", objective="block-diffusion")
    with pytest.raises(TrainingError, match="--from-scratch or --from-ar"):
        config.validate()
    config.from_ar, config.block_size = str(tmp_path / "peer"), 32  # no room for a middle and its copy
    with pytest.raises(TrainingError, match=r"--block-size must be between 1 and --seq-len / 12 \(21\)"):
        config.validate()
