#!/usr/bin/env bash
# Installs code-server (a real VS Code, served to a browser) from the npm registry into DIR, with nothing
# downloaded from anywhere else:
#   - code-server's postinstall would fetch ripgrep from GitHub, so the package is installed with
#     --ignore-scripts and the postinstall's steps are done here by hand, with Debian's /usr/bin/rg;
#   - native modules are built with npm's own node-gyp against the system Node headers (--nodedir=/usr), and
#     argon2 from source (no prebuilt download);
#   - node-pty's own install step is never run: its `node-gyp configure -f compile_commands_json` deletes the
#     module just built.
# 4.99.4 (VS Code 1.99.3) is the newest code-server that runs on Node 20; later ones need Node 22+.
# Needs: Node 20 with headers in /usr/include/node, a C++ toolchain, python3, libkrb5-dev, ripgrep.
# Idempotent: a finished install leaves DIR/.installed-<version> and is reused. Takes a few minutes (native
# builds); prints the path of the code-server executable last.
#   bash install-code-server.sh DIR
set -euo pipefail

DIR=${1:?usage: install-code-server.sh DIR}
VERSION=4.99.4
STAMP="$DIR/.installed-$VERSION"
CS="$DIR/node_modules/code-server"
BIN="$DIR/node_modules/.bin/code-server"

if [[ -f "$STAMP" && -x "$BIN" ]]; then
  echo "$BIN"
  exit 0
fi

fail() {
  echo "install-code-server: $*" >&2
  exit 1
}
[[ "$(node -p 'process.versions.node.split(".")[0]')" == 20 ]] || fail "code-server $VERSION needs Node 20 (found $(node --version))"
[[ -f /usr/include/node/node_api.h ]] || fail "no Node headers in /usr/include/node (Debian: apt-get install nodejs libnode-dev)"
[[ -x /usr/bin/rg ]] || fail "no /usr/bin/rg (Debian: apt-get install ripgrep)"
[[ -f /usr/include/krb5.h || -f /usr/include/krb5/krb5.h ]] || fail "no Kerberos headers (Debian: apt-get install libkrb5-dev)"
command -v g++ >/dev/null || fail "no C++ compiler (Debian: apt-get install build-essential)"

quiet_npm=(--no-audit --no-fund --loglevel=error)
rm -rf "$DIR"
mkdir -p "$DIR"
echo "installing code-server $VERSION into $DIR (npm, then native builds; a few minutes)" >&2
npm install --prefix "$DIR" --ignore-scripts "${quiet_npm[@]}" "code-server@$VERSION" >&2

NODE_GYP="$(dirname "$(readlink -f "$(command -v npm)")")/../node_modules/node-gyp/bin/node-gyp.js"
[[ -f "$NODE_GYP" ]] || fail "npm's node-gyp not found at $NODE_GYP"
export npm_config_nodedir=/usr
# argon2 (password auth) is loaded at start even with --auth none.
(cd "$DIR" && npm_config_build_from_source=true npm rebuild argon2 "${quiet_npm[@]}") >&2
(cd "$CS/lib/vscode" && npm install --omit=dev --ignore-scripts "${quiet_npm[@]}") >&2
for module in node-pty @vscode/spdlog native-watchdog @vscode/deviceid kerberos; do
  log="$DIR/node-gyp-${module//\//_}.log"
  (cd "$CS/lib/vscode/node_modules/$module" && node "$NODE_GYP" rebuild --nodedir=/usr -j 2 >"$log" 2>&1) ||
    { tail -20 "$log" >&2; fail "building $module failed (log: $log)"; }
done
mkdir -p "$CS/lib/vscode/node_modules/@vscode/ripgrep/bin"
cp /usr/bin/rg "$CS/lib/vscode/node_modules/@vscode/ripgrep/bin/rg"
# What code-server's postinstall does besides the installs above.
ln -sfn node_modules "$CS/lib/vscode/node_modules.asar"
ln -sfn code-linux.sh "$CS/lib/vscode/bin/remote-cli/code-server"
ln -sfn browser-linux.sh "$CS/lib/vscode/bin/helpers/browser.sh"
(cd "$CS/lib/vscode/extensions" && npm install --omit=dev "${quiet_npm[@]}") >&2
# (--version still writes a default config file: keep it out of $HOME.)
XDG_CONFIG_HOME="$DIR/.config" "$BIN" --version >&2
touch "$STAMP"
echo "$BIN"
