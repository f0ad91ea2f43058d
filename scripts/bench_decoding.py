"""Parallel decoding sweep: threshold and block size -> forward passes per token -> MBPP quality.

    python scripts/bench_decoding.py [--model DIR] [--single 200] [--multi 100]
        [--thresholds 0.5 0.7 0.9 1.0] [--block-sizes 4 8 16] [--steps 32] [--block-steps 0]
        [--cache-refresh 0] [--estimate-length off] [--threads 1] [--out sweep.md] [--json sweep.json]

For every combination of the listed settings (the rest from the model's generation_config.json) it decodes
the same spread subsets of MBPP single-line (line mode, at most 32 tokens) and multi-line (block mode, at
most 96 tokens) infilling greedily, runs the programs in the sandbox, and prints one Markdown table: forward
passes per generated token beside pass@1, exact match and edit similarity, each with its standard error over
the tasks (the noise to compare settings by). ``--block-sizes 0`` means one block (the "threshold" strategy);
``--cache-refresh N`` decodes with the context cache refreshed at each block and every N steps.
"""

from __future__ import annotations

import argparse
import itertools
import json
import logging
import math
import statistics
import sys
from dataclasses import asdict, dataclass, replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing
sys.path.insert(0, str(Path(__file__).resolve().parent))  # mbpp_bench_cli, also when loaded by path

from mbpp_bench_cli import bench_parser, run_header, start_run

from infill.engine.types import DecodeConfig
from infill.errors import InfillError
from training.eval.bench import DEFAULT_MAX_TOKENS, DEFAULT_MODES, BenchTask, load_tasks, resolve_bench
from training.eval.diffusion import DiffusionGenerator
from training.eval.generation import GenerationStats
from training.eval.harness import EvalReport, evaluate
from training.sandbox import SandboxLimits

logger = logging.getLogger("bench_decoding")


@dataclass(frozen=True)
class SweepRow:
    bench: str
    strategy: str
    threshold: float
    block_size: int
    steps: int
    block_steps: int
    cache_refresh: int
    estimate_length: bool
    tasks: int
    passes_per_completion: float
    passes_per_token: float | None
    pass_at_1: float | None
    pass_at_1_se: float | None
    exact_match: float
    edit_similarity: float
    edit_similarity_se: float
    tokens_per_second: float | None
    per_task_edit_similarity: list[float]  # in task order, for paired comparisons of two settings


def standard_error(values: list[float]) -> float:
    return statistics.stdev(values) / math.sqrt(len(values)) if len(values) > 1 else 0.0


def sweep_configs(base: DecodeConfig, args: argparse.Namespace) -> list[DecodeConfig]:
    estimates = {"off": [False], "on": [True], "both": [False, True]}[args.estimate_length]
    configs = []
    for threshold, block, steps, block_steps, refresh, estimate in itertools.product(
        args.thresholds, args.block_sizes, args.steps, args.block_steps, args.cache_refresh, estimates
    ):
        strategy = "blocks" if block > 0 else "threshold"
        configs.append(
            replace(
                base,
                strategy=strategy,
                threshold=threshold,
                block_size=block if block > 0 else base.block_size,
                steps=steps,
                block_steps=block_steps,
                cache_refresh=refresh,
                estimate_length=estimate,
                temperature=0.0,
                num_candidates=1,
            )
        )
    return configs


def run_one(
    generator: DiffusionGenerator,
    tasks: list[BenchTask],
    bench: str,
    config: DecodeConfig,
    args: argparse.Namespace,
    limits: SandboxLimits,
) -> SweepRow:
    generator.config = config
    generator.stats = generator.infiller.engine.stats = GenerationStats()  # type: ignore[attr-defined]
    generator.mode, generator.max_tokens = DEFAULT_MODES[bench], DEFAULT_MAX_TOKENS[bench]
    report: EvalReport = evaluate(
        tasks,
        generator,
        name=generator.name,
        bench=bench,
        mode=generator.mode,
        max_tokens=generator.max_tokens,
        batch_size=args.batch_size,
        limits=limits,
        workers=args.workers,
        with_floor=False,
    )
    passed = [float(r.passed) for r in report.results if r.passed is not None]
    return SweepRow(
        bench=bench,
        strategy=config.strategy,
        threshold=config.threshold,
        block_size=config.block_size if config.strategy == "blocks" else 0,
        steps=config.steps,
        block_steps=config.block_steps,
        cache_refresh=config.cache_refresh,
        estimate_length=config.estimate_length,
        tasks=report.tasks,
        passes_per_completion=generator.stats.forward_passes / max(1, generator.stats.rows),
        passes_per_token=report.forward_passes_per_token,
        pass_at_1=report.pass_at_1,
        pass_at_1_se=standard_error(passed) if passed else None,
        exact_match=report.exact_match,
        edit_similarity=report.edit_similarity,
        edit_similarity_se=standard_error([r.edit_similarity for r in report.results]),
        tokens_per_second=report.tokens_per_second,
        per_task_edit_similarity=[r.edit_similarity for r in report.results],
    )


