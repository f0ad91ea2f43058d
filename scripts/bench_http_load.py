"""Load on `infill serve --http`: N simulated llama.vim users typing at once against one server.

Each client retypes real lines of this repository's Python files, as llama.vim asks: one POST /infill per
keystroke (about 6 keys a second), a pause of 1-2 s after each word, and a new keystroke hangs up the
previous request (llama.vim stops its curl job), so only the request of the last keystroke before a pause
can be answered. Reported: p50/p95 latency of each client's latest request (the one the user waits for),
every request counted as answered, cancelled (hung up by its client, or answered 409 superseded) or failed
(anything else: nothing may be lost), and the server's resident memory.

    python scripts/bench_http_load.py [--clients 16] [--seconds 60] [--model DIR] [--json out.json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
KEY_GAP_S = (0.12, 0.22)  # between keystrokes of a word
PAUSE_S = (1.0, 2.0)  # after a word: the suggestion the user waits for


@dataclass
class Tally:
    answered: int = 0
    cancelled: int = 0
    failed: int = 0
    latest_ms: list[float] = field(default_factory=list)  # answered requests that were their client's latest
    latest_cancelled: int = 0  # a latest request still unanswered when the pause ended and the next key came
    errors: list[str] = field(default_factory=list)


def source_lines() -> list[tuple[Path, int]]:
    """(file, line number) of code lines worth retyping: indented statements of the repository's Python."""
    spots = []
    for path in sorted((REPO / "infill").rglob("*.py")):
        for number, line in enumerate(path.read_text().splitlines()):
            if line.startswith("    ") and len(line.strip()) > 12 and not line.strip().startswith(("#", '"')):
                spots.append((path, number))
    return spots


async def post(port: int, body: dict[str, Any], client: str) -> tuple[int, str]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        data = json.dumps(body).encode()
        head = (
            f"POST /infill HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            f"X-Client-Id: {client}\r\nConnection: close\r\nContent-Length: {len(data)}\r\n\r\n"
        )
        writer.write(head.encode() + data)
        await writer.drain()
        response = await reader.read()
    finally:
        writer.close()
    status = int(response.split(b" ", 2)[1])
    return status, response.split(b"\r\n\r\n", 1)[1].decode(errors="replace")


async def typist(index: int, port: int, until: float, tally: Tally, spots: list[tuple[Path, int]]) -> None:
    rng = random.Random(index)
    pending: asyncio.Task[None] | None = None
    while time.monotonic() < until:
        path, number = rng.choice(spots)
        lines = path.read_text().splitlines()
        prefix = "\n".join(lines[max(0, number - 60) : number]) + "\n"
        suffix = "\n" + "\n".join(lines[number + 1 : number + 20]) + "\n"
        target = lines[number]
        indent = len(target) - len(target.lstrip())
        words = [m.end() for m in re.finditer(r"\S+", target)]
        typed = indent
        for word_end in words[: rng.randint(1, 3)]:
            while typed < word_end and time.monotonic() < until:
                typed += 1
                if pending is not None and not pending.done():
                    pending.cancel()  # the keystroke hangs up the request before it
                body = {
                    "input_prefix": prefix,
                    "input_suffix": suffix,
                    "prompt": target[:typed],
                    "input_extra": [],
                    "n_predict": 128,
                    "t_max_prompt_ms": 500,
                    "t_max_predict_ms": 250,
                    "cache_prompt": True,
                    "response_fields": ["content"],
                }
                pending = asyncio.create_task(
                    one_request(port, body, f"typist-{index}", tally, latest=typed == word_end)
                )
                await asyncio.sleep(rng.uniform(*KEY_GAP_S))
            await asyncio.sleep(rng.uniform(*PAUSE_S))
    if pending is not None:
        await asyncio.gather(pending, return_exceptions=True)


async def one_request(port: int, body: dict[str, Any], client: str, tally: Tally, *, latest: bool) -> None:
    started = time.perf_counter()
    try:
        status, text = await post(port, body, client)
    except asyncio.CancelledError:
        tally.cancelled += 1
        tally.latest_cancelled += latest
        return
    except OSError as error:
        tally.failed += 1
        tally.errors.append(f"{type(error).__name__}: {error}")
        return
    if status == 200:
        tally.answered += 1
        if latest:
            tally.latest_ms.append((time.perf_counter() - started) * 1000)
    elif status == 409:
        tally.cancelled += 1
    else:
        tally.failed += 1
        tally.errors.append(f"{status}: {text[:200]}")


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))] if ordered else float("nan")


def rss_mib(pid: int) -> tuple[float, float]:
    fields = dict(
        line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line
    )
    return int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024


async def start_server(model: str | None) -> tuple[subprocess.Popen[str], int]:
    argv = [sys.executable, "-m", "infill_cli.main", "serve", "--http", "--port", "0", "--device", "cpu"]
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    process = subprocess.Popen(
        argv + (["--model", model] if model else []), stderr=subprocess.PIPE, text=True, env=env
    )
    assert process.stderr is not None
    port = None
    loop = asyncio.get_running_loop()
    while True:
        line = await loop.run_in_executor(None, process.stderr.readline)
        if not line:
            raise RuntimeError("the server exited before it was ready")
        found = re.search(r"running on http://[\d.]+:(\d+)", line)
        port = int(found.group(1)) if found else port
        if "model ready" in line and port is not None:
            # Keep draining its log so the pipe never fills.
            loop.run_in_executor(None, lambda: [None for _ in process.stderr])  # type: ignore[union-attr]
            return process, port


async def run(args: argparse.Namespace) -> dict[str, Any]:
    process, port = await start_server(args.model)
    try:
        spots = source_lines()
        tally = Tally()
        started = time.monotonic()
        until = started + args.seconds
        await asyncio.gather(*(typist(i, port, until, tally, spots) for i in range(args.clients)))
        wall = time.monotonic() - started
        rss, peak = rss_mib(process.pid)
    finally:
        process.terminate()
        process.wait(timeout=30)
    return {
        "clients": args.clients,
        "seconds": round(wall, 1),
        "requests": tally.answered + tally.cancelled + tally.failed,
        "answered": tally.answered,
        "cancelled": tally.cancelled,
        "failed": tally.failed,
        "latest_answered": len(tally.latest_ms),
        "latest_cancelled": tally.latest_cancelled,
        "latest_p50_ms": round(percentile(tally.latest_ms, 0.5), 1),
        "latest_p95_ms": round(percentile(tally.latest_ms, 0.95), 1),
        "latest_mean_ms": round(statistics.fmean(tally.latest_ms), 1) if tally.latest_ms else None,
        "server_rss_mib": round(rss, 1),
        "server_peak_rss_mib": round(peak, 1),
        "errors": tally.errors[:5],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--model", default=None, help="model directory (default: the bundled model)")
    parser.add_argument("--json", type=Path, default=None, help="also write the result here")
    args = parser.parse_args(argv)
    result = asyncio.run(run(args))
    print(json.dumps(result, indent=2))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return 0 if result["failed"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
