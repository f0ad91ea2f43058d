from __future__ import annotations

import os
from pathlib import Path

import pytest


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


# Release-shaped checkpoints (tests/release_models.py): the real file layouts with tiny random weights.
@pytest.fixture(scope="session")
def release_dirs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Dream-v0, Dream-Coder-v0, DiffuCoder and LLaDA directories, keyed by release name."""
    from tests import release_models  # torch/transformers only for tests that need a model

    root = tmp_path_factory.mktemp("releases")
    return {
        "dream-v0": release_models.build_dream_release(root / "Dream-v0-Base-7B", variant="dream-v0"),
        "dream-coder-v0": release_models.build_dream_release(
            root / "Dream-Coder-v0-Base-7B", variant="dream-coder", seed=1
        ),
        "diffucoder": release_models.build_dream_release(
            root / "DiffuCoder-7B-Base", variant="diffucoder", seed=2
        ),
        "llada": release_models.build_llada_release(root / "LLaDA-8B-Base", seed=3),
    }


@pytest.fixture(scope="session")
def x_release_dirs(
    release_dirs: dict[str, Path], tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Path]:
    """The release-shaped checkpoints biased to propose "x", so end-to-end fills are predictable."""
    from tests import release_models

    root = tmp_path_factory.mktemp("x_releases")
    return {
        name: release_models.bias_towards_x(path, root / path.name) for name, path in release_dirs.items()
    }
