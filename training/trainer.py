"""The training loop on `accelerate`: same script on a laptop CPU, one GPU (bf16) or ``accelerate launch``.

Layout of ``config.out``:
  checkpoints/step_N/   accelerate state (model.safetensors, optimizer, scheduler, RNG) + trainer_state.json
  config.json, model.safetensors, tokenizer files, generation_config.json, README.md   the model dir
  training_config.json, training_manifest.json, train_log.jsonl, loss_curve.png, eval.json
"""

from __future__ import annotations

import json
import logging
import math
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
from accelerate import Accelerator
from tqdm.auto import tqdm

from infill.errors import TrainingError
from training.config import TrainConfig
from training.corpus import Corpus, corpus_from_archive, corpus_from_git, corpus_from_python_packages
from training.export import export_model_dir, write_loss_curve, write_model_card
from training.model_factory import (
    apply_lora,
    build_ar_model,
    build_diffusion_model,
    load_base_model,
    load_tokenizer_from,
    new_tokenizer,
)
from training.objective import ExampleSource, ar_loss, diffusion_loss
from training.prefetch import batch_stream
from training.repo_eval import evaluate_model_dir, heldout_rows

logger = logging.getLogger(__name__)

EVAL_SEED_OFFSET = 1_000_003  # held-out batches use their own fixed seeds, never the training stream's


def _say(accelerator: Accelerator, message: str) -> None:
    """One line on stderr for each phase outside the progress bar, so a long run is never silent."""
    if accelerator.is_main_process:
        tqdm.write(f"infill train: {message}", file=sys.stderr)  # above the progress bar, if one is shown


@dataclass
class TrainResult:
    out: Path
    steps: int
    tokens: int
    heldout_loss: float | None
    span_eval: dict[str, float] = field(default_factory=dict)
    base_eval: dict[str, float] = field(default_factory=dict)  # the base model on the same gaps


def load_corpus(config: TrainConfig) -> Corpus:
    if config.corpus_archive:  # recipe: the archive built here and merged on the GPU machine
        fraction = 0.05 if config.heldout_fraction is None else config.heldout_fraction
        return corpus_from_archive(
            config.corpus_archive,
            heldout_fraction=fraction,
            seed=config.seed,
            max_total_chars=config.max_corpus_chars,
        )
    if config.from_python_packages:
        fraction = 0.05 if config.heldout_fraction is None else config.heldout_fraction
        return corpus_from_python_packages(
            max_chars_per_distribution=config.max_chars_per_distribution,
            max_total_chars=config.max_corpus_chars,
            heldout_fraction=fraction,
            seed=config.seed,
        )
    fraction = 0.1 if config.heldout_fraction is None else config.heldout_fraction
    return corpus_from_git(config.repo or ".", heldout_fraction=fraction, seed=config.seed)


def _model_and_tokenizer(
    config: TrainConfig, corpus: Corpus
) -> tuple[torch.nn.Module, object, str, Path | None]:
    """(model, tokenizer, where it started (for the model card), base model dir or None)."""
    if config.from_scratch:
        tokenizer = load_tokenizer_from(config.tokenizer) if config.tokenizer else None
        if tokenizer is None:
            tokenizer = new_tokenizer(corpus.train, config.vocab_size)
        build = build_ar_model if config.objective == "ar-fim" else build_diffusion_model
        return build(config, tokenizer), tokenizer, "from scratch", None
    from infill.models import resolve_model_dir

    try:
        base = resolve_model_dir(config.base)
    except Exception as exc:  # ModelLoadError: no bundled default, missing dir
        raise TrainingError(f"no base model to fine-tune: {exc}") from exc
    model, tokenizer = load_base_model(base)
    if config.lora:
        model = apply_lora(model, config.lora_rank)
    return model, tokenizer, f"fine-tuned from {base}" + (" (LoRA)" if config.lora else ""), base


def _latest_checkpoint(out: Path) -> Path | None:
    steps = sorted(
        (int(p.name.removeprefix("step_")), p)
        for p in (out / "checkpoints").glob("step_*")
        if (p / "trainer_state.json").is_file()
    )
    return steps[-1][1] if steps else None


def _schedule(config: TrainConfig) -> callable:
    def factor(step: int) -> float:
        if step < config.warmup_steps:
            return (step + 1) / config.warmup_steps
        progress = (step - config.warmup_steps) / max(1, config.max_steps - config.warmup_steps)
        return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))

    return factor


