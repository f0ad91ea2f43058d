"""Bad input through a real `infill` process: one `infill: error:` line, exit 2, no traceback, no change."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from infill_cli.main import main
from tests.test_cli import REPO_ROOT, run_infill


def assert_one_line_error(result, *fragments: str) -> None:
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("infill: error: "), lines[0]
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    assert result.stdout == ""


@pytest.fixture()
def workdir(tmp_path: Path) -> Path:
    (tmp_path / "binary.py").write_bytes(b"x = 1\n\x00\x01\x02<|fill|>\n")
    (tmp_path / "latin1.py").write_bytes("x = '<|fill|>'\ny = 'caf\u00e9'\n".encode("latin-1"))
    (tmp_path / "adir").mkdir()
    (tmp_path / "empty.py").write_text("")
    (tmp_path / "code.py").write_text("def f(x):\n    return x\n")
    (tmp_path / "unbalanced.py").write_text("def f(x):\n    # infill:begin\n    return x\n")
    (tmp_path / "empty.jsonl").write_text("")
    (tmp_path / "good.jsonl").write_text(
        json.dumps({"task_id": "a", "prompt": "x = ", "suffix": "\n"}) + "\n"
    )
    (tmp_path / "bad.jsonl").write_text(
        json.dumps({"task_id": "a", "prompt": "x = ", "suffix": "\n"}) + "\n{not json\n"
    )
    (tmp_path / "nokeys.jsonl").write_text(json.dumps({"task_id": "a", "prompt": "x"}) + "\n")
    return tmp_path


def without_weights(model_dir: Path, out: Path) -> Path:
    """A copy of ``model_dir`` with every file but its safetensors weights."""
    out.mkdir()
    for item in model_dir.iterdir():
        if not item.name.endswith(".safetensors"):
            (out / item.name).write_bytes(item.read_bytes())
    return out


def snapshot(directory: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(directory)): p.read_bytes() for p in sorted(directory.rglob("*")) if p.is_file()
    }


# Cases that fail before any model is loaded: fast, no torch import.
EARLY_FAILURES = [
    (["rewrite", "--in-place", "missing.py"], ["missing.py", "no such file"]),
    (["rewrite", "--in-place", "adir"], ["adir", "is a directory"]),
    (["rewrite", "--in-place", "binary.py"], ["binary.py", "binary"]),
    (["rewrite", "--in-place", "latin1.py"], ["latin1.py:2:", "not UTF-8"]),
    (["rewrite", "--in-place", "unbalanced.py"], ["unbalanced.py", "2"]),
    # A bad file among good ones: nothing is written for any of them.
    (["rewrite", "--in-place", "code.py", "binary.py"], ["binary.py"]),
    (["complete", "missing.py:1:1"], ["missing.py", "no such file"]),
    (["complete", "adir:1:1"], ["is a directory"]),
    (["complete", "binary.py:1:1"], ["binary"]),
    # code.py holds 2 lines (and a final newline): an editor says 2, so does the message.
    (["complete", "code.py:4:1"], ["code.py:4:1", "line 4 is out of range", "has 2 lines"]),
    (["complete", "code.py:9:1"], ["line 9 is out of range"]),
    (["complete", "code.py:1:11"], ["column 11 is out of range"]),
    (["complete", "code.py:0:1"], ["positive integers"]),
    (["complete", "code.py:1"], ["PATH:LINE:COL"]),
    (["complete", "code.py:a:b"], ["positive integers"]),
    (["batch", "empty.jsonl", "-o", "out.jsonl"], ["empty.jsonl", "no rows"]),
    (["batch", "bad.jsonl", "-o", "out.jsonl"], ["bad.jsonl:2:", "invalid JSON"]),
    (["batch", "nokeys.jsonl", "-o", "out.jsonl"], ["nokeys.jsonl:1:", "suffix"]),
    (["batch", "missing.jsonl", "-o", "out.jsonl"], ["missing.jsonl", "no such file"]),
    (["batch", "good.jsonl", "-o", "adir"], ["adir", "is a directory"]),
    (["batch", "good.jsonl", "-o", "nodir/out.jsonl"], ["nodir", "no such directory"]),
    (["batch", "binary.py", "-o", "out.jsonl"], ["binary"]),
]


@pytest.mark.parametrize(
    ("argv", "fragments"), [pytest.param(*case, id=" ".join(case[0])) for case in EARLY_FAILURES]
)
def test_bad_input_is_one_line_and_changes_nothing(
    workdir: Path, argv: list[str], fragments: list[str]
) -> None:
    before = snapshot(workdir)
    result = run_infill(*argv, "--model", str(workdir / "no-model-needed"), cwd=workdir)
    assert_one_line_error(result, *fragments)
    assert snapshot(workdir) == before


def test_model_dir_without_weights(workdir: Path, modernbert_dir: Path) -> None:
    broken = without_weights(modernbert_dir, workdir / "broken-model")
    (workdir / "hole.py").write_text("x = <|fill|>\n")
    before = snapshot(workdir)
    result = run_infill("rewrite", "--in-place", "hole.py", "--model", str(broken), cwd=workdir)
    assert_one_line_error(result, "safetensors")
    assert snapshot(workdir) == before


def test_cuda_requested_without_cuda(workdir: Path, modernbert_dir: Path) -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    result = run_infill(
        "complete", "code.py:2:5", "--device", "cuda", "--model", str(modernbert_dir), cwd=workdir
    )
    assert_one_line_error(result, "CUDA")


def test_missing_model_dir(
    workdir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(workdir)
    assert main(["complete", "code.py:2:5", "--model", str(workdir / "nope")]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith("infill: error: Model directory not found") and "nope" in captured.err
    assert captured.err.count("\n") == 1


def test_argparse_errors_do_not_trace(workdir: Path) -> None:
    result = run_infill("complete", "code.py:1:1", "--candidates", "0", cwd=workdir)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert "positive integer" in result.stderr


def test_interrupt_exits_130_and_writes_no_output(tmp_path: Path, modernbert_dir: Path) -> None:
    rows = [{"task_id": i, "prompt": "def f(x):\n    return ", "suffix": "\n"} for i in range(400)]
    (tmp_path / "in.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "INFILL_DEVICE": "cpu"}
    argv = ["batch", "in.jsonl", "-o", "out.jsonl", "--batch-size", "1", "--model", str(modernbert_dir)]
    process = subprocess.Popen(
        [sys.executable, "-m", "infill_cli.main", *argv], cwd=tmp_path, env=env, stderr=subprocess.PIPE
    )
    assert process.stderr is not None
    seen = b""
    deadline = time.monotonic() + 120
    while b"infill batch" not in seen and time.monotonic() < deadline:  # the progress bar: decoding started
        chunk = process.stderr.read1(4096)
        if not chunk:
            break
        seen += chunk
    process.send_signal(signal.SIGINT)
    _, rest = process.communicate(timeout=60)
    stderr = (seen + rest).decode()
    assert process.returncode == 130, stderr
    assert "Traceback" not in stderr
    assert "infill: interrupted" in stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.jsonl"]  # no output, no temp file


@pytest.fixture()
def no_model_load(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail the test if a command gets as far as loading a model: these errors must come first."""
    from infill.infiller import Infiller

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("the model was loaded before the input was checked")

    monkeypatch.setattr(Infiller, "load", classmethod(refuse))


