// The extension in a REAL VS Code: code-server (VS Code 1.99.3 served to a browser) with the built .vsix
// installed, driven by Debian's Chromium through puppeteer-core (which never downloads a browser). It starts
// the server the way a user does (infill.serverCommand = the venv's `infill`, then infill.pythonPath), types in
// a Python file until ghost text appears, accepts it with Tab and checks the file; then runs "Infill: Fill
// holes" on a hole no candidate can fill validly and checks the unchecked fill is applied only after the
// warning is confirmed. code-server binds 127.0.0.1 only and the browser resolves no other host.
// Screenshots and logs go to INFILL_E2E_ARTIFACTS. Run by scripts/test_editors.sh, which provides:
//   INFILL_E2E_CODE_SERVER  the code-server executable (test/e2e/install-code-server.sh)
//   INFILL_E2E_VSIX         the packaged extension
//   INFILL_TEST_X_MODEL     a model that fills "xxxx" (tests/tiny_models.py build_x_model)
//   INFILL_PYTHON           the project's Python (a virtualenv with infill installed)
import { strict as assert } from "node:assert";
import { ChildProcess, execFileSync, spawn } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, openSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import * as os from "node:os";
import * as path from "node:path";
import { after, before, test } from "node:test";

import puppeteer, { Browser, KeyInput, Page } from "puppeteer-core";

import { python, REPO_ROOT } from "../helpers";

const STATUS_ID = "infill.infill.infill.status"; // <publisher>.<name>.<createStatusBarItem id>
const READY_MS = 240_000; // first start: code-server, extension host, Python, torch import, model load
const GHOST_MS = 120_000;
const VIEWPORT = { width: 1000, height: 560 };
const X_FILL = /^x{4,}$/; // what the x model writes after `value = `
const editModel = required("INFILL_TEST_EDIT_MODEL");
const SURE_LINE = "    return a + b\n"; // the line the edit model is sure of (tests/tiny_models.py build_edit_model)

function required(name: string): string {
  const value = process.env[name];
  if (value === undefined || value === "") {
    throw new Error(`set ${name} (scripts/test_editors.sh does)`);
  }
  return value;
}

const codeServer = required("INFILL_E2E_CODE_SERVER");
const vsix = required("INFILL_E2E_VSIX");
const model = required("INFILL_TEST_X_MODEL");
const chromium = process.env.CHROMIUM ?? "/usr/bin/chromium";
const artifacts = process.env.INFILL_E2E_ARTIFACTS ?? path.join(REPO_ROOT, "editors", "vscode", ".artifacts");

let work: string;
let userData: string;
let workspace: string;
let serverProcess: ChildProcess | undefined;
let browser: Browser | undefined;
let page: Page;
let url: string;
// The venv's interpreter and its `infill` entry point: what a user would point the settings at.
let venvPython: string;
let venvInfill: string;

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const t0 = Date.now();
const log = (message: string) => console.log(`# [e2e +${((Date.now() - t0) / 1000).toFixed(1)}s] ${message}`);

async function waitFor<T>(what: string, check: () => Promise<T | null | undefined>, timeoutMs: number): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value !== null && value !== undefined) {
      return value;
    }
    if (Date.now() > end) {
      throw new Error(`timed out after ${timeoutMs / 1000} s waiting for ${what}\n${serverLogTail()}`);
    }
    await sleep(250);
  }
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const probe = createServer();
    probe.once("error", reject);
    probe.listen(0, "127.0.0.1", () => {
      const address = probe.address();
      probe.close(() => (typeof address === "object" && address !== null ? resolve(address.port) : reject()));
    });
  });
}

/** The contents of code-server's log files with this name (all sessions, all extension hosts). */
function codeServerLogs(name: string): string {
  const logs = path.join(userData, "logs");
  if (!existsSync(logs)) {
    return "";
  }
  const found: string[] = [];
  const walk = (dir: string) => {
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      const full = path.join(dir, entry.name);
      if (entry.isDirectory()) {
        walk(full);
      } else if (entry.name === name) {
        found.push(readFileSync(full, "utf8"));
      }
    }
  };
  walk(logs);
  return found.join("\n");
}

/** The extension's "Infill" output channel: the server's stderr and the client's own errors. */
function outputChannel(): string {
  return codeServerLogs("Infill.log");
}

