"""The `infill` command end to end (real processes, tiny random models) and its file helpers in-process.

Tiny random models write random code, so outputs are checked for structure: markers gone, bytes outside
holes and regions identical, diffs that `patch` accepts, one output row per task id.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from infill import regions
from infill.errors import InputError
from infill.line_endings import LfView, lf_view
from infill_cli.batch import read_rows
from infill_cli.common import EXIT_UNFILLED
from infill_cli.complete import json_report, plain_report
from infill_cli.fileio import (
    Position,
    line_column,
    offset_of,
    parse_position,
    read_source,
    write_atomic,
)
from infill_cli.main import build_parser, main
from infill_cli.rewrite import unified_diff

REPO_ROOT = Path(__file__).resolve().parent.parent
# Few steps and small budgets: these tests check plumbing, not quality.
FAST = ("--steps", "4", "--max-tokens", "8")


def run_infill(*argv: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """`python -m infill_cli.main ARGV` as a user would run `infill ARGV`."""
    full_env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "INFILL_DEVICE": "cpu", **(env or {})}
    full_env.pop("INFILL_MODEL", None)
    raw = subprocess.run(
        [sys.executable, "-m", "infill_cli.main", *argv],
        cwd=cwd,
        env=full_env,
        capture_output=True,
        timeout=120,
    )
    # Decoded by hand: text=True would turn the CRLF of a diff into LF.
    return subprocess.CompletedProcess(raw.args, raw.returncode, raw.stdout.decode(), raw.stderr.decode())


# ------------------------------------------------------------------------------------------ file helpers


def test_lf_view_maps_offsets_back_to_crlf() -> None:
    text = "a\r\nbc\r\n\r\nd"
    view = lf_view(text)
    assert view.text == "a\nbc\n\nd"
    assert view.newline == "\r\n"
    # Every LF-view offset that is not inside a line ending maps to the same character.
    for offset, char in enumerate(view.text):
        if char != "\n":
            assert text[view.original_offset(offset)] == char
    # An offset AT a line end maps to before "\r"; just after it, to after "\n".
    assert view.original_offset(1) == 1
    assert view.original_offset(2) == 3
    assert view.original_offset(len(view.text)) == len(text)
    assert view.original_text("x\ny") == "x\r\ny"


def test_lf_view_of_mixed_endings_keeps_lone_lf() -> None:
    view = lf_view("a\nb\r\nc\n")
    assert view.newline == "\n"
    assert view.collapsed == (3,)
    assert LfView("x", "\n", ()).original_text("a\nb") == "a\nb"


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("a.py:1:1", ("a.py", 1, 1)),
        ("C:/x/a.py:12:40", ("C:/x/a.py", 12, 40)),
        ("dir:1/b.py:3:2", ("dir:1/b.py", 3, 2)),
    ],
)
def test_parse_position(spec: str, expected: tuple[str, int, int]) -> None:
    position = parse_position(spec)
    assert (str(position.path), position.line, position.column) == (str(Path(expected[0])), *expected[1:])


def test_offsets_and_positions_round_trip() -> None:
    text = "héllo\n\nwörld 🎉x\n"
    for offset in range(len(text) + 1):
        line, column = line_column(text, offset)
        assert offset_of(text, Position(Path("t"), line, column)) == offset
    assert offset_of(text, Position(Path("t"), 3, 8)) == text.index("🎉") + 1  # columns count characters
    with pytest.raises(InputError, match="column 3 is out of range"):
        offset_of(text, Position(Path("t"), 2, 3))


def test_read_source_rejects_unusable_files(tmp_path: Path) -> None:
    (tmp_path / "bin").write_bytes(b"\x7fELF\x00\x00")
    (tmp_path / "latin").write_bytes(b"ok\nnot \xe9 utf8\n")
    with pytest.raises(InputError, match="binary"):
        read_source(tmp_path / "bin")
    with pytest.raises(InputError, match=r"latin:2: not UTF-8"):
        read_source(tmp_path / "latin")
    with pytest.raises(InputError, match="is a directory"):
        read_source(tmp_path)
    with pytest.raises(InputError, match="no such file"):
        read_source(tmp_path / "missing")


def test_write_atomic_keeps_mode_and_refuses_a_changed_file(tmp_path: Path) -> None:
    path = tmp_path / "script.sh"
    path.write_bytes(b"echo hi\n")
    path.chmod(0o751)
    source = read_source(path)
    write_atomic(path, b"echo bye\n", unchanged_since=source)
    assert path.read_bytes() == b"echo bye\n"
    assert path.stat().st_mode & 0o777 == 0o751

    stale = read_source(path)
    path.write_bytes(b"edited by someone else\n")
    with pytest.raises(InputError, match="changed while infill was running"):
        write_atomic(path, b"echo lost\n", unchanged_since=stale)
    assert path.read_bytes() == b"edited by someone else\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["script.sh"]  # no temp file left behind


def test_read_rows_reports_the_line_of_a_bad_row_even_gzipped(tmp_path: Path) -> None:
    good = json.dumps({"task_id": 1, "prompt": "a\u2028b", "suffix": "", "extra": [1]})
    (tmp_path / "rows.jsonl.gz").write_bytes(gzip.compress(f"{good}\n\n{json.dumps([1])}\n".encode()))
    with pytest.raises(InputError, match=r"rows.jsonl.gz:3: expected a JSON object"):
        read_rows(tmp_path / "rows.jsonl.gz")
    (tmp_path / "rows.jsonl").write_text(f"{good}\r\n{good}\r\n")
    with pytest.raises(InputError, match=r"rows.jsonl:2: duplicate task_id 1 \(first on line 1\)"):
        read_rows(tmp_path / "rows.jsonl")
    (tmp_path / "rows.jsonl").write_text(good + "\n")
    (row,) = read_rows(tmp_path / "rows.jsonl")
    assert (row.task_id, row.prompt, row.suffix) == (1, "a\u2028b", "")
    (tmp_path / "broken.jsonl.gz").write_bytes(b"not gzip")
    with pytest.raises(InputError, match="not a valid gzip file"):
        read_rows(tmp_path / "broken.jsonl.gz")


def test_complete_reports() -> None:
    from infill.infiller import Edit

    text = "x = 1\ny = \n"
    edits = [Edit(10, 10, "x + 1", -0.25), Edit(10, 10, "2\n", -1.5)]
    assert plain_report(edits[:1], numbered=False) == "x + 1\n"
    assert plain_report(edits, numbered=True) == (
        "--- candidate 1 of 2 (score -0.250) ---\nx + 1\n--- candidate 2 of 2 (score -1.500) ---\n2\n"
    )
    report = json_report(Path("a.py"), Position(Path("a.py"), 2, 5), "python", "auto", text, edits)
    assert json.loads(json.dumps(report))["candidates"][1] == {
        "text": "2\n",
        "score": -1.5,
        "start": {"line": 2, "column": 5},
        "end": {"line": 2, "column": 5},
    }


@pytest.mark.skipif(shutil.which("patch") is None, reason="needs patch(1)")
@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("a\nb\nc\n", "a\nB\nc\n"),
        ("a\nb", "a\nB"),  # no final newline on either side
        ("a\r\nb\r\n", "a\r\nX\r\nY\r\n"),
        ("a\nb\n", "a\nb\nc"),  # final newline lost
    ],
)
def test_unified_diff_applies_with_patch(tmp_path: Path, old: str, new: str) -> None:
    target = tmp_path / "f.txt"
    target.write_bytes(old.encode())
    diff = "".join(unified_diff(old, new, "f.txt"))
    (tmp_path / "d.patch").write_bytes(diff.encode())
    subprocess.run(["patch", "-p1", "-s", "-i", "d.patch"], cwd=tmp_path, check=True)
    assert target.read_bytes() == new.encode()


# ------------------------------------------------------------------------------------- end to end: rewrite

# CRLF line endings and no final newline: both must survive outside the filled spans.
MARKED_CRLF = (
    "import os\r\n"
    "\r\n"
    "def add(a, b):\r\n"
    "    total = <|fill|>\r\n"
    "    return total\r\n"
    "\r\n"
    "def greet(name):\r\n"
    "    # infill:begin\r\n"
    "    message = 'hello ' + name\r\n"
    "    # infill:end\r\n"
    "    return name"
)
UNKNOWN_LANGUAGE = "set x = <|fill|>\nprint x\n"
NO_MARKERS = "def f():\n    return 1\n"


@pytest.fixture()
def marked_files(tmp_path: Path) -> Path:
    (tmp_path / "code.py").write_bytes(MARKED_CRLF.encode())
    (tmp_path / "code.py").chmod(0o640)
    (tmp_path / "notes.xyz").write_bytes(UNKNOWN_LANGUAGE.encode())
    (tmp_path / "plain.py").write_bytes(NO_MARKERS.encode())
    return tmp_path


def assert_only_markers_replaced(original: bytes, rewritten: bytes) -> None:
    """The bytes before the first and after the last marker, and between markers, are untouched."""
    text, new = original.decode(), rewritten.decode()
    assert "<|fill|>" not in new and "infill:begin" not in new and "infill:end" not in new
    hole = text.index("<|fill|>")
    begin = text.index("    # infill:begin")
    end = text.index("# infill:end\r\n") + len("# infill:end\r\n")
    head, between, tail = text[:hole], text[hole + len("<|fill|>") : begin], text[end:]
    assert new.startswith(head)
    assert new.endswith(tail)  # includes the missing final newline
    middle = new[len(head) : len(new) - len(tail)]
    assert between in middle
    assert "\n" not in new.replace("\r\n", "")  # generated lines use the file's CRLF


def test_rewrite_diff_check_and_in_place(
    marked_files: Path,
    x_model_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    files = ("code.py", "notes.xyz", "plain.py")
    before = {name: (marked_files / name).read_bytes() for name in files}
    # The "x" model fills every gap here with identifiers that parse, so every marker is replaced.
    model = ("--model", str(x_model_dir), *FAST)

    diff = run_infill("rewrite", *files, *model, cwd=marked_files)
    assert diff.returncode == 0, diff.stderr
    assert "Traceback" not in diff.stderr
    assert "plain.py: no <|fill|> holes" in diff.stderr
    assert 'notes.xyz: no grammar for ".xyz": only line and bracket heuristics apply' in diff.stderr
    assert diff.stdout.startswith("--- a/code.py\n+++ b/code.py\n")
    assert "--- a/notes.xyz\n+++ b/notes.xyz\n" in diff.stdout
    assert {name: (marked_files / name).read_bytes() for name in files} == before

    # --check in-process (the same main(), without paying for another interpreter and torch import).
    monkeypatch.chdir(marked_files)
    assert main(["rewrite", "--check", *files, *model]) == 1
    check = capsys.readouterr()
    assert check.out == ""
    assert "would rewrite code.py" in check.err and "would rewrite notes.xyz" in check.err
    assert {name: (marked_files / name).read_bytes() for name in files} == before

    written = run_infill("rewrite", "--in-place", *files, *model, cwd=marked_files)
    assert written.returncode == 0, written.stderr
    assert written.stdout == ""
    assert_only_markers_replaced(before["code.py"], (marked_files / "code.py").read_bytes())
    assert (marked_files / "code.py").stat().st_mode & 0o777 == 0o640
    xyz = (marked_files / "notes.xyz").read_bytes().decode()
    assert xyz.startswith("set x = ") and xyz.endswith("\nprint x\n") and "<|fill|>" not in xyz
    assert (marked_files / "plain.py").read_bytes() == before["plain.py"]
    assert sorted(p.name for p in marked_files.iterdir()) == sorted(files)  # no temp files left

    # The diff printed first is exactly what --in-place wrote (greedy decoding is deterministic).
    if shutil.which("patch"):
        replay = marked_files / "replay"
        replay.mkdir()
        for name in files:
            (replay / name).write_bytes(before[name])
        (replay / "d.patch").write_bytes(diff.stdout.encode())
        subprocess.run(["patch", "-p1", "-s", "--binary", "-i", "d.patch"], cwd=replay, check=True)
        for name in files:
            assert (replay / name).read_bytes() == (marked_files / name).read_bytes()


def test_rewrite_leaves_a_gap_no_valid_candidate_fills_unless_asked(
    tmp_path: Path,
    x_model_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # "return (a xxxx)" cannot parse while "return (a )" does, and the "x" model proposes nothing else.
    original = "def f(a, b):\n    return (a <|fill|>)\n"
    path = tmp_path / "bad.py"
    path.write_text(original)
    monkeypatch.chdir(tmp_path)
    model = ["--model", str(x_model_dir), *FAST]

    assert main(["rewrite", "--in-place", "bad.py", *model]) == EXIT_UNFILLED
    assert path.read_text() == original
    assert "bad.py:2: no candidate passed the syntax check; left it unchanged" in capsys.readouterr().err

    assert main(["rewrite", "--in-place", "--keep-invalid", "bad.py", *model]) == EXIT_UNFILLED
    written = path.read_text()
    assert "<|fill|>" not in written and written.startswith("def f(a, b):\n    return (a ")
    err = capsys.readouterr().err
    assert "kept the best-scoring one" in err
    assert "WARNING: bad.py: --keep-invalid: the result does not parse (unchecked code at line 2)" in err
    assert not regions.document_parses(written, "python")


def test_fills_that_are_valid_alone_but_not_together_are_not_both_written(
    tmp_path: Path, x_model_dir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # Each hole is judged with the other one empty: `print(xxxx )` parses, `print(xxxx xxxx)` does not.
    path = tmp_path / "two.py"
    path.write_text("print(<|fill|> <|fill|>)\n")
    monkeypatch.chdir(tmp_path)
    assert main(["rewrite", "--in-place", "two.py", "--model", str(x_model_dir), *FAST]) == EXIT_UNFILLED
    written = path.read_text()
    assert written.count("<|fill|>") == 1, written  # one hole filled, the other kept and named
    assert regions.document_parses(written.replace("<|fill|>", ""), "python")
    assert "two.py:1: no candidate passed the syntax check; left it unchanged" in capsys.readouterr().err


def test_a_regenerated_go_region_keeps_the_files_tab_indentation(
    tmp_path: Path, x_model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = (
        "package main\n\nfunc sum(xs []int) int {\n\ttotal := 0\n\t// infill:begin\n"
        "\tfor _, x := range xs {\n\t\ttotal += x\n\t}\n\t// infill:end\n\treturn total\n}\n"
    )
    (tmp_path / "sum.go").write_text(source)
    monkeypatch.chdir(tmp_path)
    assert main(["rewrite", "--in-place", "sum.go", "--model", str(x_model_dir), *FAST]) == 0
    written = (tmp_path / "sum.go").read_text()
    assert "infill:" not in written and written != source
    head, tail = "func sum(xs []int) int {\n\ttotal := 0\n", "\treturn total\n}\n"
    region = written[written.index(head) + len(head) : written.index(tail)]
    lines = [line for line in region.split("\n") if line]
    assert lines and all(line.startswith("\t") for line in lines), region


def test_the_readme_example_points_inside_its_own_file(
    tmp_path: Path, x_model_dir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    readme = (REPO_ROOT / "README.md").read_text()
    usage = readme[readme.index("## Use from the command line") :]
    example = re.search(r"```python\n(.*?)```", usage, re.DOTALL)
    command = re.search(r"^infill complete (stats\.py:\d+:\d+)", usage, re.MULTILINE)
    assert example is not None and command is not None
    (tmp_path / "stats.py").write_text(example.group(1))
    monkeypatch.chdir(tmp_path)
    assert main(["complete", command.group(1), "--model", str(x_model_dir), *FAST]) == 0
    captured = capsys.readouterr()
    assert "out of range" not in captured.err and captured.out.strip(), captured.err


def test_rewrite_without_markers_does_not_load_a_model(tmp_path: Path) -> None:
    (tmp_path / "plain.py").write_text(NO_MARKERS)
    (tmp_path / "empty.py").write_text("")
    result = run_infill(
        "rewrite", "--check", "plain.py", "empty.py", "--model", "does-not-exist", cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr.count("nothing to do") == 2


# ------------------------------------------------------------------------------------ end to end: complete


def test_complete_json_and_plain(
    tmp_path: Path, x_model_dir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "code.py").write_text("def add(a, b):\n    return \n\nprint(add(1, 2))\n")
    (tmp_path / "notes.xyz").write_text("total = \n")
    model = ("--model", str(x_model_dir), *FAST)

    # Unknown language (line heuristics, and a notice saying so), JSON, through a real process.
    result = run_infill("complete", "notes.xyz:1:9", "-n", "3", "--json", *model, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert 'no grammar for ".xyz"' in result.stderr and "heuristics" in result.stderr
    payload = json.loads(result.stdout)
    where = (payload["path"], payload["line"], payload["column"], payload["language"])
    assert where == ("notes.xyz", 1, 9, None)
    assert 1 <= len(payload["candidates"]) <= 3
    for candidate in payload["candidates"]:
        assert isinstance(candidate["text"], str) and candidate["text"].strip()
        assert (candidate["start"]["line"], candidate["start"]["column"]) == (1, 9)

    # Python, plain output, several candidates (in-process: the same main()).
    monkeypatch.chdir(tmp_path)
    assert main(["complete", "code.py:2:12", "--mode", "line", "-n", "2", *model]) == 0
    plain = capsys.readouterr()
    assert plain.out.startswith("--- candidate 1 of ")
    headers = [line for line in plain.out.splitlines() if line.startswith("--- candidate ")]
    assert 1 <= len(headers) <= 2
    completions = [line for line in plain.out.splitlines() if not line.startswith("--- candidate ")]
    source = (tmp_path / "code.py").read_text()
    for completion in completions:
        assert regions.document_parses(source.replace("return \n", f"return {completion}\n"), "python")


# --------------------------------------------------------------------------------------- end to end: batch


def test_batch_writes_one_row_per_task_in_order(tmp_path: Path, modernbert_dir: Path) -> None:
    rows = [
        {"task_id": f"t/{i}", "prompt": f"def f{i}(x):\n    return ", "suffix": "\n", "canonical": "x"}
        for i in range(5)
    ]
    # Gzipped, as the benchmark sets ship; a trailing blank line is allowed.
    (tmp_path / "in.jsonl.gz").write_bytes(
        gzip.compress(("".join(json.dumps(r) + "\n" for r in rows) + "\n").encode())
    )
    result = run_infill(
        "batch", "in.jsonl.gz", "-o", "out.jsonl", "--mode", "line", "--batch-size", "2",
        "--model", str(modernbert_dir), *FAST, cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "5/5" in result.stderr  # tqdm progress on stderr
    assert result.stdout == ""
    out = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert [row["task_id"] for row in out] == [row["task_id"] for row in rows]
    assert all(set(row) == {"task_id", "completion"} for row in out)
    assert all("\n" not in row["completion"].rstrip("\n") for row in out)  # line mode


# -------------------------------------------------------------------------------------- doctor and --help


def test_doctor_reports_versions_devices_and_model(tmp_path: Path, modernbert_dir: Path) -> None:
    result = run_infill("doctor", "--model", str(modernbert_dir), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    report = dict(line.split(":", 1) for line in result.stdout.splitlines())
    report = {key.strip(): value.strip() for key, value in report.items()}
    assert report["torch"][0].isdigit() and report["tree-sitter-python"][0].isdigit()
    assert report["cuda available"] in ("True", "False")
    assert report["model dir"] == str(modernbert_dir.resolve())
    assert report["model loads"].startswith("yes")
    assert "python" in report["grammars loading"]


def registered_commands() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    (subparsers,) = (a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(subparsers.choices)


def test_every_command_module_is_registered() -> None:
    modules = {
        match.group(1)
        for path in (REPO_ROOT / "infill_cli").glob("*.py")
        for match in re.finditer(r"^def (\w+)_command_parser\(", path.read_text(), re.MULTILINE)
    }
    assert {"rewrite", "complete", "batch", "doctor"} <= modules
    assert set(registered_commands()) == modules


def test_serve_help_lists_every_setting_and_serve_accepts_stdio() -> None:
    from lsp.settings import WIRE_NAMES

    text = registered_commands()["serve"].format_help()
    for name in WIRE_NAMES:
        assert f"  {name}  " in text, name
    # vscode-languageclient appends --stdio to the server command.
    args = build_parser().parse_args(["serve", "--stdio", "--device", "cpu"])
    assert args.stdio and not args.tcp


def test_train_help_prints_no_default_of_none() -> None:
    text = registered_commands()["train"].format_help()
    assert "(default: None)" not in " ".join(text.split())
    assert "(default: 2e-3 from scratch" in " ".join(text.split())


@pytest.mark.parametrize("command", ["rewrite", "complete", "batch", "doctor"])
def test_every_subcommand_has_help(tmp_path: Path, command: str) -> None:
    result = run_infill(command, "--help", cwd=tmp_path)
    assert result.returncode == 0
    assert result.stdout.startswith(f"usage: infill {command}")
    assert "--model" in result.stdout
    assert set(registered_commands()[command].format_help().split()) == set(result.stdout.split())
