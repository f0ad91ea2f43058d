"""The sandbox that runs generated programs: outcomes, limits, no network, files kept in a throwaway dir."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from training.sandbox import SandboxLimits, isolation, run_program, run_programs


def test_exit_status_decides_pass_and_fail() -> None:
    ok = run_program("assert sum([1, 2]) == 3\nprint('fine')\n")
    assert ok.passed and ok.returncode == 0 and ok.stdout == "fine\n"
    bad = run_program("assert sum([1, 2]) == 4\n")
    assert not bad.passed and bad.returncode == 1 and "AssertionError" in bad.stderr
    broken = run_program("def f(:\n")
    assert not broken.passed and "SyntaxError" in broken.stderr


def test_infinite_loop_is_a_timeout_not_a_hang() -> None:
    start = time.monotonic()
    result = run_program("while True:\n    pass\n", SandboxLimits(timeout_s=1.0))
    assert time.monotonic() - start < 5.0
    assert result.timed_out and not result.passed and result.returncode is None


def _is_gone(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", encoding="utf-8") as f:
            return f.read().split(")")[-1].split()[0] == "Z"  # a killed, not yet reaped child
    except FileNotFoundError:
        return True


def test_timeout_kills_the_programs_children_too() -> None:
    program = (
        "import subprocess, sys\n"
        "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])\n"
        "print(child.pid, flush=True)\n"
        "while True:\n    pass\n"
    )
    result = run_program(program, SandboxLimits(timeout_s=1.5))
    assert result.timed_out
    child = int(result.stdout.split()[0])
    deadline = time.monotonic() + 5
    while not _is_gone(child) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _is_gone(child)


def test_memory_blow_up_fails_and_small_allocations_pass() -> None:
    limits = SandboxLimits(memory_bytes=512 << 20)
    assert run_program("x = bytearray(16 << 20)\n", limits).passed
    blown = run_program("x = bytearray(1 << 30)\n", limits)
    assert not blown.passed and "MemoryError" in blown.stderr


def test_network_connection_to_loopback_fails() -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        listener.setblocking(False)
        port = listener.getsockname()[1]
        program = (
            "import socket\n"
            f"socket.create_connection(('127.0.0.1', {port}), timeout=3).sendall(b'hi')\n"
            "print('connected')\n"
        )
        # The same program outside the sandbox does connect, so the sandbox is what stops it.
        control = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, timeout=30)
        assert control.stdout == "connected\n"
        listener.accept()[0].close()

        result = run_program(program)
        assert not result.passed and "connected" not in result.stdout
        with pytest.raises(BlockingIOError):
            listener.accept()


def test_files_are_written_in_a_throwaway_dir(tmp_path: Path) -> None:
    program = "import os\nopen('out.txt', 'w').write('x')\nprint(os.getcwd())\n"
    result = run_program(program)
    assert result.passed
    work_dir = Path(result.stdout.strip())
    assert work_dir != Path.cwd() and not (Path.cwd() / "out.txt").exists()
    assert not work_dir.exists()  # removed with everything the program wrote

    if "read-only" not in isolation():
        pytest.skip(f"no mount namespace here ({isolation()}): only the working directory is confined")
    escape = tmp_path / "escape.txt"
    result = run_program(f"open({str(escape)!r}, 'w').write('x')\n")
    assert not result.passed and "Read-only file system" in result.stderr
    assert not escape.exists()


def test_environment_is_scrubbed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INFILL_EVAL_SECRET", "hunter2")
    result = run_program("import os\nprint(os.environ.get('INFILL_EVAL_SECRET'))\n")
    assert result.stdout == "None\n"


def test_output_is_truncated() -> None:
    result = run_program("print('x' * 100000)\n", SandboxLimits(max_output_chars=1000))
    assert result.passed and len(result.stdout) == 1000


def test_parallel_runs_keep_input_order() -> None:
    programs = [f"import time\ntime.sleep({0.3 if i % 2 == 0 else 0})\nprint({i})\n" for i in range(6)]
    results = run_programs(programs, workers=2)
    assert [r.stdout.strip() for r in results] == [str(i) for i in range(6)]
    assert all(r.passed for r in results)


def test_without_namespaces_the_socket_hook_still_blocks_the_network() -> None:
    limits = SandboxLimits(use_namespaces=False)
    assert isolation(use_namespaces=False) == "socket-hook cwd"
    result = run_program("import socket\nsocket.create_connection(('127.0.0.1', 9), timeout=3)\n", limits)
    assert not result.passed and "network access is disabled in the sandbox" in result.stderr
    local = run_program(
        "import socket\na, b = socket.socketpair()\na.sendall(b'x')\nprint(b.recv(1))\n", limits
    )
    assert local.passed and local.stdout == "b'x'\n"  # AF_UNIX pairs (multiprocessing) keep working


def test_programs_see_the_standard_library_only_unless_asked() -> None:
    program = "import importlib.util\nprint(importlib.util.find_spec('torch') is not None)\n"
    assert run_program(program).stdout == "False\n"
    assert run_program(program, SandboxLimits(site_packages=True)).stdout == "True\n"