/** How many times a server has loaded its model, by the Infill output channel (each start logs one line). */
function modelLoads(): number {
  return (outputChannel().match(/model loaded in \d+ ms/g) ?? []).length;
}

/** Command lines of the `infill serve` processes code-server's extension host started (its process group). */
function infillServers(): string[] {
  const table = execFileSync("ps", ["-e", "-o", "pgid=,args="], { encoding: "utf8" });
  return table
    .split("\n")
    .map((line) => line.trim().match(/^(\d+)\s+(.*)$/))
    .filter((m): m is RegExpMatchArray => m !== null && Number(m[1]) === serverProcess?.pid)
    .map((m) => m[2])
    .filter((args) => /\bserve\b/.test(args) && /infill/.test(args) && !/code-server/.test(args));
}

function serverLogTail(): string {
  const lines = outputChannel().trim().split("\n");
  return `last lines of the Infill output channel:\n${lines.slice(-15).join("\n")}`;
}

function settingsWith(launch: Record<string, string | boolean | number>): Record<string, unknown> {
  return {
    ...launch,
    "infill.model": model,
    "infill.device": "cpu",
    "infill.maxTokens": 8,
    // Keep VS Code's own suggestions and chrome out of the way of the ghost text and the screenshots.
    "editor.quickSuggestions": { other: "off", comments: "off", strings: "off" },
    "editor.suggestOnTriggerCharacters": false,
    "editor.wordBasedSuggestions": "off",
    "editor.minimap.enabled": false,
    "editor.fontSize": 15,
    // Typed text stays as typed (the settings.json edit below).
    "editor.autoClosingBrackets": "never",
    "editor.autoClosingQuotes": "never",
    "editor.formatOnType": false,
    "workbench.startupEditor": "none",
    "workbench.tips.enabled": false,
    "workbench.enableExperiments": false,
    "workbench.colorTheme": "Default Dark Modern",
    "security.workspace.trust.enabled": false,
    "telemetry.telemetryLevel": "off",
    "extensions.autoCheckUpdates": false,
    "extensions.autoUpdate": false,
    "extensions.ignoreRecommendations": true,
    "update.mode": "none",
    "chat.commandCenter.enabled": false,
    "window.commandCenter": false,
    ...launch,
  };
}

function writeSettings(launch: Record<string, string>): void {
  writeFileSync(path.join(userData, "User", "settings.json"), JSON.stringify(settingsWith(launch), null, 2));
}

async function shot(name: string): Promise<void> {
  await page.screenshot({ path: path.join(artifacts, name) });
  log(`screenshot ${name}`);
}

type Status = { icon: string; label: string };

function status(): Promise<Status | null> {
  return page.evaluate((id) => {
    const element = document.getElementById(id);
    if (element === null) {
      return null;
    }
    const icon = element.querySelector(".codicon")?.className.replace(/.*codicon-/, "") ?? "";
    return { icon, label: element.getAttribute("aria-label") ?? "" };
  }, STATUS_ID);
}

/** Waits for the `ready` status; fails at once on `error` or `stopped` (a server that cannot start). */
function waitReady(): Promise<Status> {
  return waitFor(
    "the infill status `ready`",
    async () => {
      const s = await status();
      if (s !== null && (s.icon === "error" || s.icon === "debug-stop")) {
        throw new Error(`the infill status is ${s.icon} (${s.label})\n${serverLogTail()}`);
      }
      return s?.icon === "sparkle" ? s : null;
    },
    READY_MS,
  );
}

/** The active editor's lines as rendered, without ghost text (which VS Code renders inside the lines). */
function editorText(): Promise<string> {
  return page.evaluate(() =>
    [...document.querySelectorAll(".editor-instance .monaco-editor .view-line")]
      .map((line) => {
        const copy = line.cloneNode(true) as HTMLElement;
        copy.querySelectorAll("[class*=ghost-text]").forEach((ghost) => ghost.remove());
        return { top: parseFloat((line as HTMLElement).style.top), text: copy.textContent ?? "" };
      })
      .sort((a, b) => a.top - b.top)
      .map((line) => line.text.replace(/\u00a0/g, " "))
      .join("\n"),
  );
}

function ghostText(): Promise<string | null> {
  return page.evaluate(() => {
    const parts = [...document.querySelectorAll(".ghost-text-decoration, .ghost-text-decoration-preview")];
    const text = parts.map((part) => part.textContent ?? "").join("");
    return text.trim() === "" ? null : text;
  });
}

