"""The diffusion model as a generation function: ``Infiller.fill_batch``, with the engine's work counted."""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path

from infill.engine import InfillEngine
from infill.engine.types import DecodeConfig, FillResult
from infill.infiller import Infiller
from infill.models import LoadedModel, load_model
from training.eval.generation import GenerationStats


class CountingEngine(InfillEngine):
    """An InfillEngine that adds every FillResult's forward passes and generated tokens to ``stats``."""

    def __init__(self, loaded: LoadedModel, stats: GenerationStats) -> None:
        super().__init__(loaded)
        self.stats = stats

    def fill(self, requests, config=None, should_stop=None) -> list[FillResult]:  # type: ignore[no-untyped-def]
        results = super().fill(requests, config, should_stop)
        for result in results:
            self.stats.forward_passes += result.forward_passes
            self.stats.generated_tokens += result.generated_tokens
        return results


class DiffusionGenerator:
    """``Callable[[Sequence[tuple[str, str]]], list[str]]`` over a diffusion model directory, with stats.

    Decoding uses the model's own defaults (generation_config.json) unless ``config`` is given; greedy
    (temperature 0) is the DecodeConfig default, which is what pass@1 assumes.
    """

    def __init__(
        self,
        model_dir: str | Path,
        *,
        mode: str = "span",
        max_tokens: int = 64,
        device: str | None = None,
        batch_size: int = 8,
        config: DecodeConfig | None = None,
        trust_remote_code: bool = False,
        quantize: str | None = None,
    ) -> None:
        self.stats = GenerationStats()
        loaded = load_model(model_dir, device=device, trust_remote_code=trust_remote_code, quantize=quantize)
        self.infiller = Infiller(CountingEngine(loaded, self.stats))
        self.name = Path(model_dir).name
        self.mode = mode
        self.max_tokens = max_tokens
        self.batch_size = batch_size
        self.config = config

    def __call__(self, rows: Sequence[tuple[str, str]]) -> list[str]:
        start = time.perf_counter()
        completions = self.infiller.fill_batch(
            rows, mode=self.mode, max_tokens=self.max_tokens, config=self.config, batch_size=self.batch_size
        )
        self.stats.rows += len(rows)
        self.stats.seconds += time.perf_counter() - start
        return completions
