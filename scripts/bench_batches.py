"""How fast the training data path is: corpus loading and batch drawing, with and without worker processes.

    python scripts/bench_batches.py --archive DIR [--chars 20000000] [--workers 0 2] [--seq-len 512]

On a GPU the model step is fast and this path decides the tokens per second: the GPU recipe gives each of its
two training processes ``--data-workers`` processes. Prints one line per measurement.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from training.corpus import corpus_from_archive
from training.model_factory import new_tokenizer
from training.objective import ExampleSource
from training.prefetch import batch_stream


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--archive", required=True, help="a corpus archive dir (python -m training.archive)")
    parser.add_argument("--chars", type=int, default=20_000_000, help="characters of it to load")
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 2])
    parser.add_argument("--seq-len", type=int, default=512)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--batches", type=int, default=10)
    args = parser.parse_args(argv)
    began = time.perf_counter()
    corpus = corpus_from_archive(args.archive, max_total_chars=args.chars)
    chars = sum(len(f.text) for f in corpus.train)
    print(f"read {len(corpus.train)} files, {chars:,} characters in {time.perf_counter() - began:.1f} s")
    began = time.perf_counter()
    tokenizer = new_tokenizer(corpus.train, 8192)
    print(f"tokenizer (8192) trained in {time.perf_counter() - began:.1f} s")
    began = time.perf_counter()
    source = ExampleSource(corpus.train, tokenizer, args.seq_len, workers=max(1, max(args.workers)))
    seconds = time.perf_counter() - began
    print(
        f"ExampleSource: {chars / seconds / 1e6:.2f}M characters/s ({seconds:.1f} s), "
        f"{chars / source.tokens:.2f} characters per token"
    )
    for draw in ("diffusion_batch", "ar_batch"):
        for workers in args.workers:
            stream = batch_stream(
                getattr(source, draw), batch_size=args.batch_size, seed=0, rank=0, start=0, workers=workers
            )
            next(stream)  # workers started
            began = time.perf_counter()
            for _ in range(args.batches):
                next(stream)
            rate = args.batches * args.batch_size * args.seq_len / (time.perf_counter() - began)
            print(f"{draw}, {workers} workers: {rate:,.0f} tokens/s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
