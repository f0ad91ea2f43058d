"""Held-out infilling on a repository: cut line and block gaps in held-out files and score the fills.

Rows are drawn from the held-out files of the corpus split (by file), so a model fine-tuned on the repo
never saw them. Metrics (exact match after whitespace normalisation, edit similarity) come from
``training.eval.metrics``; generation goes through the same generators the benchmark uses (the diffusion
engine via ``Infiller.fill_batch``, ``training.ar_generate`` for the AR peer).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from training.corpus import SourceFile, corpus_from_git
from training.eval.metrics import edit_similarity, exact_match
from training.spans import index_spans, sample_span

PREFIX_CHARS = 2000
SUFFIX_CHARS = 1000
MAX_MIDDLE_CHARS = 240  # fits the 64-token canvas with room to spare
EVAL_KINDS = ("line", "lines", "node")

GenerateFn = Callable[[Sequence[tuple[str, str]]], list[str]]


@dataclass(frozen=True)
class EvalRow:
    path: str
    kind: str  # "line" (rest of a line) or "block" (whole lines / a syntactic node)
    prefix: str
    suffix: str
    middle: str


def heldout_rows(files: Sequence[SourceFile], count: int, seed: int = 0) -> list[EvalRow]:
    """``count`` gaps cut from ``files``, round-robin over files, each a non-blank middle of bounded size."""
    rng = random.Random(f"repo-eval:{seed}")
    rows: list[EvalRow] = []
    indexes = [index_spans(f.text, f.language) for f in files]
    attempts = 0
    while len(rows) < count and files and attempts < count * 50:
        i = attempts % len(files)
        attempts += 1
        text = files[i].text
        span = sample_span(text, indexes[i], rng, max_chars=MAX_MIDDLE_CHARS)
        middle = text[span.start : span.end]
        if span.kind not in EVAL_KINDS or not middle.strip() or len(middle) > MAX_MIDDLE_CHARS:
            continue
        kind = "line" if span.kind == "line" else "block"
        rows.append(
            EvalRow(
                files[i].path,
                kind,
                text[max(0, span.start - PREFIX_CHARS) : span.start],
                text[span.end : span.end + SUFFIX_CHARS],
                middle,
            )
        )
    return rows


def row_scores(rows: Sequence[EvalRow], completions: Sequence[str]) -> dict[str, list[float]]:
    """Per-gap exact match (0/1) and edit similarity, in row order (for paired comparisons)."""
    pairs = list(zip(completions, rows, strict=True))
    return {
        "exact_match": [float(exact_match(c, r.middle)) for c, r in pairs],
        "edit_similarity": [edit_similarity(c, r.middle) for c, r in pairs],
    }


def score_rows(rows: Sequence[EvalRow], completions: Sequence[str]) -> dict[str, float]:
    n = max(1, len(rows))
    scores = row_scores(rows, completions)
    return {name: sum(values) / n for name, values in scores.items()} | {"rows": float(len(rows))}


def complete_rows(rows: Sequence[EvalRow], generators: dict[str, GenerateFn]) -> list[str]:
    """Fill every row with the generator for its kind ("line" / "block"), in row order."""
    completions: list[str] = [""] * len(rows)
    for kind, generate in generators.items():
        picked = [i for i, r in enumerate(rows) if r.kind == kind]
        if picked:
            for i, text in zip(
                picked, generate([(rows[i].prefix, rows[i].suffix) for i in picked]), strict=True
            ):
                completions[i] = text
    return completions


def evaluate_rows(rows: Sequence[EvalRow], generators: dict[str, GenerateFn]) -> dict[str, float]:
    """Fill every row with the generator for its kind and score them all together."""
    return score_rows(rows, complete_rows(rows, generators))


def model_generators(model_dir: str | Path, device: str | None = "cpu") -> dict[str, GenerateFn]:
    """The line and block generators of a model dir (diffusion engine, or AR peer from its config.json)."""
    from training.eval.generation import load_generator

    return {
        "line": load_generator(model_dir, mode="line", max_tokens=48, device=device),
        "block": load_generator(model_dir, mode="span", max_tokens=64, device=device),
    }


def complete_with_model_dir(
    model_dir: str | Path, rows: Sequence[EvalRow], device: str | None = "cpu"
) -> list[str]:
    return complete_rows(rows, model_generators(model_dir, device))


def evaluate_model_dir(
    model_dir: str | Path, rows: Sequence[EvalRow], *, is_ar: bool = False, device: str | None = "cpu"
) -> dict[str, float]:
    """Held-out span exact match / edit similarity of a model dir (diffusion or AR peer)."""
    del is_ar  # the generator is chosen from config.json (infill_format), the single source of truth
    return score_rows(rows, complete_with_model_dir(model_dir, rows, device))


def evaluate_repo(
    model_dir: str | Path, repo: str | Path, *, count: int = 64, seed: int = 0, heldout_fraction: float = 0.1
) -> dict[str, float]:
    """Exact match / edit similarity on gaps in ``repo``'s held-out files (the split training uses)."""
    corpus = corpus_from_git(repo, heldout_fraction=heldout_fraction, seed=seed)
    return evaluate_model_dir(model_dir, heldout_rows(corpus.heldout, count, seed))


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m training.repo_eval MODEL_DIR [MODEL_DIR...] --repo PATH``: one JSON line per model."""
    import argparse
    import json

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("models", nargs="+", help="model directories to compare on the same gaps")
    parser.add_argument("--repo", default=".", help="git repository whose held-out files are cut")
    parser.add_argument("--count", type=int, default=64, help="number of gaps")
    parser.add_argument("--seed", type=int, default=0, help="split and gap seed (training uses 0)")
    args = parser.parse_args(argv)
    for model_dir in args.models:
        numbers = evaluate_repo(model_dir, args.repo, count=args.count, seed=args.seed)
        print(json.dumps({"model": str(model_dir), **numbers}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
