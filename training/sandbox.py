"""Run untrusted generated programs: one fresh interpreter each, with limits, no network, a throwaway dir.

What each program gets (best effort; this is damage control for model output, not a security boundary):

- a fresh ``sys.executable -I -S`` process (isolated mode: no user site, no PYTHON* variables; no
  site-packages: the standard library only, which is all the MBPP sets import) in its own session, so a
  timeout kills the whole process group (children included);
- a throwaway working directory (also HOME and TMPDIR), removed afterwards, and a scrubbed environment;
- resource limits: address space (RLIMIT_AS, default 1 GiB), file size (RLIMIT_FSIZE, which also bounds the
  captured output files), CPU seconds, no core dumps;
- namespaces, when the kernel allows unprivileged user namespaces (``unshare -rn`` works): the launcher calls
  ``unshare(CLONE_NEWUSER | CLONE_NEWNS | CLONE_NEWNET)`` via libc, so the program sits in an empty network
  namespace (loopback down: even 127.0.0.1 is unreachable) and sees every mount read-only except its working
  directory (bind-mounted onto itself). Without namespaces the network is blocked by replacing
  ``socket.socket`` with a class that refuses AF_INET/AF_INET6 (bypassable by determined code, enough for
  accidental network use) and files are only confined by the working directory.

The limits are applied by a small launcher (``python -I -c LAUNCHER``) rather than a ``preexec_fn``:
``preexec_fn`` is unsafe when the parent has threads, and the harness runs programs from a thread pool.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

logger = logging.getLogger(__name__)

PROGRAM_FILE = "program.py"

# Runs inside the child before the program; argv: memory bytes, file-size bytes, cpu seconds, namespaces
# (1 or 0).
# It prints nothing on success so the program's output is exactly what the program wrote.
_LAUNCHER = r"""
import ctypes, os, resource, sys
memory, fsize, cpu, namespaces = (int(a) for a in sys.argv[1:5])
resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
resource.setrlimit(resource.RLIMIT_FSIZE, (fsize, fsize))
resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))
resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
NEWUSER, NEWNS, NEWNET = 0x10000000, 0x00020000, 0x40000000
MS_RDONLY, MS_REMOUNT, MS_BIND, MS_REC, MS_PRIVATE = 1, 32, 4096, 1 << 14, 1 << 18
# Flags the kernel locks on mounts inherited from a more privileged namespace: a remount must repeat them.
LOCKED = {"nosuid": 2, "nodev": 4, "noexec": 8, "noatime": 1024, "nodiratime": 2048, "relatime": 1 << 21}

def read_only_except(libc, keep):
    # Private copies of every mount, the working dir bound onto itself, then every other mount read-only.
    if libc.mount(None, b"/", None, MS_REC | MS_PRIVATE, None) != 0:
        return False
    if libc.mount(os.fsencode(keep), os.fsencode(keep), None, MS_BIND | MS_REC, None) != 0:
        return False
    os.chdir(keep)  # the cwd must resolve through the new bind mount
    with open("/proc/self/mountinfo", encoding="utf-8") as f:
        mounts = [line.split() for line in f]
    all_ok = True
    for fields in mounts:
        point = fields[4].encode().decode("unicode_escape")
        if point == keep:
            continue
        flags = MS_RDONLY | MS_REMOUNT | MS_BIND
        for opt in fields[5].split(","):
            flags |= LOCKED.get(opt, 0)
        if libc.mount(None, os.fsencode(point), None, flags, None) != 0:
            all_ok = False
    return all_ok

network, files = "socket-hook", "cwd"
try:
    libc = ctypes.CDLL(None, use_errno=True)
    keep = os.getcwd()
    if namespaces and libc.unshare(NEWUSER | NEWNS | NEWNET) == 0:
        network = "netns"
        files = "read-only" if read_only_except(libc, keep) else "cwd"
    elif namespaces and (libc.unshare(NEWUSER | NEWNET) == 0 or libc.unshare(NEWNET) == 0):
        network = "netns"
except (OSError, AttributeError):
    pass
if network != "netns":
    import socket
    class _NoNetworkSocket(socket.socket):
        def __init__(self, family=-1, type=-1, proto=-1, fileno=None):
            if family in (-1, socket.AF_INET, socket.AF_INET6) and fileno is None:
                raise PermissionError("network access is disabled in the sandbox")
            super().__init__(family, type, proto, fileno)
    socket.socket = _NoNetworkSocket
os.environ["INFILL_SANDBOX"] = network + " " + files
sys.argv = ["program.py"]
with open("program.py", encoding="utf-8") as f:
    source = f.read()