async function press(...keys: KeyInput[]): Promise<void> {
  const modifiers = keys.slice(0, -1);
  for (const key of modifiers) {
    await page.keyboard.down(key);
  }
  await page.keyboard.press(keys[keys.length - 1]);
  for (const key of modifiers.reverse()) {
    await page.keyboard.up(key);
  }
}

/** Opens a workspace file from the explorer and puts the cursor in it, once the editor shows its text. */
async function openFile(name: string): Promise<void> {
  const row = await page.waitForSelector(`.explorer-folders-view .monaco-list-row[aria-label^="${name}"]`, {
    visible: true,
    timeout: 30_000,
  });
  await row!.click();
  const firstLine = readFileSync(path.join(workspace, name), "utf8").split("\n")[0];
  await waitFor(`${name} in the editor`, async () => {
    const tab = await page.$(`.tab.active[aria-label^="${name}"]`);
    return tab !== null && (await editorText()).startsWith(firstLine) ? true : null;
  }, 30_000);
  const lines = await page.waitForSelector(".editor-instance .monaco-editor .view-lines", { visible: true });
  await lines!.click();
}

/** The texts of the notification toasts on screen (errors and infos the extension showed). */
function notifications(): Promise<string[]> {
  return page.evaluate(() =>
    [...document.querySelectorAll(".notifications-toasts .notification-list-item-message")].map(
      (toast) => toast.textContent ?? "",
    ),
  );
}

async function runCommand(title: string): Promise<void> {
  await press("F1");
  await page.waitForSelector(".quick-input-widget .quick-input-box input", { visible: true, timeout: 30_000 });
  await page.keyboard.type(title, { delay: 20 });
  await waitFor(`the command "${title}" in the palette`, async () => {
    const label = await page.evaluate(
      () => document.querySelector(".quick-input-list .monaco-list-row.focused")?.textContent ?? "",
    );
    return label.includes(title) ? true : null;
  }, 10_000);
  await press("Enter");
  await waitFor("the command palette to close", async () => {
    const open = await page.$(".quick-input-widget .quick-input-box input");
    return open === null || !(await open.isVisible()) ? true : null;
  }, 10_000);
  log(`ran "${title}"`);
}

/** The modal warning's message and buttons, once it is shown. */
function dialog(): Promise<{ message: string; buttons: string[] } | null> {
  return page.evaluate(() => {
    const box = document.querySelector(".monaco-dialog-box");
    if (box === null) {
      return null;
    }
    const message = (box.querySelector(".dialog-message-row") ?? box).textContent ?? "";
    const buttons = [...box.querySelectorAll(".dialog-buttons .monaco-button")].map((b) => b.textContent ?? "");
    return { message, buttons };
  });
}

