"""Step time of the denoising loop with and without the context key/value cache (Fast-dLLM's DualCache).

    python scripts/bench_cache.py [--layers 4] [--hidden 896] [--context 2000] [--canvas 64] [--block 32]
        [--steps-per-block 8] [--repeats 3] [--threads 1] [--device cpu] [--dtype float32]

Builds a random model with Dream's architecture (Qwen2 layout, 152,064-token vocabulary, grouped-query
attention, bidirectional, shifted logits; speed does not depend on the weights) in qwen2.py's module, which
the loader runs Dream-family checkpoints in, with --layers layers, puts a --canvas-token masked span
after --context tokens of context, and times one denoising step's model call:

- full: a plain forward pass over the whole canvas, LM head on the block's positions (cache off);
- refresh: the full pass that also builds the cache (a step at the start of each block);
- cached: a step that recomputes only the block against the cache;
- per step, refresh once per block: (refresh + (steps per block - 1) x cached) / steps per block.

With ``--layers 28 --hidden 3584 --heads 28 --kv-heads 4 --intermediate 18944 --dtype bfloat16 --device cuda``
this is Qwen2.5-7B's shape (Dream-7B), where a GPU is available. Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from infill.models.adapters import DecoderAdapter
from infill.models.qwen2 import Qwen2Config, Qwen2ForCausalLM

DREAM_VOCAB = 152_064


def dream_shaped(args: argparse.Namespace, device: torch.device, dtype: torch.dtype) -> DecoderAdapter:
    """The shape in qwen2.py's module, which the loader runs Dream-family checkpoints in (and which alone
    takes the cache), with random weights."""
    config = Qwen2Config.from_json(
        {
            "model_type": "qwen2",
            "vocab_size": DREAM_VOCAB,
            "hidden_size": args.hidden,
            "intermediate_size": args.intermediate,
            "num_hidden_layers": args.layers,
            "num_attention_heads": args.heads,
            "num_key_value_heads": args.kv_heads,
            "max_position_embeddings": 32_768,
            "tie_word_embeddings": False,
        }
    )
    assert config is not None
    with torch.device(device):
        model = Qwen2ForCausalLM(config)
    with torch.no_grad():  # the module is built uninitialised (its weights come from a checkpoint)
        for name, parameter in model.named_parameters():
            if "norm" in name:
                parameter.fill_(1.0)
            else:
                parameter.normal_(0.0, 0.02)
    return DecoderAdapter(model.to(dtype).eval(), shift=True)


def timed(call: Callable[[], object], repeats: int, device: torch.device) -> float:
    """Median milliseconds of ``call`` over ``repeats`` runs, after one warm-up."""
    call()
    times = []
    for _ in range(repeats):
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        call()
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--hidden", type=int, default=896)
    parser.add_argument("--heads", type=int, default=14)
    parser.add_argument("--kv-heads", type=int, default=2)
    parser.add_argument("--intermediate", type=int, default=4864)
    parser.add_argument("--context", type=int, default=2000, help="context tokens around the canvas")
    parser.add_argument("--canvas", type=int, default=64, help="masked span tokens")
    parser.add_argument("--block", type=int, default=32, help="positions decoded per step (block size)")
    parser.add_argument("--steps-per-block", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", choices=("float32", "bfloat16"), default="float32")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    device, dtype = torch.device(args.device), getattr(torch, args.dtype)
    adapter = dream_shaped(args, device, dtype)
    parameters = sum(p.numel() for p in adapter.model.parameters())

    # Context split 2/3 before and 1/3 after the canvas, as the engine trims it; a leading bos position.
    before = args.context * 2 // 3
    length = 1 + args.context + args.canvas
    generator = torch.Generator().manual_seed(0)
    ids = torch.randint(0, 151_000, (1, length), generator=generator).to(device)
    ids[0, 1 + before : 1 + before + args.canvas] = 151_666  # Dream's <|mask|>
    mask = torch.ones_like(ids)
    block = torch.arange(1 + before, 1 + before + args.block, device=device)[None]  # (1, W)

    with torch.inference_mode():
        _, cache = adapter.logits_with_cache(ids, mask, block, None)
        full = timed(lambda: adapter.logits(ids, mask, block), args.repeats, device)
        refresh = timed(lambda: adapter.logits_with_cache(ids, mask, block, None), args.repeats, device)
        cached = timed(lambda: adapter.logits_with_cache(ids, mask, block, cache), args.repeats, device)
    per_step = (refresh + (args.steps_per_block - 1) * cached) / args.steps_per_block
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(
        f"Dream-shaped random model: {args.layers} layers, hidden {args.hidden}, {args.heads} heads "
        f"({args.kv_heads} kv), vocabulary {DREAM_VOCAB:,}, {parameters / 1e6:.0f}M parameters, "
        f"{args.dtype}; "
        f"canvas {length} positions ({args.context} context + {args.canvas} span), block {args.block}, "
        f"{args.steps_per_block} steps per block; device {device}, {args.threads} thread(s), load {load:.1f}"
    )
    print()
    print("| step | ms | speed-up over full |")
    print("|---|---:|---:|")
    for name, ms in (
        ("full forward pass (no cache)", full),
        ("refresh (full pass building the cache)", refresh),
        ("cached step (block only)", cached),
        (f"per step, refresh once per block of {args.steps_per_block} steps", per_step),
    ):
        print(f"| {name} | {ms:.1f} | {full / ms:.1f}x |")
    per_step_tokens = args.block / args.steps_per_block  # every block decoded in steps_per_block steps
    print()
    print(
        f"tokens/s at {per_step_tokens:g} tokens committed per step: "
        f"{per_step_tokens * 1000 / per_step:.0f} with the cache, {per_step_tokens * 1000 / full:.0f} without"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
