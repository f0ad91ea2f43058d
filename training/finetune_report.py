"""What fine-tuning bought: base vs fine-tuned model on the same held-out material, with paired intervals.

Each number is compared item by item (``training.paired``):
  heldout_cross_entropy   cross-entropy per masked token of each held-out example (same examples, same masks
                          for both models), averaged over examples; the MDLM loss without its 1/t weights,
                          which make per-example values heavy-tailed (an example masked at t = 0.01 weighs 100
                          times more). The one held-out loss of a run: the console, the model card, eval.json
                          and this report all print this number (``heldout_batches`` draws its examples).
  masked_token_accuracy   share of masked tokens whose argmax is right, per example
  edit_similarity         per held-out gap (general code), decoded by the engine
  exact_match             per held-out gap
  names_*                 the same on gaps whose answer uses a name the repository defines
                          (``training.repo_names``): where a repository-specific model should gain first
  names_cross_entropy     per gap on repository names, the cross-entropy per token of its answer (the name and
  names_token_accuracy    the rest of its line) all masked at once, and the share of those tokens predicted
                          right: what the model knows of the names, before a greedy fill must spell them out
Written as ``finetune_report.json`` beside the fine-tuned model and printed by ``infill train``, ending with
one line a user reads (``verdict_line``).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from statistics import fmean

import torch

from training.objective import Batch
from training.paired import PairedComparison, paired_interval

REPORT_NAME = "finetune_report.json"
EVAL_SEED_OFFSET = 1_000_003  # held-out examples use their own fixed seeds, never the training stream's
HELDOUT_CE = "heldout_cross_entropy"
# (metric, direction of improvement, how it is printed)
METRICS = (
    (HELDOUT_CE, "lower", "{:.4f}"),
    ("masked_token_accuracy", "higher", "{:.2%}"),
    ("edit_similarity", "higher", "{:.3f}"),
    ("exact_match", "higher", "{:.2%}"),
    ("names_edit_similarity", "higher", "{:.3f}"),
    ("names_exact_match", "higher", "{:.2%}"),
    ("names_recalled", "higher", "{:.2%}"),
    ("names_cross_entropy", "lower", "{:.4f}"),
    ("names_token_accuracy", "higher", "{:.2%}"),
)
# The line a user reads: the same measure (edit similarity of the fills) on both sets of gaps.
VERDICT = (("repository names", "names_edit_similarity"), ("general code", "edit_similarity"))

DrawFn = Callable[[int, int, int, int], Batch]  # (batch_size, seed, index, rank) -> Batch


def heldout_batches(draw: DrawFn, batches: int, batch_size: int, seed: int) -> list[Batch]:
    """The held-out examples of a run: the same for every evaluation and every model scored on them."""
    return [draw(batch_size, seed + EVAL_SEED_OFFSET, i, 0) for i in range(batches)]


@torch.no_grad()
def example_scores(
    objective: torch.nn.Module, batches: Sequence[Batch], device: torch.device | str = "cpu"
) -> dict[str, list[float]]:
    """Per-example cross-entropy per masked (AR: predicted) token and masked-token accuracy."""
    was_training = objective.training
    objective.eval()
    losses: list[float] = []
    accuracies: list[float] = []
    for batch in batches:
        stats = objective.row_stats(batch.to(device))  # type: ignore[operator]
        losses += (stats.ce / stats.masked.clamp(min=1)).tolist()
        accuracies += (stats.correct / stats.masked.clamp(min=1)).tolist()
    objective.train(was_training)
    return {HELDOUT_CE: losses, "masked_token_accuracy": accuracies}


def as_name_scores(scores: dict[str, list[float]]) -> dict[str, list[float]]:
    """``example_scores`` of the name-gap batches, under the report's names_* keys."""
    return {
        "names_cross_entropy": scores[HELDOUT_CE],
        "names_token_accuracy": scores["masked_token_accuracy"],
    }


def mean_heldout_ce(scores: dict[str, list[float]]) -> float:
    return fmean(scores[HELDOUT_CE])