before(async () => {
  mkdirSync(artifacts, { recursive: true });
  for (const name of readdirSync(artifacts)) {
    rmSync(path.join(artifacts, name), { force: true, recursive: true });
  }
  work = mkdtempSync(path.join(os.tmpdir(), "infill-vscode-e2e-"));
  userData = path.join(work, "user-data");
  workspace = path.join(work, "workspace");
  mkdirSync(path.join(userData, "User"), { recursive: true });
  mkdirSync(workspace);
  writeFileSync(path.join(workspace, "ghost.py"), "import os\n\n");
  writeFileSync(path.join(workspace, "holes.py"), "value = 1 <|fill|>\n");
  // Lines the edit model is sure of, and one with a planted " x" it doubts (far from line 2, the one changed).
  writeFileSync(path.join(workspace, "nextedit.txt"), SURE_LINE.repeat(6) + SURE_LINE.replace(" b", " x"));

  venvPython = execFileSync(python(), ["-c", "import sys; print(sys.executable)"], { encoding: "utf8" }).trim();
  venvInfill = path.join(path.dirname(venvPython), "infill");
  assert.ok(existsSync(venvInfill), `no ${venvInfill}: is the project installed in ${venvPython}'s environment?`);
  writeSettings({ "infill.serverCommand": venvInfill });

  // code-server keeps its config and logs under the XDG directories: keep them in the throwaway dir.
  const env = {
    ...process.env,
    XDG_CONFIG_HOME: path.join(work, "xdg", "config"),
    XDG_DATA_HOME: path.join(work, "xdg", "data"),
    XDG_CACHE_HOME: path.join(work, "xdg", "cache"),
    // The server imports infill from this checkout (the venv may hold another editable install).
    PYTHONPATH: REPO_ROOT + (process.env.PYTHONPATH ? `:${process.env.PYTHONPATH}` : ""),
  };
  const dirs = ["--user-data-dir", userData, "--extensions-dir", path.join(work, "extensions")];
  execFileSync(codeServer, ["--config", "/dev/null", ...dirs, "--install-extension", vsix], { env, stdio: "pipe" });

  const port = await freePort();
  const serverLog = openSync(path.join(artifacts, "code-server.log"), "w");
  serverProcess = spawn(
    codeServer,
    [
      "--config", "/dev/null", "--bind-addr", `127.0.0.1:${port}`, "--auth", "none", ...dirs,
      "--disable-telemetry", "--disable-update-check", "--disable-workspace-trust",
      "--disable-getting-started-override", "--locale", "en", workspace,
    ],
    // Its own process group: code-server, the extension host and `infill serve` are stopped together.
    { env, detached: true, stdio: ["ignore", serverLog, serverLog] },
  );
  url = `http://127.0.0.1:${port}/?folder=${encodeURIComponent(workspace)}`;
  await waitFor("code-server to answer", async () => {
    try {
      return (await fetch(`http://127.0.0.1:${port}/healthz`)).ok ? true : null;
    } catch {
      return null;
    }
  }, 60_000);

  browser = await puppeteer.launch({
    executablePath: chromium,
    headless: true,
    args: [
      "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-proxy-server", "--no-first-run",
      "--disable-background-networking", "--disable-component-update", "--disable-sync",
      "--disable-features=Translate,MediaRouter,OptimizationHints",
      "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
    ],
    defaultViewport: VIEWPORT,
    protocolTimeout: 120_000,
    env: env, // Chromium, too, keeps its crash reports and caches in the throwaway XDG directories
  });
  page = await browser.newPage();
  const console_: string[] = [];
  page.on("console", (message) => console_.push(`[${message.type()}] ${message.text()}`));
  // Only loopback is reachable: Chromium's resolver fails every other host (the --host-resolver-rules flag above).
  // No puppeteer request interception: it stalls requests made by web workers (puppeteer#4208), so code-server's
  // web worker extension host sometimes never started, and then VS Code held back the first run of each of our
  // commands, waiting for the `onCommand` activation in every extension host (Fill holes right after the
  // restart was "lost" that way).
  page.on("request", (request) => {
    if (!/^(https?|wss?):\/\/127\.0\.0\.1[:/]/.test(request.url()) && !/^(data|blob|vscode-\w+):/.test(request.url())) {
      console_.push(`[outside loopback, unresolvable] ${request.url()}`);
    }
  });
  page.on("close", () => writeFileSync(path.join(artifacts, "browser-console.txt"), console_.join("\n") + "\n"));
  await page.goto(url, { waitUntil: "domcontentloaded", timeout: 60_000 });
  await page.waitForSelector(".monaco-workbench", { timeout: 90_000 });
  log("workbench up");
});

after(async () => {
  try {
    if (page !== undefined && !page.isClosed()) {
      await page.close();
    }
    await browser?.close();
  } catch {
    browser?.process()?.kill("SIGKILL");
  }
  if (serverProcess?.pid !== undefined) {
    const group = -serverProcess.pid;
    try {
      process.kill(group, "SIGTERM");
      for (let i = 0; i < 20 && serverProcess.exitCode === null; i++) {
        await sleep(250);
      }
      process.kill(group, "SIGKILL");
    } catch {
      // The group is gone.
    }
  }
  if (userData !== undefined) {
    writeFileSync(path.join(artifacts, "infill-output-channel.log"), outputChannel());
    writeFileSync(path.join(artifacts, "extension-host.log"), codeServerLogs("remoteexthost.log"));
  }
  if (work !== undefined && process.env.INFILL_E2E_KEEP !== "1") {
    rmSync(work, { recursive: true, force: true });
  }
});

// The steps share one code-server and browser and run in order; after a failed step the rest are skipped.
let failed = false;
function step(name: string, run: () => Promise<void>): void {
  test(name, async (t) => {
    if (failed) {
      t.skip("an earlier step failed");
      return;
    }
    try {
      await run();
    } catch (error) {
      failed = true;
      log(`notifications on screen: ${JSON.stringify(await notifications().catch(() => []))}`);
      await shot(`fail-${name.replace(/[^a-z0-9]+/gi, "-").slice(0, 40)}.png`).catch(() => undefined);
      throw error;
    }
  });
}

