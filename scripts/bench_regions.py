"""Tree-sitter's share of one inline completion on a large file: picking the region and judging candidates.

A generated 2,000-line Python module (as in `scripts/bench_lsp_latency.py`) is edited as a user writes code:
at a random place a new statement is typed in pauses, with a completion request at each pause (``total``,
``total +=``, ``total += value``...), then finished as valid code, and the next place is picked. Each request
picks the cursor's region (``regions.pick_cursor_region``) and judges two candidate fills the way the
Infiller does (``regions.finalize_candidate``), no model involved. Prints CPU milliseconds per request
(median, p95; CPU time, so that other work on a shared machine changes them less than wall time) and
tree-sitter parses per request; run it on two checkouts to compare them:

    python scripts/bench_regions.py --requests 200
    PYTHONPATH=/path/to/other/checkout python scripts/bench_regions.py --requests 200
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import random
import statistics
import sys
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
if not os.environ.get("PYTHONPATH"):
    sys.path.insert(0, str(REPO_ROOT))  # this checkout, unless PYTHONPATH names another one

import tree_sitter  # noqa: E402

from infill import regions  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_lsp_latency import generated_python  # noqa: E402

# A statement typed in pauses (a request at each), then finished; and two fills of the rest of the line.
STATEMENTS = [
    ("    total", "    total +=", "    total += value", "    total += value * 2"),
    ("    result", "    result = compute", "    result = compute(values", "    result = compute(values)"),
    ("    if value", "    if value is", "    if value is None", "    if value is None: return"),
]
FILLS = (" + 1", " +")  # usually valid code there / always a parse error


class CountingParser:
    """Counts tree-sitter parses: ``full`` without an old tree, ``incremental`` with one."""

    def __init__(self) -> None:
        self.full = 0
        self.incremental = 0
        original = tree_sitter.Parser.parse

        def parse(
            parser: tree_sitter.Parser, source: object, old_tree: object = None, **kwargs: object
        ) -> object:
            if old_tree is None:
                self.full += 1
                return original(parser, source, **kwargs)  # type: ignore[arg-type]
            self.incremental += 1
            return original(parser, source, old_tree, **kwargs)  # type: ignore[arg-type]

        tree_sitter.Parser.parse = parse  # type: ignore[method-assign]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lines", type=int, default=2000)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    text = generated_python(args.lines, args.seed)
    rng = random.Random(args.seed)
    try:
        counter: CountingParser | None = CountingParser()
    except TypeError:  # a tree_sitter build whose Parser cannot be patched: time only
        counter = None
    pick_ms: list[float] = []
    judge_ms: list[float] = []
    kept = requests = 0
    while requests < args.requests:
        lines = text.split("\n")
        at = rng.randrange(10, len(lines) - 10)
        *pauses, finished = rng.choice(STATEMENTS)
        for typed in pauses:
            if requests == args.requests:
                break
            requests += 1
            document = "\n".join([*lines[:at], typed, *lines[at:]])
            cursor = sum(len(line) + 1 for line in lines[:at]) + len(typed)
            started = time.process_time()
            region = regions.pick_cursor_region(document, cursor, "python")
            picked = time.process_time()
            prefix, suffix = document[: region.start], document[region.end :]
            for fill in FILLS:
                judged_fill = regions.finalize_candidate(
                    prefix, fill, suffix, "python", region.kind, region.indent
                )
                kept += judged_fill is not None
            judged = time.process_time()
            pick_ms.append((picked - started) * 1000)
            judge_ms.append((judged - picked) * 1000)
        text = "\n".join([*lines[:at], finished, *lines[at:]])

    total = [a + b for a, b in zip(pick_ms, judge_ms, strict=True)]

    def p95(values: list[float]) -> float:
        return sorted(values)[int(0.95 * (len(values) - 1))]

    where = os.environ.get("PYTHONPATH") or str(REPO_ROOT)
    print(
        f"# bench_regions: {args.requests} requests on a {args.lines}-line Python file ({len(text):,} chars)"
    )
    print(
        f"date {datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC, "
        f"{platform.processor() or platform.machine()}, load {os.getloadavg()[0]:.1f}, code from {where}"
    )
    print("| step | median CPU ms | p95 CPU ms |")
    print("|---|---:|---:|")
    print(f"| pick region | {statistics.median(pick_ms):.2f} | {p95(pick_ms):.2f} |")
    print(f"| judge 2 candidates | {statistics.median(judge_ms):.2f} | {p95(judge_ms):.2f} |")
    print(f"| total | {statistics.median(total):.2f} | {p95(total):.2f} |")
    if counter is not None:
        print(
            f"parses per request: {counter.full / args.requests:.2f} full, "
            f"{counter.incremental / args.requests:.2f} incremental; candidates kept {kept} of "
            f"{len(FILLS) * args.requests}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
