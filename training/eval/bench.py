"""Functional infilling benchmarks in the HumanEval-Infilling row format, read from .jsonl or .jsonl.gz.

A row is ``{task_id, prompt, suffix, canonical_solution, test, entry_point}``; a completion is judged by
running ``prompt + completion + suffix + "\\n" + test + "\\n" + f"check({entry_point})"``. Rows with an empty
``test`` (held-out repository infilling) are scored by exact match and edit similarity only.

The MBPP-derived sets (CC BY 4.0, under 0.5 MB) ship with the project in ``training/eval/mbpp/`` (see its
README for source and licence); ``--bench-dir`` points elsewhere.
"""

from __future__ import annotations

import gzip
import json
from dataclasses import dataclass
from pathlib import Path

from infill.errors import InputError

DEFAULT_BENCH_DIR = Path(__file__).resolve().parent / "mbpp"
NAMED_BENCHES = {
    "single": "MBPP-SingleLineInfilling.jsonl.gz",
    "multi": "MBPP-MultiLineInfilling.jsonl.gz",
}
# The fill mode each named bench is meant for (one line stops at its newline, several lines are a block),
# and a token budget that covers ~99% (single: <= 75 characters) / ~95% (multi: <= 200 characters) of the
# reference solutions.
DEFAULT_MODES = {"single": "line", "multi": "block"}
DEFAULT_MAX_TOKENS = {"single": 32, "multi": 96}
REQUIRED_FIELDS = ("task_id", "prompt", "suffix", "canonical_solution")


@dataclass(frozen=True)
class BenchTask:
    task_id: str
    prompt: str  # the code before the gap (the prefix)
    suffix: str
    canonical_solution: str
    test: str = ""
    entry_point: str = ""

    @property
    def executable(self) -> bool:
        return bool(self.test.strip()) and bool(self.entry_point)

    def program(self, completion: str) -> str:
        """The program whose exit status judges ``completion``."""
        assert self.executable, "held-out rows without a test are not executed"
        return self.prompt + completion + self.suffix + "\n" + self.test + "\n" + f"check({self.entry_point})"


def resolve_bench(bench: str, bench_dir: str | Path | None = None) -> Path:
    """``single`` / ``multi`` name a file in the bench dir; anything else is a path to a .jsonl(.gz) file."""
    if bench in NAMED_BENCHES:
        directory = Path(bench_dir) if bench_dir is not None else DEFAULT_BENCH_DIR
        path = directory / NAMED_BENCHES[bench]
        if not path.is_file():
            raise InputError(
                f"benchmark {bench!r} not found at {path} (the MBPP sets ship in {DEFAULT_BENCH_DIR}; "
                "--bench-dir DIR names another folder holding them, or pass a .jsonl(.gz) file)"
            )
        return path
    path = Path(bench)
    if not path.is_file():
        raise InputError(f"benchmark file not found: {bench} (expected single, multi or a .jsonl(.gz) path)")
    return path


def _task_from_row(row: object, where: str) -> BenchTask:
    if not isinstance(row, dict):
        raise InputError(f"{where}: expected a JSON object")
    missing = [name for name in REQUIRED_FIELDS if not isinstance(row.get(name), str)]
    if missing:
        raise InputError(f"{where}: missing or non-string field(s) {', '.join(missing)}")
    return BenchTask(
        task_id=row["task_id"],
        prompt=row["prompt"],
        suffix=row["suffix"],
        canonical_solution=row["canonical_solution"],
        test=str(row.get("test") or ""),
        entry_point=str(row.get("entry_point") or ""),
    )


def load_tasks(path: str | Path, limit: int | None = None, *, spread: bool = False) -> list[BenchTask]:
    """``limit`` tasks (all when None) of a .jsonl or .jsonl.gz file, in file order.

    The first ``limit`` by default; with ``spread``, ``limit`` tasks evenly spaced over the whole file (the
    MBPP sets hold several rows per problem, so the first N cover few problems).
    """
    if spread and limit is not None:
        everything = load_tasks(path)
        step = max(len(everything) / limit, 1.0)
        return [everything[int(i * step)] for i in range(min(limit, len(everything)))]
    path = Path(path)
    opener = gzip.open if path.name.endswith(".gz") else open
    tasks: list[BenchTask] = []
    try:
        with opener(path, "rt", encoding="utf-8") as lines:
            for number, line in enumerate(lines, start=1):
                if limit is not None and len(tasks) >= limit:
                    break
                if not line.strip():
                    continue
                where = f"{path.name}:{number}"
                try:
                    row = json.loads(line)
                except ValueError as error:
                    raise InputError(f"{where}: not valid JSON ({error.args[0]})") from None
                tasks.append(_task_from_row(row, where))
    except (OSError, EOFError, UnicodeDecodeError) as error:
        raise InputError(f"{path}: cannot read benchmark ({error})") from None
    if not tasks:
        raise InputError(f"{path}: no tasks")
    return tasks
