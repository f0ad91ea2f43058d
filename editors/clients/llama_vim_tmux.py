"""llama.vim (ggml-org's own plugin, unchanged) in a REAL Neovim under tmux against `infill serve --http`.

As a user meets it: llama.vim's only setting is its endpoint; typing `total = ` in insert mode shows the
server's answer as ghost text, <Tab> inserts it; on an empty line in a function body the suggestion comes
with its indentation (llama.vim sends such a line as "" with n_indent 0) and <Tab> writes it indented. The
file is written with :w and read back.

    python llama_vim_tmux.py --nvim NVIM --llama-vim DIR --model X_MODEL_DIR --python PYTHON --artifacts DIR

Prints one line per step and "llama-vim: N passed, M failed" last; exits 1 when a step failed.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "editors" / "nvim" / "tests"))
from tmux_e2e import Tmux, wait_for  # noqa: E402  (one tmux driver for both Neovim tests)

READY_S = 240.0  # Python, torch import and model load on a busy 2-core machine
ANSWER_S = 90.0

INIT_VIM = """
set nocompatible
set runtimepath^={llama_vim}
set noswapfile {no_history} laststatus=2 cmdheight=2 number noautoindent nosmartindent backspace=indent,eol,start
filetype indent off
let g:llama_config = {{ 'endpoint_fim': 'http://127.0.0.1:{port}/infill', 'show_info': 0 }}
"""


class Server:
    """`infill serve --http --port 0`; the port comes from uvicorn's startup line."""

    def __init__(self, python: str, model: str, log: Path) -> None:
        argv = [python, "-m", "infill_cli.main", "serve", "--http", "--port", "0", "--model", model]
        env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1", "INFILL_LOG_LEVEL": "DEBUG"}
        self.process = subprocess.Popen(
            argv + ["--device", "cpu"], stderr=subprocess.PIPE, text=True, env=env
        )
        self.port = 0
        self.ready = threading.Event()
        self.log = log.open("w")
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            self.log.write(line)
            self.log.flush()
            found = re.search(r"running on http://[\d.]+:(\d+)", line)
            if found:
                self.port = int(found.group(1))
            if "model ready" in line:
                self.ready.set()

    def close(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=30)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--nvim", required=True, help="the editor: Neovim, or Vim 9 with --vim")
    parser.add_argument("--vim", action="store_true", help="--nvim names a Vim 9, not a Neovim")
    parser.add_argument("--llama-vim", required=True, help="llama.vim's directory")
    parser.add_argument("--model", required=True)
    parser.add_argument("--python", default=sys.executable)
    parser.add_argument("--artifacts", type=Path, required=True)
    args = parser.parse_args(argv)
    args.artifacts.mkdir(parents=True, exist_ok=True)
    passed = failed = 0
    work = Path(tempfile.mkdtemp(prefix="llama-vim-"))
    server = Server(args.python, args.model, args.artifacts / "llama-vim-server.log")
    tmux = Tmux(f"llama-vim-{os.getpid()}")
    editor = "vim" if args.vim else "nvim"
    source = work / "scale.py"
    source.write_text("def scale(values):\n    total = 0\n    return total\n\n\ndef shift(values):\n")

    def step(name: str, check: object) -> None:
        nonlocal passed, failed
        try:
            check() if callable(check) else None
            passed += 1
            print(f"ok    {name}", flush=True)
        except AssertionError as error:
            failed += 1
            print(f"FAIL  {name}: {error}", flush=True)
            (args.artifacts / "llama-vim-last-screen.txt").write_text(tmux.screen())

    def server_ready() -> None:
        assert server.ready.wait(READY_S), "the server never logged 'model ready'"

    def start_editor() -> None:
        init = work / "init.vim"
        no_history = "viminfofile=NONE" if args.vim else "shadafile=NONE"
        init.write_text(INIT_VIM.format(llama_vim=args.llama_vim, port=server.port, no_history=no_history))
        tmux.start([args.nvim, "-u", str(init), str(source)], work, dict(os.environ))
        if args.vim:  # llama.vim warns that it wants Vim 9.1 (Debian has 9.0) and Vim asks to press Enter
            wait_for("llama.vim's version warning", lambda: "Press ENTER" in tmux.screen(), 30, tmux.screen)
            tmux.keys("Enter")
        wait_for("the editor", lambda: "scale.py" in tmux.screen(), 30, tmux.screen)

    def ghost_text_then_tab() -> None:
        tmux.command("2", escape=False)
        tmux.keys("A")  # end of `    total = 0`: erase the 0 and type as a user would
        tmux.keys("BSpace")
        wait_for(
            "ghost text after `total = `",
            lambda: re.search(r"total = x+", tmux.screen()),
            ANSWER_S,
            tmux.screen,
        )
        (args.artifacts / "llama-vim-ghost-text.txt").write_text(tmux.screen())
        tmux.keys("Tab")
        tmux.command("w")
        wait_for(
            "the file to gain the text",
            lambda: re.search(r"\n    total = x+\n", source.read_text()),
            30,
            tmux.screen,
        )

    def indented_on_an_empty_line() -> None:
        # Not after an opener (there the engine indents the block itself): a new line inside the body.
        tmux.command("2")
        tmux.keys("o")  # at column 0: no autoindent
        shown = lambda: re.search(r"^ *3 {5}x+", tmux.screen(), re.M)  # noqa: E731
        wait_for("an indented suggestion", shown, ANSWER_S, tmux.screen)
        tmux.keys("Tab")
        tmux.command("w")
        written = lambda: re.search(r"    total = x+\n    x+\n    return total", source.read_text())  # noqa: E731
        wait_for("an indented line in the file", written, 30, tmux.screen)

    try:
        step("server: infill serve --http loads the model", server_ready)
        step(f"{editor}: llama.vim starts with only its endpoint set", start_editor)
        step("llama.vim: ghost text after `total = `, Tab inserts it, :w writes it", ghost_text_then_tab)
        step("llama.vim: a new line in a body gets an indented suggestion", indented_on_an_empty_line)
    finally:
        (args.artifacts / "llama-vim-final-screen.txt").write_text(tmux.screen() if server.port else "")
        tmux.kill()
        server.close()
    print(f"llama-vim ({editor}): {passed} passed, {failed} failed")
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
