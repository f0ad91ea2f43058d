"""Training throughput per core against the CPU's arithmetic limit, and what each trainer change buys.

    python scripts/bench_train_step.py                      # peak, FLOPs, old vs new trainer step
    python scripts/bench_train_step.py --variants new compiled --rounds 30
    python scripts/bench_train_step.py --model runs/default-ar-fim --variants old new

1. Peak: FP32 matmul GFLOP/s of one core (square sgemm, the best case) and of the model's own shapes.
2. Model FLOPs per token: counted by ``torch.utils.flop_counter`` on one forward + backward of a real batch
   (attention run in eager mode so its matmuls are counted too), divided by the tokens in the batch.
3. Steps: each variant times whole trainer steps (draw the batch, forward, backward, clip, optimizer step) on
   the same batches, round-robin, so every variant sees the same load from other processes. Time is CPU time
   of this process (one thread), which time-slicing by other processes does not inflate; the median and the
   best step are reported, and utilisation = FLOPs per second / peak.

Variants (diffusion models; an AR peer has old / new only):
  old       what the trainer did before: the model's forward with labels (it also computes its own unused
            loss), gap contexts tokenized from characters for every example, AdamW with foreach.
  new       training.losses.DiffusionObjective (LM head on masked positions only, no unused loss, no attention
            mask when nothing is padded), context tokens cut from the cached file tokens, fused AdamW.
  compiled  new + ``torch.compile`` of the encoder stack (the trainer's --compile).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

import torch
from torch.nn import functional as F

from infill.models import resolve_model_dir
from training.config import TrainConfig
from training.eval.generation import model_family
from training.losses import ARObjective, DiffusionObjective, backbone_and_head
from training.model_factory import load_base_model, load_tokenizer_from
from training.objective import Batch, ExampleSource
from training.trainer import load_corpus

Step = Callable[[int], int]  # step index -> tokens processed


def peak_gflops(seconds: float = 4.0) -> dict[str, float]:
    """Best-case FP32 matmul rate of this thread, square and at the default model's shapes."""
    shapes = {"2048^3": (2048, 2048, 2048), "1024^3": (1024, 1024, 1024)}
    shapes |= {"4096x128x768 (Wi)": (4096, 128, 768), "4096x384x128 (Wo)": (4096, 384, 128)}
    shapes |= {"1024x128x4096 (head)": (1024, 128, 4096)}
    rates = {}
    for name, (m, k, n) in shapes.items():
        a, b = torch.randn(m, k), torch.randn(k, n)
        a @ b
        reps, started = 0, time.process_time()
        while time.process_time() - started < seconds / len(shapes):
            a @ b
            reps += 1
        rates[name] = 2 * m * k * n * reps / (time.process_time() - started) / 1e9
    return rates


def model_flops_per_token(model_dir: Path, batch: Batch, is_ar: bool) -> float:
    """Forward + backward FLOPs of one batch divided by its tokens (attention in eager mode, so counted)."""
    from torch.utils.flop_counter import FlopCounterMode

    model = _load(model_dir, is_ar, attention="eager")
    objective = ARObjective(model) if is_ar else DiffusionObjective(model)
    counter = FlopCounterMode(display=False)
    with counter:
        objective(batch).backward()
    return counter.get_total_flops() / int(batch.attention_mask.sum())


def _load(model_dir: Path, is_ar: bool, attention: str = "sdpa") -> torch.nn.Module:
    if is_ar:
        from transformers import AutoModelForCausalLM

        return AutoModelForCausalLM.from_pretrained(str(model_dir), attn_implementation=attention)
    model, _ = load_base_model(model_dir)
    model.config._attn_implementation = attention
    return model


def make_step(
    name: str, model_dir: Path, is_ar: bool, sources: dict[str, ExampleSource], batch_size: int
) -> Step:
    model = _load(model_dir, is_ar)
    model.train()
    old = name == "old"
    optimizer = torch.optim.AdamW(
        model.parameters(), lr=1e-4, fused=not old, foreach=None if not old else True
    )
    source = sources["old" if old else "new"]
    if is_ar:
        objective: torch.nn.Module = ARObjective(model)
        draw = source.ar_batch
    else:
        objective = _old_loss(model) if old else DiffusionObjective(model)
        draw = source.diffusion_batch
        if name == "compiled":
            backbone_and_head(model)[0].compile(dynamic=False)

    def step(index: int) -> int:
        batch = draw(batch_size, 0, index, 0)
        loss = objective(batch)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad()
        return int(batch.attention_mask.sum())

    return step


