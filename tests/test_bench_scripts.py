"""The decoding benchmarks in scripts/ run end to end at toy scale: real tiny models, real MBPP-shaped rows
run in the sandbox, the printed tables. (The numbers themselves come from full runs, see BENCHMARKS.md.)"""

from __future__ import annotations

import gzip
import importlib.util
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest
import torch

from tests.test_eval_ar_generate import _psm_model, _save_psm
from tests.test_eval_harness import ROWS
from tests.tiny_models import CODE_SAMPLES
from training.eval.bench import DEFAULT_BENCH_DIR, NAMED_BENCHES
from training.tokenizer import train_code_tokenizer

SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"


def script(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, SCRIPTS / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module", autouse=True)
def restore_threads() -> Iterator[None]:
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)  # the scripts set their own thread count


@pytest.fixture(scope="module")
def bench_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Both MBPP files, three rows each (single-line gaps and a two-line gap), under their real names."""
    directory = tmp_path_factory.mktemp("bench")
    for name in NAMED_BENCHES.values():
        with gzip.open(directory / name, "wt", encoding="utf-8") as out:
            out.writelines(json.dumps(row) + "\n" for row in ROWS[:3])
    return directory


@pytest.fixture(scope="module")
def ar_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(0)
    tokenizer = train_code_tokenizer(CODE_SAMPLES, vocab_size=400)
    return _save_psm(_psm_model(tokenizer), tokenizer, tmp_path_factory.mktemp("ar") / "tiny-ar")


def test_bench_vs_ar_prints_the_latency_ratio_for_both_lengths(
    modernbert_dir: Path, ar_dir: Path, bench_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bench = script("bench_vs_ar")
    argv = ["--model", str(modernbert_dir), "--ar-model", str(ar_dir), "--bench-dir", str(bench_dir)]
    assert bench.main([*argv, "--tasks", "2", "--workers", "1"]) == 0
    out = capsys.readouterr().out
    rows = [line for line in out.splitlines() if line.startswith(("| 24 tokens", "| 64 tokens"))]
    assert [row.split("|")[2].strip() for row in rows] == [modernbert_dir.name, "tiny-ar"] * 2
    ratios = [row.split("|")[-2].strip() for row in rows]
    assert float(ratios[0]) > 0 and ratios[1] == "" and float(ratios[2]) > 0
    with pytest.raises(SystemExit):  # the peer is required
        bench.main(["--model", str(modernbert_dir)])


def test_bench_decoding_sweeps_every_combination(
    modernbert_dir: Path, bench_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sweep = script("bench_decoding")
    out = tmp_path / "sweep.json"
    argv = ["--model", str(modernbert_dir), "--bench-dir", str(bench_dir), "--single", "2", "--multi", "1"]
    argv += ["--thresholds", "0.5", "1.0", "--block-sizes", "4", "0", "--steps", "8", "--workers", "1"]
    assert sweep.main([*argv, "--cache-refresh", "0", "4", "--json", str(out)]) == 0
    rows = json.loads(out.read_text())
    assert len(rows) == 2 * 2 * 2 * 2  # benches x thresholds x block sizes x cache settings
    assert {(r["strategy"], r["block_size"]) for r in rows} == {("blocks", 4), ("threshold", 0)}
    assert {r["cache_refresh"] for r in rows} == {0, 4}
    assert all(r["passes_per_token"] is None or r["passes_per_token"] > 0 for r in rows)
    assert "| single | 4 | 0.5 | 8 | no cap | off | off | " in capsys.readouterr().out


def test_bench_cache_times_full_and_cached_steps(capsys: pytest.CaptureFixture[str]) -> None:
    bench = script("bench_cache")
    tiny = ["--layers", "1", "--hidden", "32", "--heads", "2", "--kv-heads", "1", "--intermediate", "64"]
    assert bench.main([*tiny, "--context", "40", "--canvas", "16", "--block", "8", "--repeats", "1"]) == 0
    out = capsys.readouterr().out
    assert "vocabulary 152,064" in out
    for step in ("full forward pass (no cache)", "refresh (full pass building the cache)", "cached step"):
        assert f"| {step}" in out


def test_bench_infill_writes_the_benchmarks_section(
    modernbert_dir: Path, ar_dir: Path, bench_dir: Path, tmp_path: Path
) -> None:
    bench = script("bench_infill")
    out = tmp_path / "bench_infill.md"
    argv = ["--model", str(modernbert_dir), "--ar-model", str(ar_dir), "--bench-dir", str(bench_dir)]
    assert bench.main([*argv, "--single", "2", "--multi", "1", "--workers", "1", "--out", str(out)]) == 0
    lines = out.read_text().splitlines()
    # scripts/train_default.sh drops the heading (sed 1d) and appends the rest to the model card.
    assert lines[0].startswith("## Functional infilling")
    assert lines[2].startswith("Command: `python scripts/bench_infill.py --model ")
    assert any(line.startswith("- Date: ") and "load average" in line for line in lines)
    assert sum(line.startswith("- Model: ") for line in lines) == 2


@pytest.mark.parametrize("name", ["bench_infill", "bench_decoding", "bench_vs_ar"])
def test_mbpp_benches_name_the_folder_their_tasks_ship_in(
    name: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit):
        script(name).main(["--help"])
    shown = capsys.readouterr().out.split("where the MBPP files live (default:", 1)[1].split(")", 1)[0]
    # The folder resolve_bench reads when --bench-dir is not given.
    assert (SCRIPTS.parent / " ".join(shown.split())).resolve() == DEFAULT_BENCH_DIR


def test_bench_hole_fill_cuts_holes_at_syntactic_units() -> None:
    bench = script("bench_hole_fill")
    text = (
        "def f(xs, ys):\n"
        '    """Doc."""\n'
        "    total = sum(xs)\n"
        "    print(total)\n"
        "    if ys:\n"
        "        return total + len(ys)\n"
        "    return total\n"
    )
    places = bench.places_in(Path("f.py"), text, max_block_lines=6)
    cut = {(place.unit, text[place.start : place.end]) for place in places}
    assert ("expression", "sum(xs)") in cut
    assert ("expression", "total + len(ys)") in cut
    assert ("statement", "print(total)") in cut
    assert ("statement", "return total") in cut
    assert ("block", "return total + len(ys)") in cut  # the hole at the body's indentation
    assert not any('"""' in code for unit, code in cut if unit == "statement")  # a docstring is no hole


def test_bench_length_compares_every_length_rule_on_the_same_gaps(
    modernbert_dir: Path, bench_dir: Path, tmp_path: Path
) -> None:
    bench = script("bench_length")
    out, rows_json = tmp_path / "length.md", tmp_path / "length.json"
    argv = ["--model", str(modernbert_dir), "--bench-dir", str(bench_dir), "--tasks", "2", "--budget", "24"]
    assert bench.main([*argv, "--workers", "1", "--out", str(out), "--json", str(rows_json)]) == 0
    rows = json.loads(rows_json.read_text())
    assert [row["condition"] for row in rows] == ["fixed", "ladder", "cal", "grow", "oracle"]
    assert rows[0]["vs_fixed"] == 0.0 and all(0 <= row["edit_similarity"] <= 1 for row in rows)
    assert all(row["pass_at_1"] is not None for row in rows)  # the sandbox ran every program
    lines = out.read_text().splitlines()
    assert lines[0].startswith("Command: `python scripts/bench_length.py --model ")
    assert any(line.startswith("| grow | ") for line in lines)
