"""Functional infilling evaluation: benchmarks, sandboxed execution, metrics and reports.

Entry points: ``infill eval`` (infill_cli/eval.py) and scripts/bench_infill.py.
"""

from __future__ import annotations

from training.eval.bench import BenchTask, load_tasks, resolve_bench
from training.eval.generation import GenerateFn, GenerationStats, load_generator, model_family
from training.eval.harness import EvalReport, TaskScore, evaluate, format_table, score_completions
from training.eval.metrics import edit_similarity, exact_match, normalize_completion

__all__ = [
    "BenchTask",
    "EvalReport",
    "GenerateFn",
    "GenerationStats",
    "TaskScore",
    "edit_similarity",
    "evaluate",
    "exact_match",
    "format_table",
    "load_generator",
    "load_tasks",
    "model_family",
    "normalize_completion",
    "resolve_bench",
    "score_completions",
]
