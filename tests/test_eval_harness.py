"""The evaluation harness end to end: known-correct completions pass, wrong ones fail, the floor, reports."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import pytest

from training.eval.bench import BenchTask
from training.eval.generation import GenerationStats, load_generator, model_family
from training.eval.harness import close_last_line, evaluate, format_table, score_completions
from training.sandbox import SandboxLimits

# Small HumanEval-infilling rows; the last one passes with an empty completion (the floor is 1/4).
ROWS: list[dict[str, str]] = [
    {
        "task_id": "Eval/add",
        "prompt": '"""Add two numbers."""\ndef add(a, b):\n',
        "suffix": "",
        "canonical_solution": "    return a + b\n",
        "test": "def check(candidate):\n    assert candidate(1, 2) == 3\n    assert candidate(-1, 1) == 0\n",
        "entry_point": "add",
    },
    {
        "task_id": "Eval/fact",
        "prompt": "def fact(n):\n    result = 1\n",
        "suffix": "    return result\n",
        "canonical_solution": "    for i in range(2, n + 1):\n        result *= i\n",
        "test": "def check(candidate):\n    assert candidate(5) == 120\n    assert candidate(0) == 1\n",
        "entry_point": "fact",
    },
    {
        "task_id": "Eval/even",
        "prompt": "def is_even(n):\n",
        "suffix": "",
        "canonical_solution": "    return n % 2 == 0\n",
        "test": "def check(candidate):\n    assert candidate(4)\n    assert not candidate(3)\n",
        "entry_point": "is_even",
    },
    {
        "task_id": "Eval/clamp",
        "prompt": "def clamp(x):\n    y = x\n",
        "suffix": "    return y\n",
        "canonical_solution": "    y = max(0, y)\n",
        "test": "def check(candidate):\n    assert candidate(5) == 5\n",
        "entry_point": "clamp",
    },
]
TASKS = [BenchTask(**row) for row in ROWS]


def write_rows(path: Path, rows: Sequence[dict[str, str]] = ROWS) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def test_known_correct_completions_pass_and_wrong_ones_fail() -> None:
    wrong = ["    return a - b\n", "    pass\n", "    while True:\n        pass\n", "    y = -1\n"]
    limits = SandboxLimits(timeout_s=2)
    right = score_completions(
        TASKS, [t.canonical_solution for t in TASKS], name="c", bench="t", limits=limits
    )
    bad = score_completions(TASKS, wrong, name="w", bench="t", limits=limits, with_floor=False)
    assert [s.passed for s in right.results] == [True, True, True, True]
    assert right.pass_at_1 == 1.0 and right.exact_match == 1.0 and right.edit_similarity == 1.0
    assert right.empty_floor == 0.25  # only clamp passes with nothing filled in
    assert [s.passed for s in bad.results] == [False, False, False, False]
    assert bad.pass_at_1 == 0.0 and bad.exact_match == 0.0 and bad.empty_floor is None
    assert "AssertionError" in bad.results[0].error
    assert bad.results[2].timed_out and bad.results[2].error == "timeout"


def test_held_out_rows_get_text_metrics_only() -> None:
    tasks = [BenchTask("repo/a.py:10", "x = ", "\nprint(x)\n", "compute(1)\n")]
    report = score_completions(tasks, ["compute(2)"], name="m", bench="held-out")
    assert report.pass_at_1 is None and report.executable_tasks == 0 and report.empty_floor is None
    assert report.results[0].passed is None
    assert report.edit_similarity == pytest.approx(1 - 1 / 10)


class _TableLookup:
    """A generator over rows that knows the right answers for some prompts and counts its 'passes'."""

    def __init__(self, answers: dict[str, str]) -> None:
        self.answers = answers
        self.stats = GenerationStats()
        self.batches: list[int] = []

    def __call__(self, rows: Sequence[tuple[str, str]]) -> list[str]:
        self.batches.append(len(rows))
        out = [self.answers.get(prefix, "") for prefix, _ in rows]
        self.stats.rows += len(rows)
        self.stats.generated_tokens += 10 * len(rows)
        self.stats.forward_passes += 5 * len(rows)
        self.stats.seconds += 0.5
        return out


def test_evaluate_batches_rows_and_reports_generator_stats() -> None:
    generate = _TableLookup(
        {TASKS[0].prompt: "    return a + b\n", TASKS[2].prompt: "    return n % 2 == 1\n"}
    )
    report = evaluate(TASKS, generate, name="lookup", bench="t", mode="block", max_tokens=16, batch_size=3)
    assert generate.batches == [3, 1]
    assert [s.passed for s in report.results] == [True, False, False, True]
    assert report.pass_at_1 == 0.5 and report.exact_match == 0.25
    assert report.forward_passes_per_token == 0.5 and report.tokens_per_second == 40 / 1.0
    table = format_table([report])
    assert "| lookup | t | 4 | 50.0% | 25.0% |" in table


def test_diffusion_model_through_fill_batch_counts_forward_passes(modernbert_dir: Path) -> None:
    assert model_family(modernbert_dir) == "diffusion"
    generate = load_generator(modernbert_dir, mode="line", max_tokens=8, batch_size=4)
    report = evaluate(TASKS[:2], generate, name="tiny", bench="t", mode="line", max_tokens=8)
    assert len(report.results) == 2 and all(isinstance(s.completion, str) for s in report.results)
    stats = generate.stats  # type: ignore[attr-defined]
    assert stats.rows == 2 and stats.forward_passes >= 1 and stats.generated_tokens >= 1
    assert report.forward_passes_per_token == pytest.approx(stats.forward_passes / stats.generated_tokens)


def test_whole_line_gaps_get_their_final_newline() -> None:
    add, fact = TASKS[0], TASKS[1]
    assert (
        close_last_line(fact, "    for i in range(2, n + 1):\n        result *= i") == fact.canonical_solution
    )
    assert close_last_line(add, "") == ""  # the floor stays the floor
    assert close_last_line(add, "    return a + b\n") == "    return a + b\n"
    mid_line = BenchTask("m", "x = ", "\n", "1")
    assert close_last_line(mid_line, "1") == "1"
    report = evaluate(
        [fact], lambda rows: ["    for i in range(2, n + 1):\n        result *= i"], name="m", bench="t"
    )
    assert report.pass_at_1 == 1.0
