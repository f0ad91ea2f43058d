"""Score finished fine-tuning runs on their repository-name gaps in place (the report's names_cross_entropy).

    python scripts/score_name_tokens.py --repo REPO --tuned OUT [OUT ...] [--base infill/default_model]

For runs made before the report scored the names' tokens: rebuilds the run's held-out split and name gaps (the
same seeded choice ``infill train`` makes), scores base and each tuned model on them with
``ExampleSource.gap_batches`` and prints the mean difference with its paired 95% interval, one line per run.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

import torch

from training.corpus import corpus_from_git
from training.finetune_report import as_name_scores, example_scores
from training.losses import DiffusionObjective
from training.model_factory import is_shifted_decoder, load_base_model
from training.objective import ExampleSource
from training.paired import paired_interval
from training.repo_names import name_gaps


def name_token_scores(model_dir: Path, corpus, gaps, seq_len: int) -> dict[str, list[float]]:
    model, tokenizer = load_base_model(model_dir)
    shifted = is_shifted_decoder(model)
    source = ExampleSource(corpus.heldout, tokenizer, seq_len, shifted=shifted)
    batches = source.gap_batches([(g.row.prefix, g.row.middle, g.row.suffix) for g in gaps], 8)
    return as_name_scores(example_scores(DiffusionObjective(model, shift=shifted), batches))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repo", type=Path, required=True)
    parser.add_argument("--tuned", type=Path, nargs="+", required=True)
    parser.add_argument("--base", type=Path, default=Path("infill/default_model"))
    parser.add_argument("--name-gaps", type=int, default=96, help="the run's --eval-name-spans")
    parser.add_argument("--heldout-fraction", type=float, default=0.1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--seq-len", type=int, default=256)
    args = parser.parse_args()
    torch.set_num_threads(1)
    corpus = corpus_from_git(args.repo, heldout_fraction=args.heldout_fraction, seed=args.seed)
    gaps = name_gaps(corpus.train, corpus.heldout, args.name_gaps, args.seed)
    if len(gaps) < 2:
        print(f"{args.repo}: {len(gaps)} gaps on repository names, too few to compare", file=sys.stderr)
        return 2
    base = name_token_scores(args.base, corpus, gaps, args.seq_len)
    for tuned_dir in args.tuned:
        tuned = name_token_scores(tuned_dir, corpus, gaps, args.seq_len)
        cells = []
        for name, better in (("names_cross_entropy", "lower"), ("names_token_accuracy", "higher")):
            c = paired_interval(base[name], tuned[name], better=better)
            cells.append(
                f"{name} {c.base:.3f} -> {c.tuned:.3f}, {c.difference:+.3f} [{c.low:+.3f}, {c.high:+.3f}]"
                f"{' better' if c.improved else ' worse' if c.worse else ''}"
            )
        print(f"{tuned_dir.name}: {len(gaps)} gaps; " + "; ".join(cells))
    return 0


if __name__ == "__main__":
    sys.exit(main())
