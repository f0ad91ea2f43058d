"""`infill train --length-states`: the written model has <|expand|> and decides its length by expand/delete.

Tiny few-step runs (tests/test_training_trainer.py's sizes) on a real temporary git repository; the decoding
is the engine's (infill/engine/expand_delete.py), reached through the family data, not a name.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from transformers import Qwen2Config, Qwen2ForCausalLM

from infill.engine import InfillEngine
from infill.engine.types import DecodeConfig, FillRequest
from infill.errors import TrainingError
from infill.models import load_model
from infill.models.families import EXPAND_TOKEN
from tests.test_cli import run_infill
from tests.test_training_fixtures import SOURCES, make_repo
from tests.test_training_trainer import TINY, _cli
from tests.tiny_models import push_bias
from training.config import TrainConfig
from training.expand_token import ensure_expand_token
from training.model_factory import load_tokenizer_from
from training.tokenizer import train_code_tokenizer
from training.trainer import train


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_repo(tmp_path_factory.mktemp("length") / "repo", SOURCES)


@pytest.fixture(scope="module")
def plain_model(repo: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A model trained without length states (no <|expand|>): the base the others continue."""
    out = tmp_path_factory.mktemp("runs") / "plain"
    train(TrainConfig(repo=str(repo), out=str(out), from_scratch=True, max_steps=2, save_every=100, **TINY))
    return out


