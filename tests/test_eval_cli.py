"""`infill eval`: canonical and empty scoring through the real entry point, errors, and a model run."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from infill_cli.eval import eval_command_parser
from tests.test_eval_harness import write_rows

REPO_ROOT = Path(__file__).resolve().parents[1]


def _infill(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    return subprocess.run(
        [sys.executable, "-m", "infill_cli.main", "eval", *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO_ROOT,
        env=env,
    )


def _field(stdout: str, name: str) -> str:
    for line in stdout.splitlines():
        if line.startswith(name + " "):
            return line[len(name) :].strip()
    raise AssertionError(f"{name!r} not in output:\n{stdout}")


def test_canonical_on_a_three_row_file(tmp_path: Path) -> None:
    from tests.test_eval_harness import ROWS

    bench = write_rows(tmp_path / "three.jsonl", ROWS[:3])
    report = tmp_path / "report.json"
    done = _infill("--canonical", "--bench", str(bench), "--out", str(report))
    assert done.returncode == 0, done.stderr
    assert _field(done.stdout, "pass@1") == "100.0%"
    assert _field(done.stdout, "exact match") == "100.0%"
    assert _field(done.stdout, "empty floor") == "0.0%"
    data = json.loads(report.read_text())
    assert data["name"] == "canonical" and data["tasks"] == 3 and data["pass_at_1"] == 1.0
    assert [r["passed"] for r in data["results"]] == [True, True, True]
    assert data["environment"]["torch"]


def test_empty_completions_give_the_floor(tmp_path: Path) -> None:
    bench = write_rows(tmp_path / "rows.jsonl")
    done = _infill("--empty", "--bench", str(bench))
    assert done.returncode == 0, done.stderr
    assert _field(done.stdout, "pass@1") == "25.0%"
    assert _field(done.stdout, "empty floor") == "25.0%"


def test_bad_bench_is_one_line_error(tmp_path: Path) -> None:
    done = _infill("--canonical", "--bench", str(tmp_path / "missing.jsonl"))
    assert done.returncode == 2
    assert done.stderr.strip().count("\n") == 0 and "benchmark file not found" in done.stderr
    bad = tmp_path / "bad.jsonl"
    bad.write_text("{oops\n")
    done = _infill("--empty", "--bench", str(bad))
    assert done.returncode == 2 and "bad.jsonl:1: not valid JSON" in done.stderr


def test_model_run_reports_cost_per_token(
    tmp_path: Path, modernbert_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bench = write_rows(tmp_path / "rows.jsonl")
    parser = argparse.ArgumentParser()
    eval_command_parser(parser.add_subparsers())
    out = tmp_path / "model.json"
    args = parser.parse_args(
        [
            "eval",
            "--model",
            str(modernbert_dir),
            "--bench",
            str(bench),
            "--max-tokens",
            "8",
            "--out",
            str(out),
        ]
    )
    assert args.func(args) == 0
    stdout = capsys.readouterr().out
    assert _field(stdout, "mode") == "span (max 8 tokens)"
    data = json.loads(out.read_text())
    assert data["tasks"] == 4 and data["empty_floor"] == 0.25
    assert data["forward_passes_per_token"] is not None and data["tokens_per_second"] > 0
    assert all(isinstance(r["completion"], str) for r in data["results"])
