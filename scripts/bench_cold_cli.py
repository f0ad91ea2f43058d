"""Cold `infill complete` against `python -c "import torch"`, measured in the same run (issue 9, target 2).

Each repetition starts both in new processes, one after the other, so they share the machine's load:
`python -c "import torch"` (the floor: no completion can start sooner) and `infill complete FILE:LINE:COL`
on a small Python file with the bundled model (or --model). Prints a table of wall times (median, min, max
over the repetitions) and the ratio of the medians; the target is a ratio of at most 2.

    python scripts/bench_cold_cli.py --repeat 9
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SMALL_FILE = "def mean(xs):\n    total = sum(xs)\n    return total / len(xs)\n\n\nvalue = \n"
POSITION = "6:9"  # after `value = `
TARGET_RATIO = 2.0


def infill_command() -> list[str]:
    """The `infill` script installed beside this Python (what a user runs), else `python -m`."""
    script = Path(sys.executable).with_name("infill")
    if script.is_file() and os.access(script, os.X_OK):
        return [str(script)]
    found = shutil.which("infill")
    return [found] if found else [sys.executable, "-m", "infill_cli.main"]


def wall_seconds(argv: list[str]) -> float:
    started = time.perf_counter()
    done = subprocess.run(argv, capture_output=True, text=True)
    elapsed = time.perf_counter() - started
    if done.returncode not in (0, 3):  # 3: ran, but no completion passed the check (still a timed run)
        raise SystemExit(f"bench_cold_cli: {' '.join(argv)} failed ({done.returncode}):\n{done.stderr}")
    return elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=7, help="repetitions of each (default: 7)")
    parser.add_argument("--model", default=None, help="model directory (default: the bundled model)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="infill-cold-") as tmp:
        source = Path(tmp) / "stats.py"
        source.write_text(SMALL_FILE)
        complete = [*infill_command(), "complete", f"{source}:{POSITION}"]
        if args.model:
            complete += ["--model", args.model]
        torch_only = [sys.executable, "-c", "import torch"]
        load_before = os.getloadavg()[0]
        wall_seconds(complete)  # warm the page cache for both, as a user's second run would be
        wall_seconds(torch_only)
        times: dict[str, list[float]] = {"torch": [], "complete": []}
        for _ in range(args.repeat):
            times["torch"].append(wall_seconds(torch_only))
            times["complete"].append(wall_seconds(complete))
        load_after = os.getloadavg()[0]

    median = {name: statistics.median(values) for name, values in times.items()}
    ratio = median["complete"] / median["torch"]
    print(
        f"# bench_cold_cli: {datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC, "
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
        f"load {load_before:.1f} -> {load_after:.1f}, "
        f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}"
    )
    print(f"# {args.repeat} repetitions; complete = `{' '.join(complete[:1])} complete stats.py:{POSITION}`")
    print("| command | median s | min s | max s |")
    print("|---|---:|---:|---:|")
    labels = {"torch": '`python -c "import torch"`', "complete": "`infill complete` (small file)"}
    for name, values in times.items():
        print(f"| {labels[name]} | {median[name]:.2f} | {min(values):.2f} | {max(values):.2f} |")
    verdict = "met" if ratio <= TARGET_RATIO else "NOT met"
    print(f"ratio of medians: {ratio:.2f} (target <= {TARGET_RATIO:.0f}: {verdict})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
