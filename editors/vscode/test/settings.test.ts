import { strict as assert } from "node:assert";
import { test } from "node:test";

import {
  CLIENT_DEFAULTS,
  completionsWanted,
  launchChanged,
  readSettings,
  SERVER_DEFAULTS,
  serverLaunch,
  serverSettings,
} from "../src/settings";

function reader(values: Record<string, unknown>) {
  return (key: string) => values[key];
}

test("missing settings read as the defaults", () => {
  const settings = readSettings(reader({}));
  assert.deepEqual(settings, { ...SERVER_DEFAULTS, ...CLIENT_DEFAULTS });
});

test("values of the wrong type fall back to defaults", () => {
  const settings = readSettings(
    reader({
      maxTokens: "many",
      steps: 2.5,
      threshold: "high",
      debounceMs: -1,
      disabledLanguages: ["markdown", 3],
      device: "",
      serverArgs: "--verbose",
      trustRemoteCode: "yes",
      threads: 0,
      enable: 0,
      showLowConfidence: "no",
    }),
  );
  assert.equal(settings.maxTokens, 64);
  assert.equal(settings.steps, null);
  assert.equal(settings.threshold, null);
  assert.equal(settings.debounceMs, 150);
  assert.deepEqual(settings.disabledLanguages, []);
  assert.equal(settings.device, "auto");
  assert.deepEqual(settings.serverArgs, []);
  assert.equal(settings.trustRemoteCode, false);
  assert.equal(settings.threads, null);
  // Only an explicit `false` disables completions or the low-confidence marks.
  assert.equal(settings.enable, true);
  assert.equal(settings.showLowConfidence, true);
  assert.equal(readSettings(reader({ showLowConfidence: false })).showLowConfidence, false);
});

test("server settings carry exactly the wire keys", () => {
  const settings = readSettings(reader({ model: "/models/m", steps: 8, threads: 2, serverCommand: "/bin/infill" }));
  const wire = serverSettings(settings);
  assert.deepEqual(Object.keys(wire).sort(), Object.keys(SERVER_DEFAULTS).sort());
  assert.equal(wire.model, "/models/m");
  assert.equal(wire.steps, 8);
  assert.equal(wire.threads, 2);
  assert.equal((wire as unknown as Record<string, unknown>).serverCommand, undefined);
});

test("launch line: command + serve, or python -m when pythonPath is set", () => {
  const plain = readSettings(reader({ serverArgs: ["--log-file", "/tmp/l"] }));
  assert.deepEqual(serverLaunch(plain), { command: "infill", args: ["serve", "--log-file", "/tmp/l"] });
  const viaPython = readSettings(reader({ pythonPath: "/venv/bin/python", serverCommand: "ignored" }));
  assert.deepEqual(serverLaunch(viaPython), {
    command: "/venv/bin/python",
    args: ["-m", "infill_cli.main", "serve"],
  });
  assert.equal(launchChanged(plain, viaPython), true);
  assert.equal(launchChanged(plain, readSettings(reader({ serverArgs: ["--log-file", "/tmp/l"], steps: 3 }))), false);
});

test("completions are gated by enable and disabledLanguages", () => {
  const settings = readSettings(reader({ disabledLanguages: ["markdown"] }));
  assert.equal(completionsWanted(settings, "python"), true);
  assert.equal(completionsWanted(settings, "markdown"), false);
  assert.equal(completionsWanted({ ...settings, enable: false }, "python"), false);
});