def test_a_read_only_file_is_refused_before_the_model_runs(
    workdir: Path, modernbert_dir: Path, no_model_load: None, capsys: pytest.CaptureFixture[str]
) -> None:
    path = workdir / "locked.py"
    path.write_text("x = <|fill|>\n")
    path.chmod(0o444)
    before = path.read_bytes()
    assert main(["rewrite", "--in-place", str(path), "--model", str(modernbert_dir)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "locked.py: is read-only" in err, err
    assert path.read_bytes() == before and path.stat().st_mode & 0o777 == 0o444
    # Without --in-place nothing is written, so a read-only file is fine to diff (the model runs).
    path.chmod(0o644)


def test_a_read_only_directory_is_refused_naming_the_users_file(
    workdir: Path, modernbert_dir: Path, no_model_load: None, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = workdir / "locked"
    folder.mkdir()
    (folder / "hole.py").write_text("x = <|fill|>\n")
    folder.chmod(0o555)
    try:
        assert main(["rewrite", "-i", str(folder / "hole.py"), "--model", str(modernbert_dir)]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "hole.py" in err and "read-only" in err, err
        assert ".infill-tmp" not in err
        assert sorted(p.name for p in folder.iterdir()) == ["hole.py"]
    finally:
        folder.chmod(0o755)


@pytest.mark.parametrize("command", ["rewrite", "complete", "batch"])
def test_a_bad_model_directory_is_reported_before_loading(
    workdir: Path,
    modernbert_dir: Path,
    no_model_load: None,
    command: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    broken = without_weights(modernbert_dir, workdir / "no-weights")
    (workdir / "hole.py").write_text("x = <|fill|>\n")
    argv = {
        "rewrite": ["rewrite", "--in-place", "hole.py"],
        "complete": ["complete", "code.py:2:5"],
        "batch": ["batch", "good.jsonl", "-o", "out.jsonl"],
    }[command]
    monkeypatch.chdir(workdir)
    for model, expected in ((broken, "safetensors"), (workdir / "missing", "not found")):
        assert main([*argv, "--model", str(model)]) == 2
        err = capsys.readouterr().err
        assert err.startswith("infill: error: ") and expected in err and err.count("\n") == 1, err
    assert not (workdir / "out.jsonl").exists()


def test_a_bad_model_directory_is_reported_without_importing_torch(workdir: Path) -> None:
    """Importing torch alone takes seconds (tens on a busy machine): a typo in --model is told before it."""
    code = (
        "import sys; from infill_cli.main import main; "
        "rc = main(['complete', 'code.py:2:5', '--model', 'no-such-model']); "
        "print(rc, 'torch' in sys.modules)"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=workdir, env=env, capture_output=True, text=True
    )
    assert result.stdout.split() == ["2", "False"], result.stderr
    assert "Model directory not found: no-such-model" in result.stderr