def train(config: TrainConfig) -> TrainResult:
    """Run (or resume) one training run and write its model dir; returns where it went and its numbers."""
    config.validate()
    if config.threads:
        torch.set_num_threads(config.threads)
    torch.manual_seed(config.seed)
    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    accelerator = Accelerator(
        mixed_precision="bf16" if torch.cuda.is_available() else "no",
        gradient_accumulation_steps=config.grad_accum,
    )
    _say(accelerator, f"reading the corpus ({config.repo or 'installed Python packages'})")
    corpus = load_corpus(config)
    _say(accelerator, f"{len(corpus.train)} files to train on, {len(corpus.heldout)} held out; loading")
    if not corpus.heldout:
        raise TrainingError("the corpus has a single file: nothing to hold out for evaluation")
    with accelerator.main_process_first():
        model, tokenizer, origin, base_dir = _model_and_tokenizer(config, corpus)
    is_ar = config.objective == "ar-fim"
    seq_len = min(config.seq_len, getattr(model.config, "max_position_embeddings", config.seq_len))
    train_source = ExampleSource(
        corpus.train, tokenizer, seq_len, config.span_fraction, workers=max(1, config.data_workers)
    )
    heldout_source = ExampleSource(corpus.heldout, tokenizer, seq_len, config.span_fraction)
    loss_fn = ar_loss if is_ar else diffusion_loss
    draw = "ar_batch" if is_ar else "diffusion_batch"

    optimizer = torch.optim.AdamW(
        [p for p in model.parameters() if p.requires_grad],
        lr=config.learning_rate(),
        weight_decay=config.weight_decay,
        betas=(0.9, 0.98),
    )
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, _schedule(config))
    model, optimizer, scheduler = accelerator.prepare(model, optimizer, scheduler)

    state = {"step": 0, "tokens": 0, "elapsed_s": 0.0}
    checkpoint = _latest_checkpoint(out) if config.resume else None
    if checkpoint is not None:
        accelerator.load_state(str(checkpoint))
        state = json.loads((checkpoint / "trainer_state.json").read_text())
        logger.info("resumed from %s at step %d", checkpoint, state["step"])
    if accelerator.is_main_process:
        tokenizer.save_pretrained(str(out))  # available at once, e.g. for an AR peer sharing it
        config.write(out / "training_config.json")
        corpus.write_manifest(out / "training_manifest.json")

    eval_rows = heldout_rows(corpus.heldout, config.eval_spans, seed=config.seed)
    log_path = out / "train_log.jsonl"
    rank, started = accelerator.process_index, time.perf_counter() - state["elapsed_s"]
    heldout_loss, span_eval = None, {}
    if base_dir and config.compare_base:
        _say(accelerator, f"scoring the base model on {len(eval_rows)} held-out gaps")
    base_eval = _base_eval(out, base_dir, eval_rows) if base_dir and config.compare_base else {}

    def evaluate() -> None:
        nonlocal heldout_loss, span_eval
        _say(accelerator, f"step {state['step']}: held-out loss")
        heldout_loss = _heldout_loss(model, heldout_source, draw, loss_fn, config, accelerator)
        accelerator.wait_for_everyone()
        if accelerator.is_main_process:
            unwrapped = accelerator.unwrap_model(model)
            _say(accelerator, f"step {state['step']}: writing the model to {out}")
            export_model_dir(unwrapped, tokenizer, out, config)
            _say(accelerator, f"step {state['step']}: scoring {len(eval_rows)} held-out gaps")
            span_eval = evaluate_model_dir(out, eval_rows) if eval_rows else {}
            record = {"step": state["step"], "heldout_loss": heldout_loss, **span_eval}
            _append_log(log_path, {"eval": record})
            (out / "eval.json").write_text(json.dumps(record, indent=2) + "\n")
            write_loss_curve(log_path, out / "loss_curve.png")
            parameters = sum(p.numel() for p in unwrapped.parameters())
            base_numbers = {f"base_{k}": v for k, v in base_eval.items() if k != "rows"}
            numbers = {"heldout_loss": heldout_loss, **span_eval, **base_numbers}
            write_model_card(out, config, corpus, state, origin, numbers, parameters)
            logger.info("eval at step %d: %s", state["step"], record)

    bar = tqdm(
        total=config.max_steps,
        initial=state["step"],
        disable=not accelerator.is_main_process,
        desc="train",
        unit="step",
    )
    window_tokens, window_start = 0, time.perf_counter()
    batches = batch_stream(  # recipe: drawn ahead by config.data_workers processes, same stream as inline
        train_source,
        draw,
        batch_size=config.batch_size,
        seed=config.seed,
        rank=rank,
        start=state["step"] * config.grad_accum,
        workers=config.data_workers,
    )
    model.train()
    while state["step"] < config.max_steps:
        step = state["step"]
        loss_sum = 0.0
        for _micro in range(config.grad_accum):
            batch = next(batches).to(accelerator.device)
            with accelerator.accumulate(model), accelerator.autocast():
                loss = loss_fn(model, batch)
                accelerator.backward(loss)
                if accelerator.sync_gradients:
                    accelerator.clip_grad_norm_(model.parameters(), config.grad_clip)
                optimizer.step()
                scheduler.step()
                optimizer.zero_grad()
            loss_sum += float(loss.detach()) / config.grad_accum
            tokens = int(batch.attention_mask.sum()) * accelerator.num_processes
            state["tokens"] += tokens
            window_tokens += tokens
        state["step"] = step + 1
        state["elapsed_s"] = time.perf_counter() - started
        rate = window_tokens / max(1e-9, time.perf_counter() - window_start)
        bar.set_postfix(loss=f"{loss_sum:.3f}", tok_s=f"{rate:.0f}")
        bar.update(1)
        if accelerator.is_main_process:
            _append_log(
                log_path,
                {
                    "step": state["step"],
                    "loss": loss_sum,
                    "lr": scheduler.get_last_lr()[0],
                    "tokens": state["tokens"],
                    "elapsed_s": round(state["elapsed_s"], 1),
                },
            )
        out_of_time = config.max_minutes is not None and state["elapsed_s"] > config.max_minutes * 60
        done = state["step"] >= config.max_steps or out_of_time
        if state["step"] % config.save_every == 0 or done:
            _save_checkpoint(accelerator, out, state, config.keep_checkpoints)
        if state["step"] % config.eval_every == 0 and not done:
            evaluate()
            model.train()
        if out_of_time:
            logger.info("stopping at step %d: --max-minutes %.1f reached", state["step"], config.max_minutes)
            break
    bar.close()
    _say(accelerator, "training done; final evaluation")
    evaluate()
    return TrainResult(out, state["step"], state["tokens"], heldout_loss, span_eval, base_eval)


