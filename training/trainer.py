"""The training loop on `accelerate`: same script on a laptop CPU, one GPU (bf16) or ``accelerate launch``.

Layout of ``config.out``:
  checkpoints/step_N/   accelerate state (model.safetensors, optimizer, scheduler, RNG) + trainer_state.json
  config.json, model.safetensors, tokenizer files, generation_config.json, README.md   the model dir
  training_config.json, training_manifest.json, train_log.jsonl, loss_curve.png, eval.json,
  training_state.json (steps, tokens, wall and CPU seconds so far: what an AR-initialised run counts as its
  AR phase)

Time is counted in two clocks: wall seconds and CPU seconds of this process (``time.process_time``). On a
machine shared with other work the CPU clock is the fair one: ``--max-cpu-minutes`` gives runs equal compute.
"""

from __future__ import annotations

import functools
import json
import logging
import math
import shutil
import signal
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch
from accelerate import Accelerator
from tqdm.auto import tqdm

from infill.errors import TrainingError
from training.block_diffusion import block_batch
from training.config import TrainConfig
from training.corpus import Corpus, corpus_from_archive, corpus_from_git, corpus_from_python_packages
from training.export import export_model_dir, write_loss_curve, write_model_card
from training.finetune_report import build_report, example_scores, report_batches, write_report
from training.losses import ARObjective, DiffusionObjective, backbone_and_head
from training.model_factory import (
    apply_lora,
    build_ar_model,
    build_diffusion_model,
    is_shifted_decoder,
    load_base_model,
    load_tokenizer_from,
    new_tokenizer,
    shifted_decoder_from_ar,
)
from training.objective import Batch, ExampleSource
from training.prefetch import batch_stream
from training.repo_eval import complete_with_model_dir, heldout_rows, row_scores, score_rows

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
    report: dict | None = None  # fine-tuning: base vs fine-tuned with paired intervals (finetune_report)
    stopped: bool = False  # ended early by SIGTERM/SIGINT (resumable), not by its steps or time budget


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
    if config.from_ar:
        model, tokenizer = shifted_decoder_from_ar(config.from_ar)
        return model, tokenizer, f"initialised from the AR FIM peer {config.from_ar} (bidirectional)", None
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


def _schedule(config: TrainConfig, state: dict) -> Callable[[int], float]:
    """Linear warm-up, then cosine to 0.1x over the steps, or over the CPU budget when that ends first
    (a ``--max-cpu-minutes`` run anneals by the time it stops, whatever its step rate)."""

    def factor(step: int) -> float:
        if step < config.warmup_steps:
            return (step + 1) / config.warmup_steps
        progress = (step - config.warmup_steps) / max(1, config.max_steps - config.warmup_steps)
        if config.max_cpu_minutes:
            progress = max(progress, state["cpu_s"] / (config.max_cpu_minutes * 60))
        return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))

    return factor


def _optimizer(config: TrainConfig, model: torch.nn.Module) -> torch.optim.Optimizer:
    params = [p for p in model.parameters() if p.requires_grad]
    # The fused kernel updates every tensor in one call (CPU and CUDA); it needs float parameters.
    fused = all(p.is_floating_point() for p in params)
    return torch.optim.AdamW(
        params, lr=config.learning_rate(), weight_decay=config.weight_decay, betas=(0.9, 0.98), fused=fused
    )


