"""`infill eval`: functional infilling benchmark of a model (pass@1, exact match, cost per token).

    infill eval --model DIR --bench single|multi|PATH [--limit N] [--mode line|block|span] [--out report.json]
    infill eval --canonical --bench single      # scores the reference solutions (sanity check, ~98%)
    infill eval --empty --bench multi           # scores empty completions (the floor)

The model kind is read from the directory: a causal LM with ``"infill_format": "psm"`` is decoded
autoregressively (training/ar_generate.py), anything else with the diffusion engine. Generated programs run
in the sandbox of training/sandbox.py. The report goes to stdout; ``--out`` also writes JSON with every
task's completion and outcome.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from infill.errors import InputError
from infill_cli.common import add_decode_options, add_model_options, non_negative_float, positive_int

if TYPE_CHECKING:
    from training.eval.bench import BenchTask
    from training.eval.harness import EvalReport
    from training.sandbox import SandboxLimits

logger = logging.getLogger(__name__)

FALLBACK_MODE = "span"
DIFFUSION_OPTIONS = ("steps", "strategy", "threshold", "temperature", "seed")
FALLBACK_MAX_TOKENS = 64


def eval_command_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "eval",
        help="benchmark a model on functional infilling tasks (pass@1, exact match)",
        description=(
            "Fill every task of a HumanEval-infilling style benchmark, run the resulting programs in a "
            "sandbox and report pass@1, exact match, edit similarity, forward passes per token and "
            "tokens/s beside the empty-completion floor."
        ),
    )
    parser.add_argument(
        "--bench",
        default="single",
        metavar="single|multi|PATH",
        help="MBPP single-line or multi-line set, or a .jsonl(.gz) file of rows (default: single)",
    )
    parser.add_argument(
        "--bench-dir",
        metavar="DIR",
        default=None,
        help="where single/multi live (default: the copies shipped in training/eval/mbpp)",
    )
    parser.add_argument("--limit", type=positive_int, default=None, metavar="N", help="evaluate N tasks")
    parser.add_argument(
        "--spread",
        action="store_true",
        help="with --limit: N tasks spread over the file instead of the first N",
    )
    parser.add_argument(
        "--mode",
        choices=("line", "block", "span"),
        default=None,
        help="fill mode (default: line for single, block for multi, span for files)",
    )
    what = parser.add_mutually_exclusive_group()
    what.add_argument("--canonical", action="store_true", help="score the reference solutions (no model)")
    what.add_argument("--empty", action="store_true", help="score empty completions (no model)")
    parser.add_argument("--out", metavar="REPORT.json", default=None, help="also write the full report here")
    parser.add_argument("--batch-size", type=positive_int, default=8, help="rows per generation batch")
    parser.add_argument(
        "--timeout", type=non_negative_float, default=10.0, help="seconds per program (default: 10)"
    )
    parser.add_argument("--workers", type=positive_int, default=2, help="programs run in parallel")
    parser.add_argument("--no-floor", action="store_true", help="skip scoring empty completions")
    add_model_options(parser)
    add_decode_options(
        parser, max_tokens_help="token budget per task (default: 32 single, 96 multi, 64 file)"
    )
    parser.set_defaults(func=eval_command)
    return parser


def _print_report(report: EvalReport) -> None:
    from training.eval.harness import format_number as num
    from training.eval.harness import format_percent as pct

    print(f"model              {report.name}")
    print(f"bench              {report.bench} ({report.tasks} tasks, {report.executable_tasks} executable)")
    if report.mode:
        print(f"mode               {report.mode} (max {report.max_tokens} tokens)")
    print(f"pass@1             {pct(report.pass_at_1)}")
    print(f"exact match        {pct(report.exact_match)}")
    print(f"edit similarity    {num(report.edit_similarity, 3)}")
    print(f"empty floor        {pct(report.empty_floor)}")
    print(f"passes per token   {num(report.forward_passes_per_token)}")
    print(f"tokens/s           {num(report.tokens_per_second, 1)}")
    if report.generation_seconds is not None:
        print(f"generation time    {report.generation_seconds:.1f}s")
    print(f"execution time     {report.execution_seconds:.1f}s (sandbox: {report.sandbox})")


def eval_command(args: argparse.Namespace) -> int:
    from infill_cli.fileio import check_writable, write_atomic
    from training.eval.bench import DEFAULT_MODES, load_tasks, resolve_bench
    from training.eval.environment import describe
    from training.eval.harness import score_completions
    from training.sandbox import SandboxLimits

    out = Path(args.out) if args.out else None
    if out is not None and (out.is_dir() or not out.parent.is_dir()):
        raise InputError(f"{out}: cannot write the report there (a directory, or its folder is missing)")
    if out is not None:
        check_writable(out)
    if args.timeout <= 0:
        raise InputError("--timeout must be more than 0 seconds")
    path = resolve_bench(args.bench, args.bench_dir)
    tasks = load_tasks(path, args.limit, spread=args.spread)
    bench_name = args.bench if args.bench in DEFAULT_MODES else path.name
    limits = SandboxLimits(timeout_s=args.timeout)
    with_floor = not args.no_floor

    if args.canonical or args.empty:
        from tqdm import tqdm

        name = "canonical" if args.canonical else "empty"
        completions = [t.canonical_solution if args.canonical else "" for t in tasks]
        floor = with_floor and not args.empty
        programs = sum(t.executable for t in tasks) * (2 if floor else 1)
        with tqdm(total=programs, unit="program", desc=f"infill eval {name}", file=sys.stderr) as bar:
            report = score_completions(
                tasks,
                completions,
                name=name,
                bench=bench_name,
                limits=limits,
                workers=args.workers,
                with_floor=floor,
                progress=bar.update,
            )
        if args.empty:
            report.empty_floor = report.pass_at_1
    else:
        report = _evaluate_model(args, tasks, bench_name, limits, with_floor)

    _print_report(report)
    if out is not None:
        payload = {
            "command": " ".join(["infill", *sys.argv[1:]]),
            "environment": describe(),
            **report.to_dict(),
        }
        write_atomic(out, (json.dumps(payload, indent=2, ensure_ascii=False) + "\n").encode("utf-8"))
    return 0


def _evaluate_model(
    args: argparse.Namespace,
    tasks: list[BenchTask],
    bench_name: str,
    limits: SandboxLimits,
    with_floor: bool,
) -> EvalReport:
    from tqdm import tqdm

    from infill.models import resolve_model_dir
    from training.eval.bench import DEFAULT_MAX_TOKENS, DEFAULT_MODES
    from training.eval.generation import load_generator
    from training.eval.harness import evaluate

    model_dir = resolve_model_dir(args.model)
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    mode = args.mode or DEFAULT_MODES.get(args.bench, FALLBACK_MODE)
    max_tokens = args.max_tokens or DEFAULT_MAX_TOKENS.get(args.bench, FALLBACK_MAX_TOKENS)
    generate = load_generator(
        model_dir,
        mode=mode,
        max_tokens=max_tokens,
        device=args.device,
        batch_size=args.batch_size,
        trust_remote_code=args.trust_remote_code,
        quantize=args.quantize,
    )
    infiller = getattr(generate, "infiller", None)
    if infiller is not None:  # diffusion: the model's sampler defaults with the command line on top
        from infill_cli.common import decode_config

        generate.config = decode_config(args, infiller)  # type: ignore[attr-defined]
    elif any(getattr(args, name) is not None for name in DIFFUSION_OPTIONS):
        logger.warning(
            "%s decodes greedily left to right: the diffusion sampler options are ignored", model_dir
        )
    with tqdm(total=len(tasks), unit="task", desc=f"infill eval {model_dir.name}", file=sys.stderr) as bar:
        return evaluate(
            tasks,
            generate,
            name=model_dir.name,
            bench=bench_name,
            mode=mode,
            max_tokens=max_tokens,
            batch_size=args.batch_size,
            limits=limits,
            workers=args.workers,
            with_floor=with_floor,
            progress=lambda done, total: bar.update(done - bar.n),
        )
