"""Finding a model directory and checking that it holds what the loader needs, before anything is loaded."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

from infill.errors import ModelLoadError

logger = logging.getLogger(__name__)

MODEL_ENV_VAR = "INFILL_MODEL"
BUNDLED_MODEL_DIR = Path(__file__).resolve().parent.parent / "default_model"

PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl")
# Files whose presence means a tokenizer can be loaded from the directory.
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.json", "vocab.txt", "tokenizer.model")


def resolve_model_dir(model: str | Path | None = None) -> Path:
    """Explicit argument > INFILL_MODEL env var > the bundled default at infill/default_model/."""
    if model is not None and str(model).strip():
        return _existing_dir(Path(model).expanduser(), source="")
    from_env = os.environ.get(MODEL_ENV_VAR, "").strip()
    if from_env:
        return _existing_dir(Path(from_env).expanduser(), source=f" (from {MODEL_ENV_VAR})")
    if (BUNDLED_MODEL_DIR / "config.json").is_file():
        return BUNDLED_MODEL_DIR
    raise ModelLoadError(
        f"No model given and no bundled default model in {BUNDLED_MODEL_DIR}: "
        f"pass --model DIR or set {MODEL_ENV_VAR}"
    )


def _existing_dir(path: Path, source: str) -> Path:
    if not path.exists():
        raise ModelLoadError(
            f"Model directory not found: {path}{source} (infill loads local directories only, no downloads)"
        )
    if not path.is_dir():
        raise ModelLoadError(f"Model path is a file, not a directory: {path}{source}")
    return path.resolve()


def read_config(model_dir: Path) -> dict[str, Any]:
    """The directory's config.json as a dict (read as plain JSON so that no remote code can run)."""
    if not (model_dir / "config.json").is_file():
        raise ModelLoadError(f"Not a model directory (no config.json): {model_dir}")
    return read_json_object(model_dir / "config.json")


def read_json_object(path: Path) -> dict[str, Any]:
    """One JSON-object file of a model directory ({} when it is absent); a ModelLoadError when unreadable."""
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelLoadError(f"Unreadable {path.name} in {path.parent}: {exc}") from exc
    if not isinstance(data, dict):
        raise ModelLoadError(f"{path.name} in {path.parent} is not a JSON object")
    return data


def check_model_files(model_dir: Path) -> None:
    """Refuse directories without a tokenizer or without safetensors weights (pickle weights can run code)."""
    names = {p.name for p in model_dir.iterdir() if p.is_file()}
    if not names.intersection(TOKENIZER_FILES):
        raise ModelLoadError(f"No tokenizer files (tokenizer.json / tokenizer_config.json) in {model_dir}")
    if any(name.endswith(".safetensors") for name in names):
        return
    pickles = sorted(name for name in names if name.endswith(PICKLE_SUFFIXES))
    if pickles:
        raise ModelLoadError(
            f"{model_dir} has only pickle weights ({', '.join(pickles)}); infill loads *.safetensors only "
            "because pickle files can run code: convert them with save_pretrained(safe_serialization=True)"
        )
    raise ModelLoadError(f"No weights (*.safetensors) in {model_dir}")


def describe_error(exc: BaseException) -> str:
    """The first line of a library exception's message, for a one-line ModelLoadError."""
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__
