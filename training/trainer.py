"""The training loop on `accelerate`: same script on a laptop CPU, one GPU (bf16) or ``accelerate launch``.

Layout of ``config.out``:
  checkpoints/step_N/   accelerate state (model.safetensors, optimizer, scheduler, RNG) + trainer_state.json
  config.json, model.safetensors, tokenizer files, generation_config.json, README.md   the model dir
  training_config.json, training_manifest.json, train_log.jsonl, loss_curve.png, eval.json,
  training_state.json (steps, tokens, wall and CPU seconds so far: what an AR-initialised run counts as its
  AR phase), run_complete.json (a finished run: see training.run_state; repeats, --resume, --update, --force)

One held-out number: the cross-entropy per masked token of the run's held-out examples
(``finetune_report.heldout_batches``), the same at every evaluation and in the console, card and report.

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
from training.block_decoder import aligned_block_batch, block_decoder_from_ar, is_block_decoder
from training.block_diffusion import block_batch
from training.config import UNBOUNDED_STEPS, TrainConfig
from training.corpus import Corpus, corpus_from_archive, corpus_from_git, corpus_from_python_packages
from training.expand_token import ensure_expand_token
from training.export import export_model_dir, write_loss_curve, write_model_card
from training.file_modes import share_files
from training.finetune_report import (
    HELDOUT_CE,
    as_name_scores,
    build_report,
    example_scores,
    heldout_batches,
    mean_heldout_ce,
    read_report,
    write_report,
)
from training.length_states import EXPAND_TOKEN
from training.losses import ARObjective, DiffusionObjective, backbone_and_head
from training.model_factory import (
    apply_lora,
    build_ar_model,
    build_diffusion_model,
    is_shifted_decoder,
    load_ar_peer,
    load_base_model,
    load_tokenizer_from,
    new_tokenizer,
    shifted_decoder_from_ar,
)
from training.objective import Batch, ExampleSource
from training.prefetch import batch_stream
from training.repo_eval import EvalRow, complete_with_model_dir, heldout_rows, row_scores, score_rows
from training.repo_names import NameGap, name_gap_scores, name_gaps
from training.run_state import LOG_FILE, RunPlan, fingerprint, plan_run, write_done

logger = logging.getLogger(__name__)


def _say(accelerator: Accelerator, message: str) -> None:
    """One line on stderr for each phase outside the progress bar, so a long run is never silent."""
    if accelerator.is_main_process:
        tqdm.write(f"infill train: {message}", file=sys.stderr)  # above the progress bar, if one is shown


@dataclass
class TrainResult:
    out: Path
    steps: int
    tokens: int
    heldout_cross_entropy: float | None  # per masked token, on the run's held-out examples
    span_eval: dict[str, float] = field(default_factory=dict)
    base_eval: dict[str, float] = field(default_factory=dict)  # the base model on the same gaps
    report: dict | None = None  # fine-tuning: base vs fine-tuned with paired intervals (finetune_report)
    stopped: bool = False  # ended early by SIGTERM/SIGINT (resumable), not by its steps or time budget
    up_to_date: str | None = None  # nothing trained: ``out`` already holds this run, finished (the message)


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
    if config.from_ar and config.objective == "block-diffusion":  # Fast-dLLM v2's recipe (block_decoder.py)
        peer, tokenizer = load_ar_peer(config.from_ar)
        model = block_decoder_from_ar(peer, config.block_size)
        return model, tokenizer, f"initialised from the AR FIM peer {config.from_ar} (block-causal)", None
    if config.from_ar:
        model, tokenizer = shifted_decoder_from_ar(config.from_ar)
        return model, tokenizer, f"initialised from the AR FIM peer {config.from_ar} (bidirectional)", None
    if config.from_scratch:
        tokenizer = load_tokenizer_from(config.tokenizer) if config.tokenizer else None
        if tokenizer is None:
            tokenizer = new_tokenizer(corpus.train, config.vocab_size)
        build = build_ar_model if config.objective == "ar-fim" else build_diffusion_model
        return build(config, tokenizer), tokenizer, "from scratch", None
    base = _base_dir(config)
    assert base is not None
    model, tokenizer = load_base_model(base)
    if config.resolve_lora(sum(p.numel() for p in model.parameters())):  # the written config says which
        model = apply_lora(model, config.lora_rank)
    return model, tokenizer, f"fine-tuned from {base}" + (" (LoRA)" if config.lora else ""), base


def _base_dir(config: TrainConfig) -> Path | None:
    """The model dir a fine-tuning run starts from (None from scratch); resolved without loading it."""
    if config.from_ar:
        return Path(config.from_ar)
    if config.from_scratch:
        return None
    from infill.models import resolve_model_dir

    try:
        return resolve_model_dir(config.base)
    except Exception as exc:  # ModelLoadError: no bundled default, missing dir
        raise TrainingError(f"no base model to fine-tune: {exc}") from exc


def _schedule(config: TrainConfig, state: dict) -> Callable[[int], float]:
    """Linear warm-up, then cosine to 0.1x over the steps, or over the time budget when that ends first
    (a ``--minutes`` or ``--max-cpu-minutes`` run anneals by the time it stops, whatever its step rate)."""

    def factor(step: int) -> float:
        if step < config.warmup_steps:
            return (step + 1) / config.warmup_steps
        progress = (step - config.warmup_steps) / max(1, config.step_limit() - config.warmup_steps)
        if config.max_cpu_minutes:
            progress = max(progress, state["cpu_s"] / (config.max_cpu_minutes * 60))
        if config.minutes:
            progress = max(progress, state["elapsed_s"] / (config.minutes * 60))
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
    objective = DiffusionObjective(model, shift=is_shifted_decoder(model) or is_block_decoder(model))
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
    accelerator = Accelerator(
        mixed_precision="bf16" if torch.cuda.is_available() else "no",
        gradient_accumulation_steps=config.grad_accum,
    )
    corpus_name = config.repo or config.corpus_archive or "installed Python packages"
    _say(accelerator, f"reading the corpus ({corpus_name})")
    corpus = load_corpus(config)
    if not corpus.heldout:
        raise TrainingError("the corpus has a single file: nothing to hold out for evaluation")
    out.mkdir(parents=True, exist_ok=True)  # only once the inputs are known good: a bad --repo leaves nothing
    run_fingerprint = fingerprint(config, corpus, _base_dir(config))
    with accelerator.main_process_first():  # --force and --update change ``out``: once, on the main process
        plan = plan_run(config, out, corpus, run_fingerprint)
    if plan.up_to_date is not None:  # the caller says so (infill train prints the message and the report)
        return _finished_result(out, plan)
    if plan.note:
        _say(accelerator, plan.note)
    _say(accelerator, f"{len(corpus.train)} files to train on, {len(corpus.heldout)} held out; loading")
    with accelerator.main_process_first():
        model, tokenizer, origin, base_dir = _model_and_tokenizer(config, corpus)
    if config.length_states and ensure_expand_token(model, tokenizer):
        _say(accelerator, f"added {EXPAND_TOKEN} to the tokenizer and the embeddings (length states)")
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
        length_states=config.length_states,
    )
    heldout_source = ExampleSource(corpus.heldout, tokenizer, seq_len, config.span_fraction, shifted=shifted)
    draw_train = _drawer(config, train_source)
    heldout_examples = heldout_batches(
        _drawer(config, heldout_source), config.eval_batches, config.batch_size, config.seed
    )

    optimizer = _optimizer(config, model)
    state = {"step": 0, "tokens": 0, "elapsed_s": 0.0, "cpu_s": 0.0}
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, _schedule(config, state))
    objective = _objective(config, model)
    objective, optimizer, scheduler = accelerator.prepare(objective, optimizer, scheduler)

    if plan.checkpoint is not None:
        accelerator.load_state(str(plan.checkpoint))
        state.update(json.loads((plan.checkpoint / "trainer_state.json").read_text()))
        _say(accelerator, f"resuming from step {state['step']} ({plan.checkpoint})")
    if accelerator.is_main_process:
        tokenizer.save_pretrained(str(out))  # available at once, e.g. for an AR peer sharing it
        config.write(out / "training_config.json")
        corpus.write_manifest(out / "training_manifest.json")

    eval_rows = heldout_rows(corpus.heldout, config.eval_spans, seed=config.seed)
    log_path = out / LOG_FILE
    rank = accelerator.process_index
    started = time.perf_counter() - state["elapsed_s"]
    cpu_started = time.process_time() - state["cpu_s"]
    heldout_ce, span_eval, completions = None, {}, []
    heldout_scores: dict[str, list[float]] = {}
    compare = base_dir is not None and config.compare_base
    names = name_gaps(corpus.train, corpus.heldout, config.eval_name_spans, config.seed) if compare else []
    gap_rows = eval_rows + [g.row for g in names]  # general gaps, then those on the repository's names
    name_batches = heldout_source.gap_batches([(g.row.prefix, g.row.middle, g.row.suffix) for g in names], 8)
    if compare:
        _say(accelerator, f"scoring the base model on {len(eval_rows)} + {len(names)} held-out gaps")
    base_completions = _base_completions(out, base_dir, gap_rows) if compare else []
    base_eval = score_rows(eval_rows, base_completions[: len(eval_rows)]) if compare and eval_rows else {}
    init = _init_record(config)

    def evaluate(spans: bool) -> None:
        nonlocal heldout_ce, heldout_scores, span_eval, completions
        _say(accelerator, f"step {state['step']}: held-out cross-entropy")
        heldout_scores = _heldout_scores(objective, heldout_examples, accelerator)
        heldout_ce = mean_heldout_ce(heldout_scores)
        accelerator.wait_for_everyone()
        if accelerator.is_main_process:
            unwrapped = accelerator.unwrap_model(objective).model
            _say(accelerator, f"step {state['step']}: writing the model to {out}")
            export_model_dir(unwrapped, tokenizer, out, config)
            if spans and gap_rows:
                _say(accelerator, f"step {state['step']}: scoring {len(gap_rows)} held-out gaps")
                completions = complete_with_model_dir(out, gap_rows)
                span_eval = score_rows(eval_rows, completions[: len(eval_rows)]) if eval_rows else {}
            record = {"step": state["step"], HELDOUT_CE: heldout_ce, **(span_eval if spans else {})}
            _append_log(log_path, {"eval": record})
            (out / "eval.json").write_text(json.dumps({**record, **init}, indent=2) + "\n")
            (out / "training_state.json").write_text(json.dumps(state) + "\n")
            write_loss_curve(log_path, out / "loss_curve.png")
            parameters = sum(p.numel() for p in unwrapped.parameters())
            base_numbers = {f"base_{k}": v for k, v in base_eval.items() if k != "rows"}
            numbers = {HELDOUT_CE: heldout_ce, **span_eval, **base_numbers}
            write_model_card(out, config, corpus, state, origin, numbers, parameters, init)
            share_files(out)
            logger.info("eval at step %d: %s", state["step"], record)

    bar = tqdm(
        total=None if config.step_limit() == UNBOUNDED_STEPS else config.step_limit(),
        initial=state["step"],
        disable=not accelerator.is_main_process,
        desc="train",
        unit="step",
    )
    window: list[tuple[int, float, float]] = []  # (tokens, CPU s, wall s) of the last steps, for the bar
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
        while state["step"] < config.step_limit():
            step = state["step"]
            step_cpu, step_wall = time.process_time(), time.perf_counter()
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
            step_times = (time.process_time() - step_cpu, time.perf_counter() - step_wall)
            window = [*window[-19:], (step_tokens, *step_times)]
            bar.set_postfix(loss=f"{loss_sum:.3f}", **_progress(window, config, state))
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
            done = state["step"] >= config.step_limit() or out_of_time
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
    if compare and not stop.requested and accelerator.is_main_process:
        _say(accelerator, "scoring the base model on the held-out examples")
        base_scores = _gap_scores(eval_rows, names, base_completions)
        base_objective = _base_objective(base_dir)
        base_scores |= _heldout_scores(base_objective, heldout_examples, accelerator)
        tuned_scores = heldout_scores | _gap_scores(eval_rows, names, completions)
        if name_batches:
            base_scores |= as_name_scores(_heldout_scores(base_objective, name_batches, accelerator))
            tuned_scores |= as_name_scores(_heldout_scores(objective, name_batches, accelerator))
        report = build_report(
            base_scores, tuned_scores, base_dir=str(base_dir), tuned_dir=str(out), source=str(config.repo)
        )
        write_report(report, out)
    if not stop.requested and accelerator.is_main_process:
        write_done(out, _done_record(run_fingerprint, plan, corpus, state, heldout_ce))
        share_files(out)
    return TrainResult(
        out, state["step"], state["tokens"], heldout_ce, span_eval, base_eval, report, stop.requested
    )


def _progress(window: list[tuple[int, float, float]], config: TrainConfig, state: dict) -> dict[str, str]:
    """Tokens per second (wall and CPU) over the last steps and the time left: the steps still to go at the
    recent pace, or the time budget's rest when that ends the run first."""
    tokens, cpu, wall = (sum(column) for column in zip(*window, strict=True))
    per_step = wall / len(window)
    left = (config.step_limit() - state["step"]) * per_step
    if config.minutes is not None:
        left = min(left, config.minutes * 60 - state["elapsed_s"])
    if config.max_cpu_minutes is not None:  # CPU seconds left, at the recent wall seconds per CPU second
        left = min(left, (config.max_cpu_minutes * 60 - state["cpu_s"]) * wall / max(1e-9, cpu))
    minutes, seconds = divmod(max(0, round(left)), 60)
    return {
        "tok/s": f"{tokens / max(1e-9, wall):.0f}",
        "tok/cpu-s": f"{tokens / max(1e-9, cpu):.0f}",
        "left": f"{minutes}:{seconds:02d}",
    }