def table(rows: list[SweepRow]) -> str:
    def pct(value: float | None, se: float | None = None) -> str:
        if value is None:
            return "n/a"
        return f"{100 * value:.1f}%" + ("" if se is None else f" ± {100 * se:.1f}")

    lines = [
        "| bench | block | threshold | steps | block steps | cache refresh | length est. | passes/completion "
        "| passes/token | pass@1 | exact match | edit sim. | tokens/s |",
        "|---|---:|---:|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        ppt = "n/a" if r.passes_per_token is None else f"{r.passes_per_token:.2f}"
        tps = "n/a" if r.tokens_per_second is None else f"{r.tokens_per_second:.1f}"
        lines.append(
            f"| {r.bench} | {r.block_size or 'one'} | {r.threshold:g} | {r.steps} "
            f"| {r.block_steps or 'no cap'} "
            f"| {r.cache_refresh or 'off'} | {'on' if r.estimate_length else 'off'} "
            f"| {r.passes_per_completion:.1f} | {ppt} "
            f"| {pct(r.pass_at_1, r.pass_at_1_se)} | {pct(r.exact_match)} "
            f"| {r.edit_similarity:.3f} ± {r.edit_similarity_se:.3f} | {tps} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = bench_parser(__doc__, threads=1)
    parser.add_argument("--single", type=int, default=200, help="single-line tasks (0 to skip)")
    parser.add_argument("--multi", type=int, default=100, help="multi-line tasks (0 to skip)")
    parser.add_argument("--thresholds", type=float, nargs="+", default=[0.5, 0.7, 0.9, 1.0])
    parser.add_argument("--block-sizes", type=int, nargs="+", default=[4, 8, 16], help="0: one block")
    parser.add_argument("--steps", type=int, nargs="+", default=[32], help="steps for a full canvas")
    parser.add_argument(
        "--block-steps", type=int, nargs="+", default=[0], help="most steps per block (0: no cap)"
    )
    parser.add_argument("--cache-refresh", type=int, nargs="+", default=[0], help="0: no context cache")
    parser.add_argument("--estimate-length", choices=("off", "on", "both"), default="off")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--out", default=None, help="also write the Markdown section here")
    parser.add_argument("--json", default=None, help="also write every row as JSON")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr, format="%(asctime)s %(name)s: %(message)s")
    load_before = start_run(args.threads)
    try:
        from infill.models import resolve_model_dir

        model_dir = resolve_model_dir(args.model)
        generator = DiffusionGenerator(model_dir, device=args.device, batch_size=args.batch_size)
        base = generator.infiller.engine.default_config()
        limits = SandboxLimits(timeout_s=args.timeout)
        rows: list[SweepRow] = []
        for bench, limit in (("single", args.single), ("multi", args.multi)):
            if limit <= 0:
                continue
            tasks = load_tasks(resolve_bench(bench, args.bench_dir), limit, spread=True)
            for config in sweep_configs(base, args):
                rows.append(run_one(generator, tasks, bench, config, args, limits))
                print(table(rows[-1:]).splitlines()[-1], file=sys.stderr, flush=True)
    except InfillError as error:
        print(f"bench_decoding: error: {error}", file=sys.stderr)
        return 2
    text = "\n".join(
        [
            *run_header("bench_decoding.py", argv, load_before),
            f"- Model: `{model_dir.name}`; other sampler settings from its generation_config.json: {base}",
            "- Decoding: greedy, one canvas per task; single: line mode, at most 32 tokens; multi: block "
            "mode, at most 96 tokens. ± is the standard error over the tasks.",
            "",
            table(rows),
        ]
    )
    print(text)
    if args.out:
        Path(args.out).write_text(text, encoding="utf-8")
    if args.json:
        Path(args.json).write_text(json.dumps([asdict(r) for r in rows], indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
