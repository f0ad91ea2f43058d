"""A 0.5B Qwen2.5-Coder-shaped block-diffusion model with random weights on the CPU: float32 vs int8.

Shape of Qwen2.5-Coder-0.5B (hidden 896, 24 layers, 14 heads, 2 kv heads, MLP 4864, 151,936-token tied
vocabulary, q/k/v biases), run by infill's own module (qwen2.py) block-causally over blocks of 4, as a
bd3lm-style conversion of it would be. int8: torch's dynamic quantization (``torch.ao.quantization
.quantize_dynamic``) of every Linear, LM head included; the embedding stays float32.

Prints, in wall and CPU time (on a loaded machine the CPU time of this one-thread process is the nearer
estimate of an idle machine's wall time): one block step (4 positions against a cached prompt) in float32
and int8 and their ratio; the top-1 agreement of the two models' logits over real code (this repository's
own source, tokenized by the bundled model's tokenizer, whose ids are a subset of the vocabulary: with random
weights this measures what quantization changes, not what the model knows); a line completion through the
engine (``InfillEngine.fill``, what the server calls) with a cold prefix cache and warm (the next keystroke,
the cache kept from the last); and the process RSS. Random weights never reach the 0.85 threshold, so every
block takes its 4 steps: an upper bound for a trained model, which commits several positions per step.
``--threshold 0`` commits a whole block per step (4 passes for 16 tokens), the lower bound: a trained model
confident about its block. ``--threads 2`` for an idle two-core machine, ``--models int8`` to skip float32.

    OMP_NUM_THREADS=1 python scripts/bench_block_cpu.py [--context 256] [--repeats 5] [--threads 1]
        [--threshold 0.85] [--models float32 int8]
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import gc
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import torch

from infill.engine import InfillEngine
from infill.engine.block_decoding import PrefixCaches
from infill.engine.types import FillRequest
from infill.models import load_model
from infill.models.base import LoadedModel
from infill.models.block_model import BlockDiffusionModel
from infill.models.quantize import quantize_linear_layers
from infill.models.qwen2 import Qwen2Config, Qwen2ForCausalLM

ROOT = Path(__file__).resolve().parents[1]
QWEN25_CODER_05B = Qwen2Config(
    vocab_size=151936,
    hidden_size=896,
    intermediate_size=4864,
    num_hidden_layers=24,
    num_attention_heads=14,
    num_key_value_heads=2,
    head_dim=64,
    rope_theta=1_000_000.0,
    max_position_embeddings=32768,
    rms_norm_eps=1e-6,
    tie_word_embeddings=True,
)
BLOCK = 4


def rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def random_model(layers: int, seed: int = 0) -> Qwen2ForCausalLM:
    torch.manual_seed(seed)
    model = Qwen2ForCausalLM(dataclasses.replace(QWEN25_CODER_05B, num_hidden_layers=layers))
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "norm" in name:
                param.fill_(1.0)
            else:
                param.normal_(0.0, 0.02)
    model.lm_head.weight = model.model.embed_tokens.weight
    return model.eval()


def quantized(model: Qwen2ForCausalLM) -> Qwen2ForCausalLM:
    """A copy with what ``--quantize int8`` does (infill/models/quantize.py): torch's dynamic int8
    quantization of every Linear (the LM head gets its own int8 copy of the tied embedding)."""
    copied = copy.deepcopy(model)
    quantize_linear_layers(copied, "int8")
    return copied


def real_code_ids(loaded: LoadedModel, count: int) -> list[int]:
    text = "".join(p.read_text() for p in sorted((ROOT / "infill" / "engine").glob("*.py")))
    return loaded.tokenizer.encode(text)[:count]


def timed(call: Callable[[], object]) -> tuple[float, float]:
    """(wall ms, CPU ms) of one call: on a loaded machine the CPU time of this one-thread process is the
    nearer estimate of the wall time on an idle one."""
    wall, cpu = time.perf_counter(), time.process_time()
    call()
    return (time.perf_counter() - wall) * 1000, (time.process_time() - cpu) * 1000


def medians(samples: list[tuple[float, float]]) -> tuple[float, float]:
    return statistics.median(s[0] for s in samples), statistics.median(s[1] for s in samples)


def step_ms(model: BlockDiffusionModel, prompt: list[int], repeats: int) -> tuple[float, float]:
    cache = model.prefill(torch.tensor([prompt[: len(prompt) // BLOCK * BLOCK]]))
    block = torch.tensor([prompt[:BLOCK]])
    model.block_logits(block, cache)  # warm-up
    return medians([timed(lambda: model.block_logits(block, cache)) for _ in range(repeats)])


def line_fill_ms(
    engine: InfillEngine, prefix: str, suffix: str, repeats: int, threshold: float
) -> tuple[tuple[float, float], tuple[float, float]]:
    """(cold, warm) (wall, CPU) p50 of a 16-token line fill: cold with an empty prefix cache, warm as the
    next keystroke after a fill of the same document."""
    config = dataclasses.replace(engine.default_config(), block_steps=4, threshold=threshold, temperature=0.0)
    cold, warm = [], []
    for index in range(repeats):
        engine.prefix_caches = PrefixCaches()
        typed = prefix + "x" * index  # each round a different document state
        request = FillRequest(typed, suffix, max_tokens=16, mode="line")
        cold.append(timed(lambda request=request: engine.fill([request], config)))
        request = FillRequest(typed + "y", suffix, max_tokens=16, mode="line")
        warm.append(timed(lambda request=request: engine.fill([request], config)))
    return medians(cold), medians(warm)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--context", type=int, default=256, help="prompt tokens (prefix + suffix)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--layers", type=int, default=24, help="fewer for a quick check of the script")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (timings are CPU and wall)")
    parser.add_argument("--threshold", type=float, default=0.85, help="SDAR's 0.85; 0: a block a step")
    parser.add_argument("--models", nargs="+", choices=("float32", "int8"), default=["float32", "int8"])
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    bundled = load_model(device="cpu")  # its tokenizer turns real code into ids
    base_rss = rss_mib()
    fp32 = random_model(args.layers)
    print(f"float32 model built: RSS {rss_mib():.0f} MiB (+{rss_mib() - base_rss:.0f})")
    int8 = quantized(fp32)
    gc.collect()
    print(f"int8 copy built: RSS {rss_mib():.0f} MiB")

    ids = real_code_ids(bundled, args.context)
    models = {"float32": BlockDiffusionModel(fp32, BLOCK), "int8": BlockDiffusionModel(int8, BLOCK)}
    steps = {name: step_ms(model, ids, args.repeats * 2) for name, model in models.items()}
    mask = torch.ones(1, len(ids), dtype=torch.long)
    top1 = {name: model.logits(torch.tensor([ids]), mask)[0].argmax(-1) for name, model in models.items()}
    agreement = (top1["float32"] == top1["int8"]).float().mean().item()
    (fp_wall, fp_cpu), (q_wall, q_cpu) = steps["float32"], steps["int8"]
    print(
        f"block step (4 positions, {len(ids)} cached), wall/CPU ms: float32 {fp_wall:.0f}/{fp_cpu:.0f}, "
        f"int8 {q_wall:.0f}/{q_cpu:.0f}, ratio {fp_wall / q_wall:.2f}/{fp_cpu / q_cpu:.2f}"
    )
    print(f"top-1 agreement float32 vs int8 over {len(ids)} positions of real code: {agreement:.3f}")

    source = (ROOT / "infill" / "engine" / "block_decoding.py").read_text()
    cut = source.index("    generator = make_generator")
    special = bundled.special
    banned = tuple(sorted({*special.banned_ids, *range(bundled.tokenizer.vocab_size, 151936)}))
    for name, model in models.items():
        if name not in args.models:
            continue
        loaded = dataclasses.replace(
            bundled,
            model=model,
            special=dataclasses.replace(
                special, banned_ids=banned, block_prompt=("{suffix}", special.pad_id, "{prefix}")
            ),
            max_positions=32768,
            generation_defaults={"context_tokens": args.context},
        )
        engine = InfillEngine(loaded)
        cold, warm = line_fill_ms(engine, source[:cut], source[cut:], args.repeats, args.threshold)
        print(
            f"{name}, threshold {args.threshold}, {args.threads} thread(s): line fill (16 tokens, "
            f"{args.context} context tokens) p50 wall/CPU ms: "
            f"cold {cold[0]:.0f}/{cold[1]:.0f}, warm {warm[0]:.0f}/{warm[1]:.0f}; RSS {rss_mib():.0f} MiB"
        )


if __name__ == "__main__":
    main()