def _objective(config: TrainConfig, model: torch.nn.Module) -> torch.nn.Module:
    if config.objective == "ar-fim":
        return ARObjective(model)
    objective = DiffusionObjective(model, shift=is_shifted_decoder(model))
    if config.compile:
        split = backbone_and_head(model)
        (split[0] if split else model).compile(dynamic=False)
    return objective


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
    corpus_name = config.repo or config.corpus_archive or "installed Python packages"
    _say(accelerator, f"reading the corpus ({corpus_name})")
    corpus = load_corpus(config)
    _say(accelerator, f"{len(corpus.train)} files to train on, {len(corpus.heldout)} held out; loading")
    if not corpus.heldout:
        raise TrainingError("the corpus has a single file: nothing to hold out for evaluation")
    with accelerator.main_process_first():
        model, tokenizer, origin, base_dir = _model_and_tokenizer(config, corpus)
    shifted = is_shifted_decoder(model)
    seq_len = min(config.seq_len, getattr(model.config, "max_position_embeddings", config.seq_len))
    train_source = ExampleSource(
        corpus.train,
        tokenizer,
        seq_len,
        config.span_fraction,
        workers=max(1, config.data_workers),
        shifted=shifted,
        edit_noise=config.edit_noise,
    )
    heldout_source = ExampleSource(corpus.heldout, tokenizer, seq_len, config.span_fraction, shifted=shifted)
    draw_train, draw_heldout = _drawer(config, train_source), _drawer(config, heldout_source)

    optimizer = _optimizer(config, model)
    state = {"step": 0, "tokens": 0, "elapsed_s": 0.0, "cpu_s": 0.0}
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, _schedule(config, state))
    objective = _objective(config, model)
    objective, optimizer, scheduler = accelerator.prepare(objective, optimizer, scheduler)

    checkpoint = _latest_checkpoint(out) if config.resume else None
    if checkpoint is not None:
        accelerator.load_state(str(checkpoint))
        state.update(json.loads((checkpoint / "trainer_state.json").read_text()))
        logger.info("resumed from %s at step %d", checkpoint, state["step"])
    if accelerator.is_main_process:
        tokenizer.save_pretrained(str(out))  # available at once, e.g. for an AR peer sharing it
        config.write(out / "training_config.json")
        corpus.write_manifest(out / "training_manifest.json")

    eval_rows = heldout_rows(corpus.heldout, config.eval_spans, seed=config.seed)
    log_path = out / "train_log.jsonl"
    rank = accelerator.process_index
    started = time.perf_counter() - state["elapsed_s"]
    cpu_started = time.process_time() - state["cpu_s"]
    heldout_loss, span_eval, completions = None, {}, []
    compare = base_dir is not None and config.compare_base
    if compare:
        _say(accelerator, f"scoring the base model on {len(eval_rows)} held-out gaps")
    base_completions = _base_completions(out, base_dir, eval_rows) if compare else []
    base_eval = score_rows(eval_rows, base_completions) if compare and eval_rows else {}
    init = _init_record(config)

    def evaluate(spans: bool) -> None:
        nonlocal heldout_loss, span_eval, completions
        _say(accelerator, f"step {state['step']}: held-out loss")
        heldout_loss = _heldout_loss(objective, draw_heldout, config, accelerator)
        accelerator.wait_for_everyone()
        if accelerator.is_main_process:
            unwrapped = accelerator.unwrap_model(objective).model
            _say(accelerator, f"step {state['step']}: writing the model to {out}")
            export_model_dir(unwrapped, tokenizer, out, config)
            if spans and eval_rows:
                _say(accelerator, f"step {state['step']}: scoring {len(eval_rows)} held-out gaps")
                completions = complete_with_model_dir(out, eval_rows)
                span_eval = score_rows(eval_rows, completions)
            record = {"step": state["step"], "heldout_loss": heldout_loss, **(span_eval if spans else {})}
            _append_log(log_path, {"eval": record})
            (out / "eval.json").write_text(json.dumps({**record, **init}, indent=2) + "\n")
            (out / "training_state.json").write_text(json.dumps(state) + "\n")
            write_loss_curve(log_path, out / "loss_curve.png")
            parameters = sum(p.numel() for p in unwrapped.parameters())
            base_numbers = {f"base_{k}": v for k, v in base_eval.items() if k != "rows"}
            numbers = {"heldout_loss": heldout_loss, **span_eval, **base_numbers}
            write_model_card(out, config, corpus, state, origin, numbers, parameters, init)
            logger.info("eval at step %d: %s", state["step"], record)

    bar = tqdm(
        total=config.max_steps,
        initial=state["step"],
        disable=not accelerator.is_main_process,
        desc="train",
        unit="step",
    )
    window: list[tuple[int, float]] = []  # (tokens, CPU seconds) of the last steps, for the rate shown
    stop = _StopRequest()
    batches = batch_stream(  # recipe: drawn ahead by config.data_workers processes, same stream as inline
        draw_train,
        batch_size=config.batch_size,
        seed=config.seed,
        rank=rank,
        start=state["step"] * config.grad_accum,
        workers=config.data_workers,
    )
    objective.train()
    try:
        while state["step"] < config.max_steps:
            step = state["step"]
            step_cpu = time.process_time()
            loss_sum, step_tokens = 0.0, 0
            for _micro in range(config.grad_accum):
                batch = next(batches).to(accelerator.device)
                with accelerator.accumulate(objective), accelerator.autocast():
                    loss = objective(batch)
                    accelerator.backward(loss)
                    if accelerator.sync_gradients:
                        accelerator.clip_grad_norm_(objective.parameters(), config.grad_clip)
                    optimizer.step()
                    scheduler.step()
                    optimizer.zero_grad()
                loss_sum += float(loss.detach()) / config.grad_accum
                step_tokens += int(batch.attention_mask.sum()) * accelerator.num_processes
            state["tokens"] += step_tokens
            state["step"] = step + 1
            state["elapsed_s"] = time.perf_counter() - started
            state["cpu_s"] = time.process_time() - cpu_started
            window = [*window[-19:], (step_tokens, time.process_time() - step_cpu)]
            rate = sum(t for t, _ in window) / max(1e-9, sum(c for _, c in window))
            bar.set_postfix(loss=f"{loss_sum:.3f}", tok_cpu_s=f"{rate:.0f}")
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
                        "cpu_s": round(state["cpu_s"], 1),
                    },
                )
            out_of_time = _out_of_time(config, state) or stop.requested
            done = state["step"] >= config.max_steps or out_of_time
            if state["step"] % config.save_every == 0 or done:
                _save_checkpoint(accelerator, out, state, config.keep_checkpoints)
            if not done and state["step"] % config.eval_every == 0:
                spans = config.span_eval_every > 0 and state["step"] % config.span_eval_every == 0
                evaluate(spans)
                objective.train()
            if out_of_time:
                why = "stop requested (SIGTERM/SIGINT)" if stop.requested else "time budget reached"
                logger.info("stopping at step %d: %s", state["step"], why)
                break
    finally:
        stop.restore()
    bar.close()
    _say(accelerator, "training done; final evaluation" if not stop.requested else "stopped; saving")
    # Stopped by a signal: the checkpoint and the model dir (held-out loss) are written; no slow decoding.
    evaluate(spans=not stop.requested)
    report = None
    if compare and eval_rows and not stop.requested and accelerator.is_main_process:
        tuned = accelerator.unwrap_model(objective)
        gaps = (eval_rows, base_completions, completions)
        report = _finetune_report(config, heldout_source, tuned, base_dir, *gaps)
        write_report(report, out)
    return TrainResult(
        out, state["step"], state["tokens"], heldout_loss, span_eval, base_eval, report, stop.requested
    )


