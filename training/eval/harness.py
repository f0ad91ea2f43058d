"""Generate completions for benchmark tasks, execute them in the sandbox, and aggregate a report.

pass@1 is greedy (one completion per task, temperature 0) over the executable tasks; exact match and edit
similarity compare the completion with the canonical solution (see metrics.py) on every task. The empty
completion's pass rate is the floor: MBPP solutions sometimes pass with a line missing.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field

from training.eval.bench import BenchTask
from training.eval.generation import GenerateFn, GenerationStats
from training.eval.metrics import edit_similarity, exact_match
from training.sandbox import ExecutionResult, SandboxLimits, isolation, run_programs

logger = logging.getLogger(__name__)

ERROR_CHARS = 200


@dataclass(frozen=True)
class TaskScore:
    task_id: str
    completion: str
    passed: bool | None  # None: the task has no test (held-out rows)
    exact_match: bool
    edit_similarity: float
    timed_out: bool = False
    error: str = ""  # last line of stderr when the program failed


@dataclass
class EvalReport:
    name: str  # what produced the completions: a model dir name, "canonical" or "empty"
    bench: str
    tasks: int
    executable_tasks: int
    pass_at_1: float | None
    exact_match: float
    edit_similarity: float
    empty_floor: float | None = None
    mode: str = ""
    max_tokens: int | None = None
    forward_passes_per_token: float | None = None
    tokens_per_second: float | None = None
    generation_seconds: float | None = None
    execution_seconds: float = 0.0
    sandbox: str = ""
    results: list[TaskScore] = field(default_factory=list)

    def to_dict(self, with_results: bool = True) -> dict[str, object]:
        data = asdict(self)
        if not with_results:
            data.pop("results")
        return data


def close_last_line(task: BenchTask, completion: str) -> str:
    """Add the missing final newline to a non-empty completion of a whole-line gap.

    A gap is whole lines when it starts at a line start and its reference ends with a newline (every MBPP
    row: that is how the gaps were cut). A completion that stopped (end of span / end of text) right before
    its final newline would otherwise glue the suffix's first line onto its last. Applied to every model
    alike; the empty completion stays empty.
    """
    starts_line = task.prompt == "" or task.prompt.endswith("\n")
    whole_lines = starts_line and task.canonical_solution.endswith("\n")
    if whole_lines and completion and not completion.endswith("\n"):
        return completion + "\n"
    return completion


def generate_completions(
    tasks: Sequence[BenchTask],
    generate: GenerateFn,
    *,
    batch_size: int = 8,
    progress: Callable[[int, int], None] | None = None,
) -> list[str]:
    """Completions in task order; ``generate`` sees ``batch_size`` rows at a time (progress after each)."""
    completions: list[str] = []
    for first in range(0, len(tasks), batch_size):
        chunk = tasks[first : first + batch_size]
        out = generate([(task.prompt, task.suffix) for task in chunk])
        if len(out) != len(chunk):
            raise RuntimeError(f"generator returned {len(out)} completions for {len(chunk)} rows")
        completions.extend(close_last_line(task, text) for task, text in zip(chunk, out, strict=True))
        if progress is not None:
            progress(len(completions), len(tasks))
    return completions


def _error_line(result: ExecutionResult) -> str:
    if result.timed_out:
        return "timeout"
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    return lines[-1][:ERROR_CHARS] if lines else f"exit status {result.returncode}"


def execute(
    tasks: Sequence[BenchTask],
    completions: Sequence[str],
    *,
    limits: SandboxLimits | None = None,
    workers: int = 2,
    progress: Callable[[int], None] | None = None,
) -> list[ExecutionResult | None]:
    """Run each executable task's program with its completion; None for tasks without a test.

    ``progress(1)`` is called as each program finishes.
    """
    assert len(tasks) == len(completions)
    indices = [i for i, task in enumerate(tasks) if task.executable]
    programs = [tasks[i].program(completions[i]) for i in indices]
    one_more = None if progress is None else (lambda _done: progress(1))
    ran = run_programs(programs, limits, workers=workers, progress=one_more)
    results: list[ExecutionResult | None] = [None] * len(tasks)
    for index, result in zip(indices, ran, strict=True):
        results[index] = result
    return results


def _mean(values: Sequence[float]) -> float | None:
    return sum(values) / len(values) if values else None


def score_completions(
    tasks: Sequence[BenchTask],
    completions: Sequence[str],
    *,
    name: str,
    bench: str,
    limits: SandboxLimits | None = None,
    workers: int = 2,
    with_floor: bool = True,
    progress: Callable[[int], None] | None = None,
) -> EvalReport:
    """Execute and compare ``completions`` (one per task); ``with_floor`` also scores empty completions.

    ``progress(1)`` is called as each program (completion or floor) finishes.
    """
    if len(completions) != len(tasks):
        raise ValueError(f"{len(completions)} completions for {len(tasks)} tasks")
    start = time.perf_counter()
    executed = execute(tasks, completions, limits=limits, workers=workers, progress=progress)
    elapsed = time.perf_counter() - start
    scores = [
        TaskScore(
            task_id=task.task_id,
            completion=completion,
            passed=None if result is None else result.passed,
            exact_match=exact_match(completion, task.canonical_solution),
            edit_similarity=edit_similarity(completion, task.canonical_solution),
            timed_out=result is not None and result.timed_out,
            error="" if result is None or result.passed else _error_line(result),
        )
        for task, completion, result in zip(tasks, completions, executed, strict=True)
    ]
    passed = [float(s.passed) for s in scores if s.passed is not None]
    floor = None
    if with_floor and passed:
        empty = execute(tasks, [""] * len(tasks), limits=limits, workers=workers, progress=progress)
        floor = _mean([float(r.passed) for r in empty if r is not None])
    return EvalReport(
        name=name,
        bench=bench,
        tasks=len(tasks),
        executable_tasks=len(passed),
        pass_at_1=_mean(passed),
        exact_match=_mean([float(s.exact_match) for s in scores]) or 0.0,
        edit_similarity=_mean([s.edit_similarity for s in scores]) or 0.0,
        empty_floor=floor,
        execution_seconds=elapsed,
        sandbox=isolation(),
        results=scores,
    )


def evaluate(
    tasks: Sequence[BenchTask],
    generate: GenerateFn,
    *,
    name: str,
    bench: str,
    mode: str = "",
    max_tokens: int | None = None,
    batch_size: int = 8,
    limits: SandboxLimits | None = None,
    workers: int = 2,
    with_floor: bool = True,
    progress: Callable[[int, int], None] | None = None,
) -> EvalReport:
    """Generate one greedy completion per task with ``generate``, then score it (pass@1, EM, ES)."""
    start = time.perf_counter()
    completions = generate_completions(tasks, generate, batch_size=batch_size, progress=progress)
    generation_seconds = time.perf_counter() - start
    report = score_completions(
        tasks, completions, name=name, bench=bench, limits=limits, workers=workers, with_floor=with_floor
    )
    report.mode, report.max_tokens, report.generation_seconds = mode, max_tokens, generation_seconds
    stats = getattr(generate, "stats", None)
    if isinstance(stats, GenerationStats):
        report.forward_passes_per_token = stats.passes_per_token
        report.tokens_per_second = stats.tokens_per_second
    logger.info("%s on %s: %d tasks in %.1fs generation", name, bench, len(tasks), generation_seconds)
    return report


def format_percent(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.1f}%"


def format_number(value: float | None, digits: int = 2) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def format_table(reports: Sequence[EvalReport]) -> str:
    """A Markdown table, one row per report."""
    header = (
        "| model | bench | tasks | pass@1 | exact match | edit sim. | empty floor "
        "| passes/token | tokens/s | gen. time |\n"
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|\n"
    )
    rows = [
        f"| {r.name} | {r.bench} | {r.tasks} "
        f"| {format_percent(r.pass_at_1)} | {format_percent(r.exact_match)} "
        f"| {format_number(r.edit_similarity, 3)} | {format_percent(r.empty_floor)} "
        f"| {format_number(r.forward_passes_per_token)} | {format_number(r.tokens_per_second, 1)} "
        f"| {'n/a' if r.generation_seconds is None else f'{r.generation_seconds:.0f}s'} |\n"
        for r in reports
    ]
    return header + "".join(rows)
