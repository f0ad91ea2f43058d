"""torch's CPU thread count: the automatic choice by model size, and the CLI's --threads."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from infill.models import devices


def test_auto_threads_is_one_for_small_models_and_torch_default_for_large(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    assert devices.auto_threads(1_400_000) == 1  # the bundled model
    assert devices.auto_threads(7_000_000_000) == devices._TORCH_DEFAULT_THREADS
    # A user's OMP_NUM_THREADS is what torch started with: auto keeps it, whatever the size.
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    assert devices.auto_threads(1_400_000) == devices._TORCH_DEFAULT_THREADS


def test_use_threads_sets_torch_on_the_calling_thread() -> None:
    import torch

    before = torch.get_num_threads()
    try:
        assert devices.use_threads(2, torch.nn.Linear(2, 2)) == 2
        assert torch.get_num_threads() == 2
        assert devices.use_threads(None, torch.nn.Linear(2, 2)) == devices.auto_threads(6)
        assert torch.get_num_threads() == devices.auto_threads(6)
    finally:
        torch.set_num_threads(before)


def _complete(source: Path, model_dir: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    argv = [sys.executable, "-m", "infill_cli.main", "complete", f"{source}:2:12", "--model", str(model_dir)]
    return subprocess.run(
        [*argv, "--device", "cpu", "--steps", "2", "-v", *extra],
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_cli_threads_option(tmp_path: Path, modernbert_dir: Path) -> None:
    source = tmp_path / "a.py"
    source.write_text("def add(a, b):\n    return \n")
    bad = _complete(source, modernbert_dir, "--threads", "0")
    assert bad.returncode == 2 and "--threads: expected a positive integer" in bad.stderr
    good = _complete(source, modernbert_dir, "--threads", "2")
    assert good.returncode == 0, good.stderr
    assert "torch threads: 2" in good.stderr
