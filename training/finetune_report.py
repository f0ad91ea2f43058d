"""What fine-tuning bought: base vs fine-tuned model on the same held-out material, with paired intervals.

Four numbers, each compared item by item (``training.paired``):
  held-out loss          cross-entropy per masked token of each held-out example (same examples, same masks
                         for both models); the MDLM loss without its 1/t weights, which make per-example
                         values heavy-tailed (an example masked at t = 0.01 weighs 100 times more)
  masked-token accuracy  share of masked tokens whose argmax is right, per example
  edit similarity        per held-out gap, decoded by the engine
  exact match            per held-out gap
Written as ``finetune_report.json`` beside the fine-tuned model and printed by ``infill train``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path

import torch

from training.losses import DiffusionObjective
from training.objective import Batch, ExampleSource
from training.paired import PairedComparison, paired_interval

REPORT_NAME = "finetune_report.json"
REPORT_SEED_OFFSET = 2_000_003  # its own examples, never the training stream's nor the periodic eval's
# (metric, direction of improvement, how it is printed)
METRICS = (
    ("heldout_loss", "lower", "{:.4f}"),
    ("masked_token_accuracy", "higher", "{:.2%}"),
    ("edit_similarity", "higher", "{:.3f}"),
    ("exact_match", "higher", "{:.2%}"),
)


def report_batches(source: ExampleSource, examples: int, batch_size: int, seed: int) -> list[Batch]:
    """At least ``examples`` held-out diffusion examples, the same for every model scored on them."""
    count = math.ceil(examples / batch_size)
    return [source.diffusion_batch(batch_size, seed + REPORT_SEED_OFFSET, i, 0) for i in range(count)]


@torch.no_grad()
def example_scores(objective: DiffusionObjective, batches: Sequence[Batch]) -> dict[str, list[float]]:
    """Per-example cross-entropy per masked token and masked-token accuracy."""
    was_training = objective.training
    objective.eval()
    losses: list[float] = []
    accuracies: list[float] = []
    for batch in batches:
        stats = objective.row_stats(batch)
        losses += (stats.ce / stats.masked.clamp(min=1)).tolist()
        accuracies += (stats.correct / stats.masked.clamp(min=1)).tolist()
    objective.train(was_training)
    return {"heldout_loss": losses, "masked_token_accuracy": accuracies}


def build_report(
    base: dict[str, list[float]],
    tuned: dict[str, list[float]],
    *,
    base_dir: str,
    tuned_dir: str,
    source: str,
    level: float = 0.95,
) -> dict:
    """The JSON report; ``base`` / ``tuned``: per-item scores of every metric, items in the same order."""
    comparisons: dict[str, PairedComparison] = {
        name: paired_interval(base[name], tuned[name], better=better, level=level)  # type: ignore[arg-type]
        for name, better, _ in METRICS
    }
    return {
        "base": base_dir,
        "tuned": tuned_dir,
        "data": source,
        "heldout_examples": len(base["heldout_loss"]),
        "heldout_gaps": len(base["edit_similarity"]),
        "level": level,
        "metrics": {name: c.to_dict() for name, c in comparisons.items()},
        "improved": [name for name, c in comparisons.items() if c.improved],
        "worse": [name for name, c in comparisons.items() if c.worse],
    }


def write_report(report: dict, out: Path) -> Path:
    path = out / REPORT_NAME
    path.write_text(json.dumps(report, indent=2) + "\n")
    return path


def format_report(report: dict) -> str:
    """A table for the terminal: base, fine-tuned, difference and its interval, and the verdict."""
    percent = round(report["level"] * 100)
    lines = [
        f"fine-tuning report: {report['heldout_examples']} held-out examples, {report['heldout_gaps']} "
        f"held-out gaps, paired {percent}% intervals",
        f"{'metric':<24}{'base':>10}{'tuned':>10}{'difference':>13}  interval",
    ]
    for name, _, fmt in METRICS:
        m = report["metrics"][name]
        verdict = "better" if m["improved"] else "worse" if m["worse"] else "within noise"
        diff = fmt.format(m["difference"])
        sign = "+" if m["difference"] >= 0 and not diff.startswith("-") else ""
        lines.append(
            f"{name:<24}{fmt.format(m['base']):>10}{fmt.format(m['tuned']):>10}{sign + diff:>13}  "
            f"[{fmt.format(m['low'])}, {fmt.format(m['high'])}] {verdict}"
        )
    return "\n".join(lines)
