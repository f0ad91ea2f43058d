"""Few-step CPU training runs: model dirs the loader reads, resume, the AR peer, fine-tuning and the CLI."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from infill.errors import TrainingError
from infill.models import load_model
from tests.test_training_fixtures import SOURCES, make_repo
from training.config import TrainConfig
from training.model_factory import load_tokenizer_from
from training.trainer import train

TINY = {
    "vocab_size": 320,
    "hidden_size": 32,
    "num_layers": 1,
    "num_heads": 2,
    "intermediate_size": 64,
    "max_positions": 128,
    "seq_len": 64,
    "batch_size": 2,
    "eval_batches": 1,
    "eval_spans": 2,
    "heldout_fraction": 0.25,
    "threads": 1,
}


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_repo(tmp_path_factory.mktemp("train") / "repo", SOURCES)


@pytest.fixture(scope="module")
def scratch_run(repo: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("runs") / "scratch"
    config = TrainConfig(
        repo=str(repo), out=str(out), from_scratch=True, max_steps=4, save_every=2, eval_every=100, **TINY
    )
    result = train(config)
    assert result.steps == 4 and result.tokens > 0 and result.heldout_cross_entropy is not None
    assert set(result.span_eval) == {"exact_match", "edit_similarity", "rows"}
    return out


def _log_steps(out: Path) -> list[int]:
    return [
        r["step"] for r in map(json.loads, (out / "train_log.jsonl").read_text().splitlines()) if "loss" in r
    ]


def test_scratch_run_writes_a_model_dir_the_loader_reads(scratch_run: Path, repo: Path, capsys) -> None:
    for name in (
        "config.json",
        "model.safetensors",
        "tokenizer.json",
        "generation_config.json",
        "README.md",
        "training_manifest.json",
        "training_config.json",
        "loss_curve.png",
        "eval.json",
    ):
        assert (scratch_run / name).is_file(), name
    assert not list(scratch_run.glob("*.bin"))
    generation = json.loads((scratch_run / "generation_config.json").read_text())
    assert generation["infill"]["strategy"] in ("blocks", "threshold", "confidence")
    card = (scratch_run / "README.md").read_text()
    assert "steps | 4" in card and "held-out" in card.lower() and str(repo) in card
    assert "masked diffusion (ModernBERT)" in card
    assert json.loads((scratch_run / "training_config.json").read_text())["max_steps"] == 4
    loaded = load_model(scratch_run, device="cpu")
    assert loaded.kind == "masked_lm"
    assert loaded.tokenizer.decode(loaded.tokenizer.encode("x = 1\n")) == "x = 1\n"
    assert loaded.generation_defaults == generation["infill"]
    # And the CLI completes code with it (a 4-step model may produce nothing that passes the check: exit 3).
    from infill_cli.common import EXIT_UNFILLED
    from infill_cli.main import main

    target = repo / "pkg" / "mod_alpha.py"
    code = main(["complete", f"{target}:6:9", "--model", str(scratch_run), "--device", "cpu"])
    assert code in (0, EXIT_UNFILLED)
    capsys.readouterr()


def test_resume_continues_from_the_checkpoint(scratch_run: Path, repo: Path) -> None:
    state = json.loads((scratch_run / "checkpoints" / "step_4" / "trainer_state.json").read_text())
    assert state["step"] == 4
    config = TrainConfig(
        repo=str(repo),
        out=str(scratch_run),
        from_scratch=True,
        max_steps=6,
        save_every=2,
        eval_every=100,
        resume=True,
        **TINY,
    )
    result = train(config)
    assert result.steps == 6
    assert _log_steps(scratch_run) == [1, 2, 3, 4, 5, 6]  # continued at 5, nothing redone
    assert result.tokens > state["tokens"]
    assert sorted(p.name for p in (scratch_run / "checkpoints").iterdir()) == ["step_4", "step_6"]


def test_ar_fim_peer_shares_size_and_tokenizer(scratch_run: Path, repo: Path, tmp_path: Path) -> None:
    out = tmp_path / "ar"
    config = TrainConfig(
        repo=str(repo),
        out=str(out),
        objective="ar-fim",
        from_scratch=True,
        tokenizer=str(scratch_run),
        max_steps=2,
        save_every=2,
        eval_every=100,
        **TINY,
    )
    result = train(config)
    peer = json.loads((out / "config.json").read_text())
    diffusion = json.loads((scratch_run / "config.json").read_text())
    assert peer["infill_format"] == "psm" and peer["architectures"] == ["Qwen2ForCausalLM"]
    for key in ("hidden_size", "num_hidden_layers", "num_attention_heads", "vocab_size"):
        assert peer[key] == diffusion[key], key
    assert (out / "tokenizer.json").read_text() == (scratch_run / "tokenizer.json").read_text()
    assert "exact_match" in result.span_eval  # scored through training.ar_generate


def test_lora_fine_tune_scores_base_and_tuned_model(scratch_run: Path, repo: Path, tmp_path: Path) -> None:
    out = tmp_path / "tuned"
    config = TrainConfig(
        repo=str(repo),
        out=str(out),
        base=str(scratch_run),
        lora=True,
        max_steps=2,
        save_every=2,
        eval_every=100,
        **TINY,
    )
    result = train(config)
    assert set(result.base_eval) == set(result.span_eval) == {"exact_match", "edit_similarity", "rows"}
    # The report compares base and tuned on the same gaps and examples, with an interval per metric.
    report = json.loads((out / "finetune_report.json").read_text())
    assert report == result.report and report["base"] == str(scratch_run)
    assert report["heldout_gaps"] == TINY["eval_spans"]
    assert report["heldout_examples"] == TINY["eval_batches"] * TINY["batch_size"]
    metrics = report["metrics"]
    assert set(metrics) == {
        "heldout_cross_entropy",
        "masked_token_accuracy",
        "edit_similarity",
        "exact_match",
    }
    assert metrics["heldout_cross_entropy"]["tuned"] == pytest.approx(result.heldout_cross_entropy)
    assert metrics["edit_similarity"]["base"] == pytest.approx(result.base_eval["edit_similarity"])
    assert metrics["edit_similarity"]["tuned"] == pytest.approx(result.span_eval["edit_similarity"])
    for numbers in metrics.values():
        assert numbers["low"] <= numbers["difference"] <= numbers["high"]
    assert load_model(out, device="cpu").kind == "masked_lm"
    assert not list(out.glob("adapter_*"))  # LoRA merged into plain weights
    assert "fine-tuned from" in (out / "README.md").read_text()


def _cli(argv: list[str]) -> int:
    from infill_cli.train import train_command_parser

    parser = argparse.ArgumentParser()
    train_command_parser(parser.add_subparsers())
    args = parser.parse_args(argv)
    return args.func(args)


def test_cli_fine_tunes_and_prints_numbers(scratch_run: Path, repo: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "cli"
    code = _cli(
        [
            "train",
            "--repo",
            str(repo),
            "--base",
            str(scratch_run),
            "--out",
            str(out),
            "--max-steps",
            "1",
            "--seq-len",
            "64",
            "--batch-size",
            "2",
            "--eval-spans",
            "3",
            "--heldout-fraction",
            "0.25",
        ]
    )
    captured = capsys.readouterr()
    printed = captured.out
    assert code == 0
    assert f"model written to {out.resolve()}" in printed
    assert "held-out span exact match" in printed
    # Never silent outside the progress bar: each phase after it says what it is doing.
    for phase in ("reading the corpus", "training done; final evaluation", "writing the model", "scoring"):
        assert phase in captured.err, captured.err
    # The fine-tuning report, printed and written beside the model.
    assert "fine-tuning report: 32 held-out examples, 3 held-out gaps" in printed
    for metric in ("heldout_cross_entropy", "masked_token_accuracy", "edit_similarity", "exact_match"):
        assert metric in printed
    assert f"report written to {(out / 'finetune_report.json').resolve()}" in printed


def test_cli_bad_inputs_are_one_line_errors(tmp_path: Path) -> None:
    with pytest.raises(TrainingError, match="not a git repository"):
        _cli(["train", "--repo", str(tmp_path), "--out", str(tmp_path / "o"), "--from-scratch"])
    with pytest.raises(TrainingError, match="--from-scratch"):
        _cli(["train", "--repo", str(tmp_path), "--objective", "ar-fim"])
    empty = make_repo(tmp_path / "empty", {}, commit=False)
    with pytest.raises(TrainingError, match="tracks no files"):
        _cli(["train", "--repo", str(empty), "--out", str(tmp_path / "o2"), "--from-scratch"])
    assert not (tmp_path / "o").exists() and not (tmp_path / "o2").exists()  # bad input leaves nothing behind


def test_bundle_copies_the_model_files_and_refuses_the_ar_peer(scratch_run: Path, tmp_path: Path) -> None:
    from training.bundle import bundle_model

    dest = tmp_path / "default_model"
    written = {p.name for p in bundle_model(scratch_run, dest)}
    assert {
        "config.json",
        "model.safetensors",
        "tokenizer.json",
        "README.md",
        "training_manifest.json",
    } <= written
    assert not (dest / "checkpoints").exists()
    assert load_model(dest, device="cpu").kind == "masked_lm"
    peer = tmp_path / "peer"
    peer.mkdir()
    (peer / "config.json").write_text(json.dumps({"infill_format": "psm"}))
    with pytest.raises(TrainingError, match="not a diffusion model"):
        bundle_model(peer, tmp_path / "x")


def test_bundle_in_bfloat16_halves_the_weights_and_still_fills(scratch_run: Path, tmp_path: Path) -> None:
    import torch
    from safetensors.torch import load_file

    from infill.engine import InfillEngine
    from infill.engine.types import DecodeConfig, FillRequest
    from training.bundle import bundle_model

    full, half = tmp_path / "full", tmp_path / "half"
    bundle_model(scratch_run, full)
    bundle_model(scratch_run, half, bfloat16=True)
    weights = load_file(str(half / "model.safetensors"))
    assert {t.dtype for t in weights.values() if t.is_floating_point()} == {torch.bfloat16}
    original = load_file(str(full / "model.safetensors"))
    assert weights.keys() == original.keys()
    for name, tensor in weights.items():
        assert torch.allclose(tensor.float(), original[name], rtol=1e-2, atol=1e-2)
    full_size, half_size = ((d / "model.safetensors").stat().st_size for d in (full, half))
    assert half_size < 0.55 * full_size
    assert json.loads((half / "config.json").read_text())["dtype"] == "bfloat16"
    loaded = load_model(half, device="cpu")
    assert loaded.dtype == torch.float32  # upcast on the CPU
    request = FillRequest("def add(a, b):\n    return ", "\n", max_tokens=8)
    (result,) = InfillEngine(loaded).fill([request], DecodeConfig())
    assert result.best is not None and result.forward_passes > 0


def test_ar_initialised_diffusion_starts_from_the_peer(scratch_run: Path, repo: Path, tmp_path: Path) -> None:
    """The Dream recipe: the AR peer's weights, bidirectional, shifted; loads through the Dream path."""
    from safetensors.torch import load_file

    peer = tmp_path / "peer"
    common = {**TINY, "repo": str(repo), "save_every": 100, "eval_every": 100}
    train(
        TrainConfig(
            out=str(peer),
            objective="ar-fim",
            from_scratch=True,
            tokenizer=str(scratch_run),
            max_steps=2,
            **common,
        )
    )
    out = tmp_path / "from-ar"
    result = train(TrainConfig(out=str(out), from_ar=str(peer), max_steps=2, **common))
    assert result.steps == 2 and result.heldout_cross_entropy is not None
    config = json.loads((out / "config.json").read_text())
    assert config["infill_family"] == "infill-shifted-decoder" and "infill_format" not in config
    loaded = load_model(out, device="cpu")
    tokenizer = load_tokenizer_from(out)
    assert config["mask_token_id"] == loaded.special.mask_id == tokenizer.convert_tokens_to_ids("<|mask|>")
    assert loaded.special.end_of_span_id == tokenizer.convert_tokens_to_ids("<|endofspan|>")
    assert loaded.special.prefix_ids == (tokenizer.convert_tokens_to_ids("<|endoftext|>"),)
    assert loaded.family == "infill-shifted-decoder"
    # Same tensors as the peer, trained further (not re-initialised).
    before, after = load_file(str(peer / "model.safetensors")), load_file(str(out / "model.safetensors"))
    assert before.keys() == after.keys()
    name = "model.layers.0.mlp.up_proj.weight"
    assert 0 < (before[name] - after[name]).abs().max() < 0.1
    card = (out / "README.md").read_text()
    assert "AR phase" in card and "2 steps" in card and "Qwen2-shaped decoder" in card
    # And it fine-tunes like the bundled family does (a shifted base model).
    tuned = tmp_path / "tuned"
    train(TrainConfig(out=str(tuned), base=str(out), max_steps=1, **common))
    assert load_model(tuned, device="cpu").family == "infill-shifted-decoder"