@pytest.fixture(scope="module")
def length_model(plain_model: Path, repo: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The plain model continued for a few steps with length states and edit noise, through the CLI."""
    out = tmp_path_factory.mktemp("runs") / "length"
    argv = ["train", "--repo", str(repo), "--base", str(plain_model), "--out", str(out), "--length-states"]
    argv += ["--edit-noise", "0.1", "--max-steps", "3", "--seq-len", "64", "--batch-size", "2"]
    argv += ["--eval-spans", "1", "--heldout-fraction", "0.25", "--no-compare-base", "--threads", "1"]
    assert _cli(argv) == 0
    return out


def _vocab(model_dir: Path) -> int:
    return json.loads((model_dir / "config.json").read_text())["vocab_size"]


def test_the_written_model_has_the_expand_token_and_decides_its_length(
    length_model: Path, plain_model: Path
) -> None:
    tokenizer = load_tokenizer_from(length_model)
    expand_id = tokenizer.convert_tokens_to_ids(EXPAND_TOKEN)
    assert EXPAND_TOKEN not in load_tokenizer_from(plain_model).get_vocab()
    assert expand_id == len(tokenizer) - 1 and _vocab(length_model) == _vocab(plain_model) + 1
    assert json.loads((length_model / "training_config.json").read_text())["length_states"] is True
    card = (length_model / "README.md").read_text()
    assert "diffusion, with DreamOn's length states (expand/delete), with edit noise 0.1" in card
    generation = json.loads((length_model / "generation_config.json").read_text())
    assert generation["infill"]["strategy"] == "entropy" and generation["min_gen_len"] >= 1
    loaded = load_model(length_model, device="cpu")
    assert loaded.expand_delete is not None and loaded.expand_delete.expand_id == expand_id
    assert loaded.expand_delete.delete_id == loaded.special.end_of_span_id
    assert expand_id not in loaded.special.banned_ids  # committable, as for DreamOn
    # A model without the token is unchanged: infill decides its length on a growing canvas.
    plain = load_model(plain_model, device="cpu")
    assert plain.expand_delete is None and plain.generation_defaults.get("canvas_share") == 0.33


def test_doctor_says_which_model_decides_its_length(length_model: Path, plain_model: Path, tmp_path) -> None:
    lines = {}
    for name, model_dir in (("length", length_model), ("plain", plain_model)):
        result = run_infill("doctor", "--model", str(model_dir), cwd=tmp_path)
        assert result.returncode == 0, result.stderr
        rows = dict(line.split(":", 1) for line in result.stdout.splitlines() if ":" in line)
        lines[name] = rows["fill length"].strip()
    assert lines["length"].startswith("decided by the model: expand/delete decoding from 4 masks"), lines
    assert f"'{EXPAND_TOKEN}' adds a mask" in lines["length"]
    assert lines["plain"].startswith("grown:"), lines


def test_a_head_biased_towards_expand_grows_the_fill_past_its_first_masks(
    length_model: Path, tmp_path: Path
) -> None:
    """Expand is the favourite until the middle reaches its budget (then it is blocked), "x" after it: the
    fill is as long as the budget although decoding started from 4 masks."""
    model_dir = tmp_path / "biased"
    shutil.copytree(length_model, model_dir)
    tokenizer = load_tokenizer_from(model_dir)
    (x_id,) = tokenizer.encode("x", add_special_tokens=False)
    expand_id = tokenizer.convert_tokens_to_ids(EXPAND_TOKEN)
    push_bias(model_dir, "decoder.bias", {expand_id: 40.0, x_id: 30.0})
    loaded = load_model(model_dir, device="cpu")
    assert loaded.expand_delete is not None and loaded.expand_delete.settings.min_gen_len == 4
    request = FillRequest("def add(a, b):\n    return ", "\n", max_tokens=9)
    (result,) = InfillEngine(loaded).fill([request], DecodeConfig(**loaded.generation_defaults))
    assert result.best is not None and result.best.text == "x" * 9
    assert result.forward_passes >= 9 + 5  # 5 expansions and 9 commits, one per pass


def test_the_expand_row_is_added_to_a_tied_decoder_at_the_mean() -> None:
    config = Qwen2Config(
        vocab_size=8,
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=2,
        intermediate_size=32,
        tie_word_embeddings=True,
    )
    model = Qwen2ForCausalLM(config)
    tokenizer = train_code_tokenizer(["def f(x):\n    return x\n"] * 4, vocab_size=300)
    model.resize_token_embeddings(len(tokenizer))
    before = model.get_input_embeddings().weight.detach().clone()
    assert ensure_expand_token(model, tokenizer)
    weights = model.get_input_embeddings().weight
    expand_id = tokenizer.convert_tokens_to_ids(EXPAND_TOKEN)
    assert weights.shape[0] == before.shape[0] + 1 == expand_id + 1
    assert torch.equal(weights[:-1], before) and torch.allclose(weights[expand_id], before.mean(0))
    assert model.get_output_embeddings().weight.data_ptr() == weights.data_ptr()  # still tied
    assert not ensure_expand_token(model, tokenizer)  # present: nothing changes


def test_length_states_are_refused_where_they_cannot_train(repo: Path, tmp_path: Path) -> None:
    with pytest.raises(TrainingError, match="--length-states"):
        _cli(
            [
                "train",
                "--repo",
                str(repo),
                "--out",
                str(tmp_path / "o"),
                "--from-scratch",
                "--objective",
                "ar-fim",
                "--length-states",
            ]
        )
    with pytest.raises(TrainingError, match="--length-states"):
        _cli(["train", "--repo", str(repo), "--out", str(tmp_path / "o"), "--lora", "--length-states"])


def test_a_shifted_decoder_continued_with_length_states_decodes_with_expand_delete(
    plain_model: Path, repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The bundled model's family (AR-initialised shifted decoder), continued as the bundle is: the tied
    embedding grows by one row, config.json says so, and the family decodes it with expand/delete."""
    common = {**TINY, "repo": str(repo), "save_every": 100, "eval_every": 100, "eval_spans": 1}
    peer, shifted, tuned = tmp_path / "peer", tmp_path / "shifted", tmp_path / "tuned"
    train(
        TrainConfig(
            out=str(peer),
            objective="ar-fim",
            from_scratch=True,
            tokenizer=str(plain_model),
            max_steps=1,
            **common,
        )
    )
    train(TrainConfig(out=str(shifted), from_ar=str(peer), max_steps=1, **common))
    assert load_model(shifted, device="cpu").expand_delete is None
    train(TrainConfig(out=str(tuned), base=str(shifted), length_states=True, max_steps=2, **common))
    assert _vocab(tuned) == _vocab(shifted) + 1
    loaded = load_model(tuned, device="cpu")
    assert loaded.family == "infill-shifted-decoder" and loaded.expand_delete is not None
    import infill.engine.engine as engine_module

    calls = []
    real = engine_module.fill_expand_delete
    monkeypatch.setattr(
        engine_module, "fill_expand_delete", lambda *args, **kw: calls.append(1) or real(*args, **kw)
    )
    request = FillRequest("def add(a, b):\n    return ", "\n", max_tokens=6)
    (result,) = InfillEngine(loaded).fill([request], DecodeConfig(**loaded.generation_defaults))
    assert calls == [1] and result.forward_passes >= 1
