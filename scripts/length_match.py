"""How close to the reference's length `infill eval` reports' completions are, per report, on the same tasks.

    python scripts/length_match.py --bench multi --tokenizer infill/default_model before.json after.json

Per report: the exact-length rate (the completion has as many tokens as the reference solution, both
tokenized by ``--tokenizer``), the share within 25% of the reference's tokens, the median of
|log(completion tokens / reference tokens)| (empty completions count as one token), and the mean tokens per
completion against the references'. Reports must come from the same ``--bench``; tasks are matched by id.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from training.eval.bench import load_tasks, resolve_bench
from training.tokenizer import load_code_tokenizer


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("reports", nargs="+", type=Path, help="infill eval --out JSON files")
    parser.add_argument(
        "--bench", default="multi", help="the bench the reports ran (single, multi or a path)"
    )
    parser.add_argument("--tokenizer", type=Path, default=Path("infill/default_model"), help="model dir")
    args = parser.parse_args(argv)
    tokenizer = load_code_tokenizer(args.tokenizer)
    references = {t.task_id: t.canonical_solution for t in load_tasks(resolve_bench(args.bench))}

    def tokens(text: str) -> int:
        return len(tokenizer(text, add_special_tokens=False)["input_ids"])

    print(
        "| report | tasks | exact length | within 25% | median abs log ratio | tokens/completion "
        "| tokens/reference |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|")
    for path in args.reports:
        report = json.loads(path.read_text(encoding="utf-8"))
        pairs = [(tokens(r["completion"]), tokens(references[r["task_id"]])) for r in report["results"]]
        exact = sum(c == r for c, r in pairs) / len(pairs)
        near = sum(abs(c - r) <= 0.25 * r for c, r in pairs) / len(pairs)
        ratio = statistics.median(abs(math.log(max(c, 1) / max(r, 1))) for c, r in pairs)
        mean_c = statistics.fmean(c for c, _ in pairs)
        mean_r = statistics.fmean(r for _, r in pairs)
        print(
            f"| {report['name']} | {len(pairs)} | {exact:.1%} | {near:.1%} | {ratio:.2f} | {mean_c:.1f} | "
            f"{mean_r:.1f} |"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