/** Opens the user settings.json in the editor, as a user does (a file written from outside is not always noticed),
 * with the cursor in it. */
async function openUserSettingsJson(): Promise<void> {
  await runCommand("Preferences: Open User Settings (JSON)");
  await waitFor("settings.json in the editor", async () => {
    const tab = await page.$('.tab.active[aria-label^="settings.json"]');
    return tab !== null && (await editorText()).startsWith("{") ? true : null;
  }, 30_000);
  const lines = await page.waitForSelector(".editor-instance .monaco-editor .view-lines", { visible: true });
  await lines!.click();
}

step("infill.serverCommand (the venv's `infill`) starts the server: status ready", async () => {
  const ready = await waitReady();
  log(`ready: ${JSON.stringify(ready)}; server: ${JSON.stringify(infillServers())}`);
  const servers = infillServers();
  assert.equal(servers.length, 1, JSON.stringify(servers));
  assert.ok(servers[0].endsWith(`${venvInfill} serve`), `not the venv's infill: ${servers[0]}`);
  assert.doesNotMatch(outputChannel(), /unrecognized arguments/);
});

step("typing `value = ` shows ghost text; Tab inserts it into the file", async () => {
  await openFile("ghost.py");
  await press("Control", "End");
  await page.keyboard.type("value = ", { delay: 50 });
  const typedAt = Date.now();
  const ghost = await waitFor("ghost text", ghostText, GHOST_MS);
  log(`ghost text ${JSON.stringify(ghost)} ${((Date.now() - typedAt) / 1000).toFixed(1)} s after typing`);
  assert.match(ghost, X_FILL);
  await sleep(500);
  await shot("vscode-ghost-text.png");
  await press("Tab");
  const text = await waitFor("the accepted line", async () => {
    const lines = await editorText();
    return lines.includes(`value = ${ghost}`) ? lines : null;
  }, 10_000);
  await press("Control", "s");
  await waitFor("ghost.py saved", async () => {
    return readFileSync(path.join(workspace, "ghost.py"), "utf8").includes(`value = ${ghost}`) ? true : null;
  }, 10_000);
  await shot("vscode-after-tab.png");
  log(`editor after Tab: ${JSON.stringify(text)}`);
});

step("infill.pythonPath restarts the server as `python -m infill_cli.main serve`", async () => {
  // As a user does: in the settings.json editor (a file written from outside is not always noticed).
  await openUserSettingsJson();
  await press("Control", "Home");
  await press("End"); // after the opening brace
  const loadsBefore = modelLoads();
  await page.keyboard.type(`"infill.pythonPath": ${JSON.stringify(venvPython)},`);
  await press("Control", "s");
  // The old server's `ready` stays on screen while it shuts down, and the status item is redrawn a moment after
  // the new server starts, so the status alone cannot say the restart happened: wait for the new process, then
  // for its model to load (a line in the Infill output channel), then for `ready`.
  const expected = [`${venvPython} -m infill_cli.main serve`];
  await waitFor(
    "the old server to be replaced by `python -m infill_cli.main serve`",
    async () => (JSON.stringify(infillServers()) === JSON.stringify(expected) ? true : null),
    READY_MS,
  ).catch((error: Error) => {
    throw new Error(`${error.message}\nservers now: ${JSON.stringify(infillServers())}`);
  });
  await waitFor("the restarted server to load its model", async () => (modelLoads() > loadsBefore ? true : null), READY_MS);
  await waitReady();
  log(`server: ${JSON.stringify(infillServers())}`);
  assert.deepEqual(infillServers(), expected, "the old server is gone");
  assert.doesNotMatch(outputChannel(), /unrecognized arguments/);
});