def _finetune_report(
    config: TrainConfig,
    source: ExampleSource,
    tuned: DiffusionObjective,
    base_dir: Path,
    rows: list,
    base_completions: list[str],
    tuned_completions: list[str],
) -> dict:
    """Base vs fine-tuned on the same held-out examples (loss, token accuracy) and gaps (edit sim., exact)."""
    batches = report_batches(source, max(config.eval_spans, 2), config.batch_size, config.seed)
    base_model, _ = load_base_model(base_dir)
    base = DiffusionObjective(base_model, shift=is_shifted_decoder(base_model))
    base_scores = example_scores(base, batches) | row_scores(rows, base_completions)
    tuned_scores = example_scores(tuned, batches) | row_scores(rows, tuned_completions)
    return build_report(
        base_scores, tuned_scores, base_dir=str(base_dir), tuned_dir=str(config.out), source=str(config.repo)
    )


class _StopRequest:
    """SIGTERM / SIGINT end the run after the current step, with a checkpoint and an exported model dir (a
    second signal interrupts at once). Only the main thread can install handlers; elsewhere this is inert."""

    def __init__(self) -> None:
        self.requested = False
        self._previous: dict[int, object] = {}
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGTERM, signal.SIGINT):
                self._previous[sig] = signal.signal(sig, self._handle)

    def _handle(self, signum: int, frame: object) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
        logger.warning("signal %d: stopping after this step (checkpoint + model dir); again to abort", signum)

    def restore(self) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)  # type: ignore[arg-type]
        self._previous.clear()


def _out_of_time(config: TrainConfig, state: dict) -> bool:
    wall = config.max_minutes is not None and state["elapsed_s"] > config.max_minutes * 60
    cpu = config.max_cpu_minutes is not None and state["cpu_s"] > config.max_cpu_minutes * 60
    return wall or cpu


def _init_record(config: TrainConfig) -> dict:
    """For an AR-initialised run: the AR phase's steps, tokens and seconds (its training_state.json)."""
    if not config.from_ar:
        return {}
    path = Path(config.from_ar) / "training_state.json"
    phase = json.loads(path.read_text()) if path.is_file() else {}
    return {"init_from_ar": str(config.from_ar), **{f"ar_phase_{k}": v for k, v in phase.items()}}


def _base_completions(out: Path, base_dir: Path, rows: list) -> list[str]:
    """The base model's fills of the held-out gaps, computed once per output dir and cached there."""
    cache = out / "base_eval.json"
    key = {"base": str(base_dir), "gaps": [[r.path, r.prefix[-200:], r.middle] for r in rows]}
    if cache.is_file():
        cached = json.loads(cache.read_text())
        if {k: cached.get(k) for k in key} == key:
            return cached["completions"]
    completions = complete_with_model_dir(base_dir, rows) if rows else []
    cache.write_text(json.dumps({**key, "completions": completions}) + "\n")
    return completions


def _drawer(config: TrainConfig, source: ExampleSource) -> Callable[..., Batch]:
    """``draw(batch_size, seed, index, rank) -> Batch`` for the configured objective."""
    if config.objective == "ar-fim":
        return source.ar_batch
    if config.objective == "block-diffusion":
        return functools.partial(block_batch, source, block_size=config.block_size)
    return source.diffusion_batch


@torch.no_grad()
def _heldout_loss(objective, draw: Callable[..., Batch], config: TrainConfig, accelerator) -> float:
    objective.eval()
    losses = []
    for i in range(config.eval_batches):
        batch = draw(config.batch_size, config.seed + EVAL_SEED_OFFSET, i, 0)
        with accelerator.autocast():
            losses.append(float(objective(batch.to(accelerator.device))))
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
