"""End-to-end latency of inline completion over LSP: what an editor user waits for.

Starts the server as the editors do (the ``infill serve`` command next to this Python, over stdio, bundled
model unless --model is given, server settings at their defaults except the debounce, which is 0 so that
only work is timed), opens a generated 2,000-line Python file, then repeatedly edits it (didChange) and asks
for an automatic-trigger inline completion:

- ``--scenario line`` (default): a partial statement typed into a random line, the cursor mid-line before
  the line's closing text (``    result = compute_|(values)``): the rest of the line is filled;
- ``--scenario block``: a block opener typed on a random line, the cursor on the empty indented line after
  it: a block (up to maxTokens, 64 by default) is filled;
- ``--scenario typing``: the next keystrokes. A partial statement as in ``line``, not timed, then
  ``KEYSTROKES`` characters typed one at a time at the cursor, each followed by a request, timed: what a
  block-diffusion model's prefix cache serves (the previous keystroke's prompt blocks; ``line`` moves to a
  new place every request, so its prompts share nothing).

Prints p50/p95, the server's resident memory (current and peak) and the load average, and appends a
Markdown row (date, command, hardware, model, numbers) to --out.

    python scripts/bench_lsp_latency.py --requests 100 --out bench_lsp.md
    OMP_NUM_THREADS=1 python scripts/bench_lsp_latency.py --scenario block --requests 100
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import os
import platform
import random
import re
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from lsprotocol import types
from pygls.lsp.client import BaseLanguageClient

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))  # run from a checkout without installing it
from lsp.protocol import plain_json_converter  # noqa: E402

BUNDLED_MODEL = REPO_ROOT / "infill" / "default_model"
URI = "file:///bench/generated.py"
TRIGGERS = {
    "automatic": types.InlineCompletionTriggerKind.Automatic,  # 1 item; the server's debounce is set to 0
    "invoked": types.InlineCompletionTriggerKind.Invoked,  # up to 3 items
}
# What a user might be typing inside a line: the text before the cursor, and the line's text after it.
PARTIAL_LINES = [
    ("    result = compute_", "(values)"),
    ("    if value is ", ":"),
    ("    for item in ", ":"),
    ("    return self.", "()"),
    ("    total += ", " * scale"),
    ("    logger.info(", ")"),
    ("    data = {", "}"),
    ("    while count < ", ":"),
]
# The typing scenario's keystrokes after each partial line (``compute_`` -> ``compute_item_12``).
KEYSTROKES = "item_12"
# Block openers: the cursor goes on the empty indented line after one.
OPENERS = [
    "    for value in values:",
    "    if total > 0:",
    "def helper(values, scale=2):",
    "    while index < len(values):",
    "    try:",
    "    with open(path) as handle:",
]


def generated_python(lines: int, seed: int) -> str:
    """A plausible module: classes with methods, helper functions, docstrings, loops."""
    rng = random.Random(seed)
    out: list[str] = ["import logging", "import math", "", "logger = logging.getLogger(__name__)", "", ""]
    index = 0
    while len(out) < lines:
        name = f"item_{index}"
        if index % 3 == 0:
            out += [
                f"class Widget{index}:",
                f'    """Widget number {index}."""',
                "",
                "    def __init__(self, size, name):",
                "        self.size = size",
                "        self.name = name",
                "",
                "    def area(self):",
                f"        return self.size * {rng.randint(2, 9)}",
                "",
                "",
            ]
        else:
            out += [
                f"def compute_{name}(values, scale={rng.randint(1, 5)}):",
                f'    """Scaled sum of values for {name}."""',
                "    total = 0",
                "    for value in values:",
                "        if value > 0:",
                "            total += value * scale",
                "    return math.sqrt(total)",
                "",
                "",
            ]
        index += 1
    return "\n".join(out[:lines]) + "\n"


def hardware() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    description = f"{cpu}, {os.cpu_count()} cores"
    try:
        gpus = subprocess.run(
            ["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout.strip()
        if gpus:
            description += f", GPU: {'; '.join(gpus.splitlines())}"
    except (OSError, subprocess.SubprocessError):
        pass
    return description


async def _drain(stream: asyncio.StreamReader | None) -> None:
    while stream is not None and await stream.read(65536):
        pass


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def server_command(args: argparse.Namespace, log_file: Path) -> list[str]:
    """``infill serve`` as an editor runs it (the console script of this environment), plus a log file."""
    installed = Path(sys.executable).with_name("infill")
    command = [str(installed)] if installed.is_file() else [sys.executable, "-m", "infill_cli.main"]
    command += ["serve", "--log-file", str(log_file)]
    if args.model is not None:
        command += ["--model", str(args.model)]
    if args.device:
        command += ["--device", args.device]
    return command


def memory_kib(pid: int) -> tuple[int, int]:
    """(current, peak) resident set size of a process in KiB, from /proc (0, 0 where unavailable)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0, 0
    fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
    return tuple(int(fields.get(key, "0 kB").split()[0]) for key in ("VmRSS", "VmHWM"))  # type: ignore[return-value]


