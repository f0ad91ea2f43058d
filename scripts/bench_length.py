"""How long a fill is: a fixed canvas vs training-free length searches vs the oracle length (MBPP multi-line).

    python scripts/bench_length.py [--model DIR] [--tasks 120] [--budget 96] [--share 0.33] [--threads 1]
        [--no-tests] [--out report.md] [--json rows.json]

Every condition decodes the same spread sample of MBPP-MultiLineInfilling gaps greedily (block mode, the
model's own decoding settings otherwise), on the gaps halfway between those a ``--tasks`` spread sample takes
(so a rule chosen on that sample is measured on others):

- fixed: the whole ``--budget`` as the canvas (what infill does with ``canvas_share`` 1);
- ladder: the one-pass length estimate over a doubling ladder of canvases (``estimate_length``);
- cal: calibrated first-step confidence (after CAL, arXiv 2602.00476): one pass over fully masked canvases
  of every length of a grid up to the budget, the sum over the canvas of log max-probability minus the same
  sum on a context-free canvas of that length (the calibration: how confident the model is at that length
  with nothing to go on); the span is decoded on the length with the highest calibrated score;
- grow: ``canvas_share`` ``--share``: a canvas of that share of the budget, doubled while the span fills it
  without ending (length.py ``growing_lengths``);
- oracle: a canvas of exactly the reference's token count.

Per condition: edit similarity to the reference, the exact-length rate (generated tokens == the reference's),
pass@1 (the sandbox runs each program; ``--no-tests`` skips it), forward passes per task, and the paired
difference in edit similarity against the fixed canvas with its 95% interval, with the share of the
fixed-to-oracle gap it closes.
"""

from __future__ import annotations

import json
import logging
import math
import statistics
import sys
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing
sys.path.insert(0, str(Path(__file__).resolve().parent))  # mbpp_bench_cli, also when loaded by path

import torch
from mbpp_bench_cli import bench_parser, run_header, start_run

from infill.engine import InfillEngine
from infill.engine.canvas import Context, build_canvas, context_budget, stack_canvases, trim_context
from infill.engine.scoring import banned_token_ids
from infill.engine.types import DecodeConfig, FillRequest, FillResult
from infill.models import load_model
from training.eval.bench import BenchTask, load_tasks, resolve_bench
from training.eval.harness import close_last_line, execute
from training.eval.metrics import edit_similarity
from training.paired import paired_interval
from training.sandbox import SandboxLimits

logger = logging.getLogger("bench_length")

CONDITIONS = ("fixed", "ladder", "cal", "grow", "oracle")
CAL_GRID = (2, 4, 6, 8, 12, 16, 20, 24, 32, 40, 48, 64, 80, 96, 128)


@dataclass
class Outcome:
    completion: str
    tokens: int
    passes: int
    similarity: float
    passed: bool | None = None


def offset_sample(tasks: Sequence[BenchTask], count: int) -> list[BenchTask]:
    """``count`` tasks spread over ``tasks``, each halfway between two of a plain spread sample's."""
    step = max(len(tasks) / count, 1.0)
    return [tasks[min(len(tasks) - 1, int(i * step + step / 2))] for i in range(min(count, len(tasks)))]


class CalibratedLength:
    """The CAL-style rule: one batched pass per request over fully masked canvases of the grid's lengths."""

    def __init__(self, engine: InfillEngine, budget: int) -> None:
        self.engine = engine
        self.lengths = [length for length in CAL_GRID if length < budget] + [budget]
        self.baseline = self._scores(Context([], []))  # the context-free confidence of each length

    def _scores(self, context: Context) -> list[float]:
        loaded = self.engine.loaded
        special = loaded.special
        canvases = [build_canvas(context, length, special) for length in self.lengths]
        ids, attention_mask, _ = stack_canvases(canvases, special, loaded.device)
        with torch.inference_mode():
            logits = loaded.model.logits(ids, attention_mask, None).float()
        logits = logits.clone()
        logits[..., banned_token_ids(special, loaded.device)] = float("-inf")
        top = torch.log_softmax(logits, dim=-1).max(dim=-1).values  # (B, T)
        return [
            float(top[row, canvas.span_start : canvas.span_start + canvas.span_length].sum())
            for row, canvas in enumerate(canvases)
        ]

    def length(self, task: BenchTask) -> int:
        loaded = self.engine.loaded
        budget = context_budget(loaded.special, self.lengths[-1], loaded.max_positions)
        budget = min(budget, self.engine.context_tokens)
        context = trim_context(task.prompt, task.suffix, loaded.tokenizer.encode, budget)
        scores = self._scores(context)
        calibrated = [score - base for score, base in zip(scores, self.baseline, strict=True)]
        return self.lengths[max(range(len(calibrated)), key=calibrated.__getitem__)]


def decode(engine: InfillEngine, task: BenchTask, config: DecodeConfig, canvas: int) -> Outcome:
    request = FillRequest(task.prompt, task.suffix, max_tokens=canvas, mode="block")
    (result,) = engine.fill([request], config)
    return outcome(task, result)


def outcome(task: BenchTask, result: FillResult) -> Outcome:
    text = close_last_line(task, result.best.text if result.best else "")
    similarity = edit_similarity(text, task.canonical_solution)
    return Outcome(text, result.generated_tokens, result.forward_passes, similarity)


