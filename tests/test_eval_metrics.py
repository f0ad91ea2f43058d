"""Exact match normalisation, edit similarity, and reading benchmark files (.jsonl and .jsonl.gz)."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from infill.errors import InputError
from training.eval.bench import BenchTask, load_tasks, resolve_bench
from training.eval.metrics import edit_similarity, exact_match, levenshtein, normalize_completion


def test_exact_match_ignores_trailing_whitespace_only() -> None:
    assert exact_match("    return a + b", "    return a + b\n")
    assert exact_match("    x = 1  \n    y = 2\t\n\n", "    x = 1\n    y = 2\n")
    assert not exact_match("return a + b\n", "    return a + b\n")  # indentation is code in Python
    assert not exact_match("    return a - b\n", "    return a + b\n")
    assert normalize_completion("a \r\nb\n\n") == "a\nb"


def test_levenshtein_and_edit_similarity() -> None:
    assert levenshtein("kitten", "sitting") == 3
    assert levenshtein("", "abc") == 3
    assert levenshtein("flaw", "lawn") == 2
    assert edit_similarity("abc\n", "abc") == 1.0
    assert edit_similarity("", "") == 1.0
    assert edit_similarity("", "abcd") == 0.0
    assert edit_similarity("kitten", "sitting") == pytest.approx(1 - 3 / 7)


def _rows() -> list[dict[str, str]]:
    return [
        {
            "task_id": f"T/{i}",
            "prompt": f"def f{i}():\n",
            "suffix": "",
            "canonical_solution": f"    return {i}\n",
            "test": f"def check(candidate):\n    assert candidate() == {i}\n",
            "entry_point": f"f{i}",
        }
        for i in range(5)
    ]


def test_reads_jsonl_and_jsonl_gz_alike(tmp_path: Path) -> None:
    text = "".join(json.dumps(row) + "\n" for row in _rows())
    plain = tmp_path / "rows.jsonl"
    plain.write_text(text + "\n")  # a blank line is skipped
    packed = tmp_path / "rows.jsonl.gz"
    with gzip.open(packed, "wt", encoding="utf-8") as f:
        f.write(text)
    assert load_tasks(plain) == load_tasks(packed)
    tasks = load_tasks(packed)
    assert [t.task_id for t in tasks] == [f"T/{i}" for i in range(5)]
    assert tasks[2].program("    return 2\n") == (
        "def f2():\n    return 2\n\ndef check(candidate):\n    assert candidate() == 2\n\ncheck(f2)"
    )
    assert [t.task_id for t in load_tasks(packed, 2)] == ["T/0", "T/1"]
    assert [t.task_id for t in load_tasks(packed, 2, spread=True)] == ["T/0", "T/2"]


def test_rows_without_a_test_are_not_executable() -> None:
    task = BenchTask("held-out/1", "x = ", "\n", "1")
    assert not task.executable


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json\n", "rows.jsonl:1: not valid JSON"),
        ('{"task_id": "a"}\n', "missing or non-string field(s) prompt, suffix, canonical_solution"),
        ("[1, 2]\n", "expected a JSON object"),
        ("\n", "no tasks"),
    ],
)
def test_bad_benchmark_files_are_one_line_input_errors(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "rows.jsonl"
    path.write_text(content)
    with pytest.raises(InputError, match=message.replace("(", r"\(").replace(")", r"\)")):
        load_tasks(path)


def test_resolve_bench_names_and_paths(tmp_path: Path) -> None:
    (tmp_path / "MBPP-SingleLineInfilling.jsonl.gz").write_bytes(b"")
    assert resolve_bench("single", tmp_path) == tmp_path / "MBPP-SingleLineInfilling.jsonl.gz"
    with pytest.raises(InputError, match="benchmark 'multi' not found"):
        resolve_bench("multi", tmp_path)
    with pytest.raises(InputError, match="benchmark file not found"):
        resolve_bench(str(tmp_path / "nope.jsonl"))


def test_the_mbpp_sets_ship_with_the_project() -> None:
    """`infill eval` works from a plain clone: the named benchmarks live inside the repository."""
    repo = Path(__file__).resolve().parents[1]
    for name, rows in (("single", 5254), ("multi", 2687)):
        path = resolve_bench(name)
        assert path.is_relative_to(repo) and path.stat().st_size < 1_000_000
        tasks = load_tasks(path)
        assert len(tasks) == rows and all(task.executable for task in tasks[:20])
    licence = (resolve_bench("single").parent / "README.md").read_text()
    assert "CC BY 4.0" in licence and "Austin et al." in licence
