"""`infill rewrite --edit` end to end on real files: real processes for the diff and --in-place, main()
in-process for --check and the messages (``edit_model_dir``: sure of EDIT_CLEAN_LINE, rejects any other token
there and writes " b" in its place)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from infill_cli.common import EXIT_UNFILLED
from infill_cli.main import main
from tests.conftest import EDIT_CLEAN_LINE
from tests.test_cli import run_infill

BEGIN, END = "    # infill:begin\n", "    # infill:end\n"
CLEAN = "def add(a, b):\n" + BEGIN + EDIT_CLEAN_LINE + END + "\n\nprint(add(1, 2))\n"
PLANTED = CLEAN.replace("a + b\n", "a + x\n")


@pytest.fixture
def files(tmp_path: Path) -> Path:
    (tmp_path / "planted.py").write_text(PLANTED)
    (tmp_path / "clean.py").write_text(CLEAN)
    (tmp_path / "planted.py").chmod(0o640)
    return tmp_path


def test_edit_diff_then_in_place(files: Path, edit_model_dir: Path) -> None:
    model = ("--model", str(edit_model_dir))
    diff = run_infill("rewrite", "--edit", "planted.py", "clean.py", *model, cwd=files)
    assert diff.returncode == 0, diff.stderr
    assert "Traceback" not in diff.stderr
    assert "clean.py:3: the model is confident in this region; unchanged" in diff.stderr
    # Only the planted token's line changes; the markers stay.
    assert diff.stdout.startswith("--- a/planted.py\n+++ b/planted.py\n")
    changed = [
        line for line in diff.stdout.splitlines() if line[:1] in "+-" and line[:3] not in ("---", "+++")
    ]
    assert changed == ["-    return a + x", "+    return a + b"]
    assert (files / "planted.py").read_text() == PLANTED

    written = run_infill("rewrite", "--edit", "--in-place", "planted.py", "clean.py", *model, cwd=files)
    assert written.returncode == 0, written.stderr
    assert (files / "planted.py").read_bytes() == CLEAN.encode()
    assert (files / "clean.py").read_bytes() == CLEAN.encode()
    assert (files / "planted.py").stat().st_mode & 0o777 == 0o640
    assert sorted(p.name for p in files.iterdir()) == ["clean.py", "planted.py"]  # no temp files left

    if shutil.which("patch"):
        (files / "planted.py").write_text(PLANTED)
        (files / "d.patch").write_text(diff.stdout)
        subprocess.run(["patch", "-p1", "-s", "-i", "d.patch"], cwd=files, check=True)
        assert (files / "planted.py").read_text() == CLEAN


def test_edit_check_exit_codes(
    files: Path, edit_model_dir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(files)
    model = ["--model", str(edit_model_dir)]
    assert main(["rewrite", "--edit", "--check", "clean.py", *model]) == 0
    assert main(["rewrite", "--edit", "--check", "planted.py", "clean.py", *model]) == 1
    err = capsys.readouterr().err
    assert "would rewrite planted.py" in err and "would rewrite clean.py" not in err
    assert (files / "planted.py").read_text() == PLANTED


def test_edit_says_when_its_edit_fails_the_check(
    tmp_path: Path, edit_model_dir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # The model doubts ")" and writes " b" there: "return a + b b" does not parse, so the region stays.
    broken = CLEAN.replace("a + b\n", "a + b)\n")
    (tmp_path / "broken.py").write_text(broken)
    (tmp_path / "notes.py").write_text("x = 1\n")
    monkeypatch.chdir(tmp_path)
    model = ["--model", str(edit_model_dir)]
    # Exit 3 (EXIT_UNFILLED), as for a hole with no checked fill: a script can tell the region was left.
    assert main(["rewrite", "--edit", "--in-place", "broken.py", "notes.py", *model]) == EXIT_UNFILLED
    err = capsys.readouterr().err
    assert "broken.py:3: the model's edit did not pass the syntax check; left it unchanged" in err
    assert "notes.py: no infill:begin/end regions; nothing to do" in err
    assert "confident" not in err
    assert (tmp_path / "broken.py").read_text() == broken


def test_edit_keeps_crlf_line_endings_and_every_other_byte(
    tmp_path: Path, edit_model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The model sees the LF view; the edit comes back at the original offsets, the CRLFs untouched.
    planted = PLANTED.replace("\n", "\r\n")
    path = tmp_path / "crlf.py"
    path.write_bytes(planted.encode())
    monkeypatch.chdir(tmp_path)
    assert main(["rewrite", "--edit", "--in-place", "crlf.py", "--model", str(edit_model_dir)]) == 0
    assert path.read_bytes() == CLEAN.replace("\n", "\r\n").encode()
