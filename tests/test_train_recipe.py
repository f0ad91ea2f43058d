"""The GPU recipe (scripts/train_default.sh) rehearsed end to end on the CPU at toy size.

The same phases a GPU session runs through the device tool: ``start`` (the background pipeline: merge the
archive with this machine's permissive Python, calibrate, train the diffusion model and its AR peer, bundle,
benchmark on MBPP-format rows, write the card, plan the return), ``collect N`` (the parts that come back) and
``install`` (verify and install the bundle). pygls and lsprotocol are made unimportable, as on the GPU image.
"""

from __future__ import annotations

import base64
import contextlib
import gzip
import hashlib
import json
import os
import signal
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.test_training_archive import SHARED, npm_tarball, wheel
from tests.test_training_fixtures import SOURCES

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "train_default.sh"
MIT = "Permission is hereby granted, free of charge, to any person obtaining a copy\n"
TOY = {
    "VOCAB": "300",
    "HIDDEN": "32",
    "LAYERS": "1",
    "HEADS": "2",
    "FFN": "64",
    "SEQ_LEN": "128",
    "BATCH": "2",
    "WARMUP": "2",
    "STEPS": "auto",
    "CALIBRATE_STEPS": "12",
    "TRAIN_MINUTES": "0.02",
    "MAX_CORPUS_CHARS": "300000",
    "MAX_CHARS_PER_DISTRIBUTION": "3000",
    "DATA_WORKERS": "1",
    "MERGE_WORKERS": "2",
    "EVAL_SPANS": "2",
    "EXTRA_TRAIN_ARGS": "--threads 1 --eval-batches 1",
    "BENCH_SINGLE": "2",
    "BENCH_MULTI": "1",
    "BENCH_BATCH": "2",
    "BENCH_WORKERS": "1",
    "WAIT_S": "400",
    "OMP_NUM_THREADS": "1",
}