exec(compile(source, "program.py", "exec"), {"__name__": "__main__", "__builtins__": __builtins__})
"""


@dataclass(frozen=True)
class SandboxLimits:
    timeout_s: float = 10.0
    memory_bytes: int = 1 << 30
    # Caps every file the program writes, including its captured stdout/stderr.
    file_size_bytes: int = 16 << 20
    # How much of stdout/stderr is kept in the result.
    max_output_chars: int = 8192
    # False skips the namespaces (the socket hook and the working directory are all that is left); tests use
    # it to check the fallback that machines without user namespaces get.
    use_namespaces: bool = True
    # Generated programs get the standard library only (``-S``): no site-packages to import from, and
    # about a third less start-up time per program. True adds the interpreter's site-packages.
    site_packages: bool = False


@dataclass(frozen=True)
class ExecutionResult:
    passed: bool  # exited with status 0 within the timeout
    returncode: int | None  # None when killed for the timeout; negative = killed by that signal
    timed_out: bool
    stdout: str
    stderr: str
    elapsed_s: float


def _scrubbed_env(work_dir: Path) -> dict[str, str]:
    # Nothing of the parent's environment leaks in (tokens, proxies, INFILL_*, PYTHON*).
    return {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "HOME": str(work_dir),
        "TMPDIR": str(work_dir),
        "LANG": "C.UTF-8",
        "LC_ALL": "C.UTF-8",
        "PYTHONDONTWRITEBYTECODE": "1",
    }


def _read_head(path: Path, limit: int) -> str:
    with path.open("rb") as f:
        data = f.read(limit * 4)
    return data.decode("utf-8", errors="replace")[:limit]


def _kill_group(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)


def run_program(source: str, limits: SandboxLimits | None = None) -> ExecutionResult:
    """Execute ``source`` as a Python program in a fresh sandboxed interpreter and report how it ended."""
    limits = limits or SandboxLimits()
    with tempfile.TemporaryDirectory(prefix="infill-eval-", ignore_cleanup_errors=True) as tmp:
        work_dir = Path(tmp) / "work"
        work_dir.mkdir()
        (work_dir / PROGRAM_FILE).write_text(source, encoding="utf-8")
        out_path, err_path = Path(tmp) / "stdout", Path(tmp) / "stderr"
        cpu_s = int(limits.timeout_s) + 1
        flags = ["-I"] if limits.site_packages else ["-I", "-S"]
        argv = [sys.executable, *flags, "-c", _LAUNCHER]
        argv += [
            str(limits.memory_bytes),
            str(limits.file_size_bytes),
            str(cpu_s),
            str(int(limits.use_namespaces)),
        ]
        start = time.monotonic()
        with out_path.open("wb") as out, err_path.open("wb") as err:
            proc = subprocess.Popen(
                argv,
                cwd=work_dir,
                env=_scrubbed_env(work_dir),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                start_new_session=True,  # own process group: the timeout kills children too
                close_fds=True,
            )
            timed_out = False
            try:
                returncode: int | None = proc.wait(timeout=limits.timeout_s)
            except subprocess.TimeoutExpired:
                timed_out, returncode = True, None
                _kill_group(proc.pid)
                proc.wait()
            # Stray background children of a finished program die with it.
            _kill_group(proc.pid)
        elapsed = time.monotonic() - start
        result = ExecutionResult(
            passed=returncode == 0 and not timed_out,
            returncode=returncode,
            timed_out=timed_out,
            stdout=_read_head(out_path, limits.max_output_chars),
            stderr=_read_head(err_path, limits.max_output_chars),
            elapsed_s=elapsed,
        )
    return result


def run_programs(
    sources: Sequence[str],
    limits: SandboxLimits | None = None,
    workers: int = 2,
    progress: Callable[[int], None] | None = None,
) -> list[ExecutionResult]:
    """Run every program (in parallel, ``workers`` at a time); results in input order."""
    limits = limits or SandboxLimits()
    results: list[ExecutionResult | None] = [None] * len(sources)
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        futures = {pool.submit(run_program, src, limits): i for i, src in enumerate(sources)}
        for done, (future, index) in enumerate(futures.items(), start=1):
            results[index] = future.result()
            if progress is not None:
                progress(done)
    assert all(r is not None for r in results)
    return [r for r in results if r is not None]


@functools.cache
def isolation(use_namespaces: bool = True) -> str:
    """How this machine confines sandboxed programs, e.g. "netns read-only" (network, then files)."""
    limits = SandboxLimits(use_namespaces=use_namespaces)
    probe = run_program("import os\nprint(os.environ['INFILL_SANDBOX'])\n", limits)
    return probe.stdout.strip() or f"unknown ({probe.stderr.strip()[-200:]})"
