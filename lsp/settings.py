"""Server settings: one dataclass filled from camelCase client options (initializationOptions or
``workspace/didChangeConfiguration``), with invalid values falling back to their defaults.

Model and sampler defaults live with the weights (generation_config.json); ``steps`` and ``threshold`` here
only override them when a user sets them.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from infill.worker import ModelSpec

# Wire name (camelCase, as editors send it) -> dataclass field name.
WIRE_NAMES = {
    "model": "model",
    "device": "device",
    "maxTokens": "max_tokens",
    "steps": "steps",
    "threshold": "threshold",
    "debounceMs": "debounce_ms",
    "disabledLanguages": "disabled_languages",
    "trustRemoteCode": "trust_remote_code",
    "threads": "threads",
    "nextEdit": "next_edit",
}


# What each setting does, for `infill serve --help` and the editors' documentation.
SETTING_HELP = {
    "model": "model directory (default: `infill serve --model`, then INFILL_MODEL, then the bundled model)",
    "device": '"auto" (default: `infill serve --device`, else cuda when available), "cpu", "cuda", "cuda:N"',
    "maxTokens": "token budget of an inline completion, 1-1024 (default: 64)",
    "steps": "denoising steps for a full span, 1-1024 (default: the model's generation_config.json)",
    "threshold": "confidence to commit a token at, in (0, 1] (default: the model's generation_config.json)",
    "debounceMs": "wait after a keystroke before an automatic completion, 0-5000 ms (default: 150)",
    "disabledLanguages": 'LSP language ids to leave alone, e.g. ["markdown"] (default: none)',
    "trustRemoteCode": "allow model directories that need their own Python code (default: false)",
    "threads": "torch CPU threads, 1-256 (default: OMP_NUM_THREADS, else 1 for models under 10M parameters, "
    "else one per physical core)",
    "nextEdit": "after a change, propose an edit of the lines around it as an inline completion item whose "
    "range covers the text it replaces (edit mode; default: false)",
}


def settings_help() -> str:
    """The settings as a text block (one per line, camelCase as editors send them)."""
    width = max(map(len, SETTING_HELP))
    return "\n".join(f"  {name:<{width}}  {text}" for name, text in SETTING_HELP.items())


@dataclass(frozen=True)
class ServerSettings:
    """What a client may configure. ``None`` means "the model's own default" (or the server's CLI flag)."""

    model: str | None = None
    device: str = "auto"
    max_tokens: int = 64
    steps: int | None = None
    threshold: float | None = None
    debounce_ms: int = 150
    disabled_languages: tuple[str, ...] = ()
    trust_remote_code: bool = False
    # None: auto (infill.models.devices.auto_threads), decided once the model's size is known.
    threads: int | None = None
    next_edit: bool = False

    def to_wire(self) -> dict[str, Any]:
        """The camelCase form editors send (used by tests and editor-default sync checks)."""
        values = dataclasses.asdict(self)
        wire = {wire: values[name] for wire, name in WIRE_NAMES.items()}
        wire["disabledLanguages"] = list(self.disabled_languages)
        return wire


def model_spec(
    settings: ServerSettings, cli_model: str | None, cli_device: str | None, cli_quantize: str | None = None
) -> ModelSpec:
    """Client setting > ``infill serve`` flag > the loader's own default (INFILL_MODEL, bundled model).

    A device of "auto" from the client means "let the server decide", i.e. the CLI flag if one was given.
    """
    device = settings.device if settings.device != "auto" else cli_device
    return ModelSpec(
        model=settings.model or cli_model,
        device=device,
        trust_remote_code=settings.trust_remote_code,
        quantize=cli_quantize,
    )


def _optional_str(value: Any) -> str | None:
    if value is None or (isinstance(value, str) and value.strip()):
        return value.strip() if isinstance(value, str) else None
    raise ValueError("expected a non-empty string or null")


def _device(value: Any) -> str:
    if isinstance(value, str) and (value in ("auto", "cpu", "cuda", "mps") or value.startswith("cuda:")):
        return value
    raise ValueError('expected "auto", "cpu", "cuda" or "cuda:N"')


def _int_in(low: int, high: int, *, optional: bool = False) -> Callable[[Any], int | None]:
    def check(value: Any) -> int | None:
        if value is None and optional:
            return None
        # bool is an int in Python; a JSON true is not a token count.
        if isinstance(value, int) and not isinstance(value, bool) and low <= value <= high:
            return value
        raise ValueError(f"expected an integer in [{low}, {high}]" + (" or null" if optional else ""))

    return check


def _threshold(value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, int | float) and not isinstance(value, bool) and 0.0 < value <= 1.0:
        return float(value)
    raise ValueError("expected a number in (0, 1] or null")


def _languages(value: Any) -> tuple[str, ...]:
    if isinstance(value, list) and all(isinstance(item, str) for item in value):
        return tuple(value)
    raise ValueError("expected a list of language ids")


def _bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    raise ValueError("expected true or false")


_VALIDATORS: dict[str, Callable[[Any], Any]] = {
    "model": _optional_str,
    "device": _device,
    "max_tokens": _int_in(1, 1024),
    "steps": _int_in(1, 1024, optional=True),
    "threshold": _threshold,
    "debounce_ms": _int_in(0, 5000),
    "disabled_languages": _languages,
    "trust_remote_code": _bool,
    "threads": _int_in(1, 256, optional=True),
    "next_edit": _bool,
}


def parse_settings(raw: object) -> tuple[ServerSettings, list[str]]:
    """Settings from a client's options object, plus one problem line per rejected value.

    Accepts the options themselves or ``{"infill": {...}}`` (the didChangeConfiguration shape). Unknown keys
    are ignored (newer editors may send more); a bad value keeps its default and is reported.
    """
    if isinstance(raw, Mapping) and isinstance(raw.get("infill"), Mapping):
        raw = raw["infill"]
    if raw is None:
        return ServerSettings(), []
    if not isinstance(raw, Mapping):
        return ServerSettings(), [f"settings must be an object, got {type(raw).__name__}"]
    values: dict[str, Any] = {}
    problems: list[str] = []
    for wire, name in WIRE_NAMES.items():
        if wire not in raw:
            continue
        try:
            values[name] = _VALIDATORS[name](raw[wire])
        except ValueError as error:
            problems.append(f"{wire}: {error} (got {raw[wire]!r}); using the default")
    return ServerSettings(**values), problems
