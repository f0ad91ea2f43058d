"""How far ``--quantize int8`` moves a trained model's predictions: top-1 agreement with float32 at masked
positions of real code, and both accuracies (the bundled model by default; any masked LM with --model).

    OMP_NUM_THREADS=1 python scripts/bench_int8_agreement.py [--model DIR] [--windows 8]

The code is this repository's infill/engine/*.py, in windows of 512 tokens with 15% of the positions masked
(seeded), so the numbers are reproducible.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from infill.models import load_model

ROOT = Path(__file__).resolve().parents[1]
WINDOW, MASKED = 512, 0.15


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None)
    parser.add_argument("--windows", type=int, default=8)
    args = parser.parse_args()
    plain = load_model(args.model, device="cpu")
    int8 = load_model(args.model, device="cpu", quantize="int8")
    text = "".join(p.read_text() for p in sorted((ROOT / "infill" / "engine").glob("*.py")))
    ids = plain.tokenizer.encode(text)[: args.windows * WINDOW]
    ids = torch.tensor(ids[: len(ids) // WINDOW * WINDOW]).view(-1, WINDOW)
    masked = torch.rand(ids.shape, generator=torch.Generator().manual_seed(0)) < MASKED
    canvas, real = ids.masked_fill(masked, plain.special.mask_id), torch.ones_like(ids)
    with torch.inference_mode():
        top_plain = plain.model.logits(canvas, real)[masked].argmax(-1)
        top_int8 = int8.model.logits(canvas, real)[masked].argmax(-1)
    truth = ids[masked]
    print(f"{int(masked.sum())} masked positions in {ids.shape[0]} windows of {WINDOW} tokens")
    print(f"top-1 agreement int8 vs float32: {(top_plain == top_int8).float().mean().item():.3f}")
    print(f"accuracy float32 {(top_plain == truth).float().mean().item():.3f}, int8 "
          f"{(top_int8 == truth).float().mean().item():.3f}")  # fmt: skip


if __name__ == "__main__":
    main()