def _gap_scores(rows: list[EvalRow], names: list[NameGap], completions: list[str]) -> dict[str, list[float]]:
    """Per-gap scores of the general gaps, then of the gaps on repository names (``completions``: both)."""
    return row_scores(rows, completions[: len(rows)]) | name_gap_scores(names, completions[len(rows) :])


def _base_objective(base_dir: Path) -> DiffusionObjective:
    base_model, _ = load_base_model(base_dir)
    return DiffusionObjective(base_model, shift=is_shifted_decoder(base_model))


def _done_record(fp: str, plan: RunPlan, corpus: Corpus, state: dict, heldout_ce: float | None) -> dict:
    """run_complete.json: what makes a repeat a no-op, and what an --update scales its steps by (the first
    run's steps per training character: an update's steps give the changed files as many passes)."""
    source = corpus.manifest.get("source") or {}
    commit = source.get("commit") if isinstance(source, dict) else None
    if plan.done is not None and "basis" in plan.done:  # an update: keep the first run's basis
        basis = plan.done["basis"]
    else:
        basis = {"steps": state["step"], "train_chars": corpus.manifest.get("train_chars", 0)}
    return {
        "fingerprint": fp,
        "commit": commit or "(no commit)",
        "steps": state["step"],
        "tokens": state["tokens"],
        HELDOUT_CE: heldout_ce,
        "basis": basis,
    }


def _finished_result(out: Path, plan: RunPlan) -> TrainResult:
    """The result of a run that is already done: its numbers as recorded, nothing loaded."""
    done = plan.done or {}
    report = read_report(out)
    return TrainResult(
        out,
        done.get("steps", 0),
        done.get("tokens", 0),
        done.get(HELDOUT_CE),
        report=report,
        up_to_date=plan.up_to_date,
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
    wall = config.minutes is not None and state["elapsed_s"] > config.minutes * 60
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
    if config.objective == "block-diffusion" and config.from_ar:
        return functools.partial(aligned_block_batch, source, block_size=config.block_size)
    if config.objective == "block-diffusion":
        return functools.partial(block_batch, source, block_size=config.block_size)
    return source.diffusion_batch


def _heldout_scores(objective: torch.nn.Module, batches: list[Batch], accelerator: Accelerator) -> dict:
    """Per-example held-out cross-entropy and accuracy of the (unwrapped) model, as training computes."""
    objective = accelerator.unwrap_model(objective).to(accelerator.device)
    with accelerator.autocast():
        return example_scores(objective, batches, accelerator.device)


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
