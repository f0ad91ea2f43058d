"""What the harness evaluates: a generation function over (prefix, suffix) rows, and how to load one.

Any ``Callable[[Sequence[tuple[str, str]]], list[str]]`` can be evaluated; generators that also carry a
``stats: GenerationStats`` attribute (the diffusion and AR wrappers do) get forward passes per token and
tokens per second reported as well.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from infill.errors import InputError, ModelLoadError

GenerateFn = Callable[[Sequence[tuple[str, str]]], list[str]]
ModelFamily = Literal["diffusion", "psm", "block-diffusion"]


@dataclass
class GenerationStats:
    """Totals over every row generated so far.

    forward_passes: summed per row (a row in a batch of 8 that took 12 denoising steps counts 12), so
    forward_passes / generated_tokens is the per-row cost of one token for both model families.
    """

    rows: int = 0
    forward_passes: int = 0
    generated_tokens: int = 0
    seconds: float = 0.0

    @property
    def passes_per_token(self) -> float | None:
        return self.forward_passes / self.generated_tokens if self.generated_tokens else None

    @property
    def tokens_per_second(self) -> float | None:
        return self.generated_tokens / self.seconds if self.seconds > 0 else None


def model_family(model_dir: str | Path) -> ModelFamily:
    """ "psm" for an autoregressive FIM peer (config.json ``infill_format: psm``), "block-diffusion" for a
    block diffusion model (decoded by training.block_diffusion), else "diffusion"."""
    config_path = Path(model_dir) / "config.json"
    if not config_path.is_file():
        raise ModelLoadError(f"{model_dir}: no config.json (not a model directory)")
    try:
        config = json.loads(config_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise ModelLoadError(f"{config_path}: unreadable ({error})") from None
    declared = config.get("infill_format") if isinstance(config, dict) else None
    return declared if declared in ("psm", "block-diffusion") else "diffusion"


def load_generator(
    model_dir: str | Path,
    *,
    mode: str,
    max_tokens: int,
    device: str | None = None,
    batch_size: int = 8,
    trust_remote_code: bool = False,
    quantize: str | None = None,
) -> GenerateFn:
    """The right generator for a model directory: ``ARGenerator`` for PSM peers, else the diffusion engine
    (``quantize``: the diffusion engine's only)."""
    family = model_family(model_dir)
    if quantize is not None and family in ("psm", "block-diffusion"):
        raise InputError(f"--quantize is for the diffusion engine, not the {family} model in {model_dir}")
    if model_family(model_dir) == "psm":
        from training.ar_generate import ARGenerator

        return ARGenerator(model_dir, mode=mode, max_tokens=max_tokens, device=device, batch_size=batch_size)
    if model_family(model_dir) == "block-diffusion":
        from training.block_diffusion import BlockDiffusionGenerator

        return BlockDiffusionGenerator(model_dir, mode=mode, max_tokens=max_tokens)
    from training.eval.diffusion import DiffusionGenerator

    return DiffusionGenerator(
        model_dir,
        mode=mode,
        max_tokens=max_tokens,
        device=device,
        batch_size=batch_size,
        trust_remote_code=trust_remote_code,
        quantize=quantize,
    )
