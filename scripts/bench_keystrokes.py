"""Line fills at each keystroke through the engine (``InfillEngine.fill``, what the server calls), CPU time.

The editor scenario of ``bench_lsp_latency.py --scenario typing``: a partial statement typed into a random
line of the generated 2,000-line module, then ``KEYSTROKES`` typed one character at a time, a line fill after
each. Models run side by side, keystroke by keystroke, so a shared machine's load falls on all alike; the
CPU time of this one-thread process is the nearer estimate of an idle machine's wall time. A block-diffusion
model fills every keystroke twice: warm (the prefix cache the previous keystroke left, as the server keeps
it) and cold (an empty cache), the same greedy result either way (the cache is exact).

    OMP_NUM_THREADS=1 python scripts/bench_keystrokes.py --model runs/a --model runs/b [--places 12]
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing
from infill.engine import InfillEngine
from infill.engine.block_decoding import PrefixCaches
from infill.engine.types import FillRequest
from scripts.bench_lsp_latency import KEYSTROKES, PARTIAL_LINES, generated_python


def timed_fill(engine: InfillEngine, request: FillRequest) -> tuple[float, float, str]:
    """(wall ms, CPU ms, text) of one fill."""
    wall, cpu = time.perf_counter(), time.process_time()
    (result,) = engine.fill([request])
    text = result.best.text if result.best is not None else ""
    return (time.perf_counter() - wall) * 1000, (time.process_time() - cpu) * 1000, text


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", action="append", required=True, type=Path)
    parser.add_argument("--places", type=int, default=12, help="random lines typed into")
    parser.add_argument("--max-tokens", type=int, default=16)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(1)
    engines = {path.name: InfillEngine.from_pretrained(path, device="cpu") for path in args.model}
    lines = generated_python(2000, args.seed).splitlines(keepends=True)
    rng = random.Random(args.seed)
    samples: dict[str, list[tuple[float, float, str]]] = {}
    for _ in range(args.places):
        line = rng.randrange(10, len(lines) - 10)
        before, after = rng.choice(PARTIAL_LINES)
        head, tail = "".join(lines[:line]), after + "\n" + "".join(lines[line:])
        for typed in range(len(KEYSTROKES) + 1):
            request = FillRequest(
                head + before + KEYSTROKES[:typed], tail, max_tokens=args.max_tokens, mode="line"
            )
            for name, engine in engines.items():
                warm = timed_fill(engine, request)
                if typed == 0:  # the partial statement itself: it only warms the cache for the keystrokes
                    continue
                if engine.block_model is None:
                    samples.setdefault(name, []).append(warm)
                    continue
                samples.setdefault(f"{name} warm", []).append(warm)
                kept, engine.prefix_caches = engine.prefix_caches, PrefixCaches()
                cold = timed_fill(engine, request)
                engine.prefix_caches = kept
                assert cold[2] == warm[2], "the prefix cache is exact: warm and cold fill alike"
                samples.setdefault(f"{name} cold", []).append(cold)
    print("| model | keystrokes | p50 wall ms | p50 CPU ms | mean CPU ms | non-empty fills |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, rows in samples.items():
        walls, cpus = [r[0] for r in rows], [r[1] for r in rows]
        filled = sum(bool(r[2].strip()) for r in rows) / len(rows)
        print(
            f"| {name} | {len(rows)} | {statistics.median(walls):.1f} | {statistics.median(cpus):.1f} "
            f"| {statistics.fmean(cpus):.1f} | {filled:.0%} |"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