def run_conditions(
    engine: InfillEngine, tasks: Sequence[BenchTask], budget: int, share: float
) -> dict[str, list[Outcome]]:
    base = replace(engine.default_config(), num_candidates=1, temperature=0.0)
    fixed = replace(base, canvas_share=1.0, estimate_length=False)
    cal = CalibratedLength(engine, budget)
    outcomes: dict[str, list[Outcome]] = {name: [] for name in CONDITIONS}
    for number, task in enumerate(tasks, start=1):
        oracle = len(engine.loaded.tokenizer.encode(task.canonical_solution))
        outcomes["fixed"].append(decode(engine, task, fixed, budget))
        outcomes["ladder"].append(decode(engine, task, replace(fixed, estimate_length=True), budget))
        chosen = decode(engine, task, fixed, cal.length(task))
        chosen.passes += 1  # the calibration pass
        outcomes["cal"].append(chosen)
        outcomes["grow"].append(decode(engine, task, replace(fixed, canvas_share=share), budget))
        outcomes["oracle"].append(decode(engine, task, fixed, max(1, min(oracle, budget))))
        if number % 20 == 0:
            logger.info("%d/%d tasks", number, len(tasks))
    return outcomes


def report_rows(tasks: Sequence[BenchTask], outcomes: dict[str, list[Outcome]], tokenizer) -> list[dict]:
    oracle_tokens = [len(tokenizer.encode(task.canonical_solution)) for task in tasks]
    fixed = [o.similarity for o in outcomes["fixed"]]
    oracle = [o.similarity for o in outcomes["oracle"]]
    gap = statistics.fmean(oracle) - statistics.fmean(fixed)
    rows = []
    for name in CONDITIONS:
        got = outcomes[name]
        similarity = [o.similarity for o in got]
        comparison = paired_interval(fixed, similarity)
        ran = [o.passed for o in got if o.passed is not None]
        rows.append(
            {
                "condition": name,
                "edit_similarity": statistics.fmean(similarity),
                "exact_length": statistics.fmean(
                    o.tokens == n for o, n in zip(got, oracle_tokens, strict=True)
                ),
                "pass_at_1": statistics.fmean(ran) if ran else None,
                "passes_per_task": statistics.fmean(o.passes for o in got),
                "tokens_per_task": statistics.fmean(o.tokens for o in got),
                "vs_fixed": comparison.difference,
                "low": comparison.low,
                "high": comparison.high,
                "gap_closed": (statistics.fmean(similarity) - statistics.fmean(fixed)) / gap if gap else None,
            }
        )
    return rows


def markdown(rows: list[dict], n: int, median_tokens: float) -> list[str]:
    lines = [
        f"{n} MBPP multi-line gaps (reference: median {median_tokens:g} tokens).",
        "",
        "| condition | edit sim. | vs fixed [95% CI] | gap to oracle closed | exact length | pass@1 "
        "| passes/task | tokens/task |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        closed = "" if row["gap_closed"] is None else f"{row['gap_closed']:.0%}"
        passed = "" if row["pass_at_1"] is None else f"{row['pass_at_1']:.1%}"
        lines.append(
            f"| {row['condition']} | {row['edit_similarity']:.3f} | {row['vs_fixed']:+.3f} "
            f"[{row['low']:+.3f}, {row['high']:+.3f}] | {closed} | {row['exact_length']:.1%} | {passed} "
            f"| {row['passes_per_task']:.1f} | {row['tokens_per_task']:.1f} |"
        )
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = bench_parser(__doc__, threads=1)
    parser.add_argument("--tasks", type=int, default=120, help="MBPP multi-line gaps (spread sample)")
    parser.add_argument("--budget", type=int, default=96, help="token budget (the fixed canvas)")
    parser.add_argument("--share", type=float, default=0.33, help="canvas_share of the grow condition")
    parser.add_argument("--no-tests", action="store_true", help="skip running the programs (pass@1)")
    parser.add_argument("--out", type=Path, default=None, help="also write the Markdown report here")
    parser.add_argument("--json", type=Path, default=None, help="per-condition rows as JSON")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    argv_used = sys.argv[1:] if argv is None else argv
    load_before = start_run(args.threads)
    engine = InfillEngine(load_model(args.model, device=args.device))
    tasks = offset_sample(load_tasks(resolve_bench("multi", args.bench_dir)), args.tasks)
    outcomes = run_conditions(engine, tasks, args.budget, args.share)
    if not args.no_tests:
        limits = SandboxLimits(timeout_s=args.timeout)
        for got in outcomes.values():
            results = execute(tasks, [o.completion for o in got], limits=limits, workers=args.workers)
            for o, result in zip(got, results, strict=True):
                o.passed = None if result is None else result.passed
    rows = report_rows(tasks, outcomes, engine.loaded.tokenizer)
    median = statistics.median(len(engine.loaded.tokenizer.encode(t.canonical_solution)) for t in tasks)
    lines = [*run_header("bench_length.py", argv_used, load_before), f"- Model: {engine.loaded.name}", ""]
    lines += markdown(rows, len(tasks), median)
    print("\n".join(lines))
    if args.out:
        args.out.write_text("\n".join(lines) + "\n", encoding="utf-8")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2) + "\n", encoding="utf-8")
    return 0 if all(math.isfinite(row["edit_similarity"]) for row in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
