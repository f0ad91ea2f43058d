"""Training throughput without the trainer around it: forward + backward + optimizer step on real batches.

Draws batches from the permissively licensed Python packages corpus exactly as ``infill train`` does, then
times optimizer steps of a model directory (the bundled model by default; an AR FIM peer is detected from its
config) and prints tokens per second for each thread count.

    python scripts/bench_train_step.py --threads 1 2
    python scripts/bench_train_step.py --model runs/default-ar-fim --threads 1
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from infill.models import resolve_model_dir
from training.config import TrainConfig
from training.eval.generation import model_family
from training.model_factory import load_base_model, load_tokenizer_from
from training.objective import ExampleSource, ar_loss, diffusion_loss
from training.trainer import load_corpus


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="model directory (default: the bundled model)")
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2], help="torch thread counts to time")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--seq-len", type=int, default=256)
    parser.add_argument("--steps", type=int, default=4, help="timed steps per thread count (after 1 warm-up)")
    args = parser.parse_args()

    model_dir = resolve_model_dir(args.model)
    is_ar = model_family(model_dir) == "psm"
    if is_ar:
        from transformers import AutoModelForCausalLM

        model = AutoModelForCausalLM.from_pretrained(str(model_dir))
        tokenizer = load_tokenizer_from(model_dir)
    else:
        model, tokenizer = load_base_model(Path(model_dir))
    corpus = load_corpus(TrainConfig(from_python_packages=True, max_corpus_chars=3_000_000))
    source = ExampleSource(corpus.train, tokenizer, args.seq_len, 0.6)
    draw, loss_fn = (source.ar_batch, ar_loss) if is_ar else (source.diffusion_batch, diffusion_loss)
    batches = [draw(args.batch_size, 0, step, 0) for step in range(args.steps + 1)]
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    model.train()
    kind = "AR FIM" if is_ar else "diffusion"
    print(f"model {model_dir} ({kind}), batch {args.batch_size} x {args.seq_len}")
    for threads in args.threads:
        torch.set_num_threads(threads)
        started = 0.0
        tokens = 0
        for index, batch in enumerate(batches):
            if index == 1:  # the first step warms up allocations and is not timed
                started = time.perf_counter()
            loss = loss_fn(model, batch)
            loss.backward()
            optimizer.step()
            optimizer.zero_grad()
            if index >= 1:
                tokens += int(batch.attention_mask.sum())
        seconds = time.perf_counter() - started
        print(f"threads {threads}: {seconds / args.steps:.2f} s/step, {tokens / seconds:,.0f} tokens/s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
