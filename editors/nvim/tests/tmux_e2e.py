"""The plugin in a REAL Neovim in a terminal: tmux runs nvim, send-keys types, capture-pane reads the screen.

Flow, as a user meets it: the server starts and reports ready (in the statusline); typing `value = ` in
insert mode shows ghost text; <Tab> inserts it (checked in the file written with :w); :InfillFillHoles on a
hole that no candidate can fill validly opens a preview that says so, `a` refuses to apply it, `A` applies it
anyway; then, with the edit model and next-edit suggestions on, a changed line gets a next-edit preview (old
text struck, new text beside it) that <Tab> applies, and :InfillEdit highlights the token the model doubted.
Neovim 0.12+ renders suggestions with vim.lsp.inline_completion, older ones with the plugin's own
ghost text. The screen is saved as text and, through Debian's Chromium, as PNG screenshots.

    python tests/tmux_e2e.py --nvim NVIM --model X_MODEL_DIR --edit-model EDIT_MODEL_DIR --python PYTHON \
        --artifacts DIR

Prints one line per step and "nvim-tmux: N passed, M failed" last; exits 1 when a step failed.
"""

from __future__ import annotations

import argparse
import html
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

PLUGIN = Path(__file__).resolve().parent.parent
REPO = PLUGIN.parent.parent
COLUMNS, LINES = 92, 22
READY_S = 240.0  # Python, torch import and model load on a busy 2-core machine
ANSWER_S = 90.0

INIT_LUA = """
vim.opt.runtimepath:prepend({plugin})
vim.opt.swapfile = false
vim.opt.shadafile = "NONE"
vim.opt.laststatus = 2
vim.opt.cmdheight = 2
vim.opt.number = true
vim.opt.termguicolors = true
vim.cmd.colorscheme("default")
vim.opt.statusline = " %f%=infill: %{{v:lua.require'infill'.status()}} "
-- As a statusline plugin would: redraw when the server's state changes.
vim.api.nvim_create_autocmd("User", {{ pattern = "InfillStatus", command = "redrawstatus" }})
require("infill").setup({{
  cmd = {{ {python}, "-m", "infill_cli.main", "serve", "--model", {model}, "--device", "cpu",
          "--log-file", {log_file} }},
  cmd_env = {{ PYTHONPATH = {pythonpath} }},
  filetypes = {{ "python", "text" }},
  settings = {{ maxTokens = 8 }},
}})
-- Which renderer shows the suggestions: vim.lsp.inline_completion (0.12+) or the plugin's own extmarks.
vim.fn.writefile({{ require("infill.suggest").uses_native() and "native" or "own" }}, {renderer_file})
"""


