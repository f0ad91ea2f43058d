from __future__ import annotations

import os
from pathlib import Path

import pytest

# The sampler's per-step invariant checks (infill/engine/invariants.py) read tensors back to the host, so
# they are off in normal use; every test runs with them on, child processes (servers, CLI) included.
os.environ.setdefault("INFILL_CHECK_INVARIANTS", "1")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if os.environ.get("INFILL_SLOW") == "1":
        return
    skip_slow = pytest.mark.skip(reason="slow: set INFILL_SLOW=1 (needs a GPU or a long run)")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip_slow)


@pytest.fixture(scope="session")
def modernbert_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tests import tiny_models  # torch/transformers only for tests that need a model

    return tiny_models.build_modernbert(tmp_path_factory.mktemp("modernbert"))


@pytest.fixture(scope="session")
def roberta_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tests import tiny_models  # torch/transformers only for tests that need a model

    return tiny_models.build_roberta(tmp_path_factory.mktemp("roberta"))


@pytest.fixture(scope="session")
def dream_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tests import tiny_models  # torch/transformers only for tests that need a model

    return tiny_models.build_dream(tmp_path_factory.mktemp("dream"))


@pytest.fixture(scope="session")
def x_model_dir(modernbert_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny ModernBERT with its output bias pushed towards the token "x": it proposes "xxxx" wherever the
    rest of the stack lets it, so tests can tell valid from invalid fills deterministically."""
    import shutil

    from safetensors.torch import load_file, save_file
    from transformers import AutoTokenizer

    out = tmp_path_factory.mktemp("x_model") / "model"
    shutil.copytree(modernbert_dir, out)
    (x_id,) = AutoTokenizer.from_pretrained(out).encode("x", add_special_tokens=False)
    weights = load_file(out / "model.safetensors")
    weights["decoder.bias"][x_id] += 30.0
    save_file(weights, out / "model.safetensors", metadata={"format": "pt"})
    return out