def build_report(
    base: dict[str, list[float]],
    tuned: dict[str, list[float]],
    *,
    base_dir: str,
    tuned_dir: str,
    source: str,
    level: float = 0.95,
) -> dict:
    """The JSON report; ``base`` / ``tuned``: per-item scores of each metric, items in the same order. A
    metric with fewer than two items (no gap uses a repository name, say) is left out."""
    comparisons: dict[str, PairedComparison] = {
        name: paired_interval(base[name], tuned[name], better=better, level=level)  # type: ignore[arg-type]
        for name, better, _ in METRICS
        if len(base.get(name, ())) >= 2
    }
    return {
        "base": base_dir,
        "tuned": tuned_dir,
        "data": source,
        "heldout_examples": len(base[HELDOUT_CE]),
        "heldout_gaps": len(base.get("edit_similarity", ())),
        "name_gaps": len(base.get("names_edit_similarity", ())),
        "level": level,
        "metrics": {name: c.to_dict() for name, c in comparisons.items()},
        "improved": [name for name, c in comparisons.items() if c.improved],
        "worse": [name for name, c in comparisons.items() if c.worse],
    }


def write_report(report: dict, out: Path) -> Path:
    path = out / REPORT_NAME
    path.write_text(json.dumps(report, indent=2) + "\n")
    return path


def read_report(out: Path) -> dict | None:
    path = out / REPORT_NAME
    return json.loads(path.read_text()) if path.is_file() else None


def verdict_line(report: dict) -> str:
    """One sentence: does the tuned model beat the base on repository names and on general code?"""
    percent = round(report["level"] * 100)
    parts = []
    for label, name in VERDICT:
        m = report["metrics"].get(name)
        if m is None:
            parts.append(f"on {label}: too few held-out gaps to compare")
            continue
        numbers = f"{m['difference']:+.3f} [{m['low']:+.3f}, {m['high']:+.3f}]"
        if m["improved"]:
            parts.append(f"beats base on {label} by {numbers}")
        elif m["worse"]:
            parts.append(f"is worse than base on {label} by {numbers}")
        else:
            parts.append(f"does not beat base on {label} beyond noise ({numbers})")
    line = f"tuned {'; '.join(parts)} (edit similarity of the fills, paired {percent}% interval)"
    knows = report["metrics"].get("names_cross_entropy")
    if knows is None:
        return line
    numbers = f"{knows['difference']:+.3f} [{knows['low']:+.3f}, {knows['high']:+.3f}]"
    if knows["improved"]:
        return f"{line}; it predicts the names' tokens better (cross-entropy {numbers})"
    if knows["worse"]:
        return f"{line}; it predicts the names' tokens worse (cross-entropy {numbers})"
    return f"{line}; its cross-entropy on the names' tokens moved within noise ({numbers})"


def format_report(report: dict) -> str:
    """A table for the terminal: base, fine-tuned, difference and its interval, and the verdict."""
    percent = round(report["level"] * 100)
    lines = [
        f"fine-tuning report: {report['heldout_examples']} held-out examples, {report['heldout_gaps']} "
        f"held-out gaps, {report.get('name_gaps', 0)} gaps on repository names, paired {percent}% intervals",
        f"{'metric':<24}{'base':>10}{'tuned':>10}{'difference':>13}  interval",
    ]
    for name, _, fmt in METRICS:
        m = report["metrics"].get(name)
        if m is None:
            continue
        verdict = "better" if m["improved"] else "worse" if m["worse"] else "within noise"
        diff = fmt.format(m["difference"])
        sign = "+" if m["difference"] >= 0 and not diff.startswith("-") else ""
        lines.append(
            f"{name:<24}{fmt.format(m['base']):>10}{fmt.format(m['tuned']):>10}{sign + diff:>13}  "
            f"[{fmt.format(m['low'])}, {fmt.format(m['high'])}] {verdict}"
        )
    return "\n".join([*lines, verdict_line(report)])