def lua_string(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


class Tmux:
    """One tmux server on its own socket, running one Neovim in a COLUMNS x LINES window."""

    def __init__(self, socket: str) -> None:
        self.socket = socket

    def run(self, *args: str) -> str:
        result = subprocess.run(
            ["tmux", "-L", self.socket, *args], capture_output=True, text=True, check=True, timeout=30
        )
        return result.stdout

    def start(self, command: list[str], cwd: Path, env: dict[str, str]) -> None:
        shell_command = " ".join(_quote(part) for part in command)
        # A Neovim that exits at once (a broken init) leaves its last screen to read.
        config = cwd / "tmux.conf"
        config.write_text("set -g remain-on-exit on\nset -g status off\n")
        subprocess.run(
            [
                *("tmux", "-L", self.socket, "-f", str(config), "new-session", "-d", "-s", "e2e"),
                *("-x", str(COLUMNS), "-y", str(LINES), "-c", str(cwd), shell_command),
            ],
            check=True,
            env=env,
            timeout=30,
        )

    def keys(self, *keys: str) -> None:
        """tmux key names (Enter, Escape, Tab, C-s...)."""
        self.run("send-keys", "-t", "e2e", *keys)

    def type(self, text: str) -> None:
        self.run("send-keys", "-t", "e2e", "-l", text)

    def command(self, line: str, escape: bool = True) -> None:
        """An Ex command; `escape` leaves insert mode first (not in a rewrite preview: <Esc> discards it)."""
        if escape:
            self.keys("Escape")
        self.type(":" + line)
        self.keys("Enter")

    def screen(self, colors: bool = False) -> str:
        return self.run("capture-pane", "-p", "-t", "e2e", *(["-e"] if colors else []))

    def kill(self) -> None:
        subprocess.run(["tmux", "-L", self.socket, "kill-server"], capture_output=True, timeout=30)


def _quote(part: str) -> str:
    return "'" + part.replace("'", "'\\''") + "'"


def wait_for(what: str, check: Callable[[], object], timeout_s: float, screen: Callable[[], str]) -> object:
    end = time.monotonic() + timeout_s
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > end:
            raise AssertionError(f"timed out after {timeout_s:.0f} s waiting for {what}; screen:\n{screen()}")
        time.sleep(0.2)


# ------------------------------------------------------------------------------------ screenshots

_BASIC = [
    "#000000", "#cd0000", "#00cd00", "#cdcd00", "#0000ee", "#cd00cd", "#00cdcd", "#e5e5e5",
    "#7f7f7f", "#ff0000", "#00ff00", "#ffff00", "#5c5cff", "#ff00ff", "#00ffff", "#ffffff",
]  # fmt: skip


# SGR codes that switch an attribute on or off.
_ATTRIBUTES = {
    1: ("bold", True),
    3: ("italic", True),
    7: ("reverse", True),
    22: ("bold", False),
    23: ("italic", False),
    27: ("reverse", False),
    4: ("underline", True),
    24: ("underline", False),
    9: ("strike", True),
    29: ("strike", False),
}


def _xterm256(n: int) -> str:
    if n < 16:
        return _BASIC[n]
    if n < 232:
        n -= 16
        steps = [0, 95, 135, 175, 215, 255]
        return f"#{steps[n // 36]:02x}{steps[n // 6 % 6]:02x}{steps[n % 6]:02x}"
    grey = 8 + 10 * (n - 232)
    return f"#{grey:02x}{grey:02x}{grey:02x}"


def _sgr_colour(codes: list[int], i: int) -> tuple[str | None, int]:
    """The colour of a 38/48 sequence starting at codes[i] and how many codes it used."""
    if i + 1 < len(codes) and codes[i + 1] == 5 and i + 2 < len(codes):
        return _xterm256(codes[i + 2]), 3
    if i + 1 < len(codes) and codes[i + 1] == 2 and i + 4 < len(codes):
        return "#{:02x}{:02x}{:02x}".format(*codes[i + 2 : i + 5]), 5
    return None, 1


def ansi_to_html(screen: str, foreground: str = "#e0e2ea", background: str = "#14161b") -> str:
    """The text of `capture-pane -e` (SGR colour sequences) as an HTML page of coloured spans."""
    out: list[str] = []
    fg: str | None = None
    bg: str | None = None
    attrs = dict.fromkeys(("bold", "italic", "reverse", "underline", "strike"), False)
    # (Sub-parameters after ":" are dropped: "4:3", an undercurl, is drawn as an underline.)
    for piece in re.split(r"(\x1b\[[0-9;:]*m)", screen):
        match = re.fullmatch(r"\x1b\[([0-9;:]*)m", piece)
        if match is None:
            if piece:
                reverse = attrs["reverse"]
                colour, back = (bg or background, fg or foreground) if reverse else (fg, bg)
                style = (f"color:{colour};" if colour else "") + (f"background:{back};" if back else "")
                style += "font-weight:bold;" if attrs["bold"] else ""
                style += "font-style:italic;" if attrs["italic"] else ""
                decoration = "underline " if attrs["underline"] else ""
                decoration += "line-through" if attrs["strike"] else ""
                style += f"text-decoration:{decoration};" if decoration else ""
                out.append(f'<span style="{style}">{html.escape(piece)}</span>')
            continue
        # "4:0" turns the underline off like 24.
        codes = [24 if code == "4:0" else int(code.split(":")[0] or 0) for code in match.group(1).split(";")]
        i = 0
        while i < len(codes):
            code = codes[i]
            used = 1
            if code == 0:
                fg = bg = None
                attrs = dict.fromkeys(attrs, False)
            elif code in _ATTRIBUTES:
                name, on = _ATTRIBUTES[code]
                attrs[name] = on
            elif 30 <= code <= 37 or 90 <= code <= 97:
                fg = _BASIC[code - 30 if code < 90 else code - 82]
            elif 40 <= code <= 47 or 100 <= code <= 107:
                bg = _BASIC[code - 40 if code < 100 else code - 92]
            elif code in (38, 48, 58):
                colour, used = _sgr_colour(codes, i)
                if code != 58:  # (58: the underline's colour, not drawn)
                    fg, bg = (colour, bg) if code == 38 else (fg, colour)
            elif code == 39:
                fg = None
            elif code == 49:
                bg = None
            i += used
    return (
        "<!doctype html><meta charset=utf-8><body style='margin:0;background:"
        + background
        + "'><pre style='margin:0;padding:8px;font:15px/19px \"Liberation Mono\",monospace;color:"
        + foreground
        + "'>"
        + "".join(out)
        + "</pre></body>"
    )


def screenshot(screen: str, png: Path, chromium: str) -> None:
    """Renders a captured screen to PNG with headless Chromium (a local file, no network)."""
    page = png.with_suffix(".html")
    page.write_text(ansi_to_html(screen), encoding="utf-8")
    width, height = COLUMNS * 9 + 16, LINES * 19 + 16
    with tempfile.TemporaryDirectory(prefix="infill-chromium-") as profile:
        subprocess.run(
            [
                *(chromium, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars"),
                *("--no-first-run", "--disable-background-networking", "--no-proxy-server"),
                *(f"--user-data-dir={profile}", f"--window-size={width},{height}", f"--screenshot={png}"),
                page.as_uri(),
            ],
            capture_output=True,
            check=True,
            timeout=120,
            env={**os.environ, "HOME": profile, "XDG_CONFIG_HOME": profile, "XDG_CACHE_HOME": profile},
        )
    page.unlink()


# ------------------------------------------------------------------------------------------ steps


class Session:
    def __init__(self, args: argparse.Namespace, work: Path, tmux: Tmux) -> None:
        self.args = args
        self.work = work
        self.tmux = tmux
        self.artifacts: Path = args.artifacts

    def shot(self, name: str) -> None:
        screen = self.tmux.screen(colors=True)
        (self.artifacts / f"{name}.txt").write_text(self.tmux.screen(), encoding="utf-8")
        if self.args.chromium:
            screenshot(screen, self.artifacts / f"{name}.png", self.args.chromium)

    def wait_screen(self, what: str, pattern: str, timeout_s: float) -> str:
        found = wait_for(
            what, lambda: re.search(pattern, self.tmux.screen(), re.MULTILINE), timeout_s, self.tmux.screen
        )
        assert isinstance(found, re.Match)
        return found.group(0)

    def write_until(self, name: str, pattern: str, command: str = "w") -> str:
        """Writes the buffer (`command`) until the file matches: a key sent through tmux lands when Neovim
        gets to it, so one :w right after it may write the text from before (seen on a busy machine)."""
        path = self.work / name

        def written() -> str | None:
            self.tmux.command(command, escape=command == "w")
            text = path.read_text(encoding="utf-8")
            return text if re.search(pattern, text) else None

        found = wait_for(f"{name} written to match {pattern!r}", written, ANSWER_S, path.read_text)
        assert isinstance(found, str)
        return found

    def wait_file(self, name: str, pattern: str) -> str:
        path = self.work / name

        def content() -> str | None:
            text = path.read_text(encoding="utf-8")
            return text if re.search(pattern, text) else None

        found = wait_for(f"{name} to match {pattern!r}", content, 10.0, path.read_text)
        assert isinstance(found, str)
        return found


def step_ready(s: Session) -> None:
    s.wait_screen("infill: ready in the statusline", r"infill: ready", READY_S)
    renderer = s.work / "renderer.txt"
    wait_for("the renderer name", renderer.exists, 10.0, s.tmux.screen)
    kind = renderer.read_text().strip()
    print(f"     ghost text from: {kind} (native: vim.lsp.inline_completion; own: the plugin's extmarks)")


def step_ghost_text(s: Session) -> None:
    s.tmux.keys("Escape", "G")
    s.tmux.keys("A")
    s.tmux.type("value = ")
    shown = s.wait_screen("ghost text after `value = `", r"value = x{4,}", ANSWER_S)
    time.sleep(0.3)
    s.shot("nvim-ghost-text")
    ghost = shown.removeprefix("value = ")
    assert (s.work / "ghost.py").read_text() == "import os\n\n", "the file changed before accepting"
    s.tmux.keys("Tab")
    text = s.write_until("ghost.py", r"value = x+\n")
    # ghost.py is "import os" and an empty line; `G` `A` typed on the empty one.
    assert text == f"import os\nvalue = {ghost}\n", f"Tab inserted something else: {text!r}"


def step_unchecked_fill(s: Session) -> None:
    s.tmux.command("edit holes.py")
    s.wait_screen("holes.py open", r"value = 1 <\|fill\|>", 10.0)
    s.tmux.command("InfillFillHoles")
    warning = r"WARNING: the fill at line 1 did not pass the syntax check"
    s.wait_screen("the preview's warning", warning, ANSWER_S)
    s.wait_screen("the title", r"NOT syntax-checked", 1.0)
    s.shot("nvim-unchecked-fill-warning")
    s.tmux.keys("a")
    s.wait_screen("the refusal", r"not applied: the fill at line 1 did not pass", 10.0)
    s.tmux.command("wall", escape=False)
    time.sleep(0.5)
    text = (s.work / "holes.py").read_text()
    assert text == "value = 1 <|fill|>\n", f"`a` applied an unchecked fill: {text!r}"
    s.tmux.keys("A")
    s.write_until("holes.py", r"^value = 1 x+\n$", "wall")


# The line the edit model is sure of (tests/tiny_models.py build_edit_model).
SURE_LINE = "    return a + b\n"
# InfillLowConfidence's background (lua/infill/rewrite.lua) as an SGR sequence in `capture-pane -e`.
LOW_CONFIDENCE_BG = "48;2;74;58;16"


def has_strikethrough(screen: str) -> bool:
    """Whether an SGR sequence of `capture-pane -e` turns strikethrough (9) on; the numbers inside a colour
    (38/48;5;N or 38/48;2;R;G;B) are skipped."""
    for sequence in re.findall(r"\x1b\[([0-9;]*)m", screen):
        codes = [int(code) for code in sequence.split(";") if code]
        i = 0
        while i < len(codes):
            if codes[i] in (38, 48, 58) and i + 1 < len(codes):
                i += 3 if codes[i + 1] == 5 else 5
                continue
            if codes[i] == 9:
                return True
            i += 1
    return False


def model_loads(s: Session) -> int:
    log = s.work / "serve.log"
    return log.read_text(encoding="utf-8").count("model loaded in") if log.exists() else 0


def step_next_edit(s: Session) -> None:
    loads = model_loads(s)
    settings = "require('infill.config').options.settings"
    s.tmux.command(
        f"lua {settings}.model = {lua_string(str(s.args.edit_model))}; {settings}.nextEdit = true; "
        "require('infill.client').push_settings()"
    )
    wait_for("the edit model to load", lambda: model_loads(s) > loads or None, READY_S, s.tmux.screen)
    s.tmux.command("edit nextedit.txt")
    s.wait_screen("nextedit.txt open", r"return a \+ x", 10.0)
    # The user changes " b" to " x" on line 2: the model doubts it and suggests " b" back, previewed as
    # "x" struck through with "b" after it.
    s.tmux.keys("2", "G", "A")
    s.tmux.keys("BSpace")
    s.tmux.type("x")
    s.wait_screen("the next-edit preview", r"^\s*2 +return a \+ xb\s*$", ANSWER_S)
    assert has_strikethrough(s.tmux.screen(colors=True)), "nothing on the screen is struck through"
    time.sleep(0.3)
    s.shot("nvim-next-edit")
    s.tmux.keys("Tab")
    # Wait for the applied line on screen (the preview gone), then for the written file: on a busy machine a
    # fixed pause before :w wrote the file before the edit landed.
    s.wait_screen("line 2 applied", r"^\s*2 +return a \+ b\s*$", ANSWER_S)
    s.tmux.command("w")
    expected = SURE_LINE * 6 + SURE_LINE.replace(" b", " x")
    text = s.wait_file("nextedit.txt", rf"\A{re.escape(expected)}\Z")
    assert text.splitlines(keepends=True)[1] == SURE_LINE, f"Tab applied something else: {text!r}"


def step_low_confidence(s: Session) -> None:
    # Line 7 holds a planted " x": :InfillEdit changes it to " b" and highlights the doubted token.
    s.tmux.command("7InfillEdit")
    s.wait_screen("the edit preview", r"\+    return a \+ b", ANSWER_S)
    s.tmux.keys("a")
    s.wait_screen("line 7 applied", r"^\s*7 +return a \+ b\s*$", ANSWER_S)
    s.tmux.command("w")
    text = s.wait_file("nextedit.txt", rf"\A{re.escape(SURE_LINE * 7)}\Z")
    assert text == SURE_LINE * 7, f"the edit changed something else: {text!r}"
    wait_for(
        "a low-confidence highlight",
        lambda: LOW_CONFIDENCE_BG in s.tmux.screen(colors=True) or None,
        10.0,
        lambda: s.tmux.screen(colors=True),
    )
    s.shot("nvim-low-confidence")


STEPS: list[tuple[str, Callable[[Session], None]]] = [
    ("the server starts from vim.lsp and reports ready in the statusline", step_ready),
    ("typing `value = ` shows ghost text; <Tab> inserts it", step_ghost_text),
    (":InfillFillHoles flags an unchecked fill; `a` refuses it, `A` applies it", step_unchecked_fill),
    ("a change gets a next-edit preview; <Tab> applies it", step_next_edit),
    (":InfillEdit highlights the token the model doubted", step_low_confidence),
]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--nvim", required=True, help="the nvim executable")
    parser.add_argument("--model", required=True, help="a model that fills 'xxxx' (tests/tiny_models.py)")
    parser.add_argument("--edit-model", required=True, help="tests/tiny_models.py build_edit_model's model")
    parser.add_argument("--python", default=sys.executable, help="Python that runs `infill serve`")
    parser.add_argument("--artifacts", type=Path, default=PLUGIN / ".artifacts", help="screens go here")
    parser.add_argument("--chromium", default=shutil.which("chromium"), help="renders screenshots (optional)")
    args = parser.parse_args(argv)
    nvim = shutil.which(args.nvim)
    if nvim is None:
        parser.error(f"no nvim at {args.nvim}")
    args.artifacts.mkdir(parents=True, exist_ok=True)
    for old in args.artifacts.iterdir():
        old.unlink()

    passed = failed = 0
    with tempfile.TemporaryDirectory(prefix="infill-nvim-e2e-") as tmp:
        work = Path(tmp)
        (work / "ghost.py").write_text("import os\n\n")
        (work / "holes.py").write_text("value = 1 <|fill|>\n")
        (work / "nextedit.txt").write_text(SURE_LINE * 6 + SURE_LINE.replace(" b", " x"))
        (work / "init.lua").write_text(
            INIT_LUA.format(
                plugin=lua_string(str(PLUGIN)),
                python=lua_string(args.python),
                model=lua_string(args.model),
                pythonpath=lua_string(str(REPO)),
                renderer_file=lua_string(str(work / "renderer.txt")),
                log_file=lua_string(str(work / "serve.log")),
            )
        )
        env = {**os.environ, "TERM": "xterm-256color", "XDG_STATE_HOME": tmp, "XDG_DATA_HOME": tmp}
        tmux = Tmux(f"infill-e2e-{os.getpid()}")
        session = Session(args, work, tmux)
        try:
            tmux.start([str(Path(nvim).resolve()), "-u", str(work / "init.lua"), "ghost.py"], work, env)
            for name, run in STEPS:
                started = time.monotonic()
                if failed:
                    print(f"skip {name} (an earlier step failed)")
                    continue
                try:
                    run(session)
                except Exception as error:  # a failed step: report it, keep the screen, skip the rest
                    failed += 1
                    print(f"FAIL {name}\n{error}")
                    try:
                        session.shot("nvim-fail")
                    except (OSError, subprocess.SubprocessError) as shot_error:
                        print(f"     (no screenshot: {shot_error})")
                else:
                    passed += 1
                    print(f"ok   {name} ({time.monotonic() - started:.1f} s)")
                sys.stdout.flush()
        finally:
            tmux.kill()
            if (work / "serve.log").exists():
                shutil.copy(work / "serve.log", args.artifacts / "serve.log")
    print(f"nvim-tmux: {passed} passed, {failed} failed")
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
