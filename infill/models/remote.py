"""Checkpoints of no family infill knows that ship their own Python code, loaded only when the caller opted
in.

loader.py refuses these directories unless trust_remote_code is set; here the code in the directory is
imported by transformers. The model must return unshifted per-position logits (``.logits`` or the first
output). Code written for transformers 4 often fails under transformers 5; the error then says so in one line,
with the version the checkpoint was saved with and what changed.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch
import transformers
from transformers import AutoConfig, AutoModel, AutoModelForMaskedLM, PreTrainedModel

from infill.errors import ModelLoadError
from infill.models.locate import describe_error
from infill.models.weights import checked_model, pretrained_kwargs

logger = logging.getLogger(__name__)

# Errors transformers 5 raises inside model code written for transformers 4, and what changed.
TRANSFORMERS_5_CHANGES = {
    "all_tied_weights_keys": "its model class never calls post_init(), which transformers 5 requires",
    "recompute_mapping": "its tie_weights() lacks the recompute_mapping argument of transformers 5",
    "use_cache": "it reads config.use_cache, which transformers 5 configs no longer define by default",
}


def load_remote(
    model_dir: Path, config: dict[str, Any], device: torch.device, dtype: torch.dtype
) -> PreTrainedModel:
    auto_map = config.get("auto_map") or {}
    auto_class = AutoModelForMaskedLM if "AutoModelForMaskedLM" in auto_map else AutoModel
    logger.warning("Running the model code shipped in %s (trust_remote_code)", model_dir)
    try:
        hf_config = AutoConfig.from_pretrained(str(model_dir), trust_remote_code=True)
        loaded = auto_class.from_pretrained(
            str(model_dir), config=hf_config, trust_remote_code=True, **pretrained_kwargs(device, dtype)
        )
    except Exception as exc:  # the remote code can raise anything; it all means "cannot load"
        raise ModelLoadError(remote_failure(model_dir, config, exc)) from exc
    return checked_model(loaded, model_dir)


def remote_failure(model_dir: Path, config: dict[str, Any], exc: BaseException) -> str:
    """One line: what failed, and when it is a known transformers 4 -> 5 change, which one."""
    detail = f"{type(exc).__name__}: {describe_error(exc)}"
    change = next((why for key, why in TRANSFORMERS_5_CHANGES.items() if key in str(exc)), None)
    if change is None:
        return f"Could not load the remote-code model in {model_dir}: {detail}"
    saved_with = config.get("transformers_version") or "an older transformers"
    return (
        f"The code shipped with {model_dir} (written for transformers {saved_with}) does not run under the "
        f"installed transformers {transformers.__version__}: {change} ({detail})"
    )
