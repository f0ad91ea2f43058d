from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

# The sampler's per-step invariant checks (infill/engine/invariants.py) read tensors back to the host, so
# they are off in normal use; every test runs with them on, child processes (servers, CLI) included.
os.environ.setdefault("INFILL_CHECK_INVARIANTS", "1")

if TYPE_CHECKING:
    from infill.worker import ModelWorker

WORKER_TIMEOUT_S = 120


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if os.environ.get("INFILL_SLOW") == "1":
        return
    skip_slow = pytest.mark.skip(reason="slow: set INFILL_SLOW=1 (needs a GPU or a long run)")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip_slow)


@pytest.fixture(scope="module")
def one_thread() -> Iterator[None]:
    """torch on one thread for a test module: tiny models on a shared 2-core machine run faster on one
    thread than fighting over two."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


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
def x_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny ModernBERT with its output bias pushed towards the token "x": it proposes "xxxx" wherever the
    rest of the stack lets it, so tests can tell valid from invalid fills deterministically."""
    from tests import tiny_models  # torch/transformers only for tests that need a model

    return tiny_models.build_x_model(tmp_path_factory.mktemp("x_model") / "model")


@pytest.fixture(scope="session")
def x_roberta_dir(roberta_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny RoBERTa with its output bias pushed towards "x", and a little less towards " x" (like
    ``x_model_dir``)."""
    import shutil

    from tests.release_models import token_id_in_files
    from tests.tiny_models import push_bias_towards_x

    out = tmp_path_factory.mktemp("x_roberta") / "model"
    shutil.copytree(roberta_dir, out)
    x_id, blank_x_id = token_id_in_files(out, "x"), token_id_in_files(out, "Ġx")
    return push_bias_towards_x(out, "lm_head.bias", x_id, blank_x_id)


@pytest.fixture(scope="session")
def slow_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random ModernBERT a hundred times the tiny one (tens of milliseconds per forward pass on one CPU
    thread): with threshold 1.0 it commits one token per step, so a 128-token span decodes for seconds and a
    cancel or a shutdown reliably lands while it is decoding."""
    from tests import tiny_models

    out = tmp_path_factory.mktemp("slow") / "model"
    return tiny_models.build_modernbert(out, max_positions=1024, hidden_size=256, num_layers=6)


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


# The one line edit-mode tests edit, and the token the edit model puts back wherever it doubts one.
EDIT_CLEAN_LINE = "    return a + b\n"


@pytest.fixture(scope="session")
def edit_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny ModernBERT biased towards the tokens of EDIT_CLEAN_LINE (+30 each, " b" +31): it is sure of
    that line as written, rejects any other token there (e.g. a planted " x") and puts " b" in its place."""
    from tests import tiny_models

    return tiny_models.build_edit_model(tmp_path_factory.mktemp("edit_model") / "model")


class StatusLog:
    """A model worker's status callback that tests can wait on."""

    def __init__(self) -> None:
        self.states: list[tuple[str, str | None]] = []
        self.changed = threading.Condition()

    def __call__(self, state: str, message: str | None) -> None:
        with self.changed:
            self.states.append((state, message))
            self.changed.notify_all()

    def wait_for(self, state: str) -> None:
        with self.changed:
            assert self.changed.wait_for(
                lambda: any(s == state for s, _ in self.states), timeout=WORKER_TIMEOUT_S
            )


@pytest.fixture(scope="module")
def worker(modernbert_dir: Path) -> Iterator[ModelWorker]:
    """A model worker with the tiny ModernBERT loaded, one per test module."""
    from infill.worker import ModelSpec, ModelWorker

    status = StatusLog()
    model_worker = ModelWorker(status)
    model_worker.load(ModelSpec(str(modernbert_dir), "cpu", False))
    status.wait_for("ready")
    yield model_worker
    model_worker.close()