step("Fill holes: an unchecked fill is applied only after the warning is confirmed", async () => {
  await openFile("holes.py");
  assert.equal((await editorText()).trim(), "value = 1 <|fill|>");
  await runCommand("Infill: Fill holes");
  const warning = await waitFor("the warning about the unchecked fill", dialog, GHOST_MS);
  log(`dialog: ${JSON.stringify(warning)}`);
  assert.match(warning.message, /did not pass the syntax check/);
  assert.ok(warning.buttons.includes("Apply anyway"), JSON.stringify(warning.buttons));
  await shot("vscode-unchecked-fill-warning.png");
  await press("Escape");
  await waitFor("the dialog to close", async () => ((await dialog()) === null ? true : null), 10_000);
  await sleep(1000);
  assert.equal((await editorText()).trim(), "value = 1 <|fill|>", "dismissing the warning applied something");

  await runCommand("Infill: Fill holes");
  await waitFor("the warning again", dialog, GHOST_MS);
  const buttons = await page.$$(".monaco-dialog-box .dialog-buttons .monaco-button");
  const labels = await Promise.all(buttons.map((button) => button.evaluate((b) => b.textContent ?? "")));
  await buttons[labels.indexOf("Apply anyway")].click();
  const filled = await waitFor("the unchecked fill in the buffer", async () => {
    const text = (await editorText()).trim();
    return text.includes("<|fill|>") ? null : text;
  }, 10_000);
  assert.match(filled, /^value = 1 x+/);
});

/** The texts of the editor's spans drawn with a CSS text decoration (line-through, wavy underline). */
function decorated(line: "line-through" | "underline"): Promise<string[]> {
  return page.evaluate(
    (want) =>
      [...document.querySelectorAll(".editor-instance .view-lines span span")]
        .filter((span) => getComputedStyle(span).textDecorationLine.includes(want))
        .map((span) => span.textContent ?? ""),
    line,
  );
}

step("a change gets a next-edit suggestion, previewed in place; Tab applies it", async () => {
  // The edit model with next-edit suggestions on, set in settings.json as a user does.
  await openUserSettingsJson();
  const loadsBefore = modelLoads();
  await press("Control", "a");
  const settings = settingsWith({ "infill.pythonPath": venvPython, "infill.model": editModel, "infill.nextEdit": true });
  await page.keyboard.type(JSON.stringify(settings));
  await press("Control", "s");
  await waitFor("the edit model to load", async () => (modelLoads() > loadsBefore ? true : null), READY_MS);
  await waitReady();

  await openFile("nextedit.txt");
  await press("Control", "Home");
  await press("ArrowDown");
  await press("End");
  // The user changes " b" to " x" on line 2: the model doubts it and suggests " b" back.
  await press("Backspace");
  await page.keyboard.type("x");
  await press("Control", "s");
  const line2 = () => readFileSync(path.join(workspace, "nextedit.txt"), "utf8").split("\n")[1];
  await waitFor("the change saved", async () => (line2().endsWith("+ x") ? true : null), 10_000);
  const struck = await waitFor("the next-edit preview", async () => {
    const found = await decorated("line-through");
    return found.length > 0 ? found : null;
  }, GHOST_MS);
  log(`struck through: ${JSON.stringify(struck)}`);
  assert.ok(struck.every((text) => text.trim() === "x" || text.trim() === "a"), JSON.stringify(struck));
  await sleep(500);
  await shot("vscode-next-edit.png");
  await press("Tab");
  await waitFor("the preview to go", async () => ((await decorated("line-through")).length === 0 ? true : null), 10_000);
  await press("Control", "s");
  // Tab applied the suggestion: the file's line 2 no longer holds the " x" the model doubted.
  const saved = await waitFor("the applied suggestion saved", async () => (line2().endsWith("+ x") ? null : line2()), 10_000);
  log(`line 2 after Tab: ${JSON.stringify(saved)}`);
  assert.equal(saved, SURE_LINE.trimEnd());
});

step("Edit selection in place marks the token the model doubted", async () => {
  await press("Control", "End");
  await press("ArrowUp"); // column 0 of the planted line (the last line is empty)
  await press("Shift", "ArrowDown");
  await runCommand("Infill: Edit selection in place");
  const marked = await waitFor("a low-confidence mark", async () => {
    const found = await decorated("underline");
    return found.length > 0 ? found : null;
  }, GHOST_MS);
  log(`marked: ${JSON.stringify(marked)}; last line: ${JSON.stringify((await editorText()).split("\n").at(-2))}`);
  await press("ArrowUp"); // the selection off the mark, for the screenshot
  await sleep(500);
  await shot("vscode-low-confidence.png");
  assert.ok(marked.some((text) => text.trim() === "b"), JSON.stringify(marked));
});
