"""Benchmark the diffusion model against its autoregressive FIM peer on the same MBPP infilling subsets.

    python scripts/bench_infill.py --ar-model runs/default-ar-fim [--model infill/default_model]
        [--single 100] [--multi 50] [--threads 1] [--out bench_infill.md] [--json bench_infill.json]

For each bench (single-line, multi-line) it scores the canonical solutions (sanity check) and the empty
completion (the floor) on the subset, then both models with greedy decoding, and writes a Markdown section
for BENCHMARKS.md: the exact command, hardware, date, versions, model sizes and one table.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing
sys.path.insert(0, str(Path(__file__).resolve().parent))  # mbpp_bench_cli, also when loaded by path

from mbpp_bench_cli import bench_parser, run_header, start_run

from infill.errors import InfillError
from training.eval.bench import DEFAULT_MAX_TOKENS, DEFAULT_MODES, load_tasks, resolve_bench
from training.eval.environment import describe
from training.eval.harness import EvalReport, evaluate, format_table, score_completions
from training.sandbox import SandboxLimits

logger = logging.getLogger("bench_infill")


def parameter_count(model_dir: Path) -> int:
    """Parameters stored in the directory's safetensors files (tied weights are stored once)."""
    from safetensors import safe_open

    total = 0
    for path in sorted(model_dir.glob("*.safetensors")):
        with safe_open(str(path), framework="pt") as weights:
            for name in weights.keys():  # noqa: SIM118 - safe_open is not a Mapping
                count = 1
                for size in weights.get_slice(name).get_shape():
                    count *= size
                total += count
    return total


def describe_model(model_dir: Path) -> str:
    config = json.loads((model_dir / "config.json").read_text(encoding="utf-8"))
    arch = ",".join(config.get("architectures") or [config.get("model_type", "?")])
    fmt = " PSM" if config.get("infill_format") == "psm" else ""
    shown = os.path.relpath(model_dir) if model_dir.is_absolute() else str(model_dir)
    text = (
        f"`{shown}` ({arch}{fmt}, {parameter_count(model_dir) / 1e6:.2f}M parameters, "
        f"{config.get('hidden_size')} hidden x {config.get('num_hidden_layers')} layers, "
        f"window {config.get('max_position_embeddings')})"
    )
    generation = model_dir / "generation_config.json"
    if not fmt and generation.is_file():
        sampler = json.loads(generation.read_text(encoding="utf-8")).get("infill") or {}
        text += ", sampler " + ", ".join(f"{key}={value}" for key, value in sampler.items())
    return text


def run_bench(
    bench: str, limit: int, models: list[Path], args: argparse.Namespace, limits: SandboxLimits
) -> list[EvalReport]:
    from training.eval.generation import load_generator

    tasks = load_tasks(resolve_bench(bench, args.bench_dir), limit, spread=True)
    floor = score_completions(
        tasks,
        [""] * len(tasks),
        name="empty",
        bench=bench,
        limits=limits,
        workers=args.workers,
        with_floor=False,
    ).pass_at_1
    canonical = score_completions(
        tasks,
        [t.canonical_solution for t in tasks],
        name="canonical",
        bench=bench,
        limits=limits,
        workers=args.workers,
        with_floor=False,
    )
    reports = [canonical]
    mode, max_tokens = DEFAULT_MODES[bench], DEFAULT_MAX_TOKENS[bench]
    for model_dir in models:
        generate = load_generator(
            model_dir, mode=mode, max_tokens=max_tokens, device=args.device, batch_size=args.batch_size
        )
        logger.info("%s on %s: %d tasks", model_dir.name, bench, len(tasks))
        reports.append(
            evaluate(
                tasks,
                generate,
                name=model_dir.name,
                bench=bench,
                mode=mode,
                max_tokens=max_tokens,
                batch_size=args.batch_size,
                limits=limits,
                workers=args.workers,
                with_floor=False,
            )
        )
    for report in reports:
        report.empty_floor = floor
    return reports


def markdown(
    reports: list[EvalReport],
    models: list[Path],
    args: argparse.Namespace,
    argv: list[str],
    load_before: float,
) -> str:
    settings = ", ".join(
        f"{bench}: {DEFAULT_MODES[bench]} mode, at most {DEFAULT_MAX_TOKENS[bench]} tokens"
        for bench in ("single", "multi")
    )
    lines = [
        "## Functional infilling: diffusion model vs autoregressive FIM peer (MBPP)",
        "",
        *run_header("bench_infill.py", argv, load_before),
        *[f"- Model: {describe_model(m)}" for m in models],
        f"- Subsets: {args.single} single-line and {args.multi} multi-line tasks spread evenly over each "
        "file (several rows share one MBPP problem, so the first N would cover few problems)",
        f"- Decoding: greedy (temperature 0), one completion per task; {settings}; diffusion sampler "
        "settings from the model's generation_config.json",
        f"- Execution: sandboxed subprocess per program ({reports[0].sandbox}), {args.timeout:g} s timeout",
        "",
        format_table(reports).rstrip("\n"),
        "",
        "pass@1: share of tasks whose program passes its tests; exact match: completion equals the "
        "reference after trailing-whitespace normalisation; edit sim.: 1 - Levenshtein / length; empty "
        "floor: share that passes with nothing filled in; passes/token: forward passes per generated token "
        "per row (AR: one per token plus the prompt pass; diffusion: as the engine reports them); tokens/s: "
        "generated tokens per second of generation wall time (batched).",
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = bench_parser(__doc__, threads=None)
    parser.add_argument("--ar-model", required=True, help="the AR FIM peer dir (config infill_format psm)")
    # ~6 minutes on the shared 2-core CPU with --threads 1 for the default model size.
    parser.add_argument("--single", type=int, default=100, help="single-line tasks (0 to skip)")
    parser.add_argument("--multi", type=int, default=50, help="multi-line tasks (0 to skip)")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--out", default="bench_infill.md", help="Markdown section for BENCHMARKS.md")
    parser.add_argument("--json", default=None, help="also write every report (with per-task results)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(name)s: %(message)s")
    load_before = start_run(args.threads)
    try:
        from infill.models import resolve_model_dir

        models = [resolve_model_dir(args.model), Path(args.ar_model)]
        limits = SandboxLimits(timeout_s=args.timeout)
        reports: list[EvalReport] = []
        for bench, limit in (("single", args.single), ("multi", args.multi)):
            if limit > 0:
                reports += run_bench(bench, limit, models, args, limits)
    except InfillError as error:
        print(f"bench_infill: error: {error}", file=sys.stderr)
        return 2
    text = markdown(reports, models, args, argv, load_before)
    Path(args.out).write_text(text, encoding="utf-8")
    if args.json:
        payload = {"command": argv, "environment": describe(), "reports": [r.to_dict() for r in reports]}
        Path(args.json).write_text(json.dumps(payload, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
