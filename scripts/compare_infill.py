"""Compare `infill eval --out` reports of several models on the same tasks, with paired 95% intervals.

    python scripts/compare_infill.py runs/eval/scratch-single.json runs/eval/ar-init-single.json ...

The first report is the reference. For every other one: pass@1 and edit similarity, and the mean per-task
difference from the reference with its paired t interval (``training.paired``): the same tasks, so the
task-to-task spread cancels. Prints a Markdown table for BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from training.paired import paired_interval


def _per_task(path: Path) -> tuple[str, str, dict[str, dict]]:
    report = json.loads(path.read_text(encoding="utf-8"))
    return report["name"], report["bench"], {r["task_id"]: r for r in report["results"]}


def _cell(reference: list[float], other: list[float], fmt: str) -> str:
    if reference == other:
        return "0 (identical)"
    c = paired_interval(reference, other)
    return f"{fmt.format(c.difference)} [{fmt.format(c.low)}, {fmt.format(c.high)}]"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "reports", nargs="+", type=Path, help="infill eval --out JSON files; the first is the reference"
    )
    parser.add_argument("--labels", nargs="*", default=None, help="names for the rows (default: model names)")
    args = parser.parse_args(argv)
    loaded = [_per_task(p) for p in args.reports]
    labels = args.labels or [name for name, _, _ in loaded]
    _, bench, reference = loaded[0]
    common = sorted(set(reference).intersection(*(tasks for _, _, tasks in loaded[1:])))
    if len(common) < 2:
        print("compare_infill: error: the reports share fewer than two tasks", file=sys.stderr)
        return 2
    print(f"{bench}: {len(common)} tasks in common; differences from {labels[0]} with paired 95% intervals")
    print()
    print("| model | pass@1 | edit sim. | pass@1 diff. [95% CI] | edit sim. diff. [95% CI] |")
    print("|---|---:|---:|---:|---:|")
    ref_pass = [float(bool(reference[t]["passed"])) for t in common]
    ref_edit = [reference[t]["edit_similarity"] for t in common]
    for label, (_, _, tasks) in zip(labels, loaded, strict=True):
        passed = [float(bool(tasks[t]["passed"])) for t in common]
        edit = [tasks[t]["edit_similarity"] for t in common]
        print(
            f"| {label} | {sum(passed) / len(common):.1%} | {sum(edit) / len(common):.3f} "
            f"| {_cell(ref_pass, passed, '{:+.1%}')} | {_cell(ref_edit, edit, '{:+.3f}')} |"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