def test_cpu_budget_stops_the_run_and_is_logged(repo: Path, tmp_path: Path) -> None:
    out = tmp_path / "budget"
    config = TrainConfig(
        repo=str(repo),
        out=str(out),
        from_scratch=True,
        max_steps=1000,
        max_cpu_minutes=0.001,
        save_every=100,
        eval_every=100,
        **TINY,
    )
    result = train(config)
    assert result.steps < 1000
    records = [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]
    assert all(r["cpu_s"] >= 0 for r in records if "loss" in r)
    assert json.loads((out / "training_state.json").read_text())["step"] == result.steps


def test_lora_is_the_default_only_for_bases_too_large_to_train_every_weight() -> None:
    from training.config import LORA_ABOVE_PARAMETERS

    small, large = TrainConfig(repo="."), TrainConfig(repo=".")
    assert not small.resolve_lora(1_400_000) and small.lora is False and small.learning_rate() == 5e-4
    assert large.resolve_lora(7_600_000_000) and large.lora is True and large.learning_rate() == 1e-3
    assert not TrainConfig(lora=False).resolve_lora(LORA_ABOVE_PARAMETERS * 8)  # the user's word wins
    assert TrainConfig(lora=True).resolve_lora(1_400_000)
    assert TrainConfig().step_limit() == 450  # the defaults sweep's steps


