"""Settings of expand/delete decoding (DreamOn), read from a checkpoint's generation_config.json.

DreamOn (Dream-org/DreamOn-v0-7B, DreamLM/DreamOn ``eval/generator.py``) decides the length of a fill
itself: a masked position decoded as ``<|expand|>`` becomes two masks, an end-of-text decoded inside the
middle is deleted. Its eval generator is configured by keys named as in its ``MDMGeneratorArgs``; a
checkpoint's generation_config.json may carry them under those names, and they are read here. A key that is
absent takes the value of the authors' published infilling eval (``eval/configs/eval_infill.yaml``), so a
checkpoint with no settings decodes as their evaluation did.

Keys shared with infill's DecodeConfig (``alg`` -> strategy, ``steps``, ``temperature``, ``top_p``) become
decoding defaults (``expand_delete_defaults``), so ``--temperature`` and friends still override them; the
rest (``min_gen_len``, ``max_gen_len``, ``top_k``, ``alg_temp``, ``eps``, ``pad_eos_to_right``,
``delete_eos_token``, ``number_transfer_tokens``) make an ExpandDeleteSettings.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from infill.errors import ModelLoadError
from infill.models.locate import read_json_object

if TYPE_CHECKING:  # base.py imports this module
    from infill.models.base import SpecialTokens
    from infill.models.families import Family
    from infill.models.tokenizer_json import FastTokenizer

logger = logging.getLogger(__name__)

# The authors' infilling eval settings (eval/configs/eval_infill.yaml), for keys a checkpoint leaves out.
AUTHORS_EVAL = {
    "steps": 128,
    "max_gen_len": 64,
    "min_gen_len": 4,
    "alg": "entropy",
    "alg_temp": 0.0,
    "temperature": 0.1,
    "top_p": 0.9,
    "top_k": None,
    "eps": 1e-3,
    "delete_eos_token": True,
    "pad_eos_to_right": True,
    "number_transfer_tokens": 1,
}
# The authors' alg -> infill strategy; "origin" (a random subset each step) has no expansion in their code.
EXPAND_DELETE_ALGORITHMS = {"maskgit_plus": "confidence", "topk_margin": "margin", "entropy": "entropy"}


@dataclass(frozen=True)
class ExpandDeleteSettings:
    """The eval-generator settings that DecodeConfig has no field for.

    min_gen_len: masks the middle starts with. max_gen_len: the most tokens the middle may grow to (also
    capped by the request's max_tokens); expansion is blocked once the middle is that long, or once it has
    expanded max_gen_len times (the authors' ``expand_budget``).
    top_k / alg_temp: as in Dream's sampler (alg_temp > 0 draws the positions to commit from
    softmax(confidence / alg_temp) instead of taking the most confident).
    eps: the authors' schedule floor; only their "origin" algorithm reads it (kept so the key round-trips).
    pad_eos_to_right: once an end-of-text is committed, every mask after the first one becomes end-of-text.
    delete_eos_token: end-of-text tokens committed in the middle are removed (the middle shrinks).
    number_transfer_tokens: positions committed per step.
    """

    min_gen_len: int = 4
    max_gen_len: int = 64
    top_k: int | None = None
    alg_temp: float = 0.0
    eps: float = 1e-3
    pad_eos_to_right: bool = True
    delete_eos_token: bool = True
    number_transfer_tokens: int = 1


@dataclass(frozen=True)
class ExpandDelete:
    """What a loaded model needs for expand/delete decoding: ids from its tokenizer and the settings."""

    expand_id: int
    delete_id: int  # the token whose commitment deletes a position (DreamOn: end-of-text)
    # Ids the authors' decode(skip_special_tokens=True) drops from the text (special added tokens, and the
    # embedding's padding rows past the tokenizer, which decode to nothing).
    skipped_ids: frozenset[int]
    settings: ExpandDeleteSettings


def _setting(generation: dict[str, Any], key: str) -> Any:
    return generation[key] if key in generation else AUTHORS_EVAL[key]


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def read_expand_delete_settings(generation: dict[str, Any], path: Path) -> ExpandDeleteSettings:
    """The settings in ``generation`` (generation_config.json's object), one-line errors for bad values."""
    values = {key: _setting(generation, key) for key in AUTHORS_EVAL}
    problems = []
    for key in ("min_gen_len", "max_gen_len", "number_transfer_tokens"):
        if not _is_int(values[key]) or values[key] < 1:
            problems.append(f"{key} must be a positive integer, not {values[key]!r}")
    if values["top_k"] is not None and (not _is_int(values["top_k"]) or values["top_k"] < 1):
        problems.append(f"top_k must be a positive integer or null, not {values['top_k']!r}")
    for key in ("alg_temp", "eps"):
        if values[key] is None:
            values[key] = AUTHORS_EVAL[key]
        if not _is_number(values[key]) or values[key] < 0:
            problems.append(f"{key} must be a number >= 0, not {values[key]!r}")
    for key in ("pad_eos_to_right", "delete_eos_token"):
        if not isinstance(values[key], bool):
            problems.append(f"{key} must be true or false, not {values[key]!r}")
    if not problems and values["min_gen_len"] > values["max_gen_len"]:
        problems.append(f"min_gen_len {values['min_gen_len']} is above max_gen_len {values['max_gen_len']}")
    if problems:
        raise ModelLoadError(f"Bad expand/delete settings in {path}: " + "; ".join(problems))
    return ExpandDeleteSettings(
        min_gen_len=values["min_gen_len"],
        max_gen_len=values["max_gen_len"],
        top_k=values["top_k"],
        alg_temp=float(values["alg_temp"]),
        eps=float(values["eps"]),
        pad_eos_to_right=values["pad_eos_to_right"],
        delete_eos_token=values["delete_eos_token"],
        number_transfer_tokens=values["number_transfer_tokens"],
    )


def expand_delete_defaults(generation: dict[str, Any], path: Path) -> dict[str, object]:
    """The shared keys as DecodeConfig defaults: strategy, steps, temperature, top_p (null: no filter)."""
    alg = _setting(generation, "alg")
    if alg not in EXPAND_DELETE_ALGORITHMS:
        known = ", ".join(EXPAND_DELETE_ALGORITHMS)
        raise ModelLoadError(f"{path}: alg {alg!r} cannot decode with expansion (choose from {known})")
    steps = _setting(generation, "steps")
    temperature = _setting(generation, "temperature")
    top_p = _setting(generation, "top_p")
    if not _is_int(steps) or steps < 1:
        raise ModelLoadError(f"{path}: steps must be a positive integer, not {steps!r}")
    if temperature is None:
        temperature = 0.0
    if not _is_number(temperature) or temperature < 0:
        raise ModelLoadError(f"{path}: temperature must be a number >= 0, not {temperature!r}")
    if top_p is None:
        top_p = 1.0
    if not _is_number(top_p) or not 0 < top_p <= 1:
        raise ModelLoadError(f"{path}: top_p must be in (0, 1] or null, not {top_p!r}")
    return {
        "strategy": EXPAND_DELETE_ALGORITHMS[alg],
        "steps": steps,
        "temperature": float(temperature),
        "top_p": float(top_p),
    }


def load_expand_delete(
    model_dir: Path, family: Family, tokenizer: FastTokenizer, special: SpecialTokens, model_vocab: int
) -> ExpandDelete | None:
    """The family's expand/delete decoding for this checkpoint; None for families that do not expand."""
    if family.expand_token is None:
        return None
    expand_id = tokenizer.get_vocab().get(family.expand_token)
    if expand_id is None and family.expand_token_optional:  # not trained with length states
        return None
    if expand_id is None or expand_id >= model_vocab:
        raise ModelLoadError(
            f"The tokenizer in {model_dir} has no {family.expand_token} token to expand with"
        )
    path = model_dir / "generation_config.json"
    skipped = {i for i, token in tokenizer.added_tokens_decoder.items() if token.special}
    skipped.update(range(len(tokenizer), model_vocab))
    return ExpandDelete(
        expand_id=expand_id,
        delete_id=special.end_of_span_id,
        skipped_ids=frozenset(skipped),
        settings=read_expand_delete_settings(read_json_object(path), path),
    )