def _mbpp(path: Path, rows: list[dict]) -> None:
    with gzip.open(path, "wt") as fh:
        fh.writelines(json.dumps(row) + "\n" for row in rows)


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Everything `prepare` leaves for the device calls: an archive built by the CLI from a fake download
    cache, MBPP-format files, an (empty) wheel folder; plus stubs that hide the packages the GPU lacks."""
    root = tmp_path_factory.mktemp("recipe")
    cache = root / "cache"
    files = {f"toypkg/{Path(p).name}": text for p, text in SOURCES.items() if p.endswith(".py")}
    wheel(
        cache,
        "toypkg",
        "0.1",
        {**files, "toypkg/shared.py": SHARED},
        license_expression="MIT",
        license_text=MIT,
    )
    js = {"index.js": SOURCES["web/app.js"], "lib/more.js": SOURCES["web/app.js"].replace("add", "plus")}
    npm_tarball(cache, "toyjs", "0.2.0", js, license="ISC")
    listing = root / "packages.toml"
    listing.write_text('[pypi]\npackages = ["toypkg==0.1"]\n[npm]\npackages = ["toyjs@0.2.0"]\n')
    archive = root / "corpus-archive"
    build = [
        sys.executable,
        "-m",
        "training.archive",
        "build",
        "--packages",
        str(listing),
        "--cache",
        str(cache),
    ]
    subprocess.run([*build, "--offline", "--out", str(archive), "--workers", "1"], check=True, cwd=ROOT)
    bench = root / "mbpp"
    bench.mkdir()
    task = {
        "prompt": '"""Add two numbers."""\ndef add(a, b):\n',
        "suffix": "    return c\n",
        "canonical_solution": "    c = a + b\n",
        "test": "def check(candidate):\n    assert candidate(1, 2) == 3\n",
        "entry_point": "add",
    }
    _mbpp(bench / "MBPP-SingleLineInfilling.jsonl.gz", [{"task_id": f"S/{i}", **task} for i in range(3)])
    _mbpp(bench / "MBPP-MultiLineInfilling.jsonl.gz", [{"task_id": "M/0", **task}])
    stubs = root / "stubs"
    for name in ("pygls", "lsprotocol"):
        (stubs / name).mkdir(parents=True)
        (stubs / name / "__init__.py").write_text(f"raise ImportError('{name} is not on the GPU machine')\n")
    _probe_wheel(root / "wheels")
    return {
        "ARCHIVE": str(archive),
        "BENCH_DIR": str(bench),
        "WHEELS": str(root / "wheels"),
        "STUBS": str(stubs),
    }


def _probe_wheel(folder: Path) -> None:
    """A tiny wheel standing in for the ones `prepare` downloads: the pipeline must install it."""
    files = {
        "probe_pkg/__init__.py": "VALUE = 1\n",
        "probe_pkg-1.0.dist-info/METADATA": "Metadata-Version: 2.1\nName: probe-pkg\nVersion: 1.0\n",
        "probe_pkg-1.0.dist-info/WHEEL": (
            "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
        ),
    }
    record = [
        f"{path},sha256={base64.urlsafe_b64encode(hashlib.sha256(text.encode()).digest()).rstrip(b'=').decode()},"
        f"{len(text.encode())}"
        for path, text in files.items()
    ]
    files["probe_pkg-1.0.dist-info/RECORD"] = "\n".join([*record, "probe_pkg-1.0.dist-info/RECORD,,"]) + "\n"
    folder.mkdir()
    with zipfile.ZipFile(folder / "probe_pkg-1.0-py3-none-any.whl", "w") as wheel_file:
        for path, text in files.items():
            wheel_file.writestr(path, text)


def _env(inputs: dict[str, str], run: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update(TOY)
    env.update({k: v for k, v in inputs.items() if k != "STUBS"})
    env.update(
        {"RUN": str(run), "PYTHON": sys.executable, "PYTHONPATH": inputs["STUBS"], "SITE": str(run / "site")}
    )
    env.update(extra)
    return env


def _phase(env: dict[str, str], *args: str, timeout: int = 500) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["bash", str(SCRIPT), *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout
    )


@pytest.fixture
def stop_pipeline() -> Iterator[list[Path]]:
    """Runs whose background pipeline must not outlive the test, even when it fails."""
    runs: list[Path] = []
    yield runs
    for run in runs:
        pid_file = run / "state" / "pid"
        if pid_file.is_file():
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(int(pid_file.read_text()), signal.SIGTERM)


def _rehearse(inputs: dict[str, str], tmp_path: Path, stop_pipeline: list[Path], **extra: str) -> Path:
    """start, collect 1, install; returns the installed bundle dir."""
    run = tmp_path / "run"
    stop_pipeline.append(run)
    env = _env(inputs, run, OUT=str(tmp_path / "out1"), INSTALL_DEST=str(tmp_path / "installed"), **extra)
    started = _phase(env, "start")
    log = (run / "pipeline.log").read_text() if (run / "pipeline.log").is_file() else ""
    assert started.returncode == 0 and "pipeline done" in started.stdout, (
        started.stdout + started.stderr + log
    )
    collected = _phase(env, "collect", "1")
    assert collected.returncode == 0, collected.stderr
    returned = sorted(p.name for p in (tmp_path / "out1").iterdir())
    assert "transfer.json" in returned and "small.tar.gz" in returned and len(returned) <= 8
    beyond = _phase(env, "collect", "2")
    assert beyond.returncode == 2 and "part 2 does not exist" in beyond.stderr
    installed = _phase(env, "install", str(tmp_path / "out1"))
    assert installed.returncode == 0, installed.stderr
    assert "installed" in installed.stdout and "pass@1" in installed.stdout  # the benchmark table
    assert (run / "site" / "probe_pkg" / "__init__.py").is_file()  # the carried wheels were installed
    timings = (run / "result" / "report" / "timings.tsv").read_text()
    for name in ("environment", "corpus", "tokenizer", "train", "bundle", "bench", "report"):
        assert f"{name}\t" in timings
    return tmp_path / "installed"


def test_the_gpu_recipe_runs_end_to_end_at_toy_size(
    inputs: dict[str, str], tmp_path: Path, stop_pipeline: list[Path]
) -> None:
    installed = _rehearse(inputs, tmp_path, stop_pipeline)
    card = (installed / "README.md").read_text()
    assert "pypi:toypkg==0.1" in card and "npm:toyjs@0.2.0" in card and "| stdlib:" in card
    assert "MBPP infilling against the AR FIM peer" in card and "ar-peer" in card
    report = installed.parent / "run" / "result" / "report"
    bench = json.loads((report / "bench_infill.json").read_text())
    assert {r["name"] for r in bench["reports"]} >= {"bundle", "ar-peer", "canonical"}
    calibrated = (installed.parent / "run" / "pipeline.log").read_text()
    assert "calibrated:" in calibrated
    assert json.loads((report / "ar-peer.config.json").read_text())["infill_format"] == "psm"
    config = json.loads((installed / "config.json").read_text())
    assert config["hidden_size"] == 32 and config["dtype"] == "bfloat16"
    from infill.engine import InfillEngine
    from infill.engine.types import FillRequest
    from infill.models import load_model

    loaded = load_model(installed, device="cpu")
    # The recipe's default objective has no length states (DIFFUSION_ARGS adds them): a fixed-canvas model.
    assert loaded.expand_delete is None
    engine = InfillEngine(loaded)
    (result,) = engine.fill(
        [FillRequest("def add(a, b):\n    return ", "\n", max_tokens=8)], engine.default_config()
    )
    assert result.forward_passes > 0


def test_collect_on_a_fresh_machine_says_to_start_again(inputs: dict[str, str], tmp_path: Path) -> None:
    done = _phase(_env(inputs, tmp_path / "run", OUT=str(tmp_path / "out")), "collect", "1")
    assert done.returncode == 3 and "call start" in done.stderr
    assert _phase(_env(inputs, tmp_path / "run", RECIPE="block"), "start").returncode == 2


def test_the_from_scratch_recipe_is_one_switch(
    inputs: dict[str, str], tmp_path: Path, stop_pipeline: list[Path]
) -> None:
    """RECIPE=scratch: both models from scratch side by side (the default, ar-init, is rehearsed above)."""
    _rehearse(inputs, tmp_path, stop_pipeline, RECIPE="scratch")


def test_batches_drawn_by_workers_are_the_inline_stream() -> None:
    from training.corpus import SourceFile
    from training.objective import ExampleSource
    from training.prefetch import batch_stream
    from training.tokenizer import train_code_tokenizer

    files = [SourceFile(p, t, "python") for p, t in SOURCES.items() if p.endswith(".py")]
    source = ExampleSource(files, train_code_tokenizer([f.text for f in files], 300), 64, workers=2)
    kwargs = {"batch_size": 3, "seed": 5, "rank": 0, "start": 7}
    inline, ahead = (
        batch_stream(source.diffusion_batch, workers=0, **kwargs),
        batch_stream(source.diffusion_batch, workers=2, **kwargs),
    )
    for _ in range(4):
        a, b = next(inline), next(ahead)
        assert a.input_ids.equal(b.input_ids) and a.labels.equal(b.labels) and a.weights.equal(b.weights)
    assert next(inline).input_ids.equal(source.diffusion_batch(3, 5, 11).input_ids)