def edit(line_count: int, rng: random.Random, scenario: str) -> tuple[types.Position, str, types.Position]:
    """A random edit: where the typed text goes (new lines before a random line), the text, and the cursor."""
    line = rng.randrange(10, line_count - 10)
    if scenario == "line":
        before, after = rng.choice(PARTIAL_LINES)
        return types.Position(line, 0), before + after + "\n", types.Position(line, len(before))
    opener = rng.choice(OPENERS)
    indent = " " * (len(opener) - len(opener.lstrip()) + 4)
    return types.Position(line, 0), opener + "\n" + indent + "\n", types.Position(line + 1, len(indent))


async def run(args: argparse.Namespace) -> dict[str, Any]:
    client = BaseLanguageClient("infill-bench", "0", converter_factory=plain_json_converter)
    ready = asyncio.Event()
    failure: list[str] = []

    @client.feature("infill/status")
    def on_status(params: dict[str, Any]) -> None:
        if params["state"] in ("ready", "error"):
            failure.extend([params.get("message", "")] if params["state"] == "error" else [])
            ready.set()

    @client.feature(types.WINDOW_LOG_MESSAGE)
    def on_log(params: types.LogMessageParams) -> None:  # the server's log lines; its log file has them too
        pass

    log_file = Path(tempfile.mkdtemp(prefix="infill-bench-")) / "server.log"
    command = server_command(args, log_file)
    # The server runs this checkout's code, as the benchmark does (an editable install gives the same).
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")])),
    }
    await client.start_io(command[0], *command[1:], cwd=str(REPO_ROOT), env=env)
    server = client._server
    stderr = server.stderr if server else None
    drain = asyncio.create_task(_drain(stderr))  # logs go to --log-file; keep the pipe from filling up
    options: dict[str, Any] = {"debounceMs": 0}
    if args.max_tokens is not None:
        options["maxTokens"] = args.max_tokens
    started = time.perf_counter()
    await client.initialize_async(
        types.InitializeParams(capabilities=types.ClientCapabilities(), initialization_options=options)
    )
    client.initialized(types.InitializedParams())
    await asyncio.wait_for(ready.wait(), timeout=600)
    load_s = time.perf_counter() - started
    if failure:
        raise SystemExit(f"bench: the model failed to load: {failure[0]}")

    text = generated_python(args.lines, args.seed)
    client.text_document_did_open(
        types.DidOpenTextDocumentParams(
            types.TextDocumentItem(uri=URI, language_id="python", version=1, text=text)
        )
    )
    rng = random.Random(args.seed)
    line_count = text.count("\n")
    latencies_ms: list[float] = []
    with_items = 0
    typing = args.scenario == "typing"
    request = 0
    cursor = types.Position(0, 0)
    timed: list[int] = []  # which requests were timed
    while len(latencies_ms) < args.requests:
        version = request + 2
        keystroke = request % (len(KEYSTROKES) + 1) if typing else 0
        if keystroke:  # the next character at the cursor
            at, typed = cursor, KEYSTROKES[keystroke - 1]
            cursor = types.Position(cursor.line, cursor.character + 1)
        else:
            at, typed, cursor = edit(line_count, rng, "line" if typing else args.scenario)
        line_count += typed.count("\n")
        change = types.TextDocumentContentChangePartial(range=types.Range(start=at, end=at), text=typed)
        client.text_document_did_change(
            types.DidChangeTextDocumentParams(
                types.VersionedTextDocumentIdentifier(version=version, uri=URI), [change]
            )
        )
        context = types.InlineCompletionContext(trigger_kind=TRIGGERS[args.trigger])
        params = types.InlineCompletionParams(
            context=context, text_document=types.TextDocumentIdentifier(uri=URI), position=cursor
        )
        sent = time.perf_counter()
        result = await client.text_document_inline_completion_async(params)
        elapsed_ms = (time.perf_counter() - sent) * 1000
        if request >= args.warmup and (keystroke or not typing):
            latencies_ms.append(elapsed_ms)
            timed.append(request)
            items = result.items if isinstance(result, types.InlineCompletionList) else (result or [])
            with_items += bool(items)
        request += 1
    rss_kib, peak_kib = memory_kib(server.pid) if server else (0, 0)
    await client.shutdown_async(None)
    client.exit(None)
    await client.stop()
    drain.cancel()
    # The worker logs one line per completion with the time spent in the model (regions + engine).
    model_ms = [float(m) for m in re.findall(r"completion id=\S+ .* ms=(\d+)", log_file.read_text())]
    model_ms = [model_ms[-request:][i] for i in timed] if len(model_ms) >= request else []
    return {
        "model_p50": statistics.median(model_ms) if model_ms else float("nan"),
        "load_s": load_s,
        "p50": percentile(latencies_ms, 0.5),
        "p95": percentile(latencies_ms, 0.95),
        "mean": statistics.fmean(latencies_ms),
        "with_items": with_items / len(latencies_ms),
        "rss_mb": rss_kib / 1024,
        "peak_rss_mb": peak_kib / 1024,
        "log_file": log_file,
        "command": command,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=None, help="default: the server's (the bundled model)")
    parser.add_argument("--device", default=None)
    parser.add_argument("--scenario", choices=("line", "block", "typing"), default="line")
    parser.add_argument("--requests", type=int, default=100)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--lines", type=int, default=2000)
    parser.add_argument("--max-tokens", type=int, default=None, help="default: the server's (64)")
    parser.add_argument("--trigger", choices=sorted(TRIGGERS), default="automatic")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=None, help="append a Markdown row to this file")
    args = parser.parse_args(argv)
    if args.requests < 1 or args.lines < 50:
        parser.error("--requests must be >= 1 and --lines >= 50")

    load_before = os.getloadavg()[0]
    stats = asyncio.run(run(args))
    load = f"{load_before:.1f} -> {os.getloadavg()[0]:.1f}"
    # Thread settings change CPU latency a lot on a shared machine: keep them in the recorded command.
    env = [
        f"{name}={os.environ[name]}" for name in ("OMP_NUM_THREADS", "INFILL_DEVICE") if name in os.environ
    ]
    script = ["python", "scripts/bench_lsp_latency.py", *(argv if argv is not None else sys.argv[1:])]
    command = " ".join([*env, shlex.join(script)])
    date = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    model = args.model.name if args.model is not None else BUNDLED_MODEL.name
    row = (
        f"| {date} | `{command}` | {hardware()}, load {load} | {model} | {args.scenario} | {args.requests} "
        f"| {stats['p50']:.0f} ({stats['model_p50']:.0f} in the model) | {stats['p95']:.0f} "
        f"| {stats['mean']:.0f} | {stats['with_items']:.0%} "
        f"| {stats['rss_mb']:.0f} ({stats['peak_rss_mb']:.0f}) | {stats['load_s']:.1f} |"
    )
    print(
        f"inline completion over LSP ({args.scenario}): p50 {stats['p50']:.0f} ms "
        f"({stats['model_p50']:.0f} ms of it in the model), p95 {stats['p95']:.0f} ms, "
        f"mean {stats['mean']:.0f} ms over {args.requests} requests "
        f"({stats['with_items']:.0%} with items); server RSS {stats['rss_mb']:.0f} MB "
        f"(peak {stats['peak_rss_mb']:.0f} MB); ready after {stats['load_s']:.1f} s; load {load}; "
        f"server: {shlex.join(stats['command'])}"
    )
    print(row)
    if args.out is not None:
        header = (
            "| date | command | hardware | model | scenario | requests | p50 ms | p95 ms | mean ms "
            "| with items | RSS MB (peak) | ready s |\n|---|---|---|---|---|---|---|---|---|---|---|---|\n"
        )
        new = not args.out.exists() or not args.out.read_text().strip()
        with args.out.open("a", encoding="utf-8") as out:
            out.write((header if new else "") + row + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
