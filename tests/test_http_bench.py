"""scripts/bench_http_load.py end to end at toy scale: a real server, two typists, every request accounted
for. (The numbers come from the full run, see BENCHMARKS.md.)"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.test_lsp_support import server_env

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "bench_http_load.py"


def test_the_load_benchmark_accounts_for_every_request(x_model_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "result.json"
    argv = [sys.executable, str(SCRIPT), "--clients", "2", "--seconds", "3", "--model", str(x_model_dir)]
    done = subprocess.run(
        [*argv, "--json", str(out)], capture_output=True, text=True, timeout=300, env=server_env()
    )
    assert done.returncode == 0, done.stdout + done.stderr
    result = json.loads(out.read_text())
    assert result["requests"] > 2 and result["failed"] == 0
    assert result["answered"] + result["cancelled"] == result["requests"]
    assert result["latest_answered"] >= 1 and result["latest_p50_ms"] > 0
    assert result["server_rss_mib"] > 0
