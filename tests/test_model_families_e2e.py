"""Every released family fills a hole end to end: `infill doctor`, `infill complete` (in-process, and once
as a real process), `infill rewrite`, and the real `infill serve` over stdio.

The release-shaped checkpoints are biased towards the token "x" (tests/release_models.py ``bias_towards_x``),
so a fill is "x..." through the whole real stack, whatever the random weights would say; checks stay
structural.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from lsprotocol import types

from infill.regions import parse_error_count
from infill_cli.main import main
from tests.test_cli import run_infill
from tests.test_lsp_support import LspSession, inline_params, serve_argv

FAMILIES = {"dream-v0": "dream", "dream-coder-v0": "dream", "diffucoder": "diffucoder", "llada": "llada"}
SOURCE = "def scale(values):\n    factor = 3\n    return [v * factor for v in values]\n\n\nresult = \n"
HOLE = "def scale(values):\n    factor = <|fill|>\n    return [v * factor for v in values]\n"
FAST = ("--steps", "4", "--max-tokens", "6", "--device", "cpu")


def _doctor_report(text: str) -> dict[str, str]:
    rows = (line.split(":", 1) for line in text.splitlines() if ":" in line)
    return {key.strip(): value.strip() for key, value in rows}


@pytest.mark.parametrize("release", ["dream-coder-v0", "llada"])
def test_doctor_names_the_family_tokens_and_fills_a_hole(
    release: str, x_release_dirs: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["doctor", "--model", str(x_release_dirs[release]), "--device", "cpu"]) == 0
    report = _doctor_report(capsys.readouterr().out)
    assert report["model family"].startswith(FAMILIES[release] + ":")
    expected_source = "tokenizer.json" if release == "llada" else "vocab.json + merges.txt"
    assert expected_source in report["tokenizer"]
    assert report["mask token"].endswith("'<|mdm_mask|>'" if release == "llada" else "'<|mask|>'")
    assert report["end of span"].endswith("'<|endoftext|>'")
    assert report["model device/dtype"] == "cpu / float32"
    assert report["model window"] == "512 tokens"
    assert report["canvas"].endswith("prefix + masks + suffix")
    assert report["test fill"].startswith("'x")  # the biased model's fill, through the real engine


def test_doctor_exits_non_zero_when_the_model_does_not_load(
    release_dirs: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import shutil

    broken = shutil.copytree(release_dirs["llada"], tmp_path / "broken")
    for shard in broken.glob("model-*.safetensors"):
        shard.write_bytes(shard.read_bytes()[:100])
    assert main(["doctor", "--model", str(broken), "--device", "cpu"]) == 1
    assert _doctor_report(capsys.readouterr().out)["model loads"].startswith(
        "FAILED: Could not load the llada"
    )
    assert main(["doctor", "--model", str(tmp_path / "missing"), "--device", "cpu"]) == 1
    assert main(["doctor", "--no-load", "--model", str(broken), "--device", "cpu"]) == 0


@pytest.mark.parametrize("release", list(FAMILIES))
def test_complete_fills_with_each_family(
    release: str,
    x_release_dirs: dict[str, Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """`infill complete` in-process (the same main() a user runs; a process per family costs ~30 s here)."""
    (tmp_path / "scale.py").write_text(SOURCE)
    monkeypatch.chdir(tmp_path)
    assert main(["complete", "scale.py:6:10", "--model", str(x_release_dirs[release]), *FAST]) == 0
    completion = capsys.readouterr().out.rstrip("\n")
    assert completion and set(completion) == {"x"}, completion


def test_complete_runs_llada_in_a_real_process(x_release_dirs: dict[str, Path], tmp_path: Path) -> None:
    """The whole `infill` process once, on the family whose forward pass infill builds itself (LLaDA)."""
    path = tmp_path / "scale.py"
    path.write_text(SOURCE)
    result = run_infill(
        "complete", f"{path}:6:10", "--model", str(x_release_dirs["llada"]), *FAST, cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    completion = result.stdout.rstrip("\n")
    assert completion and set(completion) == {"x"}, result.stdout


@pytest.mark.parametrize("release", list(FAMILIES))
def test_rewrite_fills_a_hole_with_each_family(
    release: str,
    x_release_dirs: dict[str, Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    path = tmp_path / "hole.py"
    path.write_text(HOLE)
    monkeypatch.chdir(tmp_path)
    assert main(["rewrite", "--in-place", "hole.py", "--model", str(x_release_dirs[release]), *FAST]) == 0
    written = path.read_text()
    head, tail = HOLE.split("<|fill|>")
    assert written.startswith(head) and written.endswith(tail)
    filled = written[len(head) : len(written) - len(tail)]
    assert filled and set(filled) == {"x"}
    assert parse_error_count(written, "python") == 0


@pytest.fixture(scope="module")
def server(x_release_dirs: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Iterator[LspSession]:
    """One real server; each test switches it to another checkpoint (a reload, as an editor would ask)."""
    log_file = tmp_path_factory.mktemp("lsp_families") / "server.log"
    session = LspSession(serve_argv(x_release_dirs["llada"], log_file))
    session.initialize({"maxTokens": 6, "steps": 4})
    yield session
    session.close()


@pytest.mark.parametrize("release", list(FAMILIES))
def test_the_server_completes_and_rewrites_with_each_family(
    release: str, server: LspSession, x_release_dirs: dict[str, Path]
) -> None:
    seen = len(server.statuses)
    params = types.DidChangeConfigurationParams(
        settings={"infill": {"maxTokens": 6, "steps": 4, "model": str(x_release_dirs[release])}}
    )
    server.notify(types.WORKSPACE_DID_CHANGE_CONFIGURATION, params)
    # The server started on LLaDA (its "ready" came before); any other model is a reload with its own.
    since = 0 if release == "llada" else seen
    server.wait_for(lambda: any(s["state"] == "ready" for s in server.statuses[since:]), f"{release} loaded")
    errors = [s for s in server.statuses[seen:] if s["state"] == "error"]
    assert not errors, errors

    uri = f"file:///{release}.py"
    server.open(uri, SOURCE)
    result = server.request(types.TEXT_DOCUMENT_INLINE_COMPLETION, inline_params(uri, 5, len("result = ")))
    assert isinstance(result, types.InlineCompletionList) and result.items
    for item in result.items:
        assert isinstance(item.insert_text, str) and set(item.insert_text) == {"x"}
        assert item.range is not None and item.range.start == types.Position(
            line=5, character=len("result = ")
        )

    hole_uri = f"file:///{release}_hole.py"
    server.open(hole_uri, HOLE)
    edits = server.request("infill/rewrite", {"textDocument": {"uri": hole_uri}, "target": "holes"})
    assert edits["edits"], edits
    assert all(set(edit["newText"]) == {"x"} for edit in edits["edits"])