def test_a_minutes_budget_sets_the_step_count_and_anneals_by_time(repo: Path, tmp_path: Path) -> None:
    """``--minutes`` is a time budget: without --max-steps the budget, not the default 150 steps, ends the
    run, and the learning rate reaches its floor when the time is up whatever the step rate was."""
    from training.config import DEFAULT_STEPS, UNBOUNDED_STEPS
    from training.trainer import _schedule

    assert TrainConfig().step_limit() == DEFAULT_STEPS
    assert TrainConfig(minutes=5).step_limit() == UNBOUNDED_STEPS
    assert TrainConfig(max_cpu_minutes=5).step_limit() == UNBOUNDED_STEPS
    assert TrainConfig(minutes=5, max_steps=7).step_limit() == 7
    budget = TrainConfig(minutes=10, warmup_steps=10)
    factor = _schedule(budget, {"elapsed_s": 300.0, "cpu_s": 0.0})
    assert factor(50) == pytest.approx(0.55)  # half the budget gone: half-way down the cosine
    assert _schedule(budget, {"elapsed_s": 600.0, "cpu_s": 0.0})(50) == pytest.approx(0.1)
    steps_only = TrainConfig(warmup_steps=10)  # no budget: the clock does not move the schedule
    late, early = ({"elapsed_s": seconds, "cpu_s": 0.0} for seconds in (600.0, 0.0))
    assert _schedule(steps_only, late)(50) == _schedule(steps_only, early)(50) > 0.8
    out = tmp_path / "minutes"
    config = TrainConfig(
        repo=str(repo), out=str(out), from_scratch=True, minutes=0.0005, save_every=100, eval_every=100,
        **TINY,
    )
    result = train(config)
    assert 1 <= result.steps < DEFAULT_STEPS and (out / "model.safetensors").is_file()


