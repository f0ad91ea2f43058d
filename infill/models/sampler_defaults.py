"""Sampler defaults stored with the weights: generation_config.json's "infill" entry, else the checkpoint's
own generation settings translated into a DecodeConfig's terms (families.py ``generation_style``).

Dream-family checkpoints (Dream, Dream-Coder, DiffuCoder) describe their sampler in DreamGenerationConfig
terms (generation_utils.py): ``alg`` (origin | maskgit_plus | topk_margin | entropy), ``steps``,
``temperature``, ``top_p``, ``top_k``, ``alg_temp``, ``eps``. Only what has an exact counterpart is
translated; the rest is logged once and left to infill's defaults.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from infill.errors import ModelLoadError
from infill.models.expand_delete import expand_delete_defaults
from infill.models.families import Family
from infill.models.locate import read_json_object

logger = logging.getLogger(__name__)

# Dream's alg -> infill strategy. "maskgit_plus" commits the most probable tokens first ("confidence"),
# "topk_margin" the largest top-1 minus top-2 gaps, "entropy" the lowest entropies. "origin" (a random subset
# each step) has no counterpart in infill's sampler.
DREAM_ALGORITHMS = {"maskgit_plus": "confidence", "topk_margin": "margin", "entropy": "entropy"}


def read_generation_defaults(model_dir: Path, known_keys: set[str], family: Family) -> dict[str, object]:
    """The "infill" entry when there is one (unknown keys dropped), else the family's translation."""
    path = model_dir / "generation_config.json"
    data = read_json_object(path)
    infill = data.get("infill")
    if infill is None:
        if family.generation_style == "dreamon":
            return expand_delete_defaults(data, path)
        if family.generation_style == "dream":
            return dream_defaults(data, path)
        return dict(family.decoding_defaults)
    if not isinstance(infill, dict):
        raise ModelLoadError(f'"infill" in {path} must be a JSON object of decoding defaults')
    defaults: dict[str, object] = {}
    for key, value in infill.items():
        if key in known_keys:
            defaults[key] = value
        else:
            logger.warning("Ignoring unknown decoding default %r in %s", key, path)
    return defaults


def dream_defaults(generation: dict[str, Any], path: Path) -> dict[str, object]:
    """DreamGenerationConfig settings as infill decoding defaults (only those with an exact counterpart)."""
    defaults: dict[str, object] = {}
    alg = generation.get("alg")
    if alg in DREAM_ALGORITHMS:
        defaults["strategy"] = DREAM_ALGORITHMS[alg]
    elif alg is not None:
        logger.info("%s: alg %r has no counterpart in infill's sampler; using infill's strategy", path, alg)
    steps = generation.get("steps")
    if isinstance(steps, int) and not isinstance(steps, bool) and steps > 0:
        defaults["steps"] = steps
    temperature = generation.get("temperature")
    if isinstance(temperature, int | float) and not isinstance(temperature, bool) and temperature >= 0:
        defaults["temperature"] = float(temperature)
    top_p = generation.get("top_p")
    if isinstance(top_p, int | float) and not isinstance(top_p, bool) and 0 < top_p <= 1:
        defaults["top_p"] = float(top_p)
    ignored = [k for k in ("top_k", "alg_temp") if generation.get(k) not in (None, 0, 0.0)]
    if ignored:
        logger.info("%s: %s not supported by infill's sampler; ignored", path, ", ".join(ignored))
    return defaults