def _old_loss(model: torch.nn.Module) -> Callable[[Batch], torch.Tensor]:
    """The trainer's loss before training.losses: forward with labels, then the weighted CE again."""

    def loss(batch: Batch) -> torch.Tensor:
        out = model(input_ids=batch.input_ids, attention_mask=batch.attention_mask, labels=batch.labels)
        selected = batch.labels != -100
        logits = out.logits if out.logits.dim() == 2 else out.logits[selected]
        ce = F.cross_entropy(logits.float(), batch.labels[selected], reduction="none")
        return (ce * batch.weights[selected]).sum() / max(1, batch.maskable)

    return loss


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", default=None, help="model directory (default: the bundled model)")
    parser.add_argument("--variants", nargs="+", default=["old", "new", "compiled"])
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--seq-len", type=int, default=256)
    parser.add_argument("--rounds", type=int, default=20, help="timed steps per variant (after 2 warm-up)")
    parser.add_argument("--no-peak", action="store_true", help="skip the matmul peak measurement")
    args = parser.parse_args()
    torch.set_num_threads(1)

    model_dir = Path(resolve_model_dir(args.model))
    is_ar = model_family(model_dir) == "psm"
    variants = [v for v in args.variants if not (is_ar and v == "compiled")]
    tokenizer = load_tokenizer_from(model_dir)
    corpus = load_corpus(TrainConfig(from_python_packages=True, max_corpus_chars=3_000_000))
    sources = {"new": ExampleSource(corpus.train, tokenizer, args.seq_len, 0.6)}
    sources["old"] = ExampleSource(corpus.train, tokenizer, args.seq_len, 0.6)
    sources["old"].cut_at_newlines = False  # tokenize every gap's context from characters, as before

    print(
        f"model {model_dir} ({'AR FIM' if is_ar else 'diffusion'}), batch {args.batch_size} x {args.seq_len}"
    )
    peak = 0.0
    if not args.no_peak:
        rates = peak_gflops()
        peak = max(rates.values())
        print("FP32 matmul, one thread: " + ", ".join(f"{k} {v:.1f}" for k, v in rates.items()) + " GFLOP/s")
    flops = model_flops_per_token(
        model_dir,
        sources["new"].diffusion_batch(args.batch_size, 0, 0, 0)
        if not is_ar
        else sources["new"].ar_batch(args.batch_size, 0, 0, 0),
        is_ar,
    )
    print(f"model FLOPs per token, forward + backward: {flops / 1e6:.2f} M")

    steps = {}
    for name in variants:
        started = time.process_time()
        steps[name] = make_step(name, model_dir, is_ar, sources, args.batch_size)
        for index in range(2):  # warm-up (and compilation)
            steps[name](index)
        print(f"{name}: warm-up {time.process_time() - started:.1f} CPU-s")
    times: dict[str, list[tuple[float, int]]] = {name: [] for name in variants}
    for index in range(2, 2 + args.rounds):
        for name in variants:
            started = time.process_time()
            tokens = steps[name](index)
            times[name].append((time.process_time() - started, tokens))

    print()
    print("| variant | CPU-s/step, median | best | tokens per CPU-s, median | best | GFLOP/s | utilisation |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    base_rate = None
    for name in variants:
        seconds = [s for s, _ in times[name]]
        tokens = statistics.mean(t for _, t in times[name])
        median, best = statistics.median(seconds), min(seconds)
        rate = tokens / median
        base_rate = base_rate or rate
        gflops = flops * rate / 1e9
        use = f"{gflops / peak:.0%}" if peak else "n/a"
        speedup = rate / base_rate
        print(
            f"| {name} | {median:.3f} | {best:.3f} | {rate:,.0f} ({speedup:.2f}x) | {tokens / best:,.0f} "
            f"| {gflops:.1f} | {use} |"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
