"""What the MBPP benchmark scripts (bench_infill.py, bench_decoding.py, bench_vs_ar.py) share: the options
that pick the model, the tasks' folder and the machine, and the report lines that say how and where it ran.
"""

from __future__ import annotations

import argparse
import os
import shlex
from pathlib import Path

from training.eval.bench import DEFAULT_BENCH_DIR
from training.eval.environment import describe

REPO_ROOT = Path(__file__).resolve().parents[1]


def bench_parser(description: str | None, *, threads: int | None) -> argparse.ArgumentParser:
    """A parser with --model, --bench-dir, --device, --threads (``threads`` by default; None: torch's),
    --workers and --timeout; each script adds its own options."""
    parser = argparse.ArgumentParser(
        description=description, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--model", default=None, help="diffusion model dir (default: $INFILL_MODEL or bundled)"
    )
    shipped = os.path.relpath(DEFAULT_BENCH_DIR, REPO_ROOT)
    parser.add_argument("--bench-dir", default=None, help=f"where the MBPP files live (default: {shipped})")
    parser.add_argument("--device", default=None)
    parser.add_argument(
        "--threads",
        type=int,
        default=threads,
        help="torch CPU threads" + (" (default: torch's)" if threads is None else ""),
    )
    parser.add_argument("--workers", type=int, default=2, help="programs run in parallel")
    parser.add_argument("--timeout", type=float, default=10.0, help="seconds per program")
    return parser


def start_run(threads: int | None) -> float:
    """Set torch's CPU threads (when a number is given); the load average now, for ``run_header``."""
    if threads:
        import torch

        torch.set_num_threads(threads)
    return os.getloadavg()[0]


def run_header(script: str, argv: list[str], load_before: float) -> list[str]:
    """Markdown lines for BENCHMARKS.md: the exact command, the date and load (at the start -> now), the
    hardware and the software."""
    env = describe()
    return [
        f"Command: `{shlex.join(['python', f'scripts/{script}', *argv])}`",
        "",
        f"- Date: {env['date']}; load average {load_before:.1f} -> {os.getloadavg()[0]:.1f}",
        f"- Hardware: {env['cpu']}, {env['cores']} cores (torch threads {env['torch_threads']}), "
        f"GPU: {env['gpu']}",
        f"- Software: Python {env['python']}, torch {env['torch']}, transformers {env['transformers']}",
    ]