def test_sigterm_stops_after_the_step_with_a_checkpoint(repo: Path, tmp_path: Path, monkeypatch) -> None:
    """A long background run is stopped with SIGTERM: it saves, exports and exits; run again, it resumes."""
    import os
    import signal

    from training import trainer

    budget = trainer._out_of_time

    def signal_at_step_3(config: TrainConfig, state: dict) -> bool:
        if state["step"] == 3:
            os.kill(os.getpid(), signal.SIGTERM)
        return budget(config, state)

    monkeypatch.setattr(trainer, "_out_of_time", signal_at_step_3)
    out = tmp_path / "stopped"
    config = TrainConfig(
        repo=str(repo), out=str(out), from_scratch=True, max_steps=50, save_every=100, eval_every=100, **TINY
    )
    result = train(config)
    assert result.steps == 3 and result.stopped  # the signal lands after step 3: it is the last one
    assert (out / "checkpoints" / "step_3" / "trainer_state.json").is_file()
    assert json.loads((out / "eval.json").read_text())["step"] == 3 and (out / "model.safetensors").is_file()
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # the handler is gone after the run
    monkeypatch.setattr(trainer, "_out_of_time", budget)
    config.max_steps, config.resume = 6, True
    assert train(config).steps == 6 and _log_steps(out) == [1, 2, 3, 4, 5, 6]
