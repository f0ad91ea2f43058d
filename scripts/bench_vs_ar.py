"""Latency side by side with the autoregressive peer: diffusion ÷ AR for a 24-token and a 64-token completion.

    python scripts/bench_vs_ar.py --ar-model DIR [--model DIR] [--tasks 50] [--threads 1] [--out FILE]

The peer is a causal LM of the same size trained on the same data with PSM fill-in-the-middle examples
(training/ar_generate.py: greedy decoding with a KV cache). Both models complete the same MBPP tasks one at a
time (batch 1, as an editor asks), alternating per task so that both see the same machine load:

- 24 tokens: single-line tasks, line mode, at most 24 tokens;
- 64 tokens: multi-line tasks, block mode, at most 64 tokens.

For each model and length it prints the median and 90th-percentile wall time per completion, the mean
number of tokens generated, pass@1 and edit similarity, and the latency ratio diffusion ÷ AR of the medians
(the issue's goal: at most 0.5). The diffusion model uses its generation_config.json defaults.
"""

from __future__ import annotations

import argparse
import logging
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing
sys.path.insert(0, str(Path(__file__).resolve().parent))  # mbpp_bench_cli, also when loaded by path

from mbpp_bench_cli import bench_parser, run_header, start_run

from infill.errors import InfillError
from training.eval.bench import BenchTask, load_tasks, resolve_bench
from training.eval.generation import GenerateFn, load_generator
from training.eval.harness import close_last_line, score_completions
from training.sandbox import SandboxLimits

logger = logging.getLogger("bench_vs_ar")

# (label, MBPP set, fill mode, token budget)
LENGTHS = (("24 tokens", "single", "line", 24), ("64 tokens", "multi", "block", 64))


@dataclass(frozen=True)
class Timing:
    model: str
    length: str
    tasks: int
    median_ms: float
    p90_ms: float
    tokens: float  # mean generated tokens per completion
    pass_at_1: float | None
    edit_similarity: float


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def side_by_side(
    models: dict[str, Path],
    tasks: list[BenchTask],
    length: tuple[str, str, str, int],
    args: argparse.Namespace,
    limits: SandboxLimits,
) -> list[Timing]:
    label, _, mode, max_tokens = length
    generators: dict[str, GenerateFn] = {
        name: load_generator(path, mode=mode, max_tokens=max_tokens, device=args.device, batch_size=1)
        for name, path in models.items()
    }
    for generate in generators.values():  # warm-up: first calls allocate memory and pick kernels
        generate([(tasks[0].prompt, tasks[0].suffix)])
    times: dict[str, list[float]] = {name: [] for name in generators}
    tokens: dict[str, list[int]] = {name: [] for name in generators}
    completions: dict[str, list[str]] = {name: [] for name in generators}
    for task in tasks:
        for name, generate in generators.items():  # alternate per task: both see the same load
            stats = generate.stats  # type: ignore[attr-defined]  # both generators carry GenerationStats
            before = stats.generated_tokens
            start = time.perf_counter()
            (text,) = generate([(task.prompt, task.suffix)])
            times[name].append((time.perf_counter() - start) * 1000)
            tokens[name].append(stats.generated_tokens - before)
            completions[name].append(close_last_line(task, text))
    timings = []
    for name in generators:
        report = score_completions(
            tasks,
            completions[name],
            name=name,
            bench=label,
            limits=limits,
            workers=args.workers,
            with_floor=False,
        )
        timings.append(
            Timing(
                model=name,
                length=label,
                tasks=len(tasks),
                median_ms=statistics.median(times[name]),
                p90_ms=percentile(times[name], 0.9),
                tokens=statistics.fmean(tokens[name]),
                pass_at_1=report.pass_at_1,
                edit_similarity=report.edit_similarity,
            )
        )
    return timings


def table(timings: list[Timing]) -> str:
    lines = [
        "| completion | model | tasks | median ms | p90 ms | tokens | pass@1 | edit sim. | diffusion ÷ AR |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    by_length: dict[str, list[Timing]] = {}
    for timing in timings:
        by_length.setdefault(timing.length, []).append(timing)
    for label, rows in by_length.items():
        diffusion, ar = rows[0], rows[-1]
        ratio = diffusion.median_ms / ar.median_ms if ar.median_ms > 0 else float("nan")
        for row in rows:
            passed = "n/a" if row.pass_at_1 is None else f"{100 * row.pass_at_1:.1f}%"
            lines.append(
                f"| {label} | {row.model} | {row.tasks} | {row.median_ms:.0f} | {row.p90_ms:.0f} "
                f"| {row.tokens:.1f} | {passed} | {row.edit_similarity:.3f} "
                f"| {f'{ratio:.2f}' if row is diffusion else ''} |"
            )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = bench_parser(__doc__, threads=1)
    parser.add_argument("--ar-model", required=True, help="the AR FIM peer dir (config infill_format psm)")
    parser.add_argument("--tasks", type=int, default=50, help="tasks per completion length")
    parser.add_argument("--out", default=None, help="also write the Markdown section here")
    args = parser.parse_args(argv)
    if args.tasks < 1:
        parser.error("--tasks must be at least 1")
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    load_before = start_run(args.threads)
    try:
        from infill.models import resolve_model_dir

        diffusion = resolve_model_dir(args.model)
        models = {diffusion.name: diffusion, Path(args.ar_model).name: Path(args.ar_model)}
        if len(models) < 2:
            parser.error("the two models need different directory names")
        limits = SandboxLimits(timeout_s=args.timeout)
        timings: list[Timing] = []
        for length in LENGTHS:
            tasks = load_tasks(resolve_bench(length[1], args.bench_dir), args.tasks, spread=True)
            timings += side_by_side(models, tasks, length, args, limits)
    except InfillError as error:
        print(f"bench_vs_ar: error: {error}", file=sys.stderr)
        return 2
    text = "\n".join(
        [
            *run_header("bench_vs_ar.py", argv, load_before),
            "- One completion at a time (batch 1), models alternating per task; greedy decoding; tokens: "
            "mean generated tokens per completion; pass@1 and edit similarity on the same tasks.",
            "",
            table(timings),
        ]
    )
    print(text)
    if args.out:
        Path(args.out).write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