def _base_eval(out: Path, base_dir: Path, rows: list) -> dict[str, float]:
    """The base model's numbers on the held-out gaps, computed once per output dir and cached there."""
    cache = out / "base_eval.json"
    if cache.is_file():
        cached = json.loads(cache.read_text())
        if cached.get("base") == str(base_dir) and cached.get("rows") == len(rows):
            return cached["numbers"]
    numbers = evaluate_model_dir(base_dir, rows) if rows else {}
    cache.write_text(json.dumps({"base": str(base_dir), "rows": len(rows), "numbers": numbers}) + "\n")
    return numbers


@torch.no_grad()
def _heldout_loss(
    model, source: ExampleSource, draw: str, loss_fn, config: TrainConfig, accelerator
) -> float:
    model.eval()
    losses = []
    for i in range(config.eval_batches):
        batch = getattr(source, draw)(config.batch_size, config.seed + EVAL_SEED_OFFSET, i, 0)
        with accelerator.autocast():
            losses.append(float(loss_fn(model, batch.to(accelerator.device))))
    return sum(losses) / len(losses)


def _save_checkpoint(accelerator: Accelerator, out: Path, state: dict, keep: int) -> None:
    path = out / "checkpoints" / f"step_{state['step']}"
    accelerator.save_state(str(path), safe_serialization=True)
    if accelerator.is_main_process:
        (path / "trainer_state.json").write_text(json.dumps(state) + "\n")
        old = sorted((out / "checkpoints").glob("step_*"), key=lambda p: int(p.name.removeprefix("step_")))
        for stale in old[:-keep]:
            shutil.rmtree(stale, ignore_errors=True)


def _append_log(path: Path, record: dict) -> None:
    with path.open("a") as fh:
        fh.write(json.dumps(record) + "\n")
